"""Fixtures: real CoAP peers on loopback ports, test certificates, small UDP helpers.

Nothing here mocks libcoap. The peer is libcoap3-bin's ``coap-server-openssl``
(one process serving ``coap://`` on port P and ``coaps://`` with PSK *and*
PKI on P+1), plus tiny Python UDP peers for behaviours a real server will not
produce on demand (silence, RST to everything).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import struct
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

import pytest

COAP_SERVER = shutil.which("coap-server-openssl")
COAP_CLIENT = shutil.which("coap-client-openssl")
NO_SERVER_REASON = (
    "coap-server-openssl is not installed (apt install libcoap3-bin); "
    "tests against a real peer are skipped"
)

PSK_IDENTITY = b"libcoap-py-test"
PSK_KEY = b"libcoap-py-test-psk-key"
PSK_HINT = b"libcoap-py-hint"
#: How many resources the server may create on PUT/POST (its ``-d``).
DYNAMIC_RESOURCES = 200
#: Start of the payload the server returns for ``GET /``.
WELCOME = b"This is a test server made with libcoap"

#: Upper bound for any single test; a hang fails the test instead of the run.
TEST_DEADLINE_S = 45


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


def _family(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def _can_bind(host: str, port: int, kind: socket.SocketKind) -> bool:
    with socket.socket(_family(host), kind) as s:
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
        with socket.socket(_family(host), socket.SOCK_DGRAM) as s:
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


def coap_ping(host: str, port: int, timeout: float = 0.2) -> bool:
    """Send a CoAP ping (empty CON) and report whether an RST came back."""
    mid = int.from_bytes(os.urandom(2), "big")
    with socket.socket(_family(host), socket.SOCK_DGRAM) as s:
        s.settimeout(timeout)
        try:
            s.sendto(struct.pack("!BBH", 0x40, 0x00, mid), (host, port))
            data, _ = s.recvfrom(64)
        except OSError:  # timeout or ICMP port unreachable
            return False
    return len(data) >= 4 and data[0] & 0x30 == 0x30 and data[2:4] == mid.to_bytes(2, "big")


def uri_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


@dataclass
class CoapServer:
    """A running ``coap-server-openssl``: coap on ``port``, coaps on ``port + 1``."""

    host: str
    port: int
    psk_identity: bytes
    psk_key: bytes
    psk_hint: bytes
    log_path: Path
    process: subprocess.Popen[bytes] = field(repr=False)

    @property
    def coaps_port(self) -> int:
        return self.port + 1

    @property
    def coap_uri(self) -> str:
        return f"coap://{uri_host(self.host)}:{self.port}"

    @property
    def coaps_uri(self) -> str:
        return f"coaps://{uri_host(self.host)}:{self.coaps_port}"

    def log(self) -> str:
        """What the server wrote so far (for assertion messages)."""
        try:
            return self.log_path.read_text(errors="replace")[-4000:]
        except OSError:
            return ""


@dataclass(frozen=True)
class CertFiles:
    """PEM files for the tests.

    ``ca``/``server_cert``/``server_key`` are what the server uses;
    ``cert`` (device + CA) and ``key`` are the device files of the C sample.
    ``other_*`` belong to an unrelated CA the server does not trust.
    """

    directory: Path
    ca: Path
    ca_key: Path
    server_cert: Path
    server_key: Path
    cert: Path
    key: Path
    other_ca: Path
    other_cert: Path
    other_key: Path


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


def _start_server(
    host: str, log_dir: Path, server_cert: Path, server_key: Path, ca: Path
) -> CoapServer:
    assert COAP_SERVER is not None
    last_log = ""
    for attempt in range(3):
        port = free_port_pair(host)
        log_path = log_dir / f"coap-server-{host.replace(':', '_')}-{port}.log"
        cmd = [
            COAP_SERVER,
            "-A", host,
            "-p", str(port),
            "-d", str(DYNAMIC_RESOURCES),
            "-v", "6",
            "-k", PSK_KEY.decode(),
            "-h", PSK_HINT.decode(),
            "-c", str(server_cert),
            "-j", str(server_key),
            "-C", str(ca),
        ]  # fmt: skip
        with open(log_path, "wb") as log:
            log.write((" ".join(cmd) + "\n").encode())
            log.flush()
            proc = subprocess.Popen(
                cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
            )
        server = CoapServer(host, port, PSK_IDENTITY, PSK_KEY, PSK_HINT, log_path, proc)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and proc.poll() is None:
            if coap_ping(host, port):
                return server
        _stop(proc)
        last_log = server.log()
        if attempt == 2 or "bind" not in last_log.lower():
            break
    raise RuntimeError(f"coap-server-openssl did not come up on {host}; its log:\n{last_log}")


# --------------------------------------------------------------------------
# hang guard


class TestHang(Exception):
    """Raised in a test that ran past TEST_DEADLINE_S."""

    __test__ = False


@pytest.fixture(autouse=True)
def _deadline() -> Iterator[None]:
    """Fail a test that hangs, so a binding bug cannot stall the whole run."""
    if threading.current_thread() is not threading.main_thread() or not hasattr(signal, "SIGALRM"):
        yield
        return

    def on_alarm(signum: int, frame: FrameType | None) -> None:
        raise TestHang(f"test still running after {TEST_DEADLINE_S} s")

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, TEST_DEADLINE_S)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


# --------------------------------------------------------------------------
# certificates


@pytest.fixture(scope="session")
def certs(tmp_path_factory: pytest.TempPathFactory) -> CertFiles:
    """A test PKI from ``certs.init_dir`` plus an unrelated CA and device leaf."""
    pytest.importorskip("cryptography", reason="test certificates need the 'cryptography' package")
    from libcoap_py import certs as certmod

    directory = tmp_path_factory.mktemp("certs")
    files = certmod.init_dir(directory)
    other_ca, other_ca_key = certmod.make_ca("unrelated test CA")
    other_leaf, other_leaf_key = certmod.make_leaf(other_ca, other_ca_key, "intruder", server=False)
    return CertFiles(
        directory=directory,
        ca=files["ca"],
        ca_key=files["ca_key"],
        server_cert=files["server_cert"],
        server_key=files["server_key"],
        cert=files["cert"],
        key=files["key"],
        other_ca=certmod.write_pem(directory / "other-ca.crt", other_ca),
        other_cert=certmod.write_pem(directory / "other-cert.crt", other_leaf, other_ca),
        other_key=certmod.write_pem(directory / "other-key.pem", other_leaf_key),
    )


@dataclass(frozen=True)
class ChainFiles:
    """root -> intermediate -> leaves. ``cas`` holds intermediate + root."""

    root: Path
    cas: Path
    server_chain: Path
    server_key: Path
    device_chain: Path
    device_key: Path


@pytest.fixture(scope="session")
def chain_certs(tmp_path_factory: pytest.TempPathFactory) -> ChainFiles:
    """A two-level PKI: server and device leaves are issued by an intermediate CA."""
    pytest.importorskip("cryptography", reason="test certificates need the 'cryptography' package")
    from libcoap_py import certs as certmod

    d = tmp_path_factory.mktemp("chain-certs")
    root, root_key = certmod.make_ca("chain test root")
    inter, inter_key = certmod.make_intermediate(root, root_key, "chain test intermediate")
    server, server_key = certmod.make_leaf(inter, inter_key, "localhost", server=True)
    device, device_key = certmod.make_leaf(inter, inter_key, "chain-device", server=False)
    return ChainFiles(
        root=certmod.write_pem(d / "root.crt", root),
        cas=certmod.write_pem(d / "cas.crt", inter, root),
        server_chain=certmod.write_pem(d / "server-chain.crt", server, inter),
        server_key=certmod.write_pem(d / "server.key", server_key),
        device_chain=certmod.write_pem(d / "device-chain.crt", device, inter),
        device_key=certmod.write_pem(d / "device.key", device_key),
    )


# --------------------------------------------------------------------------
# real servers


@pytest.fixture(scope="session")
def coap_server(certs: CertFiles, tmp_path_factory: pytest.TempPathFactory) -> Iterator[CoapServer]:
    """coap-server-openssl on 127.0.0.1: coap on P, coaps (PSK and PKI) on P+1."""
    if COAP_SERVER is None:
        pytest.skip(NO_SERVER_REASON)
    server = _start_server(
        "127.0.0.1",
        tmp_path_factory.mktemp("server-logs"),
        certs.server_cert,
        certs.server_key,
        certs.ca,
    )
    try:
        yield server
    finally:
        _stop(server.process)


@pytest.fixture(scope="session")
def coap_server_v6(
    certs: CertFiles, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[CoapServer]:
    """The same server on [::1]; skipped where IPv6 loopback is unavailable."""
    if COAP_SERVER is None:
        pytest.skip(NO_SERVER_REASON)
    if not IPV6_AVAILABLE:
        pytest.skip("IPv6 loopback ::1 is not available on this machine")
    server = _start_server(
        "::1",
        tmp_path_factory.mktemp("server-logs-v6"),
        certs.server_cert,
        certs.server_key,
        certs.ca,
    )
    try:
        yield server
    finally:
        _stop(server.process)


@pytest.fixture(scope="session")
def chain_server(
    chain_certs: ChainFiles, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[CoapServer]:
    """coap-server-openssl with a server certificate issued by an intermediate CA.

    libcoap 4.3.1 sends only the leaf, so peers need the intermediate in their
    trust store: the server gets ``cas.crt`` (intermediate + root) as its CA file.
    """
    if COAP_SERVER is None:
        pytest.skip(NO_SERVER_REASON)
    server = _start_server(
        "127.0.0.1",
        tmp_path_factory.mktemp("chain-server-logs"),
        chain_certs.server_chain,
        chain_certs.server_key,
        chain_certs.cas,
    )
    try:
        yield server
    finally:
        _stop(server.process)


# --------------------------------------------------------------------------
# Python UDP peers


class UdpPeer:
    """A UDP socket on 127.0.0.1 that records what it gets, answering per ``mode``.

    ``"silent"`` never answers (a server that is gone but whose port is held, so
    no ICMP error either); ``"rst"`` answers every CON with an RST for its MID.
    """

    def __init__(self, mode: str) -> None:
        self.mode = mode
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.05)
        self.port = int(self.sock.getsockname()[1])
        self.received: list[bytes] = []
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"udp-peer-{mode}", daemon=True)
        self._thread.start()

    @property
    def uri(self) -> str:
        return f"coap://127.0.0.1:{self.port}"

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                data, addr = self.sock.recvfrom(65535)
            except socket.timeout:
                continue
            except OSError:
                return
            with self._cond:
                self.received.append(data)
                self._cond.notify_all()
            if self.mode == "rst" and len(data) >= 4 and (data[0] >> 4) & 0x3 == 0:  # CON
                self.sock.sendto(bytes([0x70, 0x00]) + data[2:4], addr)

    def wait_for(self, count: int, timeout: float = 5.0) -> list[bytes]:
        """Wait until ``count`` datagrams arrived (or the timeout), return them all."""
        with self._cond:
            self._cond.wait_for(lambda: len(self.received) >= count, timeout)
            return list(self.received)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        self.sock.close()


@pytest.fixture
def silent_peer() -> Iterator[UdpPeer]:
    peer = UdpPeer("silent")
    yield peer
    peer.close()


@pytest.fixture
def rst_peer() -> Iterator[UdpPeer]:
    peer = UdpPeer("rst")
    yield peer
    peer.close()


@pytest.fixture
def free_udp_port() -> int:
    """A loopback UDP port with nobody listening (may answer with ICMP unreachable)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --------------------------------------------------------------------------
# small helpers


@pytest.fixture
def unique_path() -> str:
    """A resource path nobody used before in this run: ``test/<hex>``."""
    return f"test/{uuid.uuid4().hex[:16]}"


def binary_payload(size: int = 500) -> bytes:
    """Deterministic bytes with NULs and every byte value."""
    pattern = bytes(range(256))
    return (b"\x00\x01\x00" + pattern * (size // 256 + 1))[:size]
