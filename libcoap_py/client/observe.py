"""Observe (RFC 7641), client side: an Observation delivers a resource's notifications."""

from __future__ import annotations

import collections
import math
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Callable

from .._binding import lib
from .._exchange import REJECTED, SESSION_ENDED, SESSION_RENEWED, Exchange, Exchanges
from ..codes import NackReason, OptionNumber
from ..errors import NotSupportedError
from ..pdu import Response

if TYPE_CHECKING:
    from .._loop import Loop
    from .session import Session

__all__ = ["NotificationCallback", "Observation"]

#: ``callback(response)`` for each notification (``Session.observe()``).
NotificationCallback = Callable[[Response], None]

_OBSERVE = int(OptionNumber.OBSERVE)
_MAX_AGE = int(OptionNumber.MAX_AGE)
_HALF = 1 << 23  # RFC 7641, 3.4: sequence numbers are 24 bits and wrap
_STALE_AFTER = 128.0  # seconds after which any notification counts as newer
_REREGISTER_MARGIN = 5.0  # seconds past Max-Age before registering again


# Message-layer failures after which a re-registration is tried again later.
_TLS_FAILED = int(NackReason.TLS_FAILED)
_RETRY_LATER = frozenset(
    {int(NackReason.TOO_MANY_RETRIES), int(NackReason.NOT_DELIVERABLE), int(NackReason.ICMP_ISSUE)}
)


def _success(response: Response) -> bool:
    return response.code.is_success


def _newer(v1: int, t1: float, v2: int, t2: float) -> bool:
    """RFC 7641, 3.4: is notification (v2, t2) newer than (v1, t1)?"""
    return (v1 < v2 and v2 - v1 < _HALF) or (v1 > v2 and v1 - v2 > _HALF) or t2 > t1 + _STALE_AFTER


