"""Fixtures: real CoAP peers on loopback ports, test certificates, small UDP helpers.

Nothing here mocks libcoap. The peer is libcoap's own ``coap-server`` of the
same TLS backend as the build under test (``coap-server-openssl``,
``-gnutls``, ``-notls``: see ``TOOL_SUFFIX``), one process serving ``coap://``
on port P and ``coaps://`` with PSK *and* PKI on P+1, plus tiny Python UDP
peers for behaviours a real server will not produce on demand (silence, RST
to everything).

Tests that need DTLS carry the ``needs_dtls`` marker (per module or per
test); on a libcoap built without DTLS they are skipped, naming that.

The suite runs against either libcoap generation: 4.3 (libcoap3-bin's tools)
or 4.2 (libcoap2-bin's, first on PATH). ``LIBCOAP_42`` says which one the
binding was built against; the tools' flags follow it (see ``cert_args``).
"""

from __future__ import annotations

import os
import queue
import re
import shutil
import signal
import socket
import struct
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any, Generic, TypeVar

import pytest

import libcoap_py as _coap

if TYPE_CHECKING:
    import libcoap_py as coap_t

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
#: The suffix of libcoap's programs built with that library (libcoap3-bin and
#: libcoap2-bin ship coap-client-openssl, -gnutls and -notls).
TOOL_SUFFIX = {
    "OpenSSL": "openssl",
    "GnuTLS": "gnutls",
    "Mbed TLS": "mbedtls",
    "TinyDTLS": "tinydtls",
    "none": "notls",
}[TLS_NAME]


def tool(name: str) -> str:
    """libcoap's program ``name`` of the build's TLS backend: coap-server -> coap-server-gnutls."""
    return f"{name}-{TOOL_SUFFIX}"


COAP_SERVER_NAME = tool("coap-server")
COAP_CLIENT_NAME = tool("coap-client")
COAP_SERVER = shutil.which(COAP_SERVER_NAME)
COAP_CLIENT = shutil.which(COAP_CLIENT_NAME)
NO_SERVER_REASON = (
    f"{COAP_SERVER_NAME} is not installed (apt install {BIN_PACKAGE}); "
    "tests against a real peer are skipped"
)
NO_CLIENT_REASON = f"{COAP_CLIENT_NAME} is not installed (apt install {BIN_PACKAGE})"

#: The TLS libraries whose libcoap code offers every DTLS setup of a context in
#: every client handshake (one PSK-and/or-PKI mask per context, in
#: src/coap_gnutls.c and src/coap_mbedtls.c): the binding refuses to mix them.
PSK_PKI_MIXED = frozenset({"GnuTLS", "Mbed TLS"})
#: The TLS libraries whose libcoap code loads CRLs (check_cert_revocation).
CHECKS_REVOCATION = frozenset({"OpenSSL"})

#: What libcoap's coap-client logs (lower case) when the server, of the same backend,
#: refuses its certificate (the alert it got), per TLS backend.
CLIENT_CERT_REFUSED_LOG = {"OpenSSL": "unknown ca", "GnuTLS": "certificate is bad"}.get(TLS_NAME)
#: What it logs (one of these) when it refuses the server's certificate for a CA it does
#: not know: OpenSSL 3.0 says "certificate verify failed", libcoap with OpenSSL 3.5
#: "unknown ca"; no texts: a backend not measured, the log is not checked.
SERVER_CA_UNKNOWN_LOG: tuple[str, ...] = {
    "OpenSSL": ("certificate verify failed", "unknown ca"),
    "GnuTLS": ("the peer certificate's ca is unknown",),
}.get(TLS_NAME, ())

#: libcoap can do coaps:// (not so with libcoap-3-notls).
DTLS = _coap.dtls_is_supported()
#: Why a test that needs DTLS is skipped on this build.
NO_DTLS_REASON = f"libcoap built without DTLS ({_coap.package_name()})"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if DTLS:
        return
    skip = pytest.mark.skip(reason=NO_DTLS_REASON)
    for item in items:
        if item.get_closest_marker("needs_dtls") is not None:
            item.add_marker(skip)


