"""Delayed responses: a handler takes its response and completes it later.

``response.delay()`` in a handler returns a :class:`DelayedResponse`. The
handler returns at once, and other requests are served meanwhile. Later, on
the Context's thread (a handler, a timer, or a callable another thread handed
over with ``Context.call_soon_threadsafe``), the code sets code, options and
payload on it and calls :meth:`DelayedResponse.send`.

Two ways to delay (RFC 7252, 5.2):

- ``delay()`` (separate response): libcoap acknowledges a confirmable request
  with an empty ACK at once; ``send()`` then sends the response as a message of
  its own: confirmable, so the client's stack acknowledges it, unless
  ``send(confirmable=False)``. Its :attr:`~DelayedResponse.delivery` ends as
  ``ACKNOWLEDGED`` or ``FAILED``.
- ``delay(acknowledge=False)`` (piggybacked later): nothing is sent now, and
  ``send()`` answers in the ACK of the request. For answers that come within
  the client's ACK timeout (2-3 s by default; it retransmits meanwhile), and for
  clients that stop waiting once their request is acknowledged (the C sample's
  ``while (!coap_can_exit(ctx))`` loop on libcoap 4.2). No ACK ever comes back
  for it: its delivery ends as ``SENT``.

A request that came as NON is answered with a NON message either way
(``SENT``).

How an acknowledgement is known: libcoap tells the application when a
confirmable message fails (a NACK: RST, no ACK after all retransmissions, the
session gone), but not when its empty ACK arrives. It drops the message from
its retransmission queue silently then, and for no other reason. So a
delayed response is ``ACKNOWLEDGED`` once that queue no longer holds it with
no NACK having come: at once when libcoap's queues are empty
(``coap_can_exit``), else when the retransmission window of the message
(``ack_timeout x ack_random_factor x (2**(max_retransmit+1) - 1)``, about 93 s
with the defaults) has passed.
"""

from __future__ import annotations

import enum
import time
from typing import TYPE_CHECKING, Any, Callable

from .._binding import ffi, lib
from ..codes import Code, MessageType, NackReason, Proto
from ..errors import NO_PDU, CoapError, check
from .request import Request, ServerResponse

if TYPE_CHECKING:
    from .._loop import Loop

__all__ = ["DelayedResponse", "Delivery"]

_CON = int(MessageType.CON)
_NON = int(MessageType.NON)
_ACK = int(MessageType.ACK)
_RELIABLE = frozenset({int(Proto.TCP), int(Proto.TLS)})
_WINDOW_MARGIN_S = 1.0  # beyond the computed window, before silence counts as an ACK
_CHECK_EVERY_S = 0.05  # how often the loop looks at responses that wait for their ACK

#: ``callback(delayed_response)`` once its delivery is final.
DoneCallback = Callable[["DelayedResponse"], None]


class Delivery(enum.Enum):
    """Where a delayed response stands."""

    #: Not sent yet.
    WAITING = "waiting"
    #: Handed to the socket as a message no ACK answers: a NON, the piggybacked ACK
    #: of ``delay(acknowledge=False)``, or over TCP/TLS. Final.
    SENT = "sent"
    #: Sent as a CON; its ACK has not been seen yet.
    AWAITING_ACK = "awaiting-ack"
    #: The client's stack acknowledged the CON. Final.
    ACKNOWLEDGED = "acknowledged"
    #: Not delivered: RST, no ACK after all retransmissions, the session or the
    #: Context gone (:attr:`DelayedResponse.nack_reason` says which). Final.
    FAILED = "failed"
    #: ``cancel()`` was called before ``send()``. Final.
    CANCELLED = "cancelled"


_FINAL = frozenset({Delivery.SENT, Delivery.ACKNOWLEDGED, Delivery.FAILED, Delivery.CANCELLED})


