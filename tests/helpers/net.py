"""Loopback ports, a CoAP ping, IPv6 loopback. Everything here stays on loopback."""

from __future__ import annotations

import os
import socket
import struct


def _ipv6_loopback_usable() -> bool:
    if not socket.has_ipv6:
        return False
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as s:
            s.bind(("::1", 0))
    except OSError:
        return False
    return True


IPV6_AVAILABLE = _ipv6_loopback_usable()


def family(host: str) -> socket.AddressFamily:
    """The address family of a numeric ``host``."""
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def _can_bind(host: str, port: int, kind: socket.SocketKind) -> bool:
    with socket.socket(family(host), kind) as s:
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def free_port_pair(host: str = "127.0.0.1") -> int:
    """A port P such that P and P+1 are free for UDP and TCP on ``host``.

    coap-server binds UDP and TCP on P (coap, coap+tcp) and P+1 (coaps, coaps+tcp).
    """
    for _ in range(200):
        with socket.socket(family(host), socket.SOCK_DGRAM) as s:
            s.bind((host, 0))
            port = int(s.getsockname()[1])
        if port >= 65535:
            continue
        if all(
            _can_bind(host, p, kind)
            for p in (port, port + 1)
            for kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM)
        ):
            return port
    raise RuntimeError(f"no free port pair on {host}")


def unused_udp_port(host: str = "127.0.0.1") -> int:
    """A UDP port on ``host`` that was free a moment ago (nobody listens on it)."""
    with socket.socket(family(host), socket.SOCK_DGRAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def coap_ping(host: str, port: int, timeout: float = 0.2) -> bool:
    """Send a CoAP ping (empty CON) and report whether an RST came back."""
    mid = int.from_bytes(os.urandom(2), "big")
    with socket.socket(family(host), socket.SOCK_DGRAM) as s:
        s.settimeout(timeout)
        try:
            s.sendto(struct.pack("!BBH", 0x40, 0x00, mid), (host, port))
            data, _ = s.recvfrom(64)
        except OSError:  # timeout or ICMP port unreachable
            return False
    return len(data) >= 4 and data[0] & 0x30 == 0x30 and data[2:4] == mid.to_bytes(2, "big")


def uri_host(host: str) -> str:
    """``host`` as the host part of a URI: an IPv6 address in brackets."""
    return f"[{host}]" if ":" in host else host
