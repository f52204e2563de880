"""One owner per address: an endpoint on an address another socket holds raises OSError.

libcoap binds with SO_REUSEADDR, which for UDP lets any number of sockets share a
port (the newest gets the datagrams). The binding refuses that, for every transport,
and still lets a server restart at once (TCP connections in TIME_WAIT).
"""

from __future__ import annotations

import errno
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers.build import DTLS, NO_DTLS_REASON
from helpers.codec import raw_coap_request
from helpers.ctools import PSK_HINT, PSK_IDENTITY, PSK_KEY
from helpers.net import IPV6_AVAILABLE, uri_host
from helpers.peers import ServerThread
from helpers.waiting import wait_until

import libcoap_py as coap
from libcoap_py.cli.demo import ServiceProcess

TCP = coap.tcp_is_supported()
TLS = coap.tls_is_supported()
SCHEMES = [
    pytest.param("coap", id="udp"),
    pytest.param("coaps", id="dtls", marks=pytest.mark.skipif(not DTLS, reason=NO_DTLS_REASON)),
    pytest.param("coap+tcp", id="tcp", marks=pytest.mark.skipif(not TCP, reason="no TCP")),
    pytest.param("coaps+tcp", id="tls", marks=pytest.mark.skipif(not TLS, reason="no TLS")),
]
KIND = {
    "coap": socket.SOCK_DGRAM,
    "coaps": socket.SOCK_DGRAM,
    "coap+tcp": socket.SOCK_STREAM,
    "coaps+tcp": socket.SOCK_STREAM,
}
UNAUTHORIZED = 0x81  # what the data service answers a request without a device identity
START_TIMEOUT_S = 15.0


def _dtls(scheme: str) -> coap.PSK | None:
    if scheme.startswith("coaps"):
        return coap.PSK(hint=PSK_HINT, keys={PSK_IDENTITY: PSK_KEY})
    return None


def _assert_in_use(error: pytest.ExceptionInfo[OSError], host: str, port: int) -> None:
    assert error.value.errno == errno.EADDRINUSE, error.value
    text = str(error.value)
    assert host in text and f":{port}" in text and "in use" in text, text


def _client_get(uri: str, path: str, scheme: str) -> bytes:
    """One GET from a client Context of its own; the answer's payload."""
    dtls = coap.PSK(PSK_IDENTITY, PSK_KEY) if scheme.startswith("coaps") else None
    with coap.Context() as client:
        return client.client_session(uri, dtls=dtls).request("GET", path, timeout=10).payload


def _answering(name: bytes) -> Any:
    def setup(ctx: coap.Context) -> None:
        @ctx.resource("who")
        def who(request: coap.Request, response: coap.ServerResponse) -> None:
            response.payload = name

    return setup


@pytest.mark.parametrize("scheme", SCHEMES)
def test_second_context_on_the_same_address_is_refused(scheme: str) -> None:
    first_ports: list[int] = []

    def setup(ctx: coap.Context) -> None:
        _answering(b"first")(ctx)
        first_ports.append(ctx.add_endpoint(f"{scheme}://127.0.0.1:0", dtls=_dtls(scheme)).port)

    first = ServerThread(setup)
    first.start()
    try:
        port = first_ports[0]
        with coap.Context() as second:
            with pytest.raises(OSError) as refused:
                second.add_endpoint(f"{scheme}://127.0.0.1:{port}", dtls=_dtls(scheme))
            _assert_in_use(refused, "127.0.0.1", port)
            assert second.endpoints == []
        # The first server still has the address, and its traffic.
        assert _client_get(f"{scheme}://127.0.0.1:{port}", "who", scheme) == b"first"
        first.check()
    finally:
        first.stop()


def test_one_context_cannot_take_its_own_address_twice() -> None:
    with coap.Context() as ctx:
        endpoint = ctx.add_endpoint("coap://127.0.0.1:0")
        with pytest.raises(OSError) as refused:
            ctx.add_endpoint(endpoint.uri)
        _assert_in_use(refused, "127.0.0.1", endpoint.port)
        assert ctx.endpoints == [endpoint]


def test_ipv6_address_in_use_is_refused() -> None:
    if not IPV6_AVAILABLE:
        pytest.skip("IPv6 loopback ::1 is not available on this machine")
    with coap.Context() as first, coap.Context() as second:
        endpoint = first.add_endpoint("coap://[::1]:0")
        assert endpoint.host == "::1"
        with pytest.raises(OSError) as refused:
            second.add_endpoint(endpoint.uri)
        _assert_in_use(refused, "[::1]", endpoint.port)
        # The same port on IPv4 loopback is another address.
        assert second.add_endpoint(f"coap://127.0.0.1:{endpoint.port}").port == endpoint.port


