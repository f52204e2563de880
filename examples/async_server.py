#!/usr/bin/env python3
"""A CoAP server on asyncio (libcoap_py.aio), with plain and ``async def`` handlers.

    python examples/async_server.py [--host 127.0.0.1] [--port 5683] [--psk KEY]

Resources:

- ``GET /hello``: a plain handler, answered in the ACK;
- ``GET /reading``: an ``async def`` handler that awaits a (simulated) slow
  sensor: the client gets an empty ACK at once and the response after it, while
  other requests are served;
- ``GET /counter`` (observable): a background task changes it every second and
  notifies its observers;
- ``POST /echo``: answers with the request's body.

With ``--psk KEY`` it also listens on coaps:// (the next port; with port 0, any
free one) for clients that use that key (any identity). Prints ``listening on
...`` once it serves, and stops on Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys

import libcoap_py as coap
from libcoap_py import aio


async def slow_sensor() -> bytes:
    """Stands for I/O that takes a while (a bus, a database, another service)."""
    await asyncio.sleep(0.2)
    return b"21.5 C"


async def serve(host: str, port: int, psk: str | None) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)

    async with aio.Context() as ctx:
        endpoint = ctx.add_endpoint(f"coap://{host}:{port}")
        uris = [endpoint.uri]
        if psk is not None:
            secure_port = 0 if port == 0 else endpoint.port + 1
            secure = ctx.add_endpoint(
                f"coaps://{host}:{secure_port}", coap.PSK(hint=b"async-server", key=psk)
            )
            uris.append(secure.uri)
        count = 0

        @ctx.resource("hello")
        def hello(request: coap.Request, response: coap.ServerResponse) -> None:
            response.payload = b"hello from asyncio"

        @ctx.resource("reading")
        async def reading(request: coap.Request, response: coap.ServerResponse) -> None:
            response.content_format = coap.ContentFormat.TEXT_PLAIN
            response.payload = await slow_sensor()

        @ctx.resource("counter", observable=True)
        def counter(request: coap.Request, response: coap.ServerResponse) -> None:
            response.payload = str(count).encode()

        @ctx.resource("echo", "POST")
        def echo(request: coap.Request, response: coap.ServerResponse) -> None:
            response.code = coap.Code.CHANGED
            response.payload = request.payload

        async def tick() -> None:
            nonlocal count
            while True:
                await asyncio.sleep(1)
                count += 1
                ctx.resources["counter"].notify()

        ticker = asyncio.ensure_future(tick())
        print("listening on " + " and ".join(uris), flush=True)
        try:
            await stop.wait()
        finally:
            ticker.cancel()
    print("stopped", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1", help="address (default: %(default)s)")
    parser.add_argument("--port", type=int, default=5683, help="port; 0: any free one")
    parser.add_argument("--psk", help="also serve coaps:// with this pre-shared key")
    args = parser.parse_args(argv)
    try:
        asyncio.run(serve(args.host, args.port, args.psk))
    except OSError as exc:
        print(f"cannot serve: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
