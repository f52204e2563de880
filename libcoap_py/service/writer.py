"""The data service's storage writer: SQLite writes off the CoAP loop, committed in groups.

The loop hands each write to :class:`StoreWriter` (:meth:`~StoreWriter.submit_many`)
and goes on serving. The writes go, over a socket pair, to a storage process
(:mod:`._storage_process`) that takes everything queued, runs it in one
transaction with ``synchronous=FULL`` (one fsync for the group: a group
commit), and sends the results back in order. The loop watches its end of the
socket (``Context.add_reader``) and runs each write's ``done`` as results
arrive: no thread in the service's process, so the loop has its GIL to
itself. A write that fails (the database locked by
another process past the busy timeout, the disk full) comes back with its
``sqlite3.Error``; the service answers that request 5.03 with Max-Age.

The loop never waits: what the socket cannot take at once waits in a buffer
and goes when results come back (the process has then read what came before).
If the storage process dies, the writes it had not answered fail (the service
answers 5.03) and the next write starts a new one.
"""

from __future__ import annotations

import builtins
import collections
import logging
import os
import select
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from . import _storage_process as proto
from .store import Exchange, Filed, OutboxMessage

if TYPE_CHECKING:
    from ..context import Context

__all__ = ["BUSY_TIMEOUT_S", "MAX_GROUP", "FileJob", "Job", "MarkJob", "StoreWriter"]

log = logging.getLogger("libcoap_py.service")

#: How long the writer waits for another process's lock before a write fails.
BUSY_TIMEOUT_S = 1.0
#: At most this many writes share one transaction.
MAX_GROUP = proto.MAX_GROUP
#: How long starting the storage process may take.
_START_TIMEOUT_S = 30.0

# Started as ``python -I -c _BOOT HERE FD PATH SYNCHRONOUS BUSY_MS LIFETIME PARENT``: loads
# store.py and _storage_process.py by path (not the package, whose __init__ loads
# the binding's extension) and serves.
_BOOT = """\
import importlib.util, sys
def load(name):
    spec = importlib.util.spec_from_file_location(
        "libcoap_py.service." + name, sys.argv[1] + "/" + name + ".py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module
store = load("store")
child = load("_storage_process")
sys.exit(child.serve(store, int(sys.argv[2]), sys.argv[3], sys.argv[4], int(sys.argv[5]),
                     float(sys.argv[6]), int(sys.argv[7])))
"""


class Job:
    """One write; ``done(job)`` runs on the loop's thread with ``result`` or ``error``."""

    __slots__ = ("done", "error", "result")

    def __init__(self, done: Callable[[Job], Any] | None) -> None:
        self.done = done
        self.result: Any = None
        self.error: BaseException | None = None

    def item(self) -> tuple[Any, ...]:
        """What goes to the storage process."""
        raise NotImplementedError

    def take(self, value: Any) -> None:
        """The storage process's result."""
        self.result = value


class FileJob(Job):
    """File an upstream exchange (``Store.file_exchanges``, batched with the rest of
    its group); ``result`` is its :class:`~.store.Filed`."""

    __slots__ = ("exchange",)

    def __init__(self, exchange: Exchange, done: Callable[[Job], Any] | None) -> None:
        super().__init__(done)
        self.exchange = exchange

    def item(self) -> tuple[Any, ...]:
        e = self.exchange
        return ("F", e.device, e.mid, e.digest, e.path, bytes(e.payload), e.content_format)

    def take(self, value: Any) -> None:
        inbox_id, repeated, message = value
        downstream = None if message is None else OutboxMessage(*message)
        self.result = Filed(inbox_id, downstream, repeated)


class MarkJob(Job):
    """Move an outbox message on (``Store.mark_outbox_many``, batched)."""

    __slots__ = ("message_id", "state")

    def __init__(self, message_id: int, state: str) -> None:
        super().__init__(None)
        self.message_id = message_id
        self.state = state

    def item(self) -> tuple[Any, ...]:
        return ("M", self.message_id, self.state)