@pytest.mark.parametrize("reuse", [False, True], ids=["plain", "SO_REUSEADDR"])
@pytest.mark.parametrize("scheme", SCHEMES)
def test_foreign_socket_on_the_port_is_refused(scheme: str, reuse: bool) -> None:
    with socket.socket(socket.AF_INET, KIND[scheme]) as holder:
        holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, int(reuse))
        holder.bind(("127.0.0.1", 0))
        if KIND[scheme] == socket.SOCK_STREAM:
            holder.listen()
        port = holder.getsockname()[1]
        with coap.Context() as ctx:
            with pytest.raises(OSError) as refused:
                ctx.add_endpoint(f"{scheme}://127.0.0.1:{port}", dtls=_dtls(scheme))
            _assert_in_use(refused, "127.0.0.1", port)


def test_port_zero_gets_a_port_of_its_own() -> None:
    # A free port as the kernel gives it to a socket without SO_REUSEADDR: none that
    # a SO_REUSEADDR socket (like libcoap's own) already holds.
    with coap.Context() as first, coap.Context() as second:
        a = first.add_endpoint("coap://127.0.0.1:0")
        b = second.add_endpoint("coap://127.0.0.1:0")
        assert a.port != b.port and 0 not in (a.port, b.port)
        for port in (a.port, b.port):
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
                with pytest.raises(OSError):
                    probe.bind(("127.0.0.1", port))  # really bound


def _tcp_states(port: int) -> list[str]:
    """The TCP states (hex, as /proc/net/tcp shows them) of sockets on local ``port``."""
    states = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if int(fields[1].rsplit(":", 1)[1], 16) == port:
                states.append(fields[3])
    return states


_TIME_WAIT = "06"


@pytest.mark.parametrize("scheme", [SCHEMES[0], SCHEMES[2]])
def test_restart_on_the_same_port_after_traffic(scheme: str) -> None:
    ports: list[int] = []

    def setup(name: bytes, port: int) -> Any:
        def run(ctx: coap.Context) -> None:
            _answering(name)(ctx)
            ports.append(ctx.add_endpoint(f"{scheme}://127.0.0.1:{port}").port)

        return run

    first = ServerThread(setup(b"first", 0))
    first.start()
    port = ports[0]
    uri = f"{scheme}://127.0.0.1:{port}"
    with coap.Context() as client:
        session = client.client_session(uri)
        try:
            assert session.request("GET", "who", timeout=10).payload == b"first"
        finally:
            first.stop()  # the server closes first: its side of the connection waits
        client.run_once(100)  # (TCP) see the server's FIN
    if scheme == "coap+tcp":
        assert wait_until(lambda: _TIME_WAIT in _tcp_states(port), 5.0), _tcp_states(port)
    second = ServerThread(setup(b"second", port))
    second.start()
    try:
        assert _client_get(uri, "who", scheme) == b"second"
    finally:
        second.stop()


# --------------------------------------------------------------------------
# libcoap-py serve


def _serve(db: Path, listen: str) -> list[str]:
    command = [sys.executable, "-I", "-m", "libcoap_py.cli", "serve"]
    return [*command, "--db", str(db), "--listen", listen]


@pytest.fixture
def first_service(tmp_path: Path) -> Iterator[tuple[ServiceProcess, int]]:
    process = ServiceProcess(_serve(tmp_path / "first.db", "coap://127.0.0.1:0"))
    try:
        (uri,) = process.wait_listening(START_TIMEOUT_S)
        yield process, int(uri.rsplit(":", 1)[1])
    finally:
        process.stop()


def test_second_serve_on_the_same_port_exits_with_a_message(
    first_service: tuple[ServiceProcess, int], tmp_path: Path
) -> None:
    process, port = first_service
    second = subprocess.run(
        _serve(tmp_path / "second.db", f"coap://127.0.0.1:{port}"),
        capture_output=True,
        text=True,
        timeout=30,
        stdin=subprocess.DEVNULL,
    )
    assert second.returncode != 0
    message = second.stderr + second.stdout
    assert f"127.0.0.1:{port}" in message and "in use" in message, message
    assert "listening on" not in message
    assert "Traceback" not in message
    # The first service still gets the devices' traffic (a stranger: 4.01).
    assert raw_coap_request(port, 2, "data", b"x").code == UNAUTHORIZED
    # Stopped, its port is free for the next one at once.
    assert process.stop() == 0
    restarted = ServiceProcess(_serve(tmp_path / "second.db", f"coap://127.0.0.1:{port}"))
    try:
        (uri,) = restarted.wait_listening(START_TIMEOUT_S)
        assert uri == f"coap://{uri_host('127.0.0.1')}:{port}"
        assert raw_coap_request(port, 2, "data", b"x").code == UNAUTHORIZED
    finally:
        assert restarted.stop() == 0
