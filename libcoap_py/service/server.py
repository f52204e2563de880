"""The local data service: devices POST over ``coaps://``, downstream messages come back.

Built only on the binding's public server API (``docs/server.md``). Every
POST or PUT, to any path, is filed in the inbox of the device that sent it
(the common name of its client certificate, or its PSK identity). The answer,
2.04 Changed, goes out only once the message is committed to SQLite, and
carries the oldest downstream message waiting in that device's outbox (with
its outbox id as ETag), or no payload. A request without a DTLS identity
(plain ``coap://``) gets 4.01 Unauthorized; a database that cannot be written
(locked, full) gives 5.03 Service Unavailable with Max-Age.

Two ways to answer, by device (:class:`DataService` ``confirm_downstream``):

- default: the answer is piggybacked on the ACK, once the write has
  committed, so every client gets it, the C sample's loop included. Nothing
  acknowledges a piggybacked response: a message handed to the socket is
  ``sent``.
- confirmed: the request is acknowledged at once (empty ACK) and the answer
  follows as a separate confirmable response. The message is ``delivered``
  when the device's stack acknowledges it, and back to ``pending`` if it does
  not (a NACK). Only for clients that wait for their response.

SQLite work runs in a storage process (:mod:`.writer`) with group commit; the
CoAP loop never waits for the database. A retransmitted request (same device,
message ID, token and content, within EXCHANGE_LIFETIME) is filed once and
answered as the first copy was, also after a restart (the exchanges table).

Uri-Host and Uri-Port options (the C sample sends ``data.lab5e.com`` and
5684) are ignored: the service serves by path alone.
"""

from __future__ import annotations

import hashlib
import logging
import struct
import time
from collections import OrderedDict
from collections.abc import Collection, Mapping, Sequence
from functools import partial
from typing import Any, Callable

from .. import Code, ContentFormat, Context
from ..dtls import PKI, PSK
from ..errors import CoapError
from ..log import log_limited
from ..server.delayed import DelayedResponse, Delivery
from .store import Exchange, Filed, OutboxMessage, Store
from .writer import FileJob, Job, MarkJob, StoreWriter

__all__ = [
    "BUSY_MAX_AGE_S",
    "DEFAULT_LISTEN",
    "EXCHANGE_LIFETIME_S",
    "DataService",
    "device_of",
    "etag_of",
]

log = logging.getLogger("libcoap_py.service")

#: Where the service listens unless told otherwise.
DEFAULT_LISTEN = ("coaps://127.0.0.1:5684",)
#: RFC 7252's EXCHANGE_LIFETIME: how long a retransmitted request is recognised.
EXCHANGE_LIFETIME_S = 247.0
#: Max-Age of a 5.03 answer when the database cannot be written (seconds).
BUSY_MAX_AGE_S = 5
#: At most this many answered exchanges are remembered in memory (all are in SQLite).
_MAX_REMEMBERED = 4096
#: Writes waiting for the storage process beyond which requests get 5.03 at once.
_MAX_BACKLOG = 4096


def device_of(request: Any) -> str | None:
    """The device id of a request: its certificate's CN, or its PSK identity; else None."""
    cn = request.peer_cn
    if cn:
        return str(cn)
    identity = request.psk_identity
    if identity:
        return bytes(identity).decode("utf-8", "backslashreplace")
    return None


