"""The data service's state: an SQLite file with each device's inbox and outbox.

The inbox holds what devices sent (one row per POST or PUT); the outbox holds
downstream messages waiting for a device, each with its state
(:data:`OUTBOX_STATES`); an inbox row the service filed also remembers its
exchange, so that a retransmission is answered as its first copy was, across
restarts. The
file is opened in WAL mode, so the serving process and the command-line tools
can use it at the same time; each write is one transaction, and taking a
downstream message takes it for one answer only, whichever process takes it.
The schema carries its version (``PRAGMA user_version``, :data:`SCHEMA_VERSION`);
a file from an older release is upgraded when it is opened.
"""

from __future__ import annotations

import datetime
import os
import sqlite3
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple, TypeVar

__all__ = [
    "OUTBOX_FORMATS",
    "OUTBOX_STATES",
    "SCHEMA_VERSION",
    "Exchange",
    "Filed",
    "InboxMessage",
    "OutboxMessage",
    "Store",
    "utc_now",
]

#: How a downstream message was given, and how listings show it.
OUTBOX_FORMATS = ("text", "hex", "base64")

#: A downstream message's states:
#: ``pending``: waiting for the device;
#: ``in_flight``: taken for a response that was not handed to the socket yet, or
#: sent as a confirmable response whose ACK has not come (back to ``pending`` on
#: a NACK, and at the service's next start);
#: ``sent``: handed to the socket in a piggybacked response, which nothing
#: acknowledges;
#: ``delivered``: the device's CoAP stack acknowledged the response carrying it.
OUTBOX_STATES = ("pending", "in_flight", "sent", "delivered")

#: The schema this code writes (``PRAGMA user_version``), and the older ones it
#: upgrades when it opens them: 0, a file made before versions (release 0.x,
#: outbox states pending/sent); 2, the exchanges in a table of their own.
SCHEMA_VERSION = 3

#: Seconds a writer waits for another process's transaction before giving up.
_BUSY_TIMEOUT_S = 10.0

# The inbox: what devices sent. A request the service filed carries its exchange
# (message ID, digest of the request, the downstream message its answer carried,
# when it was answered), so that a retransmission is answered as its first copy
# was, across restarts: the lookup is by device and message ID (index
# inbox_exchange), then the digest (token, code, path, Content-Format, payload),
# so a new request that reuses a message ID is new. One table and one index per
# filed message: the service's group commit writes few pages.
_INBOX = """
CREATE TABLE inbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    device TEXT NOT NULL,
    path TEXT NOT NULL,
    payload BLOB NOT NULL,
    content_format INTEGER,
    received_at TEXT NOT NULL,
    mid INTEGER,
    digest BLOB,
    outbox_id INTEGER,
    answered_at REAL
);
CREATE INDEX inbox_exchange ON inbox (device, mid);
"""

_OUTBOX = """
CREATE TABLE outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    device TEXT NOT NULL,
    payload BLOB NOT NULL,
    format TEXT NOT NULL,
    created_at TEXT NOT NULL,
    state TEXT NOT NULL DEFAULT 'pending'
        CHECK (state IN ('pending', 'in_flight', 'sent', 'delivered')),
    attempts INTEGER NOT NULL DEFAULT 0,
    sent_at TEXT,
    delivered_at TEXT
);
CREATE INDEX outbox_pending ON outbox (device, state, id);
"""

# Version 0 (no user_version; outbox states pending and sent): the outbox gains
# states, attempts and delivered_at (a new table: SQLite cannot change a CHECK
# constraint). A message sent under 0 counts one attempt.
_UPGRADE_OUTBOX_0 = (
    "ALTER TABLE outbox RENAME TO outbox_v0;"
    "DROP INDEX IF EXISTS outbox_pending;"
    + _OUTBOX
    + "INSERT INTO outbox (id, device, payload, format, created_at, state, attempts, sent_at)"
    " SELECT id, device, payload, format, created_at, state,"
    " CASE state WHEN 'sent' THEN 1 ELSE 0 END, sent_at FROM outbox_v0 ORDER BY id;"
    "DROP TABLE outbox_v0;"
)

