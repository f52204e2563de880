"""The data service's schema version: the upgrade of files earlier releases wrote
(``tests/fixtures/service-v1.sqlite3``: no version, outbox states pending/sent;
``tests/fixtures/service-v2.sqlite3``: version 2, exchanges in a table of their
own), a fresh file, a file from a newer release, and processes upgrading at once."""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from helpers.certs import CertFiles
from helpers.service import DEVICE, start_service

import libcoap_py as coap
from libcoap_py.cli import main
from libcoap_py.service import OUTBOX_STATES, SCHEMA_VERSION, Store, etag_of
from libcoap_py.service.store import Exchange

FIXTURE = Path(__file__).parent / "fixtures" / "service-v1.sqlite3"
FIXTURE_V2 = Path(__file__).parent / "fixtures" / "service-v2.sqlite3"
#: What the fixture holds (tests/fixtures/README.md).
V1_INBOX = [
    (1, "device-1", "path-for-data", b"hello", 0),
    (2, "device-2", "t", b"\x00\x01", 42),
]
V1_OUTBOX = [
    (1, "device-1", b"first", "text", "sent"),
    (2, "device-1", b"\xff\x00", "hex", "pending"),
    (3, "device-2", b"later", "base64", "pending"),
]
TIMEOUT_S = 30.0


@pytest.fixture
def v1(tmp_path: Path) -> Path:
    """A copy of the previous release's file (the fixture itself is never written)."""
    copy = tmp_path / "v1.sqlite3"
    shutil.copyfile(FIXTURE, copy)
    return copy


def user_version(path: Path) -> int:
    with sqlite3.connect(path) as db:
        return int(db.execute("PRAGMA user_version").fetchone()[0])


def test_the_fixture_is_the_previous_release(v1: Path) -> None:
    assert user_version(v1) == 0
    with sqlite3.connect(v1) as db:
        tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        rows = db.execute("SELECT id, state FROM outbox ORDER BY id").fetchall()
    assert "exchanges" not in tables and {"inbox", "outbox"} <= tables
    assert rows == [(1, "sent"), (2, "pending"), (3, "pending")]


def test_upgrade_keeps_rows_ids_and_states(v1: Path) -> None:
    with sqlite3.connect(v1) as db:
        sent_at = db.execute("SELECT sent_at FROM outbox WHERE id = 1").fetchone()[0]
        created = [r[0] for r in db.execute("SELECT created_at FROM outbox ORDER BY id")]
    with Store(v1, create=False) as store:
        assert store.schema_version == SCHEMA_VERSION == 3
        assert store.integrity_check() == "ok"
        inbox = store.list_inbox()
        outbox = store.list_outbox()
    assert [(m.id, m.device, m.path, m.payload, m.content_format) for m in inbox] == V1_INBOX
    assert [(m.id, m.device, m.payload, m.format, m.state) for m in outbox] == V1_OUTBOX
    assert [m.created_at for m in outbox] == created
    # A message sent before the upgrade counts one attempt; none was acknowledged then.
    assert [(m.attempts, m.sent_at, m.delivered_at) for m in outbox] == [
        (1, sent_at, None),
        (0, None, None),
        (0, None, None),
    ]
    assert user_version(v1) == SCHEMA_VERSION
    with sqlite3.connect(v1) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        indexes = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='index'")}
    assert "exchanges" not in tables and "outbox_v0" not in tables
    assert {"inbox_exchange", "outbox_pending"} <= indexes and "inbox_device" not in indexes


def test_upgraded_file_takes_new_rows_after_the_old_ones(v1: Path) -> None:
    with Store(v1) as store:
        assert store.add_outbox("device-3", b"new", "text") == 4
        assert store.file_message("device-3", "p", b"new", None) == 3
        # The new states and the exchanges work on the upgraded file.
        filed = store.file_exchange(Exchange("device-1", 1, b"digest", "p", b"up", None))
        assert filed.downstream is not None and filed.downstream.id == 2
        assert filed.inbox_id == 4 and not filed.repeated
        assert store.mark_outbox(2, "delivered")
        again = store.file_exchange(Exchange("device-1", 1, b"digest", "p", b"up", None))
        assert (again.inbox_id, again.repeated) == (4, True)
        assert store.take_downstream_message("device-2") is not None
        assert [(m.id, m.state) for m in store.list_outbox()] == [
            (1, "sent"),
            (2, "delivered"),
            (3, "sent"),
            (4, "pending"),
        ]
        assert {m.state for m in store.list_outbox()} <= set(OUTBOX_STATES)
    # Opening it again changes nothing.
    with Store(v1) as store:
        assert store.schema_version == SCHEMA_VERSION
        assert len(store.list_outbox()) == 4 and len(store.list_inbox()) == 4


