"""The serving half of a Context: endpoints, resources, request dispatch, run() and stop()."""

from __future__ import annotations

import errno
import functools
import logging
import math
import os
import signal
import threading
import time
import types
from collections.abc import Awaitable, Iterable, Sequence, Sized
from typing import TYPE_CHECKING, Any, Callable, Optional, TypeVar, Union

from .._binding import ffi, lib
from .._handoff import FALLBACK_SLICE_MS
from ..codes import Code, MessageType, OptionNumber, Proto
from ..dtls import PKI, PSK
from ..errors import IO_FAILED, NO_PDU, REFUSED_PAYLOAD, CoapError, NotSupportedError, check
from ..library import check_transport
from ..log import log_limited
from ..pdu import encode_option, first_option, write_options
from ..uri import parse_uri, resolve
from . import coroutines
from .blockwise import BlockAnswer, BlockServer, NoRoomError
from .delayed import DelayedResponse, DelayedResponses
from .request import DEFAULT_CODES, Request, ServerResponse
from .session import ServerSession

if TYPE_CHECKING:
    from .._credentials import Credentials
    from .._exchange import Exchanges
    from .._loop import Loop
    from ..context import Context

__all__ = ["Endpoint", "RequestHandler", "Resource", "Server"]

log = logging.getLogger("libcoap_py.server")
_COROUTINE = types.CoroutineType  # what an ``async def`` handler returns

#: ``handler(request, response)``: fills ``response`` in (its return value is not
#: used). It may be an ``async def`` coroutine function where an event loop drives
#: the Context (``libcoap_py.aio``): see ``coroutines.py``.
RequestHandler = Callable[[Request, ServerResponse], Optional[Awaitable[None]]]
R = TypeVar("R", bound=RequestHandler)
MethodSpec = Union[str, Code, int]

_SLICE_MS = 250  # run() wakes at least this often to notice stop() and signals
_OBSERVE = int(OptionNumber.OBSERVE)
_BLOCK2 = int(OptionNumber.BLOCK2)
_URI_PATH = int(OptionNumber.URI_PATH)
_METHOD_NOT_ALLOWED = int(Code.METHOD_NOT_ALLOWED)
_NON = int(MessageType.NON)
# The code a response starts with, by request method (an int: no Enum call per request).
_DEFAULT_CODE: dict[int, Code] = {int(method): code for method, code in DEFAULT_CODES.items()}
_PASSES = 16  # I/O passes run() makes back to back while they answer requests
_SCRATCH_ROOM = 256  # bytes for a request's options (lcp_serve_read); grows when needed
_unpack = ffi.unpack
_serve_read = lib.lcp_serve_read
_partial = functools.partial
_NOTIFY_ERROR_UNSAFE = bool(lib.LCP_NOTIFY_ERROR_UNSAFE)
_SERVER_SESSION_EVENTS = bool(lib.LCP_HAS_SERVER_SESSION_EVENTS)


def _methods(methods: MethodSpec | Iterable[MethodSpec]) -> list[Code]:
    if isinstance(methods, (str, int)):
        methods = (methods,)
    return [Code.method(m) for m in methods]


def _bind_error(uri: str, proto: Proto, ip: str, port: int, code: int) -> OSError:
    """The OSError for an endpoint that could not be bound, naming its address."""
    where = f"{proto.name} {f'[{ip}]' if ':' in ip else ip}:{port}"
    if code == errno.EADDRINUSE:
        why = f"{where} is in use (another server, Context or socket holds it)"
    elif code:
        why = f"{where}: {os.strerror(code)}"
    else:
        return OSError(
            f"cannot listen on {uri}: libcoap refused {where} (see the 'libcoap' logger)"
        )
    return OSError(code, f"cannot listen on {uri}: {why}")


