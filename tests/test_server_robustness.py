"""Malformed traffic at the binding's server: it must neither crash nor stop serving.

The server runs in a subprocess (a crash in C then fails a test instead of
killing the test run) with a coap:// endpoint and two coaps:// endpoints (PSK
and certificates). Garbage goes only to loopback, a few hundred datagrams per
test, from a fixed random seed; after it (and in between) valid requests from
independent clients must still be answered, and the server must still stop
cleanly on SIGTERM.
"""

from __future__ import annotations

import itertools
import json
import random
import select
import signal
import socket
import struct
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field

import block_attacks
import pytest
from helpers.certs import CertFiles
from helpers.codec import decode_message, encode_message, raw_coap_request
from helpers.ctools import COAP_CLIENT, NO_CLIENT_REASON, cert_args, client_data, coap_client_run
from helpers.net import coap_ping
from helpers.waiting import wait_until

import libcoap_py as coap

# The server under attack serves coaps:// too.
pytestmark = pytest.mark.needs_dtls

PSK_IDENTITY = "robust-device"
PSK_KEY = "robust-secret"
ALIVE = b"still alive"

SERVER_SCRIPT = textwrap.dedent(
    """
    import json
    import sys

    import libcoap_py as coap

    cert, key, ca = sys.argv[1:4]
    with coap.Context() as ctx:
        ports = {
            "coap": ctx.add_endpoint("coap://127.0.0.1:0").port,
            "pki": ctx.add_endpoint(
                "coaps://127.0.0.1:0", dtls=coap.PKI(cert, key, ca)
            ).port,
            "psk": ctx.add_endpoint(
                "coaps://127.0.0.1:0",
                dtls=coap.PSK(hint=b"robust", keys={b"robust-device": b"robust-secret"}),
            ).port,
        }
        calls = {"n": 0}

        @ctx.resource("alive", methods=("GET", "POST"))
        def alive(request, response):
            calls["n"] += 1
            response.payload = b"still alive"

        @ctx.resource("count", methods=("GET",))
        def count(request, response):
            response.payload = str(calls["n"]).encode()

        print(json.dumps(ports), flush=True)
        ctx.run(handle_signals=True)
        print("stopped", flush=True)
    """
)


@dataclass
class ServerProcess:
    proc: subprocess.Popen[bytes]
    ports: dict[str, int]
    stderr: list[bytes] = field(default_factory=list)

    def log(self) -> str:
        return b"".join(self.stderr).decode(errors="replace")[-3000:]

    def check_alive(self) -> None:
        assert self.proc.poll() is None, f"server died (rc {self.proc.returncode}):\n{self.log()}"

    def handler_calls(self) -> int:
        return int(raw_coap_request(self.ports["coap"], coap.Code.GET, "count").payload)

    def assert_serving(self) -> None:
        """A valid plain request is answered, by the handler."""
        self.check_alive()
        answer = raw_coap_request(self.ports["coap"], coap.Code.GET, "alive", timeout=5)
        assert (answer.code, answer.payload) == (coap.Code.CONTENT, ALIVE), self.log()


@pytest.fixture
def server(certs: CertFiles) -> Iterator[ServerProcess]:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-I",
            "-c",
            SERVER_SCRIPT,
            str(certs.server_cert),
            str(certs.server_key),
            str(certs.ca),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
    )
    assert proc.stdout is not None and proc.stderr is not None
    stderr: list[bytes] = []
    drain = threading.Thread(
        target=lambda: stderr.extend(iter(proc.stderr.readline, b"")),  # type: ignore[union-attr]
        daemon=True,
    )
    drain.start()
    try:
        ready, _, _ = select.select([proc.stdout], [], [], 15)
        line = proc.stdout.readline() if ready else b""
        try:
            ports = json.loads(line)
        except ValueError:
            raise AssertionError(
                f"server script did not start: {line!r} {b''.join(stderr)!r}"
            ) from None
        server = ServerProcess(proc, ports, stderr)
        assert wait_until(lambda: coap_ping("127.0.0.1", ports["coap"]), 10), server.log()
        yield server
        # it must still stop cleanly after everything it was sent
        server.check_alive()
        proc.send_signal(signal.SIGTERM)
        try:
            out, _ = proc.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            raise AssertionError("server did not stop within 10 s of SIGTERM") from None
        assert proc.returncode == 0, server.log()
        assert out.strip() == b"stopped"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
        drain.join(5)