# Versions 0 and 2: the inbox gains its exchange columns (in version 2 they were
# a table of their own, exchanges, whose rows move into the inbox) and one index.
_UPGRADE_INBOX = (
    "ALTER TABLE inbox ADD COLUMN mid INTEGER;"
    "ALTER TABLE inbox ADD COLUMN digest BLOB;"
    "ALTER TABLE inbox ADD COLUMN outbox_id INTEGER;"
    "ALTER TABLE inbox ADD COLUMN answered_at REAL;"
    "DROP INDEX IF EXISTS inbox_device;"
    "CREATE INDEX inbox_exchange ON inbox (device, mid);"
)
_UPGRADE_EXCHANGES_2 = (
    "UPDATE inbox SET (mid, digest, outbox_id, answered_at) ="
    " (SELECT e.mid, e.digest, e.outbox_id, e.answered_at FROM exchanges AS e"
    " WHERE e.inbox_id = inbox.id) WHERE id IN (SELECT inbox_id FROM exchanges);"
    "DROP TABLE exchanges;"
)


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
    """A downstream message for a device; ``state`` is one of :data:`OUTBOX_STATES`.

    ``attempts``: how many responses carried it; ``sent_at``: when it last went out.
    """

    id: int
    device: str
    payload: bytes
    format: str
    created_at: str
    state: str
    sent_at: str | None
    attempts: int = 0
    delivered_at: str | None = None


class Exchange(NamedTuple):
    """An upstream request, as the service files it: who sent what, in which message."""

    device: str
    mid: int
    digest: bytes
    path: str
    payload: bytes
    content_format: int | None


class Filed(NamedTuple):
    """What :meth:`Store.file_exchange` did: the inbox row, the downstream message taken
    for the answer (or None), and whether the exchange had been answered before."""

    inbox_id: int
    downstream: OutboxMessage | None
    repeated: bool


_OUTBOX_COLUMNS = "id, device, payload, format, created_at, state, sent_at, attempts, delivered_at"


