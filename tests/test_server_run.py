"""Running and stopping a serving Context: run(timeout), stop() from a handler and a
signal handler, handle_signals=True with SIGINT/SIGTERM (in a subprocess), and
KeyboardInterrupt/SystemExit raised in a handler.

Each Context is made and run inside the thread that runs it; a hang shows as a
thread still alive at its deadline, never as a stuck test run.
"""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import textwrap
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import pytest
from helpers.codec import raw_coap_request
from helpers.net import coap_ping
from helpers.waiting import wait_until

import libcoap_py as coap


@dataclass
class Outcome:
    """What a function run in a thread did."""

    result: Any = None
    error: BaseException | None = None
    elapsed: float = 0.0
    done: threading.Event = field(default_factory=threading.Event)


def in_thread(body: Callable[[], Any]) -> tuple[threading.Thread, Outcome]:
    outcome = Outcome()

    def main() -> None:
        start = time.monotonic()
        try:
            outcome.result = body()
        except BaseException as exc:
            outcome.error = exc
        finally:
            outcome.elapsed = time.monotonic() - start
            outcome.done.set()

    thread = threading.Thread(target=main, daemon=True)
    thread.start()
    return thread, outcome


def finished(thread: threading.Thread, outcome: Outcome, timeout: float) -> Outcome:
    if not outcome.done.wait(timeout):
        raise AssertionError(f"still running after {timeout} s")
    thread.join(5)
    return outcome


# --------------------------------------------------------------------------
# run(timeout=...)


@pytest.mark.parametrize("timeout", [0.3, 1.0])
def test_run_returns_after_about_the_timeout(timeout: float) -> None:
    def body() -> float:
        with coap.Context() as ctx:
            ctx.add_endpoint("coap://127.0.0.1:0")
            start = time.monotonic()
            ctx.run(timeout=timeout)
            return time.monotonic() - start

    outcome = finished(*in_thread(body), timeout=timeout + 30)
    assert outcome.error is None, repr(outcome.error)
    # Not before its timeout (libcoap counts in ms: a little early at most); the upper
    # bound only tells "returned after its timeout" from "ran on": a wide margin.
    assert timeout * 0.9 <= outcome.result < timeout + 20, outcome.result


@pytest.mark.parametrize("timeout", [0, 0.0, 0.0004, 0.001, 0.01])
def test_run_with_tiny_timeout_does_not_block(timeout: float) -> None:
    """libcoap reads a wait of 0 ms as 'forever': a sub-millisecond timeout must not become that."""

    def body() -> None:
        with coap.Context() as ctx:
            ctx.add_endpoint("coap://127.0.0.1:0")
            ctx.run(timeout=timeout)

    # run() returned at all (forever is what libcoap makes of 0 ms); how soon is not
    # measured here, a busy machine may take its time
    outcome = finished(*in_thread(body), timeout=30)
    assert outcome.error is None, repr(outcome.error)


def test_run_timeout_holds_while_requests_keep_arriving() -> None:
    """Traffic wakes the loop up again and again; the deadline must still hold."""
    port_box: list[int] = []
    served: list[int] = []
    ready = threading.Event()

    def body() -> float:
        with coap.Context() as ctx:

            @ctx.resource("tick", methods=("GET",))
            def tick(request: Any, response: Any) -> None:
                served.append(1)
                response.payload = b"t"

            port_box.append(ctx.add_endpoint("coap://127.0.0.1:0").port)
            ready.set()
            start = time.monotonic()
            ctx.run(timeout=1.0)
            return time.monotonic() - start

    thread, outcome = in_thread(body)
    assert ready.wait(10)
    # Requests keep coming for 30 s unless run() returns: one that waited for a quiet
    # moment would run 30 s or more, not about its 1 s.
    deadline = time.monotonic() + 30
    while not outcome.done.is_set() and time.monotonic() < deadline:
        try:
            raw_coap_request(port_box[0], coap.Code.GET, "tick", timeout=0.5)
        except TimeoutError:
            pass  # the server is between run() calls or gone: the loop checks below
    finished(thread, outcome, timeout=5)
    assert outcome.error is None, repr(outcome.error)
    assert served, "no request was served during run()"
    assert 0.9 <= outcome.result < 20, outcome.result


