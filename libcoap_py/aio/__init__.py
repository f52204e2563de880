"""asyncio for libcoap-py: a Context driven by the running event loop.

    import asyncio
    from libcoap_py import aio

    async def main() -> None:
        async with aio.Context() as ctx:
            session = ctx.client_session("coap://127.0.0.1")
            response = await session.request("GET", "time")
            print(response.code.dotted, response.text)

    asyncio.run(main())

Requests, observations and block-wise transfers rest on the same exchange engine
as the blocking API and give the same results and exceptions. Resources are
served by the same server, and their handlers may be ``async def``. The event
loop waits on libcoap's own descriptor and timers: nothing polls. See
``docs/asyncio.md``.
"""

from __future__ import annotations

from .context import Context
from .session import Observation, Session

__all__ = ["Context", "Observation", "Session"]
