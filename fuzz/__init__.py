"""A mutation fuzzer for servers built on libcoap-py, over UDP and inside DTLS.

Modules by idea: ``pdu`` (a small CoAP encoder/decoder of its own, so that
malformed framing can be written), ``seeds`` (valid messages and block-wise
sequences of every family), ``mutate`` (the deterministic datagram stream),
``udp`` and ``dtls`` (the two ways in), ``targets`` (the servers under test,
as child processes), ``runner`` (sending, probing, crash replay and
shrinking) and ``cli`` (``python -m fuzz``).
"""
