"""The data service's state: an SQLite file with each device's inbox and outbox.

The inbox holds what devices sent (one row per POST or PUT); the outbox holds
downstream messages waiting for a device. The file is opened in WAL mode, so
the serving process and the command-line tools can use it at the same time;
taking a downstream message is one transaction, so each message is delivered
exactly once, whichever process takes it.
"""

from __future__ import annotations

import datetime
import os
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["OUTBOX_FORMATS", "InboxMessage", "OutboxMessage", "Store", "utc_now"]

#: How a downstream message was given, and how listings show it.
OUTBOX_FORMATS = ("text", "hex", "base64")

#: Seconds a writer waits for another process's transaction before giving up.
_BUSY_TIMEOUT_S = 10.0

_SCHEMA = """
CREATE TABLE IF NOT EXISTS inbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    device TEXT NOT NULL,
    path TEXT NOT NULL,
    payload BLOB NOT NULL,
    content_format INTEGER,
    received_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS inbox_device ON inbox (device, id);
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    device TEXT NOT NULL,
    payload BLOB NOT NULL,
    format TEXT NOT NULL,
    created_at TEXT NOT NULL,
    state TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'sent')),
    sent_at TEXT
);
CREATE INDEX IF NOT EXISTS outbox_pending ON outbox (device, state, id);
"""


def utc_now() -> str:
    """The current time as UTC ISO 8601 with milliseconds: ``2024-05-01T12:00:00.000+00:00``."""
    return datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="milliseconds")


@dataclass(frozen=True)
class InboxMessage:
    """A message a device sent."""

    id: int
    device: str
    path: str
    payload: bytes
    content_format: int | None
    received_at: str


@dataclass(frozen=True)
class OutboxMessage:
    """A downstream message for a device; ``state`` is ``"pending"`` or ``"sent"``."""

    id: int
    device: str
    payload: bytes
    format: str
    created_at: str
    state: str
    sent_at: str | None


class Store:
    """The inbox and outbox in the SQLite file ``path`` (created if missing).

    ``create=False`` raises :class:`FileNotFoundError` for a missing file
    instead. One Store belongs to one thread; other threads and processes
    open their own on the same file. Use it as a context manager or call
    :meth:`close`.
    """

    def __init__(self, path: str | os.PathLike[str], *, create: bool = True) -> None:
        self.path = Path(path)
        if not create and not self.path.is_file():
            raise FileNotFoundError(2, f"no database at {self.path}", str(self.path))
        # isolation_level=None: no implicit transactions; each write below says
        # where its transaction starts and ends.
        self._db = sqlite3.connect(str(self.path), timeout=_BUSY_TIMEOUT_S, isolation_level=None)
        try:
            self._db.execute(f"PRAGMA busy_timeout={int(_BUSY_TIMEOUT_S * 1000)}")
            self._db.execute("PRAGMA journal_mode=WAL")
            # One transaction, so a process that opens the file while another
            # creates it sees all of the schema or none.
            self._db.executescript("BEGIN IMMEDIATE;" + _SCHEMA + "COMMIT;")
        except sqlite3.DatabaseError:
            self._db.close()
            raise

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        # BEGIN IMMEDIATE takes the write lock up front, so two processes
        # cannot both read the same pending row and then both mark it sent.
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield self._db
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def file_message(
        self, device: str, path: str, payload: bytes, content_format: int | None = None
    ) -> int:
        """Put what ``device`` sent to ``path`` in its inbox; return the message id."""
        with self._transaction() as db:
            cur = db.execute(
                "INSERT INTO inbox (device, path, payload, content_format, received_at)"
                " VALUES (?, ?, ?, ?, ?)",
                (device, path, bytes(payload), content_format, utc_now()),
            )
        return _row_id(cur)

    def add_outbox(self, device: str, payload: bytes, format: str = "text") -> int:
        """Queue a downstream message for ``device``; return its id.

        ``format`` (text, hex or base64) records how the message was given;
        listings show it the same way.
        """
        if format not in OUTBOX_FORMATS:
            raise ValueError(f"format must be one of {', '.join(OUTBOX_FORMATS)}, not {format!r}")
        with self._transaction() as db:
            cur = db.execute(
                "INSERT INTO outbox (device, payload, format, created_at, state)"
                " VALUES (?, ?, ?, ?, 'pending')",
                (device, bytes(payload), format, utc_now()),
            )
        return _row_id(cur)

    def take_downstream_message(self, device: str) -> OutboxMessage | None:
        """Take the oldest pending message for ``device`` and mark it sent, atomically.

        None if nothing is pending. A message is returned by exactly one call,
        whichever process makes it.
        """
        with self._transaction() as db:
            row = db.execute(
                "SELECT id, device, payload, format, created_at FROM outbox"
                " WHERE device = ? AND state = 'pending' ORDER BY id LIMIT 1",
                (device,),
            ).fetchone()
            if row is None:
                return None
            sent_at = utc_now()
            db.execute(
                "UPDATE outbox SET state = 'sent', sent_at = ? WHERE id = ?", (sent_at, row[0])
            )
        return OutboxMessage(row[0], row[1], bytes(row[2]), row[3], row[4], "sent", sent_at)

    def take_downstream(self, device: str) -> bytes | None:
        """The payload of :meth:`take_downstream_message`, or None."""
        message = self.take_downstream_message(device)
        return None if message is None else message.payload

    def list_inbox(self, device: str | None = None) -> list[InboxMessage]:
        """Inbox messages, oldest first; only ``device``'s if given."""
        query = "SELECT id, device, path, payload, content_format, received_at FROM inbox"
        rows = self._select(query, device)
        return [InboxMessage(r[0], r[1], r[2], bytes(r[3]), r[4], r[5]) for r in rows]

    def list_outbox(self, device: str | None = None) -> list[OutboxMessage]:
        """Outbox messages (pending and sent), oldest first; only ``device``'s if given."""
        query = "SELECT id, device, payload, format, created_at, state, sent_at FROM outbox"
        rows = self._select(query, device)
        return [OutboxMessage(r[0], r[1], bytes(r[2]), r[3], r[4], r[5], r[6]) for r in rows]

    def devices(self) -> list[str]:
        """Every device named in the inbox or the outbox, sorted."""
        rows = self._db.execute(
            "SELECT device FROM inbox UNION SELECT device FROM outbox ORDER BY device"
        ).fetchall()
        return [str(r[0]) for r in rows]

    def _select(self, query: str, device: str | None) -> list[Any]:
        if device is None:
            return self._db.execute(query + " ORDER BY id").fetchall()
        return self._db.execute(query + " WHERE device = ? ORDER BY id", (device,)).fetchall()

    def close(self) -> None:
        """Close the database connection (idempotent)."""
        self._db.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<Store {self.path}>"


def _row_id(cursor: sqlite3.Cursor) -> int:
    row_id = cursor.lastrowid
    assert row_id is not None
    return row_id
