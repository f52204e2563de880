"""Work handed to a Context's loop from other threads (``Context.call_soon_threadsafe``).

A Context belongs to one thread. Another thread (a storage writer, an executor)
hands it a callable; the loop runs it at its next pass, on its own thread.

How the loop wakes: libcoap waits in ``epoll_wait`` on the descriptor
``coap_context_get_coap_fd`` returns. A pipe's read end is added to that epoll set
(``lcp_wake_attach``), with the NULL event pointer libcoap's dispatch skips,
so a write to it ends the wait and nothing else. Where libcoap was built
without epoll (the descriptor is -1), nothing can end the wait early: the
loop then waits in short slices while work is queued (``FALLBACK_SLICE_MS``).
"""

from __future__ import annotations

import logging
import os
import threading
from collections import deque
from typing import Any, Callable

from ._libcoap import lib
from .errors import CoapError

__all__ = ["FALLBACK_SLICE_MS", "Handoff"]

log = logging.getLogger("libcoap_py")

#: Where the loop cannot be woken, the longest it waits while work is queued.
FALLBACK_SLICE_MS = 5
_ROUNDS = 4


class Handoff:
    """The queue of callables for one Context's loop, and the pipe that wakes it."""

    __slots__ = ("_closed", "_fd", "_lock", "_queue", "_read_fd", "_woken", "attached")

    def __init__(self, coap_fd: int) -> None:
        self._queue: deque[tuple[Callable[..., Any], tuple[Any, ...]]] = deque()
        self._lock = threading.Lock()
        self._closed = False
        self._fd = self._read_fd = -1
        self._woken = False  # the pipe has bytes to read
        #: True when a hand-off ends the loop's wait at once (libcoap uses epoll).
        self.attached = False
        if coap_fd >= 0:
            read_fd, write_fd = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
            error = lib.lcp_wake_attach(coap_fd, read_fd)
            if error:
                os.close(read_fd)
                os.close(write_fd)
                log.debug(
                    "cannot add a wake-up descriptor to libcoap's epoll set: %s",
                    os.strerror(error),
                )
            else:
                self._read_fd, self._fd = read_fd, write_fd
                self.attached = True

    def __bool__(self) -> bool:
        """True while callables wait to run (the loop's cheap check after each pass)."""
        return bool(self._queue)

    def submit(self, callback: Callable[..., Any], args: tuple[Any, ...]) -> None:
        """Queue ``callback(*args)`` and wake the loop. Any thread."""
        with self._lock:
            if self._closed:
                raise CoapError("the Context is closed")
            self._queue.append((callback, args))
            if self._fd >= 0:
                self._woken = True
                lib.lcp_wake(self._fd)  # EAGAIN (pipe full) still leaves a wake-up due

    def later(self, callback: Callable[..., Any], args: tuple[Any, ...]) -> None:
        """Queue ``callback(*args)`` without waking the loop: the loop's own thread,
        which runs it after the pass it is in (or at its next)."""
        if self._closed:
            raise CoapError("the Context is closed")
        self._queue.append((callback, args))

    def run(self, on_error: Callable[[BaseException], None]) -> None:
        """Run what is queued, in order, on the loop's thread."""
        if self._woken:
            self._woken = False
            try:  # empty the pipe (edge-triggered: a full pipe would no longer wake)
                while len(os.read(self._read_fd, 4096)) == 4096:
                    pass
            except BlockingIOError:
                pass
        # What the callbacks queue themselves runs too, for a few rounds: a hand-back
        # that schedules a follow-up (the data service's writes) does not wait for
        # the loop's next wake-up.
        for _ in range(_ROUNDS):
            if not self._queue:
                break
            for _ in range(len(self._queue)):
                callback, args = self._queue.popleft()
                try:
                    callback(*args)
                except BaseException as error:  # re-raised by the loop, as a handler's is
                    on_error(error)

    def close(self) -> list[tuple[Callable[..., Any], tuple[Any, ...]]]:
        """Refuse further hand-offs; return what never ran. Idempotent."""
        with self._lock:
            self._closed = True
            if self._fd >= 0:
                os.close(self._fd)
                os.close(self._read_fd)
                self._fd = self._read_fd = -1
            left = list(self._queue)
            self._queue.clear()
        return left
