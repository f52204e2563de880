"""The datagram stream: seeds picked, renumbered and mutated, from one random seed.

``Stream(seed)`` yields the same datagrams every time for the same seed and
corpus: nothing in it depends on the network or the clock. Each step picks a
seed (a family first, so that small families are not drowned by the large
block-wise ones), gives it fresh message ids and tokens (keeping the relations
inside the sequence: the blocks of one upload keep one token, a duplicate
keeps its message id), and then either sends it as it is or mutates it:
fields of the messages (structure), the encoded bytes, the sequence (repeats,
reordering, one message id for all), or splices it with a second seed.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass

from . import pdu
from .pdu import Message, block, uint
from .seeds import SIZES, UNKNOWN_OPTIONS, Seed, corpus, families

#: Bytes that mean something in a CoAP header or option header.
INTERESTING = (0x00, 0x01, 0x0D, 0x0E, 0x0F, 0x40, 0x7F, 0x80, 0xD0, 0xDD, 0xE0, 0xEE, 0xF0, 0xFF)
#: Option numbers a structural mutation adds.
OPTION_NUMBERS = (
    pdu.IF_MATCH,
    pdu.URI_HOST,
    pdu.ETAG,
    pdu.IF_NONE_MATCH,
    pdu.OBSERVE,
    pdu.URI_PORT,
    pdu.URI_PATH,
    pdu.CONTENT_FORMAT,
    pdu.MAX_AGE,
    pdu.URI_QUERY,
    pdu.HOP_LIMIT,
    pdu.ACCEPT,
    pdu.Q_BLOCK1,
    pdu.BLOCK2,
    pdu.BLOCK1,
    pdu.SIZE2,
    pdu.Q_BLOCK2,
    pdu.PROXY_URI,
    pdu.SIZE1,
    pdu.ECHO,
    pdu.NO_RESPONSE,
    pdu.REQUEST_TAG,
    *UNKNOWN_OPTIONS,
)
#: The largest datagram the stream yields (libcoap reads at most 1472 bytes).
MAX_DATAGRAM = 1472


@dataclass(frozen=True)
class Datagram:
    """One datagram of the stream and where it came from."""

    index: int  # position in the stream
    step: int  # the seed pick it belongs to
    seed: int  # index of the seed in the corpus
    family: str
    how: str  # the mutations applied ("clean" for none)
    data: bytes


class Stream:
    """The endless, deterministic datagram stream of ``seed``."""

    def __init__(self, seed: int, seeds: tuple[Seed, ...] | None = None) -> None:
        self.seed = seed
        self.seeds = corpus() if seeds is None else seeds
        self._families = families(self.seeds)
        self._names = sorted(self._families)
        self._position = {id(s): i for i, s in enumerate(self.seeds)}

    def __iter__(self) -> Iterator[Datagram]:
        rng = random.Random(self.seed)
        index = 0
        step = 0
        mid = rng.randrange(0x10000)
        while True:
            family = rng.choice(self._names)
            seed = rng.choice(self._families[family])
            messages, mid = _renumber(rng, seed.messages, mid)
            datagrams, how = _mutate(rng, messages, self._families, self._names)
            for data in datagrams:
                yield Datagram(
                    index, step, self._position[id(seed)], family, how, data[:MAX_DATAGRAM]
                )
                index += 1
            step += 1

    def first(self, count: int) -> list[Datagram]:
        out: list[Datagram] = []
        for datagram in self:
            if len(out) == count:
                break
            out.append(datagram)
        return out


def clean_sequence(seed: Seed, index: int) -> list[Datagram]:
    """A seed's datagrams as they are (the warm-up sends every seed so)."""
    return [
        Datagram(-1, -1, index, seed.family, "clean", m.encode()[:MAX_DATAGRAM])
        for m in seed.messages
    ]


