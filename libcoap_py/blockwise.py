"""Block-wise transfers (RFC 7959) done in Python, where libcoap leaves them to the binding.

Client side: libcoap 4.3 cuts and reassembles bodies itself (``lib.LCP_HAS_BLOCK``);
libcoap 4.2 does not, and there ``Session.request()`` runs the client half below
(Block1 uploads, Block2 downloads).

Server side: a serving Context runs the server half (``BlockServer``) on every
generation. libcoap 4.3's own server-side reassembly is switched off, because
hostile datagrams crash it (``_glue.c``, ``lcp_client_blocks``). Both generations
behave the same: bodies of any size, whole or not at all.
"""

from __future__ import annotations

import hashlib
import time
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Optional

from ._libcoap import lib
from .codes import Code, OptionNumber
from .errors import BlockwiseError, CoapError, NackError, PayloadTooLargeError, RequestTimeout
from .pdu import Option, Response, first_option, pdu_room, write_options
from .request import Request

if TYPE_CHECKING:
    from .request import ServerResponse
    from .session import Session

__all__ = [
    "BLOCK_SIZES",
    "LIBCOAP_BLOCKS",
    "BlockAnswer",
    "BlockServer",
    "NoRoomError",
    "ProgressCallback",
    "block_szx",
    "request",
]

#: ``progress(done_bytes, total_bytes_or_None)``, see ``Session.request()``.
ProgressCallback = Callable[[int, Optional[int]], None]

BLOCK_SIZES = (16, 32, 64, 128, 256, 512, 1024)
#: True where libcoap does block-wise transfers itself (4.3); this module then idles.
LIBCOAP_BLOCKS = bool(lib.LCP_HAS_BLOCK)

_BLOCK1 = int(OptionNumber.BLOCK1)
_BLOCK2 = int(OptionNumber.BLOCK2)
_SIZE1 = int(OptionNumber.SIZE1)
_SIZE2 = int(OptionNumber.SIZE2)
_ETAG = int(OptionNumber.ETAG)
#: The most an Observe option takes (a 3-byte value).
_OBSERVE_ROOM: Option = (int(OptionNumber.OBSERVE), bytes(3))
_ACCEPT = int(OptionNumber.ACCEPT)
_CONTINUE = int(Code.CONTINUE)
_MAX_SZX = 6  # 1024 bytes; 7 is BERT (CoAP over TCP only)
_MAX_NUM = 0xFFFFF  # block numbers have 20 bits
#: Room kept for the options a block adds: Block1/Block2 (up to 3 bytes), Size1/Size2
#: (up to 4) and an ETag (8), each with a 1-byte header (a generous bound).
_BLOCK_OVERHEAD: list[Option] = [(_BLOCK1, bytes(3)), (_SIZE1, bytes(4)), (_SIZE2, bytes(8))]


def block_szx(size: int) -> int:
    """The SZX exponent of a block size (RFC 7959: 16 to 1024, powers of two)."""
    if size not in BLOCK_SIZES:
        raise ValueError(f"block_size must be one of {', '.join(map(str, BLOCK_SIZES))}")
    return BLOCK_SIZES.index(size)