class Observation:
    """A registration with a server for a resource's changes.

    Iterate it (``for response in obs``) to get the first response and then
    each notification, in order, until ``timeout`` or ``cancel()``; or give a
    ``callback(response)`` that runs inside ``run_once()``. An error response,
    or one without an Observe option (the server declined or dropped the
    registration), ends it. ``cancel()`` deregisters with the server.

    When nothing arrived for the last response's Max-Age (60 s without one)
    plus 5 s, the observation registers again, with the same request and token
    (RFC 7641, 3.3.1): a server that restarted and forgot its observers takes
    it up again. A re-registration that gets no answer (timeout, ICMP error) is
    repeated after the next such period, over coaps:// with a new DTLS handshake;
    one the server rejects with RST ends the observation with ``ResetError``.
    """

    def __init__(
        self,
        session: Session,
        loop: Loop,
        exchanges: Exchanges,
        register: Callable[[bytes | None], tuple[bytes, int]],
        deregister: Callable[[bytes], Any],
        live: Callable[[], Any],
        forget_dtls: Callable[[], None],
        callback: NotificationCallback | None,
        timeout: float | None,
        confirmable: bool,
    ) -> None:
        """(Made by ``Session.observe()``: ``register(token)`` sends the registration and
        returns its (token, message ID); ``live()`` checks the session, renewing a
        disconnected C session; ``forget_dtls()`` drops its DTLS association.)"""
        self.session = session
        self._loop = loop
        self._exchanges = exchanges
        self._live = live
        self._forget_dtls = forget_dtls
        self._exchange: Exchange | None = None
        self._register = register
        self._deregister = deregister
        self.callback = callback
        self.confirmable = confirmable
        self.deadline = None if timeout is None else time.monotonic() + timeout
        self.active = True
        self.error: BaseException | None = None
        self.last: Response | None = None
        #: How often the observation registered again after the server fell silent.
        self.reregistrations = 0
        self._queue: collections.deque[Response] = collections.deque()
        self._seq: int | None = None
        self._seen_at = time.monotonic()
        self._max_age = 60.0
        self._renewing = False
        self._forgetting = False
        self._register_again = False  # the session got a new C session: see _session_renewed
        self.token = b""
        self._start()

    def _start(self) -> None:
        """Register; again with the same token when the server fell silent."""
        self._live()  # a C session libcoap disconnected is replaced first
        if self._register_again:
            # Over a new C session: a fresh token of its own, which its later tokens
            # cannot collide with (the old one's numbering is gone).
            self._register_again = False
            self._close_exchange()
            self.token = b""
        self.token, mid = self._register(self.token or None)
        self._exchange = self._exchanges.open(
            self.session, self.token, mid, on_response=self._deliver, on_nack=self._nack
        )
        self._exchanges.ticks[self] = self._maybe_reregister
        self._seen_at = time.monotonic()
        # The answer starts a new sequence: a restarted server numbers anew.
        self._seq = None

    # -- from the Context's dispatch -----------------------------------------------------

    def _deliver(self, response: Response) -> None:
        raw = response.option(_OBSERVE)
        if not self.active:
            if raw is None or not _success(response):
                # the answer to cancel()'s deregistration: forget the token
                self._close_exchange()
            return
        now = time.monotonic()
        seq = None if raw is None else int.from_bytes(raw, "big")
        if seq is not None and self._seq is not None:
            if not _newer(self._seq, self._seen_at, seq, now):
                return  # an older notification overtaken by a newer one
        if seq is not None:
            self._seq = seq
        self._seen_at = now
        self._renewing = False
        max_age = response.option(_MAX_AGE)
        self._max_age = 60.0 if max_age is None else float(int.from_bytes(max_age, "big"))
        if seq is None or not _success(response):
            self._end()
        self.last = response
        if self.callback is not None:
            self.callback(response)
        else:
            self._queue.append(response)

    def _nack(self, reason: int, error: BaseException) -> None:
        """libcoap gave up on the (re-)registration (``reason`` >= 0), or the exchange
        ended otherwise (the engine's REJECTED, SESSION_ENDED, SESSION_RENEWED)."""
        if reason == SESSION_RENEWED:
            # The session now runs over a new C session (new local port, new
            # handshake): register there on the next pass, with a fresh token.
            if self.active:
                self._register_again = True
            return
        if reason in (REJECTED, SESSION_ENDED):
            self._fail(error)
            return
        if reason == _TLS_FAILED and self.last is not None:
            # The server ended the DTLS association of an observation it had
            # answered (a restart sends close_notify; libcoap 4.3.5 NACKs the
            # registration then). The session is renewed before its next use, and
            # the next period registers there (SESSION_RENEWED).
            return
        if self._forgetting or (self._renewing and reason in _RETRY_LATER):
            return  # the server may still be restarting: the next period tries again
        self._fail(error)

    def _fail(self, error: BaseException) -> None:
        if self.active:
            self.error = error
            self._end()

    def _end(self) -> None:
        self.active = False
        self._close_exchange()
        self._exchanges.ticks.pop(self, None)

    def _close_exchange(self) -> None:
        if self._exchange is not None:
            self._exchanges.close(self._exchange)
            self._exchange = None

    def _maybe_reregister(self) -> None:
        """Register again when the server has been silent past Max-Age (it may have
        forgotten us, e.g. after a restart), or the session was renewed."""
        if self.active and self._register_again:
            self._register_again = False
            self._start()
            return
        if self.active and time.monotonic() > self._seen_at + self._max_age + _REREGISTER_MARGIN:
            self.reregistrations += 1
            unanswered = self._renewing
            self._renewing = True
            self._seen_at = time.monotonic()
            if unanswered:
                # A restarted server does not know our DTLS association either.
                self._forgetting = True
                try:
                    self._forget_dtls()
                finally:
                    self._forgetting = False
                if not self.active or self.session.closed:
                    return
            self._start()

    # -- user side ---------------------------------------------------------------------

    def cancel(self) -> None:
        """Deregister with the server (an Observe: 1 request) and end the observation."""
        if not self.active:
            return
        self.active = False
        self._exchanges.ticks.pop(self, None)
        if not self.session.closed:
            self._deregister(self.token)
        # The exchange stays open a little longer: the answer to the deregistration
        # (and notifications already on the way) are acknowledged and dropped.

    def __iter__(self) -> Iterator[Response]:
        loop = self._loop
        try:
            while True:
                while self._queue:
                    yield self._queue.popleft()
                if self.error is not None:
                    error, self.error = self.error, None
                    raise error
                if not self.active:
                    return
                wait_ms = 1000
                if self.deadline is not None:
                    remaining = self.deadline - time.monotonic()
                    if remaining <= 0:
                        return
                    wait_ms = max(1, min(wait_ms, math.ceil(remaining * 1000)))
                self._live()
                loop.io(wait_ms)
                self._maybe_reregister()
        finally:
            if self.active and not self.session.closed:
                self.cancel()

    def __enter__(self) -> Observation:
        return self

    def __exit__(self, *exc: object) -> None:
        if not self.session.closed:
            self.cancel()

    def __repr__(self) -> str:
        state = "active" if self.active else "ended"
        return f"<Observation {self.session.uri} {state}>"


def check_supported() -> None:
    if not lib.LCP_HAS_CLIENT_OBSERVE:
        raise NotSupportedError("this libcoap build cannot observe resources")
