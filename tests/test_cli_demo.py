"""``libcoap-py demo``: the C sample's port against the local data service, end to end."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

SAMPLE = Path(__file__).resolve().parent.parent / "examples" / "dtls_sample.py"


def run_demo(*args: str | Path) -> subprocess.CompletedProcess[str]:
    """``libcoap-py demo`` in its own process group, so that a hang takes the
    service it started down with it."""
    argv = [sys.executable, "-I", "-m", "libcoap_py.cli", "demo", "--timeout", "5", *map(str, args)]
    proc = subprocess.Popen(
        argv,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=40)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate(timeout=10)
        pytest.fail(f"the demo did not finish within 40 s:\n{out}\n{err}")
    return subprocess.CompletedProcess(argv, proc.returncode, out, err)


@pytest.mark.needs_dtls
@pytest.mark.skipif(not SAMPLE.is_file(), reason="needs a source checkout (examples/)")
def test_demo_runs_end_to_end_and_reuses_its_certificates(tmp_path: Path) -> None:
    pytest.importorskip("cryptography")
    workdir = tmp_path / "demo"
    out = run_demo("--dir", workdir)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "Made certificates" in out.stdout
    for expected in (
        "DTLS connected",
        "Response 2.04 Changed",
        "Downstream message: Hello this is a downstream message",
        "device-1  /path-for-data",  # the inbox listing
        "this is the payload",
        "The service stopped (exit status 0)",
        "Demo passed",
    ):
        assert expected in out.stdout, out.stdout
    key = (workdir / "key.pem").read_bytes()

    again = run_demo("--dir", workdir)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "Using the certificates" in again.stdout
    assert (workdir / "key.pem").read_bytes() == key
    assert again.stdout.count("this is the payload") == out.stdout.count("this is the payload")


@pytest.mark.needs_dtls
@pytest.mark.skipif(not SAMPLE.is_file(), reason="needs a source checkout (examples/)")
def test_demo_runs_the_async_sample(tmp_path: Path) -> None:
    pytest.importorskip("cryptography")
    out = run_demo("--dir", tmp_path / "demo", "--sample", SAMPLE.with_name("dtls_sample_async.py"))
    assert out.returncode == 0, out.stdout + out.stderr
    for expected in (
        "DTLS connected",
        "Response 2.04 Changed",
        "Downstream message: Hello this is a downstream message",
        "Demo passed",
    ):
        assert expected in out.stdout, out.stdout


@pytest.mark.needs_dtls
def test_demo_fails_when_the_sample_shows_no_downstream_message(tmp_path: Path) -> None:
    pytest.importorskip("cryptography")
    fake = tmp_path / "fake_sample.py"
    fake.write_text(
        textwrap.dedent(
            """
            print("DTLS connected")
            print("Response 2.04 Changed")
            print("No downstream message")
            """
        )
    )
    out = run_demo("--dir", tmp_path / "demo", "--sample", fake)
    assert out.returncode != 0
    assert "Demo FAILED" in out.stderr
    assert "Downstream message" in out.stderr
    assert "The service stopped (exit status 0)" in out.stdout
    assert "Traceback" not in out.stderr


def test_demo_reports_a_missing_sample(tmp_path: Path) -> None:
    out = run_demo("--dir", tmp_path / "demo", "--sample", tmp_path / "absent.py")
    assert out.returncode != 0
    assert "no such file" in out.stderr
    assert "Traceback" not in out.stderr
