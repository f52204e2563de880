"""The per-test hang guard: a test still running after ``TEST_DEADLINE_S`` fails with
``TestHang`` instead of stalling the whole run.

The guard is SIGALRM from ITIMER_REAL: the one wall-clock timer of a process whose
signal interrupts a blocking call (libcoap waiting in poll) in the main thread. A test
that needs SIGALRM for itself must not take the timer over (``signal.setitimer`` would
replace the guard's time, and putting the guard's handler back would not bring the time
back): it asks the guard with ``HangGuard.alarms(handler)``, and the one timer is armed
for whichever is due first, each ring going to its owner.
"""

from __future__ import annotations

import contextlib
import math
import signal
import time
from collections.abc import Callable, Iterator
from types import FrameType
from typing import Any

#: Upper bound for any single test; a hang fails the test instead of the run.
TEST_DEADLINE_S = 45

#: A SIGALRM handler, as ``signal.signal`` takes it.
AlarmHandler = Callable[[int, "FrameType | None"], Any]


class TestHang(Exception):
    """Raised in a test that ran past its hang guard's deadline."""

    __test__ = False


class HangGuard:
    """SIGALRM raises TestHang ``seconds`` after ``install()``; alarms of the test's own
    go through ``alarms()``. Main thread only (signal handlers are set there)."""

    def __init__(self, seconds: float = TEST_DEADLINE_S) -> None:
        self.seconds = seconds
        #: When the guard fires (``time.monotonic()``); infinite once it fired.
        self.deadline = math.inf
        self._alarm_at: float | None = None
        self._alarm_handler: AlarmHandler | None = None
        self._previous: Any = None

    def install(self) -> None:
        """Take SIGALRM and arm the guard."""
        self._previous = signal.signal(signal.SIGALRM, self._ring)
        self.deadline = time.monotonic() + self.seconds
        self._arm()

    def uninstall(self) -> None:
        """Disarm the timer and give SIGALRM back to its previous handler."""
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, self._previous)

    def expire_in(self, seconds: float) -> None:
        """Move the guard's deadline to ``seconds`` from now (for tests of the guard)."""
        self.deadline = time.monotonic() + seconds
        self._arm()

    @contextlib.contextmanager
    def alarms(self, handler: AlarmHandler) -> Iterator[Callable[[float], None]]:
        """Within the block, ``arm(seconds)`` makes SIGALRM call ``handler`` once, after
        ``seconds`` (a later ``arm`` replaces a pending alarm). The guard stays armed all
        along; leaving the block drops a pending alarm and keeps the guard."""
        if self._alarm_handler is not None:
            raise RuntimeError("the test's alarm is already taken")

        def arm(seconds: float) -> None:
            self._alarm_at = time.monotonic() + seconds
            self._arm()

        self._alarm_handler = handler
        try:
            yield arm
        finally:
            self._alarm_handler = None
            self._alarm_at = None
            self._arm()

    def _arm(self) -> None:
        due = self.deadline if self._alarm_at is None else min(self.deadline, self._alarm_at)
        if math.isinf(due):
            signal.setitimer(signal.ITIMER_REAL, 0)
        else:  # (0 would disarm: a due time already passed rings at once)
            signal.setitimer(signal.ITIMER_REAL, max(due - time.monotonic(), 0.001))

    def _ring(self, signum: int, frame: FrameType | None) -> None:
        now = time.monotonic()
        handler = self._alarm_handler
        if self._alarm_at is not None and now >= self._alarm_at and handler is not None:
            self._alarm_at = None
            self._arm()
            handler(signum, frame)
        elif now >= self.deadline:
            self.deadline = math.inf
            self._arm()  # a pending alarm of the test still rings
            raise TestHang(f"test still running after {self.seconds} s")
        else:  # early by the clocks' granularity: not due yet
            self._arm()
