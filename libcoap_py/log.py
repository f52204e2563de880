"""libcoap's log, routed to ``logging.getLogger("libcoap")``."""

from __future__ import annotations

import logging

from ._extern import extern
from ._libcoap import ffi, lib
from .codes import LogLevel

__all__ = ["get_log_level", "logger", "set_log_level"]

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


@extern
def lcp_py_log(level: int, message: object) -> None:
    """libcoap calls this for every message it logs (from inside libcoap calls)."""
    try:
        text = ffi.string(message).decode("utf-8", "replace").rstrip("\n")
        py_level = _TO_LOGGING.get(level, logging.DEBUG) if level <= 7 else logging.DEBUG
        logger.log(py_level, "%s", text)
    except BaseException:
        logging.getLogger(__name__).exception("failed to forward a libcoap log message")


lib.lcp_install_log_handler()
# PDU dumps (at DEBUG) go through the log handler too, not straight to stdout.
lib.coap_set_show_pdu_output(0)
