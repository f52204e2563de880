"""The data service's storage thread: SQLite writes off the CoAP loop, committed in groups.

The loop hands each write to :class:`StoreWriter` (:meth:`~StoreWriter.submit`)
and goes on serving. The writer thread takes everything queued, runs it in one
transaction with ``synchronous=FULL`` (one fsync for the group: a group
commit), and hands the results back to the loop's thread through
``Context.call_soon_threadsafe``. A write that fails (the database locked by
another process past the busy timeout, the disk full) comes back with its
``sqlite3.Error``; the service answers that request 5.03 with Max-Age.
"""

from __future__ import annotations

import logging
import queue
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any, Callable

from .store import Exchange, Store

__all__ = ["BUSY_TIMEOUT_S", "MAX_GROUP", "FileJob", "Job", "MarkJob", "StoreWriter"]

log = logging.getLogger("libcoap_py.service")

#: How long the writer waits for another process's lock before a write fails.
BUSY_TIMEOUT_S = 1.0
#: At most this many writes share one transaction.
MAX_GROUP = 256
#: Forget answered exchanges this often (seconds).
_PRUNE_EVERY_S = 30.0


class Job:
    """One write: ``work(store)`` runs in the writer thread, inside the group's
    transaction; ``done(job)`` runs on the loop's thread with ``result`` or ``error``."""

    __slots__ = ("done", "error", "result", "work")

    def __init__(self, work: Callable[[Store], Any], done: Callable[[Job], Any] | None) -> None:
        self.work = work
        self.done = done
        self.result: Any = None
        self.error: BaseException | None = None


class FileJob(Job):
    """File an upstream exchange (:meth:`Store.file_exchanges`, batched with the rest of
    its group); ``result`` is its :class:`~.store.Filed`."""

    __slots__ = ("exchange",)

    def __init__(self, exchange: Exchange, done: Callable[[Job], Any] | None) -> None:
        super().__init__(_no_work, done)
        self.exchange = exchange


class MarkJob(Job):
    """Move an outbox message on (:meth:`Store.mark_outbox_many`, batched)."""

    __slots__ = ("message_id", "state")

    def __init__(self, message_id: int, state: str) -> None:
        super().__init__(_no_work, None)
        self.message_id = message_id
        self.state = state


def _no_work(store: Store) -> None:
    return None


_STOP = object()


