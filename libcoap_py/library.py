"""Facts about the libcoap this binding was built against."""

from __future__ import annotations

from ._binding import ffi, lib
from .codes import Proto
from .errors import NotSupportedError

__all__ = [
    "check_transport",
    "dtls_is_supported",
    "libcoap_version",
    "package_name",
    "tcp_is_supported",
    "tls_is_supported",
    "tls_library",
]


def libcoap_version() -> str:
    """The libcoap version, e.g. ``"4.3.1"``."""
    text: str = ffi.string(lib.coap_package_version()).decode()
    return text.split()[-1]


def package_name() -> str:
    """The pkg-config package built against, e.g. ``"libcoap-3-openssl"``."""
    return str(ffi.string(lib.LCP_PKG_NAME).decode())


def _version_text(name: str, number: int) -> str:
    if name == "OpenSSL" and number >> 28 >= 3:  # 0xMNN00PP0L
        parts = (number >> 28, (number >> 20) & 0xFF, (number >> 4) & 0xFF)
    elif name == "OpenSSL":  # 0xMNNFFPPS: 1.1.1w
        letter = (number >> 4) & 0xFF
        suffix = chr(ord("a") + letter - 1) if letter else ""
        return f"{number >> 28}.{(number >> 20) & 0xFF}.{(number >> 12) & 0xFF}{suffix}"
    elif name == "GnuTLS":  # 0xMMNNPP
        parts = (number >> 16, (number >> 8) & 0xFF, number & 0xFF)
    elif name == "Mbed TLS":  # 0xMMNNPP00
        parts = (number >> 24, (number >> 16) & 0xFF, (number >> 8) & 0xFF)
    else:
        return f"{number:#x}"
    return ".".join(str(p) for p in parts)


def tls_library() -> str:
    """The (D)TLS library libcoap uses and its runtime version, e.g. ``"OpenSSL 3.0.15"``."""
    name = ffi.string(lib.lcp_tls_library_name()).decode()
    if name == "none":
        return "none"
    return f"{name} {_version_text(name, int(lib.lcp_tls_library_version()))}"


def dtls_is_supported() -> bool:
    """True if this libcoap can do DTLS (coaps://)."""
    return bool(lib.coap_dtls_is_supported())


def tls_is_supported() -> bool:
    """True if this libcoap can do TLS (coaps+tcp://)."""
    return bool(lib.coap_tls_is_supported())


def tcp_is_supported() -> bool:
    """True if this libcoap (and binding) can do CoAP over TCP (coap+tcp://)."""
    return bool(lib.lcp_tcp_supported())


def check_transport(proto: Proto) -> None:
    """Raise NotSupportedError if this build cannot do ``proto``."""
    if proto == Proto.DTLS and not dtls_is_supported():
        raise NotSupportedError(
            f"this libcoap build ({package_name()}) has no DTLS support (coaps://)"
        )
    if proto in (Proto.TCP, Proto.TLS) and not tcp_is_supported():
        raise NotSupportedError(
            "CoAP over TCP (coap+tcp://, coaps+tcp://) needs a libcoap built with TCP"
        )
    if proto == Proto.TLS and not tls_is_supported():
        raise NotSupportedError("this libcoap build has no TLS support (coaps+tcp://)")
