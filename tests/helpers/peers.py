"""Peers in the test process: a UDP socket that stays silent or answers RST (behaviours
a real server will not produce on demand), and the binding as a server in a thread of
its own.

A libcoap_py Context belongs to the thread that made it, so the test thread never
touches a ServerThread's Context: ``setup(ctx)`` runs in the server thread and
returns plain values (ports, typically), and the thread serves in short
``run(timeout=...)`` passes, between which it looks for a stop request and for
functions queued with ``ServerThread.call``.
"""

from __future__ import annotations

import queue
import socket
import threading
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from helpers.waiting import wait_until

if TYPE_CHECKING:
    import libcoap_py as coap_t


class UdpPeer:
    """A UDP socket on 127.0.0.1 that records what it gets, answering per ``mode``.

    ``"silent"`` never answers (a server that is gone but whose port is held, so
    no ICMP error either); ``"rst"`` answers every CON with an RST for its MID.
    """

    def __init__(self, mode: str) -> None:
        self.mode = mode
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.05)
        self.port = int(self.sock.getsockname()[1])
        self.received: list[bytes] = []
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"udp-peer-{mode}", daemon=True)
        self._thread.start()

    @property
    def uri(self) -> str:
        return f"coap://127.0.0.1:{self.port}"

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                data, addr = self.sock.recvfrom(65535)
            except socket.timeout:
                continue
            except OSError:
                return
            with self._cond:
                self.received.append(data)
                self._cond.notify_all()
            if self.mode == "rst" and len(data) >= 4 and (data[0] >> 4) & 0x3 == 0:  # CON
                self.sock.sendto(bytes([0x70, 0x00]) + data[2:4], addr)

    def wait_for(self, count: int, timeout: float = 5.0) -> list[bytes]:
        """Wait until ``count`` datagrams arrived (or the timeout), return them all."""
        with self._cond:
            self._cond.wait_for(lambda: len(self.received) >= count, timeout)
            return list(self.received)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        self.sock.close()


SetupResult = TypeVar("SetupResult")
CallResult = TypeVar("CallResult")

#: Longest single ``ctx.run()`` pass of a ServerThread: how late it sees a stop.
SERVER_PASS_S = 0.05


class ServerThread(Generic[SetupResult]):
    """A ``libcoap_py.Context`` made, set up and served in a thread of its own."""

    def __init__(
        self, setup: Callable[[coap_t.Context], SetupResult], *, name: str = "coap-server"
    ) -> None:
        self._setup = setup
        self._stop_requested = threading.Event()
        self._ready = threading.Event()
        self._calls: queue.Queue[tuple[Callable[[Any], Any], Future[Any]]] = queue.Queue()
        self._result: SetupResult | None = None
        #: What setup or the serving loop raised (the loop ends at the first one).
        self.error: BaseException | None = None
        #: Completed ``run()`` passes (grows while the server is alive and serving).
        self.passes = 0
        self._thread = threading.Thread(target=self._main, name=name, daemon=True)

    def start(self, timeout: float = 10.0) -> SetupResult:
        """Start the thread; wait for ``setup`` and return what it returned."""
        self._thread.start()
        if not self._ready.wait(timeout):
            raise RuntimeError(f"server thread: setup did not finish within {timeout} s")
        if self.error is not None:
            raise self.error
        return self._result  # type: ignore[return-value]

    @property
    def alive(self) -> bool:
        return self._thread.is_alive()

    def _main(self) -> None:
        import libcoap_py as coap

        try:
            with coap.Context() as ctx:
                try:
                    self._result = self._setup(ctx)
                finally:
                    self._ready.set()
                while not self._stop_requested.is_set():
                    ctx.run(timeout=SERVER_PASS_S)
                    self.passes += 1
                    self._run_calls(ctx)
        except BaseException as exc:
            self.error = exc
        finally:
            self._ready.set()
            self._fail_calls()

    def _run_calls(self, ctx: coap_t.Context) -> None:
        while True:
            try:
                function, future = self._calls.get_nowait()
            except queue.Empty:
                return
            try:
                future.set_result(function(ctx))
            except BaseException as exc:
                future.set_exception(exc)

    def _fail_calls(self) -> None:
        while True:
            try:
                _, future = self._calls.get_nowait()
            except queue.Empty:
                return
            future.set_exception(RuntimeError("server thread ended before the call ran"))

    def call(self, function: Callable[[Any], CallResult], timeout: float = 10.0) -> CallResult:
        """Run ``function(ctx)`` in the server thread between two passes; return its result."""
        if not self.alive:
            raise RuntimeError(f"server thread is not running (error: {self.error!r})")
        future: Future[CallResult] = Future()
        self._calls.put((function, future))
        return future.result(timeout)

    def wait_passes(self, count: int = 2, timeout: float = 10.0) -> None:
        """Wait until the loop completed ``count`` more passes (it is not stuck)."""
        target = self.passes + count
        if not wait_until(lambda: self.passes >= target or not self.alive, timeout):
            raise AssertionError(f"server loop made no progress for {timeout} s")
        self.check()

    def check(self) -> None:
        """Raise if the server thread died or its loop raised."""
        if self.error is not None:
            raise AssertionError(f"server thread failed: {self.error!r}") from self.error
        if not self.alive:
            raise AssertionError("server thread ended unexpectedly")

    def take_error(self, timeout: float = 10.0) -> BaseException | None:
        """Wait for the thread to end by itself; return (and forget) what it raised."""
        self._thread.join(timeout)
        if self._thread.is_alive():
            raise AssertionError(f"server thread still serving after {timeout} s")
        error, self.error = self.error, None
        return error

    def stop(self, timeout: float = 10.0) -> None:
        """Ask the loop to end, join the thread, raise what it raised."""
        self._stop_requested.set()
        self._thread.join(timeout)
        if self._thread.is_alive():
            raise RuntimeError(f"server thread did not stop within {timeout} s")
        if self.error is not None:
            raise self.error


@dataclass(frozen=True)
class Seen:
    """A copy of what a server handler saw in its request (the request dies with the call)."""

    method: str
    code: int
    path: str
    query: tuple[str, ...]
    payload: bytes
    options: tuple[tuple[int, bytes], ...]
    content_format: int | None
    accept: int | None
    token: bytes
    mid: int
    type: int
    peer: tuple[str, int]
    proto: int
    peer_cn: str | None
    psk_identity: bytes | None

    @classmethod
    def of(cls, request: Any) -> Seen:
        return cls(
            method=request.method,
            code=request.code,
            path=request.path,
            query=tuple(request.query),
            payload=request.payload,
            options=tuple((int(n), bytes(v)) for n, v in request.options),
            content_format=request.content_format,
            accept=request.accept,
            token=request.token,
            mid=request.mid,
            type=request.type,
            peer=tuple(request.peer),
            proto=request.proto,
            peer_cn=request.peer_cn,
            psk_identity=request.psk_identity,
        )

    def option_values(self, number: int) -> list[bytes]:
        return [v for n, v in self.options if n == number]
