"""Context: libcoap's coap_context_t, its sessions, its I/O loop and the handlers."""

from __future__ import annotations

import os
import threading
import time
from typing import TYPE_CHECKING, Any, Callable, Optional, TypeVar, Union

from ._binding import ffi, lib
from ._handoff import Handoff
from .capabilities import BACKEND
from .client.observe import Observation
from .client.session import WAIT_SLICE_MS, ServerSession, Session, nack_error
from .codes import Event, NackReason
from .dtls import PKI, PSK
from .errors import IO_FAILED, CoapError, NotSupportedError, WrongThreadError, check
from .library import check_transport
from .log import flush_log_summaries, pending_summaries
from .options import REGISTRY, CriticalOptionError, unknown_critical_options
from .pdu import PDU, Option, Response, _OptionReader
from .server.delayed import DelayedResponses
from .server.serving import Endpoint, Resource, Serving
from .uri import parse_local, parse_uri, resolve

__all__ = ["Context", "EventHandler", "NackHandler", "ResponseHandler"]

if TYPE_CHECKING:
    from typing_extensions import TypeVarTuple, Unpack

    Ts = TypeVarTuple("Ts")

#: ``handler(session, sent, received, mid)``: ``sent`` is None when libcoap no longer
#: has it; returning False leaves the response unhandled (libcoap answers a CON with RST).
ResponseHandler = Callable[[Union[Session, None], Union[PDU, None], PDU, int], Optional[bool]]
#: ``handler(session, sent, reason, mid)``: a NackReason, or the int libcoap gave.
NackHandler = Callable[[Union[Session, None], Union[PDU, None], Union[NackReason, int], int], None]
#: ``handler(session, event)``: an Event, or the int libcoap gave.
EventHandler = Callable[[Union[Session, None], Union[Event, int]], None]
RH = TypeVar("RH", bound=ResponseHandler)
NH = TypeVar("NH", bound=NackHandler)
EH = TypeVar("EH", bound=EventHandler)

_DTLS_CONNECTED = int(Event.DTLS_CONNECTED)
_DTLS_ERROR = int(Event.DTLS_ERROR)
_ESTABLISHED = lib.COAP_SESSION_STATE_ESTABLISHED
_NULL = ffi.NULL
_get_ident = threading.get_ident
_borrowed = PDU._borrowed
_io_process = lib.lcp_io_process
_SERVER_SESSION_DEL = int(Event.SERVER_SESSION_DEL)
_SERVER_SESSION_EVENTS = bool(lib.LCP_HAS_SERVER_SESSION_EVENTS)
_DTLS_FAILURES = frozenset({int(Event.DTLS_ERROR), int(Event.SESSION_FAILED)})
# Events after which a client session may be disconnected (libcoap 4.3.2 and later
# also close its socket): the Session checks, and renews it, before its next use.
_SESSION_ENDINGS = frozenset(
    {
        int(Event.DTLS_ERROR),
        int(Event.DTLS_CLOSED),
        int(Event.TCP_CLOSED),
        int(Event.TCP_FAILED),
        int(Event.SESSION_CLOSED),
        int(Event.SESSION_FAILED),
    }
)
_LIBCOAP_DROPS_CRITICAL = bool(lib.LCP_DROPS_UNKNOWN_CRITICAL_RESPONSE)


