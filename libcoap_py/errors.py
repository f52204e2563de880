"""Exceptions raised by libcoap-py."""

from __future__ import annotations

from typing import Any, Callable, TypeVar

from .codes import NackReason

T = TypeVar("T")

#: Messages of the failures ``check`` reports in several places.
NO_PDU = "libcoap could not allocate a PDU"
REFUSED_PAYLOAD = "libcoap refused the payload"
IO_FAILED = "libcoap's I/O processing failed (coap_io_process returned -1)"

__all__ = [
    "BlockwiseError",
    "CoapError",
    "DTLSError",
    "NackError",
    "NotSupportedError",
    "PayloadTooLargeError",
    "RequestTimeout",
    "ResetError",
    "WrongThreadError",
]


class CoapError(Exception):
    """Base of every libcoap-py error; also raised for use of a closed Context, Session or PDU."""


class NackError(CoapError):
    """A request failed at the message layer; ``reason`` says how."""

    def __init__(self, reason: NackReason | int, message: str = "") -> None:
        self.reason = NackReason(reason)
        super().__init__(message or f"request failed: {self.reason.name}")


class RequestTimeout(NackError, TimeoutError):
    """No answer came before the timeout or the last retransmission."""

    def __init__(self, message: str = "", reason: NackReason = NackReason.TOO_MANY_RETRIES) -> None:
        super().__init__(reason, message or "no response from the peer")


class DTLSError(NackError):
    """The (D)TLS handshake failed or did not complete, or a record could not be processed."""

    def __init__(self, message: str = "", reason: NackReason = NackReason.TLS_FAILED) -> None:
        super().__init__(reason, message or "DTLS handshake failed")


class ResetError(NackError):
    """The peer answered with a Reset (RST) message."""

    def __init__(self, message: str = "") -> None:
        super().__init__(NackReason.RST, message or "the peer answered with RST")


class NotSupportedError(CoapError):
    """The feature is missing in this libcoap build or generation."""


class PayloadTooLargeError(CoapError, ValueError):
    """The payload does not fit in one PDU of the session."""


class BlockwiseError(CoapError):
    """A block-wise transfer (RFC 7959) broke off midway: the server answered an error
    to a later block, sent blocks out of order, or the body changed (ETag) during
    the transfer. No partial body is returned; ``response`` is the answer that
    ended it, if there was one."""

    def __init__(self, message: str, response: Any = None) -> None:
        super().__init__(message)
        self.response = response


class WrongThreadError(CoapError, RuntimeError):
    """A Context (or its sessions) was used from a thread other than the one that made it."""


def check(result: T, message: str | Callable[[], str], *, zero_ok: bool = False) -> T:
    """The one place where a libcoap result becomes an exception: ``CoapError(message)``
    when ``result`` is a NULL pointer, 0 (unless ``zero_ok``: a message ID, a
    count of milliseconds) or negative; else ``result``, unchanged. A message that
    takes formatting is given as a callable, made only on failure (on a hot path,
    formatting a URI costs more than the call it checks)."""
    if isinstance(result, int):
        failed = result < 0 or (result == 0 and not zero_ok)
    else:
        failed = not result  # a cdata pointer is false when NULL
    if failed:
        raise CoapError(message if isinstance(message, str) else message())
    return result
