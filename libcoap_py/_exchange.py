"""The exchange engine: a Context's one table of outstanding requests.

Every way of asking rests on it. A blocking ``Session.request()``, an
observation, a block of a block-wise transfer (libcoap 4.2) and, next, an
awaited request each *open* an exchange when their PDU has gone to libcoap,
keyed by the session and the token. The Context's response and NACK dispatch
(``Context``'s ``Dispatch``) asks this table first:

- a response whose (session, token) is open *completes* the exchange (or, for
  an observation, is handed to it and the exchange stays open);
- a NACK for an open exchange fails it, with the error of the NACK's reason;
- anything else goes to the user's handlers (the handler loop: PDUs sent with
  ``Session.send()``).

A one-shot request (one answer: ``request()``, a block of a 4.2 transfer)
goes out with a *claim* (``claim()``, then ``Loop.send``; glue.c's "Claims"):
libcoap's response and NACK handlers fill it in C, with no call into Python.
When the answer came in the send's own first pass, ``take`` makes the
response and no exchange is opened; otherwise ``adopt`` opens the exchange
with the claim, and its owner completes it from the claim after a later pass
(``settle``, through the same ``complete`` as the dispatch). The claim is
disarmed whenever the exchange leaves the table or is abandoned, so a late
answer takes the dispatch's way.

An exchange its owner gave up on (a timeout, an exception) is *abandoned*: it
stays in the table a while, so that a late answer is acknowledged and dropped
instead of reaching the user's handlers.

This is an internal interface (its names are public within the package, not
to users): ``client/`` and ``context.py`` use it.
"""

from __future__ import annotations

import struct
import time
from typing import Callable

from ._binding import ffi, lib
from .pdu import Response, response_from_packed

__all__ = ["REJECTED", "SESSION_ENDED", "SESSION_RENEWED", "Claim", "Exchange", "Exchanges"]

# Reasons a lasting exchange's ``on_nack`` gets besides libcoap's NACK reasons (>= 0):
#: the response was rejected (an unknown critical option, RFC 7252 5.4.1);
REJECTED = -1
#: the session was closed, or ended;
SESSION_ENDED = -2
#: the session was replaced by a new C session (the exchange is gone with the old one).
SESSION_RENEWED = -3

#: ``on_response(response)`` of a lasting exchange (an observation).
ResponseCallback = Callable[[Response], None]
#: ``on_nack(reason, error)`` of a lasting exchange.
NackCallback = Callable[[int, BaseException], None]
#: Abandoned exchanges kept (for late answers) before the oldest are dropped.
_ABANDONED_KEEP_S = 300.0
_SWEEP_ABOVE = 256
#: Idle claims kept for reuse.
_IDLE_CLAIMS = 16
_buffer = ffi.buffer
_disarm = lib.lcp_claim_disarm


def _answer_layout() -> tuple[struct.Struct, int, int]:
    """How Claim.answer() reads an answered ``lcp_claim_t`` in one unpack: its fields'
    offsets as the C compiler laid them out (cffi knows them), and where its inline
    data is, and how large."""
    size_t = "Q" if ffi.sizeof("size_t") == 8 else "I"
    fields = [("state", "i"), ("code", "i"), ("type", "i"), ("mid", "i")]
    fields += [("token_len", size_t), ("payload_len", size_t), ("data_len", size_t)]
    fmt, at = "=", 0
    for name, code in fields:
        offset = ffi.offsetof("lcp_claim_t", name)
        fmt += "x" * (offset - at) + code
        at = offset + struct.calcsize("=" + code)
    inline = dict(ffi.typeof("lcp_claim_t").fields)["inline_data"]
    return struct.Struct(fmt), inline.offset, inline.type.length


_ANSWER, _INLINE_AT, _INLINE_ROOM = _answer_layout()
_unpack_answer = _ANSWER.unpack_from


