"""The examples run end to end against a local coap-server-openssl."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from conftest import CertFiles, CoapServer

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"

pytestmark = pytest.mark.skipif(not EXAMPLES.is_dir(), reason="needs a source checkout")


def run_example(name: str, *args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(EXAMPLES / name), *map(str, args)],
        capture_output=True,
        text=True,
        timeout=60,
    )


def sample_args(server: CoapServer, certs: CertFiles, path: str) -> list[str | Path]:
    return [
        "--host", server.host, "--port", str(server.coaps_port), "--path", path,
        "--cert", certs.cert, "--key", certs.key, "--ca", certs.cert,
    ]  # fmt: skip


def test_dtls_sample_posts_over_certificate_dtls(
    coap_server: CoapServer, certs: CertFiles, unique_path: str
) -> None:
    out = run_example("dtls_sample.py", *sample_args(coap_server, certs, unique_path))
    assert out.returncode == 0, out.stdout + out.stderr
    assert "DTLS connected" in out.stdout
    assert "Response 2.01 Created" in out.stdout


def test_dtls_sample_reports_a_missing_certificate(
    coap_server: CoapServer, certs: CertFiles, tmp_path: Path
) -> None:
    args = sample_args(coap_server, certs, "x")
    missing = tmp_path / "nope.crt"
    args[args.index("--cert") + 1] = missing
    out = run_example("dtls_sample.py", *args)
    assert out.returncode == 4
    assert str(missing) in out.stdout + out.stderr
    assert "Traceback" not in out.stderr


def test_dtls_sample_wrong_ca_is_a_tls_failure(coap_server: CoapServer, certs: CertFiles) -> None:
    args = sample_args(coap_server, certs, "x")
    args[args.index("--ca") + 1] = certs.other_ca
    out = run_example("dtls_sample.py", *args)
    assert out.returncode == 7
    assert "TLS_FAILED" in out.stdout


def test_span_client(coap_server: CoapServer, certs: CertFiles, unique_path: str) -> None:
    out = run_example(
        "span_client.py", *sample_args(coap_server, certs, unique_path), "--payload", "hi there"
    )
    assert out.returncode == 0, out.stdout + out.stderr
    assert "Response 2.01" in out.stdout