# --------------------------------------------------------------------------
# stop()


def test_stop_from_handler_ends_run_and_run_can_serve_again() -> None:
    port_box: list[int] = []
    returns: list[str] = []
    second_run: list[float] = []
    ready = threading.Event()

    def body() -> None:
        with coap.Context() as ctx:

            @ctx.resource("stop", methods=("POST",))
            def stop(request: Any, response: Any) -> None:
                response.payload = b"bye"
                ctx.stop()

            @ctx.resource("hello", methods=("GET",))
            def hello(request: Any, response: Any) -> None:
                response.payload = b"hi"

            port_box.append(ctx.add_endpoint("coap://127.0.0.1:0").port)
            ready.set()
            ctx.run()  # no timeout: only stop() ends it
            returns.append("first")
            started = time.monotonic()
            ctx.run(timeout=30)
            second_run.append(time.monotonic() - started)
            returns.append("second")

    thread, outcome = in_thread(body)
    assert ready.wait(10)
    port = port_box[0]
    assert raw_coap_request(port, coap.Code.GET, "hello").payload == b"hi"
    answer = raw_coap_request(port, coap.Code.POST, "stop")
    assert (answer.code, answer.payload) == (coap.Code.CHANGED, b"bye")
    assert wait_until(lambda: returns == ["first"] or outcome.done.is_set(), 5), returns
    assert outcome.error is None, repr(outcome.error)
    # the second run() serves (the earlier stop() does not linger) until stopped again
    assert raw_coap_request(port, coap.Code.GET, "hello").payload == b"hi"
    raw_coap_request(port, coap.Code.POST, "stop")
    outcome = finished(thread, outcome, timeout=35)
    assert outcome.error is None, repr(outcome.error)
    assert returns == ["first", "second"]
    # (a lost stop() leaves it running to its 30 s timeout)
    assert second_run[0] < 25, "the second run() waited for its timeout: stop() was lost"


def test_stop_from_another_thread() -> None:
    """docs/server.md: stop() is safe from other threads; run() returns soon after."""
    ctx_box: list[coap.Context] = []
    port_box: list[int] = []
    ready = threading.Event()

    def body() -> None:
        with coap.Context() as ctx:

            @ctx.resource("hello", methods=("GET",))
            def hello(request: Any, response: Any) -> None:
                response.payload = b"hi"

            port_box.append(ctx.add_endpoint("coap://127.0.0.1:0").port)
            ctx_box.append(ctx)
            ready.set()
            ctx.run()  # no timeout: only stop() ends it

    thread, outcome = in_thread(body)
    assert ready.wait(10)
    # a served request proves run() has started (a stop() before run() is not this test)
    assert raw_coap_request(port_box[0], coap.Code.GET, "hello").payload == b"hi"
    ctx_box[0].stop()
    # run() returns (documented: within 250 ms; not timed here, a busy machine may
    # take longer)
    outcome = finished(thread, outcome, timeout=30)
    assert outcome.error is None, repr(outcome.error)


@pytest.mark.parametrize("exc_type", [KeyboardInterrupt, SystemExit])
def test_keyboard_interrupt_and_system_exit_in_handler_propagate(
    exc_type: type[BaseException],
) -> None:
    port_box: list[int] = []
    ready = threading.Event()

    def body() -> None:
        with coap.Context() as ctx:

            @ctx.resource("quit", methods=("POST",))
            def quit_handler(request: Any, response: Any) -> None:
                raise exc_type()

            port_box.append(ctx.add_endpoint("coap://127.0.0.1:0").port)
            ready.set()
            ctx.run(timeout=30)

    thread, outcome = in_thread(body)
    assert ready.wait(10)
    try:
        raw_coap_request(port_box[0], coap.Code.POST, "quit", timeout=2)
    except TimeoutError:
        pass  # whether an answer goes out before run() ends is not specified
    outcome = finished(thread, outcome, timeout=35)
    assert isinstance(outcome.error, exc_type), repr(outcome.error)
    assert outcome.elapsed < 25  # at once, not held back until run()'s 30 s timeout