class Context(Serving):
    """A libcoap context: owns sessions, runs the I/O loop, dispatches to handlers.

    Use it as a context manager or call ``close()`` (idempotent). A Context
    and its sessions belong to the thread that made it.
    """

    def __init__(self) -> None:
        self._owner = threading.get_ident()
        self._handle = ffi.new_handle(self)
        self._ptr: Any = None
        self._sessions: set[Session] = set()
        self._error: BaseException | None = None
        self._dispatching = 0
        self._in_io = False
        self._deferred_release: list[Any] = []
        self._close_requested = False
        self._response_handler: ResponseHandler | None = None
        self._nack_handler: NackHandler | None = None
        self._event_handler: EventHandler | None = None
        self._keepalive = 0
        self._had_psk = False
        self._registered: set[int] = set()
        self._observations: set[Observation] = set()  # the active ones, of all sessions
        self._client_pki_used = False
        # Client DTLS sessions whose DTLS_CONNECTED the Context raises itself (where
        # libcoap does not: BACKEND.raises_client_connected), each with the libcoap
        # session it was raised for in the current handshake (None: not yet).
        self._connect_watch: dict[Session, Any] = {}
        self._keep: list[Any] = []  # C buffers the context's DTLS setup points into
        self._endpoints: list[Endpoint] = []
        self._resources: dict[str, Resource] = {}
        self._unknown: Resource | None = None
        self._server_sessions: set[ServerSession] = set()
        self._stopping = False
        self._next_sweep = 0.0
        self._dtls_pki: PKI | None = None
        self._dtls_psk: PSK | None = None
        self._info = ffi.new("lcp_pdu_info_t *")
        self._reader = _OptionReader()
        self._waiters: list[tuple[Any, Any]] = []  # idle request waiters, for reuse
        self.closed = False
        ptr = check(
            lib.lcp_new_context(self._handle),
            "libcoap could not create a context (coap_new_context failed)",
        )
        self._ptr = ptr
        self._handoff = Handoff(lib.coap_context_get_coap_fd(ptr))
        self._delayed = DelayedResponses(self)

    # -- guards -----------------------------------------------------------------------------

    def _enter(self) -> Any:
        if self._owner != threading.get_ident():
            raise WrongThreadError(
                "this Context belongs to another thread; libcoap contexts are not thread-safe "
                "(make one Context per thread)"
            )
        if self._ptr is None:
            raise CoapError("the Context is closed")
        return self._ptr

    def _enter_for_close(self) -> None:
        if self._owner != threading.get_ident():
            raise WrongThreadError("close() must be called from the thread that made the Context")

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
        self._response_handler = handler
        return handler

    def register_nack_handler(self, handler: NH) -> NH:
        """``handler(session, sent, reason, mid)`` when libcoap gives up on a sent PDU."""
        self._nack_handler = handler
        return handler

    def register_event_handler(self, handler: EH) -> EH:
        """``handler(session, event)`` for session events (DTLS connected, closed, ...)."""
        self._event_handler = handler
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
        self._enter()
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
            self._refuse_dtls_mix("PSK", server=False)
            self._had_psk = True

            def connect() -> Any:
                return lib.lcp_client_session_psk(
                    self._enter(), local_addr, server, proto, identity, len(identity),
                    key, len(key), sni,
                )  # fmt: skip
        elif isinstance(dtls, PKI):
            self._refuse_dtls_mix("PKI", server=False)
            if self._dtls_pki is not None:
                raise NotSupportedError(
                    "this Context serves coaps:// with a certificate; libcoap keeps one "
                    "certificate setup per Context, so a client certificate session would "
                    "replace the server's. Use a separate Context for the client."
                )
            self._client_pki_used = True
            if dtls.root_cas is not None:
                self._set_root_cas(dtls.root_cas)
            setup, buffers = dtls._setup(check)
            keep.extend(buffers)

            def connect() -> Any:
                return lib.lcp_client_session_pki(self._enter(), local_addr, server, proto, setup)
        else:

            def connect() -> Any:
                return lib.lcp_client_session(self._enter(), local_addr, server, proto)

        ptr = connect()
        if ptr == ffi.NULL:
            where = f" from {local}" if local else ""
            raise CoapError(
                f"libcoap could not create a session to {parsed}{where} "
                "(see the 'libcoap' logger for why)"
            )
        session = Session(self, ptr, parsed, keep, connect)
        self._sessions.add(session)
        if dtls is not None and not BACKEND.raises_client_connected:
            self._connect_watch[session] = None
        return session

    def _refuse_dtls_mix(self, kind: str, *, server: bool) -> None:
        """Raise NotSupportedError if a ``kind`` ("PSK" or "PKI") setup, for a client
        session or (``server``) an endpoint, would meet a setup of the other kind in this
        Context that the TLS backend cannot keep apart (see capabilities.py). A server
        offering both is no mix: its clients pick one."""
        if kind == "PSK":
            client_other, server_other = self._client_pki_used, self._dtls_pki is not None
        else:
            client_other, server_other = self._had_psk, self._dtls_psk is not None
        if not BACKEND.keeps_psk_and_pki_apart and (client_other or (server_other and not server)):
            other = "certificate (PKI)" if kind == "PSK" else "PSK"
            mine = "PSK" if kind == "PSK" else "certificate (PKI)"
            what = "endpoint" if server else "client session"
            raise NotSupportedError(
                f"this Context already has a {other} setup, and libcoap's {BACKEND.name} "
                f"code ({BACKEND.package}) offers every setup of a Context in every client "
                f"handshake: a {mine} {what} here could authenticate with the {other} "
                "credentials instead. Use a separate Context for PSK and for certificates."
            )
        if BACKEND.pki_client_beside_psk:
            return
        if kind == "PKI" and not server and (client_other or server_other):
            raise NotSupportedError(
                "this Context already has a PSK setup; libcoap's "
                f"{BACKEND.name} code ({BACKEND.package}) then offers only PSK in every new "
                "client handshake, so a certificate session would fail. Make certificate "
                "sessions first (PSK client sessions may follow), or use a separate Context."
            )
        if kind == "PSK" and server and self._client_pki_used:
            raise NotSupportedError(
                "this Context has made certificate client sessions; with libcoap's "
                f"{BACKEND.name} code ({BACKEND.package}) a PSK endpoint beside them fails "
                "every handshake. Use a separate Context for the server."
            )

    def _set_root_cas(self, path: str) -> None:
        is_dir = os.path.isdir(path)
        ok = lib.coap_context_set_pki_root_cas(
            self._enter(),
            ffi.NULL if is_dir else path.encode(),
            path.encode() if is_dir else ffi.NULL,
        )
        check(ok, f"libcoap could not load the root CAs from {path}")

    @property
    def sessions(self) -> list[Session]:
        """The open sessions."""
        return list(self._sessions)

    def _release_session(self, ptr: Any) -> None:
        if self._in_io:
            # libcoap may still use the session after the handler returns.
            self._deferred_release.append(ptr)
        elif self._ptr is not None:
            lib.coap_session_release(ptr)

    # -- the loop ---------------------------------------------------------------------------

    def run_once(self, timeout_ms: int | None = 1000) -> int:
        """Do one round of I/O: wait up to ``timeout_ms`` for traffic or timers, handle it.

        ``0`` polls without waiting; ``None`` waits until something happens.
        (In C, ``coap_run_once(ctx, 0)`` waits without bound; here 0 means poll.)
        Re-raises the first exception a handler raised. Returns libcoap's result
        (milliseconds spent).
        """
        if self._owner != _get_ident() or self._ptr is None:
            self._enter()  # raises
        if self._dispatching:
            raise CoapError("run_once() cannot be called from inside a handler")
        if timeout_ms is None:
            wait = -1
        else:
            wait = timeout_ms if timeout_ms.__class__ is int else int(timeout_ms)
            if wait < 0:
                raise ValueError("timeout_ms must be >= 0, or None to wait for activity")
        return self._io(wait)

    def _io(self, wait_ms: int) -> int:
        # lcp_io_process cannot raise: the trampolines keep exceptions for _after_io.
        self._in_io = True
        result: int = _io_process(self._ptr, wait_ms)
        self._in_io = False
        self._after_io()
        return check(result, IO_FAILED, zero_ok=True)

    def _new_waiter(self) -> tuple[Any, Any]:
        """A request waiter (lcp_waiter_t), and a buffer over the answer it holds
        inline (Response._from_inline reads it); the pair goes back to _waiters."""
        waiter = lib.lcp_waiter_new()
        if waiter == ffi.NULL:
            raise MemoryError("no memory for a request waiter")
        waiter = ffi.gc(waiter, lib.lcp_waiter_free)
        return waiter, ffi.buffer(waiter.inline_data)

    def _wait_io(self, waiter: Any, wait_ms: int) -> None:
        """I/O until ``waiter`` is answered, at most ``wait_ms`` (lcp_waiter_wait).

        Each wait in C is short enough for Python to see signals in between, and ends
        after a pass that ran Python code, so what that code left (an exception, a
        closed session) is seen here first.
        """
        self._in_io = True
        try:
            result = lib.lcp_waiter_wait(self._ptr, waiter, min(wait_ms, WAIT_SLICE_MS))
        finally:
            self._in_io = False
        self._io_done(result)

    def _io_done(self, result: int) -> None:
        """After lcp_waiter_wait(): what handlers left, then its own failure."""
        self._after_io()
        check(result, IO_FAILED, zero_ok=True)

    def _waited_response(self, waiter: Any) -> Response:
        """The response a waiter copied out of libcoap, checked as libcoap 4.3 does."""
        response = Response._from_waiter(waiter)
        error = self._critical_error(response)
        if error is not None:
            raise error
        return response

    def _critical_error(self, response: Response) -> CriticalOptionError | None:
        """The error for a response with a critical option this client does not know,
        rejected as libcoap 4.3 does itself (RFC 7252, 5.4.1); libcoap 4.2 lets it by."""
        if _LIBCOAP_DROPS_CRITICAL:
            return None
        unknown = unknown_critical_options(response.options, self._registered)
        return CriticalOptionError(unknown) if unknown else None

    def _guarded(self, function: Callable[..., Any], *args: Any) -> Any:
        """Call a libcoap function that may call back into handlers, as _io() does."""
        self._in_io = True
        try:
            result = function(*args)
        finally:
            self._in_io = False
            self._after_io()
        return result

    def _sweep_server_sessions(self) -> None:
        """Drop wrappers of server sessions libcoap freed without an event (libcoap 4.2)."""
        now = time.monotonic()
        if now < self._next_sweep:
            return
        self._next_sweep = now + 1.0
        for session in list(self._server_sessions):
            if not session._alive():
                session._forget()

    def _report_connected(self) -> None:
        """Raise DTLS_CONNECTED for watched client sessions whose handshake completed
        without libcoap raising it (its GnuTLS code does not): once per handshake."""
        watch = self._connect_watch
        for session, reported in list(watch.items()):
            ptr = session._ptr
            if ptr is None:
                del watch[session]
            elif lib.lcp_session_state(ptr) != _ESTABLISHED:
                watch[session] = None  # (again) handshaking: report its end
            elif reported is None or reported != ptr:
                watch[session] = ptr
                session._handshake_done = True
                try:
                    self._deliver_event(session, _DTLS_CONNECTED)
                except BaseException as error:
                    self._store_error(error)

    def _after_io(self) -> None:
        if self._handoff:
            self._handoff.run(self._store_error)
        if self._delayed.awaiting:
            self._delayed.check()
        if pending_summaries:
            flush_log_summaries()
        if self._connect_watch:
            self._report_connected()
        if self._server_sessions and not _SERVER_SESSION_EVENTS:
            self._sweep_server_sessions()
        if self._observations:
            for observation in list(self._observations):
                observation._maybe_reregister()
        if self._deferred_release:
            pending, self._deferred_release = self._deferred_release, []
            for ptr in pending:
                lib.coap_session_release(ptr)
        if self._close_requested:
            self._close_requested = False
            self.close()
        error = self._error
        if error is not None:
            self._error = None
            raise error

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
        self._handoff.submit(callback, args)

    def call_soon(self, callback: Callable[[Unpack[Ts]], object], *args: Unpack[Ts]) -> None:
        """Run ``callback(*args)`` on this Context's thread after the current I/O pass
        (from a handler: once the pass that called it is over; else at the next
        ``run_once()``/``run()`` pass). From the Context's thread only; other threads
        use :meth:`call_soon_threadsafe`. A handler uses it to gather work of many
        requests into one step."""
        self._enter()
        self._handoff.later(callback, args)

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
        self._handoff.add_reader(_fileno(fd), callback, args)

    def remove_reader(self, fd: int | Any) -> bool:
        """Stop watching ``fd`` (:meth:`add_reader`); False if it was not watched. Close
        a descriptor only after removing it."""
        self._enter()
        return self._handoff.remove_reader(_fileno(fd))

    def can_exit(self) -> bool:
        """True when libcoap has nothing left to send or retransmit."""
        return bool(lib.coap_can_exit(self._enter()))

    # -- dispatch (called by the trampolines in callbacks.py) ------------------------------

    def _store_error(self, error: BaseException) -> None:
        if self._error is None:
            self._error = error

    def _token_of(self, pdu: Any) -> bytes:
        info = self._info
        lib.lcp_pdu_info(pdu, info)
        return ffi.buffer(info.token, info.token_len)[:] if info.token_len else b""

    def _on_response(
        self,
        session: Session | None,
        sent: Any,
        sent_info: Any,
        received: Any,
        info: Any,
        mid: int,
    ) -> int:
        """``sent_info``, ``info``: the fields of ``sent`` (if any) and ``received``."""
        if self._connect_watch:
            self._report_connected()
        if session is not None and (session._observations or session._pending):
            token = ffi.buffer(info.token, info.token_len)[:]
            observation = session._observations.get(token)
            pending = None if observation is not None else session._pending.pop(token, None)
            if observation is not None or pending is not None:
                if pending is not None and pending.abandoned:
                    return 1  # request() gave up on it already: acknowledge and drop
                payload = ffi.buffer(info.payload, info.payload_len)[:] if info.payload_len else b""
                response = Response(
                    info.code, payload, self._reader.read(received), info.type, info.mid, token
                )
                error = self._critical_error(response)
                if observation is not None:
                    if error is None:
                        observation._deliver(response)
                    else:
                        observation._fail(error)
                else:
                    assert pending is not None
                    if error is None:
                        pending.response = response
                    else:
                        pending.error = error
                return 1
        handler = self._response_handler
        if handler is None:
            return 0  # nobody asked for this: libcoap answers a CON with RST
        reader = self._reader
        sent_pdu = _borrowed(sent, reader, sent_info) if sent else None  # (not NULL)
        received_pdu = _borrowed(received, reader, info)
        self._dispatching += 1
        try:
            result = handler(session, sent_pdu, received_pdu, mid)
        finally:
            self._dispatching -= 1
            received_pdu._ptr = None  # the handler has returned: see PDU._borrowed
            if sent_pdu is not None:
                sent_pdu._ptr = None
        return 0 if result is False else 1

    def _on_nack(self, session: Session | None, sent: Any, reason: int, mid: int) -> None:
        if self._connect_watch:
            self._report_connected()
        if session is not None:
            token = self._token_of(sent) if sent != ffi.NULL else None
            if token is not None and token in session._observations:
                session._observations[token]._nack(reason, nack_error(reason, session))
                return
            pending = session._take_pending(token, mid)
            if reason == NackReason.TLS_FAILED:
                session._dtls_failed = True
                session._failed()
            if pending is not None:
                if not pending.abandoned:
                    pending.error = nack_error(reason, session)
                return
        handler = self._nack_handler
        if handler is None:
            return
        sent_pdu = None
        if sent != _NULL:
            lib.lcp_pdu_info(sent, self._info)
            sent_pdu = _borrowed(sent, self._reader, self._info)
        try:
            why: NackReason | int = NackReason(reason)
        except ValueError:
            why = reason
        self._dispatching += 1
        try:
            handler(session, sent_pdu, why, mid)
        finally:
            self._dispatching -= 1
            if sent_pdu is not None:
                sent_pdu._invalidate("borrowed by a handler that has returned")

    def _on_event(self, session: Session | None, event: int) -> None:
        if event == _DTLS_CONNECTED and session is not None and session in self._connect_watch:
            # libcoap raised it after all: this handshake is reported.
            self._connect_watch[session] = session._ptr
        if session is not None and session.uri.secure:
            if event == _DTLS_CONNECTED:
                session._handshake_done = True
            elif event == _DTLS_ERROR:
                session._handshake_error = True
        if session is not None and event in _SESSION_ENDINGS:
            if event in _DTLS_FAILURES and session.uri.secure:
                session._dtls_failed = True
            session._failed()
        if event == _SERVER_SESSION_DEL and isinstance(session, ServerSession):
            # libcoap frees it right after this event.
            try:
                self._deliver_event(session, event)
            finally:
                session._detach(CoapError(f"the session with {session.uri} has ended"))
            return
        self._deliver_event(session, event)

    def _deliver_event(self, session: Session | None, event: int) -> None:
        handler = self._event_handler
        if handler is None:
            return
        try:
            what: Event | int = Event(event)
        except ValueError:
            what = event
        self._dispatching += 1
        try:
            handler(session, what)
        finally:
            self._dispatching -= 1

    # -- lifetime ---------------------------------------------------------------------------

    def close(self) -> None:
        """Free the context, its sessions and unsent PDUs. Idempotent.

        Every Session and PDU that pointed into it raises ``CoapError`` afterwards.
        """
        if self._ptr is None:
            return
        self._enter_for_close()
        if self._in_io:
            # Called from a handler: libcoap is still using the context.
            self._close_requested = True
            for session in list(self._sessions):
                session._detach(CoapError("the Context was closed"))
            return
        self._free()
        flush_log_summaries(force=True)

    def _free(self) -> None:
        self.closed = True
        for session in list(self._sessions):
            session._detach(CoapError("the Context was closed"))
        for server_session in list(self._server_sessions):
            server_session._detach(CoapError("the Context was closed"))
        for endpoint in self._endpoints:
            endpoint._ptr = None  # coap_free_context frees endpoints
        self._endpoints = []
        for resource in self._resources.values():
            if resource._observable:
                # A shutdown is not a deletion: libcoap 4.3 would tell every observer
                # 4.04, ending observations that could outlive a restart (they
                # re-register after Max-Age). libcoap 4.2 says nothing either.
                lib.lcp_resource_observable(resource._ptr, 0, int(resource._confirmable))
            resource._ptr = None
        if self._unknown is not None:
            self._unknown._ptr = None
        self._stopping = True
        self._handoff.close()
        self._delayed.close()
        ptr, self._ptr = self._ptr, None
        for pending_ptr in self._deferred_release:
            lib.coap_session_release(pending_ptr)
        self._deferred_release = []
        # Callbacks fired while libcoap tears down find no Context.
        lib.coap_set_app_data(ptr, ffi.NULL)
        lib.coap_free_context(ptr)

    def __enter__(self) -> Context:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        if getattr(self, "_ptr", None) is not None and not getattr(self, "_in_io", False):
            try:
                self._free()
            except Exception:
                pass

    def __repr__(self) -> str:
        state = "closed" if self._ptr is None else f"{len(self._sessions)} sessions"
        return f"<Context {state}>"


def _fileno(fd: int | Any) -> int:
    """A descriptor number from an int or an object with ``fileno()``."""
    number = fd if isinstance(fd, int) else fd.fileno()
    if not isinstance(number, int) or number < 0:
        raise ValueError(f"not a file descriptor: {fd!r}")
    return number
