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
from typing import Callable, Optional

from .pdu import Response

__all__ = ["Exchange", "Exchanges"]

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
        on_response: Optional[ResponseCallback] = None,
        on_nack: Optional[NackCallback] = None,
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

    __slots__ = ("by_session",)

    def __init__(self) -> None:
        self.by_session: dict[object, dict[bytes, Exchange]] = {}

    def open(
        self,
        session: object,
        token: bytes,
        mid: int,
        on_response: Optional[ResponseCallback] = None,
        on_nack: Optional[NackCallback] = None,
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
            del table[exchange.token]
            if not table:
                del self.by_session[exchange.session]

    def abandon(self, exchange: Exchange) -> None:
        """Its owner gives up: a late answer is acknowledged and dropped."""
        now = time.monotonic()
        exchange.abandoned = now
        table = self.by_session.get(exchange.session)
        if table is not None and len(table) > _SWEEP_ABOVE:
            for token in [
                t
                for t, e in table.items()
                if e.abandoned and now - e.abandoned > _ABANDONED_KEEP_S
            ]:
                del table[token]

    def finish(self, exchange: Exchange) -> None:
        """After its owner's wait: closed when done, else abandoned (kept a while)."""
        if exchange.done:
            self.close(exchange)
        elif not exchange.abandoned:
            self.abandon(exchange)

    # -- from the dispatch -------------------------------------------------------------------

    def take_response(
        self, table: dict[bytes, Exchange], token: bytes, make: Callable[[], Response]
    ) -> bool:
        """A response for ``token`` of a session whose ``table`` this is: True when an
        exchange claimed it (``make()`` builds the Response, only then)."""
        exchange = table.get(token)
        if exchange is None:
            return False
        if exchange.abandoned:
            return True  # its owner gave up: acknowledged and dropped
        on_response = exchange.on_response
        if on_response is not None:
            on_response(make())
            return True
        del table[token]
        if not table:
            del self.by_session[exchange.session]
        try:
            exchange.response = make()
        except BaseException as error:  # a response the client must reject
            exchange.error = error
        return True

    def take_nack(
        self,
        session: object,
        token: bytes | None,
        mid: int,
        reason: int,
        error: Callable[[], BaseException],
    ) -> bool:
        """A NACK for (``token``, or else ``mid``) of ``session``: True when it ended an
        exchange (or went to a lasting one's ``on_nack``)."""
        table = self.by_session.get(session)
        if not table:
            return False
        exchange = table.get(token) if token is not None else None
        if exchange is None:
            exchange = next((e for e in table.values() if e.mid == mid), None)
            if exchange is None:
                return False
        if exchange.on_nack is not None and not exchange.abandoned:
            exchange.on_nack(reason, error())
            return True
        self.close(exchange)
        if not exchange.abandoned and not exchange.done:
            exchange.error = error()
        return True

    def fail_session(self, session: object, error: BaseException) -> list[Exchange]:
        """End every exchange of ``session`` (closed, or replaced by a new C session):
        those still waiting fail with ``error``. Returns the lasting ones (observations),
        whose owners decide what follows."""
        table = self.by_session.pop(session, None)
        if not table:
            return []
        lasting = []
        for exchange in table.values():
            if exchange.on_response is not None:
                lasting.append(exchange)
            elif not exchange.done and not exchange.abandoned:
                exchange.error = error
        return lasting

