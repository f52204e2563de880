"""Where libcoap's callbacks land: one ``Dispatch`` per Context.

The context's app data is a handle to its Dispatch; the trampolines
(``_binding/callbacks.py``) find it there and call its methods. It answers
the one way a response comes back:

1. the exchange engine first (``_exchange.py``): a blocking request, an
   observation, a block of a transfer;
2. else the user's response handler (the handler loop).

NACKs go the same way; session events update the session and reach the
user's event handler; requests and certificate names go to the server side.
An internal interface of ``context.py``; its names are public within the
package, not to users.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Optional, Union

from ._binding import ffi, lib
from ._exchange import Exchanges
from .capabilities import BACKEND
from .client.session import Session, nack_error
from .codes import Event, NackReason
from .errors import CoapError
from .options import CriticalOptionError, unknown_critical_options
from .pdu import PDU, OptionPacker, Response, _OptionReader, response_from_packed
from .server.session import ServerSession

if TYPE_CHECKING:
    from ._credentials import Credentials
    from ._loop import Loop
    from .server.serving import Server

__all__ = ["Dispatch", "EventHandler", "NackHandler", "ResponseHandler"]

#: ``handler(session, sent, received, mid)``: ``sent`` is None when libcoap no longer
#: has it; returning False leaves the response unhandled (libcoap answers a CON with RST).
ResponseHandler = Callable[[Union[Session, None], Union[PDU, None], PDU, int], Optional[bool]]
#: ``handler(session, sent, reason, mid)``: a NackReason, or the int libcoap gave.
NackHandler = Callable[[Union[Session, None], Union[PDU, None], Union[NackReason, int], int], None]
#: ``handler(session, event)``: an Event, or the int libcoap gave.
EventHandler = Callable[[Union[Session, None], Union[Event, int]], None]

_DTLS_CONNECTED = int(Event.DTLS_CONNECTED)
_TLS_FAILED = int(NackReason.TLS_FAILED)
_ESTABLISHED = lib.COAP_SESSION_STATE_ESTABLISHED
_NULL = ffi.NULL
_borrowed = PDU._borrowed
_SERVER_SESSION_DEL = int(Event.SERVER_SESSION_DEL)
_LIBCOAP_DROPS_CRITICAL = bool(lib.LCP_DROPS_UNKNOWN_CRITICAL_RESPONSE)
_RAISES_CONNECTED = BACKEND.raises_client_connected


class Dispatch:
    """One Context's dispatch of libcoap's callbacks (see the module)."""

    def __init__(
        self,
        loop: Loop,
        exchanges: Exchanges,
        server: Server,
        credentials: Credentials,
        registered: set[int],
    ) -> None:
        self.loop = loop
        self.exchanges = exchanges
        self.server = server
        self.credentials = credentials
        self.registered = registered  # option numbers registered with libcoap
        self.response_handler: ResponseHandler | None = None
        self.nack_handler: NackHandler | None = None
        self.event_handler: EventHandler | None = None
        # Client DTLS sessions whose DTLS_CONNECTED the Context raises itself (where
        # libcoap does not: BACKEND.raises_client_connected), each with the libcoap
        # session it was raised for in the current handshake (None: not yet).
        self.connect_watch: dict[Session, Any] = {}
        self.info = ffi.new("lcp_pdu_info_t *")
        self.reader = _OptionReader()
        self.packer = OptionPacker()
        if not _LIBCOAP_DROPS_CRITICAL:
            exchanges.reject = self.critical_error  # for the responses claimed in C

    def store_error(self, error: BaseException) -> None:
        self.loop.store_error(error)

    # -- responses and NACKs ------------------------------------------------------------------

    def critical_error(self, response: Response) -> CriticalOptionError | None:
        """The error for a response with a critical option this client does not know,
        rejected as libcoap 4.3 does itself (RFC 7252, 5.4.1); libcoap 4.2 lets it by."""
        unknown = unknown_critical_options(response.options, self.registered)
        return CriticalOptionError(unknown) if unknown else None

    def on_response(
        self,
        session: Session | None,
        sent: Any,
        sent_info: Any,
        received: Any,
        info: Any,
        mid: int,
    ) -> int:
        """``sent_info``, ``info``: the fields of ``sent`` (if any) and ``received``."""
        if self.connect_watch:
            self.report_connected()
        if session is not None:
            table = self.exchanges.by_session.get(session)
            if table:
                token = ffi.buffer(info.token, info.token_len)[:]
                exchange = table.get(token)
                if exchange is not None:
                    if exchange.abandoned:
                        return 1  # its owner gave up: acknowledged and dropped
                    payload = (
                        ffi.buffer(info.payload, info.payload_len)[:] if info.payload_len else b""
                    )
                    response = response_from_packed(
                        info.code, payload, self.packer.pack(received), info.type, info.mid, token
                    )
                    error = None if _LIBCOAP_DROPS_CRITICAL else self.critical_error(response)
                    self.exchanges.complete(exchange, response, error)
                    return 1
        handler = self.response_handler
        if handler is None:
            return 0  # nobody asked for this: libcoap answers a CON with RST
        reader = self.reader
        sent_pdu = _borrowed(sent, reader, sent_info) if sent else None  # (not NULL)
        received_pdu = _borrowed(received, reader, info)
        loop = self.loop
        loop.dispatching += 1
        try:
            result = handler(session, sent_pdu, received_pdu, mid)
        finally:
            loop.dispatching -= 1
            received_pdu._ptr = None  # the handler has returned: see PDU._borrowed
            if sent_pdu is not None:
                sent_pdu._ptr = None
        return 0 if result is False else 1

    def on_nack(self, session: Session | None, sent: Any, reason: int, mid: int) -> None:
        if self.connect_watch:
            self.report_connected()
        if session is not None:
            token = None
            if sent != _NULL:
                info = self.info
                lib.lcp_pdu_info(sent, info)
                token = ffi.buffer(info.token, info.token_len)[:] if info.token_len else b""
            exchanges = self.exchanges
            exchange = exchanges.find(session, token, mid)
            lasting = exchange is not None and exchange.on_response is not None
            if reason == _TLS_FAILED and not lasting:
                session._note_tls_failure()
            if exchange is not None:
                exchanges.fail(exchange, reason, lambda: nack_error(reason, session))
                return
        handler = self.nack_handler
        if handler is None:
            return
        sent_pdu = None
        if sent != _NULL:
            lib.lcp_pdu_info(sent, self.info)
            sent_pdu = _borrowed(sent, self.reader, self.info)
        try:
            why: NackReason | int = NackReason(reason)
        except ValueError:
            why = reason
        loop = self.loop
        loop.dispatching += 1
        try:
            handler(session, sent_pdu, why, mid)
        finally:
            loop.dispatching -= 1
            if sent_pdu is not None:
                sent_pdu._invalidate("borrowed by a handler that has returned")

    # -- events -----------------------------------------------------------------------------

    def on_event(self, session: Session | None, event: int) -> None:
        if event == _DTLS_CONNECTED and session is not None and session in self.connect_watch:
            # libcoap raised it after all: this handshake is reported.
            self.connect_watch[session] = session._ptr
        if session is not None:
            session._note_event(event)
        if event == _SERVER_SESSION_DEL and isinstance(session, ServerSession):
            # libcoap frees it right after this event.
            try:
                self.deliver_event(session, event)
            finally:
                session._detach(CoapError(f"the session with {session.uri} has ended"))
            return
        self.deliver_event(session, event)

    def deliver_event(self, session: Session | None, event: int) -> None:
        handler = self.event_handler
        if handler is None:
            return
        try:
            what: Event | int = Event(event)
        except ValueError:
            what = event
        loop = self.loop
        loop.dispatching += 1
        try:
            handler(session, what)
        finally:
            loop.dispatching -= 1

    def report_connected(self) -> None:
        """Raise DTLS_CONNECTED for watched client sessions whose handshake completed
        without libcoap raising it (its GnuTLS code does not): once per handshake."""
        watch = self.connect_watch
        for session, reported in list(watch.items()):
            ptr = session._ptr
            if ptr is None:
                del watch[session]
            elif lib.lcp_session_state(ptr) != _ESTABLISHED:
                watch[session] = None  # (again) handshaking: report its end
            elif reported is None or reported != ptr:
                watch[session] = ptr
                session._note_event(_DTLS_CONNECTED)
                try:
                    self.deliver_event(session, _DTLS_CONNECTED)
                except BaseException as error:
                    self.loop.store_error(error)

    # -- the server side ----------------------------------------------------------------------

    def on_cn(self, session_ptr: Any, session: Any, cn: str, depth: int) -> None:
        self.server.on_cn(session_ptr, session, cn, depth)

    def server_psk(self) -> Any:
        """The endpoints' PSK setup (libcoap 4.2's key lookup has no argument)."""
        return self.credentials.server_psk