class StoreWriter:
    """A thread that owns its own :class:`Store` on ``path`` and runs :class:`Job` s.

    ``hand_back(callback, jobs)``: how results reach the loop (the service passes
    ``context.call_soon_threadsafe``). ``lifetime``: how long answered exchanges
    are kept.
    """

    def __init__(
        self,
        path: str | Path,
        hand_back: Callable[..., Any],
        *,
        busy_timeout: float = BUSY_TIMEOUT_S,
        lifetime: float = 247.0,
        synchronous: str = "FULL",
    ) -> None:
        self._path = Path(path)
        self._hand_back = hand_back
        self._busy_timeout = busy_timeout
        self._synchronous = synchronous
        self._lifetime = lifetime
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._started = threading.Event()
        self._start_error: BaseException | None = None
        # Writes queued, and written (each counted by one thread: submit() is for the
        # loop's thread; the writer counts what it wrote).
        self._submitted = 0
        self._written = 0
        #: Groups committed, and the writes in them (for benchmarks and tests).
        self.groups = 0
        self.writes = 0

    def start(self) -> None:
        """Open the writer's Store and start the thread; raises what opening raises."""
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._run, name="libcoap-py store writer")
        self._thread.daemon = True
        self._thread.start()
        self._started.wait()
        if self._start_error is not None:
            self._thread.join()
            self._thread = None
            raise self._start_error

    @property
    def backlog(self) -> int:
        """Writes queued and not yet handed back (the service's back-pressure)."""
        return self._submitted - self._written

    def submit(self, job: Job) -> None:
        """Queue a write. From one thread (the service's loop), or under a lock."""
        self._submitted += 1
        self._queue.put(job)

    def submit_many(self, jobs: list[Job]) -> None:
        """Queue several writes with one wake-up of the writer (as :meth:`submit`)."""
        if jobs:
            self._submitted += len(jobs)
            self._queue.put(jobs)

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until what was queued before this call is committed and handed back
        (any thread but the writer's); False if that took longer than ``timeout``."""
        if self._thread is None:
            return True
        done = threading.Event()
        self._queue.put(done)
        return done.wait(timeout)

    def stop(self) -> None:
        """Run what is queued, then end the thread (idempotent)."""
        if self._thread is None:
            return
        self._queue.put(_STOP)
        self._thread.join()
        self._thread = None

    # -- the thread -----------------------------------------------------------------------

    def _run(self) -> None:
        try:
            store = Store(self._path)
            store.set_synchronous(self._synchronous)
            store.set_busy_timeout(self._busy_timeout)
        except BaseException as error:
            self._start_error = error
            self._started.set()
            return
        self._started.set()
        next_prune = 0.0
        try:
            while True:
                first = self._queue.get()
                group: list[Job] = []
                barriers: list[threading.Event] = []
                stop = False
                item = first
                while True:
                    if item is _STOP:
                        stop = True
                        break
                    if isinstance(item, threading.Event):
                        barriers.append(item)
                        break
                    if isinstance(item, list):
                        group.extend(item)
                    else:
                        group.append(item)
                    if len(group) >= MAX_GROUP:
                        break
                    try:
                        item = self._queue.get_nowait()
                    except queue.Empty:
                        break
                if time.monotonic() >= next_prune:
                    next_prune = time.monotonic() + _PRUNE_EVERY_S
                    self._prune(store)
                if group:
                    self._commit(store, group)
                for barrier in barriers:
                    barrier.set()
                if stop:
                    return
        finally:
            store.close()

    def _apply(self, store: Store, group: list[Job]) -> None:
        """The group's writes, batched by kind: filings, then marks, then the rest."""
        filings = [job for job in group if isinstance(job, FileJob)]
        if filings:
            filed = store.file_exchanges([job.exchange for job in filings], lifetime=self._lifetime)
            for filing, result in zip(filings, filed):
                filing.result = result
        marks = [(job.message_id, job.state) for job in group if isinstance(job, MarkJob)]
        if marks:
            store.mark_outbox_many(marks)
        for other in group:
            if other.work is not _no_work:
                other.result = other.work(store)

    def _commit(self, store: Store, group: list[Job]) -> None:
        try:
            with store.transaction():
                self._apply(store, group)
        except sqlite3.Error as error:
            # Locked or full: every write of the group failed the same way. Anything
            # else: find the one write that fails, commit the others one by one.
            if isinstance(error, sqlite3.OperationalError) or len(group) == 1:
                for job in group:
                    job.result, job.error = None, error
            else:
                for job in group:
                    self._commit(store, [job])
                return
        except Exception as error:  # a bug in one write must not fail its neighbours
            if len(group) == 1:
                group[0].result, group[0].error = None, error
                log.error("a storage write failed", exc_info=error)
            else:
                for job in group:
                    self._commit(store, [job])
                return
        else:
            self.groups += 1
            self.writes += len(group)
        self._written += len(group)
        try:
            self._hand_back(_deliver, group)
        except Exception:
            # The loop's Context is closed: nobody waits for these answers. What was
            # committed stays (a retransmission after a restart finds its exchange).
            log.debug("storage results for a closed service dropped (%d writes)", len(group))

    def _prune(self, store: Store) -> None:
        try:
            store.prune_exchanges(self._lifetime)
        except sqlite3.Error as error:
            log.warning("cannot forget old exchanges: %s", error)


def _deliver(group: list[Job]) -> None:
    """On the loop's thread: each write's ``done``."""
    for job in group:
        if job.done is not None:
            job.done(job)
