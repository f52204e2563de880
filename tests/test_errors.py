"""How requests fail: timeouts, RST, bad input, oversized payloads, wrong thread."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator

import pytest
from helpers.build import LIBCOAP_42
from helpers.ctools import CoapServer
from helpers.peers import UdpPeer

import libcoap_py as coap


@pytest.fixture
def ctx() -> Iterator[coap.Context]:
    with coap.Context() as context:
        yield context


def quick_session(ctx: coap.Context, uri: str) -> coap.Session:
    """A session that gives up soon: one retransmission, 3-4.5 s in all.

    (1 s, not 0.2 s: libcoap 4.3.1 ignores an ACK_TIMEOUT below one second.)
    """
    session = ctx.client_session(uri)
    session.ack_timeout = 1.0
    session.max_retransmit = 1
    return session


def test_no_answer_is_request_timeout(ctx: coap.Context, silent_peer: UdpPeer) -> None:
    session = quick_session(ctx, silent_peer.uri)
    with pytest.raises(coap.RequestTimeout) as info:
        session.request("GET", "nothing-here")
    exc = info.value
    assert isinstance(exc, TimeoutError)
    assert isinstance(exc, coap.NackError) and isinstance(exc, coap.CoapError)
    assert exc.reason is coap.NackReason.TOO_MANY_RETRIES
    # libcoap really sent the request and retransmitted it once
    assert len(silent_peer.wait_for(2)) == 2


def test_request_timeout_parameter(ctx: coap.Context, silent_peer: UdpPeer) -> None:
    """timeout= cuts the wait short even while libcoap would keep retransmitting."""
    session = ctx.client_session(silent_peer.uri)  # default ACK_TIMEOUT 2 s, 4 retransmits
    with pytest.raises(coap.RequestTimeout):
        session.request("GET", "", timeout=0.5)
    with pytest.raises(TimeoutError):  # what generic callers catch
        session.request("GET", "", timeout=0.3)


def test_closed_port_is_nack_error(ctx: coap.Context, free_udp_port: int) -> None:
    """Nobody listening (ICMP port unreachable on loopback): a NackError, no hang."""
    session = quick_session(ctx, f"coap://127.0.0.1:{free_udp_port}")
    with pytest.raises(coap.NackError):
        session.request("GET", "", timeout=5)
    # and the context is still fine for the next request
    with pytest.raises(coap.NackError):
        session.request("GET", "", timeout=5)


def test_server_rst_is_reset_error(ctx: coap.Context, coap_server: CoapServer) -> None:
    """libcoap 4.3's server rejects a CON whose Uri-Port is a 4-byte string with RST."""
    session = ctx.client_session(coap_server.coap_uri)
    if LIBCOAP_42:
        _server_rst_42(ctx, session)
        return
    with pytest.raises(coap.ResetError) as info:
        session.request(
            "GET",
            "",
            # a RawValue goes out as it is: the binding would refuse 4 bytes for Uri-Port
            options=[(coap.OptionNumber.URI_PORT, coap.RawValue(b"5684"))],
            timeout=5,
        )
    assert isinstance(info.value, coap.NackError)
    assert not isinstance(info.value, TimeoutError)
    assert info.value.reason is coap.NackReason.RST
    # the same session goes on working
    assert session.request("GET", "", timeout=5).code is coap.Code.CONTENT


def _server_rst_42(ctx: coap.Context, session: coap.Session) -> None:
    """4.2's server takes any Uri-Port (the 4-byte string reads as port 892745780).

    It answers RST to a CON whose code is of the reserved class 1, which only
    send() can make; the RST reaches the NACK handler, and the session goes on.
    """
    reasons: list[coap.NackReason] = []
    ctx.register_nack_handler(lambda session, sent, reason, mid: reasons.append(reason))
    session.send(session.new_pdu(coap.MessageType.CON, 0x20))  # 1.00
    deadline = time.monotonic() + 5
    while not reasons and time.monotonic() < deadline:
        ctx.run_once(100)
    assert reasons == [coap.NackReason.RST]
    assert session.request("GET", "", timeout=5).code is coap.Code.CONTENT


def test_peer_rst_is_reset_error(ctx: coap.Context, rst_peer: UdpPeer) -> None:
    session = ctx.client_session(rst_peer.uri)
    with pytest.raises(coap.ResetError) as info:
        session.request("POST", "data", payload=b"x", timeout=5)
    assert info.value.reason is coap.NackReason.RST
    assert len(rst_peer.wait_for(1)) == 1  # answered on the first try, no retransmission


@pytest.mark.parametrize(
    "uri",
    [
        "coap://",
        "coap://[::1",
        "coap://host:99999",
        "coap://127.0.0.1:-1",
        "coap://127.0.0.1:port",
        "http://x",
        "https://127.0.0.1/",
        "127.0.0.1:5683",
        "",
    ],
)
def test_bad_uri_is_value_error(ctx: coap.Context, uri: str) -> None:
    with pytest.raises(ValueError):
        ctx.client_session(uri)