class Blaster:
    """Sends datagrams to loopback from a few sockets, discarding whatever comes back."""

    def __init__(self, count: int = 4) -> None:
        self.socks = []
        for _ in range(count):
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.bind(("127.0.0.1", 0))
            s.setblocking(False)
            self.socks.append(s)
        self.sent = 0

    def send(self, port: int, datagrams: list[bytes], check: ServerProcess | None = None) -> None:
        for i, datagram in enumerate(datagrams):
            s = self.socks[i % len(self.socks)]
            s.sendto(datagram, ("127.0.0.1", port))
            self.sent += 1
            self.drain()
            if check is not None and i % 60 == 59:
                check.assert_serving()  # serving in between, not only afterwards

    def drain(self) -> None:
        for s in self.socks:
            while True:
                try:
                    s.recv(65535)
                except OSError:  # nothing left, or an ICMP error
                    break

    def close(self) -> None:
        for s in self.socks:
            s.close()


@pytest.fixture
def blaster() -> Iterator[Blaster]:
    b = Blaster()
    yield b
    b.close()


# --------------------------------------------------------------------------
# coap:// garbage


def _valid_get(mid: int = 0x1234) -> bytes:
    return encode_message(0, coap.Code.GET, mid, b"\x01\x02", [(11, b"alive")])


def crafted_coap_garbage() -> list[bytes]:
    """Hand-made malformed CoAP messages, one per way to get the format wrong."""
    mids = itertools.count(0x0B00)

    def hdr() -> bytes:  # CON GET, no token, a fresh MID (no duplicate detection)
        return struct.pack("!BBH", 0x40, 0x01, next(mids))

    g = [
        b"",
        b"\x40",
        b"\x40\x01",
        b"\x40\x01\x12",
        b"\x44\x01\x12\x34\x01",  # token length 4, one token byte
        b"\x48\x01\x12\x35",  # token length 8, no token
    ]
    g += wrong_versions() + reserved_token_lengths()
    g += [
        hdr() + b"\xf1a",  # option delta 15 without the payload marker
        hdr() + b"\x1f",  # option length nibble 15
        hdr() + b"\xd0",  # extended delta byte missing
        hdr() + b"\xe0\x01",  # two-byte extended delta cut short
        hdr() + b"\x1d",  # extended length byte missing
        hdr() + b"\x1e\x01",  # two-byte extended length cut short
        hdr() + b"\xb8abc",  # option value longer than the datagram
        hdr() + b"\xbd\xf0abc",  # extended length longer than the datagram
        hdr() + b"\xb5alive\xff",  # payload marker without payload
        hdr() + b"\xff",  # payload marker, no payload, no options
        hdr() + b"\xe0\xff\xff",  # option number 65804 (delta 14 + 0xffff)
        hdr() + b"\xe0\xff\xff" * 20,  # deltas adding up far past 2**16
        hdr() + b"\xe1\xff\xffA" * 300,  # 300 options with huge numbers
        hdr() + b"\xe0\xfe\xf2",  # option 65535 (critical, unknown), empty
        hdr() + b"\xb5alive\xd1\xd3A",  # Uri-Path then unknown critical option 235
        hdr() + b"\xb5alive" + b"\x01" * 200,  # 100 more one-byte Uri-Path segments
        hdr() + b"\xb5alive\x13\x00\x00\x00",  # Content-Format (12) of 3 bytes
        hdr() + b"\xb5alive\x63\x00\x00\x00",  # Accept (17) of 3 bytes
        hdr() + b"\x75" + b"\x00" * 5,  # Uri-Port (7) of 5 bytes
        hdr() + b"\x30",  # empty Uri-Host
        hdr() + b"\x3d\xff" + b"h" * 268,  # Uri-Host of 268 bytes
        hdr() + b"\xbd\xff" + b"p" * 268 + b"\x0d\xff" + b"p" * 268,  # overlong Uri-Path
        hdr() + b"\xb5alive" + b"\x0b" * 20,  # option values eating the next headers
        hdr() + b"\xb5alive\xc4\xff\xff\xff\xff",  # Block2 (23) of 4 bytes
        hdr() + b"\xb5alive\xc1\x0f",  # Block2 with reserved SZX 7
        hdr() + b"\xb5alive\xd1\x03\x0f",  # Block1 (27) with SZX 7
        hdr() + b"\xb5alive\xd3\x03\xff\xff\xf7",  # Block1, huge block number, SZX 7
        hdr() + b"\xb5alive\x14\xff\xff\xff\xff\xff" + b"\xffdata",
        b"\x40\x00\x00\x01\xff" + b"payload in an empty message",
        b"\x42\x00\x00\x02\xab\xcd",  # empty message with a token
        b"\x40\x00\x00\x03\xb5alive",  # empty message with an option
        b"\x60\x45\x33\x33",  # unsolicited ACK 2.05
        b"\x70\x00\x44\x44",  # unsolicited RST
        b"\x50\x45\x55\x55\xffnot asked for",  # unsolicited NON 2.05
        b"\x40\x45\x66\x66",  # CON 2.05 (a response sent to a server)
        b"\x40\x20\x00\x04",  # reserved class 1
        b"\x40\xc0\x00\x05",  # reserved class 6
        b"\x40\xe0\x00\x06",  # reserved class 7
        b"\x40\x08\x00\x07\xb5alive",  # method 0.08 (unassigned)
        b"\x40\x1f\x00\x08\xb5alive",  # method 0.31
        b"\x40\x01\x00\x09\x61\x00\x55alive",  # Observe on GET /alive (legal)
        b"\x40\x02\x00\x0a\xb5alive\xff" + b"x" * 3000,  # payload beyond libcoap's PDU size
        bytes(2000),  # zeros
        b"\xff" * 1500,
    ]
    return g


