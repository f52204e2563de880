"""PDUs: the messages libcoap sends and receives, and Response, a received answer copied out."""

from __future__ import annotations

import struct
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any, Callable

from ._binding import ffi, lib
from .codes import CODE_BY_BYTE as _CODES
from .codes import Code, MessageType
from .errors import NO_PDU, REFUSED_PAYLOAD, CoapError, PayloadTooLargeError, check
from .linkformat import Link, parse_link_format
from .options import MAX_OPTION_NUMBER as MAX_OPTION_NUMBER
from .options import Option, OptionAccessors, OptionValue, encode_option

if TYPE_CHECKING:
    from .client.session import Session
    from .context import Context

__all__ = ["PDU", "Option", "OptionValue", "Response", "encode_option"]

# Enum lookups without the Enum machinery, for the per-response path (_CODES: by byte,
# every byte a Code).
_TYPES: tuple[MessageType, ...] = tuple(MessageType(i) for i in range(4))
_buffer = ffi.buffer
_NULL = ffi.NULL
_pack_options = lib.lcp_pdu_pack_options
_OPTION_HEAD = struct.Struct(">HI")  # a packed option's number and value length
_gc = ffi.gc
_object_new = object.__new__
_delete_pdu = lib.coap_delete_pdu
_add_option = lib.coap_add_option
_send_new = lib.lcp_send_new
_coap_send = lib.coap_send
#: ``_ptr`` of an owned PDU libcoap has not made yet (see PDU._unbuilt).
_UNBUILT: Any = type("Unbuilt", (), {"__repr__": lambda self: "<unbuilt PDU>"})()
_SENT = "sent (send() consumed it)"
_NO_PDU, _NO_ROOM_OPTION = lib.LCP_NO_PDU, lib.LCP_NO_ROOM_OPTION
#: ``build(type, code)``: a new request PDU of the session (its C pointer, owned by
#: the caller) and its token's length; raises what the session's guard raises.
PduBuilder = Callable[[int, int], "tuple[Any, int]"]


def _number_of(option: Option) -> int:
    return option[0]


def first_option(options: Iterable[Option], number: int) -> bytes | None:
    """The first value of option ``number`` in ``options``, or None."""
    for n, value in options:
        if n == number:
            return value
    return None


def encoded_options_size(options: Sequence[Option]) -> int:
    """Bytes the options take on the wire (RFC 7252, 3.1), given sorted by number."""
    size, last = 0, 0
    for number, value in options:
        size += 1
        for field in (number - last, len(value)):
            if field >= 269:
                size += 2
            elif field >= 13:
                size += 1
        size += len(value)
        last = number
    return size


class _OptionReader:
    """Scratch arrays for reading a PDU's options in one C call (one per Context)."""

    def __init__(self, room: int = 32) -> None:
        self._grow(room)

    def _grow(self, room: int) -> None:
        self.room = room
        self.numbers = ffi.new("uint16_t[]", room)
        self.values = ffi.new("const uint8_t *[]", room)
        self.lengths = ffi.new("size_t[]", room)

    def read(self, ptr: Any) -> list[Option]:
        count = lib.lcp_pdu_options(ptr, self.numbers, self.values, self.lengths, self.room)
        if count > self.room:
            self._grow(count)
            count = lib.lcp_pdu_options(ptr, self.numbers, self.values, self.lengths, self.room)
        numbers, values, lengths = self.numbers, self.values, self.lengths
        buffer = ffi.buffer
        return [(numbers[i], buffer(values[i], lengths[i])[:]) for i in range(count)]


class OptionPacker:
    """A scratch buffer for copying a PDU's options out in one C call, packed
    (lcp_pdu_pack_options), to be unpacked only when first asked for."""

    __slots__ = ("buffer", "room")

    def __init__(self, room: int = 256) -> None:
        self.room = room
        self.buffer = ffi.new("uint8_t[]", room)

    def pack(self, ptr: Any) -> bytes:
        need: int = _pack_options(ptr, self.buffer, self.room, _NULL)
        if need > self.room:
            self.room = max(need, 2 * self.room)
            self.buffer = ffi.new("uint8_t[]", self.room)
            need = _pack_options(ptr, self.buffer, self.room, _NULL)
        return _buffer(self.buffer, need)[:] if need else b""


def pack_options(options: Iterable[Option]) -> bytes:
    """Options packed as glue.c's lcp_pack_option() packs them (see unpack_options)."""
    pack = _OPTION_HEAD.pack
    return b"".join(pack(number, len(value)) + value for number, value in options)


