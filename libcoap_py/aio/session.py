"""The async Session: awaited requests and async observations, on the exchange engine."""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import weakref
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from ..client.blockwise import ProgressCallback
from ..client.session import Session as _BlockingSession
from ..client.session import request_steps, send_plain, transmit_wait
from ..codes import Code, ContentFormat, Proto
from ..pdu import OptionValue, Response
from ..uri import URI

if TYPE_CHECKING:
    from ..client.observe import Observation as _BlockingObservation
    from ._driver import Driver

__all__ = ["Observation", "Session"]


class Session:
    """A client session with one peer, whose requests are awaited. Made by
    ``aio.Context.client_session()``.

    ``await session.request(...)`` takes the arguments of the blocking
    ``Session.request()`` and gives the same results and exceptions. Many
    requests may be in flight at once, from many tasks. Cancelling the awaiting
    task (``asyncio.timeout()``, ``wait_for``) abandons the exchange: a late
    answer is acknowledged and dropped.

    ``blocking`` is the underlying :class:`libcoap_py.Session` (properties,
    ``new_pdu()``/``send()`` for raw PDUs); do not call its blocking ``request()``
    from the event loop.
    """

    def __init__(self, blocking: _BlockingSession, driver: Driver) -> None:
        self.blocking = blocking
        self._driver = driver

    @property
    def uri(self) -> URI:
        return self.blocking.uri

    @property
    def proto(self) -> Proto:
        return self.blocking.proto

    @property
    def closed(self) -> bool:
        return self.blocking.closed

    @property
    def established(self) -> bool:
        """True once the session is usable (for coaps://: the DTLS handshake is done)."""
        return self.blocking.established

    @property
    def renewals(self) -> int:
        """How often a failed C session was replaced behind this Session."""
        return self.blocking.renewals

    async def request(
        self,
        method: str | Code | int,
        path: str = "",
        payload: bytes | bytearray | memoryview | str = b"",
        *,
        query: str | Iterable[str] | None = None,
        options: Iterable[tuple[int, OptionValue]] = (),
        content_format: ContentFormat | int | None = None,
        accept: ContentFormat | int | None = None,
        confirmable: bool = True,
        timeout: float | None = None,
        block_size: int | None = None,
        token: bytes | None = None,
        progress: ProgressCallback | None = None,
    ) -> Response:
        """Send a request and await its response: as the blocking
        ``Session.request()`` (the same arguments, results and exceptions), while the
        event loop runs other tasks."""
        if (
            query is None
            and not options
            and content_format is None
            and accept is None
            and block_size is None
            and token is None
        ):
            blocking = self.blocking
            sent = send_plain(blocking, method, path, payload, confirmable)
            if sent is not None:
                claim, mid, started = sent
                wait = timeout if timeout is not None else transmit_wait(blocking)
                response = await self._driver.answer(blocking, claim, mid, started, wait)
                if progress is not None:
                    progress(len(response.payload), len(response.payload))
                return response
        steps = request_steps(
            self.blocking,
            (
                method, path, payload, query, options, content_format, accept, confirmable,
                timeout, block_size, token, progress,
            ),
        )  # fmt: skip
        result: Response = await self._driver.drive(steps)
        return result

    def submit(
        self, method: str | Code | int, path: str = "", payload: Any = b"", **kwargs: Any
    ) -> concurrent.futures.Future[Response]:
        """From another thread: run ``request(method, path, payload, **kwargs)`` on the
        event loop, and return a ``concurrent.futures.Future`` of its response (its
        ``result(timeout)`` waits). Any thread may call it."""
        return asyncio.run_coroutine_threadsafe(
            self.request(method, path, payload, **kwargs), self._driver.aloop
        )

    def observe(
        self,
        path: str = "",
        *,
        query: str | Iterable[str] | None = None,
        options: Iterable[tuple[int, OptionValue]] = (),
        accept: ContentFormat | int | None = None,
        timeout: float | None = None,
        confirmable: bool = True,
        token: bytes | None = None,
    ) -> Observation:
        """Observe a resource (RFC 7641): ``async for notification in
        session.observe(path):`` gets the first response, then each notification, until
        the server ends it, ``timeout`` seconds pass, or the loop is left (which
        deregisters). As the blocking ``Session.observe()`` otherwise."""
        return Observation(
            self, self._driver, path, query=query, options=options, accept=accept,
            timeout=timeout, confirmable=confirmable, token=token,
        )  # fmt: skip

    def close(self) -> None:
        """Release the session; requests still waiting fail with CoapError."""
        self.blocking.close()

    async def __aenter__(self) -> Session:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self.closed else "open"
        return f"<aio.Session {self.uri} {state}>"


