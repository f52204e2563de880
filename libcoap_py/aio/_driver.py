"""The Driver: a Context's I/O run by an asyncio event loop instead of a blocking one.

How the event loop hears from libcoap: libcoap waits on one epoll descriptor
(``coap_context_get_coap_fd``, libcoap 4.2 and 4.3 alike) that holds its
sockets, its own timer (a timerfd) and the wake-up pipe of
``call_soon_threadsafe``. The event loop watches that descriptor
(``add_reader``): when it is readable, one pass runs without waiting
(``lcp_io_poll``), which also tells when libcoap's next timer is due (a
retransmission, a DTLS timer), for a ``call_at``. Nothing runs while nothing is
due: no polling, and no ticker unless a part of the Context has timed work
(the Loop's hooks: delayed responses waiting for their ACK, observations).

Requests are the blocking API's steps (``client/session.py``, ``Waiting``),
driven here: ``drive()`` sends, then awaits a future that a pass resolves when
the request's claim is settled (``lcp_claims_settled`` names the claims a
pass settled, so a pass looks only at those), or that a timer resolves at the
request's deadline.
"""

from __future__ import annotations

import asyncio
import itertools
import math
import time
import weakref
from typing import Any, Callable

from .._binding import ffi, lib
from .._exchange import Exchanges
from .._loop import Loop
from ..client.session import Steps, Waiting
from ..errors import IO_FAILED, CoapError, NotSupportedError

__all__ = ["Driver"]

_io_poll = lib.lcp_io_poll
_claims_settled = lib.lcp_claims_settled
_SETTLED_MAX = 256
#: Whether libcoap arms its timer when a CON is sent outside a pass (4.3); 4.2 does
#: it only in a pass, so a send is followed by one.
_SEND_ARMS_TIMER = lib.LCP_GENERATION >= 3
_monotonic = time.monotonic