class Claim:
    """One ``lcp_claim_t`` (glue.c's "Claims"), freed (and first disarmed) with this
    object, and a buffer over it made once, so that an answer is read with one
    unpack rather than a cffi read per field."""

    __slots__ = ("ptr", "view")

    def __init__(self) -> None:
        ptr = lib.lcp_claim_new()
        if ptr == ffi.NULL:
            raise MemoryError("no memory for a request's claim")
        self.ptr = ffi.gc(ptr, lib.lcp_claim_free)
        self.view = ffi.buffer(self.ptr)

    def answer(self) -> Response:
        """The response an answered claim (state 1) holds: its data is the token, the
        payload and the packed options, in the claim itself when they fit."""
        _state, code, kind, mid, k, n, size = _unpack_answer(self.view)
        if size <= _INLINE_ROOM:
            data = self.view[_INLINE_AT : _INLINE_AT + size]
        else:
            data = _buffer(self.ptr.data, size)[:]
        end = k + n
        return response_from_packed(code, data[k:end], data[end:], kind, mid, data[:k])

    @property
    def token(self) -> bytes:
        """The request's token."""
        ptr = self.ptr
        token: bytes = _buffer(ptr.token, ptr.token_len)[:]
        return token


class Exchange:
    """One outstanding request: completed once with a response or an error, or, when
    it has ``on_response`` (an observation), fed every response until closed."""

    __slots__ = (
        "abandoned",
        "claim",
        "error",
        "key",
        "mid",
        "on_nack",
        "on_response",
        "response",
        "session",
        "token",
    )

    def __init__(
        self,
        session: object,
        token: bytes,
        mid: int,
        on_response: ResponseCallback | None = None,
        on_nack: NackCallback | None = None,
    ) -> None:
        self.session = session
        self.token = token
        self.mid = mid
        self.response: Response | None = None
        self.error: BaseException | None = None
        #: When its owner gave up on it (monotonic seconds; 0.0: not abandoned).
        self.abandoned = 0.0
        self.on_response = on_response
        self.on_nack = on_nack
        #: Its claim (a one-shot request's, armed or answered), or None.
        self.claim: Claim | None = None

    @property
    def done(self) -> bool:
        return self.response is not None or self.error is not None

    def __repr__(self) -> str:
        state = "done" if self.done else "abandoned" if self.abandoned else "open"
        return f"<Exchange token={self.token.hex() or '-'} mid={self.mid} {state}>"