class StoreWriter:
    """Writes to the SQLite file ``path`` through a storage process of its own, for the
    loop of ``context``: the results come back on that loop's thread
    (``Context.add_reader``), and every method is for that thread too.

    ``busy_timeout``: how long a write waits for another process's lock before
    it fails. ``lifetime``: how long answered exchanges are recognised.
    """

    def __init__(
        self,
        path: str | Path,
        context: Context,
        *,
        busy_timeout: float = BUSY_TIMEOUT_S,
        lifetime: float = 247.0,
        synchronous: str = "FULL",
    ) -> None:
        self._path = Path(path)
        self._context = context
        self._busy_timeout = busy_timeout
        self._synchronous = synchronous
        self._lifetime = lifetime
        self._sock: socket.socket | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._reader: proto.FrameReader | None = None
        self._unsent = bytearray()
        # Jobs sent (or waiting in _unsent) and not answered yet, in order.
        self._outstanding: collections.deque[Job] = collections.deque()
        self._barrier = 0  # the last barrier sent
        self._passed = 0  # the last barrier answered
        #: Groups committed, and the writes in them (for benchmarks and tests).
        self.groups = 0
        self.writes = 0

    # -- lifecycle ----------------------------------------------------------------------

    def start(self) -> None:
        """Start the storage process; raises what opening the file there raises."""
        if self._process is not None:
            return
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            process = subprocess.Popen(
                [
                    sys.executable, "-I", "-c", _BOOT, str(Path(__file__).parent),
                    str(theirs.fileno()), str(self._path), self._synchronous,
                    str(int(self._busy_timeout * 1000)), repr(float(self._lifetime)),
                    str(os.getpid()),
                ],
                pass_fds=(theirs.fileno(),),
                stdin=subprocess.DEVNULL,
                close_fds=True,
            )  # fmt: skip
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()
        reader = proto.FrameReader(ours)
        first = _first_frame(ours, reader, _START_TIMEOUT_S)
        if first is None or first[0] != "ready":
            ours.close()
            process.kill()
            process.wait()
            if first is None:
                status = process.returncode
                raise OSError(f"the storage process did not start (exit status {status})")
            raise _error_from(first[1], first[2])
        ours.setblocking(False)
        try:
            self._context.add_reader(ours, self._on_readable)
        except BaseException:
            ours.close()
            process.kill()
            process.wait()
            raise
        self._sock, self._reader, self._process = ours, reader, process

    def stop(self, timeout: float = _START_TIMEOUT_S) -> None:
        """Commit and answer what is queued, then end the storage process (idempotent)."""
        sock, process = self._sock, self._process
        if sock is None or process is None:
            return
        self._unsent += proto.encode(("S",))
        self._pump(lambda: False, timeout, closing=True)  # until the process closes its end
        self._end(sock, process, timeout)
        if self._outstanding:
            self._fail(
                list(self._outstanding), sqlite3.OperationalError("the storage writer stopped")
            )
            self._outstanding.clear()

    @property
    def pid(self) -> int | None:
        """The storage process's id, while it runs."""
        return None if self._process is None else self._process.pid

    # -- writes ---------------------------------------------------------------------------

    @property
    def backlog(self) -> int:
        """Writes queued and not yet answered (the service's back-pressure)."""
        return len(self._outstanding)

    def submit(self, job: Job) -> None:
        """Queue one write (as :meth:`submit_many`)."""
        self.submit_many([job])

    def submit_many(self, jobs: list[Job]) -> None:
        """Queue writes; the storage process gets them as one frame. Each job's ``done``
        runs later, on the loop's thread, with its result or error."""
        if not jobs:
            return
        if self._sock is None:
            try:
                self.start()  # the storage process died: a new one
            except (OSError, sqlite3.Error) as error:
                self._fail(jobs, error)
                return
        sock = self._sock
        assert sock is not None
        self._outstanding.extend(jobs)
        self._unsent += proto.encode([job.item() for job in jobs])
        self._send_some(sock)

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until what was queued before this call is committed and answered (the
        jobs' ``done`` run meanwhile); False if that took longer than ``timeout``."""
        if self._sock is None:
            return True
        self._barrier += 1
        number = self._barrier
        self._unsent += proto.encode(("B", number))
        return self._pump(lambda: self._passed >= number, timeout)

    # -- the socket ---------------------------------------------------------------------

    def _send_some(self, sock: socket.socket) -> None:
        """Send what the socket takes now; the rest goes when results come back."""
        unsent = self._unsent
        while unsent:
            try:
                sent = sock.send(unsent)
            except BlockingIOError:
                return
            except OSError:
                return  # the process is gone: reading tells (end of file)
            del unsent[:sent]

    def _on_readable(self) -> None:
        """The loop's callback: results, answered in order; then what waited for room."""
        sock, reader = self._sock, self._reader
        if sock is None or reader is None:
            return
        while True:
            try:
                frames = reader.read(block=False)
            except OSError:
                frames = None
            if frames is None:
                self._died()
                return
            if not frames:
                break
            self._take(frames)
        if self._unsent:
            self._send_some(sock)

    def _take(self, frames: list[Any]) -> None:
        for frame in frames:
            if frame[0] == "R":
                jobs = []
                outstanding = self._outstanding
                for result in frame[2]:
                    job = outstanding.popleft()
                    if result[0]:
                        job.take(result[1])
                    else:
                        job.error = _error_from(result[1], result[2])
                    jobs.append(job)
                if frame[1]:
                    self.groups += frame[1]
                    self.writes += len(jobs)
                _deliver(jobs)
            elif frame[0] == "B":
                self._passed = max(self._passed, frame[1])

    def _pump(self, done: Callable[[], bool], timeout: float, *, closing: bool = False) -> bool:
        """Send and read, answering results, until ``done()`` or the process closes its
        end (False then, unless done), at most ``timeout``."""
        deadline = time.monotonic() + timeout
        while not done():
            sock, reader = self._sock, self._reader
            if sock is None or reader is None:
                return done()
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            writable = [sock] if self._unsent else []
            readable, writable, _ = select.select([sock], writable, [], left)
            if writable:
                self._send_some(sock)
            if readable:
                frames = reader.read(block=False)
                if frames is None:
                    if not closing:
                        self._died()
                    return done()
                self._take(frames)
        return True

    def _end(self, sock: socket.socket, process: subprocess.Popen[bytes], timeout: float) -> int:
        """Forget the process: stop watching its socket, close it, reap the process."""
        self._context.remove_reader(sock)
        sock.close()
        self._sock = self._reader = self._process = None
        self._unsent.clear()
        try:
            return process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            return process.wait()

    def _died(self) -> None:
        """The storage process ended on its own: the filings it did not answer fail (the
        service answers 5.03), its marks go to a new process; the next write starts
        one if none did."""
        sock, process = self._sock, self._process
        assert sock is not None and process is not None
        status = self._end(sock, process, _START_TIMEOUT_S)
        log.error("the storage process ended (exit status %s); a new one starts", status)
        left = list(self._outstanding)
        self._outstanding.clear()
        error = sqlite3.OperationalError(f"the storage process ended (exit status {status})")
        # Filings fail (the service answers 5.03: the device sends again); marks of
        # downstream messages go to a new process (each moves a message on once).
        marks: list[Job] = [job for job in left if isinstance(job, MarkJob)]
        self._fail([job for job in left if not isinstance(job, MarkJob)], error)
        if marks:
            self.submit_many(marks)

    def _fail(self, jobs: list[Job], error: BaseException) -> None:
        for job in jobs:
            job.result, job.error = None, error
        _deliver(jobs)


def _deliver(jobs: list[Job]) -> None:
    """On the loop's thread: each write's ``done``."""
    for job in jobs:
        if job.done is not None:
            job.done(job)


def _error_from(kind: str, text: str) -> BaseException:
    """The storage process's error as an exception of this process."""
    cls = getattr(sqlite3, kind, None)
    if isinstance(cls, type) and issubclass(cls, sqlite3.Error):
        return cls(text)
    cls = getattr(builtins, kind, None)
    if isinstance(cls, type) and issubclass(cls, OSError):
        return cls(text)
    return sqlite3.DatabaseError(f"{kind}: {text}")


def _first_frame(sock: socket.socket, reader: proto.FrameReader, timeout: float) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([sock], [], [], left)[0]:
            return None
        frames = reader.read()
        if frames is None:
            return None
        if frames:
            return frames[0]
