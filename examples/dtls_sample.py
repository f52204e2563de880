#!/usr/bin/env python3
"""The libcoap DTLS client sample (lab5e's libcoap-dtls-sample), ported to libcoap-py.

The C program POSTs a payload over ``coaps://`` with a client certificate to
Span (``data.lab5e.com:5684``) and reads the downstream message the service
returns in the response. This port keeps the C program's steps, in the same
order, with the same settings; the numbered comments match those steps.

    python examples/dtls_sample.py                       # the sample's defaults
    python examples/dtls_sample.py --host 127.0.0.1 --port 5685 \\
        --cert cert.crt --key key.pem --ca cert.crt      # against a local server

Printed lines are stable and meant to be grepped: ``DTLS connected``,
``Response 2.04 Changed``, ``Downstream message: ...``, ``NACK TLS_FAILED ...``.

Exit codes follow the C sample where it has one (1: server address,
2: local address, 3: context, 4: session, 5: PDU, 6: send); 7 means the
exchange ended without a 2.xx response (an error response, a NACK, or no
answer before ``--timeout``).
"""

from __future__ import annotations

import argparse
import ipaddress
import logging
import socket
import sys
import time
from typing import Any

import libcoap_py as coap

EXIT_OK = 0
EXIT_SERVER_ADDRESS = 1
EXIT_LOCAL_ADDRESS = 2
EXIT_CONTEXT = 3
EXIT_SESSION = 4
EXIT_PDU = 5
EXIT_SEND = 6
EXIT_NO_SUCCESS = 7

# What the C nack_handler's switch tells apart, as text.
NACK_TEXT = {
    "TOO_MANY_RETRIES": "no answer: gave up after the last retransmission",
    "NOT_DELIVERABLE": "the request could not be delivered",
    "RST": "the server answered with a reset (RST)",
    "TLS_FAILED": "the DTLS handshake failed",
    "ICMP_ISSUE": "an ICMP error came back",
    "BAD_RESPONSE": "the response was malformed",
    "TLS_LAYER_FAILED": "the DTLS layer failed",
}

# The events the sample's DTLS status handler reports.
EVENT_TEXT = {
    "DTLS_CONNECTED": "DTLS connected",
    "DTLS_CLOSED": "DTLS closed",
    "DTLS_RENEGOTIATE": "DTLS renegotiate",
    "DTLS_ERROR": "DTLS error",
    "SESSION_CONNECTED": "Session connected",
    "SESSION_CLOSED": "Session closed",
    "SESSION_FAILED": "Session failed",
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description="POST a payload over coaps:// with a client certificate "
        "and print the downstream message (the libcoap DTLS sample, in Python)."
    )
    p.add_argument("--host", default="data.lab5e.com", help="server host (default: %(default)s)")
    p.add_argument("--port", type=int, default=5684, help="server port (default: %(default)s)")
    p.add_argument("--path", default="path-for-data", help="Uri-Path (default: %(default)s)")
    p.add_argument(
        "--cert", default="cert.crt", help="client certificate, PEM (default: %(default)s)"
    )
    p.add_argument(
        "--key", default="key.pem", help="client private key, PEM (default: %(default)s)"
    )
    p.add_argument("--ca", default="cert.crt", help="CA file, PEM (default: %(default)s)")
    p.add_argument(
        "--local", default="0.0.0.0", help="local address to bind (default: %(default)s)"
    )
    p.add_argument(
        "--payload", default="this is the payload", help="payload (default: %(default)r)"
    )
    p.add_argument(
        "--timeout",
        type=float,
        default=30.0,
        help="give up after this many seconds (default: %(default)s)",
    )
    p.add_argument(
        "-v",
        "--verbose",
        action="count",
        default=0,
        help="more libcoap logging (-v: info, -vv: debug)",
    )
    return p.parse_args(argv)


def resolve(host: str, port: int, family: int = socket.AF_UNSPEC) -> str:
    """The C sample's resolve_address(): a name or literal -> a numeric address."""
    infos = socket.getaddrinfo(host, port, family, socket.SOCK_DGRAM, socket.IPPROTO_UDP)
    return str(infos[0][4][0])


def with_brackets(address: str) -> str:
    """IPv6 literals go into URIs and 'host:port' strings in brackets."""
    return f"[{address}]" if ":" in address else address


