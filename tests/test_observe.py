"""Observe (RFC 7641) on both libcoap generations: the client against libcoap's server
(coap-server's /time), aiocoap and ours; our server against libcoap's client and
aiocoap; in order, CON and NON, cancel.

Re-registration after the server forgets: an observation survives a restart of our
server (a new Context on the same port, also over coaps://), of coap-server (a
new process) and of an aiocoap server, and goes on within Max-Age + 5 s (small Max-Age
values keep these short; over DTLS, libcoap 4.2 needs a second period and a new
handshake); a re-registration sent while the server is down does not end it. A server
that comes back without observe, or sends an error notification (4.04, or 5.00 from a
handler that raised), ends it; one that rejects the re-registration with RST ends it
with ResetError.

coap-server 4.2.1 flushes notifications only when some I/O wakes it (its loop
selects on the epoll descriptor and calls coap_run_once only then): its /time may stay
silent until the client re-registers after Max-Age (1 s) + 5 s.
"""

from __future__ import annotations

import asyncio
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from helpers.aio import AioServer
from helpers.ctools import (
    COAP_CLIENT,
    COAP_SERVER,
    COAP_SERVER_NAME,
    NO_CLIENT_REASON,
    NO_SERVER_REASON,
    CoapServer,
)
from helpers.net import coap_ping, free_port_pair, unused_udp_port
from helpers.waiting import wait_until

import libcoap_py as coap

OBSERVE = coap.OptionNumber.OBSERVE


class Counter:
    """Our server in a thread: an observable /counter that changes every 100 ms.

    ``notify()`` runs between ``run_once()`` calls (outside any handler), as a timer would.
    """

    def __init__(
        self,
        port: int = 0,
        confirmable: bool = False,
        max_age: int | None = None,
        value: int = 0,
        observable: bool = True,
        psk: coap.PSK | None = None,
    ):
        self.value = value
        self.port = port
        self.confirmable = confirmable
        self.max_age = max_age
        self.observable = observable
        self.psk = psk
        self.paused = False
        self.gone = False  # answer 4.04 from now on
        self.broken = False  # the handler raises from now on
        self.registrations = 0  # GETs with Observe 0 seen
        self.deregistrations = 0  # and with Observe 1
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        assert self._ready.wait(10)

    def _run(self) -> None:
        with coap.Context() as ctx:
            if self.psk is None:
                self.port = ctx.add_endpoint(f"coap://127.0.0.1:{self.port}").port
            else:
                self.port = ctx.add_endpoint(f"coaps://127.0.0.1:{self.port}", dtls=self.psk).port

            @ctx.resource(
                "counter",
                observable=self.observable,
                confirmable_notifications=self.confirmable,
            )
            def counter(request: coap.Request, response: coap.ServerResponse) -> None:
                if request.observe == 0:
                    self.registrations += 1
                elif request.observe == 1:
                    self.deregistrations += 1
                if self.gone:
                    response.code = coap.Code.NOT_FOUND
                    return
                if self.broken:
                    raise RuntimeError("the sensor is gone")  # the server answers 5.00
                response.payload = f"{self.value}\n"
                if self.max_age is not None:
                    response.add_option(coap.OptionNumber.MAX_AGE, self.max_age)

            self._ready.set()
            next_change = time.monotonic() + 0.1
            while not self._stop.is_set():
                ctx.run_once(20)
                if time.monotonic() >= next_change and not self.paused:
                    next_change = time.monotonic() + 0.1
                    self.value += 1
                    ctx.resources["counter"].notify()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)


