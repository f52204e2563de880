"""Waiting on a condition with a bounded timeout (the tests never sleep)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import libcoap_py as coap_t


def wait_until(condition: Callable[[], bool], timeout: float, interval: float = 0.01) -> bool:
    """Poll ``condition`` until it holds or ``timeout`` passed; return its last value."""
    deadline = time.monotonic() + timeout
    pause = threading.Event()  # never set: wait() is the bounded pause between polls
    while True:
        if condition():
            return True
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False
        pause.wait(min(interval, remaining))


def run_until(ctx: coap_t.Context, condition: Callable[[], bool], timeout: float) -> bool:
    """Drive ``ctx`` (``run_once``) until ``condition`` holds or ``timeout`` passed;
    return whether it holds."""
    deadline = time.monotonic() + timeout
    while not condition():
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False
        ctx.run_once(max(1, min(100, int(remaining * 1000))))
    return True
