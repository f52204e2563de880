"""ServerSession: the session libcoap made for a client of one of the server's endpoints."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable

from .._binding import ffi, lib
from ..client.session import Session
from ..codes import Proto
from ..errors import CoapError
from ..uri import URI

if TYPE_CHECKING:
    from .._exchange import Exchanges
    from .._loop import Loop
    from ..context import Context

__all__ = ["ServerSession"]

_SERVER_SESSION_EVENTS = bool(lib.LCP_HAS_SERVER_SESSION_EVENTS)


class ServerSession(Session):
    """A session libcoap made for a client of one of our endpoints.

    libcoap owns it and frees it when the client goes idle; the wrapper then
    raises ``CoapError``. ``close()`` only detaches the wrapper.
    """

    def __init__(
        self,
        context: Context,
        loop: Loop,
        exchanges: Exchanges,
        ptr: Any,
        gone: Callable[[ServerSession], None],
    ) -> None:
        ip = ffi.new("char[]", 64)
        port = ffi.new("uint16_t *")
        host = ffi.string(ip).decode() if lib.lcp_session_address(ptr, 1, ip, 64, port) else "?"
        proto = Proto(lib.lcp_session_proto(ptr))
        scheme = {Proto.DTLS: "coaps", Proto.TCP: "coap+tcp", Proto.TLS: "coaps+tcp"}.get(
            proto, "coap"
        )
        uri = URI(scheme, host, int(port[0]), (), ())
        super().__init__(context, loop, exchanges, ptr, uri, [])
        self._server_gone = gone
        self._check_alive = not _SERVER_SESSION_EVENTS  # see _alive()
        self.peer = (host, int(port[0]))
        self._psk_known = proto not in (Proto.DTLS, Proto.TLS)
        self._psk: bytes | None = None
        # Where to find the session again, for libcoap generations that free
        # server sessions without an event (see _alive()).
        self._peer_addr = ffi.new("coap_address_t *")
        ifindex = ffi.new("int *")
        lib.lcp_session_peer(ptr, self._peer_addr, ifindex)
        self._ifindex = int(ifindex[0])

    def _alive(self) -> bool:
        """False once libcoap has freed the session (checked without touching it)."""
        ptr, ctx = self._ptr, self._loop.ptr
        if ptr is None or ctx is None:
            return False
        if _SERVER_SESSION_EVENTS:
            return True
        return bool(
            lib.lcp_session_alive(ctx, ptr, self._peer_addr, self._ifindex)
            and lib.coap_session_get_app_data(ptr) == self._handle
        )

    def _checked(self, renew: bool = True) -> Any:
        self._loop.enter()
        if self._ptr is not None and not self._alive():
            self._forget()
        if self._ptr is None:
            raise CoapError(f"the session with {self.uri} has ended")
        return self._ptr

    def _psk_identity_cached(self) -> bytes | None:
        if not self._psk_known and self._ptr is not None and self._alive():
            self._psk = self.psk_identity
            self._psk_known = True
        return self._psk

    def close(self) -> None:
        """Forget this session on the Python side (libcoap keeps and frees it)."""
        if self._ptr is not None:
            self._loop.enter_for_close()
            self._detach(CoapError(f"the session with {self.uri} was closed"))

    def _detach(self, error: BaseException) -> None:
        if self._ptr is not None and self._alive():
            lib.coap_session_set_app_data(self._ptr, ffi.NULL)
        self._forget(error)

    def _forget(self, error: BaseException | None = None) -> None:
        """Drop the wrapper without touching the C session (it may be gone)."""
        self._ptr = None
        self.closed = True
        self._fail_all(error or CoapError(f"the session with {self.uri} has ended"))
        self._server_gone(self)

    def __repr__(self) -> str:
        state = "gone" if self._ptr is None else "open"
        return f"<ServerSession {self.uri} {state}>"
