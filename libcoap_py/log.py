"""libcoap's log, routed to ``logging.getLogger("libcoap")``, with repeats rate-limited.

What libcoap logs while it handles traffic (inside ``run_once()``, ``run()``,
``request()``) a remote peer can provoke at will: one "discard malformed PDU"
per malformed datagram, one "got RST" per reset. So each kind of such message
(its level and its text with numbers, addresses and quoted parts masked) may
log ``burst`` lines at once and then ``rate`` a second; the others go to the
same logger at DEBUG, and a line "N more suppressed ..." at the message's own
level says how many were held back. Messages from the application's own calls
(``add_endpoint()``, ``client_session()``, ...) are never held back.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from dataclasses import dataclass
from typing import Any

from ._binding import ffi, lib
from ._binding.extern import extern
from .codes import LogLevel

__all__ = [
    "flush_log_summaries",
    "get_log_level",
    "get_log_rate_limit",
    "log_limited",
    "logger",
    "pending_summaries",
    "set_log_level",
    "set_log_rate_limit",
]

logger = logging.getLogger("libcoap")

_TO_LOGGING: dict[int, int] = {
    LogLevel.EMERG: logging.CRITICAL,
    LogLevel.ALERT: logging.CRITICAL,
    LogLevel.CRIT: logging.CRITICAL,
    LogLevel.ERR: logging.ERROR,
    LogLevel.WARNING: logging.WARNING,
    LogLevel.NOTICE: logging.INFO,
    LogLevel.INFO: logging.INFO,
    LogLevel.DEBUG: logging.DEBUG,
}

#: Lines of one kind logged at once before the limit applies (``set_log_rate_limit``).
DEFAULT_BURST = 5
#: Lines of one kind a second after the burst (``set_log_rate_limit``).
DEFAULT_RATE = 1.0
_MAX_KINDS = 256  # kinds tracked at once; beyond that, new kinds share one
_OTHER = "(messages of other kinds)"
_FLUSH_EVERY = 0.1  # seconds between looks for summaries that are due

# What varies between two messages of one kind: quoted text, IPv6 addresses
# (bracketed or not), hexadecimal and decimal numbers (IPv4 addresses, ports, ids).
_VARYING = re.compile(
    r"'[^']*'|\"[^\"]*\"|\[[^\]]*\]"
    r"|(?<![\w:])[0-9A-Fa-f]{0,4}(?::[0-9A-Fa-f]{0,4}){2,7}(?:%\w+)?"
    r"|0[xX][0-9A-Fa-f]+|\d+"
)


def set_log_level(level: LogLevel | int, dtls: LogLevel | int | None = None) -> None:
    """Set how much libcoap logs (and its DTLS layer: ``dtls``, default the same level).

    Messages go to ``logging.getLogger("libcoap")`` at the matching logging
    level (NOTICE maps to INFO); configure handlers there as usual.
    """
    value = LogLevel(level)
    lib.coap_set_log_level(int(value))
    lib.coap_dtls_set_log_level(int(LogLevel(dtls if dtls is not None else value)))


def get_log_level() -> LogLevel:
    """libcoap's current log level."""
    return LogLevel(lib.coap_get_log_level())


@dataclass
class _Kind:
    """The token bucket of one kind of message, and what it held back."""

    tokens: float
    stamp: float
    level: int
    target: logging.Logger
    suppressed: int = 0
    since: float = 0.0
    last: str = ""