class DelayedResponse(ServerResponse):
    """A response completed after its handler returned (``ServerResponse.delay()``).

    Set ``code``, ``payload`` and options as on the response a handler gets,
    then :meth:`send` it, or :meth:`cancel` it. Either must be called from the
    Context's thread. Until then the Context keeps the session alive.
    """

    __slots__ = (
        "_acknowledged",
        "_blockwise",
        "_callbacks",
        "_delivery",
        "_mid",
        "_reason",
        "_registry",
        "_request",
        "_session_ptr",
        "_window_end",
        "_write",
    )

    def __init__(
        self,
        registry: DelayedResponses,
        session_ptr: Any,
        request: Request,
        reply: ServerResponse,
        acknowledge: bool,
        write: Callable[[DelayedResponse, Any], None],
        blockwise: bool = False,
    ) -> None:
        super().__init__(Code.CONTENT)
        self._code = reply._code
        self._payload = reply._payload
        self._options = list(reply._options)
        self._content_format = reply._content_format
        self._registry = registry
        self._session_ptr = lib.coap_session_reference(session_ptr)
        self._request = request
        self._acknowledged = acknowledge
        self._write = write
        self._blockwise = blockwise
        self._delivery = Delivery.WAITING
        self._reason: NackReason | int | None = None
        self._callbacks: list[DoneCallback] = []
        self._mid = -1
        self._window_end = 0.0
        registry.waiting.add(self)

    def _check(self) -> None:
        if self._done:
            raise CoapError(f"this delayed response is {self._delivery.value} already")

    @property
    def request(self) -> Request:
        """The request this answers."""
        return self._request

    @property
    def delivery(self) -> Delivery:
        """Where the response stands (:class:`Delivery`)."""
        return self._delivery

    @property
    def nack_reason(self) -> NackReason | int | None:
        """Why it was not delivered (``FAILED``): libcoap's NACK reason, or None when the
        Context closed before the ACK came or libcoap could not send it."""
        return self._reason

    @property
    def mid(self) -> int:
        """The message ID it went out with (-1 before ``send()``)."""
        return self._mid

    def add_done_callback(self, callback: DoneCallback) -> None:
        """Call ``callback(self)`` on the Context's thread once the delivery is final
        (``SENT``, ``ACKNOWLEDGED``, ``FAILED`` or ``CANCELLED``); at once if it is."""
        if self._delivery in _FINAL:
            callback(self)
        else:
            self._callbacks.append(callback)

    def send(self, *, confirmable: bool = True) -> Delivery:
        """Send the response now; return its delivery (``SENT``, ``AWAITING_ACK``, or
        ``FAILED`` when libcoap could not send it).

        ``confirmable=False`` sends a separate response to a CON request as NON.
        Raises ``CoapError`` when it was sent or cancelled already, or its Context
        is closed, and what writing it raises (a payload that does not fit, for
        instance; the response can then be changed and sent again).
        """
        registry = self._registry
        registry.loop.enter()
        if self._delivery is not Delivery.WAITING:
            raise CoapError(f"this delayed response is {self._delivery.value} already")
        request = self._request
        session_ptr = self._session_ptr
        if request.type == MessageType.CON and not self._acknowledged:
            kind = _ACK
        elif request.type == MessageType.CON and confirmable:
            kind = _CON
        else:
            kind = _NON
        token = request.token
        mid = -2 if self._blockwise else self._send_simple_reply(session_ptr, kind, token)
        if mid == -2:  # the general way: any options, bodies of any size
            pdu = lib.lcp_new_request_with_token(session_ptr, kind, 0, token, len(token))
            check(pdu, NO_PDU)
            try:
                if kind == _ACK:
                    lib.lcp_pdu_set_mid(pdu, request.mid)
                self._write(self, pdu)
            except BaseException:
                lib.coap_delete_pdu(pdu)
                raise
            mid = int(lib.coap_send(session_ptr, pdu))  # consumes the PDU
        self._done = True
        registry.waiting.discard(self)
        self._mid = mid
        if mid < 0:
            self._finish(Delivery.FAILED, None)
        elif kind == _CON and lib.lcp_session_proto(session_ptr) not in _RELIABLE:
            self._delivery = Delivery.AWAITING_ACK
            registry.await_ack(self)
        else:
            self._finish(Delivery.SENT, None)
        return self._delivery

    def _send_simple_reply(self, session_ptr: Any, kind: int, token: bytes) -> int:
        """The common case in one call (lcp_send_reply): at most an ETag and a
        Content-Format, a payload that fits. -2: not that case, nothing sent."""
        parts = self._simple_parts(etag_ok=True)
        if parts is None:
            return -2
        etag, number, payload = parts
        mid = self._request.mid if kind == _ACK else -1
        return int(
            lib.lcp_send_reply(
                session_ptr, kind, mid, token, len(token), int(self._code),
                etag, len(etag), number, payload, len(payload),
            )
        )  # fmt: skip

    def cancel(self) -> None:
        """Never send it (a CON request that was not acknowledged yet stays so: the
        client retransmits, then gives up). Does nothing once it was sent."""
        if self._delivery is Delivery.WAITING:
            self._registry.loop.enter()
            self._done = True
            self._finish(Delivery.CANCELLED, None)

    def _finish(self, delivery: Delivery, reason: NackReason | int | None) -> None:
        self._delivery = delivery
        self._reason = reason
        registry = self._registry
        registry.waiting.discard(self)
        registry.loop.release_session(self._session_ptr)
        callbacks, self._callbacks = self._callbacks, []
        for callback in callbacks:
            try:
                callback(self)
            except BaseException as error:
                registry.loop.store_error(error)

    def __repr__(self) -> str:
        return (
            f"<DelayedResponse {self._request.method} /{self._request.path} {self._delivery.value}>"
        )