def code_text(code: coap.Code) -> str:
    """'2.04 Changed' for Code.CHANGED."""
    name = getattr(code, "name", None) or str(code)
    return f"{code.dotted} {name.replace('_', ' ').title()}"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # One line at a time even into a pipe, so it interleaves with libcoap's log.
    if hasattr(sys.stdout, "reconfigure"):
        sys.stdout.reconfigure(line_buffering=True)

    # 1. Start up and set the log level.
    #    coap_startup() runs when libcoap_py is imported; libcoap stays set up
    #    until the process ends, so there is no coap_cleanup() step at the end.
    #    coap_set_log_level(LOG_NOTICE) and coap_dtls_set_log_level(LOG_NOTICE):
    #    libcoap's log goes to the Python logger "libcoap"; show it on stderr.
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("libcoap %(levelname)s: %(message)s"))
    libcoap_log = logging.getLogger("libcoap")
    libcoap_log.addHandler(handler)
    libcoap_log.setLevel(logging.DEBUG)  # libcoap filters by its own level below
    level = {0: coap.LogLevel.NOTICE, 1: coap.LogLevel.INFO}.get(args.verbose, coap.LogLevel.DEBUG)
    coap.set_log_level(level)
    print(f"libcoap {coap.libcoap_version()}, TLS library {coap.tls_library()}")
    if not coap.dtls_is_supported():
        print("This libcoap has no DTLS support", file=sys.stderr)
        return EXIT_CONTEXT

    # 2. Resolve the server and the local address (resolve_address() in C).
    #    The server is resolved in the local address's family, so that
    #    "--local 0.0.0.0" and a name with both A and AAAA records agree.
    try:
        local_family = (
            socket.AF_INET6 if ipaddress.ip_address(args.local).version == 6 else socket.AF_INET
        )
    except ValueError:
        local_family = socket.AF_UNSPEC
    try:
        server_address = resolve(args.host, args.port, local_family)
    except OSError as exc:
        print(f"Cannot resolve server address {args.host}: {exc}", file=sys.stderr)
        return EXIT_SERVER_ADDRESS
    print(f"Server address: {with_brackets(server_address)}:{args.port}")
    try:
        local_address = resolve(args.local, 0, local_family)
    except OSError as exc:
        print(f"Cannot resolve local address {args.local}: {exc}", file=sys.stderr)
        return EXIT_LOCAL_ADDRESS
    print(f"Local address: {with_brackets(local_address)}")

    # 3. A context for the client, with a 10 s keepalive
    #    (coap_new_context + coap_context_set_keepalive).
    try:
        ctx = coap.Context()
    except coap.CoapError as exc:
        print(f"Cannot create context: {exc}", file=sys.stderr)
        return EXIT_CONTEXT
    outcome: dict[str, Any] = {"code": None, "nack": None}
    try:
        ctx.keepalive = 10
        status = run(ctx, args, server_address, local_address, outcome)
    finally:
        # 10. Clean up: coap_delete_optlist, coap_session_release and
        #     coap_free_context all happen here; close() is idempotent.
        #     Closing a session that is still handshaking or waiting reports
        #     it to the handlers (DTLS closed, a NACK), as in C.
        ctx.close()
    if status is not None:
        return status

    code = outcome["code"]
    if code is not None and code.class_ == 2:
        print(f"Done: {code_text(code)}")
        return EXIT_OK
    if code is not None:
        print(f"Failed: {code_text(code)}")
    elif outcome["nack"] is not None:
        print(f"Failed: NACK {outcome['nack']}")
    else:
        print("Failed: no response")
    return EXIT_NO_SUCCESS