def require_dtls() -> None:
    """Skip the calling test or fixture on a libcoap without DTLS."""
    if not DTLS:
        pytest.skip(NO_DTLS_REASON)


#: The method that makes coap-server create a resource and answer 2.01:
#: POST on 4.3; 4.2's server has no POST handler at all (4.05), only PUT.
CREATE_METHOD = "PUT" if LIBCOAP_42 else "POST"


#: A line of libcoap's log as its tools print it: "Nov 25 12:39:14 WARN ..." (4.2),
#: "Dec 03 03:31:21.351 WARN ..." (4.3).
_TOOL_LOG_LINE = r"[A-Z][a-z]{2} [ \d]?\d \d\d:\d\d:\d\d(?:\.\d+)? [A-Z]{4} [^\n]*(\n|$)"
_TOOL_LOG_LINES = {
    bytes: re.compile(f"(?:{_TOOL_LOG_LINE})*".encode()),
    str: re.compile(f"(?:{_TOOL_LOG_LINE})*"),
}

AnyStr_ = TypeVar("AnyStr_", str, bytes)


def client_data(stdout: AnyStr_) -> AnyStr_:
    """What coap-client printed as the response, without the log lines before it.

    libcoap's tools log to stdout; 4.2's client warns about every server
    certificate it accepts without a CRL before it prints the payload.
    """
    match = _TOOL_LOG_LINES[type(stdout)].match(stdout)
    return stdout[match.end() :] if match else stdout


_combined_pem: dict[tuple[Path, Path], Path] = {}


def cert_args(cert: Path | str, key: Path | str) -> list[str]:
    """The certificate and key arguments of coap-client / coap-server.

    4.3's tools take ``-c cert -j key``. 4.2's have no ``-j``: their ``-c``
    PEM file holds the certificate(s) *and* the private key, so on 4.2 the two
    are written into one file next to the certificate and that is passed.
    """
    if not LIBCOAP_42:
        return ["-c", str(cert), "-j", str(key)]
    cert, key = Path(cert), Path(key)
    combined = _combined_pem.get((cert, key))
    if combined is None:
        combined = cert.with_name(f"{cert.stem}+{key.stem}.pem")
        text = cert.read_text().rstrip("\n") + "\n" + key.read_text()
        combined.write_text(text)
        _combined_pem[(cert, key)] = combined
    return ["-c", str(combined)]


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
    """A running ``coap-server``: coap on ``port``, coaps on ``port + 1``."""

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
            *cert_args(server_cert, server_key),
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
    raise RuntimeError(f"{COAP_SERVER_NAME} did not come up on {host}; its log:\n{last_log}")


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
    """coap-server on 127.0.0.1: coap on P, coaps (PSK and PKI) on P+1."""
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
    """coap-server with a server certificate issued by an intermediate CA.

    libcoap 4.3.1 sends only the leaf, so peers need the intermediate in their
    trust store: the server gets ``cas.crt`` (intermediate + root) as its CA file.
    """
    require_dtls()
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


# --------------------------------------------------------------------------
# the binding as a server, in a thread of the test process
#
# A libcoap_py Context belongs to the thread that made it, so the test thread
# never touches the server's Context: ``setup(ctx)`` runs in the server thread
# and returns plain values (ports, typically), and the thread serves in short
# ``run(timeout=...)`` passes, between which it looks for a stop request and
# for functions queued with ``ServerThread.call``.

SetupResult = TypeVar("SetupResult")
CallResult = TypeVar("CallResult")

#: Longest single ``ctx.run()`` pass of a ServerThread: how late it sees a stop.
SERVER_PASS_S = 0.05


