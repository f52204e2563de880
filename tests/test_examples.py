"""The examples run end to end against a local coap-server-openssl.

The examples POST, as the C sample does. libcoap 4.2's coap-server answers
4.05 to every POST, so on 4.2 their peer is the project's data service
(``libcoap-py serve``), which files the POST and answers 2.04.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from helpers.build import LIBCOAP_42
from helpers.certs import CertFiles

import libcoap_py as coap

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"

pytestmark = [
    pytest.mark.skipif(not EXAMPLES.is_dir(), reason="needs a source checkout"),
    pytest.mark.needs_dtls,  # the examples are the DTLS sample and its variants
]


@dataclass(frozen=True)
class PostPeer:
    """A coaps:// server that takes the examples' POST (certificates from ``certs``)."""

    host: str
    coaps_port: int
    answer: str  # the response to a POST, as the examples print it: "2.01 Created"


@pytest.fixture
def post_peer(
    request: pytest.FixtureRequest, certs: CertFiles, tmp_path: Path
) -> Iterator[PostPeer]:
    if not LIBCOAP_42:
        server = request.getfixturevalue("coap_server")
        yield PostPeer(server.host, server.coaps_port, "2.01 Created")
        return
    from helpers.service import start_service

    service = start_service(tmp_path / "service.db", certs)
    try:
        yield PostPeer("127.0.0.1", service.port(), "2.04 Changed")
    finally:
        service.stop()


def run_example(name: str, *args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(EXAMPLES / name), *map(str, args)],
        capture_output=True,
        text=True,
        timeout=60,
    )


def sample_args(server: PostPeer, certs: CertFiles, path: str) -> list[str | Path]:
    return [
        "--host", server.host, "--port", str(server.coaps_port), "--path", path,
        "--cert", certs.cert, "--key", certs.key, "--ca", certs.cert,
    ]  # fmt: skip


def test_dtls_sample_posts_over_certificate_dtls(
    post_peer: PostPeer, certs: CertFiles, unique_path: str
) -> None:
    out = run_example("dtls_sample.py", *sample_args(post_peer, certs, unique_path))
    assert out.returncode == 0, out.stdout + out.stderr
    assert "DTLS connected" in out.stdout
    assert f"Response {post_peer.answer}" in out.stdout


def test_async_dtls_sample_posts_over_certificate_dtls(
    post_peer: PostPeer, certs: CertFiles, unique_path: str
) -> None:
    out = run_example("dtls_sample_async.py", *sample_args(post_peer, certs, unique_path))
    assert out.returncode == 0, out.stdout + out.stderr
    assert "DTLS connected" in out.stdout
    assert f"Response {post_peer.answer}" in out.stdout


def test_async_dtls_sample_wrong_ca_is_a_tls_failure(post_peer: PostPeer, certs: CertFiles) -> None:
    args = sample_args(post_peer, certs, "x")
    args[args.index("--ca") + 1] = certs.other_ca
    args += ["--timeout", "10"]
    out = run_example("dtls_sample_async.py", *args)
    assert out.returncode == 7, out.stdout + out.stderr
    assert "Traceback" not in out.stderr


def test_dtls_sample_reports_a_missing_certificate(
    post_peer: PostPeer, certs: CertFiles, tmp_path: Path
) -> None:
    args = sample_args(post_peer, certs, "x")
    missing = tmp_path / "nope.crt"
    args[args.index("--cert") + 1] = missing
    out = run_example("dtls_sample.py", *args)
    assert out.returncode == 4
    assert str(missing) in out.stdout + out.stderr
    assert "Traceback" not in out.stderr


def test_dtls_sample_wrong_ca_is_a_tls_failure(post_peer: PostPeer, certs: CertFiles) -> None:
    args = sample_args(post_peer, certs, "x")
    args[args.index("--ca") + 1] = certs.other_ca
    out = run_example("dtls_sample.py", *args)
    assert out.returncode == 7
    assert "TLS_FAILED" in out.stdout


def test_span_client(post_peer: PostPeer, certs: CertFiles, unique_path: str) -> None:
    out = run_example(
        "span_client.py", *sample_args(post_peer, certs, unique_path), "--payload", "hi there"
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert f"Response {post_peer.answer}" in out.stdout


def test_async_server_example() -> None:
    """examples/async_server.py serves its resources; a blocking client and the C
    coap-client get the plain, the awaited and the observable ones."""
    proc = subprocess.Popen(
        [sys.executable, str(EXAMPLES / "async_server.py"), "--port", "0", "--psk", "k3y"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        ready: list[str] = []
        stdout = proc.stdout
        reader = threading.Thread(target=lambda: ready.append(stdout.readline()))
        reader.start()
        reader.join(20)
        assert ready and ready[0].startswith("listening on coap://"), ready
        plain, secure = ready[0].split()[2], ready[0].split()[4]
        with coap.Context() as ctx:
            session = ctx.client_session(plain)
            assert session.request("GET", "hello", timeout=5).payload == b"hello from asyncio"
            reading = session.request("GET", "reading", timeout=5)
            assert reading.payload == b"21.5 C"
            assert reading.type is coap.MessageType.CON  # separate: it awaited
            assert session.request("POST", "echo", b"abc", timeout=5).payload == b"abc"
            observed = session.observe("counter", timeout=10)
            values = [int(n.payload) for _, n in zip(range(2), observed)]
            observed.cancel()
            assert values[1] == values[0] + 1
            psk = coap.PSK(identity=b"anyone", key=b"k3y")
            hello = ctx.client_session(secure, psk).request("GET", "hello", timeout=10)
            assert hello.code is coap.Code.CONTENT
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    assert "stopped" in out
    assert "Traceback" not in err
