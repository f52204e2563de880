"""What a resource handler gets: the Request (a copy) and the ServerResponse to fill."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._libcoap import ffi, lib
from .codes import Code, ContentFormat, MessageType, OptionNumber, Proto
from .errors import CoapError, PayloadTooLargeError
from .pdu import (
    Option,
    OptionValue,
    _OptionReader,
    check_fits,
    encode_option,
    first_option,
    write_options,
)

if TYPE_CHECKING:
    from .session import ServerSession

__all__ = ["Request", "ServerResponse"]

_URI_PATH = int(OptionNumber.URI_PATH)
_URI_QUERY = int(OptionNumber.URI_QUERY)
_CONTENT_FORMAT = int(OptionNumber.CONTENT_FORMAT)
_ACCEPT = int(OptionNumber.ACCEPT)

DEFAULT_CODES = {
    Code.GET: Code.CONTENT,
    Code.FETCH: Code.CONTENT,
    Code.POST: Code.CHANGED,
    Code.PUT: Code.CHANGED,
    Code.PATCH: Code.CHANGED,
    Code.IPATCH: Code.CHANGED,
    Code.DELETE: Code.DELETED,
}


def _uint(value: bytes | None) -> int | None:
    return None if value is None else int.from_bytes(value, "big")


class Request:
    """An incoming request, copied out of libcoap: safe to keep after the handler returns."""

    __slots__ = ("code", "mid", "options", "payload", "session", "token", "type")

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
        self.code = code
        self.type = type
        self.mid = mid
        self.token = token
        self.payload = payload
        self.options = options
        self.session = session

    @classmethod
    def _from_pdu(
        cls, ptr: Any, info: Any, reader: _OptionReader, session: ServerSession
    ) -> Request:
        lib.lcp_pdu_info(ptr, info)
        raw = info.code
        try:
            code: Code | int = Code(raw)
        except ValueError:
            code = raw
        token = ffi.buffer(info.token, info.token_len)[:] if info.token_len else b""
        payload = ffi.buffer(info.payload, info.payload_len)[:] if info.payload_len else b""
        options = reader.read(ptr)
        return cls(code, MessageType(info.type), info.mid, token, payload, options, session)

    @property
    def method(self) -> str:
        """The method name: ``"GET"``, ``"POST"``, ..."""
        return self.code.name if isinstance(self.code, Code) else str(self.code)

    @property
    def text(self) -> str:
        return self.payload.decode("utf-8")

    def option(self, number: int) -> bytes | None:
        """The first value of an option, or None."""
        return first_option(self.options, number)

    @property
    def path(self) -> str:
        """The Uri-Path, segments joined with ``/`` (``""`` for the root)."""
        return "/".join(v.decode("utf-8", "replace") for n, v in self.options if n == _URI_PATH)

    @property
    def query(self) -> tuple[str, ...]:
        """The Uri-Query values, e.g. ``("a=1", "b")``."""
        return tuple(v.decode("utf-8", "replace") for n, v in self.options if n == _URI_QUERY)

    @property
    def content_format(self) -> int | None:
        return _uint(self.option(_CONTENT_FORMAT))

    @property
    def accept(self) -> int | None:
        return _uint(self.option(_ACCEPT))

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


class ServerResponse:
    """The response a handler fills in; libcoap sends it when the handler returns.

    Changing it after the handler returned raises ``CoapError`` (it is gone).
    """

    __slots__ = ("_code", "_content_format", "_done", "_options", "_payload")

    def __init__(self, default_code: Code) -> None:
        self._code: Code | int = default_code
        self._payload: bytes | bytearray | memoryview | str = b""
        self._options: list[Option] = []
        self._content_format: ContentFormat | int | None = None
        self._done = False

    def _check(self) -> None:
        if self._done:
            raise CoapError("this response was sent when its handler returned")

    @property
    def code(self) -> Code | int:
        return self._code

    @code.setter
    def code(self, value: Code | int | str) -> None:
        self._check()
        if isinstance(value, str):
            self._code = Code.from_dotted(value)
        elif isinstance(value, int) and 0 <= int(value) <= 255:
            try:
                self._code = Code(value)
            except ValueError:
                self._code = int(value)
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

    def add_option(self, number: int, value: OptionValue = b"") -> None:
        """Add an option; ints are sent as uint, str as UTF-8."""
        self._check()
        self._options.append(encode_option(number, value))

    def _write(
        self, ptr: Any, max_pdu: int, token_len: int, large: tuple[Any, Any, Any, Any]
    ) -> None:
        """Fill the C response; a body larger than one PDU goes block-wise (libcoap 4.3)."""
        options = list(self._options)
        if self._content_format is not None:
            options.append(encode_option(_CONTENT_FORMAT, int(self._content_format)))
        options.sort(key=lambda o: o[0])
        body = self._payload
        payload = body.encode() if isinstance(body, str) else bytes(body)
        block_wise = False
        if payload:
            try:
                check_fits(max_pdu, token_len, options, len(payload))
            except PayloadTooLargeError:
                if not lib.LCP_HAS_BLOCK:
                    raise
                block_wise = True
        lib.lcp_pdu_set_code(ptr, int(self._code))
        write_options(ptr, options)
        if block_wise:
            resource, session, request, query = large
            if not lib.lcp_add_data_large_response(
                resource, session, request, ptr, query, payload, len(payload)
            ):
                raise CoapError("libcoap refused the block-wise response body")
        elif payload and not lib.coap_add_data(ptr, len(payload), payload):
            raise CoapError("libcoap refused the response payload")

    def __repr__(self) -> str:
        code = self._code.dotted if isinstance(self._code, Code) else str(self._code)
        return f"<ServerResponse {code} payload={len(self.payload)} bytes>"