class ServerThread(Generic[SetupResult]):
    """A ``libcoap_py.Context`` made, set up and served in a thread of its own."""

    def __init__(
        self, setup: Callable[[coap_t.Context], SetupResult], *, name: str = "coap-server"
    ) -> None:
        self._setup = setup
        self._stop_requested = threading.Event()
        self._ready = threading.Event()
        self._calls: queue.Queue[tuple[Callable[[Any], Any], Future[Any]]] = queue.Queue()
        self._result: SetupResult | None = None
        #: What setup or the serving loop raised (the loop ends at the first one).
        self.error: BaseException | None = None
        #: Completed ``run()`` passes (grows while the server is alive and serving).
        self.passes = 0
        self._thread = threading.Thread(target=self._main, name=name, daemon=True)

    def start(self, timeout: float = 10.0) -> SetupResult:
        """Start the thread; wait for ``setup`` and return what it returned."""
        self._thread.start()
        if not self._ready.wait(timeout):
            raise RuntimeError(f"server thread: setup did not finish within {timeout} s")
        if self.error is not None:
            raise self.error
        return self._result  # type: ignore[return-value]

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def _main(self) -> None:
        import libcoap_py as coap

        try:
            with coap.Context() as ctx:
                try:
                    self._result = self._setup(ctx)
                finally:
                    self._ready.set()
                while not self._stop_requested.is_set():
                    ctx.run(timeout=SERVER_PASS_S)
                    self.passes += 1
                    self._run_calls(ctx)
        except BaseException as exc:
            self.error = exc
        finally:
            self._ready.set()
            self._fail_calls()

    def _run_calls(self, ctx: coap_t.Context) -> None:
        while True:
            try:
                function, future = self._calls.get_nowait()
            except queue.Empty:
                return
            try:
                future.set_result(function(ctx))
            except BaseException as exc:
                future.set_exception(exc)

    def _fail_calls(self) -> None:
        while True:
            try:
                _, future = self._calls.get_nowait()
            except queue.Empty:
                return
            future.set_exception(RuntimeError("server thread ended before the call ran"))

    def call(self, function: Callable[[Any], CallResult], timeout: float = 10.0) -> CallResult:
        """Run ``function(ctx)`` in the server thread between two passes; return its result."""
        if not self.alive:
            raise RuntimeError(f"server thread is not running (error: {self.error!r})")
        future: Future[CallResult] = Future()
        self._calls.put((function, future))
        return future.result(timeout)

    def wait_passes(self, count: int = 2, timeout: float = 10.0) -> None:
        """Wait until the loop completed ``count`` more passes (it is not stuck)."""
        target = self.passes + count
        if not wait_until(lambda: self.passes >= target or not self.alive, timeout):
            raise AssertionError(f"server loop made no progress for {timeout} s")
        self.check()

    def check(self) -> None:
        """Raise if the server thread died or its loop raised."""
        if self.error is not None:
            raise AssertionError(f"server thread failed: {self.error!r}") from self.error
        if not self.alive:
            raise AssertionError("server thread ended unexpectedly")

    def take_error(self, timeout: float = 10.0) -> BaseException | None:
        """Wait for the thread to end by itself; return (and forget) what it raised."""
        self._thread.join(timeout)
        if self._thread.is_alive():
            raise AssertionError(f"server thread still serving after {timeout} s")
        error, self.error = self.error, None
        return error

    def stop(self, timeout: float = 10.0) -> None:
        """Ask the loop to end, join the thread, raise what it raised."""
        self._stop_requested.set()
        self._thread.join(timeout)
        if self._thread.is_alive():
            raise RuntimeError(f"server thread did not stop within {timeout} s")
        if self.error is not None:
            raise self.error


def wait_until(condition: Callable[[], bool], timeout: float, interval: float = 0.01) -> bool:
    """Poll ``condition`` until it holds or ``timeout`` passed; return its last value."""
    deadline = time.monotonic() + timeout
    pause = threading.Event()  # never set: wait() is the bounded pause between polls
    while True:
        if condition():
            return True
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False
        pause.wait(min(interval, remaining))