class AioCounter:
    """An aiocoap server in a thread (``aiocoap_server``): an observable /counter that
    changes every 100 ms."""

    def __init__(
        self, start: Callable[..., AioServer], port: int, max_age: int, value: int = 0
    ) -> None:
        import aiocoap
        from aiocoap import resource

        self.max_age = max_age
        self.value = value
        self._stopped = False
        outer = self

        class Count(resource.ObservableResource):  # type: ignore[misc]
            async def render_get(self, request: Any) -> Any:
                message = aiocoap.Message(payload=f"{outer.value}\n".encode())
                message.opt.max_age = outer.max_age
                return message

        self._resource = Count()
        site = resource.Site()
        site.add_resource(["counter"], self._resource)
        self.server = start(site, port)
        self.port = self.server.port
        self.server.call(self._tick_later)

    def _tick_later(self) -> None:  # (in the server's loop thread)
        self._timer = self.server.loop.call_later(0.1, self._tick)

    def _tick(self) -> None:  # the resource changes: a timer in the server's loop
        self.value += 1
        self._resource.updated_state()
        self._tick_later()

    def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        self.server.call(lambda: self._timer.cancel())
        self.server.stop()


def drive(ctx: coap.Context, condition: Callable[[], bool], timeout: float) -> bool:
    """Run the client's loop until ``condition()`` holds, at most ``timeout`` seconds."""

    def step() -> bool:
        ctx.run_once(50)
        return condition()

    return wait_until(step, timeout, interval=0)


@pytest.fixture
def counter() -> Iterator[Counter]:
    server = Counter()
    yield server
    server.stop()


@pytest.fixture
def ctx() -> Iterator[coap.Context]:
    with coap.Context() as context:
        yield context


def test_observe_the_c_server_time_resource(ctx: coap.Context, coap_server: CoapServer) -> None:
    session = ctx.client_session(coap_server.coap_uri)
    seen: list[coap.Response] = []
    # the first response, then notifications: every second from 4.3's coap-server;
    # 4.2's sends when the re-registration after Max-Age (1 s) + 5 s wakes it
    for response in session.observe("time", timeout=20):
        seen.append(response)
        if len(seen) == 3:
            break
    assert len(seen) == 3, seen
    assert all(r.code is coap.Code.CONTENT for r in seen)
    numbers = [int.from_bytes(r.option(coap.OptionNumber.OBSERVE) or b"", "big") for r in seen]
    assert numbers == sorted(numbers) and len(set(numbers)) == len(numbers)


def test_notifications_arrive_in_order(ctx: coap.Context, counter: Counter) -> None:
    session = ctx.client_session(f"coap://127.0.0.1:{counter.port}")
    values = [int(r.payload) for r in session.observe("counter", timeout=1.5)]
    assert len(values) >= 8, values
    assert values == sorted(values)


def test_observe_with_a_chosen_token(ctx: coap.Context, counter: Counter) -> None:
    session = ctx.client_session(f"coap://127.0.0.1:{counter.port}")
    got = list(session.observe("counter", timeout=0.5, token=b"\x0b\x5e"))
    assert len(got) >= 2 and {r.token for r in got} == {b"\x0b\x5e"}
    with pytest.raises(ValueError, match="at most 8 bytes"):
        session.observe("counter", token=b"123456789")


@pytest.mark.parametrize("confirmable", [True, False])
def test_con_and_non_notifications(ctx: coap.Context, confirmable: bool) -> None:
    server = Counter(confirmable=confirmable)
    try:
        session = ctx.client_session(f"coap://127.0.0.1:{server.port}")
        kinds = [r.type for r in list(session.observe("counter", timeout=1.2))[1:]]
        assert kinds
        if confirmable:
            assert set(kinds) == {coap.MessageType.CON}
        else:  # NON, but every fifth is CON (RFC 7641, 4.5)
            assert coap.MessageType.NON in kinds
    finally:
        server.stop()


