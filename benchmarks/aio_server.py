"""aiocoap's server under test: GET /bench answers 64 bytes.

    python -I benchmarks/aio_server.py PORT

Serves coap://127.0.0.1:PORT until killed.
"""

from __future__ import annotations

import asyncio
import sys

import aiocoap
import aiocoap.resource

PAYLOAD = b"x" * 64


class Bench(aiocoap.resource.Resource):  # type: ignore[misc]
    async def render_get(self, request: aiocoap.Message) -> aiocoap.Message:
        return aiocoap.Message(payload=PAYLOAD)


async def serve(port: int) -> None:
    site = aiocoap.resource.Site()
    site.add_resource(["bench"], Bench())
    await aiocoap.Context.create_server_context(site, bind=("127.0.0.1", port))
    await asyncio.get_running_loop().create_future()


def main() -> None:
    asyncio.run(serve(int(sys.argv[1])))


if __name__ == "__main__":
    main()
