"""The data service's SQLite store: inbox, outbox, exactly-once delivery, persistence."""

from __future__ import annotations

import datetime
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from libcoap_py.service.store import Store


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "service.db"


def test_inbox_files_and_lists_messages(db: Path) -> None:
    with Store(db) as store:
        first = store.file_message("device-1", "path-for-data", b"\x00hello\xff", 0)
        second = store.file_message("device-2", "a/b", b"", None)
        store.file_message("device-1", "other", b"x", 42)
        assert second > first
        everything = store.list_inbox()
        mine = store.list_inbox("device-1")
    assert [m.device for m in everything] == ["device-1", "device-2", "device-1"]
    assert [(m.path, m.payload, m.content_format) for m in mine] == [
        ("path-for-data", b"\x00hello\xff", 0),
        ("other", b"x", 42),
    ]
    assert everything[1].content_format is None and everything[1].payload == b""
    received = datetime.datetime.fromisoformat(mine[0].received_at)
    assert received.utcoffset() == datetime.timedelta(0)


def test_take_downstream_is_oldest_first_and_exactly_once(db: Path) -> None:
    with Store(db) as store:
        store.add_outbox("device-1", b"first", "text")
        store.add_outbox("device-2", b"for someone else", "text")
        store.add_outbox("device-1", b"\x01\x02", "hex")
        assert store.take_downstream("device-1") == b"first"
        assert store.take_downstream("device-1") == b"\x01\x02"
        assert store.take_downstream("device-1") is None
        assert store.take_downstream("nobody") is None
        outbox = store.list_outbox()
    assert [(m.device, m.state) for m in outbox] == [
        ("device-1", "sent"),
        ("device-2", "pending"),
        ("device-1", "sent"),
    ]
    assert outbox[0].sent_at is not None and outbox[1].sent_at is None
    assert outbox[2].format == "hex"


def test_take_message_reports_format_and_id(db: Path) -> None:
    with Store(db) as store:
        message_id = store.add_outbox("d", b"aGk=", "base64")
        message = store.take_downstream_message("d")
    assert message is not None
    assert (message.id, message.payload, message.format, message.state) == (
        message_id,
        b"aGk=",
        "base64",
        "sent",
    )


def test_unknown_format_is_refused(db: Path) -> None:
    with Store(db) as store, pytest.raises(ValueError, match="format"):
        store.add_outbox("d", b"x", "json")


def test_concurrent_takers_deliver_each_message_once(db: Path) -> None:
    """Threads with their own connections race for the same device's outbox."""
    count = 60
    with Store(db) as store:
        for i in range(count):
            store.add_outbox("device-1", f"m{i}".encode(), "text")
    taken: list[bytes] = []
    lock = threading.Lock()
    errors: list[BaseException] = []

    def taker() -> None:
        try:
            with Store(db) as mine:
                while (payload := mine.take_downstream("device-1")) is not None:
                    with lock:
                        taken.append(payload)
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=taker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert not errors
    assert sorted(taken) == sorted(f"m{i}".encode() for i in range(count))


def test_another_process_sees_and_takes_the_same_messages(db: Path) -> None:
    """WAL mode: a second process reads what this one wrote, and takes exactly once."""
    with Store(db) as store:
        store.add_outbox("device-1", b"one", "text")
        store.add_outbox("device-1", b"two", "text")
        code = (
            "import sys; from libcoap_py.service.store import Store; "
            "s = Store(sys.argv[1], create=False); "
            "print(s.take_downstream('device-1').decode()); "
            "s.file_message('device-1', 'p', b'from child', None)"
        )
        out = subprocess.run(
            [sys.executable, "-I", "-c", code, str(db)],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert out.returncode == 0, out.stderr
        assert out.stdout.strip() == "one"
        assert store.take_downstream("device-1") == b"two"
        assert [m.payload for m in store.list_inbox()] == [b"from child"]


def test_state_survives_reopening(db: Path) -> None:
    with Store(db) as store:
        store.file_message("device-1", "p", b"kept", 0)
        store.add_outbox("device-1", b"sent one", "text")
        store.add_outbox("device-1", b"still pending", "text")
        assert store.take_downstream("device-1") == b"sent one"
    with Store(db, create=False) as store:
        assert [m.payload for m in store.list_inbox()] == [b"kept"]
        assert [(m.payload, m.state) for m in store.list_outbox()] == [
            (b"sent one", "sent"),
            (b"still pending", "pending"),
        ]
        assert store.take_downstream("device-1") == b"still pending"


def test_wal_mode_and_missing_file(db: Path, tmp_path: Path) -> None:
    with Store(db):
        pass
    with sqlite3.connect(db) as raw:
        assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    with pytest.raises(FileNotFoundError, match="no database"):
        Store(tmp_path / "absent.db", create=False)
    assert not (tmp_path / "absent.db").exists()


def test_devices_lists_inbox_and_outbox_names(db: Path) -> None:
    with Store(db) as store:
        store.file_message("b", "p", b"", None)
        store.add_outbox("a", b"x", "text")
        store.add_outbox("b", b"y", "text")
        assert store.devices() == ["a", "b"]