def _renumber(
    rng: random.Random, messages: tuple[Message, ...], mid: int
) -> tuple[list[Message], int]:
    """Fresh message ids and tokens, equal where they were equal."""
    mids: dict[int, int] = {}
    tokens: dict[bytes, bytes] = {b"": b""}
    out = []
    for m in messages:
        if m.raw is not None:
            out.append(m)
            continue
        if m.mid not in mids:
            mid = (mid + 1) & 0xFFFF
            mids[m.mid] = mid
        if m.token not in tokens:
            tokens[m.token] = rng.randbytes(len(m.token))
        out.append(m.with_(mid=mids[m.mid], token=tokens[m.token]))
    return out, mid


def _mutate(
    rng: random.Random,
    messages: list[Message],
    by_family: dict[str, tuple[Seed, ...]],
    names: list[str],
) -> tuple[list[bytes], str]:
    roll = rng.random()
    if roll < 0.25:
        return [m.encode() for m in messages], "clean"
    if roll < 0.40:
        messages, how = _sequence_op(rng, messages)
        return [m.encode() for m in messages], how
    if roll < 0.52:
        other = rng.choice(by_family[rng.choice(names)])
        return _splice(rng, [m.encode() for m in messages], [m.encode() for m in other.messages])
    hows: list[str] = []
    out = []
    chance = max(0.35, 1.0 / len(messages))
    for m in messages:
        if rng.random() < chance and m.raw is None:
            for _ in range(rng.randint(1, 3)):
                m, how = _structural(rng, m)
                hows.append(how)
        data = m.encode()
        if rng.random() < 0.4:
            for _ in range(rng.randint(1, 3)):
                data, how = _bytes_op(rng, data)
                hows.append(how)
        out.append(data)
    return out, "+".join(hows) or "clean"


def _sequence_op(rng: random.Random, messages: list[Message]) -> tuple[list[Message], str]:
    n = len(messages)
    op = rng.randrange(5)
    if op == 0:
        i = rng.randrange(n)
        return [
            *messages[: i + 1],
            *[messages[i]] * rng.randint(1, 4),
            *messages[i + 1 :],
        ], "repeat"
    if op == 1 and n > 1:
        shuffled = list(messages)
        rng.shuffle(shuffled)
        return shuffled, "shuffle"
    if op == 2:
        mid = messages[0].mid
        return [m.with_(mid=mid) for m in messages], "one-mid"
    if op == 3 and n > 1:
        i = rng.randrange(n)
        return messages[:i] + messages[i + 1 :], "drop"
    return messages + messages, "twice"


def _splice(rng: random.Random, a: list[bytes], b: list[bytes]) -> tuple[list[bytes], str]:
    if rng.random() < 0.5:
        merged: list[bytes] = []
        for x, y in zip(a, b):
            merged += [x, y]
        longer = a if len(a) > len(b) else b
        return merged + longer[min(len(a), len(b)) :], "interleave"
    x, y = rng.choice(a), rng.choice(b)
    cut_x, cut_y = rng.randint(0, len(x)), rng.randint(0, len(y))
    return [x[:cut_x] + y[cut_y:]], "splice"


def _option_value(rng: random.Random, number: int) -> bytes:
    kind = rng.randrange(6)
    if kind == 0:
        return b""
    if kind == 1:
        return uint(rng.choice((0, 1, 0xFF, 0x100, 0xFFFF, 0xFFFFFF, 0xFFFFFFFF)))
    if kind == 2:
        return rng.randbytes(rng.randint(1, 16))
    if kind == 3:
        return bytes([rng.choice(INTERESTING)]) * rng.choice((12, 13, 14, 268, 269, 270))
    if kind == 4 and number in (pdu.BLOCK1, pdu.BLOCK2, pdu.Q_BLOCK1, pdu.Q_BLOCK2):
        return _block_value(rng)
    return uint(rng.randrange(1 << rng.choice((8, 16, 24, 32))))