def unpack_options(packed: bytes) -> list[Option]:
    """Options as glue.c's lcp_pack_option() packs them: number (2 bytes), value
    length (4 bytes, both big-endian), value; in wire order."""
    options: list[Option] = []
    head = _OPTION_HEAD.unpack_from
    at, end = 0, len(packed)
    while at < end:
        number, length = head(packed, at)
        at += 6
        options.append((number, packed[at : at + length]))
        at += length
    return options


class PackedOptions(OptionAccessors):
    """Options as ``(number, bytes)`` pairs, kept packed (see unpack_options) until
    first asked for: a message copied out of libcoap that may never be read."""

    __slots__ = ("_options", "_packed")

    _options: list[Option] | None
    _packed: bytes

    @property
    def options(self) -> list[Option]:
        """The options as ``(number, bytes)`` pairs, in wire order."""
        options = self._options
        if options is None:
            options = self._options = unpack_options(self._packed)
        return options

    @options.setter
    def options(self, value: list[Option]) -> None:
        self._options = value

    def option(self, number: int) -> bytes | None:
        """The first value of an option, or None."""
        return first_option(self.options, number)

    def _option_list(self) -> list[Option]:
        return self.options


class Response(PackedOptions):
    """A response as received: code, payload, options, copied out of libcoap.

    ``options`` holds the raw ``(number, bytes)`` pairs; the typed views
    (``content_format``, ``etag``, ``max_age``, ``location_path``, ``observe``,
    ``typed_options``, ...) read them.
    """

    __slots__ = ("code", "mid", "payload", "token", "type")

    def __init__(
        self,
        code: Code | int,
        payload: bytes,
        options: list[Option],
        type: MessageType | int = MessageType.ACK,
        mid: int = 0,
        token: bytes = b"",
    ) -> None:
        self.code: Code = _CODES[code] if 0 <= code <= 255 else Code(code)  # (ValueError)
        self.payload = payload
        self._options = options
        self._packed = b""
        self.type = _TYPES[type] if type.__class__ is int and 0 <= type <= 3 else MessageType(type)
        self.mid = mid
        self.token = token

    @property
    def text(self) -> str:
        """The payload decoded as UTF-8."""
        return self.payload.decode("utf-8")

    def links(self) -> list[Link]:
        """The payload parsed as link format (RFC 6690), e.g. of ``/.well-known/core``.

        Raises ``ValueError`` when the payload is not well-formed link format.
        """
        return parse_link_format(self.payload)

    def __repr__(self) -> str:
        code = self.code.dotted
        more = "..." if len(self.payload) > 40 else ""
        return f"<Response {code} payload={self.payload[:40]!r}{more}>"


def response_from_packed(
    code: int, payload: bytes, packed: bytes, type: int, mid: int, token: bytes
) -> Response:
    """A response copied out of libcoap, its options packed (OptionPacker) until first
    asked for; ``code`` and ``type`` are the PDU's bytes. (For the dispatch.)"""
    self = _object_new(Response)
    self.code = _CODES[code]
    self.payload = payload
    self._options = None
    self._packed = packed
    self.type = _TYPES[type]
    self.mid = mid
    self.token = token
    return self