@pytest.mark.needs_dtls
def test_the_service_serves_on_an_upgraded_file(
    v1: Path, certs: CertFiles, capsys: pytest.CaptureFixture[str]
) -> None:
    service = start_service(v1, certs)
    try:
        with coap.Context() as ctx:
            dtls = coap.PKI(certs.cert, certs.key, ca=certs.cert)
            session = ctx.client_session(service.uri(), dtls=dtls)
            response = session.request("POST", "after/upgrade", b"new reading", timeout=10)
    finally:
        assert service.stop() == 0, service.output()
    # device-1's oldest pending message from before the upgrade, with its old id.
    assert (response.code, response.payload) == (coap.Code.CHANGED, b"\xff\x00")
    assert response.etag == etag_of(2)
    assert response.content_format == coap.ContentFormat.OCTET_STREAM
    with Store(v1, create=False) as store:
        assert [(m.id, m.device, m.payload) for m in store.list_inbox()][-1] == (
            3,
            DEVICE,
            b"new reading",
        )
        states = [(m.id, m.state, m.attempts) for m in store.list_outbox()]
    assert states == [(1, "sent", 1), (2, "sent", 1), (3, "pending", 0)]
    # `outbox list` shows the states and attempts of the upgraded file.
    assert main(["outbox", "list", "--db", str(v1)]) == 0
    lines = capsys.readouterr().out.splitlines()
    header = lines[0].split()
    assert header[:7] == ["ID", "CREATED", "(UTC)", "DEVICE", "STATE", "ATTEMPTS", "SENT"]
    rows = [line.split() for line in lines[1:]]
    assert [(r[0], r[2], r[3], r[4]) for r in rows] == [
        ("1", "device-1", "sent", "1"),
        ("2", "device-1", "sent", "1"),
        ("3", "device-2", "pending", "0"),
    ]


def test_a_fresh_file_is_the_current_version(tmp_path: Path) -> None:
    path = tmp_path / "fresh.db"
    with Store(path) as store:
        assert store.schema_version == SCHEMA_VERSION
        assert store.integrity_check() == "ok"
    assert user_version(path) == SCHEMA_VERSION
    with sqlite3.connect(path) as db:
        # The outbox refuses states outside OUTBOX_STATES.
        with pytest.raises(sqlite3.IntegrityError):
            db.execute(
                "INSERT INTO outbox (device, payload, format, created_at, state)"
                " VALUES ('d', x'00', 'text', 'now', 'lost')"
            )
        for state in OUTBOX_STATES:
            db.execute(
                "INSERT INTO outbox (device, payload, format, created_at, state)"
                " VALUES ('d', x'00', 'text', 'now', ?)",
                (state,),
            )


def test_a_newer_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "newer.db"
    with Store(path) as store:
        store.add_outbox("d", b"written by a newer release", "text")
    with sqlite3.connect(path) as db:
        db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    with pytest.raises(ValueError, match=rf"schema version {SCHEMA_VERSION + 1}.*up to 3"):
        Store(path)
    with pytest.raises(ValueError, match=rf"schema version {SCHEMA_VERSION + 1}"):
        Store(path, create=False)
    assert user_version(path) == SCHEMA_VERSION + 1, "left as it was"
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT payload FROM outbox").fetchall() == [
            (b"written by a newer release",)
        ]


def test_the_cli_reports_a_newer_file_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "newer.db"
    Store(path).close()
    with sqlite3.connect(path) as db:
        db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    status = main(["outbox", "list", "--db", str(path)])
    assert status != 0
    assert f"schema version {SCHEMA_VERSION + 1}" in capsys.readouterr().err


#: A child process that opens the store when told to, and reports what it found (or
#: that opening failed with "database is locked").
_OPEN_ON_GO = """
import sqlite3, sys
from libcoap_py.service.store import Store
print("ready", flush=True)
sys.stdin.readline()
try:
    store = Store(sys.argv[1], create=False)
except sqlite3.OperationalError as error:
    print("failed:", error)
    sys.exit(0)
with store:
    outbox = [(m.id, m.state, m.attempts) for m in store.list_outbox()]
    print(store.schema_version, store.integrity_check(), outbox, len(store.list_inbox()))
"""
#: What each process that opened the upgraded file saw.
_UPGRADED = f"{SCHEMA_VERSION} ok [(1, 'sent', 1), (2, 'pending', 0), (3, 'pending', 0)] 2"


