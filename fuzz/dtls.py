"""Inside a DTLS session to a ``coaps://`` endpoint: the second way in.

pyOpenSSL with memory BIOs: the handshake is driven by hand (retransmissions
after ``DTLSv1_get_timeout``, bounded), each fuzz datagram becomes one DTLS
application-data record, and a session the server ends (an alert, a
close_notify) is replaced by a fresh handshake from a fresh source port,
counted in ``sessions``.
"""

from __future__ import annotations

import select
import socket
import time
from pathlib import Path

from OpenSSL import SSL

from .udp import check_loopback, family_of

#: The datagram size the records are packed into.
MTU = 1400
#: Bound on one handshake.
HANDSHAKE_TIMEOUT_S = 10.0


class HandshakeFailed(Exception):
    """The DTLS handshake did not complete within its bound."""


def split_records(data: bytes) -> list[bytes]:
    """DTLS records (13-byte header, length in bytes 11-12) from a BIO's output."""
    records = []
    pos = 0
    while pos + 13 <= len(data):
        end = pos + 13 + int.from_bytes(data[pos + 11 : pos + 13], "big")
        records.append(data[pos:end])
        pos = end
    if pos < len(data):
        records.append(data[pos:])
    return records


class DtlsWay:
    """A certificate-authenticated DTLS client session to ``host:port``."""

    name = "dtls"

    def __init__(self, host: str, port: int, cert: Path, key: Path, ca: Path) -> None:
        check_loopback(host)
        self.address = (host, port)
        self.sessions = 0
        self.send_errors = 0
        self.ended = 0  # sessions that ended (an alert, close_notify, a record error)
        self.end_reasons: dict[str, int] = {}
        self.skipped = 0  # empty datagrams, which DTLS cannot carry
        self.failed_handshakes = 0
        ctx = SSL.Context(SSL.DTLS_CLIENT_METHOD)
        ctx.use_certificate_chain_file(str(cert))
        ctx.use_privatekey_file(str(key))
        ctx.load_verify_locations(str(ca))
        ctx.set_verify(SSL.VERIFY_PEER, None)
        ctx.set_options(SSL.OP_NO_QUERY_MTU)
        self._ctx = ctx
        self.sock: socket.socket | None = None
        self.conn: SSL.Connection | None = None
        self.dead = True
        self.renew()

    @property
    def max_datagram(self) -> int:
        assert self.conn is not None
        return int(self.conn.get_cleartext_mtu())

    def renew(self) -> None:
        """A new session (new socket, new handshake) unless the current one is alive.

        The new socket is bound before the old one is closed, so it gets another
        port: libcoap 4.3.1 answers no ClientHello from the address of a session it
        still holds. A handshake that fails is tried once more from another port.
        """
        if not self.dead:
            return
        for attempt in range(2):
            old = self.sock
            self.sock = socket.socket(family_of(self.address[0]), socket.SOCK_DGRAM)
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
            self.sock.connect(self.address)
            self.sock.setblocking(False)
            if old is not None:
                old.close()
            self.conn = SSL.Connection(self._ctx, None)
            self.conn.set_ciphertext_mtu(MTU)
            self.conn.set_connect_state()
            try:
                self._handshake()
                break
            except HandshakeFailed:
                self.failed_handshakes += 1
                if attempt == 1:
                    raise
        self.dead = False
        self.sessions += 1

    def _handshake(self) -> None:
        assert self.conn is not None and self.sock is not None
        deadline = time.monotonic() + HANDSHAKE_TIMEOUT_S
        while True:
            try:
                self.conn.do_handshake()
                self._flush()
                return
            except SSL.WantReadError:
                self._flush()
            except SSL.Error as exc:
                raise HandshakeFailed(f"DTLS handshake with {self.address}: {exc}") from None
            left = deadline - time.monotonic()
            if left <= 0:
                raise HandshakeFailed(
                    f"DTLS handshake with {self.address}: no answer in {HANDSHAKE_TIMEOUT_S} s"
                )
            timer = self.conn.DTLSv1_get_timeout()
            wait = min(left, 1.0 if timer is None else max(timer, 0.0))
            readable, _, _ = select.select([self.sock], [], [], wait)
            if readable:
                try:
                    self.conn.bio_write(self.sock.recv(65536))
                except OSError:
                    pass  # ICMP unreachable: retransmit at the timeout
            else:
                self.conn.DTLSv1_handle_timeout()

    def _flush(self) -> None:
        """Send what OpenSSL wrote, records packed into datagrams of at most MTU bytes."""
        assert self.conn is not None and self.sock is not None
        out = b""
        while True:
            try:
                out += self.conn.bio_read(65536)
            except SSL.WantReadError:
                break
        datagram = b""
        for record in split_records(out):
            if datagram and len(datagram) + len(record) > MTU:
                self._send_raw(datagram)
                datagram = b""
            datagram += record
        if datagram:
            self._send_raw(datagram)

    def _send_raw(self, datagram: bytes) -> None:
        assert self.sock is not None
        try:
            self.sock.send(datagram)
        except OSError:
            self.send_errors += 1

    def send(self, data: bytes) -> None:
        if not data:
            # An empty record cannot be written (SSL_write of 0 bytes fails).
            self.skipped += 1
            return
        if self.dead:
            self.renew()
        assert self.conn is not None
        try:
            self.conn.send(data)
        except SSL.Error as exc:
            self._end(f"send: {exc}")
            return
        self._flush()

    def receive(self, wait: float) -> list[bytes]:
        """Application data that arrives within ``wait`` seconds of the call or of each other."""
        assert self.sock is not None and self.conn is not None
        out: list[bytes] = []
        while not self.dead:
            readable, _, _ = select.select([self.sock], [], [], wait)
            if not readable:
                break
            while not self.dead:
                try:
                    self.conn.bio_write(self.sock.recv(65536))
                except BlockingIOError:
                    break
                except OSError:
                    self.send_errors += 1
                    break
                self._read_records(out)
        return out

    def _read_records(self, out: list[bytes]) -> None:
        assert self.conn is not None
        while True:
            try:
                out.append(self.conn.recv(65536))
            except SSL.WantReadError:
                break
            except SSL.ZeroReturnError:
                self._end("close_notify")
                break
            except SSL.Error as exc:
                self._end(f"recv: {exc}")
                break
        self._flush()  # alerts or handshake answers OpenSSL wants sent

    def _end(self, reason: str) -> None:
        self.dead = True
        self.ended += 1
        self.end_reasons[reason] = self.end_reasons.get(reason, 0) + 1

    def close(self) -> None:
        if self.conn is not None and not self.dead:
            try:
                self.conn.shutdown()
                self._flush()
            except SSL.Error:
                pass
        if self.sock is not None:
            self.sock.close()