def test_callback_and_cancel(ctx: coap.Context, counter: Counter) -> None:
    session = ctx.client_session(f"coap://127.0.0.1:{counter.port}")
    got: list[int] = []
    observation = session.observe("counter", lambda r: got.append(int(r.payload)))
    deadline = time.monotonic() + 5
    while len(got) < 5:
        assert time.monotonic() < deadline, got
        ctx.run_once(100)
    observation.cancel()
    assert not observation.active
    # the server got the deregistration (a GET with Observe 1)
    assert drive(ctx, lambda: counter.deregistrations == 1, 5)
    settle = time.monotonic() + 0.5
    while time.monotonic() < settle:
        ctx.run_once(50)
    count = len(got)
    later = time.monotonic() + 0.6
    while time.monotonic() < later:
        ctx.run_once(50)
    assert len(got) == count, "notifications kept coming after cancel()"


def test_notify_from_a_handler(ctx: coap.Context, serve: Callable[..., Any]) -> None:
    state = {"value": "a"}

    def setup(server: coap.Context) -> int:
        resource = server.add_resource("state")
        resource.observable = True

        @resource.handler("GET")
        def get(request: coap.Request, response: coap.ServerResponse) -> None:
            response.payload = state["value"]

        @resource.handler("PUT")
        def put(request: coap.Request, response: coap.ServerResponse) -> None:
            state["value"] = request.text
            resource.notify()  # inside a handler: sent on the next pass

        return int(server.add_endpoint("coap://127.0.0.1:0").port)

    port = serve(setup)
    session = ctx.client_session(f"coap://127.0.0.1:{port}")
    got: list[str] = []
    observation = session.observe("state", lambda r: got.append(r.text))
    assert drive(ctx, lambda: got == ["a"], 5), got
    writer = ctx.client_session(f"coap://127.0.0.1:{port}")
    for value in ("b", "c"):
        assert writer.request("PUT", "state", value, timeout=5).code is coap.Code.CHANGED
        assert drive(ctx, lambda: got[-1] == value, 5), got  # noqa: B023
    assert got == ["a", "b", "c"]
    observation.cancel()


def test_error_response_ends_the_observation(ctx: coap.Context, counter: Counter) -> None:
    session = ctx.client_session(f"coap://127.0.0.1:{counter.port}")
    seen = list(session.observe("no-such-resource", timeout=5))
    assert [r.code for r in seen] == [coap.Code.NOT_FOUND]


@pytest.mark.skipif(COAP_CLIENT is None, reason=NO_CLIENT_REASON)
def test_c_client_observes_our_server(counter: Counter) -> None:
    out = subprocess.run(
        [COAP_CLIENT, "-s", "2", "-B", "3", f"coap://127.0.0.1:{counter.port}/counter"],
        capture_output=True,
        text=True,
        timeout=20,
    )
    values = [int(line) for line in out.stdout.split() if line.strip().isdigit()]
    assert len(values) >= 5, out.stdout + out.stderr
    assert values == sorted(values)


def test_aiocoap_observes_our_server(counter: Counter) -> None:
    aiocoap = pytest.importorskip("aiocoap", reason="aiocoap is not installed")

    async def watch() -> list[int]:
        client = await aiocoap.Context.create_client_context()
        try:
            request = aiocoap.Message(
                code=aiocoap.GET, uri=f"coap://127.0.0.1:{counter.port}/counter", observe=0
            )
            pending = client.request(request)
            first = await pending.response
            values = [int(first.payload)]
            async for notification in pending.observation:
                values.append(int(notification.payload))
                if len(values) >= 6:
                    pending.observation.cancel()
                    break
            return values
        finally:
            await client.shutdown()

    values: Any = asyncio.run(asyncio.wait_for(watch(), 20))
    assert len(values) >= 6 and values == sorted(values)


# --------------------------------------------------------------------------
# the server forgets: restarts, and what ends an observation