class Endpoint:
    """A listening endpoint (``Context.add_endpoint``)."""

    def __init__(self, server: Server, ptr: Any, uri: str, proto: Proto) -> None:
        self._server = server
        self._ptr = ptr
        self.proto = proto
        text = ffi.string(lib.coap_endpoint_str(ptr)).decode()
        address = text.rsplit(" ", 1)[0]
        host, _, port = address.rpartition(":")
        self.host = host.strip("[]")
        self.port = int(port)
        scheme = uri.split(":", 1)[0].lower()
        bracketed = f"[{self.host}]" if ":" in self.host else self.host
        #: The URI with the port the endpoint got (as asked for, if it was not 0).
        self.uri = f"{scheme}://{bracketed}:{self.port}"

    def close(self) -> None:
        """Stop listening (sessions of this endpoint go with it)."""
        if self._ptr is not None:
            self._server.loop.enter()
            ptr, self._ptr = self._ptr, None
            for session in list(self._server.sessions):
                if session.uri.proto == self.proto and session.local_address[1] == self.port:
                    session._detach(CoapError("its endpoint was closed"))
            self._server.endpoints.remove(self)
            lib.coap_free_endpoint(ptr)

    def forget(self) -> None:
        """The Context is being freed, and libcoap frees the endpoint with it."""
        self._ptr = None

    def __repr__(self) -> str:
        return f"<Endpoint {self.uri}>"


class Resource:
    """A resource at a path, with one handler per method."""

    def __init__(self, server: Server, path: str | None) -> None:
        self._server = server
        self.path = path  # None: the unknown-resource handler
        self._handlers: dict[int, RequestHandler] = {}
        self._observable = False
        self._confirmable = False
        # Where a notification runs the GET handler without the request (libcoap
        # 4.2): the registering requests, by (session address, token).
        self._registrations: dict[tuple[int, bytes], tuple[Any, Request]] = {}
        self._handle = ffi.new_handle(self)
        if path is None:
            ptr = lib.lcp_resource_unknown_new(self._handle)
        else:
            data = path.strip("/").encode()
            ptr = lib.lcp_resource_new(data, len(data), self._handle)
        check(ptr, f"libcoap could not create the resource {path!r}")
        self._ptr = ptr

    @property
    def observable(self) -> bool:
        """Clients may observe it (RFC 7641): GETs with Observe 0 register them."""
        return self._observable

    @observable.setter
    def observable(self, value: bool) -> None:
        self._set_observable(bool(value), self._confirmable)

    @property
    def confirmable_notifications(self) -> bool:
        """Send notifications as CON (True) or NON (False, libcoap still sends every
        fifth as CON, as RFC 7641 asks)."""
        return self._confirmable

    @confirmable_notifications.setter
    def confirmable_notifications(self, value: bool) -> None:
        self._set_observable(self._observable, bool(value))

    def _set_observable(self, observable: bool, confirmable: bool) -> None:
        self._server.loop.enter()
        if observable and not lib.LCP_HAS_SERVER_OBSERVE:
            raise NotSupportedError("this libcoap build cannot serve observable resources")
        if self._ptr is None:
            raise CoapError("the resource was removed")
        lib.lcp_resource_observable(self._ptr, int(observable), int(confirmable))
        self._observable, self._confirmable = observable, confirmable

    def notify(self) -> None:
        """Tell observers the resource changed: libcoap runs the GET handler for each
        and sends the result. Call it from the Context's thread (a handler, or
        between ``run_once()`` calls)."""
        self._server.loop.enter()
        if self._ptr is None:
            raise CoapError("the resource was removed")
        if self._registrations:
            self._prune_registrations()
        lib.coap_resource_notify_observers(self._ptr, ffi.NULL)

    # -- Observe where libcoap leaves the option to the handler (4.2) ------------------------

    def _observe_option(self, session_ptr: Any, request: Request, reply: ServerResponse) -> None:
        """Add the Observe option to a 2.xx answer to an observer, where libcoap leaves that
        to the handler; keep a registering request for the notifications."""
        token = request.token
        value = ffi.new("unsigned int *")
        if not lib.lcp_observe_option(self._ptr, session_ptr, token, len(token), value):
            return
        code = int(reply._code)
        if code >> 5 != 2:
            return  # libcoap ends the registration
        if first_option(reply._options, _OBSERVE) is None:
            reply._options.append(encode_option(_OBSERVE, int(value[0])))
        if lib.LCP_NOTIFY_WITHOUT_REQUEST and request.mid >= 0:
            key = (int(ffi.cast("uintptr_t", session_ptr)), token)
            if key not in self._registrations:
                self._prune_registrations()
            self._registrations[key] = (session_ptr, request)

    def _prune_registrations(self) -> None:
        """Forget registering requests of observers libcoap no longer has."""
        value = ffi.new("unsigned int *")
        for key, (session_ptr, request) in list(self._registrations.items()):
            token = request.token
            if not lib.lcp_observe_option(self._ptr, session_ptr, token, len(token), value):
                del self._registrations[key]

    def _registration(self, session_ptr: Any, session: ServerSession, token: bytes) -> Request:
        """The request that registered this observer (a notification has none here)."""
        found = self._registrations.get((int(ffi.cast("uintptr_t", session_ptr)), token))
        if found is not None:
            return found[1]
        # Not seen (it cannot normally happen): a GET for the resource's path.
        options = [encode_option(_OBSERVE, 0)]
        options += [encode_option(_URI_PATH, p) for p in (self.path or "").split("/") if p]
        return Request(Code.GET, MessageType.CON, -1, token, b"", options, session)

    def forget(self, *, shutdown: bool = False) -> None:
        """The Context is being freed, and libcoap frees the resource with it."""
        if shutdown and self._observable and self._ptr is not None:
            # A shutdown is not a deletion: libcoap 4.3 would tell every observer
            # 4.04, ending observations that could outlive a restart (they
            # re-register after Max-Age). libcoap 4.2 says nothing either.
            lib.lcp_resource_observable(self._ptr, 0, int(self._confirmable))
        self._ptr = None

    def handle(self, methods: MethodSpec | Iterable[MethodSpec], handler: RequestHandler) -> None:
        """Let ``handler(request, response)`` answer these methods."""
        self._server.loop.enter()
        for code in _methods(methods):
            if code not in self._handlers:
                lib.lcp_resource_handle(self._ptr, int(code))
            self._handlers[code] = handler

    def handler(self, methods: MethodSpec | Iterable[MethodSpec]) -> Callable[[R], R]:
        """Decorator form of ``handle()``."""

        def register(function: R) -> R:
            self.handle(methods, function)
            return function

        return register

    def __repr__(self) -> str:
        where = "(unknown)" if self.path is None else f"/{self.path.strip('/')}"
        names = ",".join(Code(c).name for c in self._handlers)
        return f"<Resource {where} {names}>"


