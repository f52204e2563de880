"""Block1/Block2 options (RFC 7959): their values, sizes and room in a PDU.

Shared by the client's block-wise transfers (``client/blockwise.py``) and the
server's (``server/blockwise.py``).
"""

from __future__ import annotations

from collections.abc import Sequence

from ._binding import lib
from .codes import Code, OptionNumber
from .errors import PayloadTooLargeError
from .pdu import Option, first_option, pdu_room

__all__ = [
    "ACCEPT",
    "BLOCK1",
    "BLOCK2",
    "BLOCK_OVERHEAD",
    "BLOCK_SIZES",
    "CONTINUE",
    "ETAG",
    "LIBCOAP_BLOCKS",
    "MAX_NUM",
    "MAX_SZX",
    "OBSERVE_ROOM",
    "SIZE1",
    "SIZE2",
    "block_option",
    "block_szx",
    "by_number",
    "fit_szx",
    "parse_block",
    "read_uint",
    "uint",
    "without",
]

BLOCK_SIZES = (16, 32, 64, 128, 256, 512, 1024)
#: True where libcoap does block-wise transfers itself (4.3); this module then idles.
LIBCOAP_BLOCKS = bool(lib.LCP_HAS_BLOCK)

BLOCK1 = int(OptionNumber.BLOCK1)
BLOCK2 = int(OptionNumber.BLOCK2)
SIZE1 = int(OptionNumber.SIZE1)
SIZE2 = int(OptionNumber.SIZE2)
ETAG = int(OptionNumber.ETAG)
#: The most an Observe option takes (a 3-byte value).
OBSERVE_ROOM: Option = (int(OptionNumber.OBSERVE), bytes(3))
ACCEPT = int(OptionNumber.ACCEPT)
CONTINUE = int(Code.CONTINUE)
MAX_SZX = 6  # 1024 bytes; 7 is BERT (CoAP over TCP only)
MAX_NUM = 0xFFFFF  # block numbers have 20 bits
#: Room kept for the options a block adds: Block1/Block2 (up to 3 bytes), Size1/Size2
#: (up to 4) and an ETag (8), each with a 1-byte header (a generous bound).
BLOCK_OVERHEAD: list[Option] = [(BLOCK1, bytes(3)), (SIZE1, bytes(4)), (SIZE2, bytes(8))]


def block_szx(size: int) -> int:
    """The SZX exponent of a block size (RFC 7959: 16 to 1024, powers of two)."""
    if size not in BLOCK_SIZES:
        raise ValueError(f"block_size must be one of {', '.join(map(str, BLOCK_SIZES))}")
    return BLOCK_SIZES.index(size)


def uint(value: int) -> bytes:
    return value.to_bytes((value.bit_length() + 7) // 8, "big")


def block_option(number: int, num: int, more: bool, szx: int) -> Option:
    """A Block1 or Block2 option: block number, more flag, size exponent."""
    return number, uint(num << 4 | (8 if more else 0) | szx)


def parse_block(value: bytes) -> tuple[int, bool, int]:
    """(num, more, szx) of a Block1/Block2 value; ValueError for a malformed one."""
    if len(value) > 3:
        raise ValueError("a Block option has at most 3 bytes")
    raw = int.from_bytes(value, "big")
    szx = raw & 7
    if szx == 7:
        raise ValueError("block size exponent 7 (BERT) is for CoAP over TCP")
    return raw >> 4, bool(raw & 8), szx


def read_uint(options: Sequence[Option], number: int) -> int | None:
    value = first_option(options, number)
    return None if value is None else int.from_bytes(value, "big")


def fit_szx(max_pdu: int, token_len: int, options: Sequence[Option]) -> int:
    """The largest SZX whose blocks fit one PDU next to these options and the block ones."""
    room = pdu_room(max_pdu, token_len, sorted([*options, *BLOCK_OVERHEAD]))
    for szx in range(MAX_SZX, -1, -1):
        if 16 << szx <= room:
            return szx
    raise PayloadTooLargeError(
        f"not even a 16-byte block fits a PDU of {max_pdu} bytes next to these options"
    )


def by_number(option: Option) -> int:
    return option[0]


def without(options: Sequence[Option], *numbers: int) -> list[Option]:
    return [o for o in options if o[0] not in numbers]
