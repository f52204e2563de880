"""What the binding under test was built against: the libcoap generation, the TLS
library under it, DTLS or not.

The suite runs against either libcoap generation: 4.3 (libcoap3-bin's tools)
or 4.2 (libcoap2-bin's, first on PATH). ``LIBCOAP_42`` says which one the
binding was built against; the tools' flags follow it (see ``ctools.cert_args``).

Tests that need DTLS carry the ``needs_dtls`` marker (per module or per
test); on a libcoap built without DTLS they are skipped, naming that.
"""

from __future__ import annotations

import pytest

import libcoap_py as _coap

#: The libcoap the binding was built against, e.g. "4.3.1" or "4.2.1".
LIBCOAP_VERSION = _coap.libcoap_version()
#: libcoap 4.2 (libcoap2): its tools (libcoap2-bin) take fewer flags, and its
#: coap-server behaves differently in places; the tests say where.
LIBCOAP_42 = LIBCOAP_VERSION.startswith("4.2.")
BIN_PACKAGE = "libcoap2-bin" if LIBCOAP_42 else "libcoap3-bin"
#: The same as a tuple, for the behaviour that changed within 4.3 (the tests follow
#: the version: 4.3.2 and later answer FETCH without Content-Format with 4.15 and
#: If-None-Match on an existing resource with 4.12; 4.3.5's coap-client sends a -T
#: token as given and drops the URI's path when -O 3 (Uri-Host) is given).
LIBCOAP_VERSION_INFO = tuple(int(part) for part in LIBCOAP_VERSION.split(".")[:3])
#: libcoap's server core checks FETCH's Content-Format and If-None-Match itself.
CORE_CHECKS_FETCH_AND_IF_NONE_MATCH = LIBCOAP_VERSION_INFO >= (4, 3, 2)

#: The TLS library under libcoap, as the build reports it: "OpenSSL", "GnuTLS",
#: "Mbed TLS", "TinyDTLS" or "none".
TLS_NAME = _coap.backend().name

#: The TLS libraries whose libcoap code offers every DTLS setup of a context in
#: every client handshake (one PSK-and/or-PKI mask per context, in
#: src/coap_gnutls.c and src/coap_mbedtls.c): the binding refuses to mix them.
PSK_PKI_MIXED = frozenset({"GnuTLS", "Mbed TLS"})
#: The TLS libraries whose libcoap code loads CRLs (check_cert_revocation).
CHECKS_REVOCATION = frozenset({"OpenSSL"})

#: libcoap can do coaps:// (not so with libcoap-3-notls).
DTLS = _coap.dtls_is_supported()
#: Why a test that needs DTLS is skipped on this build.
NO_DTLS_REASON = f"libcoap built without DTLS ({_coap.package_name()})"


def require_dtls() -> None:
    """Skip the calling test or fixture on a libcoap without DTLS."""
    if not DTLS:
        pytest.skip(NO_DTLS_REASON)
