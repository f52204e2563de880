"""CoAP options: the IANA registry's formats and lengths, typed values, option properties.

Every option number in ``codes.OptionNumber`` has an ``OptionSpec`` here: its
format (RFC 7252, 3.2: empty, opaque, uint, string) and the value lengths the
defining RFC allows. ``encode_option`` turns a Python value into the bytes sent
and refuses values that do not fit the format; ``decode_option`` turns received
bytes back into ``int`` / ``str`` / ``bytes`` / ``None``.

What RFC 7252 (5.4.1) asks of unrecognised *critical* options (odd numbers):
a server answers a confirmable request carrying one with 4.02 Bad Option
(libcoap does so before any handler runs), and a client must reject a
response carrying one. Sending one is allowed: the server decides.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Optional, Union

from .codes import OptionNumber
from .errors import CoapError

__all__ = [
    "REGISTRY",
    "CriticalOptionError",
    "Option",
    "OptionAccessors",
    "OptionFormat",
    "OptionSpec",
    "OptionValue",
    "RawValue",
    "TypedValue",
    "check_critical_options",
    "decode_option",
    "encode_option",
    "is_critical",
    "is_no_cache_key",
    "is_unsafe",
    "option_from_text",
    "option_name",
    "option_spec",
    "typed_options",
    "unknown_critical_options",
]

#: A value ``encode_option`` accepts: bytes as they are, str as UTF-8, int as uint.
OptionValue = Union[bytes, bytearray, memoryview, str, int]
#: An option as it is on the wire: (number, value bytes).
Option = tuple[int, bytes]
#: A decoded value: int (uint), str (string), bytes (opaque, unknown) or None (empty).
TypedValue = Optional[Union[int, str, bytes]]

MAX_OPTION_NUMBER = 0xFFFF
#: Longest value accepted for an option number outside the registry (Proxy-Uri's maximum).
MAX_UNKNOWN_LENGTH = 1034


class OptionFormat(enum.Enum):
    """Option value formats (RFC 7252, 3.2)."""

    EMPTY = "empty"
    OPAQUE = "opaque"
    UINT = "uint"
    STRING = "string"


@dataclass(frozen=True)
class OptionSpec:
    """One registered option: number, name, format, value lengths (bytes), repeatability."""

    number: int
    name: str
    format: OptionFormat
    min_length: int
    max_length: int
    repeatable: bool = False

    @property
    def critical(self) -> bool:
        return is_critical(self.number)

    @property
    def unsafe(self) -> bool:
        return is_unsafe(self.number)

    @property
    def no_cache_key(self) -> bool:
        return is_no_cache_key(self.number)


def _registry() -> Mapping[int, OptionSpec]:
    empty, opaque = OptionFormat.EMPTY, OptionFormat.OPAQUE
    uint, string = OptionFormat.UINT, OptionFormat.STRING
    N = OptionNumber
    specs = [
        OptionSpec(N.IF_MATCH, "If-Match", opaque, 0, 8, True),  # RFC 7252
        OptionSpec(N.URI_HOST, "Uri-Host", string, 1, 255),
        OptionSpec(N.ETAG, "ETag", opaque, 1, 8, True),
        OptionSpec(N.IF_NONE_MATCH, "If-None-Match", empty, 0, 0),
        OptionSpec(N.OBSERVE, "Observe", uint, 0, 3),  # RFC 7641
        OptionSpec(N.URI_PORT, "Uri-Port", uint, 0, 2),
        OptionSpec(N.LOCATION_PATH, "Location-Path", string, 0, 255, True),
        OptionSpec(N.OSCORE, "OSCORE", opaque, 0, 255),  # RFC 8613
        OptionSpec(N.URI_PATH, "Uri-Path", string, 0, 255, True),
        OptionSpec(N.CONTENT_FORMAT, "Content-Format", uint, 0, 2),
        OptionSpec(N.MAX_AGE, "Max-Age", uint, 0, 4),
        OptionSpec(N.URI_QUERY, "Uri-Query", string, 0, 255, True),
        OptionSpec(N.HOP_LIMIT, "Hop-Limit", uint, 1, 1),  # RFC 8768
        OptionSpec(N.ACCEPT, "Accept", uint, 0, 2),
        OptionSpec(N.Q_BLOCK1, "Q-Block1", uint, 0, 3),  # RFC 9177
        OptionSpec(N.LOCATION_QUERY, "Location-Query", string, 0, 255, True),
        OptionSpec(N.EDHOC, "EDHOC", empty, 0, 0),  # RFC 9668
        OptionSpec(N.BLOCK2, "Block2", uint, 0, 3),  # RFC 7959
        OptionSpec(N.BLOCK1, "Block1", uint, 0, 3),
        OptionSpec(N.SIZE2, "Size2", uint, 0, 4),
        OptionSpec(N.Q_BLOCK2, "Q-Block2", uint, 0, 3, True),
        OptionSpec(N.PROXY_URI, "Proxy-Uri", string, 1, 1034),
        OptionSpec(N.PROXY_SCHEME, "Proxy-Scheme", string, 1, 255),
        OptionSpec(N.SIZE1, "Size1", uint, 0, 4),
        OptionSpec(N.ECHO, "Echo", opaque, 1, 40),  # RFC 9175
        OptionSpec(N.NO_RESPONSE, "No-Response", uint, 0, 1),  # RFC 7967
        OptionSpec(N.REQUEST_TAG, "Request-Tag", opaque, 0, 8, True),  # RFC 9175
    ]
    return MappingProxyType({int(spec.number): spec for spec in specs})


#: Registered options by number (every ``OptionNumber``).
REGISTRY: Mapping[int, OptionSpec] = _registry()
# encode_option()'s common cases, by the value's type: a str for a string option
# (Uri-Path, Uri-Query, ...), bytes for any registered option. By number: the length
# bounds, and the number as an int.
_NUMBER_TYPES = frozenset({int, OptionNumber})
_QUICK: dict[type, dict[int, tuple[int, int, int]]] = {
    str: {
        n: (s.min_length, s.max_length, n)
        for n, s in REGISTRY.items()
        if s.format is OptionFormat.STRING
    },
    bytes: {n: (s.min_length, s.max_length, n) for n, s in REGISTRY.items()},
}


# -- properties from the number (RFC 7252, 5.4.6) -----------------------------------------


def is_critical(number: int) -> bool:
    """Critical options (odd numbers) must be understood by whoever processes the message."""
    return bool(number & 0x01)


def is_unsafe(number: int) -> bool:
    """Unsafe-to-forward: a proxy that does not know the option must not forward it."""
    return bool(number & 0x02)


def is_no_cache_key(number: int) -> bool:
    """NoCacheKey: the option is not part of the cache key (meaningful for safe options)."""
    return number & 0x1E == 0x1C


def option_spec(number: int) -> OptionSpec | None:
    """The registry entry for ``number``, or None for an unregistered option."""
    return REGISTRY.get(number)


def option_name(number: int) -> str:
    """``11`` -> ``"Uri-Path"``; unregistered numbers as digits."""
    spec = REGISTRY.get(number)
    return spec.name if spec is not None else str(number)


def _label(number: int) -> str:
    spec = REGISTRY.get(number)
    return f"option {number} ({spec.name})" if spec is not None else f"option {number}"


# -- encoding and decoding ----------------------------------------------------------------


class RawValue(bytes):
    """Bytes sent exactly as given, not checked against the option's format or lengths.

    For tests and for peers that expect something the registry does not allow
    (the C sample's 4-byte Uri-Port ``b"5684"``, for instance).
    """


def _uint_bytes(number: int, value: int, min_length: int) -> bytes:
    if value < 0:
        raise ValueError(f"{_label(number)}: a uint must not be negative, got {value}")
    length = max((value.bit_length() + 7) // 8, min_length)
    return value.to_bytes(length, "big")


_HOLDS = {
    OptionFormat.UINT: ("a uint", "an int (or its encoded bytes)"),
    OptionFormat.STRING: ("a string", "a str (or its UTF-8 bytes)"),
    OptionFormat.OPAQUE: ("opaque bytes", "bytes"),
    OptionFormat.EMPTY: ("no value", "None or b''"),
}


def _shown(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:36] + "..." + text[-1]


def _wrong_type(number: int, fmt: OptionFormat, value: object) -> TypeError:
    holds, give = _HOLDS[fmt]
    return TypeError(
        f"{_label(number)} holds {holds}: give {give}, not {type(value).__name__} {_shown(value)}"
    )


def encode_option(number: int, value: OptionValue | None) -> Option:
    """One option as (number, bytes), checked against the registry.

    Registered options take their format's Python type: ``int`` for uint, ``str``
    for string, ``bytes`` for opaque, ``None`` or ``b""`` for empty; bytes are
    accepted for any option as the encoded value. A value of the wrong type
    raises ``TypeError``, a length outside the registry's range ``ValueError``,
    both naming the option. Unregistered numbers take any of bytes, str (UTF-8)
    and int (minimal big-endian uint). ``RawValue`` bytes skip the checks.
    """
    quick = _QUICK.get(value.__class__)
    if quick is not None and number.__class__ in _NUMBER_TYPES:
        # The common cases first (a path segment, as str or bytes): about a third of the
        # full checks' cost on the path of every request a handler builds (benchmarks:
        # send in handler).
        limits = quick.get(number)
        if limits is not None:
            data = value.encode("utf-8") if value.__class__ is str else value
            if limits[0] <= len(data) <= limits[1]:  # type: ignore[arg-type]
                return limits[2], data  # type: ignore[return-value]
    if (
        not isinstance(number, int)
        or isinstance(number, bool)
        or not 0 < number <= MAX_OPTION_NUMBER
    ):
        raise ValueError(f"unknown option number {number!r} (expected 1..65535)")
    number = int(number)
    if isinstance(value, bool):
        raise TypeError(f"{_label(number)}: bool is not an option value")
    if isinstance(value, RawValue):
        data = bytes(value)
        if len(data) > MAX_UNKNOWN_LENGTH:
            raise ValueError(f"{_label(number)}: value of {len(data)} bytes is too long")
        return number, data
    spec = REGISTRY.get(number)
    fmt = spec.format if spec is not None else None
    if value is None:
        if fmt is not OptionFormat.EMPTY:
            raise TypeError(f"{_label(number)}: None is only a value of empty options")
        data = b""
    elif isinstance(value, (bytes, bytearray, memoryview)):
        data = bytes(value)
    elif isinstance(value, int):
        if fmt is not None and fmt is not OptionFormat.UINT:
            raise _wrong_type(number, fmt, value)
        data = _uint_bytes(number, value, spec.min_length if spec is not None else 0)
    elif isinstance(value, str):
        if fmt is not None and fmt is not OptionFormat.STRING:
            raise _wrong_type(number, fmt, value)
        data = value.encode("utf-8")
    else:
        raise TypeError(
            f"{_label(number)}: value must be bytes, str or int, not {type(value).__name__}"
        )
    if spec is None:
        if len(data) > MAX_UNKNOWN_LENGTH:
            raise ValueError(f"{_label(number)}: value of {len(data)} bytes is too long")
    elif not spec.min_length <= len(data) <= spec.max_length:
        allowed = (
            f"{spec.min_length}"
            if spec.min_length == spec.max_length
            else f"{spec.min_length} to {spec.max_length}"
        )
        shown = _shown(value if isinstance(value, (int, str)) else data)
        raise ValueError(
            f"{_label(number)}: value {shown} is {len(data)} bytes long, "
            f"the option takes {allowed} bytes"
        )
    return number, data


def decode_option(number: int, raw: bytes) -> TypedValue:
    """Received option bytes as a typed value, by the option's registered format.

    uint -> int, string -> str, opaque -> bytes, empty -> None; unregistered
    numbers -> bytes. A value that does not fit its format (a string that is
    not UTF-8, an empty option with bytes) comes back as bytes.
    """
    raw = bytes(raw)
    spec = REGISTRY.get(number)
    if spec is None:
        return raw
    fmt = spec.format
    if fmt is OptionFormat.UINT:
        return int.from_bytes(raw, "big")
    if fmt is OptionFormat.STRING:
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            return raw
    if fmt is OptionFormat.EMPTY:
        return None if not raw else raw
    return raw


def option_from_text(number: int, text: str) -> OptionValue | None:
    """A value for option ``number`` from command-line text (``-O num,text``).

    ``0x`` followed by hex digits gives bytes; otherwise uint options take a
    decimal number, empty options nothing, opaque options the text's UTF-8
    bytes, string and unregistered options the text.
    """
    if text.startswith("0x"):
        try:
            return bytes.fromhex(text[2:])
        except ValueError:
            raise ValueError(f"{_label(number)}: {text!r} is not hex") from None
    spec = REGISTRY.get(number)
    if spec is None or spec.format is OptionFormat.STRING:
        return text
    if spec.format is OptionFormat.UINT:
        if not text.isdigit():
            raise ValueError(f"{_label(number)} is a uint: {text!r} is not a number")
        return int(text)
    if spec.format is OptionFormat.EMPTY:
        if text:
            raise ValueError(f"{_label(number)} is empty: it takes no value, got {text!r}")
        return None
    return text.encode("utf-8")


def _number(number: int) -> OptionNumber | int:
    try:
        return OptionNumber(number)
    except ValueError:
        return int(number)


def typed_options(options: Iterable[Option]) -> list[tuple[OptionNumber | int, TypedValue]]:
    """``(OptionNumber or int, typed value)`` for each option, in the given order."""
    return [(_number(n), decode_option(n, v)) for n, v in options]


def unknown_critical_options(options: Iterable[Option], known: Iterable[int] = ()) -> list[int]:
    """Critical option numbers in ``options`` that neither the registry nor ``known`` has."""
    extra = {int(n) for n in known}
    found: list[int] = []
    for number, _ in options:
        if is_critical(number) and number not in REGISTRY and number not in extra:
            if number not in found:
                found.append(number)
    return found


class CriticalOptionError(CoapError):
    """A response carried critical options this side does not know (RFC 7252, 5.4.1)."""

    def __init__(self, numbers: Iterable[int]) -> None:
        self.numbers = tuple(numbers)
        listed = ", ".join(str(n) for n in self.numbers)
        super().__init__(f"response rejected: unrecognised critical option(s) {listed}")


def check_critical_options(options: Iterable[Option], known: Iterable[int] = ()) -> None:
    """Raise ``CriticalOptionError`` if ``options`` hold unrecognised critical options."""
    numbers = unknown_critical_options(options, known)
    if numbers:
        raise CriticalOptionError(numbers)


# -- read-side conveniences shared by Response, PDU, Request and ServerResponse -------------

_URI_PATH = int(OptionNumber.URI_PATH)
_URI_QUERY = int(OptionNumber.URI_QUERY)
_LOCATION_PATH = int(OptionNumber.LOCATION_PATH)
_LOCATION_QUERY = int(OptionNumber.LOCATION_QUERY)
_CONTENT_FORMAT = int(OptionNumber.CONTENT_FORMAT)
_ACCEPT = int(OptionNumber.ACCEPT)
_ETAG = int(OptionNumber.ETAG)
_MAX_AGE = int(OptionNumber.MAX_AGE)
_OBSERVE = int(OptionNumber.OBSERVE)


class OptionAccessors:
    """Typed views of a message's options; subclasses say where the options are."""

    __slots__ = ()

    def _option_list(self) -> list[Option]:
        raise NotImplementedError

    def option_values(self, number: int) -> list[bytes]:
        """Every value of a (repeatable) option, in order."""
        return [value for n, value in self._option_list() if n == number]

    def _first_value(self, number: int) -> bytes | None:
        for n, value in self._option_list():
            if n == number:
                return value
        return None

    def _uint_value(self, number: int) -> int | None:
        value = self._first_value(number)
        return None if value is None else int.from_bytes(value, "big")

    def _texts(self, number: int) -> tuple[str, ...]:
        return tuple(v.decode("utf-8", "replace") for v in self.option_values(number))

    @property
    def uri_path(self) -> tuple[str, ...]:
        """The Uri-Path segments, e.g. ``("sensors", "temp")``."""
        return self._texts(_URI_PATH)

    @property
    def uri_query(self) -> tuple[str, ...]:
        """The Uri-Query values, e.g. ``("a=1", "b")``."""
        return self._texts(_URI_QUERY)

    @property
    def location_path(self) -> tuple[str, ...]:
        """The Location-Path segments (where a 2.01 Created put the new resource)."""
        return self._texts(_LOCATION_PATH)

    @property
    def location_query(self) -> tuple[str, ...]:
        return self._texts(_LOCATION_QUERY)

    @property
    def content_format(self) -> int | None:
        return self._uint_value(_CONTENT_FORMAT)

    @property
    def accept(self) -> int | None:
        return self._uint_value(_ACCEPT)

    @property
    def etag(self) -> bytes | None:
        """The (first) ETag, or None."""
        return self._first_value(_ETAG)

    @property
    def max_age(self) -> int | None:
        """Max-Age in seconds as sent, or None (RFC 7252's default then is 60)."""
        return self._uint_value(_MAX_AGE)

    @property
    def observe(self) -> int | None:
        """The Observe value (0 register / 1 deregister in requests, a sequence in
        notifications), or None."""
        return self._uint_value(_OBSERVE)

    @property
    def typed_options(self) -> list[tuple[OptionNumber | int, TypedValue]]:
        """Every option as ``(OptionNumber or int, value typed by its format)``, in order."""
        return typed_options(self._option_list())

    def unknown_critical_options(self, known: Iterable[int] = ()) -> list[int]:
        """Critical option numbers here that are neither registered nor in ``known``."""
        return unknown_critical_options(self._option_list(), known)