class PDU(OptionAccessors):
    """A CoAP message.

    Made by ``Session.new_pdu()`` (owned by you until ``Session.send()``
    consumes it) or handed to a handler (borrowed: valid only while the
    handler runs). Using a PDU after it was sent, after its handler returned,
    or after its Context was closed raises ``CoapError``.
    """

    __slots__ = (
        "_context",
        "_info",
        "_options",
        "_owned",
        "_payload",
        "_ptr",
        "_reader",
        "_recipe",
        "_session",
        "_state",
        "_token_len",
    )

    # A borrowed PDU sets only _info, _owned, _ptr, _reader and _state; an owned one
    # all but _reader.
    _context: Context
    _info: Any
    _options: list[Option]
    _owned: bool
    _payload: bytes
    _ptr: Any
    _reader: _OptionReader | None
    _recipe: tuple[PduBuilder, int, int] | None
    _session: Session
    _state: str
    _token_len: int

    def __init__(self) -> None:
        raise TypeError("PDUs come from Session.new_pdu() or are handed to handlers")

    # -- construction (internal) ------------------------------------------------------------

    @classmethod
    def _owned_new(cls, ptr: Any, session: Session, context: Context, token_len: int) -> PDU:
        self = _object_new(cls)
        # Freed with the wrapper unless send() hands it to libcoap (which detaches this).
        self._ptr = _gc(ptr, _delete_pdu)
        self._owned = True
        self._session = session
        self._context = context
        self._state = "new"
        self._token_len = token_len
        self._options = []
        self._payload = b""
        self._info = None
        self._recipe = None
        return self

    @classmethod
    def _unbuilt(
        cls, session: Session, context: Context, build: PduBuilder, kind: int, code: int
    ) -> PDU:
        """An owned PDU with a fresh message ID and token that libcoap makes only when
        it is needed: when a field is read, or a payload sent (``_build``); ``_send``
        without a payload makes and sends it in one call (lcp_send_new)."""
        self = _object_new(cls)
        self._ptr = _UNBUILT
        self._owned = True
        self._session = session
        self._context = context
        self._state = "new"
        self._token_len = 0
        self._options = []
        self._payload = b""
        self._info = None
        self._recipe = (build, kind, code)
        return self

    def _build(self) -> Any:
        """Have libcoap make an unbuilt PDU now (see _unbuilt)."""
        recipe = self._recipe
        assert recipe is not None
        build, kind, code = recipe
        ptr, self._token_len = build(kind, code)
        self._ptr = ptr = _gc(ptr, _delete_pdu)
        self._recipe = None
        return ptr

    def _send(self, session: Session, session_ptr: Any, failure: str) -> int:
        """Hand this owned PDU to libcoap (``Session.send``; ``session_ptr`` is live):
        consumed, sent or not. Returns the message ID; ``failure``: the error's text
        when libcoap refuses it."""
        if not self._owned:
            raise TypeError("send() takes a PDU made by Session.new_pdu()")
        if self._session is not session:
            raise CoapError("this PDU was made for another session")
        ptr = self._ptr
        if ptr is _UNBUILT and not self._payload:
            # The common case (a fresh request, options only): made and sent in one call.
            recipe = self._recipe
            assert recipe is not None
            options = self._options
            if not options:
                blob = b""
            elif len(options) == 1:
                number, value = options[0]
                blob = _OPTION_HEAD.pack(number, len(value)) + value
            else:
                blob = pack_options(sorted(options, key=_number_of))
            self._ptr, self._state, self._recipe = None, _SENT, None
            mid: int = _send_new(session_ptr, recipe[1], recipe[2], blob, len(blob))
            if mid < 0:
                if mid == _NO_ROOM_OPTION:
                    raise CoapError("the PDU's options do not fit in one PDU of this session")
                check(mid, NO_PDU if mid == _NO_PDU else failure, zero_ok=True)
            return mid
        c_pdu = self._materialise(session_ptr) if self._options or self._payload else ptr
        if c_pdu is None:
            self._live()  # raises: sent already
        if c_pdu is _UNBUILT:
            c_pdu = self._build()
        _gc(c_pdu, None)  # libcoap's from here on
        self._ptr, self._state = None, _SENT
        mid = _coap_send(session_ptr, c_pdu)
        if mid < 0:
            check(mid, failure, zero_ok=True)
        return mid

    @classmethod
    def _borrowed(cls, ptr: Any, reader: _OptionReader, info: Any) -> PDU:
        """A handler's PDU; ``info``: its fields, read (lcp_pdu_info_t) for the handler."""
        self = _object_new(cls)
        self._ptr = ptr
        self._owned = False
        self._state = "borrowed by a handler that has returned"  # read once _ptr is None
        self._reader = reader
        self._info = info
        return self

    def _invalidate(self, why: str) -> None:
        """Called when a borrowed C PDU goes away (its handler returned)."""
        self._ptr = None
        self._state = why

    def _live(self) -> Any:
        ptr = self._ptr
        if ptr is None:
            raise CoapError(f"this PDU can no longer be used: {self._state}")
        if self._owned:
            if self._context.closed:
                raise CoapError("this PDU can no longer be used: its Context was closed")
            if ptr is _UNBUILT:
                ptr = self._build()
        return ptr

    def _check_usable(self) -> None:
        """_live()'s checks without making an unbuilt PDU."""
        if self._ptr is None or (self._owned and self._context.closed):
            self._live()  # raises

    def _read_info(self) -> Any:
        """The PDU's fields (lcp_pdu_info_t): read for a handler's PDU (which cannot
        change), read now for an owned one."""
        ptr = self._live()
        info = self._info
        if not self._owned:
            return info
        if info is None:
            info = self._info = ffi.new("lcp_pdu_info_t *")
        lib.lcp_pdu_info(ptr, info)
        return info

    # -- fields ---------------------------------------------------------------------------------

    @property
    def type(self) -> MessageType:
        kind: int = self._read_info().type
        return _TYPES[kind]

    @type.setter
    def type(self, value: MessageType | int) -> None:
        self._check_own()
        lib.lcp_pdu_set_type(self._live(), int(MessageType(value)))

    @property
    def code(self) -> Code:
        """The message code (a ``Code``; one without a name is a pseudo-member)."""
        if self._ptr is not None and not self._owned:  # a handler's PDU: read already
            raw: int = self._info.code
        else:
            raw = self._read_info().code
        return _CODES[raw]

    @code.setter
    def code(self, value: Code | int) -> None:
        self._check_own()
        lib.lcp_pdu_set_code(self._live(), check_code(value))

    @property
    def mid(self) -> int:
        return int(self._read_info().mid)

    @property
    def token(self) -> bytes:
        info = self._read_info()
        return bytes(ffi.buffer(info.token, info.token_len)) if info.token_len else b""

    @property
    def options(self) -> list[Option]:
        """Options as (number, bytes), in wire order (by number, repeats in order)."""
        if self._owned:
            self._check_usable()
            return sorted(self._options, key=lambda o: o[0])
        assert self._reader is not None
        return self._reader.read(self._live())

    def option(self, number: int) -> bytes | None:
        """The first value of an option, or None."""
        return first_option(self.options, number)

    def _option_list(self) -> list[Option]:
        return self.options

    @property
    def payload(self) -> bytes:
        if self._owned:
            self._check_usable()
            return self._payload
        info = self._read_info()
        return bytes(ffi.buffer(info.payload, info.payload_len)) if info.payload_len else b""

    @payload.setter
    def payload(self, value: bytes | bytearray | memoryview | str) -> None:
        self._check_own()
        self._check_usable()
        self._payload = value.encode("utf-8") if isinstance(value, str) else bytes(value)

    def add_option(self, number: int, value: OptionValue = b"") -> None:
        """Add an option; ints are sent as uint, str as UTF-8. Repeats keep their order."""
        if not self._owned or self._ptr is None or self._context.closed:
            self._check_own()
            self._check_usable()
        self._options.append(encode_option(number, value))

    def _check_own(self) -> None:
        if not self._owned:
            raise CoapError("a received PDU is read-only")

    def _materialise(self, session_ptr: Any) -> Any:
        """Write options and payload into the C PDU before it is sent; returns the pointer
        (None: sent already). The caller checked the Context is open."""
        ptr = self._ptr
        if ptr is None:
            return None
        if ptr is _UNBUILT:
            ptr = self._build()
        options = self._options
        if options:
            if len(options) > 1:
                options = sorted(options, key=_number_of)
                write_options(ptr, options)
            else:  # (write_options, inline: one Uri-Path, say)
                number, value = options[0]
                if not _add_option(ptr, number, len(value), value):
                    raise CoapError(_NO_ROOM.format(number))
        if self._payload:
            max_pdu = lib.coap_session_max_pdu_size(session_ptr)
            check_fits(max_pdu, self._token_len, options, len(self._payload))
            check(lib.coap_add_data(ptr, len(self._payload), self._payload), REFUSED_PAYLOAD)
        return ptr

    def __repr__(self) -> str:
        if self._ptr is None:
            return f"<PDU ({self._state})>"
        if self._ptr is _UNBUILT and self._recipe is not None:  # (a repr makes nothing)
            _, kind, code = self._recipe
            return f"<PDU {_TYPES[kind].name} {_CODES[code]!s} (ID given when sent)>"
        return f"<PDU {self.type.name} {self.code!s} mid={self.mid}>"