def open_at_once(path: Path, processes: int = 3) -> list[str]:
    """Start ``processes`` children that open ``path`` at the same moment (each imports
    the package first, then waits for the word); return what each printed."""
    children = [
        subprocess.Popen(
            [sys.executable, "-I", "-c", _OPEN_ON_GO, str(path)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(processes)
    ]
    try:
        for child in children:
            assert child.stdout is not None
            assert child.stdout.readline().strip() == "ready"
        for child in children:
            assert child.stdin is not None
            child.stdin.write("go\n")
            child.stdin.flush()
        results = [child.communicate(timeout=TIMEOUT_S) for child in children]
    finally:
        for child in children:
            if child.poll() is None:
                child.kill()
                child.wait()
    for child, (_, err) in zip(children, results):
        assert child.returncode == 0, err
    return [out.strip() for out, _ in results]


def test_the_upgrade_is_atomic_when_processes_open_the_file_at_once(tmp_path: Path) -> None:
    """No process sees a half-upgraded file, and the file ends as a whole current file. (A
    process may fail to open it at all: see the next test.)"""
    for attempt in range(3):
        path = tmp_path / f"race-{attempt}.sqlite3"
        shutil.copyfile(FIXTURE, path)
        seen = open_at_once(path)
        opened = [line for line in seen if not line.startswith("failed:")]
        assert opened, seen
        assert opened == [_UPGRADED] * len(opened), seen
        assert set(seen) - set(opened) <= {"failed: database is locked"}, seen
        with Store(path, create=False) as store:
            assert store.schema_version == SCHEMA_VERSION and store.integrity_check() == "ok"
            assert [(m.id, m.state) for m in store.list_outbox()] == [
                (1, "sent"),
                (2, "pending"),
                (3, "pending"),
            ]
            assert [m.id for m in store.list_inbox()] == [1, 2]


def test_processes_opening_the_old_file_at_once_all_get_the_upgraded_file(
    tmp_path: Path,
) -> None:
    for attempt in range(3):
        path = tmp_path / f"race-{attempt}.sqlite3"
        shutil.copyfile(FIXTURE, path)
        assert open_at_once(path) == [_UPGRADED] * 3


# -- version 2 (the previous release): exchanges move into the inbox ----------------------

#: What the version 2 fixture holds (tests/fixtures/README.md): inbox rows, and the
#: exchanges of the three the service filed (device, message ID, digest, outbox id).
V2_INBOX = [
    (1, "device-3", "plain", b"filed without an exchange", 0),
    (2, "device-1", "data", b"up one", 0),
    (3, "device-1", "data", b"up two", None),
    (4, "device-2", "t/x", b"\x00\x01", 42),
]
V2_EXCHANGES = {
    2: ("device-1", 100, bytes(range(16)), 1),
    3: ("device-1", 101, bytes(range(1, 17)), 2),
    4: ("device-2", 7, bytes(range(2, 18)), 3),
}


@pytest.fixture
def v2(tmp_path: Path) -> Path:
    copy = tmp_path / "v2.sqlite3"
    shutil.copyfile(FIXTURE_V2, copy)
    return copy


def test_the_v2_fixture_is_the_previous_release(v2: Path) -> None:
    assert user_version(v2) == 2
    with sqlite3.connect(v2) as db:
        tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        exchanges = db.execute("SELECT inbox_id, outbox_id FROM exchanges").fetchall()
    assert {"inbox", "outbox", "exchanges"} <= tables
    assert sorted(exchanges) == [(2, 1), (3, 2), (4, 3)]


def test_upgrade_from_v2_moves_the_exchanges_into_the_inbox(v2: Path) -> None:
    with sqlite3.connect(v2) as db:
        answered = dict(db.execute("SELECT inbox_id, answered_at FROM exchanges"))
    with Store(v2, create=False) as store:
        assert store.schema_version == SCHEMA_VERSION
        assert store.integrity_check() == "ok"
        inbox = store.list_inbox()
        states = [(m.id, m.state) for m in store.list_outbox()]
    assert [(m.id, m.device, m.path, m.payload, m.content_format) for m in inbox] == V2_INBOX
    assert states == [(1, "delivered"), (2, "in_flight"), (3, "sent"), (4, "pending")]
    with sqlite3.connect(v2) as db:
        tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        rows = db.execute(
            "SELECT id, device, mid, digest, outbox_id, answered_at FROM inbox ORDER BY id"
        ).fetchall()
    assert "exchanges" not in tables
    assert rows[0] == (1, "device-3", None, None, None, None)
    for inbox_id, device, mid, digest, outbox_id, answered_at in rows[1:]:
        assert (device, mid, digest, outbox_id) == V2_EXCHANGES[inbox_id]
        assert answered_at == answered[inbox_id]


def test_an_exchange_answered_before_the_v2_upgrade_is_recognised_after_it(v2: Path) -> None:
    # The fixture's exchanges were answered when it was made: past EXCHANGE_LIFETIME
    # now. Brought back within it, a retransmission is the same exchange.
    with sqlite3.connect(v2) as db:
        db.execute("UPDATE exchanges SET answered_at = strftime('%s', 'now')")
    with Store(v2) as store:
        device, mid, digest, outbox_id = V2_EXCHANGES[3]
        again = store.file_exchange(Exchange(device, mid, digest, "data", b"up two", None))
        assert (again.inbox_id, again.repeated) == (3, True)
        assert again.downstream is not None and again.downstream.id == outbox_id
        # Another digest under the same message ID is a new request.
        new = store.file_exchange(Exchange(device, mid, b"another", "data", b"new", None))
        assert (new.inbox_id, new.repeated) == (5, False)
        assert len(store.list_inbox()) == 5
