"""The data service's storage process: SQLite writes in a process of their own.

:class:`~.writer.StoreWriter` starts this as a child process (``python -I -c
BOOT``) with one end of a socket pair. The child opens its own
:class:`~.store.Store` on the service's file and, until the parent says stop
or goes away, takes every write queued on the socket, runs them as one
transaction with ``synchronous=FULL`` (one fsync for the group) and sends the
results back in order.

Why a process and not a thread: the writer costs about as much CPU per
message as the CoAP loop does. In a thread it shares the loop's GIL, and
every SQLite call and every call into libcoap hands the GIL across, so the
two take turns instead of running on two cores (measured in
``benchmarks/service_ingest.py``; see docs/architecture.md).

This file has no import from the package: the child loads it, and ``store.py``,
by path, so that starting it costs an interpreter and ``sqlite3``, not the
binding's extension. Everything on the socket is a frame: a 4-byte big-endian
length, then a :mod:`marshal` value of plain tuples (both ends are this
package's own code; nothing from the network is ever decoded here).

Parent to child, frames: a list of writes, or one barrier or stop:
    ``("F", device, mid, digest, path, payload, content_format)`` file an exchange;
    ``("M", message_id, state)`` move a downstream message on;
    ``("B", n)`` barrier: answered with ``("B", n)`` once everything before it is;
    ``("S",)`` stop: finish what came before, then exit.
Child to parent:
    ``("ready",)`` or ``("failed", kind, text)`` once, first;
    ``("R", committed, results)``: the next ``len(results)`` items' results, each
    ``(True, value)`` or ``(False, kind, text)``; ``committed`` counts the groups
    (transactions) they took;
    ``("B", n)``: a barrier passed.

When the parent dies (``kill -9``), the kernel kills the child too
(``PR_SET_PDEATHSIG``), and end of file on the socket stops it where that is
not available: what it had not committed is not committed (nobody is left to
answer those requests; a device's retransmission files them later), and no
commit of it can follow the restarted service's first one.
"""

from __future__ import annotations

import marshal
import os
import signal
import socket
import sqlite3
import struct
import sys
from dataclasses import astuple
from typing import Any

#: At most this many writes share one transaction.
MAX_GROUP = 256

_LENGTH = struct.Struct("!I")


def encode(value: Any) -> bytes:
    """One frame."""
    body = marshal.dumps(value)
    return _LENGTH.pack(len(body)) + body


class FrameReader:
    """Frames out of a stream socket's bytes."""

    __slots__ = ("_buffer", "_sock")

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._buffer = bytearray()

    def read(self, *, block: bool = True) -> list[Any] | None:
        """The frames that are complete after one read (blocking for it, or not: then
        possibly none); None at end of file."""
        try:
            data = self._sock.recv(1 << 18, 0 if block else socket.MSG_DONTWAIT)
        except BlockingIOError:
            return []
        if not data:
            return None
        buffer = self._buffer
        buffer += data
        frames = []
        start = 0
        end = len(buffer)
        while end - start >= 4:
            (length,) = _LENGTH.unpack_from(buffer, start)
            if end - start - 4 < length:
                break
            frames.append(marshal.loads(bytes(buffer[start + 4 : start + 4 + length])))
            start += 4 + length
        del buffer[:start]
        return frames


def error_fields(error: BaseException) -> tuple[str, str]:
    """An exception as (kind, text): the class name and the message."""
    return type(error).__name__, str(error)