def wrong_versions() -> list[bytes]:
    """A valid GET /alive with version 0, 2 and 3."""
    out = []
    for version in (0, 2, 3):
        valid = bytearray(_valid_get(0x0A00 + version))
        valid[0] = (valid[0] & 0x3F) | version << 6
        out.append(bytes(valid))
    return out


def reserved_token_lengths() -> list[bytes]:
    """GET /alive with token lengths 9..15 (reserved)."""
    return [
        bytes([0x40 | tkl, 0x01, 0x0C, tkl]) + b"T" * tkl + b"\xb5alive" for tkl in range(9, 16)
    ]


def random_coap_garbage(rng: random.Random, count: int) -> list[bytes]:
    """Random datagrams, most with a version-1 header so they reach the option parser."""
    base = _valid_get()
    out = []
    for i in range(count):
        kind = i % 3
        if kind == 0:  # random bytes
            out.append(rng.randbytes(rng.randrange(0, 300)))
        elif kind == 1:  # version 1 header, random rest
            out.append(bytes([0x40 | rng.randrange(0, 0x40)]) + rng.randbytes(rng.randrange(3, 80)))
        else:  # a valid request with a few bytes changed or cut
            mutated = bytearray(base)
            for _ in range(rng.randrange(1, 4)):
                mutated[rng.randrange(len(mutated))] = rng.randrange(256)
            out.append(bytes(mutated[: rng.randrange(1, len(mutated) + 1)]))
    return out


def test_coap_garbage_then_valid_requests(server: ServerProcess, blaster: Blaster) -> None:
    rng = random.Random(5683)
    garbage = crafted_coap_garbage() + random_coap_garbage(rng, 240)
    blaster.send(server.ports["coap"], garbage, check=server)
    server.assert_serving()
    # a request naming an unknown critical option is refused with 4.02, not served
    bad_option = raw_coap_request(
        server.ports["coap"], coap.Code.GET, "alive", options=[(65001, b"x")]
    )
    assert bad_option.code == coap.Code.BAD_OPTION
    for _ in range(5):
        server.assert_serving()
    if COAP_CLIENT is not None:
        out = coap_client_run(f"coap://127.0.0.1:{server.ports['coap']}/alive")
        assert client_data(out.stdout).startswith(ALIVE), out.stderr
    assert blaster.sent == len(garbage)


def test_coap_garbage_at_the_dtls_endpoints(server: ServerProcess, blaster: Blaster) -> None:
    """Plain CoAP (not DTLS) sent to coaps:// ports."""
    rng = random.Random(5684)
    garbage = crafted_coap_garbage()[:40] + random_coap_garbage(rng, 40)
    for name in ("psk", "pki"):
        blaster.send(server.ports[name], garbage)
    server.assert_serving()
    _assert_dtls_serving(server)