def run(
    ctx: coap.Context,
    args: argparse.Namespace,
    server_address: str,
    local_address: str,
    outcome: dict[str, Any],
) -> int | None:
    """Steps 4 to 9. An exit code if a step failed, None once the exchange ran."""
    # 4. The client certificate: the sample's coap_dtls_pki_t, flag for flag.
    #    require_peer_cert is the 4.2 name; on libcoap 4.3 the same field is
    #    check_common_ca, and without it 4.3 has no trust anchor at all.
    #    A missing file is reported here, before any packet is sent.
    try:
        pki = coap.PKI(
            cert=args.cert,  # pki_key.key.pem.public_cert
            key=args.key,  # pki_key.key.pem.private_key
            ca=args.ca,  # pki_key.key.pem.ca_file
            verify_peer_cert=True,  # verify the server's certificate
            require_peer_cert=True,  # require a server certificate
            allow_self_signed=True,  # (ignored while require_peer_cert is on, as in C)
            allow_expired_certs=False,  # no expired certificates
            cert_chain_validation=True,  # validate the chain
            check_cert_revocation=False,  # no revocation lists
            cert_chain_verify_depth=2,  # depth of validation
        )
    except (OSError, ValueError, coap.CoapError) as exc:
        print(f"Cannot set up the client certificate: {exc}", file=sys.stderr)
        return EXIT_SESSION

    # 5. The DTLS session (coap_new_client_session_pki with COAP_PROTO_DTLS),
    #    to the address resolved in step 2, from the local address.
    #    Unlike the C sample, the server's certificate must be for --host: the
    #    URI holds the address, so the name to check is given as server_name.
    uri = f"coaps://{with_brackets(server_address)}:{args.port}"
    try:
        session = ctx.client_session(
            uri, dtls=pki, local=with_brackets(local_address), server_name=args.host
        )
    except (ValueError, coap.CoapError) as exc:
        print(f"Cannot create session to {uri}: {exc}", file=sys.stderr)
        return EXIT_SESSION
    print(f"Session: {uri}")

    # 6. The handlers (coap_register_response_handler / _nack_handler /
    #    _event_handler). They record the outcome for the exit code.

    @ctx.register_response_handler
    def message_handler(session, sent, received, mid):  # type: ignore[no-untyped-def]
        code = received.code
        outcome["code"] = code
        print(f"Response {code_text(code)}")
        data = received.payload
        if code.class_ == 2:
            # 2.xx: success. A payload, if any, is the downstream message the
            # service had queued for this device.
            if data:
                print(f"Downstream message: {data.decode('utf-8', 'replace')}")
            else:
                print("No downstream message")
        elif code.class_ == 4:
            # 4.xx: the server did not accept the request (e.g. 4.04 Not Found).
            print(f"Client error: {data.decode('utf-8', 'replace') or code_text(code)}")
        elif code.class_ == 5:
            # 5.xx: the server failed.
            print(f"Server error: {data.decode('utf-8', 'replace') or code_text(code)}")
        else:
            print(f"Unexpected response class {code.class_}")

    @ctx.register_nack_handler
    def nack_handler(session, sent, reason, mid):  # type: ignore[no-untyped-def]
        name = getattr(reason, "name", str(reason))
        outcome["nack"] = name
        print(f"NACK {name}: {NACK_TEXT.get(name, 'the request failed')}")

    @ctx.register_event_handler
    def event_handler(session, event):  # type: ignore[no-untyped-def]
        name = getattr(event, "name", str(event))
        print(EVENT_TEXT.get(name, f"Event {name}"))

    # 7. The request: a confirmable POST (coap_new_pdu, type, message id, code).
    #    new_pdu() sets the message id and a token.
    try:
        pdu = session.new_pdu(coap.MessageType.CON, coap.Code.POST)
        # The options, in option-number order as coap_add_optlist_pdu() sorts them.
        # Uri-Host: the name as given, as in the sample.
        pdu.add_option(coap.OptionNumber.URI_HOST, args.host)
        # Uri-Port: a uint (RFC 7252, 5.10: 0 to 2 bytes). The C sample sends the
        # decimal string "5684" (4 bytes): a libcoap 4.3 server discards that as
        # malformed and answers RST; libcoap 4.2 reads it as port 892745780.
        pdu.add_option(coap.OptionNumber.URI_PORT, args.port)
        # Uri-Path: one option per segment.
        for segment in args.path.strip("/").split("/"):
            if segment:
                pdu.add_option(coap.OptionNumber.URI_PATH, segment)
        # coap_add_data. (The C sample passes sizeof(data), the size of a
        # pointer, so it sends only the first 8 bytes; this sends them all.)
        pdu.payload = args.payload.encode()
    except (ValueError, coap.CoapError) as exc:
        print(f"Cannot build the request: {exc}", file=sys.stderr)
        return EXIT_PDU

    # 8. Hand it to libcoap (coap_send). It goes out once the DTLS handshake,
    #    which the loop below drives, is done.
    try:
        mid = session.send(pdu)
    except coap.CoapError as exc:
        print(f"Cannot send the request: {exc}", file=sys.stderr)
        return EXIT_SEND
    print(f"Sent POST /{args.path.strip('/')} mid={mid} ({len(args.payload.encode())} bytes)")

    # 9. Run libcoap until the exchange is over (coap_run_once until
    #    coap_can_exit). Unlike the C loop this one has an overall deadline.
    #    Note: in C, coap_run_once(ctx, 0) waits without limit; here
    #    run_once(0) only polls and run_once(None) waits.
    deadline = time.monotonic() + args.timeout
    while not ctx.can_exit():
        left = deadline - time.monotonic()
        if left <= 0:
            print(f"No answer within {args.timeout:g} s")
            break
        ctx.run_once(max(1, min(1000, int(left * 1000))))

    return None


if __name__ == "__main__":
    sys.exit(main())
