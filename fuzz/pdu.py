"""CoAP messages (RFC 7252 section 3) encoded by hand, well formed or not.

This encoder is independent of the package's C one on purpose: the fuzzer
must be able to write option deltas and lengths in any of their forms, an
option list out of order, a token length that lies, a payload marker without
a payload.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import NamedTuple

# Message types.
CON, NON, ACK, RST = 0, 1, 2, 3

# Codes (class << 5 | detail).
EMPTY = 0x00
GET, POST, PUT, DELETE, FETCH, PATCH, IPATCH = 1, 2, 3, 4, 5, 6, 7
METHODS = (GET, POST, PUT, DELETE, FETCH, PATCH, IPATCH)
METHOD_NAMES = {
    GET: "GET",
    POST: "POST",
    PUT: "PUT",
    DELETE: "DELETE",
    FETCH: "FETCH",
    PATCH: "PATCH",
    IPATCH: "iPATCH",
}
#: Signalling codes 7.01-7.05 (RFC 8323; meaningless over UDP).
SIGNALLING = (0xE1, 0xE2, 0xE3, 0xE4, 0xE5)


def code(klass: int, detail: int) -> int:
    """The code byte of ``klass.detail``."""
    return (klass << 5) | detail


def dotted(code_byte: int) -> str:
    return f"{code_byte >> 5}.{code_byte & 0x1F:02d}"


# Option numbers.
IF_MATCH = 1
URI_HOST = 3
ETAG = 4
IF_NONE_MATCH = 5
OBSERVE = 6
URI_PORT = 7
LOCATION_PATH = 8
OSCORE = 9
URI_PATH = 11
CONTENT_FORMAT = 12
MAX_AGE = 14
URI_QUERY = 15
HOP_LIMIT = 16
ACCEPT = 17
Q_BLOCK1 = 19
LOCATION_QUERY = 20
BLOCK2 = 23
BLOCK1 = 27
SIZE2 = 28
Q_BLOCK2 = 31
PROXY_URI = 35
PROXY_SCHEME = 39
SIZE1 = 60
ECHO = 252
NO_RESPONSE = 258
REQUEST_TAG = 292

Option = tuple[int, bytes]


def uint(value: int) -> bytes:
    """An unsigned option value in the fewest bytes (0 is empty)."""
    if value < 0:
        raise ValueError("negative option value")
    return value.to_bytes((value.bit_length() + 7) // 8, "big")


def block(num: int, more: bool, szx: int) -> bytes:
    """A Block1/Block2 value (RFC 7959): NUM, M, SZX."""
    return uint((num << 4) | (8 if more else 0) | (szx & 7))


def block_size(szx: int) -> int:
    return 1 << (szx + 4)


def _nibble(value: int) -> tuple[int, bytes]:
    """The 4-bit field and the extension bytes of a delta or length (RFC 7252 3.1)."""
    if value < 13:
        return value, b""
    if value < 269:
        return 13, bytes([value - 13])
    return 14, (value - 269).to_bytes(2, "big")


def option_header(delta: int, length: int) -> bytes:
    """The option header for ``delta`` and ``length`` (13/14 extensions as needed)."""
    d, dext = _nibble(delta)
    n, next_ = _nibble(length)
    return bytes([(d << 4) | n]) + dext + next_


def encode_options(options: list[Option] | tuple[Option, ...]) -> bytes:
    """Options in ascending number order (stable), delta-encoded."""
    out = bytearray()
    last = 0
    for number, value in sorted(options, key=lambda o: o[0]):
        out += option_header(number - last, len(value))
        out += value
        last = number
    return bytes(out)


@dataclass(frozen=True)
class Message:
    """One CoAP message; ``encode()`` writes it. ``tkl`` overrides the token length field,
    ``raw_options`` the encoded options, ``marker`` forces a payload marker; ``raw``, when
    set, is the whole datagram."""

    type: int = CON
    code: int = GET
    mid: int = 0
    token: bytes = b""
    options: tuple[Option, ...] = ()
    payload: bytes = b""
    version: int = 1
    tkl: int | None = None
    raw_options: bytes | None = None
    marker: bool | None = None
    raw: bytes | None = None
    note: str = field(default="", compare=False)

    def with_(self, **changes: object) -> Message:
        return replace(self, **changes)  # type: ignore[arg-type]

    def option(self, number: int) -> bytes | None:
        for n, v in self.options:
            if n == number:
                return v
        return None

    def set_option(self, number: int, value: bytes | None) -> Message:
        """A copy with every option ``number`` replaced by one with ``value`` (None: removed)."""
        kept = tuple(o for o in self.options if o[0] != number)
        if value is not None:
            kept += ((number, value),)
        return replace(self, options=kept)

    def encode(self) -> bytes:
        if self.raw is not None:
            return self.raw
        tkl = len(self.token) if self.tkl is None else self.tkl
        head = bytes(
            [
                ((self.version & 3) << 6) | ((self.type & 3) << 4) | (tkl & 15),
                self.code & 0xFF,
                (self.mid >> 8) & 0xFF,
                self.mid & 0xFF,
            ]
        )
        opts = encode_options(self.options) if self.raw_options is None else self.raw_options
        marker = bool(self.payload) if self.marker is None else self.marker
        return head + self.token + opts + (b"\xff" if marker else b"") + self.payload


class Answer(NamedTuple):
    """What the decoder makes of a datagram from the server."""

    type: int
    code: int
    mid: int
    token: bytes
    options: tuple[Option, ...]
    payload: bytes


def decode(data: bytes) -> Answer | None:
    """A well-formed message, else None (the fuzzer only decodes what servers send)."""
    if len(data) < 4 or data[0] >> 6 != 1:
        return None
    tkl = data[0] & 15
    if tkl > 8 or len(data) < 4 + tkl:
        return None
    pos = 4 + tkl
    options: list[Option] = []
    number = 0
    while pos < len(data) and data[pos] != 0xFF:
        byte = data[pos]
        pos += 1
        parts = []
        for nib in (byte >> 4, byte & 15):
            if nib == 13:
                if pos >= len(data):
                    return None
                nib = 13 + data[pos]
                pos += 1
            elif nib == 14:
                if pos + 2 > len(data):
                    return None
                nib = 269 + int.from_bytes(data[pos : pos + 2], "big")
                pos += 2
            elif nib == 15:
                return None
            parts.append(nib)
        delta, length = parts
        if pos + length > len(data):
            return None
        number += delta
        options.append((number, data[pos : pos + length]))
        pos += length
    payload = b""
    if pos < len(data):
        payload = data[pos + 1 :]
        if not payload:
            return None
    return Answer(
        (data[0] >> 4) & 3,
        data[1],
        int.from_bytes(data[2:4], "big"),
        data[4 : 4 + tkl],
        tuple(options),
        payload,
    )
