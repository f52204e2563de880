"""How request() waits: on its exchange, while signals, handlers, other sessions and
other contexts still get their turn, and a request that gave up leaves nothing open."""

from __future__ import annotations

import signal
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from helpers.ctools import CoapServer
from helpers.hang import HangGuard, TestHang
from helpers.peers import UdpPeer

import libcoap_py as coap


class Interrupted(Exception):
    pass


def _interrupt(signum: int, frame: Any) -> None:
    raise Interrupted


@pytest.fixture
def alarm(hang_guard: HangGuard) -> Iterator[Callable[[float], None]]:
    """``alarm(seconds)``: SIGALRM raises Interrupted after ``seconds`` (as Ctrl-C raises
    KeyboardInterrupt).

    SIGALRM and its timer (ITIMER_REAL) are the hang guard's too: the alarm goes
    through the guard, which stays armed while and after the alarm is used."""
    with hang_guard.alarms(_interrupt) as arm:
        yield arm


def test_a_signal_interrupts_a_long_request(
    alarm: Callable[[float], None], silent_peer: UdpPeer, coap_server: CoapServer
) -> None:
    with coap.Context() as ctx:
        session = ctx.client_session(silent_peer.uri)
        alarm(0.3)
        started = time.monotonic()
        with pytest.raises(Interrupted):
            session.request("GET", "slow", timeout=60)
        # The handler ran during the wait, not after the 60 s.
        assert time.monotonic() - started < 30
        # Nothing of the interrupted request is left armed: the next ones work.
        other = ctx.client_session(coap_server.coap_uri)
        for _ in range(3):
            assert other.request("GET", "", timeout=5).code is coap.Code.CONTENT


def test_the_hang_guard_fires_while_an_alarm_is_pending(
    alarm: Callable[[float], None], hang_guard: HangGuard, silent_peer: UdpPeer
) -> None:
    """An alarm due later than the guard does not hold the guard back."""
    with coap.Context() as ctx:
        session = ctx.client_session(silent_peer.uri)
        alarm(30)
        hang_guard.expire_in(0.2)
        with pytest.raises(TestHang):
            session.request("GET", "slow", timeout=10)


def test_the_hang_guard_fires_after_the_alarm_rang(
    alarm: Callable[[float], None], hang_guard: HangGuard, silent_peer: UdpPeer
) -> None:
    with coap.Context() as ctx:
        alarm(0.2)
        with pytest.raises(Interrupted):
            ctx.client_session(silent_peer.uri).request("GET", "slow", timeout=10)
        hang_guard.expire_in(0.2)
        with pytest.raises(TestHang):
            ctx.client_session(silent_peer.uri).request("GET", "slow", timeout=10)


def test_the_hang_guard_fires_after_the_alarm_is_given_back(
    hang_guard: HangGuard, silent_peer: UdpPeer
) -> None:
    """What the alarm fixture does at its teardown (and a pending alarm is dropped)."""
    with coap.Context() as ctx:
        with hang_guard.alarms(_interrupt) as arm:
            arm(0.2)
            with pytest.raises(Interrupted):
                ctx.client_session(silent_peer.uri).request("GET", "slow", timeout=10)
            arm(0.2)
        # The guard's time is still running (the alarm did not take the timer away).
        remaining, _ = signal.getitimer(signal.ITIMER_REAL)
        assert 0 < remaining <= hang_guard.seconds
        hang_guard.expire_in(0.2)
        with pytest.raises(TestHang):
            ctx.client_session(silent_peer.uri).request("GET", "slow", timeout=10)


def test_handlers_of_other_sessions_run_while_a_request_waits(coap_server: CoapServer) -> None:
    with coap.Context() as ctx:
        seen: list[tuple[coap.Session | None, Any]] = []

        @ctx.register_response_handler
        def on_response(session: Any, sent: Any, received: Any, mid: int) -> None:
            seen.append((session, received.code))

        raw = ctx.client_session(coap_server.coap_uri)
        waiting = ctx.client_session(coap_server.coap_uri)
        raw.send(raw.new_pdu(coap.MessageType.CON, coap.Code.GET))
        response = waiting.request("GET", "", timeout=5)
        assert response.code is coap.Code.CONTENT
        assert response.payload.startswith(b"This is a test server")
        # The raw PDU's answer went to the handler (during or after the wait), and
        # the request's answer did not.
        deadline = time.monotonic() + 5
        while not seen:
            assert time.monotonic() < deadline, "the raw PDU was not answered"
            ctx.run_once(200)
        assert seen == [(raw, coap.Code.CONTENT)]