class DelayedResponses:
    """A Context's delayed responses: those not sent yet, and those waiting for an ACK."""

    def __init__(self, loop: Loop) -> None:
        self.loop = loop
        self.waiting: set[DelayedResponse] = set()
        self.awaiting: dict[tuple[int, int], DelayedResponse] = {}
        # Per session: when the window of its last CON ends (libcoap may hold a CON back
        # until the one before it is done: NSTART 1).
        self._session_end: dict[int, float] = {}
        self._next_check = 0.0

    def await_ack(self, response: DelayedResponse) -> None:
        ptr = response._session_ptr
        window = (
            lib.lcp_session_get_ack_timeout_ms(ptr)
            * lib.lcp_session_get_ack_random_factor_milli(ptr)
            / 1e6
            * ((1 << (lib.lcp_session_get_max_retransmit(ptr) + 1)) - 1)
        )
        key = int(ffi.cast("uintptr_t", ptr))
        now = time.monotonic()
        start = max(now, self._session_end.get(key, 0.0))
        response._window_end = end = start + window + _WINDOW_MARGIN_S
        self._session_end[key] = end
        self.awaiting[(key, response._mid)] = response

    def nacked(self, session_ptr: Any, mid: int, reason: int) -> bool:
        """A NACK from libcoap: True when it was for a delayed response (now FAILED)."""
        response = self.awaiting.pop((int(ffi.cast("uintptr_t", session_ptr)), mid), None)
        if response is None:
            return False
        try:
            why: NackReason | int = NackReason(reason)
        except ValueError:
            why = reason
        response._finish(Delivery.FAILED, why)
        return True

    def check(self) -> None:
        """Count as acknowledged what libcoap no longer retransmits (after each pass)."""
        now = time.monotonic()
        if now < self._next_check:
            return
        self._next_check = now + _CHECK_EVERY_S
        if lib.coap_can_exit(self.loop.ptr):
            done = list(self.awaiting.values())
            self.awaiting.clear()
            self._session_end.clear()
        else:
            ended = [(k, r) for k, r in self.awaiting.items() if r._window_end <= now]
            for key, _ in ended:
                del self.awaiting[key]
            done = [r for _, r in ended]
        for response in done:
            response._finish(Delivery.ACKNOWLEDGED, None)

    def close(self) -> None:
        """The Context closes: what was not sent is cancelled, what waits for its ACK
        failed (unknown: the Context is gone before the ACK could count)."""
        for response in list(self.waiting):
            response._done = True
            response._finish(Delivery.CANCELLED, None)
        awaiting = list(self.awaiting.values())
        self.awaiting.clear()  # (the same dict: the loop's hook watches it)
        for response in awaiting:
            response._finish(Delivery.FAILED, None)