def test_handle_signals_outside_main_thread_is_refused() -> None:
    def body() -> None:
        with coap.Context() as ctx:
            ctx.add_endpoint("coap://127.0.0.1:0")
            ctx.run(timeout=0.2, handle_signals=True)

    outcome = finished(*in_thread(body), timeout=10)
    assert isinstance(outcome.error, (ValueError, RuntimeError, coap.CoapError)), repr(
        outcome.error
    )


# --------------------------------------------------------------------------
# signals, in a subprocess (the main thread of a process of its own)

SERVER_SCRIPT = textwrap.dedent(
    """
    import signal
    import sys

    import libcoap_py as coap

    mode = sys.argv[1]
    with coap.Context() as ctx:
        endpoint = ctx.add_endpoint("coap://127.0.0.1:0")

        @ctx.resource("x", methods=("GET",))
        def x(request, response):
            response.payload = b"x"

        if mode == "own-handler":
            signal.signal(signal.SIGUSR1, lambda signum, frame: ctx.stop())
        print(endpoint.port, flush=True)
        # (what SIGINT had before: a process started in the background has it ignored)
        before = signal.getsignal(signal.SIGINT)
        ctx.run(handle_signals=(mode == "handle"))
        restored = signal.getsignal(signal.SIGINT) is before
        print("stopped", "restored" if restored else "not-restored", flush=True)
    """
)


def _start_script(mode: str) -> tuple[subprocess.Popen[bytes], int]:
    proc = subprocess.Popen(
        [sys.executable, "-I", "-c", SERVER_SCRIPT, mode],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
    )
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], 15)
    if not ready:
        proc.kill()
        proc.wait(5)
        raise AssertionError("the server script printed no port within 15 s")
    line = proc.stdout.readline()
    if not line.strip().isdigit():
        proc.kill()
        _, err = proc.communicate(timeout=5)
        raise AssertionError(f"server script failed: {line!r} {err.decode(errors='replace')}")
    port = int(line)
    if not wait_until(lambda: coap_ping("127.0.0.1", port), 10):
        proc.kill()
        proc.wait(5)
        raise AssertionError("the server script does not answer pings")
    return proc, port


@pytest.mark.parametrize(
    ("mode", "signum"),
    [
        ("handle", signal.SIGINT),
        ("handle", signal.SIGTERM),
        ("own-handler", signal.SIGUSR1),
    ],
    ids=["handle_signals-SIGINT", "handle_signals-SIGTERM", "own-handler-stop"],
)
def test_signal_stops_run_cleanly(mode: str, signum: int) -> None:
    proc, port = _start_script(mode)
    try:
        assert raw_coap_request(port, coap.Code.GET, "x").payload == b"x"
        os.kill(proc.pid, signum)
        try:
            out, err = proc.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            raise AssertionError("the server did not exit within 10 s of the signal") from None
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
    assert proc.returncode == 0, err.decode(errors="replace")
    assert out.split()[0] == b"stopped", out
    if mode == "handle":
        assert out.split()[1] == b"restored", "run() left its SIGINT handler installed"


def test_stop_before_run_is_not_lost() -> None:
    """A stop() that arrives before run() (e.g. from another thread) still ends it."""
    with coap.Context() as ctx:
        ctx.add_endpoint("coap://127.0.0.1:0")
        ctx.stop()
        started = time.monotonic()
        ctx.run(timeout=30)
        assert time.monotonic() - started < 25  # not its 30 s timeout
        # and the next run() serves again until its own stop
        started = time.monotonic()
        ctx.run(timeout=0.3)
        assert time.monotonic() - started >= 0.25
