"""Block-wise transfers (RFC 7959) on the server side: ``BlockServer``.

A serving Context runs it on every generation. libcoap 4.3's own server-side
reassembly is switched off, because hostile datagrams crash it (the glue's
``lcp_client_blocks``). Both generations behave the same: bodies of any size,
whole or not at all. The client half is ``client/blockwise.py``, whose option
helpers this module shares.
"""

from __future__ import annotations

import hashlib
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

from .._binding import lib
from ..block import (
    ACCEPT,
    BLOCK1,
    BLOCK2,
    ETAG,
    MAX_SZX,
    OBSERVE_ROOM,
    SIZE1,
    SIZE2,
    block_option,
    by_number,
    fit_szx,
    parse_block,
    read_uint,
    uint,
    without,
)
from ..codes import Code
from ..errors import CoapError, PayloadTooLargeError
from ..pdu import Option, first_option, pdu_room, write_options
from .request import Request

if TYPE_CHECKING:
    from .request import ServerResponse

__all__ = ["BlockAnswer", "BlockServer", "NoRoomError"]


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
        accept = request.option(ACCEPT)
        return (request.peer, int(request.proto), int(request.code), request.path,
                request.query, accept, fetch)  # fmt: skip

    # -- Block1 --------------------------------------------------------------------------

    def receive(self, request: Request) -> tuple[Request, Option | None] | BlockAnswer:
        """Take a request's Block1 block. Returns the request with the whole body and the
        Block1 option for the final response, or the answer to give instead of running
        the handler (2.31 Continue, 4.08, 4.13, 4.00)."""
        value = request.option(BLOCK1)
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
            announced = read_uint(request.options, SIZE1)
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
                return BlockAnswer(Code.CONTINUE, [block_option(BLOCK1, num, True, szx)])
        if offset + len(data) > self.max_body or self._upload_total + len(data) > self.upload_bytes:
            self._drop_upload(key)
            return self._too_large()
        upload.data += data
        upload.touched = now
        self._upload_total += len(data)
        self._uploads.move_to_end(key)
        if more:
            return BlockAnswer(Code.CONTINUE, [block_option(BLOCK1, num, True, szx)])
        self._drop_upload(key)
        whole = Request(
            request.code,
            request.type,
            request.mid,
            request.token,
            bytes(upload.data),
            without(request.options, BLOCK1, SIZE1),
            request.session,
        )
        return whole, block_option(BLOCK1, num, False, szx)

    def _too_large(self) -> BlockAnswer:
        return BlockAnswer(Code.REQUEST_ENTITY_TOO_LARGE, [(SIZE1, uint(self.max_body))])

    # -- Block2 --------------------------------------------------------------------------

    def answer_later_block(self, request: Request, max_pdu: int) -> BlockAnswer | None:
        """The answer to a request for block 1, 2, ... of a body rendered before (None
        when the handler has to run)."""
        value = request.option(BLOCK2)
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
        value = request.option(BLOCK2)
        asked = None
        if value is not None:
            try:
                asked = parse_block(value)
            except ValueError:
                asked = None
        # (room for the Observe and Block2 options libcoap 4.3 puts into notifications)
        extra = [OBSERVE_ROOM] if value is None else [OBSERVE_ROOM, (BLOCK2, bytes(3))]
        room = pdu_room(max_pdu, len(request.token), sorted([*options, *extra]))
        fits = len(payload) <= room
        if fits and (asked is None or (asked[0] == 0 and len(payload) <= 16 << asked[2])):
            self._remember(request, block1, int(reply.code), options, payload)
            BlockAnswer(reply.code, options, payload).write(response)
            return
        if first_option(options, ETAG) is None:
            tag = hashlib.blake2b(payload, digest_size=8).digest()
            options.append((ETAG, tag))
        later = without(options, BLOCK1)
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
        value = request.option(BLOCK2)
        num, szx = 0, MAX_SZX
        if value is not None:
            try:
                num, _, szx = parse_block(value)
            except ValueError:
                num, szx = 0, MAX_SZX
        offset = num << (szx + 4)
        if offset and offset >= len(payload):
            message = f"there is no block {num} of {16 << szx} bytes in {len(payload)} bytes"
            return BlockAnswer(Code.BAD_REQUEST, [], message.encode())
        try:
            # (room for an Observe option, which libcoap 4.3 puts into notifications)
            szx = min(szx, fit_szx(max_pdu, len(request.token), [*options, OBSERVE_ROOM]))
        except PayloadTooLargeError as error:
            raise NoRoomError(str(error)) from None
        size = 16 << szx
        chunk = payload[offset : offset + size]
        more = offset + size < len(payload)
        block = [block_option(BLOCK2, offset // size, more, szx), (SIZE2, uint(len(payload)))]
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
        block2 = first_option(options, BLOCK2)
        if block2 is not None:
            patched = lib.lcp_patch_block2(response, block2, len(block2))
            if patched < 0:
                raise NoRoomError(
                    "this notification needs more than one block, and libcoap left no room "
                    "to say so in its Block2 option (an observer of 16-byte blocks)"
                )
            if patched:
                options = [o for o in options if o[0] != BLOCK2]
        lib.lcp_pdu_set_code(response, int(self.code))
        write_options(response, sorted(options, key=by_number))
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