def etag_of(message_id: int) -> bytes:
    """The ETag a downstream message carries: its outbox id as a CoAP uint (big-endian,
    no leading zero bytes)."""
    return message_id.to_bytes(max(1, (message_id.bit_length() + 7) // 8), "big")


def _digest(token: bytes, code: int, path: bytes, cf: int | None, payload: bytes) -> bytes:
    """What makes a retransmission the same request: token, code, path, format, payload."""
    head = _HEAD.pack(len(token), code, len(path), 0xFFFFFFFF if cf is None else cf)
    return hashlib.blake2b(b"".join((head, token, path, payload)), digest_size=16).digest()


_HEAD = struct.Struct("!BBIQ")


class _Answer:
    """A response as sent, kept to answer a retransmission of the same request alike."""

    __slots__ = ("code", "content_format", "etag", "payload")

    def __init__(
        self, code: Code, payload: bytes, content_format: int | None, etag: bytes | None
    ) -> None:
        self.code = code
        self.payload = payload
        self.content_format = content_format
        self.etag = etag

    def fill(self, response: Any) -> None:
        response.code = self.code
        if self.payload:
            response.payload = self.payload
        if self.content_format is not None:
            response.content_format = self.content_format
        if self.etag is not None:
            response.etag = self.etag


class _Exchange:
    """An upstream request being filed (``answer`` None) or answered, with when."""

    __slots__ = ("answer", "later", "when")

    def __init__(self, later: DelayedResponse, when: float) -> None:
        self.later: DelayedResponse | None = later
        self.answer: _Answer | None = None
        self.when = when


class DataService:
    """The data service on a :class:`Store`.

    ``pki``: the server certificate, key and CA; with the PKI defaults
    (``verify_peer_cert`` and ``require_peer_cert``) only devices with a
    certificate issued by that CA get through the handshake. ``psk_keys``:
    PSK identity -> key, for devices without certificates (``psk_hint`` is the
    identity hint sent to them). ``listen``: endpoint URIs; ``coaps://`` needs
    ``pki`` or ``psk_keys``; ``coap://`` (no identity, so every POST gets
    4.01) only when given here. Port 0 picks a free port; :meth:`open`
    returns the real URIs.

    ``confirm_downstream``: True (every device) or a collection of device ids
    that get their answers as separate confirmable responses, so a downstream
    message counts as delivered only on the device's ACK; the others get them
    piggybacked (see the module's doc). ``busy_timeout``: how long a write waits
    for another process's lock before the request gets 5.03.

    ``open()`` binds, ``run()`` serves until ``stop()`` (or a signal with
    ``handle_signals=True``), ``close()`` releases everything; or use it as a
    context manager, which opens and closes.
    """

    def __init__(
        self,
        store: Store,
        *,
        pki: PKI | None = None,
        psk_keys: Mapping[bytes, bytes] | None = None,
        psk_hint: bytes = b"libcoap-py",
        listen: Sequence[str] = DEFAULT_LISTEN,
        confirm_downstream: bool | Collection[str] = False,
        busy_timeout: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not listen:
            raise ValueError("the service needs at least one endpoint to listen on")
        self.store = store
        self.pki = pki
        self.psk_keys = {bytes(k): bytes(v) for k, v in (psk_keys or {}).items()}
        self.psk_hint = psk_hint
        self.listen = tuple(listen)
        for uri in self.listen:
            if uri.lower().startswith("coaps:") and pki is None and not self.psk_keys:
                raise ValueError(f"{uri} needs a server certificate or PSK keys")
        if isinstance(confirm_downstream, str):
            raise TypeError("confirm_downstream takes True, False or a collection of device ids")
        self.confirm_downstream: bool | frozenset[str] = (
            confirm_downstream
            if isinstance(confirm_downstream, bool)
            else frozenset(confirm_downstream)
        )
        self.busy_timeout = busy_timeout
        self.context: Context | None = None
        self.endpoints: list[str] = []
        self.writer: StoreWriter | None = None
        self._clock = clock
        # (device, message id, digest) -> the exchange, being filed or answered.
        self._exchanges: OrderedDict[tuple[str, int, bytes], _Exchange] = OrderedDict()
        self._pending_jobs: list[Job] = []

    def confirms(self, device: str) -> bool:
        """Whether ``device`` gets separate confirmable answers."""
        mode = self.confirm_downstream
        return mode if isinstance(mode, bool) else device in mode

    # -- lifecycle ---------------------------------------------------------

    def open(self) -> list[str]:
        """Make the context, bind every endpoint, add the handler; return the endpoint URIs.

        Raises ``OSError`` naming an address that cannot be bound, and what the
        credentials raise (``FileNotFoundError`` for a missing file).
        """
        if self.context is not None:
            return list(self.endpoints)
        requeued = self.store.requeue_in_flight()
        if requeued:
            log.warning(
                "%d downstream message(s) were in flight when the service stopped: "
                "queued again (a device may get one twice, with the same ETag)",
                requeued,
            )
        ctx = Context()
        try:
            psk = None
            if self.psk_keys:
                psk = PSK(hint=self.psk_hint, keys=self.psk_keys)
            for uri in self.listen:
                if uri.lower().startswith("coaps:"):
                    dtls = [d for d in (self.pki, psk) if d is not None]
                    endpoint = ctx.add_endpoint(uri, dtls=dtls)
                else:
                    endpoint = ctx.add_endpoint(uri)
                self.endpoints.append(endpoint.uri)
            ctx.set_unknown_handler(self.handle, methods=("POST", "PUT"))
            writer = StoreWriter(
                self.store.path,
                ctx,
                busy_timeout=self.busy_timeout,
                lifetime=EXCHANGE_LIFETIME_S,
            )
            writer.start()
        except BaseException:
            ctx.close()
            self.endpoints.clear()
            raise
        self.context = ctx
        self.writer = writer
        return list(self.endpoints)

    def run(self, timeout: float | None = None, *, handle_signals: bool = False) -> None:
        """Serve until :meth:`stop` (or SIGINT/SIGTERM with ``handle_signals``), or ``timeout``."""
        if self.context is None:
            self.open()
        assert self.context is not None
        self.context.run(timeout, handle_signals=handle_signals)

    def stop(self) -> None:
        """Make :meth:`run` return after the current pass."""
        if self.context is not None:
            self.context.stop()

    def close(self) -> None:
        """Answer what was filed, then close the writer, the endpoints and the context
        (idempotent); the store stays open. Messages whose ACK had not come stay
        in flight, and go back to the queue at the next :meth:`open`."""
        context, writer = self.context, self.writer
        if context is not None and writer is not None:
            self._submit_pending()
            writer.flush()
            try:
                context.run_once(0)  # sends the answers to what was committed
            except CoapError:
                pass
        if writer is not None:
            self._submit_pending()
            writer.stop()
            self.writer = None
        if context is not None:
            context.close()
            self.context = None
        self._exchanges.clear()
        self.endpoints.clear()

    def __enter__(self) -> DataService:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- requests ----------------------------------------------------------

    def handle(self, request: Any, response: Any) -> None:
        """File a POST or PUT in the sender's inbox; answer, once it is committed, with
        the device's next downstream message."""
        device = device_of(request)
        if device is None:
            log.info(
                "%s /%s from %s: no device identity (plain CoAP?): 4.01",
                request.method,
                request.path,
                _peer_text(request.peer),
            )
            response.code = Code.UNAUTHORIZED
            response.payload = b"a device identity is needed: a client certificate or PSK"
            return
        confirm = self.confirms(device)
        path = request.path
        payload = request.payload
        cf = request.content_format
        token = request.token
        mid = int(request.mid)
        digest = _digest(token, int(request.code), path.encode(), cf, payload)
        key = (device, mid, digest)
        known = self._known(key)
        if known is not None:
            log.info("%s: retransmission of message %d", device, mid)
            if known.answer is None:
                # Being filed: its answer follows. Acknowledge again in confirmed mode,
                # else say nothing (the answer goes in the ACK).
                response.delay(acknowledge=confirm).cancel()
            else:
                # Answered: the same answer again, in the ACK. In confirmed mode too: the
                # copy may come over a new session (the device gave up on the old one,
                # where the separate response goes); the ETag tells it a repeat.
                known.answer.fill(response)
            return
        writer = self.writer
        if writer is None or writer.backlog + len(self._pending_jobs) >= _MAX_BACKLOG:
            log_limited(log, logging.WARNING, "storage is behind: answering 5.03")
            _unavailable(response)
            return
        exchange = _Exchange(response.delay(acknowledge=confirm), self._clock())
        self._exchanges[key] = exchange
        filing = Exchange(device, mid, digest, path, payload, cf)
        self._queue(FileJob(filing, partial(self._filed, key, exchange, confirm)))

    def _queue(self, job: Job) -> None:
        """Gather the writes of one I/O pass; the writer gets them together after it
        (one wake-up of its thread, not one per request)."""
        if not self._pending_jobs and self.context is not None:
            self.context.call_soon(self._submit_pending)
        self._pending_jobs.append(job)

    def _submit_pending(self) -> None:
        jobs, self._pending_jobs = self._pending_jobs, []
        if self.writer is not None:
            self.writer.submit_many(jobs)

    def _filed(
        self, key: tuple[str, int, bytes], exchange: _Exchange, confirm: bool, job: Job
    ) -> None:
        """On the loop's thread, once the write committed (or failed): answer."""
        later = exchange.later
        exchange.later = None
        assert later is not None
        device = key[0]
        if job.error is not None:
            self._exchanges.pop(key, None)  # a retransmission tries again
            log_limited(log, logging.WARNING, f"cannot file a message: {job.error}: 5.03")
            _unavailable(later)
            _send(later)
            return
        filed: Filed = job.result
        downstream = filed.downstream
        if downstream is None:
            answer = _Answer(Code.CHANGED, b"", None, None)
        else:
            answer = _Answer(
                Code.CHANGED,
                downstream.payload,
                _content_format(downstream),
                etag_of(downstream.id),
            )
            later.add_done_callback(partial(self._downstream_done, downstream.id))
        exchange.answer = answer
        exchange.when = self._clock()
        if log.isEnabledFor(logging.INFO):
            log.info(
                "%s %s /%s: %d bytes filed as inbox message %d%s; %s",
                device,
                later.request.method,
                later.request.path,
                len(later.request.payload),
                filed.inbox_id,
                " (a retransmission: filed before)" if filed.repeated else "",
                "no downstream message"
                if downstream is None
                else f"downstream message {downstream.id} answered ({len(downstream.payload)} "
                f"bytes{', confirmable' if confirm else ''})",
            )
        answer.fill(later)
        _send(later)
        writer = self.writer
        if downstream is not None and later.delivery is Delivery.AWAITING_ACK and writer:
            self._queue(MarkJob(downstream.id, "in_flight"))  # records when it went out

    def _downstream_done(self, message_id: int, later: DelayedResponse) -> None:
        """Record where a downstream message stands once its response's fate is known."""
        delivery = later.delivery
        if delivery is Delivery.ACKNOWLEDGED:
            state = "delivered"
        elif delivery is Delivery.SENT:
            state = "sent"
        else:
            state = "pending"
            log.info(
                "downstream message %d not delivered (%s): queued again",
                message_id,
                later.nack_reason if later.nack_reason is not None else delivery.value,
            )
        if self.writer is not None:
            self._queue(MarkJob(message_id, state))

    def _known(self, key: tuple[str, int, bytes]) -> _Exchange | None:
        """The exchange ``key`` if it is being filed or was answered within
        EXCHANGE_LIFETIME (older answered ones are forgotten here first)."""
        now = self._clock()
        exchanges = self._exchanges
        while exchanges:
            oldest_key, oldest = next(iter(exchanges.items()))
            if oldest.answer is None:
                break  # being filed: the writer answers it soon
            if now - oldest.when < EXCHANGE_LIFETIME_S and len(exchanges) <= _MAX_REMEMBERED:
                break
            del exchanges[oldest_key]
        return exchanges.get(key)


def _unavailable(response: Any) -> None:
    response.code = Code.SERVICE_UNAVAILABLE
    response.max_age = BUSY_MAX_AGE_S
    response.payload = b"the data service cannot store messages right now; try again later"


def _send(later: DelayedResponse) -> None:
    try:
        later.send()
    except CoapError as error:  # the session or the Context is gone
        log.info("cannot answer %s: %s", later, error)
        later.cancel()


def _content_format(message: OutboxMessage) -> int:
    return int(ContentFormat.TEXT_PLAIN if message.format == "text" else ContentFormat.OCTET_STREAM)


def _peer_text(peer: Any) -> str:
    if isinstance(peer, (list, tuple)) and len(peer) >= 2:
        host = str(peer[0])
        return f"[{host}]:{peer[1]}" if ":" in host else f"{host}:{peer[1]}"
    return str(peer)
