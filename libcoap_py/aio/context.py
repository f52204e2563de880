"""The async Context: a libcoap context whose I/O runs on the running asyncio loop."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence
from typing import Any, Callable, TypeVar

from ..context import Context as _BlockingContext
from ..context import engine_of
from ..dtls import PKI, PSK
from ..errors import CoapError
from ..server.serving import Endpoint, MethodSpec, RequestHandler, Resource
from ._driver import Driver
from .session import Session

__all__ = ["Context"]

R = TypeVar("R", bound=RequestHandler)


class Context:
    """A libcoap context driven by the running asyncio event loop.

    Make it inside a coroutine (``async with aio.Context() as ctx:``): it belongs
    to that loop and its thread. It runs libcoap's I/O whenever libcoap's
    descriptor is readable or one of its timers is due, so requests, observations
    and served resources make progress while the loop runs other tasks; there is
    no ``run()`` to call.

    ``client_session()`` gives a :class:`~libcoap_py.aio.Session` whose
    ``request()`` and ``observe()`` are awaited. Resources are served as with the
    blocking Context (``add_endpoint()``, ``resource()``), and their handlers may be
    ``async def`` coroutines: one that awaits gets an empty ACK sent at once, and
    its response follows when it returns.

    ``blocking`` is the underlying :class:`libcoap_py.Context`, for what this class
    does not repeat (``register_option``, ``keepalive``, handlers of raw PDUs);
    do not call its ``run()``/``run_once()``.
    """

    def __init__(self) -> None:
        try:
            aloop = asyncio.get_running_loop()
        except RuntimeError:
            raise CoapError(
                "make an aio.Context inside a coroutine: it belongs to the running event loop"
            ) from None
        self.blocking = _BlockingContext()
        loop, exchanges, server = engine_of(self.blocking)
        try:
            self._driver = Driver(loop, exchanges, server, aloop)
        except BaseException:
            self.blocking.close()
            raise
        self._loop = aloop
        self._sessions: dict[Any, Session] = {}

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The event loop it runs on."""
        return self._loop

    @property
    def closed(self) -> bool:
        return self.blocking.closed

    # -- client ---------------------------------------------------------------------------

    def client_session(
        self,
        uri: str,
        dtls: PKI | PSK | None = None,
        local: str | None = None,
        *,
        server_name: str | None = None,
    ) -> Session:
        """A session to the server in ``uri``: as ``libcoap_py.Context.client_session``
        (the same arguments, checks and errors), with awaited requests. Over
        ``coaps://`` the handshake starts at once and goes on in the event loop."""
        session = Session(
            self.blocking.client_session(uri, dtls, local, server_name=server_name),
            self._driver,
        )
        self._driver.soon()  # (a handshake's first timer is armed in a pass)
        return session

    # -- server ---------------------------------------------------------------------------

    def add_endpoint(
        self, uri: str, dtls: PKI | PSK | Sequence[PKI | PSK] | None = None
    ) -> Endpoint:
        """Listen on ``uri``: as ``libcoap_py.Context.add_endpoint``."""
        return self.blocking.add_endpoint(uri, dtls)

    @property
    def endpoints(self) -> list[Endpoint]:
        return self.blocking.endpoints

    def resource(
        self,
        path: str,
        methods: MethodSpec | Iterable[MethodSpec] = ("GET",),
        *,
        observable: bool = False,
        confirmable_notifications: bool = False,
    ) -> Callable[[R], R]:
        """Decorator: serve ``methods`` at ``path`` with ``handler(request, response)``,
        which may be an ``async def`` coroutine function (see the class). As
        ``libcoap_py.Context.resource``."""
        return self.blocking.resource(
            path,
            methods,
            observable=observable,
            confirmable_notifications=confirmable_notifications,
        )

    @property
    def resources(self) -> dict[str, Resource]:
        """The resources, by path."""
        return self.blocking.resources

    # -- threads --------------------------------------------------------------------------

    def call_soon_threadsafe(self, callback: Callable[..., object], *args: Any) -> None:
        """Run ``callback(*args)`` on the event loop's thread (any thread may call)."""
        self._loop.call_soon_threadsafe(callback, *args)

    # -- lifetime -------------------------------------------------------------------------

    def close(self) -> None:
        """Close the sessions (waiting requests fail with CoapError) and free libcoap's
        context. From the event loop's thread; idempotent."""
        if self.blocking.closed:
            return
        self._driver.close()  # (no more passes)
        self.blocking.close()  # the sessions end: their requests fail
        self._driver.settle_all()

    async def __aenter__(self) -> Context:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self.closed else "open"
        return f"<aio.Context {state}>"