def test_unknown_method_and_option_are_value_errors(
    ctx: coap.Context, silent_peer: UdpPeer
) -> None:
    session = ctx.client_session(silent_peer.uri)
    with pytest.raises(ValueError):
        session.request("FETCHALL", "")
    with pytest.raises(ValueError):
        session.request(coap.Code.CONTENT, "")  # a response code is not a method
    with pytest.raises((ValueError, TypeError)):
        session.request("GET", "", options=[(0, b"x")])
    # none of these reached the wire: the first datagram the peer sees is this one
    with pytest.raises(coap.RequestTimeout):
        session.request("GET", "marker", confirmable=False, timeout=0.3)
    first = silent_peer.wait_for(1)[0]
    assert b"marker" in first


def test_payload_too_large(ctx: coap.Context, silent_peer: UdpPeer) -> None:
    """A raw PDU must fit one datagram (request() goes block-wise)."""
    session = ctx.client_session(silent_peer.uri)
    big = bytes(5000)
    pdu = session.new_pdu(coap.MessageType.CON, coap.Code.PUT)
    pdu.payload = big
    with pytest.raises(coap.PayloadTooLargeError) as info:
        session.send(pdu)
    exc = info.value
    assert isinstance(exc, ValueError) and isinstance(exc, coap.CoapError)
    message = str(exc)
    assert "5000" in message, message
    sizes = {int(n) for n in re.findall(r"\d+", message)}
    assert sizes - {5000}, f"the limit is not named: {message}"

    # nothing was sent: the first datagram the peer sees is the small marker
    with pytest.raises(coap.RequestTimeout):
        session.request("GET", "marker", confirmable=False, timeout=0.3)
    received = silent_peer.wait_for(1)
    assert len(received[0]) < 100 and b"marker" in received[0]


def test_max_payload_is_the_limit(ctx: coap.Context, coap_server: CoapServer) -> None:
    """max_payload bytes fit a request without options; a few bytes more do not."""
    session = ctx.client_session(coap_server.coap_uri)
    limit = session.max_payload
    r = session.request("POST", "", payload=bytes(limit), timeout=5)
    assert isinstance(r.code, coap.Code)  # it went out and came back answered
    pdu = session.new_pdu(coap.MessageType.CON, coap.Code.POST)
    pdu.payload = bytes(limit + 9)
    with pytest.raises(coap.PayloadTooLargeError):
        # +9: a limit computed for the longest (8-byte) token may leave that much slack
        session.send(pdu)


def test_use_from_another_thread(ctx: coap.Context, coap_server: CoapServer) -> None:
    session = ctx.client_session(coap_server.coap_uri)
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            session.request("GET", "", timeout=2)
        except BaseException as exc:  # handed back to the test thread
            errors.append(exc)

    thread = threading.Thread(target=worker)
    thread.start()
    thread.join(timeout=10)
    assert not thread.is_alive()
    assert len(errors) == 1, "request() from another thread did not raise"
    assert isinstance(errors[0], coap.CoapError), repr(errors[0])
    assert "thread" in str(errors[0]).lower()

    # the owner thread is unaffected
    assert session.request("GET", "", timeout=5).code is coap.Code.CONTENT


def test_context_from_another_thread(ctx: coap.Context, coap_server: CoapServer) -> None:
    errors: list[BaseException] = []

    def worker() -> None:
        for call in (lambda: ctx.run_once(0), lambda: ctx.client_session(coap_server.coap_uri)):
            try:
                call()
            except BaseException as exc:  # handed back to the test thread
                errors.append(exc)

    thread = threading.Thread(target=worker)
    thread.start()
    thread.join(timeout=10)
    assert len(errors) == 2
    assert all(isinstance(e, coap.CoapError) for e in errors), errors


@pytest.mark.parametrize(
    ("code", "error", "words"),
    [
        (1000, ValueError, "0..255"),
        (-1, ValueError, "0..255"),
        (1.5, TypeError, "coap.Code or an int"),
        ("GET", TypeError, "coap.Code or an int"),
        (True, TypeError, "coap.Code or an int"),
    ],
)
def test_a_message_code_out_of_range_is_refused(
    ctx: coap.Context, coap_server: CoapServer, code: object, error: type, words: str
) -> None:
    """A code libcoap cannot hold (it asserts, and aborts the process) is refused first."""
    session = ctx.client_session(coap_server.coap_uri)
    with pytest.raises(error, match=words):
        session.new_pdu(coap.MessageType.CON, code)  # type: ignore[arg-type]
    pdu = session.new_pdu(coap.MessageType.CON, coap.Code.GET)
    with pytest.raises(error, match=words):
        pdu.code = code  # type: ignore[assignment]
    pdu.code = 0x45  # an int in range is fine, and reads back as the Code
    assert pdu.code is coap.Code.CONTENT
    assert session.request("GET", "", timeout=5).code is coap.Code.CONTENT