class Driver:
    """Runs one Context's passes from an asyncio event loop (see the module)."""

    def __init__(self, loop: Loop, exchanges: Exchanges, aloop: asyncio.AbstractEventLoop) -> None:
        fd = int(lib.coap_context_get_coap_fd(loop.ptr))
        if fd < 0:
            raise NotSupportedError(
                "this libcoap was built without epoll: it has no descriptor an event loop "
                "can wait on (coap_context_get_coap_fd); use the blocking API"
            )
        self.loop = loop
        self.exchanges = exchanges
        self.aloop = aloop
        self.fd = fd
        #: Requests waiting, by their claim's tag; and those without a claim.
        self.tagged: dict[Any, _Pending] = {}
        self.untagged: dict[Any, _Pending] = {}
        self.tags = itertools.count(1)
        self._settled = ffi.new("int[]", _SETTLED_MAX)
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = math.inf
        self._soon = False
        self.closed = False
        #: Called after every pass, while alive (async observations: whether they
        #: ended); weakly held.
        self.watchers: set[weakref.WeakMethod[Callable[[], None]]] = set()
        #: Called with what a handler raised (no caller to re-raise it to).
        self.on_error: Callable[[BaseException], None] = self._report
        aloop.add_reader(fd, self.run_pass)

    # -- passes ---------------------------------------------------------------------------

    def run_pass(self) -> None:
        """One pass of libcoap's I/O without waiting, then what it settled."""
        self._soon = False
        loop = self.loop
        if self.closed or loop.ptr is None:
            return
        loop.in_io = True
        try:
            next_ms = _io_poll(loop.ptr)
        finally:
            loop.in_io = False
        try:
            loop.after_io()
        except (KeyboardInterrupt, SystemExit):
            raise
        except BaseException as error:
            self.on_error(error)
        if loop.ptr is None:  # closed from a handler
            return
        self._look()
        for ref in list(self.watchers):
            watcher = ref()
            if watcher is None:
                self.watchers.discard(ref)
            else:
                watcher()
        if next_ms < 0:
            self.on_error(CoapError(IO_FAILED))
            next_ms = 100
        self._schedule(next_ms / 1000 if next_ms else math.inf)

    def soon(self) -> None:
        """A pass at the event loop's next turn (after sends made outside a pass: they
        may have started timers libcoap arms only in a pass)."""
        if not self._soon:
            self._soon = True
            self.aloop.call_soon(self.run_pass)

    def _schedule(self, delay: float) -> None:
        """A pass within ``delay`` seconds at the latest (inf: none needed by libcoap)."""
        for due, _, every in self.loop.hooks:
            if due and every < delay:
                delay = every
        if self.untagged:
            delay = min(delay, 0.1)  # (a CSM wait: the session's state, looked at)
        if delay == math.inf:
            return
        at = self.aloop.time() + delay
        if at < self._timer_at - 0.001:
            if self._timer is not None:
                self._timer.cancel()
            self._timer_at = at
            self._timer = self.aloop.call_at(at, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self._timer_at = math.inf
        self.run_pass()

    def _look(self) -> None:
        """Poll the requests a pass may have settled: those whose claims it named, the
        claim-less ones, and all of them when more were settled than named."""
        n = _claims_settled(self._settled)
        tagged = self.tagged
        if tagged:
            if n < 0:
                for pending in list(tagged.values()):
                    pending.poll()
            elif n:
                tags = self._settled
                for i in range(n):
                    found = tagged.get(tags[i])
                    if found is not None:
                        found.poll()
        if self.untagged:
            for pending in list(self.untagged.values()):
                pending.poll()

    # -- requests -------------------------------------------------------------------------

    async def drive(self, steps: Steps[Any]) -> Any:
        """Run a request's steps on the event loop; its result, or its exception.
        Cancelled, it abandons the exchange: a late answer goes nowhere."""
        try:
            waiting = next(steps)
            while True:
                try:
                    await self._wait(waiting)
                except asyncio.CancelledError:
                    steps.close()
                    raise
                except BaseException as error:
                    waiting = steps.throw(error)
                else:
                    waiting = steps.send(None)
        except StopIteration as stop:
            return stop.value

    async def _wait(self, waiting: Waiting) -> None:
        until = waiting.poll()
        if until is None:
            return
        pending = _Pending(self, waiting)
        pending.arm(until)
        if not _SEND_ARMS_TIMER or waiting.exchange is None:
            self.soon()
        try:
            await pending.future
        finally:
            pending.close()

    # -- errors and the end ---------------------------------------------------------------

    def _report(self, error: BaseException) -> None:
        self.aloop.call_exception_handler(
            {"message": "a libcoap-py handler raised", "exception": error}
        )

    def close(self) -> None:
        """Stop watching the Context (before it is freed). Idempotent."""
        if self.closed:
            return
        self.closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        try:
            self.aloop.remove_reader(self.fd)
        except (ValueError, OSError, RuntimeError):
            pass  # (the event loop is closed already)


class _Pending:
    """One request's wait on the event loop: its future, its table entry, and the
    timer of its deadline (the Waiting's poll decides what a deadline means)."""

    __slots__ = ("claim", "driver", "future", "key", "table", "timer", "waiting")

    def __init__(self, driver: Driver, waiting: Waiting) -> None:
        self.driver = driver
        self.waiting = waiting
        self.future: asyncio.Future[None] = driver.aloop.create_future()
        self.timer: asyncio.TimerHandle | None = None
        exchange = waiting.exchange
        self.claim = None if exchange is None else exchange.claim
        if self.claim is not None:
            key: Any = next(driver.tags) & 0x7FFFFFFF or 1
            self.claim.ptr.tag = key
            self.table: dict[Any, _Pending] = driver.tagged
        else:
            key = self
            self.table = driver.untagged
        self.key = key
        self.table[key] = self

    def arm(self, until: float) -> None:
        aloop = self.driver.aloop
        self.timer = aloop.call_at(aloop.time() + max(0.0, until - _monotonic()), self.poll)

    def poll(self) -> None:
        future = self.future
        if future.done():
            return
        try:
            until = self.waiting.poll()
        except BaseException as error:
            self.close()
            future.set_exception(error)
            return
        if until is None:
            self.close()
            future.set_result(None)
        elif self.timer is None or self.timer.when() > until + 0.5:
            if self.timer is not None:
                self.timer.cancel()
            self.arm(until)

    def close(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        if self.table.pop(self.key, None) is not None and self.claim is not None:
            self.claim.ptr.tag = 0
