"""The local data service: devices POST over ``coaps://``, downstream messages come back.

Built only on the binding's public server API (``docs/server.md``). Every
POST or PUT, to any path, is filed in the inbox of the device that sent it
(the common name of its client certificate, or its PSK identity), and the
answer is 2.04 Changed carrying the oldest downstream message waiting in that
device's outbox (which is then marked sent), or no payload. A request without
a DTLS identity (plain ``coap://``) gets 4.01 Unauthorized.

Uri-Host and Uri-Port options (the C sample sends ``data.lab5e.com`` and
5684) are ignored: the service serves by path alone.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from typing import Any, Callable

from .. import Code, ContentFormat, Context
from ..dtls import PKI, PSK
from .store import OutboxMessage, Store

__all__ = ["DEFAULT_LISTEN", "EXCHANGE_LIFETIME_S", "DataService", "device_of"]

log = logging.getLogger("libcoap_py.service")

#: Where the service listens unless told otherwise.
DEFAULT_LISTEN = ("coaps://127.0.0.1:5684",)
#: RFC 7252's EXCHANGE_LIFETIME: how long a retransmitted request is recognised.
EXCHANGE_LIFETIME_S = 247.0
#: At most this many answered exchanges are remembered for duplicate detection.
_MAX_REMEMBERED = 4096


def device_of(request: Any) -> str | None:
    """The device id of a request: its certificate's CN, or its PSK identity; else None."""
    cn = request.peer_cn
    if cn:
        return str(cn)
    identity = request.psk_identity
    if identity:
        return bytes(identity).decode("utf-8", "backslashreplace")
    return None


class _Answer:
    """A response as sent, kept to answer a retransmission of the same request alike."""

    __slots__ = ("code", "content_format", "payload")

    def __init__(self, code: Code, payload: bytes, content_format: int | None) -> None:
        self.code = code
        self.payload = payload
        self.content_format = content_format


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
        self.context: Context | None = None
        self.endpoints: list[str] = []
        self._clock = clock
        # (device, peer, message id) -> the answer sent, for retransmissions.
        self._answered: OrderedDict[tuple[str, Any, int], tuple[float, _Answer]] = OrderedDict()

    # -- lifecycle ---------------------------------------------------------

    def open(self) -> list[str]:
        """Make the context, bind every endpoint, add the handler; return the endpoint URIs.

        Raises ``OSError`` naming an address that cannot be bound, and what the
        credentials raise (``FileNotFoundError`` for a missing file).
        """
        if self.context is not None:
            return list(self.endpoints)
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
        except BaseException:
            ctx.close()
            self.endpoints.clear()
            raise
        self.context = ctx
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
        """Close the endpoints and the context (idempotent); the store stays open."""
        if self.context is not None:
            self.context.close()
            self.context = None
        self.endpoints.clear()

    def __enter__(self) -> DataService:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- requests ----------------------------------------------------------

    def handle(self, request: Any, response: Any) -> None:
        """File a POST or PUT in the sender's inbox; answer with its next downstream message."""
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
        key = (device, _hashable(request.peer), int(request.mid))
        answer = self._remembered(key)
        if answer is None:
            answer = self._file(device, request)
            self._remember(key, answer)
        else:
            log.info("%s: retransmission of message %d, answered as before", device, request.mid)
        response.code = answer.code
        if answer.payload:
            response.payload = answer.payload
        if answer.content_format is not None:
            response.content_format = answer.content_format

    def _file(self, device: str, request: Any) -> _Answer:
        payload = bytes(request.payload)
        message_id = self.store.file_message(device, request.path, payload, request.content_format)
        downstream = self.store.take_downstream_message(device)
        log.info(
            "%s %s /%s: %d bytes filed as inbox message %d; %s",
            device,
            request.method,
            request.path,
            len(payload),
            message_id,
            "no downstream message"
            if downstream is None
            else f"downstream message {downstream.id} sent ({len(downstream.payload)} bytes)",
        )
        if downstream is None:
            return _Answer(Code.CHANGED, b"", None)
        return _Answer(Code.CHANGED, downstream.payload, _content_format(downstream))

    def _remembered(self, key: tuple[str, Any, int]) -> _Answer | None:
        now = self._clock()
        while self._answered:
            oldest_key, (when, _) = next(iter(self._answered.items()))
            if now - when < EXCHANGE_LIFETIME_S and len(self._answered) <= _MAX_REMEMBERED:
                break
            del self._answered[oldest_key]
        entry = self._answered.get(key)
        return None if entry is None else entry[1]

    def _remember(self, key: tuple[str, Any, int], answer: _Answer) -> None:
        self._answered[key] = (self._clock(), answer)
        self._answered.move_to_end(key)


def _content_format(message: OutboxMessage) -> int:
    return int(ContentFormat.TEXT_PLAIN if message.format == "text" else ContentFormat.OCTET_STREAM)


def _hashable(peer: Any) -> Any:
    return tuple(peer) if isinstance(peer, (list, tuple)) else peer


def _peer_text(peer: Any) -> str:
    if isinstance(peer, (list, tuple)) and len(peer) >= 2:
        host = str(peer[0])
        return f"[{host}]:{peer[1]}" if ":" in host else f"{host}:{peer[1]}"
    return str(peer)
