"""What the tests share, besides the fixtures (which stay in ``tests/conftest.py``).

``tests/`` is on ``sys.path`` while pytest runs (its rootdir conftest is imported
with the "prepend" import mode), so the test modules import these as ``helpers.xxx``:

- ``build``: what the binding under test was built against (libcoap generation, TLS
  library, DTLS) and the skip for tests that need DTLS;
- ``ctools``: libcoap's own programs as peers (``coap-server``, ``coap-client`` of
  the build's TLS backend), their flags and their output;
- ``net``: loopback ports, a CoAP ping, IPv6 loopback;
- ``codec``: CoAP by hand (encode and decode messages, a client made of a socket)
  for exchanges that must not depend on any CoAP library;
- ``peers``: peers in the test process (a UDP socket that stays silent or answers
  RST, the binding as a server in a thread of its own);
- ``aio``: an aiocoap server in a thread of its own;
- ``certs``: the test PKIs;
- ``waiting``: waiting on a condition with a bounded timeout;
- ``hang``: the per-test hang guard (SIGALRM), which tests' own alarms share;
- ``payloads``: test bodies;
- ``service``: ``libcoap-py serve`` as a child process.
"""