# --------------------------------------------------------------------------
# Block-wise attacks (block_attacks.py): two datagrams crashed libcoap 4.3.1-4.3.4


@pytest.mark.parametrize("path", ["x", "alive"], ids=["unknown path", "a resource"])
def test_block_wise_attacks_leave_the_server_serving(server: ServerProcess, path: str) -> None:
    for name, datagrams in block_attacks.sequences(path):
        answered = block_attacks.send_sequence(server.ports["coap"], datagrams)
        server.check_alive()
        assert answered == len(datagrams), f"{name}: {answered} of {len(datagrams)} answered"
        server.assert_serving()


def test_a_csm_over_udp_shrinks_only_the_diagnostics(server: ServerProcess) -> None:
    """libcoap 4.3 takes a CSM's Max-Message-Size (7.01, option 2) even over UDP: the
    peer's session then holds 60-byte PDUs. An error answer that does not fit goes
    without its diagnostic text, not as 5.00 with a traceback; the body goes in blocks."""
    port = server.ports["coap"]
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(2)
        sock.sendto(encode_message(0, 0xE1, 0x7001, b"", [(2, b"\x40")]), ("127.0.0.1", port))
        try:
            sock.recv(2048)  # an ACK, or nothing: either way the CSM was read
        except socket.timeout:
            pass
        bert = [(11, b"alive"), (int(coap.OptionNumber.BLOCK2), b"\x1f")]  # block 1, SZX 7
        get = encode_message(0, int(coap.Code.GET), 0x7002, b"8-tokens", bert)
        sock.sendto(get, ("127.0.0.1", port))
        answer = decode_message(sock.recv(2048))
    assert answer.code == coap.Code.BAD_REQUEST, answer
    server.assert_serving()
    assert "Traceback" not in server.log(), server.log()


def test_block_wise_attacks_from_an_authenticated_device(server: ServerProcess) -> None:
    """The same requests inside a PSK session, sent with new_pdu()/send()."""
    with coap.Context() as ctx:
        uri = f"coaps://127.0.0.1:{server.ports['psk']}"
        session = ctx.client_session(uri, dtls=coap.PSK(identity=PSK_IDENTITY, key=PSK_KEY))
        sender = block_attacks.SessionSender(ctx, session)
        for name, datagrams in block_attacks.sequences("alive"):
            for datagram in datagrams:
                answered = sender.send(datagram)
                server.check_alive()
                assert answered, f"{name}: no answer"
    server.assert_serving()
    _assert_dtls_serving(server)


# --------------------------------------------------------------------------
# DTLS garbage


class Relay:
    """A UDP relay between a DTLS client and the server that records what the client sent.

    After ``capture()`` it stops forwarding; its socket (an address the server has
    seen complete a handshake, whose cookies are valid) then sends replayed and
    broken records.
    """

    def __init__(self, server_port: int) -> None:
        self.server = ("127.0.0.1", server_port)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.05)
        self.port = int(self.sock.getsockname()[1])
        self.from_client: list[bytes] = []
        self.forwarding = True
        #: Datagrams from the server that arrived while not forwarding.
        self.unforwarded_from_server = 0
        self._client: tuple[str, int] | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                data, source = self.sock.recvfrom(65535)
            except socket.timeout:
                continue
            except OSError:
                if self._stop.is_set():
                    return
                continue  # ICMP errors from a client that is gone
            if not self.forwarding:
                if source == self.server:
                    self.unforwarded_from_server += 1
                continue
            if source == self.server:
                if self._client is not None:
                    self.sock.sendto(data, self._client)
            else:
                self._client = source
                self.sock.sendto(data, self.server)
                self.from_client.append(data)  # after forwarding: recorded means sent on

    def send(self, datagrams: list[bytes]) -> None:
        for d in datagrams:
            self.sock.sendto(d, self.server)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self.sock.close()


def _psk_client(port: int, *extra: str, wait_s: int = 5) -> subprocess.CompletedProcess[bytes]:
    return coap_client_run(
        "-u", PSK_IDENTITY, "-k", PSK_KEY, *extra, f"coaps://127.0.0.1:{port}/alive",
        wait_s=wait_s,
    )  # fmt: skip


