"""The libcoap-py command line: cert init, outbox add/list, inbox list, errors."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from libcoap_py.cli import main
from libcoap_py.service import OUTBOX_STATES
from libcoap_py.service.store import Exchange, Store


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str | Path) -> tuple[int, str, str]:
    status = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return status, out, err


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "cli.db"


# -- cert init ---------------------------------------------------------------------


def test_cert_init_makes_the_files_and_refuses_to_overwrite(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("cryptography")
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    target = tmp_path / "pki"
    status, out, _ = run_cli(capsys, "cert", "init", target, "--device-id", "sensor-7")
    assert status == 0
    names = ("ca.crt", "ca.key", "server.crt", "server.key", "cert.crt", "key.pem")
    for name in names:
        assert (target / name).is_file()
        assert str(target / name) in out
    device = x509.load_pem_x509_certificate((target / "cert.crt").read_bytes())
    cn = device.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
    assert cn == "sensor-7"
    key_before = (target / "key.pem").read_bytes()

    status, out, err = run_cli(capsys, "cert", "init", target)
    assert status != 0
    assert "already exists" in err and "--force" in err
    assert (target / "key.pem").read_bytes() == key_before

    status, _, _ = run_cli(capsys, "cert", "init", target, "--force")
    assert status == 0
    assert (target / "key.pem").read_bytes() != key_before


def test_cert_init_refuses_a_bad_device_id(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status, _, err = run_cli(capsys, "cert", "init", tmp_path / "x", "--device-id", "d" * 65)
    assert status != 0 and "--device-id" in err
    assert not (tmp_path / "x").exists()


# -- outbox --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fmt", "words", "payload"),
    [
        ("text", ["Hello", "this", "is", "a", "downstream", "message"],
         b"Hello this is a downstream message"),
        ("hex", ["00ff", "10", "20"], b"\x00\xff\x10\x20"),
        ("base64", ["aGVsbG8g", "d29ybGQ="], b"hello world"),
    ],
)  # fmt: skip
def test_outbox_add_formats(
    db: Path, capsys: pytest.CaptureFixture[str], fmt: str, words: list[str], payload: bytes
) -> None:
    status, out, _ = run_cli(
        capsys, "outbox", "add", "--db", db, "--device", "device-1", "--format", fmt, *words
    )
    assert status == 0
    assert f"({len(payload)} bytes)" in out
    with Store(db, create=False) as store:
        [message] = store.list_outbox()
    assert (message.device, message.payload, message.format, message.state) == (
        "device-1",
        payload,
        fmt,
        "pending",
    )


def test_outbox_add_defaults_to_text(db: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status, _, _ = run_cli(capsys, "outbox", "add", "--db", db, "--device", "d", "hi", "there")
    assert status == 0
    with Store(db, create=False) as store:
        assert store.take_downstream("d") == b"hi there"


@pytest.mark.parametrize(("fmt", "word"), [("hex", "0g"), ("hex", "abc"), ("base64", "a!b=")])
def test_outbox_add_refuses_bad_encodings(
    db: Path, capsys: pytest.CaptureFixture[str], fmt: str, word: str
) -> None:
    status, _, err = run_cli(
        capsys, "outbox", "add", "--db", db, "--device", "d", "--format", fmt, word
    )
    assert status != 0
    assert f"not valid {fmt}" in err
    assert "Traceback" not in err
    assert not db.exists()


def test_outbox_list_shows_each_format_state_and_attempts(
    db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with Store(db) as store:
        store.add_outbox("device-1", b"plain words", "text")
        store.add_outbox("device-1", b"\x01\x02", "hex")
        store.add_outbox("device-2", b"hello", "base64")
        store.add_outbox("device-2", b"acknowledged", "text")
        store.take_downstream("device-1")  # sent, one attempt
        # Taken by the service for an answer whose fate is not known yet: in flight.
        filed = store.file_exchange(Exchange("device-2", 1, b"d", "p", b"", None))
        assert filed.downstream is not None
        filed = store.file_exchange(Exchange("device-2", 2, b"d", "p", b"", None))
        assert filed.downstream is not None
        assert store.mark_outbox(filed.downstream.id, "delivered")
    status, out, _ = run_cli(capsys, "outbox", "list", "--db", db)
    assert status == 0
    lines = out.splitlines()
    assert lines[0].split() == [
        "ID", "CREATED", "(UTC)", "DEVICE", "STATE", "ATTEMPTS", "SENT", "(UTC)", "FORMAT",
        "PAYLOAD",
    ]  # fmt: skip
    rows = [line.split() for line in lines[1:]]
    # ID, CREATED, DEVICE, STATE, ATTEMPTS, SENT, FORMAT, PAYLOAD
    assert [(r[0], r[2], r[3], r[4], r[6], " ".join(r[7:])) for r in rows] == [
        ("1", "device-1", "sent", "1", "text", "plain words"),
        ("2", "device-1", "pending", "0", "hex", "0102"),
        ("3", "device-2", "in_flight", "1", "base64", "aGVsbG8="),
        ("4", "device-2", "delivered", "1", "text", "acknowledged"),
    ]
    assert rows[1][5] == rows[2][5] == "-", "never handed to the socket: no SENT time"
    assert rows[0][5] != "-" and rows[3][5] != "-"
    status, out, _ = run_cli(capsys, "outbox", "list", "--db", db, "--device", "device-2")
    assert status == 0 and len(out.splitlines()) == 3 and "device-1" not in out
    status, out, _ = run_cli(capsys, "outbox", "list", "--db", db, "--pending")
    assert status == 0 and [line.split()[0] for line in out.splitlines()[1:]] == ["2"]
    status, out, _ = run_cli(capsys, "outbox", "list", "--db", db, "--device", "ghost")
    assert status == 0 and "The outbox is empty." in out


def test_outbox_list_help_names_the_states(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["outbox", "list", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    for state in OUTBOX_STATES:
        assert state in out
    assert "ATTEMPTS" in out


# -- inbox ---------------------------------------------------------------------------


def test_inbox_list_hex_by_default_and_decoded(
    db: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with Store(db) as store:
        store.file_message("device-1", "path-for-data", b"this is the payload", 0)
        store.file_message("device-2", "x/y", b"\x00\xfe", None)
    status, out, _ = run_cli(capsys, "inbox", "list", "--db", db)
    assert status == 0
    assert b"this is the payload".hex() in out
    assert "/path-for-data" in out and "/x/y" in out
    assert "00fe" in out

    status, out, _ = run_cli(capsys, "inbox", "list", "--db", db, "--decode")
    assert status == 0
    assert "this is the payload" in out
    assert "\\x00" in out  # not printable: escaped, never raw

    status, out, _ = run_cli(capsys, "inbox", "list", "--db", db, "--device", "device-2")
    assert status == 0 and "device-1" not in out and "device-2" in out

    status, out, _ = run_cli(capsys, "inbox", "list", "--db", db, "--device", "ghost")
    assert status == 0 and "ghost" in out and "not seen" in out


def test_database_from_environment(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    db = tmp_path / "env.db"
    monkeypatch.setenv("LIBCOAP_PY_DB", str(db))
    status, _, _ = run_cli(capsys, "outbox", "add", "--device", "d", "hello")
    assert status == 0 and db.is_file()
    status, out, _ = run_cli(capsys, "outbox", "list")
    assert status == 0 and "hello" in out


def test_default_database_is_in_the_current_folder(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("LIBCOAP_PY_DB", raising=False)
    monkeypatch.chdir(tmp_path)
    status, _, _ = run_cli(capsys, "outbox", "add", "--device", "d", "hello")
    assert status == 0 and (tmp_path / "libcoap-py.db").is_file()


def test_listing_a_missing_database_is_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for command in (["inbox", "list"], ["outbox", "list"]):
        status, _, err = run_cli(capsys, *command, "--db", tmp_path / "none.db")
        assert status != 0
        assert "no database at" in err
    assert not (tmp_path / "none.db").exists()


# -- serve's argument errors (no network needed) ---------------------------------------


def test_serve_reports_missing_certificate_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status, _, err = run_cli(capsys, "serve", "--db", tmp_path / "s.db", "--certs", tmp_path)
    assert status != 0
    assert f"no such file: {tmp_path / 'server.crt'}" in err


def test_serve_needs_credentials_for_coaps(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status, _, err = run_cli(capsys, "serve", "--db", tmp_path / "s.db")
    assert status != 0 and "coaps:// needs credentials" in err
    status, _, err = run_cli(capsys, "serve", "--db", tmp_path / "s.db", "--cert", "x")
    assert status != 0 and "--key" in err and "--ca" in err
    status, _, err = run_cli(capsys, "serve", "--db", tmp_path / "s.db", "--psk-identity", "a")
    assert status != 0 and "go together" in err


def test_serve_reports_a_bad_psk_keys_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    keys = tmp_path / "keys"
    keys.write_text("# comment\nonly-an-identity\n")
    status, _, err = run_cli(capsys, "serve", "--db", tmp_path / "s.db", "--psk-keys", keys)
    assert status != 0 and f"{keys}:2" in err
    status, _, err = run_cli(
        capsys, "serve", "--db", tmp_path / "s.db", "--psk-keys", tmp_path / "absent"
    )
    assert status != 0 and "cannot read PSK keys file" in err


# -- as a program ------------------------------------------------------------------------


@pytest.mark.parametrize("module", ["libcoap_py", "libcoap_py.cli"])
def test_runs_as_a_module_without_tracebacks(tmp_path: Path, module: str) -> None:
    out = subprocess.run(
        [sys.executable, "-I", "-m", module, "outbox", "add", "--db", str(tmp_path / "m.db"),
         "--device", "d", "--format", "hex", "xyz"],
        capture_output=True,
        text=True,
        timeout=30,
    )  # fmt: skip
    assert out.returncode == 1
    assert out.stderr.startswith("libcoap-py: error: not valid hex")
    assert "Traceback" not in out.stderr
    ok = subprocess.run(
        [sys.executable, "-I", "-m", module, "--version"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert ok.returncode == 0 and ok.stdout.startswith("libcoap-py ")


def test_console_script(tmp_path: Path) -> None:
    script = shutil.which("libcoap-py")
    if script is None:
        pytest.skip("the libcoap-py console script is not installed on PATH")
    out = subprocess.run(
        [script, "outbox", "add", "--db", str(tmp_path / "c.db"), "--device", "d", "hi"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert out.returncode == 0, out.stderr
    assert "Queued message 1 for d (2 bytes)" in out.stdout