class _Limiter:
    """Per-kind token buckets for the messages libcoap logs while handling traffic."""

    def __init__(self) -> None:
        self.rate: float | None = DEFAULT_RATE
        self.burst = DEFAULT_BURST
        self.kinds: dict[tuple[int, str], _Kind] = {}
        self.pending: set[tuple[int, str]] = set()  # kinds that held messages back
        self.next_flush = 0.0
        self.lock = threading.RLock()  # a logging handler may log libcoap again

    def configure(self, rate: float | None, burst: int) -> None:
        with self.lock:
            self._flush(time.monotonic(), force=True)
            self.rate, self.burst = rate, burst
            self.kinds.clear()

    def log(
        self, level: int, text: str, target: logging.Logger = logger, exc_info: bool = False
    ) -> None:
        """Log ``text`` at ``level`` (a logging level) to ``target``, or hold it back to
        DEBUG (where a traceback, with ``exc_info``, is left out)."""
        key = (level, f"{target.name}: {_VARYING.sub('#', text)}")
        with self.lock:
            now = time.monotonic()
            kind = self.kinds.get(key)
            if kind is None:
                key, kind = self._new_kind(key, level, now, target)
            rate = self.rate or 0.0
            kind.tokens = min(float(self.burst), kind.tokens + (now - kind.stamp) * rate)
            kind.stamp = now
            if kind.tokens >= 1.0:
                kind.tokens -= 1.0
                if kind.suppressed:
                    self._summary(key, kind, now)
                target.log(level, "%s", text, exc_info=exc_info)
                return
            if not kind.suppressed:
                kind.since = now
                self.pending.add(key)
            kind.suppressed += 1
            kind.last = text
        target.debug("%s", text)

    def _new_kind(
        self, key: tuple[int, str], level: int, now: float, target: logging.Logger
    ) -> tuple[tuple[int, str], _Kind]:
        if len(self.kinds) >= _MAX_KINDS:
            # Forget kinds that hold nothing back and whose bucket is full again.
            rate = self.rate or 0.0
            idle = [
                k
                for k, kind in self.kinds.items()
                if not kind.suppressed and kind.tokens + (now - kind.stamp) * rate >= self.burst
            ]
            for k in idle:
                del self.kinds[k]
            if len(self.kinds) >= _MAX_KINDS:
                key = (level, f"{target.name}: {_OTHER}")
                kind = self.kinds.get(key)
                if kind is not None:
                    return key, kind
        kind = _Kind(tokens=float(self.burst), stamp=now, level=level, target=target)
        self.kinds[key] = kind
        return key, kind

    def _summary(self, key: tuple[int, str], kind: _Kind, now: float) -> None:
        kind.target.log(
            kind.level,
            "%d more suppressed in %.1f s (each logged at DEBUG), the last: %s",
            kind.suppressed,
            max(0.0, now - kind.since),
            kind.last,
        )
        kind.suppressed = 0
        kind.last = ""
        self.pending.discard(key)

    def flush(self, *, force: bool = False) -> None:
        """Log the summaries that are due: for kinds whose bucket has refilled (the
        messages stopped or slowed down), or all of them with ``force``."""
        now = time.monotonic()
        if not force and now < self.next_flush:
            return
        with self.lock:
            self.next_flush = now + _FLUSH_EVERY
            self._flush(now, force=force)

    def _flush(self, now: float, *, force: bool) -> None:
        rate = self.rate or 0.0
        for key in list(self.pending):
            kind = self.kinds[key]
            if force or kind.tokens + (now - kind.stamp) * rate >= 1.0:
                self._summary(key, kind, now)


_limiter = _Limiter()
#: The kinds with "N more suppressed" lines yet to log (empty: nothing to flush);
#: the loop looks at it after every pass.
pending_summaries = _limiter.pending


def set_log_rate_limit(rate: float | None = DEFAULT_RATE, burst: int = DEFAULT_BURST) -> None:
    """Limit how often one kind of libcoap message is logged while traffic is handled.

    A kind is a level and a text with its numbers, addresses and quoted parts
    masked. Each kind logs up to ``burst`` lines at once, then ``rate`` lines a
    second; the messages beyond that go to the ``libcoap`` logger at DEBUG, and a
    line "N more suppressed in T s ..." at the kind's level follows once the
    bucket refills (at the next message of that kind, or within about 0.1 s of
    loop activity, e.g. ``run()``'s 250 ms wake-ups, or at ``Context.close()``).
    Messages from the application's own calls, outside ``run_once()``/``run()``/
    ``request()``, and DEBUG messages are never held back. ``rate=None`` turns the
    limit off. The default is 1 line a second after a burst of 5, process-wide.
    """
    if rate is not None and not rate > 0:
        raise ValueError("rate must be > 0 lines a second, or None for no limit")
    if burst < 1:
        raise ValueError("burst must be at least 1")
    _limiter.configure(float(rate) if rate is not None else None, int(burst))


def get_log_rate_limit() -> tuple[float | None, int]:
    """The current ``(rate, burst)`` of ``set_log_rate_limit``."""
    return _limiter.rate, _limiter.burst


def flush_log_summaries(*, force: bool = False) -> None:
    """Log the "N more suppressed" lines that are due (all of them with ``force``).

    The loop does this by itself; call it to see the counts at once.
    """
    if _limiter.pending:
        _limiter.flush(force=force)


def log_limited(target: logging.Logger, level: int, text: str, *, exc_info: bool = False) -> None:
    """Log what a remote peer can make the binding log (a handler that fails on its
    input, ...) to ``target``, rate-limited per kind like libcoap's messages
    (``set_log_rate_limit``). With ``exc_info``, the lines that get through carry the
    current exception's traceback."""
    if _limiter.rate is None or level <= logging.DEBUG:
        target.log(level, "%s", text, exc_info=exc_info)
    else:
        _limiter.log(level, text, target, exc_info)


def _forward_failed(error: BaseException, frame: dict[str, Any]) -> None:
    logging.getLogger(__name__).error("failed to forward a libcoap log message", exc_info=error)


@extern(on_error=_forward_failed)
def lcp_py_log(level: int, message: object, during_io: int) -> None:
    """libcoap calls this for every message it logs (from inside libcoap calls);
    ``during_io`` is set inside its I/O processing, where peers drive what it logs."""
    text = ffi.string(message).decode("utf-8", "replace").rstrip("\n")
    py_level = _TO_LOGGING.get(level, logging.DEBUG) if level <= 7 else logging.DEBUG
    if during_io and py_level > logging.DEBUG and _limiter.rate is not None:
        _limiter.log(py_level, text)
    else:
        logger.log(py_level, "%s", text)


lib.lcp_install_log_handler()
# PDU dumps (at DEBUG) go through the log handler too, not straight to stdout.
lib.coap_set_show_pdu_output(0)
