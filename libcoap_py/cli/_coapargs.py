"""Values of the client's flags (coap-client's conventions) and how responses are shown."""

from __future__ import annotations

import re
from collections.abc import Iterable

from ..codes import Code, ContentFormat, MessageType, OptionNumber
from ..options import decode_option, encode_option, option_from_text, option_name
from ._common import CliError

__all__ = [
    "CONTENT_FORMAT_NAMES",
    "block_size",
    "code_text",
    "content_format",
    "content_format_name",
    "describe_options",
    "describe_response",
    "hexdump",
    "is_text",
    "option_argument",
    "percent_decode",
    "token_argument",
]

#: coap-client's short names for content formats (-t, -A), beside the media types.
_SHORT_NAMES: dict[str, ContentFormat] = {
    "plain": ContentFormat.TEXT_PLAIN,
    "text": ContentFormat.TEXT_PLAIN,
    "link-format": ContentFormat.LINK_FORMAT,
    "link": ContentFormat.LINK_FORMAT,
    "xml": ContentFormat.XML,
    "octet-stream": ContentFormat.OCTET_STREAM,
    "binary": ContentFormat.OCTET_STREAM,
    "exi": ContentFormat.EXI,
    "json": ContentFormat.JSON,
    "json-patch": ContentFormat.JSON_PATCH,
    "merge-patch": ContentFormat.MERGE_PATCH,
    "cbor": ContentFormat.CBOR,
    "cwt": ContentFormat.CWT,
    "senml+json": ContentFormat.SENML_JSON,
    "sensml+json": ContentFormat.SENSML_JSON,
    "senml+cbor": ContentFormat.SENML_CBOR,
    "sensml+cbor": ContentFormat.SENSML_CBOR,
}

#: Content-Format names accepted by -t and -A: IANA media types plus coap-client's short names.
CONTENT_FORMAT_NAMES: dict[str, int] = {
    **{cf.media_type: int(cf) for cf in ContentFormat},
    "text/plain;charset=utf-8": int(ContentFormat.TEXT_PLAIN),  # 0's registered content type
    **{name: int(cf) for name, cf in _SHORT_NAMES.items()},
}


def content_format(text: str, flag: str) -> int:
    """A -t/-A value: a number, a media type or a short name (an unambiguous prefix will do)."""
    value = text.strip().lower()
    if value.isdigit():
        number = int(value)
        if number > 0xFFFF:
            raise CliError(f"{flag} {text}: content formats are 0..65535", 2)
        return number
    try:
        return int(ContentFormat.from_media_type(value))
    except ValueError:
        pass
    if value in CONTENT_FORMAT_NAMES:
        return CONTENT_FORMAT_NAMES[value]
    matches = {n for name, n in CONTENT_FORMAT_NAMES.items() if value and name.startswith(value)}
    if len(matches) == 1:
        return matches.pop()
    known = ", ".join(_SHORT_NAMES)
    what = "ambiguous" if matches else "unknown"
    raise CliError(f"{flag} {text}: {what} content format (give a number or one of: {known})", 2)


def content_format_name(number: int) -> str:
    """``50`` -> ``"application/json"``; unknown numbers as ``"?"``."""
    try:
        return ContentFormat(number).media_type
    except ValueError:
        return "?"


_HEX = re.compile(r"(?:[0-9A-Fa-f]{2})*")


def _hex_bytes(digits: str, what: str) -> bytes:
    if not _HEX.fullmatch(digits):
        raise CliError(f"{what}: {digits!r} is not hex (two digits per byte)", 2)
    return bytes.fromhex(digits)


def _arg_bytes(text: str) -> bytes:
    """Command-line text as bytes, undecodable argv bytes kept as they were."""
    return text.encode("utf-8", "surrogateescape")


def option_argument(text: str) -> tuple[int, bytes]:
    """``-O num,text``: option ``num`` (a number or a name such as ``uri-query``) with ``text``
    as its value, encoded (number, bytes). ``0xHEX`` gives the bytes in hex, as with
    coap-client; uint options take a decimal number, string and unknown options the text."""
    number_text, _, value = text.partition(",")
    number_text = number_text.strip()
    if number_text.isdigit():
        number = int(number_text)
    else:
        try:
            number = int(OptionNumber[number_text.upper().replace("-", "_")])
        except KeyError:
            raise CliError(
                f"-O {text}: expected num,text with an option number (e.g. -O 65000,hello)", 2
            ) from None
    if not 0 < number <= 0xFFFF:
        raise CliError(f"-O {text}: option numbers are 1..65535", 2)
    try:
        return encode_option(number, option_from_text(number, value))
    except (TypeError, ValueError) as exc:
        raise CliError(f"-O {text}: {exc}", 2) from None


