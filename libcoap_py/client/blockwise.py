"""Block-wise transfers (RFC 7959) done in Python, where libcoap leaves them to the binding.

Client side: libcoap 4.3 cuts and reassembles bodies itself (``lib.LCP_HAS_BLOCK``);
libcoap 4.2 does not, and there ``Session.request()`` runs the client half below
(Block1 uploads, Block2 downloads).

The server half is ``server/blockwise.py``; the option codec both use is ``block.py``.
"""

from __future__ import annotations

import time
from collections.abc import Generator
from typing import TYPE_CHECKING, Callable, Optional

from ..block import (
    BLOCK1,
    BLOCK2,
    BLOCK_SIZES,
    CONTINUE,
    ETAG,
    LIBCOAP_BLOCKS,
    MAX_NUM,
    SIZE1,
    SIZE2,
    block_option,
    block_szx,
    by_number,
    fit_szx,
    parse_block,
    read_uint,
    uint,
    without,
)
from ..codes import Code
from ..errors import BlockwiseError, NackError, PayloadTooLargeError, RequestTimeout
from ..pdu import Option, Response, first_option, pdu_room

if TYPE_CHECKING:
    from .session import Session, Waiting

__all__ = [
    "BLOCK_SIZES",
    "LIBCOAP_BLOCKS",
    "ProgressCallback",
    "block_szx",
    "request",
]

#: ``progress(done_bytes, total_bytes_or_None)``, see ``Session.request()``.
ProgressCallback = Callable[[int, Optional[int]], None]

# -- client -------------------------------------------------------------------------------


#: The steps of a wait (``Session``'s ``Steps``): they yield what to wait for, and
#: return the response. A blocking request and an awaited one drive them alike.
Steps = Generator["Waiting", None, Response]
#: ``ask(code, options, payload, confirmable, token, timeout, deadline)``: the steps
#: that send one request PDU whose payload fits, and wait for its answer.
Ask = Callable[
    [int, list[Option], bytes, bool, Optional[bytes], Optional[float], Optional[float]], Steps
]


class _Transfer:
    """Sends the PDUs of one request() and waits for each answer, within its time."""

    def __init__(
        self,
        session: Session,
        ask: Ask,
        code: int,
        confirmable: bool,
        timeout: float | None,
        progress: ProgressCallback | None,
        token: bytes | None,
    ) -> None:
        self.session = session
        self.ask = ask
        self.token = token  # the caller's token, for the first message only
        self.code = code
        self.confirmable = confirmable
        self.timeout = timeout
        self.deadline = None if timeout is None else time.monotonic() + timeout
        self.progress = progress
        self.last_report: tuple[int, int | None] | None = None
        self.what = ""  # how far the transfer got, for error messages

    def __call__(self, options: list[Option], payload: bytes) -> Steps:
        # Without a timeout, each exchange waits as long as libcoap retransmits.
        if self.deadline is not None and self.deadline <= time.monotonic():
            self._timed_out()
        options.sort(key=by_number)
        chosen, self.token = self.token, None
        try:
            return (
                yield from self.ask(
                    self.code,
                    options,
                    payload,
                    self.confirmable,
                    chosen,
                    self.timeout,
                    self.deadline,
                )
            )
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
    ask: Ask,
    code: int,
    options: list[Option],
    body: bytes,
    *,
    confirmable: bool,
    block_size: int | None,
    timeout: float | None,
    progress: ProgressCallback | None,
    token: bytes | None = None,
) -> Steps:
    """One request() where libcoap does no block-wise transfers: the body goes out in
    Block1 blocks if it must, and a response in Block2 blocks is fetched to the end."""
    user_block2 = first_option(options, BLOCK2)
    base = without(options, BLOCK1, BLOCK2, SIZE1)
    want: int | None = None
    if block_size is not None:
        want = block_szx(block_size)
    elif user_block2 is not None:
        want = parse_block(user_block2)[2]
    exchange = _Transfer(session, ask, code, confirmable, timeout, progress, token)
    max_pdu = session.max_pdu_size
    token_len = 8 if token is None else len(token)
    total = len(body)
    room = pdu_room(max_pdu, token_len, base)
    if body and (total > room or (want is not None and total > 16 << want)):
        response = yield from _upload(exchange, base, body, want, fit_szx(max_pdu, token_len, base))
    else:
        block2 = [] if want is None else [block_option(BLOCK2, 0, False, want)]
        response = yield from exchange([*base, *block2], body)
        if body:
            exchange.report(total, total)
    response = yield from _download(exchange, base, response)
    exchange.report(len(response.payload), len(response.payload))
    return response


def _upload(
    exchange: _Transfer, base: list[Option], body: bytes, want: int | None, fits: int
) -> Steps:
    """Send ``body`` in Block1 blocks; the answer to the last one is the result."""
    total = len(body)
    szx = fits if want is None else min(want, fits)
    if total > (MAX_NUM + 1) << (szx + 4):
        raise PayloadTooLargeError(
            f"a body of {total} bytes is larger than Block1 can number in {16 << szx}-byte blocks"
        )
    offset = 0
    while True:
        size = 16 << szx
        num = offset >> (szx + 4)
        chunk = body[offset : offset + size]
        more = offset + size < total
        options = [*base, block_option(BLOCK1, num, more, szx)]
        if offset == 0:
            options.append((SIZE1, uint(total)))
        if not more and want is not None:
            options.append(block_option(BLOCK2, 0, False, want))
        exchange.what = f"{offset} of {total} request body bytes acknowledged"
        response = yield from exchange(options, chunk)
        echo = response.option(BLOCK1)
        code = int(response.code)
        if not more:
            if code == CONTINUE:
                raise BlockwiseError(
                    f"{exchange.session.uri} answered 2.31 Continue to the last block", response
                )
            exchange.report(total, total)
            response.options = without(response.options, BLOCK1)
            return response
        if code == CONTINUE:
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


def _download(exchange: _Transfer, base: list[Option], first: Response) -> Steps:
    """Fetch the remaining Block2 blocks of a response; the whole body or an exception."""
    value = first.option(BLOCK2)
    if value is None:
        return first
    num, more, szx = _parse_or_fail(value, first, "Block2")
    uri = exchange.session.uri
    if num != 0:
        raise BlockwiseError(f"{uri} sent block {num} of its response first, not block 0", first)
    etag = first.option(ETAG)
    total = read_uint(first.options, SIZE2)
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
        if num > MAX_NUM:
            raise BlockwiseError(f"the response of {uri} is larger than Block2 can number")
        last = yield from exchange([*base, block_option(BLOCK2, num, False, szx)], b"")
        if last.code != code:
            raise BlockwiseError(
                f"{uri} answered {last.code.dotted} to the request for block {num} of "
                f"its response ({exchange.what}); the transfer is incomplete",
                last,
            )
        value = last.option(BLOCK2)
        if value is None:
            raise BlockwiseError(f"{uri} answered block {num} without a Block2 option", last)
        rnum, more, rszx = _parse_or_fail(value, last, "Block2")
        if rnum << (rszx + 4) != done:
            raise BlockwiseError(
                f"{uri} sent the block at byte {rnum << (rszx + 4)} where the one at byte "
                f"{done} was asked for (blocks out of order)",
                last,
            )
        if last.option(ETAG) != etag:
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
    return Response(code, body, without(last.options, BLOCK2), last.type, last.mid, last.token)


# -- server -------------------------------------------------------------------------------
