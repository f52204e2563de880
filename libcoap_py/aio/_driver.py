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
the request's claim is settled, or that a timer resolves at the request's
deadline. A plain request (``answer()``) waits on its claim alone.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import math
import time
import weakref
from typing import Any, Callable

from .._binding import lib
from .._exchange import Claim, Exchanges
from .._loop import Loop
from ..client.session import Session, Steps, Waiting, plain_waiting
from ..errors import IO_FAILED, CoapError, NotSupportedError
from ..pdu import Response
from ..server.serving import Server

__all__ = ["Driver"]

_io_poll = lib.lcp_io_poll
_PASSES = 16  # passes at most in one turn of the event loop while requests are served
#: Whether libcoap arms its timer when a CON is sent outside a pass (4.3); 4.2 does
#: it only in a pass, so a send is followed by one.
_SEND_ARMS_TIMER = lib.LCP_GENERATION >= 3
_monotonic = time.monotonic
_any = any


class Driver:
    """Runs one Context's passes from an asyncio event loop (see the module)."""

    def __init__(
        self, loop: Loop, exchanges: Exchanges, server: Server, aloop: asyncio.AbstractEventLoop
    ) -> None:
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
        #: Requests waiting through their steps: with a claim, and without one.
        self.claimed: dict[Any, _Pending] = {}
        self.unclaimed: dict[Any, _Pending] = {}
        self.keys = itertools.count(1)
        self._served = server.served_flag()
        #: Plain requests (answer()) waiting, by key; their deadlines, soonest first
        #: (entries of answered ones are dropped when they come up, or in a rebuild).
        self.quick: dict[int, _Quick] = {}
        self._deadlines: list[tuple[float, int]] = []
        self._deadline_timer: asyncio.TimerHandle | None = None
        self._deadline_at = math.inf
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = math.inf
        self._soon = False
        self.closed = False
        #: Called after every pass, while alive (async observations: whether they
        #: ended); weakly held.
        self.watchers: set[weakref.WeakMethod[Callable[[], None]]] = set()
        #: Called with what a handler raised (no caller to re-raise it to).
        self.on_error: Callable[[BaseException], None] = self._report
        exchanges.on_session_end.append(self._session_ended)
        self._dues = tuple(due for due, _, _ in loop.hooks)  # (the hooks' containers)
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
            next_ms = _io_poll(loop.ptr, self._served, _PASSES)
        finally:
            loop.in_io = False
        if _any(loop.watched) or loop.close_requested or loop.error is not None:
            try:
                loop.after_io()  # (only when it has something to do: Loop.io's test)
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
        if _any(self._dues):
            for due, _, every in self.loop.hooks:
                if due and every < delay:
                    delay = every
        if self.unclaimed:
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
        """Complete the requests whose claims the pass settled, and look at the
        claim-less ones (a CSM wait)."""
        # (A scan of the claims' states: with 64 requests in flight it costs no more than
        # a list of the settled ones kept in C, which was tried and measured.)
        quick = self.quick
        if quick:
            for key in [k for k, q in quick.items() if q.claim.ptr.state]:
                self._settle(quick.pop(key))
        if self.claimed:
            for pending in [p for p in self.claimed.values() if p.settled()]:
                pending.poll()
        if self.unclaimed:
            for pending in list(self.unclaimed.values()):
                pending.poll()

    # -- requests -------------------------------------------------------------------------

    async def answer(
        self, session: Session, claim: Claim, mid: int, started: float, wait: float
    ) -> Response:
        """Await the answer of a plain request (``send_plain``: sent with ``claim``, no
        pass, no exchange yet). An answer is taken from the claim; a NACK, the
        deadline (``started`` + ``wait``) or a cancellation go the engine's way
        (``_slow``), as a blocking request's do."""
        entry = _Quick(session, claim, mid, started, wait, self.aloop.create_future())
        tag = next(self.keys)
        self.quick[tag] = entry
        deadline = started + wait
        deadlines = self._deadlines
        heapq.heappush(deadlines, (deadline, tag))
        if len(deadlines) > 2 * len(self.quick) + 1024:  # mostly answered ones: rebuild
            self._prune_deadlines()
        if deadline < self._deadline_at:
            self._arm_deadlines(deadline)
        if not _SEND_ARMS_TIMER:
            self.soon()
        try:
            return await entry.future
        except asyncio.CancelledError:
            if self.quick.pop(tag, None) is not None:
                waiting = self._slow(entry)
                assert waiting.exchange is not None
                self.exchanges.abandon(waiting.exchange)  # a late answer goes nowhere
            raise

    def _settle(self, entry: _Quick) -> None:
        """A plain request's claim was settled: an answer, or a NACK."""
        future, claim = entry.future, entry.claim
        if future.done():  # (cancelled meanwhile)
            return
        if claim.ptr.state == 1:
            try:
                response = self.exchanges.take(claim)
            except BaseException as error:  # (a rejected response)
                future.set_exception(error)
            else:
                future.set_result(response)
            return
        self._finish_slow(entry)

    def _session_ended(self, session: object, error: BaseException) -> None:
        """The session closed, or was replaced: its plain requests fail with ``error``
        (their claims are for the old C session)."""
        quick = self.quick
        for tag in [t for t, q in quick.items() if q.session is session]:
            entry = quick.pop(tag)
            self.exchanges.retire(entry.claim)
            if not entry.future.done():
                entry.future.set_exception(error)
        # Requests that wait on an exchange fail once the engine has failed it (after
        # this hook): look at them at the event loop's next turn.
        if any(p.waiting.session is session for p in self._pendings()):
            self.aloop.call_soon(self._poll_session, session)

    def _pendings(self) -> list[_Pending]:
        return [*self.claimed.values(), *self.unclaimed.values()]

    def _poll_session(self, session: object) -> None:
        for pending in self._pendings():
            if pending.waiting.session is session:
                pending.poll()

    def settle_all(self) -> None:
        """After the Context closed: every request still waiting learns its fate."""
        for pending in self._pendings():
            pending.poll()

    def _slow(self, entry: _Quick) -> Waiting:
        return plain_waiting(entry.session, entry.claim, entry.mid, entry.wait, entry.started)

    def _finish_slow(self, entry: _Quick) -> None:
        """A NACK or the deadline: through the exchange, as the blocking request."""
        waiting = self._slow(entry)
        exchange = waiting.exchange
        assert exchange is not None
        try:
            until = waiting.poll()
        except BaseException as error:
            self.exchanges.finish(exchange)
            entry.future.set_exception(error)
            return
        if until is not None:  # (not over after all: wait on, as a step)
            pending = _Pending(self, waiting)
            pending.future = entry.future
            pending.arm(until)
            pending.on_done = lambda: self.exchanges.finish(exchange)
            return
        self.exchanges.finish(exchange)
        if exchange.error is not None:
            entry.future.set_exception(exchange.error)
        else:
            assert exchange.response is not None
            entry.future.set_result(exchange.response)

    def _prune_deadlines(self) -> None:
        """Drop the deadlines of answered requests (kept until they come up)."""
        quick = self.quick
        self._deadlines[:] = [(at, tag) for at, tag in self._deadlines if tag in quick]
        heapq.heapify(self._deadlines)

    def _arm_deadlines(self, at: float) -> None:
        if self._deadline_timer is not None:
            self._deadline_timer.cancel()
        self._deadline_at = at
        delay = max(0.0, at - _monotonic())
        self._deadline_timer = self.aloop.call_at(self.aloop.time() + delay, self._expire)

    def _expire(self) -> None:
        """Plain requests whose deadline passed fail as a blocking request's would."""
        self._deadline_timer = None
        self._deadline_at = math.inf
        deadlines, quick = self._deadlines, self.quick
        now = _monotonic()
        while deadlines and deadlines[0][0] <= now:
            _, tag = heapq.heappop(deadlines)
            entry = quick.pop(tag, None)
            if entry is not None:
                self._finish_slow(entry)
        if len(deadlines) > 2 * len(quick) + 64:
            self._prune_deadlines()
        if deadlines:
            self._arm_deadlines(deadlines[0][0])

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
        if self._deadline_timer is not None:
            self._deadline_timer.cancel()
            self._deadline_timer = None
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

    __slots__ = ("claim", "driver", "future", "key", "on_done", "table", "timer", "waiting")

    def __init__(self, driver: Driver, waiting: Waiting) -> None:
        self.driver = driver
        self.waiting = waiting
        self.future: asyncio.Future[Any] = driver.aloop.create_future()
        self.timer: asyncio.TimerHandle | None = None
        self.on_done: Callable[[], None] | None = None
        exchange = waiting.exchange
        self.claim = None if exchange is None else exchange.claim
        if self.claim is not None:
            key: Any = next(driver.keys)
            self.table: dict[Any, _Pending] = driver.claimed
        else:
            key = self
            self.table = driver.unclaimed
        self.key = key
        self.table[key] = self

    def settled(self) -> bool:
        """Whether its claim holds an answer or a NACK."""
        claim = self.claim
        return claim is not None and bool(claim.ptr.state)

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
            if self.on_done is not None:
                self.on_done()
            future.set_exception(error)
            return
        if until is None:
            self.close()
            if self.on_done is None:
                future.set_result(None)
            else:
                self.on_done()  # (a plain request's: its outcome is its exchange's)
                exchange = self.waiting.exchange
                assert exchange is not None
                if exchange.error is not None:
                    future.set_exception(exchange.error)
                else:
                    future.set_result(exchange.response)
        elif self.timer is None or self.timer.when() > until + 0.5:
            if self.timer is not None:
                self.timer.cancel()
            self.arm(until)

    def close(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        self.table.pop(self.key, None)


class _Quick:
    """A plain request waiting for its claim (Driver.answer)."""

    __slots__ = ("claim", "future", "mid", "session", "started", "wait")

    def __init__(
        self,
        session: Session,
        claim: Claim,
        mid: int,
        started: float,
        wait: float,
        future: asyncio.Future[Response],
    ) -> None:
        self.session = session
        self.claim = claim
        self.mid = mid
        self.started = started
        self.wait = wait
        self.future = future
