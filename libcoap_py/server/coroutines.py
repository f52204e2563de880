"""Handlers written as ``async def`` coroutines, run on the event loop that drives
the Context (``libcoap_py.aio``).

A coroutine handler runs at once, inside libcoap's dispatch, up to its first
suspension. One that finishes without suspending is answered as a plain
handler is: in the ACK. One that suspends (it awaits I/O, a lock, a timer)
*lends* its response: the response is delayed, libcoap acknowledges a CON with
an empty ACK at once, and the coroutine goes on as an asyncio task while other
requests are served. What it writes on the response meanwhile is sent as a
separate response when it returns (see ``delayed.py``). If it raises, the
client gets 5.00; if its task is cancelled (the Context closes), nothing is
sent.

There is no event loop under a blocking ``Context.run()``: a coroutine handler
there is refused (logged, answered 5.00).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any

from ..codes import Code
from ..errors import CoapError
from ..log import log_limited
from .delayed import Delivery
from .request import Request, ServerResponse

__all__ = ["start"]

log = logging.getLogger("libcoap_py.server")

#: Tasks of lent responses still running (asyncio keeps only weak references).
_running: set[asyncio.Task[Any]] = set()


def start(coroutine: Coroutine[Any, Any, Any], reply: ServerResponse, request: Request) -> None:
    """Run a handler's ``coroutine`` up to its first suspension; if it suspends, lend
    ``reply`` and let a task finish it. Raises what the coroutine raised before it
    suspended (the caller answers 5.00), and CoapError without an event loop."""
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        coroutine.close()
        raise CoapError(
            "an async def handler needs an event loop: serve with libcoap_py.aio.Context "
            "(this Context runs a blocking loop)"
        ) from None
    try:
        yielded = coroutine.send(None)
    except StopIteration:
        return  # done without suspending: answered as a plain handler is
    reply._lend()
    task = loop.create_task(_resume(coroutine, yielded))
    _running.add(task)

    def finish(task: asyncio.Task[Any]) -> None:
        _running.discard(task)
        _finish(task, reply, request)

    task.add_done_callback(finish)


async def _resume(coroutine: Coroutine[Any, Any, Any], yielded: Any) -> Any:
    """Drive a coroutine that has already run to its first suspension, as a task
    would: wait for what it yielded (a future, or None: a bare yield), then resume
    it; a cancellation is passed on to what it waits for."""
    while True:
        if yielded is not None:
            yielded._asyncio_future_blocking = False  # (as asyncio's Task does)
            try:
                await _wait(yielded)
            except asyncio.CancelledError:
                yielded.cancel()  # the coroutine sees the cancellation where it waits
        else:
            await asyncio.sleep(0)
        try:
            yielded = coroutine.send(None)
        except StopIteration as stop:
            return stop.value


async def _wait(future: asyncio.Future[Any]) -> None:
    """Wait until ``future`` is done, without taking its result or raising it."""
    if not future.done():
        await asyncio.wait({future})


def _finish(task: asyncio.Task[Any], reply: ServerResponse, request: Request) -> None:
    """Send what the coroutine wrote, 5.00 if it raised; nothing if it was cancelled."""
    delayed = reply._give_back()
    if delayed is None or delayed.delivery is not Delivery.WAITING:
        return
    try:
        if task.cancelled():
            delayed.cancel()
            return
        try:
            task.result()
        except Exception:
            where = f"{request.method} /{request.path}"
            log_limited(log, logging.ERROR, f"handler for {where} failed", exc_info=True)
            delayed.code = Code.INTERNAL_SERVER_ERROR
            delayed.payload = b""
        delayed.send()
    except CoapError as error:
        log.debug("the delayed response of /%s was not sent: %s", request.path, error)