def token_argument(text: str) -> bytes:
    """``-T token``: the token's bytes as text (coap-client's form), or ``0xHEX``; 1..8 bytes."""
    data = _hex_bytes(text[2:], f"-T {text}") if text.startswith("0x") else _arg_bytes(text)
    if not 1 <= len(data) <= 8:
        raise CliError(f"-T {text}: a token is 1 to 8 bytes, this is {len(data)}", 2)
    return data


def block_size(text: str) -> int:
    """``-b [num,]size``: the block size (16, 32, ..., 1024); a start block other than 0 is
    refused (this client always fetches whole bodies)."""
    num, comma, size_text = text.rpartition(",")
    try:
        size = int(size_text)
        start = int(num) if comma else 0
    except ValueError:
        raise CliError(f"-b {text}: expected [num,]size, e.g. -b 512", 2) from None
    if start != 0:
        raise CliError(f"-b {text}: starting at block {start} is not supported (only 0)", 2)
    if size not in (16, 32, 64, 128, 256, 512, 1024):
        raise CliError(f"-b {text}: the block size must be 16, 32, 64, 128, 256, 512 or 1024", 2)
    return size


_PERCENT = re.compile(rb"%([0-9A-Fa-f]{2})")


def percent_decode(text: str) -> bytes:
    """``-e text``: ``%XX`` escapes decoded, as coap-client does; a ``%`` that does not start
    such an escape stays as it is."""
    return _PERCENT.sub(lambda m: bytes([int(m.group(1), 16)]), _arg_bytes(text))


# -- showing responses -------------------------------------------------------------------

_BLOCK_OPTIONS = {
    OptionNumber.BLOCK1,
    OptionNumber.BLOCK2,
    OptionNumber.Q_BLOCK1,
    OptionNumber.Q_BLOCK2,
}
_FORMAT_OPTIONS = {OptionNumber.CONTENT_FORMAT, OptionNumber.ACCEPT}


def _option_value(number: int, value: bytes) -> str:
    if number in _BLOCK_OPTIONS:
        raw = int.from_bytes(value, "big")
        more = "more" if raw & 0x08 else "last"
        return f"block {raw >> 4}, {more}, size {16 << (raw & 0x07)}"
    typed = decode_option(number, value)
    if isinstance(typed, int):
        if number in _FORMAT_OPTIONS:
            return f"{typed} ({content_format_name(typed)})"
        return str(typed)
    if isinstance(typed, str):
        return repr(typed)
    if typed is None:
        return "(empty)"
    return "0x" + typed.hex() if typed else "(empty)"


def describe_options(options: Iterable[tuple[int, bytes]]) -> list[str]:
    """One ``Name: value`` line per option, typed by what the option number holds."""
    return [f"{_option_label(n)}: {_option_value(n, v)}" for n, v in options]


def _option_label(number: int) -> str:
    name = option_name(number)
    return name if not name.isdigit() else f"Option {number}"


def code_text(code: Code | int) -> str:
    """``"4.04 Not Found"``; codes without a name as ``"4.31"``."""
    code = Code(code)
    return str(code) if code.is_known else code.dotted


def describe_response(code: Code | int, kind: MessageType | int, token: bytes) -> str:
    """``2.05 Content (ACK, token 0x63616666)``."""
    text = code_text(code)
    try:
        type_name = MessageType(kind).name
    except ValueError:
        type_name = str(kind)
    return f"{text} ({type_name}, token 0x{token.hex() or '-'})"


def is_text(payload: bytes) -> bool:
    """True for UTF-8 whose characters are printable or ordinary whitespace."""
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return all(c.isprintable() or c in "\t\n\r" for c in text)


def hexdump(payload: bytes, width: int = 16) -> str:
    """Offset, hex bytes and printable ASCII, ``width`` bytes a line."""
    lines = []
    for offset in range(0, len(payload), width):
        chunk = payload[offset : offset + width]
        ascii_ = "".join(chr(b) if 32 <= b < 127 else "." for b in chunk)
        lines.append(f"{offset:08x}  {chunk.hex(' '):<{width * 3 - 1}}  {ascii_}")
    return "\n".join(lines) + "\n"