def run_until(ctx: coap_t.Context, condition: Callable[[], bool], timeout: float) -> bool:
    """Drive ``ctx`` (``run_once``) until ``condition`` holds or ``timeout`` passed;
    return whether it holds."""
    deadline = time.monotonic() + timeout
    while not condition():
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False
        ctx.run_once(max(1, min(100, int(remaining * 1000))))
    return True


@pytest.fixture
def serve() -> Iterator[Callable[..., Any]]:
    """Start ServerThreads: ``serve(setup) -> setup's result``; all stop at teardown.

    ``serve(setup, handle=True)`` returns ``(result, server_thread)`` instead.
    """
    started: list[ServerThread[Any]] = []

    def start(setup: Callable[[Any], Any], *, handle: bool = False) -> Any:
        server: ServerThread[Any] = ServerThread(setup)
        started.append(server)
        result = server.start()
        return (result, server) if handle else result

    yield start
    errors = []
    for server in started:
        try:
            server.stop()
        except BaseException as exc:
            errors.append(exc)
    if errors:
        raise errors[0]


@dataclass(frozen=True)
class Seen:
    """A copy of what a server handler saw in its request (the request dies with the call)."""

    method: str
    code: int
    path: str
    query: tuple[str, ...]
    payload: bytes
    options: tuple[tuple[int, bytes], ...]
    content_format: int | None
    accept: int | None
    token: bytes
    mid: int
    type: int
    peer: tuple[str, int]
    proto: int
    peer_cn: str | None
    psk_identity: bytes | None

    @classmethod
    def of(cls, request: Any) -> Seen:
        return cls(
            method=request.method,
            code=request.code,
            path=request.path,
            query=tuple(request.query),
            payload=request.payload,
            options=tuple((int(n), bytes(v)) for n, v in request.options),
            content_format=request.content_format,
            accept=request.accept,
            token=request.token,
            mid=request.mid,
            type=request.type,
            peer=tuple(request.peer),  # type: ignore[arg-type]
            proto=request.proto,
            peer_cn=request.peer_cn,
            psk_identity=request.psk_identity,
        )

    def option_values(self, number: int) -> list[bytes]:
        return [v for n, v in self.options if n == number]


def coap_client_run(
    *args: str, wait_s: int = 3, timeout: float = 20.0
) -> subprocess.CompletedProcess[bytes]:
    """Run ``coap-client -B wait_s ARGS`` and return what it did (never raises on rc)."""
    if COAP_CLIENT is None:
        pytest.skip(NO_CLIENT_REASON)
    return subprocess.run(
        [COAP_CLIENT, "-B", str(wait_s), *args],
        capture_output=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
        check=False,
    )


# --------------------------------------------------------------------------
# a CoAP client made of a socket, for exchanges that must not depend on any
# CoAP library (and for hand-made malformed messages)


def _option_nibble(value: int) -> tuple[int, bytes]:
    if value < 13:
        return value, b""
    if value < 269:
        return 13, bytes([value - 13])
    return 14, (value - 269).to_bytes(2, "big")


def encode_options(options: list[tuple[int, bytes]]) -> bytes:
    """CoAP option encoding (RFC 7252, 3.1) of ``(number, value)`` pairs, sorted by number."""
    out = bytearray()
    previous = 0
    for number, value in sorted(options, key=lambda option: option[0]):
        delta, delta_ext = _option_nibble(number - previous)
        length, length_ext = _option_nibble(len(value))
        out.append(delta << 4 | length)
        out += delta_ext + length_ext + value
        previous = number
    return bytes(out)


def encode_message(
    mtype: int,
    code: int,
    mid: int,
    token: bytes = b"",
    options: list[tuple[int, bytes]] | None = None,
    payload: bytes = b"",
) -> bytes:
    header = struct.pack("!BBH", 0x40 | mtype << 4 | len(token), code, mid)
    body = header + token + encode_options(options or [])
    return body + (b"\xff" + payload if payload else b"")