def _pki_client(certs: CertFiles, port: int) -> subprocess.CompletedProcess[bytes]:
    return coap_client_run(
        *cert_args(certs.cert, certs.key), "-C", str(certs.ca),
        f"coaps://127.0.0.1:{port}/alive",
    )  # fmt: skip


def _assert_dtls_serving(server: ServerProcess, certs: CertFiles | None = None) -> None:
    server.check_alive()
    if COAP_CLIENT is None:
        return
    out = _psk_client(server.ports["psk"])
    assert client_data(out.stdout).startswith(ALIVE), f"{out.stderr[-1500:]!r}\n{server.log()}"
    if certs is not None:
        out = _pki_client(certs, server.ports["pki"])
        assert client_data(out.stdout).startswith(ALIVE), f"{out.stderr[-1500:]!r}\n{server.log()}"


def _records(datagram: bytes) -> list[bytes]:
    """Split a datagram into DTLS records (13-byte header + length)."""
    out = []
    pos = 0
    while pos + 13 <= len(datagram):
        length = int.from_bytes(datagram[pos + 11 : pos + 13], "big")
        out.append(datagram[pos : pos + 13 + length])
        pos += 13 + length
    return out


def _dtls_record(rng: random.Random, content_type: int, body: bytes, epoch: int = 0) -> bytes:
    seq = rng.randrange(0, 1 << 48).to_bytes(6, "big")
    return (
        bytes([content_type])
        + b"\xfe\xfd"
        + epoch.to_bytes(2, "big")
        + seq
        + (len(body).to_bytes(2, "big") + body)
    )