def _uint(value: int) -> bytes:
    return value.to_bytes((value.bit_length() + 7) // 8, "big")


def block_option(number: int, num: int, more: bool, szx: int) -> Option:
    """A Block1 or Block2 option: block number, more flag, size exponent."""
    return number, _uint(num << 4 | (8 if more else 0) | szx)


def parse_block(value: bytes) -> tuple[int, bool, int]:
    """(num, more, szx) of a Block1/Block2 value; ValueError for a malformed one."""
    if len(value) > 3:
        raise ValueError("a Block option has at most 3 bytes")
    raw = int.from_bytes(value, "big")
    szx = raw & 7
    if szx == 7:
        raise ValueError("block size exponent 7 (BERT) is for CoAP over TCP")
    return raw >> 4, bool(raw & 8), szx


def _read_uint(options: Sequence[Option], number: int) -> int | None:
    value = first_option(options, number)
    return None if value is None else int.from_bytes(value, "big")


def fit_szx(max_pdu: int, token_len: int, options: Sequence[Option]) -> int:
    """The largest SZX whose blocks fit one PDU next to these options and the block ones."""
    room = pdu_room(max_pdu, token_len, sorted([*options, *_BLOCK_OVERHEAD]))
    for szx in range(_MAX_SZX, -1, -1):
        if 16 << szx <= room:
            return szx
    raise PayloadTooLargeError(
        f"not even a 16-byte block fits a PDU of {max_pdu} bytes next to these options"
    )


def _by_number(option: Option) -> int:
    return option[0]


def _without(options: Sequence[Option], *numbers: int) -> list[Option]:
    return [o for o in options if o[0] not in numbers]


# -- client -------------------------------------------------------------------------------


class _Exchanges:
    """Sends the PDUs of one request() and waits for each answer, within its time."""

    def __init__(
        self,
        session: Session,
        code: int,
        confirmable: bool,
        timeout: float | None,
        progress: ProgressCallback | None,
        token: bytes | None,
    ) -> None:
        self.session = session
        self.token = token  # the caller's token, for the first message only
        self.code = code
        self.confirmable = confirmable
        self.timeout = timeout
        self.deadline = None if timeout is None else time.monotonic() + timeout
        self.progress = progress
        self.last_report: tuple[int, int | None] | None = None
        self.what = ""  # how far the transfer got, for error messages

    def __call__(self, options: list[Option], payload: bytes) -> Response:
        # Without a timeout, each exchange waits as long as libcoap retransmits.
        if self.deadline is not None and self.deadline <= time.monotonic():
            self._timed_out()
        options.sort(key=_by_number)
        chosen, self.token = self.token, None
        token, mid = self.session._send_pdu(self.code, options, payload, self.confirmable, chosen)
        try:
            return self.session._wait(token, mid, self.timeout, self.deadline)
        except NackError as error:
            if self.what:
                error.args = (f"{error} (block-wise transfer: {self.what})",)
            raise

    def _timed_out(self) -> None:
        raise RequestTimeout(
            f"no complete response from {self.session.uri} within {self.timeout:g} s "
            f"(block-wise transfer: {self.what})"
        )

    def report(self, done: int, total: int | None) -> None:
        if self.progress is not None and self.last_report != (done, total):
            self.last_report = (done, total)
            self.progress(done, total)


def request(
    session: Session,
    code: int,
    options: list[Option],
    body: bytes,
    *,
    confirmable: bool,
    block_size: int | None,
    timeout: float | None,
    progress: ProgressCallback | None,
    token: bytes | None = None,
) -> Response:
    """One request() where libcoap does no block-wise transfers: the body goes out in
    Block1 blocks if it must, and a response in Block2 blocks is fetched to the end."""
    user_block2 = first_option(options, _BLOCK2)
    base = _without(options, _BLOCK1, _BLOCK2, _SIZE1)
    want: int | None = None
    if block_size is not None:
        want = block_szx(block_size)
    elif user_block2 is not None:
        want = parse_block(user_block2)[2]
    exchange = _Exchanges(session, code, confirmable, timeout, progress, token)
    max_pdu = session.max_pdu_size
    token_len = 8 if token is None else len(token)
    total = len(body)
    room = pdu_room(max_pdu, token_len, base)
    if body and (total > room or (want is not None and total > 16 << want)):
        response = _upload(exchange, base, body, want, fit_szx(max_pdu, token_len, base))
    else:
        ask = [] if want is None else [block_option(_BLOCK2, 0, False, want)]
        response = exchange([*base, *ask], body)
        if body:
            exchange.report(total, total)
    response = _download(exchange, base, response)
    exchange.report(len(response.payload), len(response.payload))
    return response


def _upload(
    exchange: _Exchanges, base: list[Option], body: bytes, want: int | None, fits: int
) -> Response:
    """Send ``body`` in Block1 blocks; the answer to the last one is the result."""
    total = len(body)
    szx = fits if want is None else min(want, fits)
    if total > (_MAX_NUM + 1) << (szx + 4):
        raise PayloadTooLargeError(
            f"a body of {total} bytes is larger than Block1 can number in {16 << szx}-byte blocks"
        )
    offset = 0
    while True:
        size = 16 << szx
        num = offset >> (szx + 4)
        chunk = body[offset : offset + size]
        more = offset + size < total
        options = [*base, block_option(_BLOCK1, num, more, szx)]
        if offset == 0:
            options.append((_SIZE1, _uint(total)))
        if not more and want is not None:
            options.append(block_option(_BLOCK2, 0, False, want))
        exchange.what = f"{offset} of {total} request body bytes acknowledged"
        response = exchange(options, chunk)
        echo = response.option(_BLOCK1)
        code = int(response.code)
        if not more:
            if code == _CONTINUE:
                raise BlockwiseError(
                    f"{exchange.session.uri} answered 2.31 Continue to the last block", response
                )
            exchange.report(total, total)
            response.options = _without(response.options, _BLOCK1)
            return response
        if code == _CONTINUE:
            if echo is not None:
                rnum, _, rszx = _parse_or_fail(echo, response, "Block1")
                if rnum != num:
                    raise BlockwiseError(
                        f"{exchange.session.uri} acknowledged block {rnum} instead of "
                        f"block {num} of the request body",
                        response,
                    )
                szx = min(szx, rszx)  # the server may ask for smaller blocks
            offset += len(chunk)
            exchange.report(offset, total)
            continue
        if offset == 0 and code >> 5 >= 4:
            if code == int(Code.REQUEST_ENTITY_TOO_LARGE) and echo is not None:
                smaller = _parse_or_fail(echo, response, "Block1")[2]
                if smaller < szx:  # "use smaller blocks" (RFC 7959, 2.9.3): start again
                    szx = smaller
                    continue
            return response  # the server refused the body before taking any of it
        raise BlockwiseError(
            f"{exchange.session.uri} answered {response.code.dotted} to block {num} "
            f"of the request body ({offset} of {total} bytes acknowledged); "
            "the transfer is incomplete",
            response,
        )


def _parse_or_fail(value: bytes, response: Response, name: str) -> tuple[int, bool, int]:
    try:
        return parse_block(value)
    except ValueError as error:
        raise BlockwiseError(
            f"malformed {name} option in the response: {error}", response
        ) from None


def _download(exchange: _Exchanges, base: list[Option], first: Response) -> Response:
    """Fetch the remaining Block2 blocks of a response; the whole body or an exception."""
    value = first.option(_BLOCK2)
    if value is None:
        return first
    num, more, szx = _parse_or_fail(value, first, "Block2")
    uri = exchange.session.uri
    if num != 0:
        raise BlockwiseError(f"{uri} sent block {num} of its response first, not block 0", first)
    etag = first.option(_ETAG)
    total = _read_uint(first.options, _SIZE2)
    parts = [first.payload]
    done = len(first.payload)
    code = first.code
    last = first
    while more:
        if len(last.payload) != 16 << szx:
            raise BlockwiseError(
                f"{uri} sent a block of {len(last.payload)} bytes where {16 << szx} were due",
                last,
            )
        exchange.report(done, total)
        exchange.what = f"{done} response body bytes received" + (
            f" of {total}" if total is not None else ""
        )
        num = done >> (szx + 4)
        if num > _MAX_NUM:
            raise BlockwiseError(f"the response of {uri} is larger than Block2 can number")
        last = exchange([*base, block_option(_BLOCK2, num, False, szx)], b"")
        if last.code != code:
            raise BlockwiseError(
                f"{uri} answered {last.code.dotted} to the request for block {num} of "
                f"its response ({exchange.what}); the transfer is incomplete",
                last,
            )
        value = last.option(_BLOCK2)
        if value is None:
            raise BlockwiseError(f"{uri} answered block {num} without a Block2 option", last)
        rnum, more, rszx = _parse_or_fail(value, last, "Block2")
        if rnum << (rszx + 4) != done:
            raise BlockwiseError(
                f"{uri} sent the block at byte {rnum << (rszx + 4)} where the one at byte "
                f"{done} was asked for (blocks out of order)",
                last,
            )
        if last.option(_ETAG) != etag:
            raise BlockwiseError(
                f"the resource at {uri} changed during the block-wise transfer (its ETag "
                f"changed after {done} bytes); request it again",
                last,
            )
        szx = rszx
        parts.append(last.payload)
        done += len(last.payload)
    body = b"".join(parts)
    exchange.report(done, total if total is not None and total >= done else done)
    return Response(code, body, _without(last.options, _BLOCK2), last.type, last.mid, last.token)


# -- server -------------------------------------------------------------------------------


@dataclass
class _Upload:
    data: bytearray = field(default_factory=bytearray)
    touched: float = 0.0


@dataclass
class _Done:
    """The answer to the last block of a finished upload, for a retransmission of it."""

    num: int
    code: int
    options: list[Option]
    payload: bytes
    touched: float


@dataclass
class _Body:
    code: int
    options: list[Option]
    payload: bytes
    touched: float


class BlockServer:
    """Block-wise state of a serving Context: partial Block1 uploads, per peer and
    path, and response bodies being sent in Block2 blocks.

    The state a peer can make the server hold is bounded: ``per_peer`` partial
    uploads and kept bodies each (a new one drops that peer's oldest), and
    ``upload_bytes`` and ``cache_bytes`` for all peers together.

    Later blocks of a response are served from a copy of the body the handler
    rendered for block 0, kept per peer, method, path and query for
    ``lifetime`` seconds and ``cache_bytes`` in all: every block comes from the
    same rendering (consistent, and POST/PUT handlers run once). When a copy has
    expired, a GET or FETCH runs the handler again (the ETag tells the client
    whether the body changed); other methods get 4.08.
    """

    #: The largest request body accepted (4.13 beyond, with Size1 saying this).
    max_body = 16 << 20
    #: Bytes all partial uploads together may hold (4.13 beyond).
    upload_bytes = 64 << 20
    #: Bytes of response bodies kept for their later blocks (oldest dropped first).
    cache_bytes = 32 << 20
    #: Seconds a partial upload or a kept body lives without being touched.
    lifetime = 120.0
    #: Finished uploads whose last answer is kept, for a retransmitted last block.
    done_count = 64
    #: Partial uploads, and kept response bodies, one peer may have at a time.
    per_peer = 4

    def __init__(self) -> None:
        self._uploads: OrderedDict[tuple[Any, ...], _Upload] = OrderedDict()
        self._bodies: OrderedDict[tuple[Any, ...], _Body] = OrderedDict()
        self._done: OrderedDict[tuple[Any, ...], _Done] = OrderedDict()
        self._upload_total = 0
        self._body_total = 0
        # How many uploads / bodies each peer has (for per_peer).
        self._peer_uploads: dict[Any, int] = {}
        self._peer_bodies: dict[Any, int] = {}

    # -- bookkeeping ---------------------------------------------------------------------

    def _expire(self, now: float) -> None:
        limit = now - self.lifetime
        while self._uploads:
            key, upload = next(iter(self._uploads.items()))
            if upload.touched >= limit:
                break
            self._drop_upload(key)
        while self._bodies:
            key, body = next(iter(self._bodies.items()))
            if body.touched >= limit and self._body_total <= self.cache_bytes:
                break
            self._drop_body(key)
        while self._done:
            key, done = next(iter(self._done.items()))
            if done.touched >= limit and len(self._done) <= self.done_count:
                break
            del self._done[key]

    def _drop_upload(self, key: tuple[Any, ...]) -> None:
        upload = self._uploads.pop(key, None)
        if upload is not None:
            self._upload_total -= len(upload.data)
            _count(self._peer_uploads, key[0], -1)

    def _drop_body(self, key: tuple[Any, ...]) -> None:
        body = self._bodies.pop(key, None)
        if body is not None:
            self._body_total -= len(body.payload)
            _count(self._peer_bodies, key[0], -1)

    def _make_room(
        self,
        table: OrderedDict[tuple[Any, ...], Any],
        counts: dict[Any, int],
        peer: Any,
        drop: Callable[[tuple[Any, ...]], None],
    ) -> None:
        """Drop ``peer``'s oldest entries of ``table`` until it may add one more."""
        if counts.get(peer, 0) < self.per_peer:
            return
        for key in [k for k in table if k[0] == peer][: counts[peer] - self.per_peer + 1]:
            drop(key)

    def forget_peer(self, peer: tuple[str, int], proto: int) -> None:
        """Drop the uploads, kept bodies and last answers of a peer whose session ended."""
        for table, drop in (
            (self._uploads, self._drop_upload),
            (self._bodies, self._drop_body),
            (self._done, self._done.pop),
        ):
            for key in [k for k in table if k[0] == peer and k[1] == proto]:
                drop(key)

    @staticmethod
    def _upload_key(request: Request) -> tuple[Any, ...]:
        return (request.peer, int(request.proto), int(request.code), request.path, request.query)

    @staticmethod
    def _body_key(request: Request) -> tuple[Any, ...]:
        fetch = request.payload if request.code == Code.FETCH else b""
        accept = request.option(_ACCEPT)
        return (request.peer, int(request.proto), int(request.code), request.path,
                request.query, accept, fetch)  # fmt: skip

    # -- Block1 --------------------------------------------------------------------------

    def receive(self, request: Request) -> tuple[Request, Option | None] | BlockAnswer:
        """Take a request's Block1 block. Returns the request with the whole body and the
        Block1 option for the final response, or the answer to give instead of running
        the handler (2.31 Continue, 4.08, 4.13, 4.00)."""
        value = request.option(_BLOCK1)
        if value is None:
            return request, None
        now = time.monotonic()
        self._expire(now)
        try:
            num, more, szx = parse_block(value)
        except ValueError as error:
            return BlockAnswer(Code.BAD_REQUEST, [], f"Block1: {error}".encode())
        size = 16 << szx
        offset = num * size
        data = request.payload
        key = self._upload_key(request)
        if more and len(data) != size:
            self._drop_upload(key)
            message = f"block {num} has {len(data)} bytes, not {size}"
            return BlockAnswer(Code.BAD_REQUEST, [], message.encode())
        if num == 0:
            self._drop_upload(key)
            self._done.pop(key, None)
            announced = _read_uint(request.options, _SIZE1)
            if announced is not None and announced > self.max_body:
                return self._too_large()
            self._make_room(self._uploads, self._peer_uploads, key[0], self._drop_upload)
            upload = self._uploads[key] = _Upload(touched=now)
            _count(self._peer_uploads, key[0], 1)
        else:
            found = self._uploads.get(key)
            finished = self._done.get(key)
            if found is None and finished is not None and finished.num == num and not more:
                # The last block again (our answer was lost, and a new message ID gets
                # past libcoap's duplicate check): the same answer, the handler has run.
                return BlockAnswer(finished.code, finished.options, finished.payload)
            if found is None or offset > len(found.data):
                self._drop_upload(key)
                have = 0 if found is None else len(found.data)
                message = f"block {num} (byte {offset}) came before the bytes from {have} on"
                return BlockAnswer(Code.REQUEST_ENTITY_INCOMPLETE, [], message.encode())
            upload = found
            if offset < len(upload.data):  # a block already taken, sent again
                upload.touched = now
                return BlockAnswer(Code.CONTINUE, [block_option(_BLOCK1, num, True, szx)])
        if offset + len(data) > self.max_body or self._upload_total + len(data) > self.upload_bytes:
            self._drop_upload(key)
            return self._too_large()
        upload.data += data
        upload.touched = now
        self._upload_total += len(data)
        self._uploads.move_to_end(key)
        if more:
            return BlockAnswer(Code.CONTINUE, [block_option(_BLOCK1, num, True, szx)])
        self._drop_upload(key)
        whole = Request(
            request.code,
            request.type,
            request.mid,
            request.token,
            bytes(upload.data),
            _without(request.options, _BLOCK1, _SIZE1),
            request.session,
        )
        return whole, block_option(_BLOCK1, num, False, szx)

    def _too_large(self) -> BlockAnswer:
        return BlockAnswer(Code.REQUEST_ENTITY_TOO_LARGE, [(_SIZE1, _uint(self.max_body))])

    # -- Block2 --------------------------------------------------------------------------

    def answer_later_block(self, request: Request, max_pdu: int) -> BlockAnswer | None:
        """The answer to a request for block 1, 2, ... of a body rendered before (None
        when the handler has to run)."""
        value = request.option(_BLOCK2)
        if value is None:
            return None
        try:
            num = parse_block(value)[0]
        except ValueError as error:
            return BlockAnswer(Code.BAD_REQUEST, [], f"Block2: {error}".encode())
        if num == 0:
            return None
        now = time.monotonic()
        self._expire(now)
        key = self._body_key(request)
        body = self._bodies.get(key)
        if body is None:
            if request.code in (Code.GET, Code.FETCH):
                return None  # render it again; the ETag shows whether it changed
            message = "the response body is no longer kept; ask for block 0 again"
            return BlockAnswer(Code.REQUEST_ENTITY_INCOMPLETE, [], message.encode())
        body.touched = now
        self._bodies.move_to_end(key)
        return self._block_of(request, max_pdu, body.code, body.options, body.payload)

    def respond(
        self,
        request: Request,
        reply: ServerResponse,
        response: Any,
        max_pdu: int,
        block1: Option | None,
    ) -> None:
        """Write the handler's answer: whole if it fits, else the block the client asked
        for (block 0 unless it said otherwise), with ETag and Size2."""
        options = reply._option_list()
        if block1 is not None:
            options.append(block1)
        body = reply.payload
        payload = body.encode() if isinstance(body, str) else bytes(body)
        value = request.option(_BLOCK2)
        asked = None
        if value is not None:
            try:
                asked = parse_block(value)
            except ValueError:
                asked = None
        # (room for the Observe and Block2 options libcoap 4.3 puts into notifications)
        extra = [_OBSERVE_ROOM] if value is None else [_OBSERVE_ROOM, (_BLOCK2, bytes(3))]
        room = pdu_room(max_pdu, len(request.token), sorted([*options, *extra]))
        fits = len(payload) <= room
        if fits and (asked is None or (asked[0] == 0 and len(payload) <= 16 << asked[2])):
            self._remember(request, block1, int(reply.code), options, payload)
            BlockAnswer(reply.code, options, payload).write(response)
            return
        if first_option(options, _ETAG) is None:
            tag = hashlib.blake2b(payload, digest_size=8).digest()
            options.append((_ETAG, tag))
        later = _without(options, _BLOCK1)
        if len(payload) > 16 and self.cache_bytes > 0:
            key = self._body_key(request)
            self._drop_body(key)
            self._make_room(self._bodies, self._peer_bodies, key[0], self._drop_body)
            self._bodies[key] = _Body(int(reply.code), later, payload, time.monotonic())
            self._body_total += len(payload)
            _count(self._peer_bodies, key[0], 1)
            self._expire(time.monotonic())
        block = self._block_of(request, max_pdu, int(reply.code), options, payload)
        block.write(response)
        self._remember(request, block1, int(block.code), block.options, block.payload)

    def _remember(
        self,
        request: Request,
        block1: Option | None,
        code: int,
        options: list[Option],
        payload: bytes,
    ) -> None:
        if block1 is not None and self.done_count > 0:
            key = self._upload_key(request)
            num = parse_block(block1[1])[0]
            self._done[key] = _Done(num, code, options, payload, time.monotonic())
            self._done.move_to_end(key)
            self._expire(time.monotonic())

    def _block_of(
        self,
        request: Request,
        max_pdu: int,
        code: int,
        options: list[Option],
        payload: bytes,
    ) -> BlockAnswer:
        """The block of ``payload`` the request asks for (block 0 if it does not say)."""
        value = request.option(_BLOCK2)
        num, szx = 0, _MAX_SZX
        if value is not None:
            try:
                num, _, szx = parse_block(value)
            except ValueError:
                num, szx = 0, _MAX_SZX
        offset = num << (szx + 4)
        if offset and offset >= len(payload):
            message = f"there is no block {num} of {16 << szx} bytes in {len(payload)} bytes"
            return BlockAnswer(Code.BAD_REQUEST, [], message.encode())
        try:
            # (room for an Observe option, which libcoap 4.3 puts into notifications)
            szx = min(szx, fit_szx(max_pdu, len(request.token), [*options, _OBSERVE_ROOM]))
        except PayloadTooLargeError as error:
            raise NoRoomError(str(error)) from None
        size = 16 << szx
        chunk = payload[offset : offset + size]
        more = offset + size < len(payload)
        block = [block_option(_BLOCK2, offset // size, more, szx), (_SIZE2, _uint(len(payload)))]
        return BlockAnswer(code, [*options, *block], chunk)


class NoRoomError(CoapError):
    """An answer that this session's PDUs cannot carry: the peer made them small (a CSM
    over UDP, which libcoap 4.3 takes), or libcoap 4.3's Block2 option in a notification
    (for an observer of 16-byte blocks) has no room for the more flag."""


@dataclass(frozen=True)
class BlockAnswer:
    """An answer of the block layer: a block of a body, 2.31 Continue, or an error."""

    code: Code | int
    options: list[Option]
    payload: bytes = b""

    def write(self, response: Any) -> None:
        """Fill the C response PDU. A Block2 option that libcoap put there (in a
        notification to an observer that asked for a block size) gets this answer's
        value instead of a second Block2."""
        options = self.options
        block2 = first_option(options, _BLOCK2)
        if block2 is not None:
            patched = lib.lcp_patch_block2(response, block2, len(block2))
            if patched < 0:
                raise NoRoomError(
                    "this notification needs more than one block, and libcoap left no room "
                    "to say so in its Block2 option (an observer of 16-byte blocks)"
                )
            if patched:
                options = [o for o in options if o[0] != _BLOCK2]
        lib.lcp_pdu_set_code(response, int(self.code))
        write_options(response, sorted(options, key=_by_number))
        if self.payload and not lib.coap_add_data(response, len(self.payload), self.payload):
            if int(self.code) >> 5 >= 4:
                # An error's payload is diagnostic text, which may be left out (RFC 7252,
                # 5.5.2): it does not fit where the peer made the session's PDUs small
                # (libcoap 4.3 takes a CSM's Max-Message-Size even over UDP).
                return
            raise NoRoomError(
                f"libcoap refused a payload of {len(self.payload)} bytes: this session's PDUs "
                "are smaller than the binding reckoned"
            )


def _count(counts: dict[Any, int], peer: Any, step: int) -> None:
    left = counts.get(peer, 0) + step
    if left > 0:
        counts[peer] = left
    else:
        counts.pop(peer, None)