class Server:
    """The serving side of a Context: endpoints, resources, request dispatch, run()
    and stop(). The Context holds one and hands its public methods on; the
    trampolines call ``on_request`` and ``on_cn``."""

    def __init__(
        self,
        context: Context,
        loop: Loop,
        exchanges: Exchanges,
        credentials: Credentials,
    ) -> None:
        self.context = context
        self.loop = loop
        self.exchanges = exchanges
        self.credentials = credentials
        self.endpoints: list[Endpoint] = []
        self.resources: dict[str, Resource] = {}
        self.unknown: Resource | None = None
        self.sessions: set[ServerSession] = set()
        #: What sweep() looks at after a pass: the sessions, where libcoap frees them
        #: without an event (4.2); else nothing.
        self.sweep_due: Sized = () if _SERVER_SESSION_EVENTS else self.sessions
        self.stopping = False
        self.delayed = DelayedResponses(loop)
        self._info = ffi.new("lcp_pdu_info_t *")
        self._block_server: BlockServer | None = None  # made on first use
        # lcp_serve_read's info struct and options scratch (with its size), made on first use.
        self._serve: tuple[Any, Any, int, Any] | None = None
        self._next_sweep = 0.0

    # -- endpoints --------------------------------------------------------------------------

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
        ctx = self.loop.enter()
        parsed = parse_uri(uri, allow_port_zero=True)
        if parsed.path or parsed.query:
            raise ValueError(f"an endpoint URI has no path or query: {uri!r}")
        check_transport(parsed.proto)
        if parsed.secure:
            if dtls is None:
                raise ValueError(f"{parsed.scheme}:// needs dtls=coap.PKI(...) or coap.PSK(...)")
            setups: list[PKI | PSK] = [dtls] if isinstance(dtls, (PKI, PSK)) else list(dtls)
            if not setups or len({type(s) for s in setups}) != len(setups):
                raise ValueError("dtls= takes a PKI, a PSK, or one of each")
            for setup in setups:
                self._set_server_dtls(setup)
        elif dtls is not None:
            raise ValueError(f"dtls= given for a {parsed.scheme}:// endpoint; use a coaps scheme")
        _, ip = resolve(parsed.host, parsed.port)
        address = ffi.new("coap_address_t *")
        if not lib.lcp_address_set(address, ip.encode(), parsed.port):
            raise ValueError(f"cannot use address {ip!r} for {uri!r}")
        error = ffi.new("int *")
        ptr = lib.lcp_new_endpoint(ctx, address, int(parsed.proto), error)
        if ptr == ffi.NULL:
            raise _bind_error(uri, parsed.proto, ip, parsed.port, error[0])
        endpoint = Endpoint(self, ptr, uri, parsed.proto)
        self.endpoints.append(endpoint)
        return endpoint

    def _set_server_dtls(self, dtls: PKI | PSK) -> None:
        ctx = self.loop.enter()
        if isinstance(dtls, PKI):
            if dtls is self.credentials.server_pki:
                return
            self.credentials.refuse_mix("PKI", server=True)
            if self.credentials.client_pki_used:
                raise NotSupportedError(
                    "this Context has made client certificate sessions; libcoap keeps one "
                    "certificate setup per Context, so serving with a certificate would "
                    "break them (and theirs would replace the server's). Use two Contexts."
                )
            if not dtls.has_certificate:
                raise ValueError(
                    "a server PKI needs its own certificate and private key "
                    "(PKI(cert, key, ...)); only a client may go without"
                )
            if dtls.root_cas is not None:
                self.credentials.set_root_cas(ctx, dtls.root_cas)
            setup, keep = dtls._setup()
            if not lib.lcp_context_set_pki(ctx, setup):
                raise CoapError(
                    "libcoap refused the server certificate setup (see the 'libcoap' logger)"
                )
            self.credentials.keep.extend(keep)
            self.credentials.server_pki = dtls
        elif isinstance(dtls, PSK):
            if dtls is self.credentials.server_psk:
                return
            self.credentials.refuse_mix("PSK", server=True)
            if dtls.key is None and dtls.keys is None:
                raise ValueError("a server PSK needs keys= (per identity) or a default key=")
            hint = dtls.hint or b""
            # libcoap 4.3.1 (OpenSSL) only considers PSK cipher suites when a default key
            # is set. Identities are checked by our callback, which never hands this
            # placeholder out (PSK.key_for returns None for unknown identities).
            key = dtls.key or os.urandom(32)
            handle = ffi.new_handle(dtls)
            hint_buf = ffi.new("uint8_t[]", hint or b"\0")
            key_buf = ffi.new("uint8_t[]", key or b"\0")
            self.credentials.keep.extend((handle, hint_buf, key_buf))
            check(
                lib.lcp_context_set_psk(ctx, hint_buf, len(hint), key_buf, len(key), handle),
                "libcoap refused the server PSK setup (see the 'libcoap' logger)",
            )
            self.credentials.server_psk = dtls
        else:
            raise TypeError("dtls must be a coap.PKI or a coap.PSK")

    # -- resources --------------------------------------------------------------------------

    def add_resource(self, path: str) -> Resource:
        """A resource at ``path`` (``""`` is the root); add handlers with ``handle()``."""
        self.loop.enter()
        key = path.strip("/")
        if key in self.resources:
            return self.resources[key]
        resource = Resource(self, key)
        lib.coap_add_resource(self.loop.ptr, resource._ptr)
        self.resources[key] = resource
        return resource

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
        resource = self.add_resource(path)
        if observable or confirmable_notifications:
            resource._set_observable(observable, confirmable_notifications)
        return resource.handler(methods)

    def remove_resource(self, path: str) -> None:
        """Remove the resource at ``path`` (KeyError if there is none)."""
        ctx = self.loop.enter()
        resource = self.resources.pop(path.strip("/"))
        lib.coap_delete_resource(ctx, resource._ptr)
        resource._ptr = None
        resource._registrations.clear()

    def set_unknown_handler(
        self, handler: RequestHandler, methods: MethodSpec | Iterable[MethodSpec] = ("PUT",)
    ) -> None:
        """Let ``handler`` answer requests for paths that have no resource."""
        self.loop.enter()
        if self.unknown is None:
            resource = Resource(self, None)
            lib.coap_add_resource(self.loop.ptr, resource._ptr)
            self.unknown = resource
        self.unknown.handle(methods, handler)

    def unknown_resource(
        self, methods: MethodSpec | Iterable[MethodSpec] = ("PUT",)
    ) -> Callable[[R], R]:
        """Decorator form of ``set_unknown_handler``."""

        def register(function: R) -> R:
            self.set_unknown_handler(function, methods)
            return function

        return register

    # -- running ----------------------------------------------------------------------------

    def run(self, timeout: float | None = None, *, handle_signals: bool = False) -> None:
        """Serve until ``stop()`` (or for at most ``timeout`` seconds).

        With ``handle_signals`` (main thread only), SIGINT and SIGTERM call
        ``stop()``, so Ctrl-C ends ``run()`` normally.
        """
        self.loop.enter()
        if self.loop.dispatching:
            raise CoapError("run() cannot be called from inside a handler")
        deadline = None if timeout is None else time.monotonic() + timeout
        previous: dict[signal.Signals, Any] = {}
        if handle_signals:
            if threading.current_thread() is not threading.main_thread():
                raise ValueError("handle_signals=True works only in the main thread")
            for sig in (signal.SIGINT, signal.SIGTERM):
                previous[sig] = signal.signal(sig, lambda signum, frame: self.stop())
        try:
            # A stop() that came before run() still ends it, after one pass.
            slice_ms = _SLICE_MS if self.loop.handoff.attached else FALLBACK_SLICE_MS
            while True:
                wait = slice_ms
                if deadline is not None:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        break
                    wait = min(wait, max(1, math.ceil(remaining * 1000)))
                self._serve_io(0 if self.stopping else wait)
                if self.stopping:
                    break
        finally:
            self.stopping = False
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def stop(self) -> None:
        """Make ``run()`` return after the current pass. Safe from handlers, signal
        handlers and other threads."""
        self.stopping = True

    # -- dispatch (from the trampolines) ----------------------------------------------------

    def server_session(self, ptr: Any) -> ServerSession:
        data = lib.coap_session_get_app_data(ptr)
        if data != ffi.NULL:
            found = ffi.from_handle(data)
            if isinstance(found, ServerSession):
                return found
        session = ServerSession(self.context, self.loop, self.exchanges, ptr, self.session_gone)
        self.sessions.add(session)
        return session

    def _serve_buffers(self) -> tuple[Any, Any, int, Any]:
        """The lcp_serve_read scratch of this Context (made on first use), grown as needed,
        and the flag by which a dispatch tells lcp_serve_io to go on."""
        info = ffi.new("lcp_serve_info_t *")
        room = _SCRATCH_ROOM
        self._serve = (info, ffi.new("char[]", room), room, ffi.new("int *"))
        return self._serve

    def served_flag(self) -> Any:
        """The ``int *`` a request's dispatch sets (to 1) when it answered one: how a
        loop of passes (lcp_serve_io, lcp_io_poll) knows to look again at once."""
        return (self._serve or self._serve_buffers())[3]

    def _serve_io(self, wait_ms: int) -> None:
        """``_io()`` for run(): after the first pass, more that do not wait, as long as
        each answered a request and nothing (an error, stop(), close()) wants run()."""
        ptr = self.loop.ptr
        if ptr is None:
            raise CoapError("the Context was closed")
        served = (self._serve or self._serve_buffers())[3]
        check(
            self.loop.guarded(lib.lcp_serve_io, ptr, wait_ms, served, _PASSES),
            IO_FAILED,
            zero_ok=True,
        )

    def on_request(
        self, resource: Resource, session_ptr: Any, request: Any, query: Any, response: Any
    ) -> None:
        if request:
            info, scratch, room, served = self._serve or self._serve_buffers()
            _serve_read(session_ptr, request, info, scratch, room)
            need = info.options_len
            if need > room:
                room = max(need, 2 * room)
                scratch = ffi.new("char[]", room)
                self._serve = (info, scratch, room, served)
                _serve_read(session_ptr, request, info, scratch, room)
            data = info.session_data
            session = ffi.from_handle(data) if data else None
            if not isinstance(session, ServerSession):
                session = self.server_session(session_ptr)
            req = Request._served(info, _unpack(scratch, need) if need else b"", session)
            code = info.code
            block_options = info.blocks
        else:
            served = None
            # A notification from a libcoap that runs the GET handler without a request.
            session = self.server_session(session_ptr)
            lib.lcp_pdu_info(response, self._info)
            token = ffi.buffer(self._info.token, self._info.token_len)[:]
            req = resource._registration(session_ptr, session, token)
            code = int(req.code)
            block_options = lib.LCP_SERVE_BLOCK2 if req.option(_BLOCK2) is not None else 0
        handler = resource._handlers.get(code)
        if handler is None:
            lib.lcp_pdu_set_code(response, _METHOD_NOT_ALLOWED)
            return
        # Block-wise transfers are ours on the server side, on every generation (libcoap
        # 4.3's own reassembly crashes on hostile input: glue.c, lcp_client_blocks):
        # reassemble Block1 uploads, serve later Block2 blocks from the body rendered for
        # block 0.
        block1 = None
        if block_options:
            max_pdu = lib.coap_session_max_pdu_size(session_ptr)
            blocks = self._blocks()
            try:
                taken = blocks.receive(req)
                answer = taken if isinstance(taken, BlockAnswer) else None
                if answer is None:
                    req, block1 = taken  # type: ignore[misc]
                    answer = blocks.answer_later_block(req, max_pdu)
                if answer is not None:
                    self._give(resource, session_ptr, req, response, answer)
                    return
            except NoRoomError as error:
                self._no_room(resource, session_ptr, req, response, error)
                return
            except Exception:
                where = f"{req.method} /{req.path} from {req.peer[0]}:{req.peer[1]}"
                log_limited(log, logging.ERROR, f"block-wise {where} failed", exc_info=True)
                self._answer_error(resource, session_ptr, req, response)
                return
            code = int(req.code)
        reply = ServerResponse(_DEFAULT_CODE.get(code, Code.CONTENT))
        if served is not None:
            # (A partial, not a closure: no cells for this function's variables.)
            reply._origin = _partial(self._delay, resource, session_ptr, req, block1)
        self.loop.dispatching += 1
        try:
            result = handler(req, reply)
            if result is not None and result.__class__ is _COROUTINE:
                coroutines.start(result, reply, req)
            reply._done = not reply._lent
            if reply._delayed is not None:
                # Code 0: libcoap acknowledges a CON with an empty ACK; as a NON, it
                # sends nothing (a CON stays unacknowledged until send()).
                if not reply._delayed._acknowledged:
                    lib.lcp_pdu_set_type(response, _NON)
                lib.lcp_pdu_set_code(response, 0)
            elif resource._observable:
                resource._observe_option(session_ptr, req, reply)
                if _NOTIFY_ERROR_UNSAFE and int(reply._code) >> 5 > 2:
                    reply = self._error_notification(session_ptr, req, response, reply)
            if reply._delayed is None:
                self._write_reply(session_ptr, req, reply, response, block_options, block1)
            if served is not None and not (
                self.stopping or self.loop.close_requested or self.loop.error is not None
            ):
                served[0] = 1  # lcp_serve_io may go on with the next pass
        except NoRoomError as error:
            self._no_room(resource, session_ptr, req, response, error)
        except Exception:
            where = f"{req.method} /{req.path} from {req.peer[0]}:{req.peer[1]}"
            log_limited(log, logging.ERROR, f"handler for {where} failed", exc_info=True)
            self._answer_error(resource, session_ptr, req, response)
        except BaseException as error:  # e.g. KeyboardInterrupt: run_once() re-raises it
            self.loop.store_error(error)
            self._answer_error(resource, session_ptr, req, response)
        finally:
            reply._done = not reply._lent
            self.loop.dispatching -= 1

    def _write_reply(
        self,
        session_ptr: Any,
        req: Request,
        reply: ServerResponse,
        pdu: Any,
        block_options: int,
        block1: Any,
    ) -> None:
        """Write a handler's answer into ``pdu``: in one call when it is simple, else
        through the block layer (a body larger than one PDU goes block-wise)."""
        if block_options or not reply._send_simple(session_ptr, pdu):
            max_pdu = lib.coap_session_max_pdu_size(session_ptr)
            self._blocks().respond(req, reply, pdu, max_pdu, block1)

    def _delay(
        self,
        resource: Resource,
        session_ptr: Any,
        req: Request,
        block1: Any,
        reply: ServerResponse,
        acknowledge: bool,
    ) -> DelayedResponse:
        """``ServerResponse.delay()``, in a handler."""
        if resource._observable and req.observe is not None:
            raise CoapError("a response to an Observe request cannot be delayed")
        block_options = 1 if block1 is not None or req.option(_BLOCK2) is not None else 0

        def write(delayed: DelayedResponse, pdu: Any) -> None:
            self._write_reply(session_ptr, req, delayed, pdu, block_options, block1)

        return DelayedResponse(
            self.delayed, session_ptr, req, reply, acknowledge, write, bool(block_options)
        )

    def _give(
        self, resource: Resource, session_ptr: Any, req: Request, response: Any, answer: BlockAnswer
    ) -> None:
        """Write the block layer's answer. An error to what may be a notification takes the
        same care as a handler's (_error_notification)."""
        if resource._observable and lib.LCP_NOTIFY_ERROR_UNSAFE and int(answer.code) >> 5 > 2:
            failed = ServerResponse(Code.INTERNAL_SERVER_ERROR)
            failed.code = answer.code
            for number, value in answer.options:
                failed.add_option(number, value)
            failed.payload = answer.payload
            reply = self._error_notification(session_ptr, req, response, failed)
            if reply is not failed:  # the error went on its own
                lib.lcp_pdu_set_code(response, int(reply._code))
                return
        answer.write(response)

    def _no_room(
        self, resource: Resource, session_ptr: Any, req: Request, response: Any, error: Exception
    ) -> None:
        """5.00 for an answer this session's PDUs cannot carry: a known limit, not a bug,
        so a rate-limited warning without a traceback."""
        where = f"{req.method} /{req.path} to {req.peer[0]}:{req.peer[1]}"
        log_limited(log, logging.WARNING, f"{where}: 5.00, {error}")
        self._answer_error(resource, session_ptr, req, response)

    def session_gone(self, session: ServerSession) -> None:
        """Forget a server session libcoap has freed, and the block-wise state of its
        peer (a new session from that address starts afresh)."""
        self.sessions.discard(session)
        if self._block_server is not None:
            self._block_server.forget_peer(session.peer, int(session.uri.proto))

    def _blocks(self) -> BlockServer:
        if self._block_server is None:
            self._block_server = BlockServer()
        return self._block_server

    def _answer_error(
        self, resource: Resource, session_ptr: Any, req: Request, response: Any
    ) -> None:
        """Answer 5.00 for a handler that failed (safely, where it was a notification)."""
        code: Code | int = Code.INTERNAL_SERVER_ERROR
        if resource._observable and lib.LCP_NOTIFY_ERROR_UNSAFE:
            failed = ServerResponse(Code.INTERNAL_SERVER_ERROR)
            code = self._error_notification(session_ptr, req, response, failed)._code
        lib.lcp_pdu_set_code(response, int(code))

    def _error_notification(
        self, session_ptr: Any, request: Request, response: Any, reply: ServerResponse
    ) -> ServerResponse:
        """An error answer to what may be a notification, where libcoap would free the
        observer and then use it: send the error as a message of its own, and let
        libcoap send a 2.03 that the client, no longer observing, rejects with RST
        (which ends the registration)."""
        lib.lcp_pdu_info(response, self._info)
        kind = self._info.type
        if request.observe != 0 or kind == MessageType.ACK:
            return reply  # the answer to a request: libcoap handles that safely
        pdu = lib.lcp_new_request_with_token(
            session_ptr, kind, int(reply._code), request.token, len(request.token)
        )
        check(pdu, NO_PDU)
        options = [o for o in reply._option_list() if o[0] != _OBSERVE]
        body = reply._payload
        payload = body.encode() if isinstance(body, str) else bytes(body)
        try:
            write_options(pdu, options)
            if payload:
                check(lib.coap_add_data(pdu, len(payload), payload), REFUSED_PAYLOAD)
        except BaseException:
            lib.coap_delete_pdu(pdu)
            raise
        lib.coap_send(session_ptr, pdu)  # consumes the PDU
        valid = ServerResponse(Code.VALID)
        valid._done = True
        return valid

    def on_cn(self, session_ptr: Any, session: Any, cn: str, depth: int) -> None:
        if depth != 0:
            return
        if session is None and lib.lcp_session_is_server(session_ptr):
            session = self.server_session(session_ptr)
        if session is not None:
            session.peer_cn = cn

    def sweep(self) -> None:
        """After a pass: drop wrappers of server sessions libcoap freed without an event
        (libcoap 4.2), at most once a second."""
        if not self.sessions or _SERVER_SESSION_EVENTS:
            return
        now = time.monotonic()
        if now < self._next_sweep:
            return
        self._next_sweep = now + 1.0
        for session in list(self.sessions):
            if not session._alive():
                session._forget()

    def close(self) -> None:
        """The Context is closing: sessions, endpoints and resources are gone with it."""
        for server_session in list(self.sessions):
            server_session._detach(CoapError("the Context was closed"))
        for endpoint in self.endpoints:
            endpoint.forget()  # coap_free_context frees endpoints
        self.endpoints = []
        for resource in self.resources.values():
            resource.forget(shutdown=True)
        if self.unknown is not None:
            self.unknown.forget()
        self.stopping = True
        self.delayed.close()
