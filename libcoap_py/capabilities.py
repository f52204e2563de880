"""What the (D)TLS library under this libcoap can do: the one place for backend differences.

libcoap is built against one of several TLS libraries (OpenSSL, GnuTLS, Mbed TLS,
TinyDTLS, or none). They differ in more than their name: the flags here come
from ``glue.c`` (``LCP_TLS_*``, where the facts are written down), and the rest
of the binding asks them instead of the library's name or version.
"""

from __future__ import annotations

from dataclasses import dataclass

from ._binding import ffi, lib

__all__ = ["BACKEND", "Backend", "backend"]


@dataclass(frozen=True)
class Backend:
    """The TLS backend of the libcoap this binding was built against."""

    #: "OpenSSL", "GnuTLS", "Mbed TLS", "TinyDTLS", or "none".
    name: str
    #: The pkg-config package built against, e.g. "libcoap-3-gnutls".
    package: str
    #: coaps:// works at all.
    dtls: bool
    #: ``PKI(check_cert_revocation=True)`` is honoured (CRLs are loaded).
    checks_revocation: bool
    #: PSK and certificate setups of one Context stay apart (a PSK session does not
    #: authenticate with the Context's certificate, nor the other way round).
    keeps_psk_and_pki_apart: bool
    #: A certificate client session works beside PSK setups in one Context (a PSK client
    #: session made before it, a PSK endpoint made before or after it).
    pki_client_beside_psk: bool
    #: libcoap raises ``Event.DTLS_CONNECTED`` when a client's handshake completes;
    #: where it does not, the Context raises it itself.
    raises_client_connected: bool

    def __str__(self) -> str:
        return f"{self.name} ({self.package})"


def _load() -> Backend:
    return Backend(
        name=ffi.string(lib.lcp_tls_library_name()).decode(),
        package=ffi.string(lib.LCP_PKG_NAME).decode(),
        dtls=bool(lib.coap_dtls_is_supported()),
        checks_revocation=bool(lib.LCP_TLS_CHECKS_REVOCATION),
        keeps_psk_and_pki_apart=bool(lib.LCP_TLS_KEEPS_PSK_PKI_APART),
        pki_client_beside_psk=bool(lib.LCP_TLS_PKI_CLIENT_BESIDE_PSK),
        raises_client_connected=bool(lib.LCP_TLS_RAISES_CLIENT_CONNECTED),
    )


#: The backend of this build (read once: it cannot change while the process runs).
BACKEND = _load()


def backend() -> Backend:
    """What the TLS library under this libcoap can and cannot do."""
    return BACKEND
