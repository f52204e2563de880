"""The data service's SQLite store: inbox, outbox, exactly-once delivery, persistence."""

from __future__ import annotations

import datetime
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from libcoap_py.service.store import OUTBOX_STATES, Exchange, Store


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
    # Each take counts an attempt; nothing is delivered without an ACK.
    assert [(m.attempts, m.delivered_at) for m in outbox] == [(1, None), (0, None), (1, None)]


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


# -- the service's writes: states, exchanges, transactions -------------------------------


def exchange(mid: int, payload: bytes = b"up", device: str = "device-1") -> Exchange:
    return Exchange(device, mid, b"digest-" + payload, "p", payload, None)


def test_outbox_states() -> None:
    assert OUTBOX_STATES == ("pending", "in_flight", "sent", "delivered")


def test_file_exchange_files_once_and_takes_in_flight(db: Path) -> None:
    with Store(db) as store:
        first_id = store.add_outbox("device-1", b"one", "text")
        store.add_outbox("device-1", b"two", "text")
        filed = store.file_exchange(exchange(1))
        assert not filed.repeated and filed.downstream is not None
        assert (filed.downstream.id, filed.downstream.state) == (first_id, "in_flight")
        assert filed.downstream.attempts == 1
        # The same exchange again: not filed again, the same message (another attempt).
        again = store.file_exchange(exchange(1))
        assert (again.inbox_id, again.repeated) == (filed.inbox_id, True)
        assert again.downstream is not None and again.downstream.id == first_id
        assert again.downstream.attempts == 2
        # Another payload under the same message ID is a new request.
        other = store.file_exchange(exchange(1, b"other"))
        assert not other.repeated and other.downstream is not None
        assert other.downstream.payload == b"two"
        # take_downstream=False files without taking.
        quiet = store.file_exchange(exchange(2), take_downstream=False)
        assert quiet.downstream is None
        assert [m.path for m in store.list_inbox()] == ["p", "p", "p"]
        assert [m.state for m in store.list_outbox()] == ["in_flight", "in_flight"]


def test_a_repeated_exchange_takes_its_message_again_after_a_requeue(db: Path) -> None:
    with Store(db) as store:
        store.add_outbox("device-1", b"one", "text")
        store.add_outbox("device-1", b"two", "text")
        first = store.file_exchange(exchange(5))
        assert store.requeue_in_flight() == 1
        assert [m.state for m in store.list_outbox()] == ["pending", "pending"]
        again = store.file_exchange(exchange(5))
        assert again.repeated and again.downstream is not None
        assert first.downstream is not None and again.downstream.id == first.downstream.id
        assert [(m.state, m.attempts) for m in store.list_outbox()] == [
            ("in_flight", 2),
            ("pending", 0),
        ]
        assert store.requeue_in_flight() == 1 and store.requeue_in_flight() == 0


def test_mark_outbox_moves_only_in_flight_messages(db: Path) -> None:
    with Store(db) as store:
        ids = [store.add_outbox("device-1", f"m{i}".encode(), "text") for i in range(3)]
        for mid in range(3):
            store.file_exchange(exchange(mid))
        assert store.mark_outbox(ids[0], "sent")
        assert store.mark_outbox(ids[1], "delivered")
        assert store.mark_outbox(ids[2], "pending")
        # A late report never undoes what was recorded.
        assert not store.mark_outbox(ids[1], "pending")
        assert not store.mark_outbox(ids[0], "delivered")
        assert not store.mark_outbox(999, "sent")
        for bad in ("in_flight", "lost"):
            with pytest.raises(ValueError, match="pending, sent or delivered"):
                store.mark_outbox(ids[2], bad)
        sent, delivered, pending = store.list_outbox()
    assert (sent.state, sent.delivered_at) == ("sent", None) and sent.sent_at is not None
    assert delivered.state == "delivered"
    assert delivered.delivered_at is not None and delivered.sent_at is not None
    assert (pending.state, pending.sent_at, pending.attempts) == ("pending", None, 1)


def test_an_exchange_past_its_lifetime_is_a_new_request(db: Path) -> None:
    with Store(db) as store:
        store.add_outbox("device-1", b"one", "text")
        store.add_outbox("device-1", b"two", "text")
        first = store.file_exchange(exchange(1))
        assert store.file_exchange(exchange(1)).repeated
        with store.transaction() as raw:
            raw.execute("UPDATE inbox SET answered_at = answered_at - 300")
        # Past the lifetime, the message ID may carry a new request.
        later = store.file_exchange(exchange(1))
        assert not later.repeated and later.inbox_id == first.inbox_id + 1
        assert later.downstream is not None and later.downstream.payload == b"two"
        # ... which is then the exchange a retransmission finds.
        assert store.file_exchange(exchange(1)).inbox_id == later.inbox_id
        assert len(store.list_inbox()) == 2


def test_a_transaction_groups_writes_and_rolls_back_together(db: Path) -> None:
    with Store(db) as store:
        with store.transaction():
            store.add_outbox("d", b"one", "text")
            store.file_message("d", "p", b"x", None)
        assert len(store.list_outbox()) == 1 and len(store.list_inbox()) == 1
        with pytest.raises(RuntimeError, match="abandon"), store.transaction():
            store.add_outbox("d", b"two", "text")
            store.file_exchange(exchange(1, device="d"))
            raise RuntimeError("abandon the group")
        assert [m.payload for m in store.list_outbox()] == [b"one"]
        assert len(store.list_inbox()) == 1
        # Another connection sees nothing of an open transaction.
        with Store(db) as other:
            with store.transaction():
                store.add_outbox("d", b"three", "text")
                assert len(other.list_outbox()) == 1
            assert len(other.list_outbox()) == 2


def test_connection_settings(db: Path) -> None:
    with Store(db) as store:
        store.set_synchronous("full")
        store.set_synchronous("NORMAL")
        with pytest.raises(ValueError, match="synchronous"):
            store.set_synchronous("sometimes")
        store.set_busy_timeout(0.05)
        with Store(db) as holder, holder.transaction():
            holder.add_outbox("d", b"holding the write lock", "text")
            with pytest.raises(sqlite3.OperationalError, match="locked"):
                store.add_outbox("d", b"waits 50 ms, then gives up", "text")
        assert [m.payload for m in store.list_outbox()] == [b"holding the write lock"]
