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

An exchange its owner gave up on (a timeout, an exception) is *abandoned*: it
stays in the table a while, so that a late answer is acknowledged and dropped
instead of reaching the user's handlers.

This is an internal interface (its names are public within the package, not
to users): ``client/`` and ``context.py`` use it.
"""

from __future__ import annotations

import time
from typing import Callable

from .pdu import Response

__all__ = ["REJECTED", "SESSION_ENDED", "SESSION_RENEWED", "Exchange", "Exchanges"]

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


class Exchange:
    """One outstanding request: completed once with a response or an error, or, when
    it has ``on_response`` (an observation), fed every response until closed."""

    __slots__ = (
        "abandoned",
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

    @property
    def done(self) -> bool:
        return self.response is not None or self.error is not None

    def __repr__(self) -> str:
        state = "done" if self.done else "abandoned" if self.abandoned else "open"
        return f"<Exchange token={self.token.hex() or '-'} mid={self.mid} {state}>"


class Exchanges:
    """The table: session -> token -> Exchange."""

    __slots__ = ("by_session", "ticks")

    def __init__(self) -> None:
        self.by_session: dict[object, dict[bytes, Exchange]] = {}
        #: Owner -> callable run after every pass of the loop (observations: whether to
        #: register again).
        self.ticks: dict[object, Callable[[], None]] = {}

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

    def close(self, exchange: Exchange) -> None:
        """Take ``exchange`` out of the table (if it is still the one for its token)."""
        table = self.by_session.get(exchange.session)
        if table is not None and table.get(exchange.token) is exchange:
            del table[exchange.token]  # (an empty table stays until its session ends)

    def abandon(self, exchange: Exchange) -> None:
        """Its owner gives up: a late answer is acknowledged and dropped."""
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
        table = self.by_session.pop(session, None)
        if not table:
            return
        for exchange in table.values():
            if exchange.on_nack is not None and exchange.on_response is not None:
                if not exchange.abandoned:
                    exchange.on_nack(why, error)
            elif not exchange.done and not exchange.abandoned:
                exchange.error = error