def check_code(value: object) -> int:
    """``value`` as a message code (0..255), or TypeError/ValueError naming it."""
    if value.__class__ is Code:
        return value
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"a message code is a coap.Code or an int, not {value!r}")
    if not 0 <= value <= 255:
        raise ValueError(f"a message code is 0..255 (class << 5 | detail), not {value}")
    return int(value)


_NO_ROOM = "option {} does not fit in the PDU"


def write_options(ptr: Any, options: Iterable[Option]) -> None:
    """Add options (sorted by number) to a C PDU."""
    add = _add_option
    for number, value in options:
        if not add(ptr, number, len(value), value):
            raise CoapError(_NO_ROOM.format(number))


def pdu_room(max_pdu: int, token_len: int, options: Sequence[Option]) -> int:
    """Bytes left for the payload in one PDU after header, token, options and marker."""
    return max_pdu - (4 + token_len + encoded_options_size(options) + 1)


def check_fits(max_pdu: int, token_len: int, options: Sequence[Option], payload_len: int) -> None:
    """Raise PayloadTooLargeError if header, token, options and payload exceed max_pdu."""
    room = pdu_room(max_pdu, token_len, options)
    if payload_len > room:
        raise PayloadTooLargeError(
            f"payload of {payload_len} bytes does not fit: this session's PDUs hold at most "
            f"{max_pdu} bytes, leaving {max(0, room)} bytes for the payload after header, "
            "token and options (a raw PDU must fit one datagram; request() and server "
            "responses go block-wise)"
        )