def serve(store_module: Any, fd: int, path: str, synchronous: str, busy_ms: int,
          lifetime: float, parent: int) -> int:  # fmt: skip
    """The child's main loop (see the module's doc); returns the exit status."""
    _die_with(parent)
    sock = socket.socket(fileno=fd)
    try:
        store = store_module.Store(path)
        store.set_synchronous(synchronous)
        store.set_busy_timeout(busy_ms / 1000)
    except BaseException as error:  # the parent raises it from start()
        sock.sendall(encode(("failed", *error_fields(error))))
        return 1
    sock.sendall(encode(("ready",)))
    exchange = store_module.Exchange
    reader = FrameReader(sock)
    items: list[Any] = []
    try:
        while True:
            frames = reader.read(block=not items)
            if frames is None:
                if any(item[0] == "S" for item in items):
                    _run(store, exchange, sock, items, lifetime)
                return 0  # the parent is gone: commit nothing more
            for frame in frames:  # a list of writes, or one barrier or stop
                if frame.__class__ is list:
                    items.extend(frame)
                else:
                    items.append(frame)
            if frames and len(items) < MAX_GROUP and items[-1][0] != "S":
                continue  # more may be waiting: group it with these
            stop = _run(store, exchange, sock, items, lifetime)
            items = []
            if stop:
                break
    except (BrokenPipeError, ConnectionResetError):
        return 0  # the parent is gone
    finally:
        store.close()
    return 0


def _die_with(parent: int) -> None:
    """Be killed when the parent process dies (Linux's PR_SET_PDEATHSIG), so that after a
    ``kill -9`` of the service no commit of this process follows the restarted
    service's own (which puts in-flight messages back in the queue)."""
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL, 0, 0, 0)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # not Linux: end of file on the socket stops it
        pass
    if os.getppid() != parent:
        os._exit(0)  # the parent died before prctl took effect


def _run(store: Any, exchange: Any, sock: socket.socket, items: list[Any], lifetime: float) -> bool:
    """Commit the writes among ``items`` in groups, answer them and the barriers in
    order; True when a stop came."""
    out: list[bytes] = []
    group: list[Any] = []
    stop = False
    for item in items:
        kind = item[0]
        if kind in ("F", "M"):
            group.append(item)
            if len(group) >= MAX_GROUP:
                out.append(_commit(store, exchange, group, lifetime))
                group = []
            continue
        if group:
            out.append(_commit(store, exchange, group, lifetime))
            group = []
        if kind == "B":
            out.append(encode(item))
        elif kind == "S":
            stop = True
            break
    if group:
        out.append(_commit(store, exchange, group, lifetime))
    sock.sendall(b"".join(out))
    return stop


def _commit(store: Any, exchange: Any, group: list[Any], lifetime: float) -> bytes:
    """One transaction for ``group``; the results frame. A locked or full database
    fails every write of the group alike; another error is found by committing
    the writes one by one, so one bad write does not fail its neighbours."""
    try:
        with store.transaction():
            results = _apply(store, exchange, group, lifetime)
    except sqlite3.OperationalError as error:
        failed = (False, *error_fields(error))
        return encode(("R", 0, [failed] * len(group)))
    except Exception as error:
        if len(group) == 1:
            print(f"libcoap-py storage: a write failed: {error!r}", file=sys.stderr)
            return encode(("R", 0, [(False, *error_fields(error))]))
        one_by_one: list[Any] = []
        committed = 0
        for item in group:
            _, count, results = marshal.loads(_commit(store, exchange, [item], lifetime)[4:])
            committed += count
            one_by_one.extend(results)
        return encode(("R", committed, one_by_one))
    return encode(("R", 1, results))


def _apply(store: Any, exchange: Any, group: list[Any], lifetime: float) -> list[Any]:
    """The group's writes, batched by kind: filings, then marks."""
    results: list[Any] = [(True, None)] * len(group)
    filings = [(i, item) for i, item in enumerate(group) if item[0] == "F"]
    if filings:
        exchanges = [exchange(*item[1:]) for _, item in filings]
        filed = store.file_exchanges(exchanges, lifetime=lifetime)
        for (i, _), result in zip(filings, filed):
            message = result.downstream
            results[i] = (
                True,
                (result.inbox_id, result.repeated, None if message is None else astuple(message)),
            )
    marks = [(item[1], item[2]) for item in group if item[0] == "M"]
    if marks:
        store.mark_outbox_many(marks)
    return results
