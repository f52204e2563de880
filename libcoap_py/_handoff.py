"""Work handed to a Context's loop from other threads (``Context.call_soon_threadsafe``).

A Context belongs to one thread. Another thread (a storage writer, an executor)
hands it a callable; the loop runs it at its next pass, on its own thread.

How the loop wakes: libcoap waits in ``epoll_wait`` on the descriptor
``coap_context_get_coap_fd`` returns. A pipe's read end is added to that epoll set
(``lcp_wake_attach``), with the NULL event pointer libcoap's dispatch skips,
so a write to it ends the wait and nothing else. Where libcoap was built
without epoll (the descriptor is -1), nothing can end the wait early: the
loop then waits in short slices while work is queued (``FALLBACK_SLICE_MS``).

Descriptors the loop watches (``Context.add_reader``) sit in an epoll set of
their own, whose descriptor joins libcoap's set the same way: data on any of
them ends libcoap's wait, and after each pass one ``epoll_wait`` without
timeout tells which callbacks to run. So another process (the data service's
storage process) can hand results to the loop with no thread in between.
"""

from __future__ import annotations

import logging
import os
import select
import threading
from collections import deque
from typing import Any, Callable

from ._binding import lib
from .errors import CoapError

__all__ = ["FALLBACK_SLICE_MS", "Handoff"]

log = logging.getLogger("libcoap_py")

#: Where the loop cannot be woken, the longest it waits while work is queued.
FALLBACK_SLICE_MS = 5
_ROUNDS = 4


class Handoff:
    """The queue of callables for one Context's loop, and the pipe that wakes it."""

    __slots__ = (
        "_closed",
        "_coap_fd",
        "_fd",
        "_lock",
        "_poller",
        "_read_fd",
        "_woken",
        "attached",
        "queue",
        "readers",
    )

    def __init__(self, coap_fd: int) -> None:
        self._coap_fd = coap_fd
        self.readers: dict[int, tuple[Callable[..., Any], tuple[Any, ...]]] = {}
        self._poller: select.epoll | None = None
        self.queue: deque[tuple[Callable[..., Any], tuple[Any, ...]]] = deque()
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
        """True while callables wait to run or descriptors are watched (the loop's cheap
        check after each pass)."""
        return bool(self.queue) or bool(self.readers)

    def submit(self, callback: Callable[..., Any], args: tuple[Any, ...]) -> None:
        """Queue ``callback(*args)`` and wake the loop. Any thread."""
        with self._lock:
            if self._closed:
                raise CoapError("the Context is closed")
            self.queue.append((callback, args))
            if self._fd >= 0:
                self._woken = True
                lib.lcp_wake(self._fd)  # EAGAIN (pipe full) still leaves a wake-up due

    def later(self, callback: Callable[..., Any], args: tuple[Any, ...]) -> None:
        """Queue ``callback(*args)`` without waking the loop: the loop's own thread,
        which runs it after the pass it is in (or at its next)."""
        if self._closed:
            raise CoapError("the Context is closed")
        self.queue.append((callback, args))

    def add_reader(self, fd: int, callback: Callable[..., Any], args: tuple[Any, ...]) -> None:
        """Run ``callback(*args)`` after each pass in which ``fd`` is readable. The loop's
        thread only."""
        if self._closed:
            raise CoapError("the Context is closed")
        poller = self._poller
        if poller is None:
            poller = select.epoll()
            if self._coap_fd >= 0:
                error = lib.lcp_wake_attach(self._coap_fd, poller.fileno())
                if error:
                    poller.close()
                    raise OSError(error, f"cannot watch a descriptor: {os.strerror(error)}")
            self._poller = poller
        if fd in self.readers:
            poller.modify(fd, select.EPOLLIN)
        else:
            poller.register(fd, select.EPOLLIN)
        self.readers[fd] = (callback, args)

    def remove_reader(self, fd: int) -> bool:
        """Stop watching ``fd``; False if it was not watched."""
        if self.readers.pop(fd, None) is None:
            return False
        if self._poller is not None:
            try:
                self._poller.unregister(fd)
            except (OSError, ValueError):
                pass  # closed already: the kernel forgot it
        return True

    def run(self, on_error: Callable[[BaseException], None]) -> None:
        """On the loop's thread: the callbacks of watched descriptors that are readable,
        then what is queued, in order."""
        if self._woken:
            self._woken = False
            try:  # empty the pipe (edge-triggered: a full pipe would no longer wake)
                while len(os.read(self._read_fd, 4096)) == 4096:
                    pass
            except BlockingIOError:
                pass
        # Watched descriptors first: what their callbacks queue runs in this pass.
        if self.readers and self._poller is not None:
            for fd, _ in self._poller.poll(0):
                entry = self.readers.get(fd)
                if entry is not None:
                    try:
                        entry[0](*entry[1])
                    except BaseException as error:
                        on_error(error)
        # What the callbacks queue themselves runs too, for a few rounds: a hand-back
        # that schedules a follow-up (the data service's writes) does not wait for
        # the loop's next wake-up.
        for _ in range(_ROUNDS):
            if not self.queue:
                break
            for _ in range(len(self.queue)):
                callback, args = self.queue.popleft()
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
            if self._poller is not None:
                self._poller.close()
                self._poller = None
            self.readers.clear()
            left = list(self.queue)
            self.queue.clear()
        return left