def test_survives_a_restart_of_our_server(ctx: coap.Context) -> None:
    server = Counter(max_age=2)
    port = server.port
    session = ctx.client_session(f"coap://127.0.0.1:{port}")
    got: list[int] = []
    observation = session.observe("counter", lambda r: got.append(int(r.payload)))
    try:
        assert drive(ctx, lambda: len(got) >= 3, 10), got
        server.stop()  # closing the Context tells the observers nothing
        server = Counter(port=port, max_age=2, value=1000)  # a new Context, same port
        # Max-Age 2 + 5 s after the last notification, the client registers again.
        assert drive(ctx, lambda: sum(v >= 1000 for v in got) >= 3, 20), got
        assert observation.active and observation.reregistrations >= 1
        assert server.registrations >= 1
        after = [v for v in got if v >= 1000]
        assert after == sorted(after)
    finally:
        observation.cancel()
        server.stop()


def test_survives_a_server_that_stays_down_a_while(ctx: coap.Context) -> None:
    server = Counter(max_age=1)
    port = server.port
    session = ctx.client_session(f"coap://127.0.0.1:{port}")
    got: list[int] = []
    observation = session.observe("counter", lambda r: got.append(int(r.payload)))
    try:
        assert drive(ctx, lambda: len(got) >= 3, 10), got
        server.stop()
        # A re-registration while nobody listens (an ICMP error, or no answer) ...
        assert drive(ctx, lambda: observation.reregistrations >= 1, 15)
        assert drive(ctx, lambda: not observation.active, 0.5) is False
        # ... does not end it: libcoap retransmits it, and the next period tries again.
        server = Counter(port=port, max_age=1, value=1000)
        assert drive(ctx, lambda: any(v >= 1000 for v in got), 20), got
        assert observation.active and observation.error is None
    finally:
        observation.cancel()
        server.stop()


@pytest.mark.needs_dtls
def test_survives_a_restart_over_dtls(ctx: coap.Context) -> None:
    server_psk = coap.PSK(hint=b"obs", keys={b"device": b"observe-psk-key"})
    server = Counter(max_age=1, psk=server_psk)
    port = server.port
    session = ctx.client_session(
        f"coaps://127.0.0.1:{port}", dtls=coap.PSK(b"device", b"observe-psk-key")
    )
    got: list[int] = []
    observation = session.observe("counter", lambda r: got.append(int(r.payload)))
    try:
        assert drive(ctx, lambda: len(got) >= 3, 10), got
        server.stop()
        server = Counter(port=port, max_age=1, value=1000, psk=server_psk)
        # The new server does not know the old DTLS association: a re-registration
        # that gets no answer is followed by one over a new handshake.
        assert drive(ctx, lambda: sum(v >= 1000 for v in got) >= 3, 30), got
        assert observation.active and observation.error is None
    finally:
        observation.cancel()
        server.stop()