def dtls_garbage(rng: random.Random, hello: bytes) -> list[bytes]:
    """Broken DTLS built from a real ClientHello and from scratch."""
    g: list[bytes] = []
    # the ClientHello cut at many points
    g += [hello[:n] for n in range(1, len(hello), max(1, len(hello) // 40))]
    # the ClientHello with a few bytes changed
    for _ in range(30):
        mutated = bytearray(hello)
        for _ in range(rng.randrange(1, 4)):
            mutated[rng.randrange(13, len(mutated))] = rng.randrange(256)
        g.append(bytes(mutated))
    # the record length field lying (longer, shorter, zero)
    for length in (0, 1, len(hello) - 13 - 1, len(hello), 0xFFFF):
        g.append(hello[:11] + length.to_bytes(2, "big") + hello[13:])
    # handshake header lying: message length, fragment offset, fragment length
    hs = hello[13:]
    for offset, value in ((1, b"\xff\xff\xff"), (6, b"\x00\xff\xff"), (9, b"\xff\xff\xff")):
        broken = hs[:offset] + value + hs[offset + 3 :]
        g.append(hello[:13] + broken)
    # the ClientHello twice in one datagram, the second cut
    g.append(hello + hello[: len(hello) // 2])
    # record header 0x16 0xfe 0xfd and random bytes
    g += [b"\x16\xfe\xfd" + rng.randbytes(rng.randrange(0, 200)) for _ in range(40)]
    # well-framed records of every content type with random bodies, epochs 0 and 1
    for content_type in (0x14, 0x15, 0x16, 0x17, 0x18, 0x99):
        for epoch in (0, 1, 0xFFFF):
            g.append(_dtls_record(rng, content_type, rng.randbytes(rng.randrange(0, 120)), epoch))
    # other versions in the record header
    for version in (b"\xfe\xff", b"\x03\x03", b"\x00\x00", b"\xff\xff"):
        g.append(hello[:1] + version + hello[3:])
    g.append(b"\x16\xfe\xfd" + rng.randbytes(3000))  # far bigger than a record should be
    g += [rng.randbytes(rng.randrange(1, 100)) for _ in range(30)]
    return g


@dataclass
class Capture:
    client_hello: bytes
    flights: list[bytes]
    relay: Relay


@pytest.fixture
def psk_capture(server: ServerProcess) -> Iterator[Capture]:
    """A real PSK handshake through a relay; what the client sent, and the relay."""
    if COAP_CLIENT is None:
        pytest.skip(f"{NO_CLIENT_REASON}: it is needed to capture a real ClientHello")
    relay = Relay(server.ports["psk"])
    try:
        out = _psk_client(relay.port)
        assert client_data(out.stdout).startswith(ALIVE), f"{out.stderr[-1500:]!r}\n{server.log()}"
        # let the client's closing alert reach the server, so that it forgets the session
        wait_until(lambda: any(f[:1] == b"\x15" for f in relay.from_client), 2)
        relay.forwarding = False
        flights = list(relay.from_client)
        assert flights and flights[0][:2] == b"\x16\xfe", flights[:1]  # DTLS handshake
        yield Capture(flights[0], flights, relay)
    finally:
        relay.close()


def test_dtls_garbage_and_truncated_records(
    server: ServerProcess, blaster: Blaster, psk_capture: Capture, certs: CertFiles
) -> None:
    rng = random.Random(6684)
    garbage = dtls_garbage(rng, psk_capture.client_hello)
    assert 150 <= len(garbage) <= 300
    for name in ("psk", "pki"):
        blaster.send(server.ports[name], garbage, check=server)
    server.assert_serving()
    _assert_dtls_serving(server, certs)


def test_replayed_and_broken_handshake_from_a_known_address(
    server: ServerProcess, psk_capture: Capture, certs: CertFiles
) -> None:
    """From the address that completed a handshake: replay its flights, then broken ones.

    The replayed ClientHello with the cookie is valid for that address, so the
    server opens a handshake that then gets only truncated and corrupted records.
    """
    rng = random.Random(7684)
    relay = psk_capture.relay
    flights = psk_capture.flights
    handshake = [f for f in flights if f[:1] == b"\x16"]
    broken: list[bytes] = list(handshake)  # replay every handshake flight as it was
    for flight in handshake[1:]:
        for record in _records(flight):
            broken += [record[:n] for n in (1, 5, 13, 14, len(record) // 2, len(record) - 1)]
            corrupt = bytearray(record)
            corrupt[rng.randrange(13, len(corrupt))] ^= 0xFF
            broken.append(bytes(corrupt))
    broken += [f for f in flights if f[:1] == b"\x17"]  # replayed application data
    broken += [_dtls_record(rng, 0x17, rng.randbytes(40), epoch=1) for _ in range(10)]
    broken += [_dtls_record(rng, 0x15, b"\x02\x28", epoch=0)]  # fatal handshake_failure alert
    assert len(broken) <= 300
    # the ClientHello with the cookie: the server answers it (resent, as a client would)
    for _ in range(10):
        relay.send(handshake[1:2])
        if wait_until(lambda: relay.unforwarded_from_server > 0, 0.5):
            break
    assert relay.unforwarded_from_server > 0, "the server ignored a ClientHello with its cookie"
    for _ in range(2):
        relay.send(broken)
        server.assert_serving()
    _assert_dtls_serving(server, certs)


def test_many_half_open_handshakes(server: ServerProcess, psk_capture: Capture) -> None:
    """ClientHellos from many source ports, never continued; real clients still get in."""
    sockets = []
    try:
        for _ in range(100):
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            s.bind(("127.0.0.1", 0))
            s.sendto(psk_capture.client_hello, ("127.0.0.1", server.ports["psk"]))
            sockets.append(s)
        server.assert_serving()
        _assert_dtls_serving(server)
    finally:
        for s in sockets:
            s.close()


def test_malformed_requests_never_reach_the_handler(
    server: ServerProcess, blaster: Blaster
) -> None:
    """Requests for /alive broken in the header or options are not handed to its handler."""
    before = server.handler_calls()
    mids = itertools.count(0x0D00)

    def get_alive(tail: bytes) -> bytes:
        return struct.pack("!BBH", 0x40, 0x01, next(mids)) + b"\xb5alive" + tail

    broken = wrong_versions() + reserved_token_lengths()
    broken += [
        get_alive(b"\xff"),  # payload marker without payload
        get_alive(b"\xd1\xd3A"),  # unknown critical option 235
        get_alive(b"\xf1a"),  # reserved delta 15
        get_alive(b"\x1f"),  # reserved length 15
        get_alive(b"\xb8ab"),  # value longer than the datagram
        get_alive(b"\xd0"),  # extended delta missing
    ]
    blaster.send(server.ports["coap"], broken)
    server.check_alive()
    assert server.handler_calls() == before
    server.assert_serving()
    assert server.handler_calls() == before + 1
