#!/usr/bin/env python3
"""The libcoap DTLS client sample, in asyncio form (libcoap_py.aio).

The same program as ``dtls_sample.py`` (the same command-line arguments, the
same printed lines and exit codes), written the way an asyncio application
would: one awaited POST over ``coaps://`` with a client certificate, its
response carrying the downstream message. ``libcoap-py demo --sample
examples/dtls_sample_async.py`` runs it against the local data service.

    python examples/dtls_sample_async.py --host 127.0.0.1 --port 5685 \\
        --cert cert.crt --key key.pem --ca cert.crt
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
import sys

# The argument parser and the helpers are the blocking sample's (the same folder).
from dtls_sample import (
    EVENT_TEXT,
    EXIT_CONTEXT,
    EXIT_LOCAL_ADDRESS,
    EXIT_NO_SUCCESS,
    EXIT_OK,
    EXIT_SERVER_ADDRESS,
    EXIT_SESSION,
    NACK_TEXT,
    code_text,
    parse_args,
    resolve,
    with_brackets,
)

import libcoap_py as coap
from libcoap_py import aio


async def run(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if hasattr(sys.stdout, "reconfigure"):
        sys.stdout.reconfigure(line_buffering=True)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("libcoap %(levelname)s: %(message)s"))
    logging.getLogger("libcoap").addHandler(handler)
    logging.getLogger("libcoap").setLevel(logging.DEBUG)
    level = {0: coap.LogLevel.NOTICE, 1: coap.LogLevel.INFO}.get(args.verbose, coap.LogLevel.DEBUG)
    coap.set_log_level(level)
    print(f"libcoap {coap.libcoap_version()}, TLS library {coap.tls_library()}")
    if not coap.dtls_is_supported():
        print("This libcoap has no DTLS support", file=sys.stderr)
        return EXIT_CONTEXT

    # The addresses, resolved as the blocking sample does (in the local family).
    try:
        version = ipaddress.ip_address(args.local).version
        family = socket.AF_INET6 if version == 6 else socket.AF_INET
    except ValueError:
        family = socket.AF_UNSPEC
    try:
        server = await asyncio.get_running_loop().run_in_executor(
            None, resolve, args.host, args.port, family
        )
    except OSError as exc:
        print(f"Cannot resolve server address {args.host}: {exc}", file=sys.stderr)
        return EXIT_SERVER_ADDRESS
    print(f"Server address: {with_brackets(server)}:{args.port}")
    try:
        local = resolve(args.local, 0, family)
    except OSError as exc:
        print(f"Cannot resolve local address {args.local}: {exc}", file=sys.stderr)
        return EXIT_LOCAL_ADDRESS

    try:
        pki = coap.PKI(
            cert=args.cert, key=args.key, ca=args.ca, verify_peer_cert=True,
            require_peer_cert=True, allow_expired_certs=False, cert_chain_validation=True,
            cert_chain_verify_depth=2,
        )  # fmt: skip
    except (OSError, ValueError, coap.CoapError) as exc:
        print(f"Cannot set up the client certificate: {exc}", file=sys.stderr)
        return EXIT_SESSION

    async with aio.Context() as ctx:
        ctx.blocking.keepalive = 10

        @ctx.blocking.register_event_handler
        def event_handler(session: object, event: coap.Event | int) -> None:
            name = getattr(event, "name", str(event))
            print(EVENT_TEXT.get(name, f"Event {name}"))

        uri = f"coaps://{with_brackets(server)}:{args.port}"
        try:
            session = ctx.client_session(
                uri, pki, local=with_brackets(local), server_name=args.host
            )
        except (ValueError, coap.CoapError) as exc:
            print(f"Cannot create session to {uri}: {exc}", file=sys.stderr)
            return EXIT_SESSION
        print(f"Session: {uri}")

        path = args.path.strip("/")
        print(f"Sending POST /{path} ({len(args.payload.encode())} bytes)")
        try:
            response = await session.request(
                "POST", path, args.payload,
                options=[(coap.OptionNumber.URI_HOST, args.host),
                         (coap.OptionNumber.URI_PORT, args.port)],
                timeout=args.timeout,
            )  # fmt: skip
        except coap.NackError as exc:
            name = getattr(exc.reason, "name", str(exc.reason))
            print(f"NACK {name}: {NACK_TEXT.get(name, 'the request failed')} ({exc})")
            return EXIT_NO_SUCCESS
        except coap.CoapError as exc:
            print(f"Failed: {exc}")
            return EXIT_NO_SUCCESS

    print(f"Response {code_text(response.code)}")
    if response.code.class_ != 2:
        print(f"Failed: {code_text(response.code)}")
        return EXIT_NO_SUCCESS
    if response.payload:
        print(f"Downstream message: {response.payload.decode('utf-8', 'replace')}")
    else:
        print("No downstream message")
    print(f"Done: {code_text(response.code)}")
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(asyncio.run(run()))