def test_a_request_of_another_context_from_inside_a_handler(coap_server: CoapServer) -> None:
    """A handler that runs while one request waits makes a request on another Context:
    each gets its own answer."""
    with coap.Context() as outer, coap.Context() as inner:
        inner_session = inner.client_session(coap_server.coap_uri)
        inner_answers: list[coap.Response] = []

        @outer.register_response_handler
        def on_response(session: Any, sent: Any, received: Any, mid: int) -> None:
            inner_answers.append(inner_session.request("GET", "time", timeout=5))

        raw = outer.client_session(coap_server.coap_uri)
        waiting = outer.client_session(coap_server.coap_uri)
        raw.send(raw.new_pdu(coap.MessageType.CON, coap.Code.GET))
        response = waiting.request("GET", "", timeout=5)
        assert response.payload.startswith(b"This is a test server")
        deadline = time.monotonic() + 5
        while not inner_answers:
            assert time.monotonic() < deadline, "the raw PDU was not answered"
            outer.run_once(200)
        assert inner_answers[0].code is coap.Code.CONTENT
        assert not inner_answers[0].payload.startswith(b"This is a test server")


def _ack(request: bytes, payload: bytes) -> bytes:
    """A piggybacked 2.05 answering a CON request datagram (same MID and token)."""
    tkl = request[0] & 0x0F
    return bytes([0x60 | tkl, 0x45]) + request[2 : 4 + tkl] + b"\xff" + payload


def test_an_answer_after_the_timeout_goes_nowhere() -> None:
    """A response that comes after request() gave up is neither taken by the next
    request of the session nor handed to the response handler."""
    peer = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    peer.bind(("127.0.0.1", 0))
    peer.settimeout(10)
    try:
        with coap.Context() as ctx:
            handled: list[Any] = []
            ctx.register_response_handler(lambda *args: handled.append(args))
            session = ctx.client_session(f"coap://127.0.0.1:{peer.getsockname()[1]}")
            with pytest.raises(coap.RequestTimeout):
                session.request("GET", "first", timeout=0.2)
            first, client = peer.recvfrom(2048)
            # The late answer. It reaches the client while the next request waits: that
            # one is sent only then, once the first is done (NSTART 1).
            peer.sendto(_ack(first, b"late"), client)

            def answer_the_second() -> None:
                second = first
                while second[2:4] == first[2:4]:  # not a retransmission of the first
                    second, _ = peer.recvfrom(2048)
                peer.sendto(_ack(second, b"second"), client)

            answering = threading.Thread(target=answer_the_second)
            answering.start()
            try:
                response = session.request("GET", "second", timeout=10)
            finally:
                answering.join(10)
            assert response.payload == b"second"
            for _ in range(5):
                ctx.run_once(20)
            assert handled == []
    finally:
        peer.close()


def test_answers_of_every_size_come_back_whole(coap_server: CoapServer, unique_path: str) -> None:
    # Answers of many sizes, in any order (a small one after a large one too), each
    # read whole. (Once a test of the C request waiter's inline buffer, which the
    # exchange engine replaced; the sizes stay around its old 2 KiB edge.)
    from helpers.payloads import binary_payload

    sizes = [0, 1, 10, 1000, 2000, 2020, 2028, 2036, 2040, 2100, 5000, 10, 2030, 3000, 0, 7]
    with coap.Context() as ctx:
        session = ctx.client_session(coap_server.coap_uri)
        for size in sizes:
            body = binary_payload(size)
            put = session.request(
                "PUT", unique_path, body, content_format=coap.ContentFormat.OCTET_STREAM,
                timeout=20,
            )  # fmt: skip
            assert put.code.class_ == 2, (size, put)
            got = session.request("GET", unique_path, timeout=20)
            assert got.code is coap.Code.CONTENT, size
            assert got.payload == body, size
            assert got.content_format == coap.ContentFormat.OCTET_STREAM, size
            assert got.type is coap.MessageType.ACK
            assert 1 <= len(got.token) <= 8 and 0 <= got.mid <= 0xFFFF
