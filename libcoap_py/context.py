"""Context: libcoap's coap_context_t, its sessions, its I/O loop and the handlers.

A Context is composed of parts, each with its own module: the ``Loop``
(``_loop.py``), the exchange engine (``_exchange.py``), the ``Dispatch`` of
libcoap's callbacks (``_dispatch.py``), the DTLS ``Credentials``
(``_credentials.py``) and the ``Server`` (``server/serving.py``). The Context
itself is the public face: it makes client sessions, and hands the server's
methods on.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any, Callable, TypeVar

from ._binding import ffi, lib
from ._credentials import Credentials
from ._dispatch import Dispatch, EventHandler, NackHandler, ResponseHandler
from ._exchange import Exchanges
from ._loop import Loop
from .capabilities import BACKEND
from .client.session import Session
from .dtls import PKI, PSK
from .errors import CoapError, NotSupportedError, check
from .library import check_transport
from .log import flush_log_summaries
from .options import REGISTRY
from .pdu import Option
from .server.serving import Endpoint, MethodSpec, RequestHandler, Resource, Server
from .uri import parse_local, parse_uri, resolve

__all__ = ["Context", "EventHandler", "NackHandler", "ResponseHandler", "engine_of"]

if TYPE_CHECKING:
    from typing_extensions import TypeVarTuple, Unpack

    from ._handoff import Handoff

    Ts = TypeVarTuple("Ts")

_get_ident = threading.get_ident
_can_exit = lib.coap_can_exit

RH = TypeVar("RH", bound=ResponseHandler)
NH = TypeVar("NH", bound=NackHandler)
EH = TypeVar("EH", bound=EventHandler)
R = TypeVar("R", bound=RequestHandler)


class Context:
    """A libcoap context: owns sessions, runs the I/O loop, dispatches to handlers.

    Use it as a context manager or call ``close()`` (idempotent). A Context
    and its sessions belong to the thread that made it.
    """

    def __init__(self) -> None:
        self._ptr: Any = None
        self._sessions: set[Session] = set()
        self._keepalive = 0
        self._registered: set[int] = set()
        self._exchanges = Exchanges()
        self._credentials = Credentials()
        self.closed = False
        # The context's app data points at the Dispatch, which needs the loop, which
        # needs the context: it is set once both exist (no callback comes before).
        ptr = check(
            lib.lcp_new_context(ffi.NULL),
            "libcoap could not create a context (coap_new_context failed)",
        )
        self._ptr = ptr
        loop = self._loop = Loop(ptr, self.close)
        self._server = Server(self, loop, self._exchanges, self._credentials)
        dispatch = Dispatch(
            loop, self._exchanges, self._server, self._credentials, self._registered
        )
        self._dispatch = dispatch
        self._handle = ffi.new_handle(dispatch)
        lib.coap_set_app_data(ptr, self._handle)
        # After each pass, what the parts have due (hooks of the Loop, run only when
        # their container has work): delayed responses awaiting their ACK, client DTLS
        # sessions whose DTLS_CONNECTED the Context raises, server sessions to sweep
        # (libcoap 4.2 frees them without an event), observations' ticks.
        server = self._server
        loop.add_hook(server.delayed.awaiting, server.delayed.check, 0.05)
        loop.add_hook(dispatch.connect_watch, dispatch.report_connected, 0.05)
        loop.add_hook(server.sweep_due, server.sweep, 1.0)
        loop.add_hook(self._exchanges.ticks, self._tick, 1.0)

    def _tick(self) -> None:
        for tick in list(self._exchanges.ticks.values()):
            tick()

    def _enter(self) -> Any:
        return self._loop.enter()

    def _accept_options(self, options: list[Option]) -> None:
        """Register unknown critical option numbers a request carries, so that the
        4.02 answer echoing them is not dropped by libcoap as unparseable."""
        for number, _ in options:
            if number & 1 and number not in REGISTRY and number not in self._registered:
                lib.lcp_register_option(self._ptr, number)
                self._registered.add(number)

    def register_option(self, number: int) -> None:
        """Accept responses carrying critical option ``number``, unknown to libcoap.

        RFC 7252 (5.4.1) has a client reject a response with a critical option
        it does not recognise: libcoap 4.3 drops it (``request()`` then times
        out), and on 4.2 ``request()`` raises ``CriticalOptionError``.
        Registering the number, as a C client does with ``coap_register_option``,
        lets such responses through. Requests register the critical numbers they
        send themselves, so a 4.02 naming them arrives.
        """
        if not isinstance(number, int) or not 0 <= number <= 0xFFFF:
            raise ValueError(f"an option number is an int 0..65535, not {number!r}")
        ctx = self._enter()
        if number not in self._registered:
            lib.lcp_register_option(ctx, number)
            self._registered.add(number)

    @property
    def ptr(self) -> Any:
        """The ``coap_context_t *`` for raw ``coap.lib`` calls."""
        return self._enter()

    # -- settings ---------------------------------------------------------------------------

    @property
    def keepalive(self) -> int:
        """Seconds of silence after which libcoap pings the peer (0: never)."""
        return self._keepalive

    @keepalive.setter
    def keepalive(self, seconds: int) -> None:
        if seconds < 0:
            raise ValueError("keepalive must be >= 0 seconds")
        lib.coap_context_set_keepalive(self._enter(), int(seconds))
        self._keepalive = int(seconds)

    # -- handlers ---------------------------------------------------------------------------

    def register_response_handler(self, handler: RH) -> RH:
        """``handler(session, sent, received, mid)`` for responses to PDUs sent with ``send()``."""
        self._dispatch.response_handler = handler
        return handler

    def register_nack_handler(self, handler: NH) -> NH:
        """``handler(session, sent, reason, mid)`` when libcoap gives up on a sent PDU."""
        self._dispatch.nack_handler = handler
        return handler

    def register_event_handler(self, handler: EH) -> EH:
        """``handler(session, event)`` for session events (DTLS connected, closed, ...)."""
        self._dispatch.event_handler = handler
        return handler

    # -- sessions ---------------------------------------------------------------------------

    def client_session(
        self,
        uri: str,
        dtls: PKI | PSK | None = None,
        local: str | None = None,
        *,
        server_name: str | None = None,
    ) -> Session:
        """A session to the server in ``uri`` (``coap://`` or ``coaps://`` with ``dtls``).

        ``local`` binds the local side, e.g. ``"0.0.0.0"`` or ``"[::]:40000"``.

        With a ``PKI``, the server's certificate must be for the URI's host (see
        ``PKI``'s ``check_hostname``), or for ``server_name`` when given: for a URI
        that holds an address while the certificate names the host, as in
        ``client_session("coaps://192.0.2.7", pki, server_name="data.example")``.
        """
        loop = self._loop
        loop.enter()
        parsed = parse_uri(uri)
        check_transport(parsed.proto)
        if parsed.secure:
            if dtls is None:
                raise ValueError(f"{parsed.scheme}:// needs dtls=coap.PKI(...) or coap.PSK(...)")
            if not isinstance(dtls, (PKI, PSK)):
                raise TypeError("dtls must be a coap.PKI or a coap.PSK")
        elif dtls is not None:
            raise ValueError(f"dtls= given for a {parsed.scheme}:// URI; use a coaps scheme")
        if server_name is not None and not isinstance(dtls, PKI):
            raise ValueError(
                "server_name= is the name checked in the server's certificate: it needs "
                "dtls=coap.PKI(...)"
            )
        check = dtls.peer_check(parsed.host, server_name) if isinstance(dtls, PKI) else None

        family, ip = resolve(parsed.host, parsed.port)
        server = ffi.new("coap_address_t *")
        if not lib.lcp_address_set(server, ip.encode(), parsed.port):
            raise ValueError(f"cannot use address {ip!r} of {parsed.host!r}")
        local_addr = ffi.NULL
        if local is not None:
            host, port = parse_local(local)
            _, local_ip = resolve(host, port, family)
            local_addr = ffi.new("coap_address_t *")
            if not lib.lcp_address_set(local_addr, local_ip.encode(), port):
                raise ValueError(f"cannot use local address {local!r}")

        keep: list[Any] = []
        credentials = self._credentials
        proto = int(parsed.proto)
        if isinstance(dtls, PSK):
            identity, key = dtls._client_credentials()
            if dtls.client_sni and not lib.LCP_HAS_PSK_CLIENT_SNI:
                raise NotSupportedError("PSK with client_sni needs libcoap 4.3")
            if b"\0" in identity and not lib.LCP_HAS_BINARY_PSK_IDENTITY:
                raise NotSupportedError("a PSK identity with NUL bytes needs libcoap 4.3")
            keep.extend((identity, key))
            sni = ffi.new("char[]", dtls.client_sni.encode()) if dtls.client_sni else ffi.NULL
            keep.append(sni)
            credentials.refuse_mix("PSK", server=False)
            credentials.had_psk = True

            def connect() -> Any:
                return lib.lcp_client_session_psk(
                    loop.enter(), local_addr, server, proto, identity, len(identity),
                    key, len(key), sni,
                )  # fmt: skip
        elif isinstance(dtls, PKI):
            credentials.refuse_mix("PKI", server=False)
            if credentials.server_pki is not None:
                raise NotSupportedError(
                    "this Context serves coaps:// with a certificate; libcoap keeps one "
                    "certificate setup per Context, so a client certificate session would "
                    "replace the server's. Use a separate Context for the client."
                )
            credentials.client_pki_used = True
            if dtls.root_cas is not None:
                credentials.set_root_cas(loop.ptr, dtls.root_cas)
            setup, buffers = dtls._setup(check)
            keep.extend(buffers)

            def connect() -> Any:
                return lib.lcp_client_session_pki(loop.enter(), local_addr, server, proto, setup)
        else:

            def connect() -> Any:
                return lib.lcp_client_session(loop.enter(), local_addr, server, proto)

        ptr = connect()
        if ptr == ffi.NULL:
            where = f" from {local}" if local else ""
            raise CoapError(
                f"libcoap could not create a session to {parsed}{where} "
                "(see the 'libcoap' logger for why)"
            )
        session = Session(
            self, loop, self._exchanges, ptr, parsed, keep, connect, self._accept_options,
            self._sessions.discard,
        )  # fmt: skip
        self._sessions.add(session)
        if dtls is not None and not BACKEND.raises_client_connected:
            self._dispatch.connect_watch[session] = None
        return session

    @property
    def sessions(self) -> list[Session]:
        """The open sessions."""
        return list(self._sessions)

    # -- the loop ---------------------------------------------------------------------------

    def run_once(self, timeout_ms: int | None = 1000) -> int:
        """Do one round of I/O: wait up to ``timeout_ms`` for traffic or timers, handle it.

        ``0`` polls without waiting; ``None`` waits until something happens.
        (In C, ``coap_run_once(ctx, 0)`` waits without bound; here 0 means poll.)
        Re-raises the first exception a handler raised. Returns libcoap's result
        (milliseconds spent).
        """
        loop = self._loop
        if loop.owner != _get_ident() or loop.ptr is None:  # (Loop.owned, inline)
            loop.enter()  # raises
        if loop.dispatching:
            raise CoapError("run_once() cannot be called from inside a handler")
        if timeout_ms is None:
            wait = -1
        else:
            wait = timeout_ms if timeout_ms.__class__ is int else int(timeout_ms)
            if wait < 0:
                raise ValueError("timeout_ms must be >= 0, or None to wait for activity")
        return loop.io(wait)

    def call_soon_threadsafe(
        self, callback: Callable[[Unpack[Ts]], object], *args: Unpack[Ts]
    ) -> None:
        """Run ``callback(*args)`` on this Context's thread, at the loop's next pass.

        The one method of a Context that any thread may call. It wakes the loop
        at once (``run()``, ``run_once()``, a waiting ``request()``), so another
        thread can hand results back without waiting for a timeout. Callbacks run
        in the order they were given. What a callback raises is re-raised by the
        loop, as a handler's is. Raises ``CoapError`` once the Context is closed
        (callbacks still queued then never run).
        """
        self._handoff().submit(callback, args)

    def call_soon(self, callback: Callable[[Unpack[Ts]], object], *args: Unpack[Ts]) -> None:
        """Run ``callback(*args)`` on this Context's thread after the current I/O pass
        (from a handler: once the pass that called it is over; else at the next
        ``run_once()``/``run()`` pass). From the Context's thread only; other threads
        use :meth:`call_soon_threadsafe`. A handler uses it to gather work of many
        requests into one step."""
        self._enter()
        self._handoff().later(callback, args)

    def add_reader(
        self, fd: int | Any, callback: Callable[[Unpack[Ts]], object], *args: Unpack[Ts]
    ) -> None:
        """Run ``callback(*args)`` on this Context's thread after each I/O pass in which
        ``fd`` (a descriptor, or an object with ``fileno()``) has data to read.

        Data arriving on ``fd`` ends the loop's wait at once, as traffic does, so
        the loop can serve a pipe or a socket from another process (the data
        service's storage process) without a thread. The callback should read
        until the descriptor would block: it runs again only after a pass, and
        the wait ends only for new data. A blocking ``request()`` on this Context
        runs the callbacks when it returns. Replaces an earlier callback for
        ``fd``. From the Context's thread only; what the callback raises is
        re-raised by the loop.
        """
        self._enter()
        self._handoff().add_reader(_fileno(fd), callback, args)

    def remove_reader(self, fd: int | Any) -> bool:
        """Stop watching ``fd`` (:meth:`add_reader`); False if it was not watched. Close
        a descriptor only after removing it."""
        self._enter()
        return self._handoff().remove_reader(_fileno(fd))

    def can_exit(self) -> bool:
        """True when libcoap has nothing left to send or retransmit."""
        loop = self._loop
        if loop.owner != _get_ident() or loop.ptr is None:
            loop.enter()  # raises
        return bool(_can_exit(loop.ptr))

    def _handoff(self) -> Handoff:
        return self._loop.handoff

    # -- serving (the Server's, handed on) ---------------------------------------------------

    def add_endpoint(
        self, uri: str, dtls: PKI | PSK | Sequence[PKI | PSK] | None = None
    ) -> Endpoint:
        """Listen on ``coap://HOST:PORT`` or ``coaps://HOST:PORT`` (with ``dtls``).

        ``dtls`` is a PKI, a PSK, or both in a list: clients may then use either.
        (libcoap keeps one certificate and one PSK setup per Context: they apply
        to all its coaps:// endpoints.) Port 0 picks a free port (``Endpoint.port``,
        ``Endpoint.uri``). Raises ``ValueError`` for a bad URI and ``OSError`` when
        the address cannot be bound: ``errno.EADDRINUSE`` when another socket (of any
        process, or another Context) holds it, for every transport.
        """
        return self._server.add_endpoint(uri, dtls)

    @property
    def endpoints(self) -> list[Endpoint]:
        """The listening endpoints."""
        return list(self._server.endpoints)

    def add_resource(self, path: str) -> Resource:
        """A resource at ``path`` (``""`` is the root); add handlers with ``handle()``."""
        return self._server.add_resource(path)

    def resource(
        self,
        path: str,
        methods: MethodSpec | Iterable[MethodSpec] = ("GET",),
        *,
        observable: bool = False,
        confirmable_notifications: bool = False,
    ) -> Callable[[R], R]:
        """Decorator: the function handles ``methods`` at ``path``.

        ``ctx.resources[path]`` is the Resource (``notify()`` when it changes).
        """
        return self._server.resource(
            path,
            methods,
            observable=observable,
            confirmable_notifications=confirmable_notifications,
        )

    def remove_resource(self, path: str) -> None:
        """Remove the resource at ``path`` (KeyError if there is none)."""
        self._server.remove_resource(path)

    @property
    def resources(self) -> dict[str, Resource]:
        """The resources, by path."""
        return dict(self._server.resources)

    def set_unknown_handler(
        self, handler: RequestHandler, methods: MethodSpec | Iterable[MethodSpec] = ("PUT",)
    ) -> None:
        """Let ``handler`` answer requests for paths that have no resource."""
        self._server.set_unknown_handler(handler, methods)

    def unknown_resource(
        self, methods: MethodSpec | Iterable[MethodSpec] = ("PUT",)
    ) -> Callable[[R], R]:
        """Decorator form of ``set_unknown_handler``."""
        return self._server.unknown_resource(methods)

    def run(self, timeout: float | None = None, *, handle_signals: bool = False) -> None:
        """Serve until ``stop()`` (or for at most ``timeout`` seconds).

        With ``handle_signals`` (main thread only), SIGINT and SIGTERM call
        ``stop()``, so Ctrl-C ends ``run()`` normally.
        """
        self._server.run(timeout, handle_signals=handle_signals)

    def stop(self) -> None:
        """Make ``run()`` return after the current pass. Safe from handlers, signal
        handlers and other threads."""
        self._server.stopping = True

    # -- lifetime ---------------------------------------------------------------------------

    def close(self) -> None:
        """Free the context, its sessions and unsent PDUs. Idempotent.

        Every Session and PDU that pointed into it raises ``CoapError`` afterwards.
        """
        loop = self._loop
        if loop.ptr is None:
            return
        loop.enter_for_close()
        if loop.in_io:
            # Called from a handler: libcoap is still using the context.
            loop.close_requested = True
            for session in list(self._sessions):
                session._detach(CoapError("the Context was closed"))
            return
        self._free()
        flush_log_summaries(force=True)

    def _free(self) -> None:
        loop = self._loop
        self.closed = True
        for session in list(self._sessions):
            session._detach(CoapError("the Context was closed"))
        self._server.close()
        ptr = loop.free()
        self._ptr = None
        lib.coap_free_context(ptr)

    def __enter__(self) -> Context:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        loop = getattr(self, "_loop", None)
        if loop is not None and loop.ptr is not None and not loop.in_io:
            try:
                self._free()
            except Exception:
                pass

    def __repr__(self) -> str:
        state = "closed" if self._ptr is None else f"{len(self._sessions)} sessions"
        return f"<Context {state}>"


def engine_of(context: Context) -> tuple[Loop, Exchanges, Server]:
    """The parts of ``context`` an event loop drives (``libcoap_py.aio``): its Loop,
    its exchange table and its serving side. An internal interface."""
    return context._loop, context._exchanges, context._server


def _fileno(fd: int | Any) -> int:
    """A descriptor number from an int or an object with ``fileno()``."""
    number = fd if isinstance(fd, int) else fd.fileno()
    if not isinstance(number, int) or not number >= 0:
        raise ValueError(f"not a file descriptor: {fd!r}")
    return number