def _block_value(rng: random.Random) -> bytes:
    num = rng.choice((0, 0, 1, 2, 3, rng.randrange(1 << 20), (1 << 20) - 1))
    return block(num, rng.random() < 0.5, rng.randrange(8))


def _structural(rng: random.Random, m: Message) -> tuple[Message, str]:
    op = rng.randrange(14)
    if op == 0:
        return m.with_(type=rng.randrange(4)), "type"
    if op == 1:
        value = rng.choice((*pdu.METHODS, rng.randrange(256)))
        return m.with_(code=value), "code"
    if op == 2:
        if rng.random() < 0.5:
            return m.with_(token=rng.randbytes(rng.randint(0, 8))), "token"
        return m.with_(tkl=rng.randrange(16)), "tkl"
    if op == 3 and m.options:
        i = rng.randrange(len(m.options))
        return m.with_(options=m.options[:i] + m.options[i + 1 :]), "drop-option"
    if op == 4 and m.options:
        return m.with_(options=(*m.options, rng.choice(m.options))), "dup-option"
    if op == 5:
        number = rng.choice(OPTION_NUMBERS)
        return m.with_(options=(*m.options, (number, _option_value(rng, number)))), "add-option"
    if op == 6 and m.options:
        i = rng.randrange(len(m.options))
        number = m.options[i][0]
        options = list(m.options)
        options[i] = (number, _option_value(rng, number))
        return m.with_(options=tuple(options)), "option-value"
    if op == 7:
        number = rng.choice((pdu.BLOCK1, pdu.BLOCK2))
        return m.set_option(number, _block_value(rng)), "block"
    if op == 8:
        number = rng.choice((pdu.SIZE1, pdu.SIZE2))
        value = rng.choice((0, len(m.payload), rng.randrange(1 << 16), 0xFFFFFFFF))
        return m.set_option(number, uint(value)), "size"
    if op == 9:
        size = min(rng.choice(SIZES), 1100)
        return m.with_(payload=rng.randbytes(size)), "payload"
    if op == 10:
        return m.with_(payload=b"", marker=True), "empty-marker"
    if op == 11:
        return m.set_option(pdu.OBSERVE, uint(rng.choice((0, 0, 1, 2)))), "observe"
    if op == 12:
        return m.with_(version=rng.randrange(4)), "version"
    return m.with_(mid=rng.randrange(0x10000)), "mid"


def _bytes_op(rng: random.Random, data: bytes) -> tuple[bytes, str]:
    buf = bytearray(data)
    op = rng.randrange(9)
    if not buf:
        return bytes([rng.choice(INTERESTING)]), "byte"
    i = rng.randrange(len(buf))
    if op == 0:
        for _ in range(rng.randint(1, 4)):
            j = rng.randrange(len(buf))
            buf[j] ^= 1 << rng.randrange(8)
        return bytes(buf), "bitflip"
    if op == 1:
        buf[i] = rng.choice(INTERESTING)
        return bytes(buf), "byte"
    if op == 2:
        return bytes(buf[:i]), "truncate"
    if op == 3:
        end = min(len(buf), i + rng.randint(1, 8))
        del buf[i:end]
        return bytes(buf), "delete"
    if op == 4:
        buf[i:i] = rng.randbytes(rng.randint(1, 8))
        return bytes(buf), "insert"
    if op == 5:
        end = min(len(buf), i + rng.randint(1, 32))
        buf[i:i] = buf[i:end]
        return bytes(buf), "dup-range"
    if op == 6:
        buf[0] = (buf[0] & 0xF0) | rng.randrange(16)
        return bytes(buf), "tkl-nibble"
    if op == 7:
        return bytes(buf) + b"\xff" + rng.randbytes(rng.randint(0, 4)), "append"
    j = rng.randrange(len(buf))
    buf[i], buf[j] = buf[j], buf[i]
    return bytes(buf), "swap"
