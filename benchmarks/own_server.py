"""The project's server under test: GET /bench answers 64 bytes.

    python -I benchmarks/own_server.py PORT [--async] [--uvloop]

Serves coap://127.0.0.1:PORT until SIGTERM/SIGINT: with the blocking
``Context.run()``, or (``--async``) with ``libcoap_py.aio.Context`` on an asyncio
event loop (uvloop's with ``--uvloop``) and an ``async def`` handler.
"""

from __future__ import annotations

import asyncio
import signal
import sys

import libcoap_py as coap

PAYLOAD = b"x" * 64


def serve_blocking(port: int) -> None:
    with coap.Context() as ctx:
        ctx.add_endpoint(f"coap://127.0.0.1:{port}")

        @ctx.resource("bench")
        def bench(request: coap.Request, response: coap.ServerResponse) -> None:
            response.payload = PAYLOAD

        ctx.run(handle_signals=True)


async def serve_async(port: int) -> None:
    from libcoap_py import aio  # (not at the top: a --before build may have none)

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with aio.Context() as ctx:
        ctx.add_endpoint(f"coap://127.0.0.1:{port}")

        @ctx.resource("bench")
        async def bench(request: coap.Request, response: coap.ServerResponse) -> None:
            response.payload = PAYLOAD

        await stop.wait()


def main() -> None:
    port = int(sys.argv[1])
    if "--async" not in sys.argv[2:]:
        serve_blocking(port)
    elif "--uvloop" in sys.argv[2:]:
        import uvloop

        loop = uvloop.new_event_loop()
        try:
            loop.run_until_complete(serve_async(port))
        finally:
            loop.close()
    else:
        asyncio.run(serve_async(port))


if __name__ == "__main__":
    main()
