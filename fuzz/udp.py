"""Plain UDP to a ``coap://`` endpoint: the first way in."""

from __future__ import annotations

import select
import socket


def family_of(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def check_loopback(host: str) -> None:
    """The fuzzer sends to loopback only (127.0.0.0/8, ::1)."""
    if not (host.startswith("127.") or host == "::1"):
        raise ValueError(f"{host}: the fuzzer sends only to loopback (127.0.0.0/8, ::1)")


class UdpWay:
    """One UDP socket (one source port, so one libcoap session at the server)."""

    name = "udp"

    def __init__(self, host: str, port: int) -> None:
        check_loopback(host)
        self.address = (host, port)
        self.sessions = 0
        self.send_errors = 0
        self.ended = 0
        self.sock = socket.socket(family_of(host), socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        self.sock.connect(self.address)
        self.sock.setblocking(False)
        self.sessions = 1

    @property
    def max_datagram(self) -> int:
        return 1472

    def send(self, data: bytes) -> None:
        try:
            self.sock.send(data)
        except OSError:
            # ECONNREFUSED from an earlier ICMP error, a full buffer: the
            # runner finds out from the server's state whether that matters.
            self.send_errors += 1

    def receive(self, wait: float) -> list[bytes]:
        """Datagrams that arrive within ``wait`` seconds of the call or of each other."""
        out: list[bytes] = []
        while True:
            readable, _, _ = select.select([self.sock], [], [], wait)
            if not readable:
                return out
            while True:
                try:
                    out.append(self.sock.recv(65536))
                except BlockingIOError:
                    break
                except OSError:
                    self.send_errors += 1
                    return out

    def renew(self) -> None:
        """Nothing to renew for plain UDP."""

    def close(self) -> None:
        self.sock.close()
