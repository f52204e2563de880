"""The seed corpus: valid (and a few deliberately odd) messages of every family.

A seed is a short sequence of messages sent in order: most are one message,
the block-wise ones are whole transfers (Block1 uploads in order, with
duplicates, out of order, with a gap, with the block size changing, with a
lying Size1; Block2 downloads; observe registrations and cancellations), so
that the mutations land on the servers' stateful paths too.

The corpus is the same for every target: paths the API server knows
(``echo``, ``size/N``, ``obs``, ``fields``) are any path to ``serve``.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass

from .pdu import (
    ACCEPT,
    ACK,
    BLOCK1,
    BLOCK2,
    CON,
    CONTENT_FORMAT,
    DELETE,
    ECHO,
    EMPTY,
    ETAG,
    FETCH,
    GET,
    HOP_LIMIT,
    IF_MATCH,
    IF_NONE_MATCH,
    IPATCH,
    LOCATION_PATH,
    MAX_AGE,
    METHODS,
    NO_RESPONSE,
    NON,
    OBSERVE,
    OSCORE,
    PATCH,
    POST,
    PROXY_SCHEME,
    PROXY_URI,
    PUT,
    Q_BLOCK1,
    Q_BLOCK2,
    REQUEST_TAG,
    RST,
    SIGNALLING,
    SIZE1,
    SIZE2,
    URI_HOST,
    URI_PATH,
    URI_PORT,
    URI_QUERY,
    Message,
    Option,
    block,
    block_size,
    code,
    option_header,
    uint,
)

#: Response body sizes around block boundaries: 16..1024 and their multiples, +-1.
SIZES = tuple(
    sorted(
        {0, 1, 4097}
        | {
            b * m + d
            for b in (16, 32, 64, 128, 256, 512, 1024)
            for m in (1, 2, 3)
            for d in (-1, 0, 1)
        }
    )
)
#: Methods that carry a body.
BODY_METHODS = (POST, PUT, FETCH, PATCH, IPATCH)
#: Elective and critical option numbers nobody registered.
UNKNOWN_OPTIONS = (2, 10, 13, 24, 26, 2048, 2049, 65000, 65001, 65535)


@dataclass(frozen=True)
class Seed:
    family: str
    messages: tuple[Message, ...]


def path_options(path: str) -> tuple[Option, ...]:
    return tuple((URI_PATH, part.encode()) for part in path.split("/") if part)


class _Builder:
    """Fresh message ids and tokens for the corpus, from a fixed random source."""

    def __init__(self) -> None:
        self.rng = random.Random(7252)
        self.mid = 0x1000

    def next_mid(self) -> int:
        self.mid = (self.mid + 1) & 0xFFFF
        return self.mid

    def token(self, length: int | None = None) -> bytes:
        n = self.rng.randint(0, 8) if length is None else length
        return self.rng.randbytes(n)

    def body(self, size: int) -> bytes:
        """A recognisable body: its offset pattern, so block mix-ups show."""
        pattern = b"".join(b"%07d|" % i for i in range(0, size, 8))
        return pattern[:size]

    def request(
        self,
        method: int,
        path: str,
        *,
        type: int = CON,
        token: bytes | None = None,
        options: tuple[Option, ...] = (),
        payload: bytes = b"",
        note: str = "",
    ) -> Message:
        return Message(
            type=type,
            code=method,
            mid=self.next_mid(),
            token=self.token() if token is None else token,
            options=path_options(path) + options,
            payload=payload,
            note=note,
        )


def _methods(b: _Builder) -> Iterator[Seed]:
    paths = ("echo", "fields", "size/64", "a/b/c", "", ".well-known/core", "obs", "nothing-here")
    for method in METHODS:
        for tkl in range(9):
            for type in (CON, NON):
                path = paths[(method + tkl) % len(paths)]
                payload = b.body(b.rng.choice((0, 1, 15, 64))) if method in BODY_METHODS else b""
                options: tuple[Option, ...] = ()
                if tkl % 3 == 0:
                    options += ((URI_QUERY, b"a=1"), (URI_QUERY, b"b"))
                if payload:
                    options += ((CONTENT_FORMAT, uint(b.rng.choice((0, 42, 50, 60, 110)))),)
                if tkl % 4 == 1:
                    options += ((ACCEPT, uint(b.rng.choice((0, 40, 50)))),)
                yield Seed(
                    "method",
                    (
                        b.request(
                            method,
                            path,
                            type=type,
                            token=b.token(tkl),
                            options=options,
                            payload=payload,
                        ),
                    ),
                )
    # The C sample's request: Uri-Host, Uri-Port (a uint), Uri-Path, a payload.
    sample = b.request(
        POST,
        "path-for-data",
        options=((URI_HOST, b"data.lab5e.com"), (URI_PORT, uint(5684))),
        payload=b"this is the payload",
    )
    yield Seed("method", (sample,))


def _codes(b: _Builder) -> Iterator[Seed]:
    singles = [
        Message(CON, EMPTY, b.next_mid()),  # a ping
        Message(NON, EMPTY, b.next_mid()),
        Message(ACK, EMPTY, b.next_mid()),
        Message(RST, EMPTY, b.next_mid()),
        Message(CON, EMPTY, b.next_mid(), b.token(4)),  # empty with a token: malformed
        Message(CON, EMPTY, b.next_mid(), payload=b"x"),  # empty with a payload
        Message(ACK, code(2, 5), b.next_mid(), b.token(2), payload=b"an answer nobody asked"),
        Message(RST, GET, b.next_mid(), b.token(1)),
    ]
    for value in (*SIGNALLING, code(7, 0), code(7, 31)):
        singles.append(Message(CON, value, b.next_mid(), b.token(2), ((2, b"\x05\x00"),)))
    for klass, detail in ((0, 8), (0, 31), (1, 0), (1, 5), (2, 5), (3, 1), (4, 4), (5, 0), (6, 1)):
        singles.append(b.request(code(klass, detail), "echo", payload=b"?"))
    singles.append(Message(CON, 0xFF, b.next_mid(), b.token(8), path_options("echo")))
    for message in singles:
        yield Seed("code", (message,))


def _options(b: _Builder) -> Iterator[Seed]:
    values: list[tuple[int, bytes]] = [
        (IF_MATCH, b""),
        (IF_MATCH, b"12345678"),
        (IF_MATCH, b"123456789"),
        (URI_HOST, b"localhost"),
        (URI_HOST, b"h" * 255),
        (ETAG, b""),
        (ETAG, b"etag"),
        (ETAG, b"123456789"),
        (IF_NONE_MATCH, b""),
        (IF_NONE_MATCH, b"\x01"),
        (URI_PORT, b""),
        (URI_PORT, uint(65535)),
        (URI_PORT, b"\x01\x00\x00"),
        (LOCATION_PATH, b"loc"),
        (OSCORE, b"\x09\x00"),
        (CONTENT_FORMAT, b""),
        (CONTENT_FORMAT, uint(65535)),
        (CONTENT_FORMAT, b"\x00\x00\x32"),
        (MAX_AGE, uint(0xFFFFFFFF)),
        (MAX_AGE, b"\x01\x00\x00\x00\x00"),
        (URI_QUERY, b""),
        (URI_QUERY, b"=" * 255),
        (URI_QUERY, bytes(range(256))[:255]),
        (HOP_LIMIT, b"\x00"),
        (HOP_LIMIT, b"\xff"),
        (ACCEPT, uint(65535)),
        (ACCEPT, b"\x01\x02\x03"),
        (Q_BLOCK1, block(0, True, 2)),
        (Q_BLOCK2, block(1, False, 6)),
        (PROXY_URI, b"coap://127.0.0.1/echo"),
        (PROXY_URI, b"p" * 1034),
        (PROXY_SCHEME, b"coap"),
        (SIZE1, uint(0)),
        (SIZE2, uint(0)),
        (ECHO, b"e" * 40),
        (NO_RESPONSE, uint(2)),
        (NO_RESPONSE, uint(26)),
        (NO_RESPONSE, uint(0xFF)),
        (REQUEST_TAG, b"tag"),
        *((n, b"unknown") for n in UNKNOWN_OPTIONS),
    ]
    for number, value in values:
        method = b.rng.choice(METHODS)
        payload = b"opt" if method in BODY_METHODS else b""
        yield Seed(
            "option", (b.request(method, "fields", options=((number, value),), payload=payload),)
        )
    # Many options of one kind, and an option number past 65535 in total.
    many = tuple((URI_PATH, b"s%d" % i) for i in range(120))
    yield Seed("option", (Message(CON, GET, b.next_mid(), b.token(), many),))
    yield Seed(
        "option", (Message(CON, GET, b.next_mid(), b.token(), ((65535, b"a"), (65535, b"b"))),)
    )


def _framing(b: _Builder) -> Iterator[Seed]:
    """Option deltas and lengths in all three forms, and framing that is wrong."""
    head = Message(CON, POST, b.next_mid(), b.token(2))

    def raw(options: bytes, payload: bytes = b"", marker: bool | None = None) -> Seed:
        return Seed(
            "framing",
            (head.with_(mid=b.next_mid(), raw_options=options, payload=payload, marker=marker),),
        )

    echo = option_header(URI_PATH, 4) + b"echo"
    yield raw(echo + option_header(12, 13) + b"d" * 13)  # delta 13+0 -> 23 (Block2), len 13
    yield raw(echo + option_header(269, 269) + b"x" * 269)  # both 14-extended
    yield raw(echo + option_header(268, 268) + b"y" * 268, b"p")
    yield raw(echo + option_header(65535 - 11, 1) + b"z")
    yield raw(echo + bytes([0xF0]))  # delta nibble 15 that is not a marker
    yield raw(echo + bytes([0x0F]))  # length nibble 15
    yield raw(echo + bytes([0xD0]))  # delta extension missing
    yield raw(echo + bytes([0xE0, 0x01]))  # half a 2-byte extension
    yield raw(echo + bytes([0x0D]))  # length extension missing
    yield raw(echo + option_header(0, 300) + b"short")  # value past the end
    yield raw(echo, b"", marker=True)  # a marker without a payload
    yield raw(echo + b"\xff\xff", b"x")
    for version in (0, 2, 3):
        yield Seed("framing", (b.request(GET, "echo").with_(version=version),))
    for tkl in (9, 12, 15):
        yield Seed("framing", (b.request(GET, "echo", token=b.token(8)).with_(tkl=tkl),))
    for datagram_size in (0, 1, 3):
        short = Message(CON, GET, b.next_mid(), b"").encode()[:datagram_size]
        yield Seed("framing", (Message(raw=short),))


def _observe(b: _Builder) -> Iterator[Seed]:
    for value in (b"", uint(1), uint(0xFFFFFF), b"\x01\x00\x00\x00"):
        token = b.token(b.rng.randint(1, 8))
        register = b.request(GET, "obs", token=token, options=((OBSERVE, value),))
        notify = b.request(POST, "obs", payload=b"changed")
        cancel = b.request(GET, "obs", token=token, options=((OBSERVE, uint(1)),))
        yield Seed("observe", (register, notify, notify.with_(mid=b.next_mid()), cancel))
    # Observe with block-wise notifications, and FETCH observe.
    token = b.token(3)
    yield Seed(
        "observe",
        (
            b.request(
                GET,
                "obs",
                token=token,
                options=((OBSERVE, b""), (URI_QUERY, b"s=300"), (BLOCK2, block(0, False, 0))),
            ),
            b.request(POST, "obs", payload=b"x"),
            b.request(GET, "obs", options=((URI_QUERY, b"s=300"), (BLOCK2, block(1, False, 0)))),
        ),
    )
    yield Seed(
        "observe",
        (
            b.request(
                FETCH,
                "obs",
                options=((OBSERVE, b""), (CONTENT_FORMAT, uint(60))),
                payload=b"\xa0",
            ),
        ),
    )
    yield Seed("observe", (b.request(GET, "echo", options=((OBSERVE, b""),)),))


def _block2(b: _Builder) -> Iterator[Seed]:
    for size in SIZES:
        for szx in (0, 2, 6):
            path = f"size/{size}"
            token = b.token()
            count = max(1, -(-size // block_size(szx)))
            msgs = [
                b.request(GET, path, token=token, options=((BLOCK2, block(n, False, szx)),))
                for n in range(min(count, 4))
            ]
            msgs.append(b.request(GET, path, options=((BLOCK2, block(count + 1, False, szx)),)))
            yield Seed("block2", tuple(msgs))
    # Early negotiation, a size change mid-transfer, a request with M set, SZX 7, Size2.
    yield Seed(
        "block2",
        (
            b.request(GET, "size/1025", options=((BLOCK2, block(0, False, 6)), (SIZE2, b""))),
            b.request(GET, "size/1025", options=((BLOCK2, block(4, False, 4)),)),
            b.request(GET, "size/1025", options=((BLOCK2, block(1, True, 6)),)),
            b.request(GET, "size/1025", options=((BLOCK2, block(0, False, 7)),)),
            b.request(GET, "size/1025", options=((BLOCK2, block((1 << 20) - 1, False, 0)),)),
        ),
    )


def _block1_transfer(
    b: _Builder, method: int, path: str, body: bytes, szx: int, variant: str
) -> tuple[Message, ...]:
    size = block_size(szx)
    count = max(1, -(-len(body) // size))
    token = b.token(b.rng.randint(1, 8))
    extra: tuple[Option, ...] = ((CONTENT_FORMAT, uint(42)),) if method == FETCH else ()

    def piece(
        num: int, *, szx_: int = szx, size1: int | None = None, tok: bytes = token
    ) -> Message:
        bs = block_size(szx_)
        chunk = body[num * bs : (num + 1) * bs]
        more = (num + 1) * bs < len(body)
        opts = ((BLOCK1, block(num, more, szx_)), *extra)
        if size1 is not None:
            opts += ((SIZE1, uint(size1)),)
        return b.request(method, path, token=tok, options=opts, payload=chunk)

    blocks = [piece(n, size1=len(body) if n == 0 else None) for n in range(count)]
    if variant == "dup":
        out: list[Message] = []
        for m in blocks:
            out += [m, m, m.with_(mid=b.next_mid())]
        return tuple(out)
    if variant == "reorder" and count > 1:
        blocks[0], blocks[1] = blocks[1], blocks[0]
        return tuple(blocks)
    if variant == "gap" and count > 2:
        del blocks[1]
        return tuple(blocks)
    if variant == "resize" and szx > 0 and count > 1:
        # Block 0 at this size, the rest at half the size (offsets stay right).
        small = szx - 1
        rest = range(2, max(2, -(-len(body) // block_size(small))))
        return (blocks[0], *(piece(n, szx_=small) for n in rest))
    if variant == "size1":
        lie = (0, len(body) // 2, 0xFFFFFFFF)[len(body) % 3]
        return (piece(0, size1=lie), *blocks[1:])
    if variant == "restart":
        return (blocks[0], blocks[0].with_(mid=b.next_mid(), payload=body[:size][::-1]), *blocks)
    if variant == "tokens":
        return tuple(m.with_(token=b.token(4)) for m in blocks)
    if variant == "oversize":
        # A block whose payload is larger than its SZX says, then a later block
        # that also asks for the answer in blocks (M set in a request's Block2).
        first = blocks[0].with_(
            payload=body[: 4 * size] or b"\0" * 64,
            options=((BLOCK1, block(0, True, szx)), (SIZE2, uint(len(body))), (OBSERVE, b"")),
        )
        later = b.request(
            method,
            path,
            token=b.token(5),
            options=(
                (BLOCK2, block(5, True, 6)),
                (BLOCK1, block(2, False, 4)),
                (SIZE1, uint(0x161F)),
            ),
            payload=body[-16:] or b"B" * 16,
        )
        return (first, later)
    if variant == "block2":
        last = blocks[-1]
        return (*blocks[:-1], last.with_(options=(*last.options, (BLOCK2, block(0, False, 1)))))
    return tuple(blocks)


BLOCK1_VARIANTS = (
    "inorder",
    "dup",
    "reorder",
    "gap",
    "resize",
    "size1",
    "restart",
    "tokens",
    "oversize",
    "block2",
)


def _block1(b: _Builder) -> Iterator[Seed]:
    for i, variant in enumerate(BLOCK1_VARIANTS):
        for j, method in enumerate(BODY_METHODS):
            size = SIZES[(i * 7 + j * 3) % len(SIZES)] or 33
            szx = (i + j) % 7
            path = ("echo", "upload/here", "obs")[(i + j) % 3]
            yield Seed("block1", _block1_transfer(b, method, path, b.body(size), szx, variant))


def _duplicates(b: _Builder) -> Iterator[Seed]:
    post = b.request(POST, "echo", payload=b"first")
    yield Seed("dup", (post, post, post.with_(payload=b"second"), post.with_(type=NON)))
    get = b.request(GET, "size/100", type=NON)
    yield Seed("dup", (get, get, get.with_(code=DELETE), get.with_(type=CON)))
    put = b.request(PUT, "echo", payload=b"p", options=((IF_NONE_MATCH, b""),))
    yield Seed("dup", (put, put.with_(code=PATCH), put.with_(code=IPATCH)))


def corpus() -> tuple[Seed, ...]:
    """Every seed, the same list on every call (fixed ids and tokens)."""
    b = _Builder()
    seeds: list[Seed] = []
    for family in (_methods, _codes, _options, _framing, _observe, _block2, _block1, _duplicates):
        seeds.extend(family(b))
    return tuple(seeds)


def families(seeds: tuple[Seed, ...]) -> dict[str, tuple[Seed, ...]]:
    out: dict[str, list[Seed]] = {}
    for seed in seeds:
        out.setdefault(seed.family, []).append(seed)
    return {name: tuple(group) for name, group in out.items()}


def datagrams(seed: Seed) -> list[bytes]:
    """A seed's messages as bytes."""
    return [m.encode() for m in seed.messages]