class Exchanges:
    """The table: session -> token -> Exchange."""

    __slots__ = ("by_session", "idle", "on_session_end", "reject", "ticks")

    def __init__(self) -> None:
        self.by_session: dict[object, dict[bytes, Exchange]] = {}
        #: The error a response must be rejected with, or None (set by the dispatch where
        #: libcoap lets responses with unknown critical options by: libcoap 4.2).
        self.reject: Callable[[Response], BaseException | None] | None = None
        self.idle: list[Claim] = []  # claims not armed, for reuse
        #: Owner -> callable run after every pass of the loop (observations: whether to
        #: register again).
        self.ticks: dict[object, Callable[[], None]] = {}
        #: ``(session, error)`` for requests that wait outside this table (an event
        #: loop's plain requests, on their claims): the session ended or was replaced.
        self.on_session_end: list[Callable[[object, BaseException], None]] = []

    def open(
        self,
        session: object,
        token: bytes,
        mid: int,
        on_response: ResponseCallback | None = None,
        on_nack: NackCallback | None = None,
    ) -> Exchange:
        """A new exchange for a request already handed to libcoap. An abandoned one with
        the same token (libcoap reused it) is replaced."""
        exchange = Exchange(session, token, mid, on_response, on_nack)
        table = self.by_session.get(session)
        if table is None:
            table = self.by_session[session] = {}
        table[token] = exchange
        return exchange

    def get(self, session: object, token: bytes) -> Exchange | None:
        table = self.by_session.get(session)
        return None if table is None else table.get(token)

    def in_use(self, session: object, token: bytes) -> bool:
        """Whether a request of ``session`` that is still waiting uses ``token``."""
        exchange = self.get(session, token)
        return exchange is not None and not exchange.abandoned and not exchange.done

    # -- claims ------------------------------------------------------------------------------

    def claim(self) -> Claim:
        """An idle claim, for ``Loop.send``."""
        idle = self.idle
        return idle.pop() if idle else Claim()

    def take(self, claim: Claim) -> Response:
        """The response an answered claim (state 1) holds, when no exchange was opened
        for it; the claim goes back to the idle ones. Raises what ``reject`` says."""
        response = claim.answer()
        if len(self.idle) < _IDLE_CLAIMS:
            self.idle.append(claim)  # (answered: unlinked already; the next send resets it)
        reject = self.reject
        error = None if reject is None else reject(response)
        if error is not None:
            raise error
        return response

    def adopt(self, session: object, mid: int, claim: Claim) -> Exchange:
        """Open the exchange of a request sent with ``claim`` (still armed, or NACKed)."""
        exchange = self.open(session, claim.token, mid)
        exchange.claim = claim
        return exchange

    def settle(self, exchange: Exchange) -> None:
        """Complete ``exchange`` from its claim once a response filled it (state 1;
        call after a pass). A NACKed claim (state 2) is its owner's to fail."""
        claim = exchange.claim
        if claim is None or claim.ptr.state != 1:
            return
        response = claim.answer()
        reject = self.reject
        self.complete(exchange, response, None if reject is None else reject(response))

    def retire(self, claim: Claim) -> None:
        """Disarm ``claim`` and keep it for reuse."""
        _disarm(claim.ptr)
        if len(self.idle) < _IDLE_CLAIMS:
            self.idle.append(claim)

    def release(self, exchange: Exchange) -> None:
        """Disarm the exchange's claim, if any (its answer now takes the dispatch's way)."""
        claim = exchange.claim
        if claim is not None:
            exchange.claim = None
            self.retire(claim)

    def close(self, exchange: Exchange) -> None:
        """Take ``exchange`` out of the table (if it is still the one for its token)."""
        if exchange.claim is not None:
            self.release(exchange)
        table = self.by_session.get(exchange.session)
        if table is not None and table.get(exchange.token) is exchange:
            del table[exchange.token]  # (an empty table stays until its session ends)

    def abandon(self, exchange: Exchange) -> None:
        """Its owner gives up: a late answer is acknowledged and dropped."""
        if exchange.claim is not None:
            self.release(exchange)
        now = time.monotonic()
        exchange.abandoned = now
        table = self.by_session.get(exchange.session)
        if table is not None and len(table) > _SWEEP_ABOVE:
            for token in [
                t for t, e in table.items() if e.abandoned and now - e.abandoned > _ABANDONED_KEEP_S
            ]:
                del table[token]

    def finish(self, exchange: Exchange) -> None:
        """After its owner's wait: closed when done, else abandoned (kept a while)."""
        if exchange.claim is not None:
            self.settle(exchange)  # answered in the last pass
        if exchange.done:
            self.close(exchange)
        elif not exchange.abandoned:
            self.abandon(exchange)

    # -- from the dispatch -------------------------------------------------------------------

    def complete(
        self, exchange: Exchange, response: Response, error: BaseException | None = None
    ) -> None:
        """A response for ``exchange`` (not abandoned): a one-shot exchange is done with
        it, and leaves the table; a lasting one is fed it. ``error``: the response is
        one the client must reject (an unknown critical option), which fails a
        one-shot exchange and goes to a lasting one's ``on_nack`` (REJECTED)."""
        on_response = exchange.on_response
        if on_response is None:
            self.close(exchange)
            if error is None:
                exchange.response = response
            else:
                exchange.error = error
        elif error is None:
            on_response(response)
        elif exchange.on_nack is not None:
            exchange.on_nack(REJECTED, error)

    def find(self, session: object, token: bytes | None, mid: int) -> Exchange | None:
        """The exchange a NACK is for: by token, or else by message ID."""
        table = self.by_session.get(session)
        if not table:
            return None
        exchange = table.get(token) if token is not None else None
        if exchange is None:
            exchange = next((e for e in table.values() if e.mid == mid), None)
        return exchange

    def fail(self, exchange: Exchange, reason: int, error: Callable[[], BaseException]) -> None:
        """A NACK (``reason``) for ``exchange``: a lasting one's ``on_nack`` decides;
        any other is closed, and fails unless its owner gave up on it."""
        if exchange.on_nack is not None and not exchange.abandoned:
            exchange.on_nack(reason, error())
            return
        self.close(exchange)
        if not exchange.abandoned and not exchange.done:
            exchange.error = error()

    def fail_session(self, session: object, error: BaseException, why: int) -> None:
        """End every exchange of ``session``, ``why`` being SESSION_ENDED (closed) or
        SESSION_RENEWED (replaced by a new C session): those still waiting fail with
        ``error``; lasting ones (observations) hear ``on_nack(why, error)``."""
        for hook in self.on_session_end:
            hook(session, error)
        table = self.by_session.pop(session, None)
        if not table:
            return
        for exchange in table.values():
            if exchange.claim is not None:
                self.release(exchange)
            if exchange.on_nack is not None and exchange.on_response is not None:
                if not exchange.abandoned:
                    exchange.on_nack(why, error)
            elif not exchange.done and not exchange.abandoned:
                exchange.error = error