@dataclass(frozen=True)
class RawMessage:
    type: int
    code: int
    mid: int
    token: bytes
    options: list[tuple[int, bytes]]
    payload: bytes


def decode_message(data: bytes) -> RawMessage:
    """Parse a well-formed CoAP message (raises ValueError on a malformed one)."""
    if len(data) < 4 or data[0] >> 6 != 1:
        raise ValueError(f"not a CoAP message: {data!r}")
    tkl = data[0] & 0xF
    pos = 4 + tkl
    if tkl > 8 or pos > len(data):
        raise ValueError(f"bad token length in {data!r}")
    options: list[tuple[int, bytes]] = []
    number = 0
    payload = b""
    while pos < len(data):
        if data[pos] == 0xFF:
            payload = data[pos + 1 :]
            break
        delta, length = data[pos] >> 4, data[pos] & 0xF
        pos += 1
        values = []
        for nibble in (delta, length):
            if nibble == 13:
                values.append(data[pos] + 13)
                pos += 1
            elif nibble == 14:
                values.append(int.from_bytes(data[pos : pos + 2], "big") + 269)
                pos += 2
            elif nibble == 15:
                raise ValueError(f"reserved option nibble in {data!r}")
            else:
                values.append(nibble)
        number += values[0]
        options.append((number, data[pos : pos + values[1]]))
        pos += values[1]
    return RawMessage(
        type=(data[0] >> 4) & 0x3,
        code=data[1],
        mid=int.from_bytes(data[2:4], "big"),
        token=data[4 : 4 + tkl],
        options=options,
        payload=payload,
    )


def raw_coap_request(
    port: int,
    code: int,
    path: str = "",
    payload: bytes = b"",
    *,
    host: str = "127.0.0.1",
    options: list[tuple[int, bytes]] | None = None,
    timeout: float = 5.0,
) -> RawMessage:
    """One CON request over a plain socket; retransmits every second; returns the answer.

    Handles a piggybacked answer and a separate one (empty ACK, then CON which
    is acknowledged). Raises TimeoutError when nothing matching came in time.
    """
    mid = int.from_bytes(os.urandom(2), "big")
    token = os.urandom(4)
    opts = [(11, segment.encode()) for segment in path.split("/") if segment]
    opts += options or []
    datagram = encode_message(0, code, mid, token, opts, payload)
    with socket.socket(_family(host), socket.SOCK_DGRAM) as s:
        return exchange(s, datagram, (host, port), timeout)


def exchange(
    s: socket.socket, datagram: bytes, address: tuple[str, int], timeout: float = 5.0
) -> RawMessage:
    """Send the CON request ``datagram`` from ``s``, again every second, until its answer
    (piggybacked, or separate and then acknowledged) comes; other datagrams are skipped.
    Raises TimeoutError when nothing matching came in time, ConnectionResetError on RST."""
    request = decode_message(datagram)
    deadline = time.monotonic() + timeout
    s.sendto(datagram, address)
    next_send = time.monotonic() + 1.0
    while True:
        now = time.monotonic()
        if now >= deadline:
            raise TimeoutError(f"no answer from {address[0]}:{address[1]} within {timeout} s")
        s.settimeout(max(0.01, min(deadline, next_send) - now))
        try:
            data, source = s.recvfrom(65535)
        except socket.timeout:
            if time.monotonic() >= next_send:
                s.sendto(datagram, address)  # lost, or in a full buffer: again
                next_send = time.monotonic() + 1.0
            continue
        try:
            answer = decode_message(data)
        except ValueError:
            continue
        if answer.type == 0:  # separate response (CON): acknowledge it
            s.sendto(encode_message(2, 0, answer.mid), source)
        if answer.token == request.token and answer.code != 0:
            return answer
        if answer.mid == request.mid and answer.type == 3:
            raise ConnectionResetError(f"{address[0]}:{address[1]} answered with RST")
