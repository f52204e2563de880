"""What a resource handler gets: the Request (a copy) and the ServerResponse to fill."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, Callable

from .._binding import ffi, lib
from ..codes import CODE_BY_BYTE as _CODE_OF
from ..codes import Code, ContentFormat, MessageType, OptionNumber, Proto
from ..errors import CoapError, check
from ..options import OptionAccessors
from ..pdu import (
    Option,
    OptionValue,
    PackedOptions,
    encode_option,
)

if TYPE_CHECKING:
    from .delayed import DelayedResponse
    from .session import ServerSession

__all__ = ["Request", "ServerResponse"]

_URI_PATH = int(OptionNumber.URI_PATH)
_URI_QUERY = int(OptionNumber.URI_QUERY)
_CONTENT_FORMAT = int(OptionNumber.CONTENT_FORMAT)
_ETAG = int(OptionNumber.ETAG)
_MAX_AGE = int(OptionNumber.MAX_AGE)
_LOCATION_PATH = int(OptionNumber.LOCATION_PATH)
_TYPE_OF: tuple[MessageType, ...] = tuple(sorted(MessageType, key=int))
_unpack = ffi.unpack
_object_new = object.__new__
_serve_reply = lib.lcp_serve_reply

DEFAULT_CODES = {
    Code.GET: Code.CONTENT,
    Code.FETCH: Code.CONTENT,
    Code.POST: Code.CHANGED,
    Code.PUT: Code.CHANGED,
    Code.PATCH: Code.CHANGED,
    Code.IPATCH: Code.CHANGED,
    Code.DELETE: Code.DELETED,
}


class Request(PackedOptions):
    """An incoming request, copied out of libcoap: safe to keep after the handler returns.

    ``options`` holds the raw ``(number, bytes)`` pairs; ``uri_path``, ``uri_query``,
    ``content_format``, ``accept``, ``etag``, ``observe``, ``typed_options``, ... read them.
    """

    __slots__ = ("code", "mid", "payload", "session", "token", "type")

    def __init__(
        self,
        code: Code | int,
        type: MessageType,
        mid: int,
        token: bytes,
        payload: bytes,
        options: list[Option],
        session: ServerSession,
    ) -> None:
        self.code: Code = _CODE_OF[code] if 0 <= code <= 255 else Code(code)  # (ValueError)
        self.type = type
        self.mid = mid
        self.token = token
        self.payload = payload
        self._options = options
        self._packed = b""
        self.session = session

    @classmethod
    def _served(cls, info: Any, raw_options: bytes, session: ServerSession) -> Request:
        """The request lcp_serve_read described (``info``): everything copied now, the
        options kept encoded until first asked for."""
        self = _object_new(cls)
        self.code = _CODE_OF[info.code]  # no Enum call per request
        self.type = _TYPE_OF[info.type]
        self.mid = info.mid
        n = info.token_len
        self.token = _unpack(info.token, n) if n else b""
        n = info.payload_len
        self.payload = _unpack(info.payload, n) if n else b""
        self._options = None
        self._packed = raw_options
        self.session = session
        return self

    @property
    def method(self) -> str:
        """The method name: ``"GET"``, ``"POST"``, ...; a code without a name as its
        number (``"8"``)."""
        code = self.code
        return code.name if code.is_known else str(int(code))

    @property
    def text(self) -> str:
        return self.payload.decode("utf-8")

    @property
    def path(self) -> str:
        """The Uri-Path, segments joined with ``/`` (``""`` for the root)."""
        return "/".join(v.decode("utf-8", "replace") for n, v in self.options if n == _URI_PATH)

    @property
    def query(self) -> tuple[str, ...]:
        """The Uri-Query values, e.g. ``("a=1", "b")``."""
        return tuple(v.decode("utf-8", "replace") for n, v in self.options if n == _URI_QUERY)

    @property
    def peer(self) -> tuple[str, int]:
        """The client's address and port."""
        return self.session.peer

    @property
    def proto(self) -> Proto:
        return self.session.uri.proto

    @property
    def peer_cn(self) -> str | None:
        """The common name of the client certificate (certificate DTLS), else None."""
        return self.session.peer_cn

    @property
    def psk_identity(self) -> bytes | None:
        """The identity the client used (PSK DTLS), else None."""
        return self.session._psk_identity_cached()

    def __repr__(self) -> str:
        return f"<Request {self.method} /{self.path} from {self.peer[0]}:{self.peer[1]}>"


