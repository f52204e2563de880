"""Parsing of coap:// and coaps:// URIs and of local bind addresses."""

from __future__ import annotations

import ipaddress
import socket
from typing import NamedTuple
from urllib.parse import unquote, urlsplit

from .codes import Proto

__all__ = ["URI", "parse_local", "parse_uri", "resolve"]

SCHEMES: dict[str, tuple[Proto, int]] = {
    "coap": (Proto.UDP, 5683),
    "coaps": (Proto.DTLS, 5684),
    "coap+tcp": (Proto.TCP, 5683),
    "coaps+tcp": (Proto.TLS, 5684),
}
SUPPORTED = ("coap", "coaps", "coap+tcp", "coaps+tcp")


class URI(NamedTuple):
    """A parsed CoAP URI."""

    scheme: str
    host: str
    port: int
    path: tuple[str, ...]
    query: tuple[str, ...]

    @property
    def proto(self) -> Proto:
        return SCHEMES[self.scheme][0]

    @property
    def secure(self) -> bool:
        return self.proto in (Proto.DTLS, Proto.TLS)

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        text = f"{self.scheme}://{host}:{self.port}"
        if self.path:
            text += "/" + "/".join(self.path)
        if self.query:
            text += "?" + "&".join(self.query)
        return text


def split_path(path: str) -> tuple[str, ...]:
    """``"/a/b%20c/"`` -> ``("a", "b c")``: Uri-Path segments, percent-decoded."""
    return tuple(unquote(p) for p in path.split("/") if p)


def split_query(query: str) -> tuple[str, ...]:
    """``"a=1&b"`` -> ``("a=1", "b")``: Uri-Query arguments, percent-decoded."""
    return tuple(unquote(q) for q in query.split("&") if q)


def parse_uri(text: str, *, allow_port_zero: bool = False) -> URI:
    """Parse ``coap://host[:port][/path][?query]``; raises ValueError naming the problem."""
    if not isinstance(text, str):
        raise TypeError(f"URI must be a str, not {type(text).__name__}")
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError as exc:
        raise ValueError(f"malformed URI {text!r}: {exc}") from None
    scheme = parts.scheme.lower()
    if scheme not in SCHEMES:
        raise ValueError(
            f"unsupported URI scheme {parts.scheme!r} in {text!r} "
            f"(supported: {', '.join(s + '://' for s in SUPPORTED)})"
        )
    host = parts.hostname
    if not host:
        raise ValueError(f"malformed URI {text!r}: no host")
    if parts.fragment:
        raise ValueError(f"malformed URI {text!r}: CoAP URIs have no fragment")
    if "[" in parts.netloc and not _is_ipv6(host):
        raise ValueError(f"malformed URI {text!r}: {host!r} is not an IPv6 address")
    if port == 0 and not allow_port_zero:
        raise ValueError(f"malformed URI {text!r}: port 0")
    return URI(
        scheme,
        host,
        port if port is not None else SCHEMES[scheme][1],
        split_path(parts.path),
        split_query(parts.query),
    )


def _is_ipv6(host: str) -> bool:
    try:
        ipaddress.IPv6Address(host.split("%", 1)[0])
    except ValueError:
        return False
    return True


def parse_local(text: str) -> tuple[str, int]:
    """A local bind address: ``"0.0.0.0"``, ``"127.0.0.1:40000"``, ``"[::]"``, ``"[::1]:0"``."""
    host, port = text, "0"
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            raise ValueError(f"malformed local address {text!r}: missing ']'")
        host, rest = text[1:end], text[end + 1 :]
        if rest:
            if not rest.startswith(":"):
                raise ValueError(f"malformed local address {text!r}")
            port = rest[1:]
    elif text.count(":") == 1:
        host, port = text.split(":")
    try:
        number = int(port)
    except ValueError:
        raise ValueError(f"malformed local address {text!r}: bad port {port!r}") from None
    if not 0 <= number <= 65535:
        raise ValueError(f"malformed local address {text!r}: port out of range")
    return host or "0.0.0.0", number


def resolve(host: str, port: int, family: int = 0) -> tuple[int, str]:
    """Resolve a host name or literal to (address family, numeric address)."""
    try:
        infos = socket.getaddrinfo(host, port, family, socket.SOCK_DGRAM)
    except socket.gaierror as exc:
        raise OSError(f"cannot resolve host {host!r}: {exc.strerror}") from None
    fam, _, _, _, sockaddr = infos[0]
    address = str(sockaddr[0])
    if fam == socket.AF_INET6 and len(sockaddr) >= 4 and sockaddr[3]:
        if "%" not in address:
            address = f"{address}%{sockaddr[3]}"
    return fam, address
