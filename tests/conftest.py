"""Fixtures and hooks: real CoAP peers on loopback ports, test certificates, small
UDP peers, the binding and aiocoap as servers in threads, the hang guard.

Nothing here mocks libcoap: the peers are libcoap's own ``coap-server`` of the
build's TLS backend (``helpers.ctools``), plus tiny Python UDP peers for
behaviours a real server will not produce on demand (silence, RST to
everything). What the fixtures are made of, and what the tests share besides
them, is in the ``helpers`` package (its docstring has the map).
"""

from __future__ import annotations

import signal
import threading
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from helpers.aio import AioServer
from helpers.build import DTLS, NO_DTLS_REASON, require_dtls
from helpers.certs import CertFiles, ChainFiles, make_cert_files, make_chain_files
from helpers.ctools import (
    COAP_SERVER,
    NO_SERVER_REASON,
    CoapServer,
    start_coap_server,
    stop_process,
)
from helpers.hang import TEST_DEADLINE_S, HangGuard
from helpers.net import IPV6_AVAILABLE, unused_udp_port
from helpers.peers import ServerThread, UdpPeer


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if DTLS:
        return
    skip = pytest.mark.skip(reason=NO_DTLS_REASON)
    for item in items:
        if item.get_closest_marker("needs_dtls") is not None:
            item.add_marker(skip)


# --------------------------------------------------------------------------
# hang guard


@pytest.fixture(autouse=True)
def _deadline() -> Iterator[HangGuard | None]:
    """Fail a test that hangs, so a binding bug cannot stall the whole run.

    Yields the guard (None where there is none: not in the main thread, no SIGALRM);
    a test that needs SIGALRM for itself goes through it (``hang_guard``)."""
    if threading.current_thread() is not threading.main_thread() or not hasattr(signal, "SIGALRM"):
        yield None
        return
    guard = HangGuard(TEST_DEADLINE_S)
    guard.install()
    try:
        yield guard
    finally:
        guard.uninstall()


@pytest.fixture
def hang_guard(_deadline: HangGuard | None) -> HangGuard:
    """The running test's hang guard, for tests with alarms of their own (``alarms()``)."""
    if _deadline is None:
        pytest.skip("no hang guard here (SIGALRM in the main thread)")
    return _deadline


# --------------------------------------------------------------------------
# certificates


@pytest.fixture(scope="session")
def certs(tmp_path_factory: pytest.TempPathFactory) -> CertFiles:
    """A test PKI from ``certs.init_dir`` plus an unrelated CA and device leaf."""
    pytest.importorskip("cryptography", reason="test certificates need the 'cryptography' package")
    return make_cert_files(tmp_path_factory.mktemp("certs"))


@pytest.fixture(scope="session")
def chain_certs(tmp_path_factory: pytest.TempPathFactory) -> ChainFiles:
    """A two-level PKI: server and device leaves are issued by an intermediate CA."""
    pytest.importorskip("cryptography", reason="test certificates need the 'cryptography' package")
    return make_chain_files(tmp_path_factory.mktemp("chain-certs"))


# --------------------------------------------------------------------------
# real servers


@pytest.fixture(scope="session")
def coap_server(certs: CertFiles, tmp_path_factory: pytest.TempPathFactory) -> Iterator[CoapServer]:
    """coap-server on 127.0.0.1: coap on P, coaps (PSK and PKI) on P+1."""
    if COAP_SERVER is None:
        pytest.skip(NO_SERVER_REASON)
    server = start_coap_server(
        "127.0.0.1",
        tmp_path_factory.mktemp("server-logs"),
        certs.server_cert,
        certs.server_key,
        certs.ca,
    )
    try:
        yield server
    finally:
        stop_process(server.process)


@pytest.fixture(scope="session")
def coap_server_v6(
    certs: CertFiles, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[CoapServer]:
    """The same server on [::1]; skipped where IPv6 loopback is unavailable."""
    if COAP_SERVER is None:
        pytest.skip(NO_SERVER_REASON)
    if not IPV6_AVAILABLE:
        pytest.skip("IPv6 loopback ::1 is not available on this machine")
    server = start_coap_server(
        "::1",
        tmp_path_factory.mktemp("server-logs-v6"),
        certs.server_cert,
        certs.server_key,
        certs.ca,
    )
    try:
        yield server
    finally:
        stop_process(server.process)


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
    server = start_coap_server(
        "127.0.0.1",
        tmp_path_factory.mktemp("chain-server-logs"),
        chain_certs.server_chain,
        chain_certs.server_key,
        chain_certs.cas,
    )
    try:
        yield server
    finally:
        stop_process(server.process)


# --------------------------------------------------------------------------
# Python UDP peers


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
    return unused_udp_port()


# --------------------------------------------------------------------------
# small helpers


@pytest.fixture
def unique_path() -> str:
    """A resource path nobody used before in this run: ``test/<hex>``."""
    return f"test/{uuid.uuid4().hex[:16]}"


# --------------------------------------------------------------------------
# servers in threads of the test process


@pytest.fixture
def serve() -> Iterator[Callable[..., Any]]:
    """Start ServerThreads (``helpers.peers``): ``serve(setup) -> setup's result``; all
    stop at teardown.

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


@pytest.fixture
def aiocoap_server() -> Iterator[Callable[..., AioServer]]:
    """Start aiocoap servers in threads (``helpers.aio``): ``aiocoap_server(site, port=0)
    -> AioServer``, bound and serving; all stop at teardown (``stop()`` before is fine).

    Skips the test where aiocoap is not installed.
    """
    pytest.importorskip("aiocoap", reason="aiocoap is not installed")
    started: list[AioServer] = []

    def start(site: Any, port: int = 0) -> AioServer:
        server = AioServer(site, port)
        started.append(server)
        return server.start()

    yield start
    errors = []
    for server in started:
        try:
            server.stop()
        except BaseException as exc:
            errors.append(exc)
    if errors:
        raise errors[0]