def _outbox_message(row: Any) -> OutboxMessage:
    return OutboxMessage(
        row[0], row[1], bytes(row[2]), row[3], row[4], row[5], row[6], row[7], row[8]
    )


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
        self._db = sqlite3.connect(
            str(self.path), timeout=_BUSY_TIMEOUT_S, isolation_level=None, cached_statements=1024
        )
        try:
            self._db.execute(f"PRAGMA busy_timeout={int(_BUSY_TIMEOUT_S * 1000)}")
            self._wal()
            self._upgrade()
        except (sqlite3.DatabaseError, ValueError):
            self._db.close()
            raise

    def _wal(self) -> None:
        """Switch the file to WAL mode (once per file). SQLite answers "locked" at once,
        without its busy timeout, while another process opens or changes the file:
        retry until the busy timeout."""
        deadline = time.monotonic() + _BUSY_TIMEOUT_S
        while True:
            try:
                if self._db.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
                    self._db.execute("PRAGMA journal_mode=WAL")
                return
            except sqlite3.OperationalError as error:
                if "locked" not in str(error) or time.monotonic() > deadline:
                    raise
                time.sleep(0.01)

    def _upgrade(self) -> None:
        """Create the schema, or bring an older one up to :data:`SCHEMA_VERSION`, in one
        transaction: a process that opens the file meanwhile sees all of it or none.
        A file already at this version is only read (no write lock is taken)."""
        db = self._db
        if int(db.execute("PRAGMA user_version").fetchone()[0]) == SCHEMA_VERSION:
            return
        db.execute("BEGIN IMMEDIATE")
        try:
            version = int(db.execute("PRAGMA user_version").fetchone()[0])
            if version > SCHEMA_VERSION:
                raise ValueError(
                    f"{self.path} has schema version {version}; this libcoap-py reads up "
                    f"to {SCHEMA_VERSION} (a newer release wrote it)"
                )
            if version < SCHEMA_VERSION:
                tables = {
                    row[0]
                    for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
                }
                if "inbox" not in tables:
                    script = _INBOX + _OUTBOX  # a new file
                elif version == 0:
                    outbox = _UPGRADE_OUTBOX_0 if "outbox" in tables else _OUTBOX
                    script = outbox + _UPGRADE_INBOX
                elif version == 2:
                    script = _UPGRADE_INBOX + _UPGRADE_EXCHANGES_2
                else:
                    raise ValueError(
                        f"{self.path} has schema version {version}, which no release wrote"
                    )
                for statement in script.split(";"):
                    if statement.strip():
                        db.execute(statement)
                db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")

    @property
    def schema_version(self) -> int:
        """The file's ``PRAGMA user_version``."""
        return int(self._db.execute("PRAGMA user_version").fetchone()[0])

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction around several calls (the service's group commit);
        calls made inside it join it instead of committing on their own."""
        if self._db.in_transaction:
            yield self._db
            return
        # BEGIN IMMEDIATE takes the write lock up front, so two processes
        # cannot both read the same pending row and then both take it.
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield self._db
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    _transaction = transaction

    def set_synchronous(self, mode: str) -> None:
        """``PRAGMA synchronous`` for this connection: ``FULL`` makes each commit survive
        a power cut (the service's writer), ``NORMAL`` a crash of the process."""
        if mode.upper() not in ("OFF", "NORMAL", "FULL", "EXTRA"):
            raise ValueError(f"not a synchronous mode: {mode!r}")
        self._db.execute(f"PRAGMA synchronous = {mode.upper()}")

    def set_busy_timeout(self, seconds: float) -> None:
        """How long a write waits for another process's transaction before
        ``sqlite3.OperationalError`` (database is locked)."""
        self._db.execute(f"PRAGMA busy_timeout = {int(seconds * 1000)}")

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
        whichever process makes it. (The service itself takes messages with
        :meth:`file_exchange`, which marks them in flight until they go out.)
        """
        with self._transaction() as db:
            row = db.execute(
                "SELECT id FROM outbox WHERE device = ? AND state = 'pending' ORDER BY id LIMIT 1",
                (device,),
            ).fetchone()
            if row is None:
                return None
            db.execute(
                "UPDATE outbox SET state = 'sent', sent_at = ?, attempts = attempts + 1"
                " WHERE id = ?",
                (utc_now(), row[0]),
            )
            return self._outbox_row(row[0])

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
        """Outbox messages (every state), oldest first; only ``device``'s if given."""
        rows = self._select(f"SELECT {_OUTBOX_COLUMNS} FROM outbox", device)
        return [_outbox_message(r) for r in rows]

    def _outbox_row(self, message_id: int) -> OutboxMessage | None:
        row = self._db.execute(
            f"SELECT {_OUTBOX_COLUMNS} FROM outbox WHERE id = ?", (message_id,)
        ).fetchone()
        return None if row is None else _outbox_message(row)

    # -- the service's writes -----------------------------------------------------------------

    def file_exchange(
        self, exchange: Exchange, *, take_downstream: bool = True, lifetime: float = 247.0
    ) -> Filed:
        """File an upstream request once, and take the device's next downstream message.

        An exchange answered before (same device, message ID and digest, within
        ``lifetime`` seconds) is not filed again: the result names the first
        copy's inbox row and the same downstream message, taken again if it went
        back to the queue meanwhile. Otherwise the request goes into the inbox,
        and (``take_downstream``) the oldest pending message is marked
        ``in_flight``. Each answer counts an attempt. One transaction (or part of
        the caller's :meth:`transaction`). :meth:`file_exchanges` does many at once.
        """
        return self.file_exchanges([exchange], take_downstream=take_downstream, lifetime=lifetime)[
            0
        ]

    def file_exchanges(
        self,
        exchanges: Sequence[Exchange],
        *,
        take_downstream: bool = True,
        lifetime: float = 247.0,
    ) -> list[Filed]:
        """:meth:`file_exchange` for many exchanges, in order, with a handful of
        statements whatever their number (the service's group commit)."""
        if not exchanges:
            return []
        now = time.time()
        results: list[Filed | None] = [None] * len(exchanges)
        with self._transaction() as db:
            # 1. Exchanges answered before (a retransmission, perhaps after a restart):
            #    the inbox rows of these devices and message IDs, then the digest.
            seen: dict[tuple[str, int, bytes], tuple[int, int | None]] = {}
            keys = [(e.device, e.mid, e.digest) for e in exchanges]
            asked = set(keys)
            for chunk in _chunks(sorted({key[:2] for key in keys}), _MAX_ROWS_PER_STATEMENT):
                # (A join from the keys, so SQLite looks each up in inbox_exchange.)
                rows = db.execute(
                    "SELECT i.device, i.mid, i.digest, i.id, i.outbox_id FROM (VALUES "
                    + ",".join(["(?, ?)"] * len(chunk))
                    + ") AS k CROSS JOIN inbox AS i ON i.device = k.column1"
                    " AND i.mid = k.column2 WHERE i.answered_at >= ?",
                    (*[v for key in chunk for v in key], now - lifetime),
                ).fetchall()
                for device, mid, digest, inbox_id, outbox_id in rows:
                    key = (device, mid, bytes(digest))
                    if key in asked:  # (not another request that used the message ID)
                        seen[key] = (int(inbox_id), outbox_id)
            # 2. The new ones, each filed once (the same exchange twice in one group is
            #    one request).
            first_new: dict[tuple[str, int, bytes], int] = {}
            fresh = []
            for i, key in enumerate(keys):
                if key not in seen and key not in first_new:
                    first_new[key] = i
                    fresh.append(i)
            # 3. Downstream messages: the oldest pending ones of these devices, one per
            #    new exchange, oldest to the earliest request.
            taken: dict[int, int] = {}
            if take_downstream and fresh:
                wanted: dict[str, int] = {}
                for i in fresh:
                    wanted[exchanges[i].device] = wanted.get(exchanges[i].device, 0) + 1
                pending: dict[str, list[int]] = {}
                # Per device only as many as it has new requests here (one statement: a
                # device may have thousands waiting).
                for some in _chunks(sorted(wanted), _MAX_ROWS_PER_STATEMENT // 2):
                    for message_id, owner in db.execute(
                        " UNION ALL ".join(
                            ["SELECT * FROM (SELECT id, device FROM outbox WHERE device = ?"
                             " AND state = 'pending' ORDER BY id LIMIT ?)"] * len(some)
                        ),
                        [v for name in some for v in (name, wanted[name])],
                    ):  # fmt: skip
                        pending.setdefault(owner, []).append(int(message_id))
                for waiting in pending.values():
                    waiting.sort()
                for i in fresh:
                    queue = pending.get(exchanges[i].device)
                    if queue:
                        taken[i] = queue.pop(0)
            # 4. Into the inbox, with their exchanges (one statement; in this write
            #    transaction AUTOINCREMENT ids are consecutive, so they are known
            #    without RETURNING).
            inbox_ids: dict[int, int] = {}
            received_at = utc_now()
            for part in _chunks(fresh, _MAX_ROWS_PER_STATEMENT):
                # Multi-row statements rather than executemany: Python's sqlite3 lets go
                # of the GIL for each row's step.
                cur = _insert_rows(
                    db,
                    "inbox (device, path, payload, content_format, received_at, mid, digest,"
                    " outbox_id, answered_at)",
                    [
                        (
                            exchanges[i].device,
                            exchanges[i].path,
                            bytes(exchanges[i].payload),
                            exchanges[i].content_format,
                            received_at,
                            exchanges[i].mid,
                            exchanges[i].digest,
                            taken.get(i),
                            now,
                        )
                        for i in part
                    ],
                )
                last = _row_id(cur)
                for offset, i in enumerate(part):
                    inbox_ids[i] = last - len(part) + 1 + offset
            # Repeats re-take their message (in flight again if it went back to pending).
            again = [outbox_id for _, outbox_id in seen.values() if outbox_id is not None]
            # (A repeat and a new exchange never take the same message: a taken one is
            # in flight, no longer pending.)
            for ids in _chunks([*taken.values(), *again], _MAX_ROWS_PER_STATEMENT):
                db.execute(
                    "UPDATE outbox SET attempts = attempts + 1,"
                    " state = CASE state WHEN 'pending' THEN 'in_flight' ELSE state END"
                    " WHERE id IN (" + ",".join("?" * len(ids)) + ")",
                    ids,
                )
            answering = [*taken.values(), *again]
            messages = self._outbox_rows(answering) if answering else {}
            for i, key in enumerate(keys):
                if key in seen:
                    inbox_id, outbox_id = seen[key]
                    message = None if outbox_id is None else messages.get(int(outbox_id))
                    results[i] = Filed(inbox_id, message, True)
                elif first_new[key] != i:
                    j = first_new[key]
                    message = messages.get(taken[j]) if j in taken else None
                    results[i] = Filed(inbox_ids[j], message, True)
                else:
                    message = messages.get(taken[i]) if i in taken else None
                    results[i] = Filed(inbox_ids[i], message, False)
        return [r for r in results if r is not None]

    def _outbox_rows(self, ids: Sequence[int]) -> dict[int, OutboxMessage]:
        found: dict[int, OutboxMessage] = {}
        for chunk in _chunks(sorted(set(ids)), _MAX_ROWS_PER_STATEMENT):
            rows = self._db.execute(
                f"SELECT {_OUTBOX_COLUMNS} FROM outbox WHERE id IN ("
                + ",".join("?" * len(chunk))
                + ")",
                chunk,
            ).fetchall()
            for row in rows:
                message = _outbox_message(row)
                found[message.id] = message
        return found

    def mark_outbox(self, message_id: int, state: str) -> bool:
        """Move an ``in_flight`` message on: to ``sent`` (handed to the socket),
        ``delivered`` (acknowledged) or back to ``pending``. A message in another
        state is left alone (False): a late report never undoes a delivery."""
        if state not in ("pending", "sent", "delivered"):
            raise ValueError(
                f"an in-flight message goes to pending, sent or delivered, not {state!r}"
            )
        return self.mark_outbox_many([(message_id, state)]) > 0

    def mark_outbox_many(self, marks: Sequence[tuple[int, str]]) -> int:
        """:meth:`mark_outbox` for many ``(message_id, state)`` pairs, with one statement
        per state; ``"in_flight"`` there means :meth:`record_sent`. Returns how many
        rows changed."""
        by_state: dict[str, list[int]] = {}
        for message_id, state in marks:
            if state not in ("in_flight", "pending", "sent", "delivered"):
                raise ValueError(f"not a state to mark: {state!r}")
            by_state.setdefault(state, []).append(message_id)
        now = utc_now()
        statements = (
            ("in_flight", "UPDATE outbox SET sent_at = ?1 WHERE id = ?2 AND state = 'in_flight'"),
            (
                "pending",
                "UPDATE outbox SET state = 'pending' WHERE id = ?2 AND state = 'in_flight'",
            ),
            (
                "sent",
                "UPDATE outbox SET state = 'sent', sent_at = ?1"
                " WHERE id = ?2 AND state = 'in_flight'",
            ),
            (
                "delivered",
                "UPDATE outbox SET state = 'delivered', delivered_at = ?1,"
                " sent_at = COALESCE(sent_at, ?1) WHERE id = ?2 AND state = 'in_flight'",
            ),
        )
        changed = 0
        with self._transaction() as db:
            for state, sql in statements:
                for ids in _chunks(by_state.get(state, []), _MAX_ROWS_PER_STATEMENT):
                    cur = db.execute(
                        sql.replace("id = ?2", "id IN (" + ",".join("?" * len(ids)) + ")"),
                        [now, *ids] if "?1" in sql else ids,
                    )
                    changed += max(cur.rowcount, 0)
        return changed

    def record_sent(self, message_id: int) -> bool:
        """Note when an ``in_flight`` message went out in a response that waits for its
        ACK (the state stays ``in_flight``); False for a message in another state."""
        return self.mark_outbox_many([(message_id, "in_flight")]) > 0

    def requeue_in_flight(self) -> int:
        """Put every ``in_flight`` message back in the queue (the service does this when
        it starts: it cannot know whether they went out); return how many."""
        with self._transaction() as db:
            cur = db.execute("UPDATE outbox SET state = 'pending' WHERE state = 'in_flight'")
        return cur.rowcount

    def integrity_check(self) -> str:
        """SQLite's ``PRAGMA integrity_check``: ``"ok"``, or what is wrong."""
        rows = self._db.execute("PRAGMA integrity_check").fetchall()
        return "\n".join(str(r[0]) for r in rows)

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


#: Rows per statement where a group's rows go into one statement: at most six
#: parameters a row, within SQLite's 32766 (since 3.32; bullseye has 3.34).
_MAX_ROWS_PER_STATEMENT = 300

T = TypeVar("T")


def _chunks(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _insert_rows(
    db: sqlite3.Connection, into: str, rows: Sequence[tuple[Any, ...]], *, replace: bool = False
) -> sqlite3.Cursor:
    """One INSERT of many rows (``into``: ``table (columns)``); its cursor's
    ``lastrowid`` is the last row's."""
    one = "(" + ",".join("?" * len(rows[0])) + ")"
    verb = "INSERT OR REPLACE" if replace else "INSERT"
    return db.execute(
        f"{verb} INTO {into} VALUES " + ",".join([one] * len(rows)),
        [value for row in rows for value in row],
    )


def _row_id(cursor: sqlite3.Cursor) -> int:
    row_id = cursor.lastrowid
    assert row_id is not None
    return row_id