class Observation:
    """An observation, iterated with ``async for`` (``aio.Session.observe()``).

    Each iteration gives the next notification (the first response first). The
    iteration ends when the server ends the observation (an error response, or one
    without Observe), or after ``timeout``; a failure (RST, a closed session)
    raises. Leaving the loop cancels it (the server is told): by an exception at
    once, by ``break`` once the observation is dropped (at once in CPython, for
    ``async for n in session.observe(...)``). ``async with session.observe(...) as
    obs:`` and ``cancel()`` cancel it explicitly.
    """

    def __init__(self, session: Session, driver: Driver, path: str, **kwargs: Any) -> None:
        self.session = session
        self._driver = driver
        self._queue: collections.deque[Response] = collections.deque()
        self._waiter: asyncio.Future[None] | None = None
        aloop = driver.aloop
        timeout = kwargs.pop("timeout")
        self._deadline = None if timeout is None else aloop.time() + timeout
        # The Context's parts hold this object only weakly, so that leaving an ``async
        # for`` (dropping the last reference) cancels it at once (__del__).
        me = weakref.ref(self)

        def deliver(response: Response) -> None:
            observation = me()
            if observation is not None:
                observation._deliver(response)

        self._blocking: _BlockingObservation = session.blocking.observe(path, deliver, **kwargs)
        self._watch = weakref.WeakMethod(self._look)
        driver.watchers.add(self._watch)

    @property
    def active(self) -> bool:
        return self._blocking.active

    @property
    def reregistrations(self) -> int:
        """How often it registered again after the server fell silent."""
        return self._blocking.reregistrations

    def _deliver(self, response: Response) -> None:
        self._queue.append(response)
        self._wake()

    def _look(self) -> None:
        """After a pass: wake the iteration when the observation ended."""
        if not self._blocking.active:
            self._wake()

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def __aiter__(self) -> Observation:
        return self

    async def __anext__(self) -> Response:
        blocking = self._blocking
        try:
            while True:
                if self._queue:
                    return self._queue.popleft()
                error = blocking.error
                if error is not None:
                    blocking.error = None
                    raise error
                if not blocking.active:
                    raise StopAsyncIteration
                aloop = self._driver.aloop
                waiter = self._waiter = aloop.create_future()
                timer = None
                if self._deadline is not None:
                    if aloop.time() >= self._deadline:
                        raise StopAsyncIteration
                    timer = aloop.call_at(self._deadline, self._wake)
                try:
                    await waiter
                finally:
                    self._waiter = None
                    if timer is not None:
                        timer.cancel()
        except BaseException:
            await self.aclose()
            raise

    async def aclose(self) -> None:
        """Cancel the observation (deregister with the server). Idempotent."""
        self.cancel()

    def cancel(self) -> None:
        """Cancel the observation (deregister with the server), from the event loop's
        thread. Idempotent."""
        driver = self._driver
        driver.watchers.discard(self._watch)
        if self._blocking.active and not self.session.closed and driver.loop.owned:
            self._blocking.cancel()
            driver.soon()

    def __del__(self) -> None:
        if getattr(self, "_watch", None) is not None:
            try:
                self.cancel()
            except Exception:  # (the Context may be gone)
                pass

    async def __aenter__(self) -> Observation:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        state = "active" if self.active else "ended"
        return f"<aio.Observation {self.session.uri} {state}>"