class ServerResponse(OptionAccessors):
    """The response a handler fills in; libcoap sends it when the handler returns.

    Changing it after the handler returned raises ``CoapError`` (it is gone).
    ``etag``, ``max_age`` and ``location_path`` may be set (replacing options of
    that number); every typed view of ``OptionAccessors`` reads what is set so far.
    """

    __slots__ = (
        "_code",
        "_content_format",
        "_delayed",
        "_done",
        "_lent",
        "_options",
        "_origin",
        "_payload",
    )

    def __init__(self, default_code: Code) -> None:
        self._code: Code = default_code
        self._payload: bytes | bytearray | memoryview | str = b""
        self._options: list[Option] = []
        self._content_format: ContentFormat | int | None = None
        self._done = False
        # Set by the dispatcher: how delay() makes its DelayedResponse; what it made.
        self._origin: Callable[[ServerResponse, bool], DelayedResponse] | None = None
        self._delayed: DelayedResponse | None = None
        # Lent to a coroutine handler that suspended (coroutines.py): still written
        # after the handler returned, sent as its delayed response at the end.
        self._lent = False

    def delay(self, *, acknowledge: bool = True) -> DelayedResponse:
        """Answer later: return a :class:`~libcoap_py.delayed.DelayedResponse` to fill in
        and ``send()`` from the Context's thread after the handler has returned.

        ``acknowledge=True``: a CON request gets an empty ACK now, and the response
        goes later as a separate (confirmable) message. ``acknowledge=False``:
        nothing now; the response goes later in the ACK (piggybacked), for answers
        within the client's ACK timeout. What was set on this response so far is
        carried over. Only in a handler, once per request; not for a request that
        registers an observer. See ``docs/server.md``, "Delayed responses".
        """
        self._check()
        if self._origin is None:
            raise CoapError("only the response given to a running handler can be delayed")
        if self._delayed is None:
            self._delayed = self._origin(self, bool(acknowledge))
        return self._delayed

    def _check(self) -> None:
        if self._done:
            raise CoapError("this response was sent when its handler returned")

    def _lend(self) -> DelayedResponse:
        """Delay this response for a coroutine handler that suspended: it stays open
        to writes after the handler returns, until ``_give_back()``."""
        delayed = self.delay()
        self._lent = True
        return delayed

    def _give_back(self) -> DelayedResponse | None:
        """The coroutine is over: what it wrote goes to the delayed response, which is
        returned (to be sent), and this one closes."""
        self._lent = False
        self._done = True
        delayed = self._delayed
        if delayed is not None and not delayed._done:
            delayed._code = self._code
            delayed._payload = self._payload
            delayed._options = list(self._options)
            delayed._content_format = self._content_format
        return delayed

    @property
    def code(self) -> Code:
        """The response code: set a ``Code``, an int (0..255) or ``"4.04"``."""
        return self._code

    @code.setter
    def code(self, value: Code | int | str) -> None:
        self._check()
        if isinstance(value, str):
            self._code = Code.from_dotted(value)
        elif isinstance(value, int) and 0 <= int(value) <= 255:
            self._code = _CODE_OF[value]
        else:
            raise ValueError(f"not a CoAP response code: {value!r}")

    @property
    def payload(self) -> bytes | bytearray | memoryview | str:
        return self._payload

    @payload.setter
    def payload(self, value: bytes | bytearray | memoryview | str) -> None:
        self._check()
        if not isinstance(value, (bytes, bytearray, memoryview, str)):
            raise TypeError(f"payload must be bytes or str, not {type(value).__name__}")
        self._payload = value

    @property
    def content_format(self) -> ContentFormat | int | None:
        return self._content_format

    @content_format.setter
    def content_format(self, value: ContentFormat | int | None) -> None:
        self._check()
        self._content_format = value

    @property
    def options(self) -> list[Option]:
        """Options added so far, as (number, bytes)."""
        return list(self._options)

    def _option_list(self) -> list[Option]:
        options = list(self._options)
        if self._content_format is not None:
            options.append(encode_option(_CONTENT_FORMAT, int(self._content_format)))
        options.sort(key=lambda o: o[0])
        return options

    def _replace(self, number: int, values: Iterable[Option]) -> None:
        """Drop every option ``number``, then add ``values`` (already encoded)."""
        self._check()
        new = list(values)
        self._options = [o for o in self._options if o[0] != number] + new

    @property
    def etag(self) -> bytes | None:
        """The (first) ETag set, or None; setting replaces it, None removes it."""
        return self._first_value(_ETAG)

    @etag.setter
    def etag(self, value: bytes | None) -> None:
        self._replace(_ETAG, [] if value is None else [encode_option(_ETAG, value)])

    @property
    def max_age(self) -> int | None:
        """Max-Age in seconds, or None; setting replaces it, None removes it."""
        return self._uint_value(_MAX_AGE)

    @max_age.setter
    def max_age(self, value: int | None) -> None:
        self._replace(_MAX_AGE, [] if value is None else [encode_option(_MAX_AGE, value)])

    @property
    def location_path(self) -> tuple[str, ...]:
        """Location-Path segments; set ``"a/b"`` or ``("a", "b")`` (None or ``""`` removes)."""
        return self._texts(_LOCATION_PATH)

    @location_path.setter
    def location_path(self, value: str | Iterable[str] | None) -> None:
        if value is None:
            segments: list[str] = []
        elif isinstance(value, str):
            segments = [s for s in value.split("/") if s]
        else:
            segments = list(value)
        self._replace(_LOCATION_PATH, [encode_option(_LOCATION_PATH, s) for s in segments])

    def add_option(self, number: int, value: OptionValue = b"") -> None:
        """Add an option; ints are sent as uint, str as UTF-8."""
        self._check()
        self._options.append(encode_option(number, value))

    def _simple_parts(self, etag_ok: bool = False) -> tuple[bytes, int, bytes] | None:
        """(ETag, Content-Format number or -1, payload) when the response is that simple:
        no other option (an ETag only with ``etag_ok``), a Content-Format that is a
        uint16; None when it is not (the general way writes it, and says what is wrong)."""
        options = self._options
        if not options:
            etag = b""
        elif etag_ok and len(options) == 1 and options[0][0] == _ETAG:
            etag = options[0][1]
        else:
            return None
        cf = self._content_format
        if cf is None:
            number = -1
        elif isinstance(cf, int) and 0 <= int(cf) <= 0xFFFF:
            number = int(cf)
        else:
            return None
        body = self._payload
        payload = (
            body if type(body) is bytes else body.encode() if isinstance(body, str) else bytes(body)
        )
        return etag, number, payload

    def _send_simple(self, session_ptr: Any, ptr: Any) -> bool:
        """Fill the C response in one call when it is code, at most a Content-Format and a
        payload that fits one PDU; False when it is not (nothing written: use _write)."""
        parts = self._simple_parts()
        if parts is None:
            return False
        _, number, payload = parts
        done: int = _serve_reply(session_ptr, ptr, self._code, number, payload, len(payload))
        if done < 0:
            check(done, "libcoap refused the response", zero_ok=True)
        return done > 0

    def __repr__(self) -> str:
        return f"<ServerResponse {self._code.dotted} payload={len(self.payload)} bytes>"