def _start_coap_server(port: int) -> subprocess.Popen[bytes]:
    assert COAP_SERVER is not None
    process = subprocess.Popen(
        [COAP_SERVER, "-A", "127.0.0.1", "-p", str(port)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    if not wait_until(lambda: coap_ping("127.0.0.1", port), 10):
        process.kill()
        process.wait()
        raise RuntimeError(f"{COAP_SERVER_NAME} did not come up")
    return process


@pytest.mark.skipif(COAP_SERVER is None, reason=NO_SERVER_REASON)
def test_survives_a_restart_of_the_c_server(ctx: coap.Context) -> None:
    port = free_port_pair()
    process = _start_coap_server(port)
    try:
        session = ctx.client_session(f"coap://127.0.0.1:{port}")
        got: list[coap.Response] = []
        observation = session.observe("time", got.append)
        assert drive(ctx, lambda: len(got) >= 1, 10)
        process.kill()  # gone without a word, as after a crash
        process.wait()
        before = len(got)
        process = _start_coap_server(port)  # a new process on the same port
        # /time has Max-Age 1: the client registers again 6 s after the last response.
        assert drive(ctx, lambda: len(got) >= before + 2, 25), got
        assert observation.active and observation.reregistrations >= 1
        assert all(r.code is coap.Code.CONTENT for r in got)
        observation.cancel()
    finally:
        process.kill()
        process.wait()


# aiocoap may still hold the deregistration's request, unrendered, when it shuts down.
@pytest.mark.filterwarnings("ignore:coroutine .* was never awaited:RuntimeWarning")
def test_survives_a_restart_of_an_aiocoap_server(
    ctx: coap.Context, aiocoap_server: Callable[..., AioServer]
) -> None:
    port = unused_udp_port()
    server = AioCounter(aiocoap_server, port, max_age=2)
    session = ctx.client_session(f"coap://127.0.0.1:{port}")
    got: list[int] = []
    observation = session.observe("counter", lambda r: got.append(int(r.payload)))
    try:
        assert drive(ctx, lambda: len(got) >= 3, 10), got
        server.stop()
        server = AioCounter(aiocoap_server, port, max_age=2, value=1000)
        assert drive(ctx, lambda: sum(v >= 1000 for v in got) >= 3, 20), got
        assert observation.active and observation.reregistrations >= 1
        after = [v for v in got if v >= 1000]
        assert after == sorted(after)
    finally:
        observation.cancel()
        server.stop()


def test_a_server_back_without_observe_ends_it(ctx: coap.Context) -> None:
    server = Counter(max_age=1)
    port = server.port
    session = ctx.client_session(f"coap://127.0.0.1:{port}")
    observation = session.observe("counter", timeout=20)
    seen: list[coap.Response] = []
    try:
        for response in observation:
            seen.append(response)
            if len(seen) == 2:
                server.stop()
                server = Counter(port=port, max_age=1, value=1000, observable=False)
        # The re-registration got a 2.05 without Observe: the server declined (RFC 7641, 3.2).
        assert not observation.active and observation.error is None
        assert observation.reregistrations == 1
        last = seen[-1]
        assert last.code is coap.Code.CONTENT and last.option(OBSERVE) is None
        assert int(last.payload) >= 1000
    finally:
        server.stop()


@pytest.mark.parametrize("failure", ["4.04", "raises"])
def test_an_error_notification_ends_it(ctx: coap.Context, counter: Counter, failure: str) -> None:
    session = ctx.client_session(f"coap://127.0.0.1:{counter.port}")
    seen: list[coap.Response] = []
    for response in session.observe("counter", timeout=10):
        seen.append(response)
        if len(seen) == 3:  # the next notification is an error
            if failure == "4.04":
                counter.gone = True
            else:
                counter.broken = True
    expected = coap.Code.NOT_FOUND if failure == "4.04" else coap.Code.INTERNAL_SERVER_ERROR
    assert seen[-1].code is expected
    assert all(r.code is coap.Code.CONTENT for r in seen[:-1])


def _answer_rst(port: int, stop: threading.Event) -> threading.Thread:
    """A peer on ``port`` that rejects every CON with RST (a server that does not know us)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", port))
    sock.settimeout(0.05)

    def run() -> None:
        with sock:
            while not stop.is_set():
                try:
                    data, peer = sock.recvfrom(2048)
                except socket.timeout:
                    continue
                if len(data) >= 4 and (data[0] >> 4) & 3 == 0:
                    sock.sendto(bytes([0x70, 0]) + data[2:4], peer)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def test_a_reregistration_rejected_with_rst_ends_it(ctx: coap.Context) -> None:
    server = Counter(max_age=1)
    port = server.port
    session = ctx.client_session(f"coap://127.0.0.1:{port}")
    observation = session.observe("counter", timeout=20)
    stop = threading.Event()
    seen: list[coap.Response] = []
    try:
        with pytest.raises(coap.ResetError):
            for response in observation:
                seen.append(response)
                if len(seen) == 2:
                    server.stop()
                    _answer_rst(port, stop)
        assert not observation.active and observation.reregistrations == 1
    finally:
        stop.set()
        server.stop()
