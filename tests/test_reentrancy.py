"""What handlers may do while libcoap is inside coap_io_process: send, close; not wait."""

from __future__ import annotations

import time
from typing import Any

import pytest
from helpers.ctools import CoapServer

import libcoap_py as coap


def run_until(ctx: coap.Context, done: Any, seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not done():
        assert time.monotonic() < deadline, "condition not reached in time"
        ctx.run_once(100)


def test_send_from_a_response_handler_chains_requests(coap_server: CoapServer) -> None:
    with coap.Context() as ctx:
        session = ctx.client_session(coap_server.coap_uri)
        codes: list[Any] = []

        @ctx.register_response_handler
        def on_response(s: coap.Session, sent: Any, received: coap.PDU, mid: int) -> None:
            codes.append(received.code)
            if len(codes) < 5:
                s.send(s.new_pdu(coap.MessageType.CON, coap.Code.GET))

        session.send(session.new_pdu(coap.MessageType.CON, coap.Code.GET))
        run_until(ctx, lambda: len(codes) == 5 and ctx.can_exit())
        assert codes == [coap.Code.CONTENT] * 5


def test_request_inside_a_handler_is_refused(coap_server: CoapServer) -> None:
    with coap.Context() as ctx:
        session = ctx.client_session(coap_server.coap_uri)

        @ctx.register_response_handler
        def on_response(s: coap.Session, sent: Any, received: coap.PDU, mid: int) -> None:
            s.request("GET", "")

        session.send(session.new_pdu(coap.MessageType.CON, coap.Code.GET))
        with pytest.raises(coap.CoapError, match="inside a handler"):
            run_until(ctx, lambda: False, 5)
        # the context is still usable afterwards
        assert session.request("GET", "", timeout=5).code is coap.Code.CONTENT


def test_run_once_inside_a_handler_is_refused(coap_server: CoapServer) -> None:
    with coap.Context() as ctx:
        session = ctx.client_session(coap_server.coap_uri)

        @ctx.register_response_handler
        def on_response(s: coap.Session, sent: Any, received: coap.PDU, mid: int) -> None:
            ctx.run_once(0)

        session.send(session.new_pdu(coap.MessageType.CON, coap.Code.GET))
        with pytest.raises(coap.CoapError, match="inside a handler"):
            run_until(ctx, lambda: False, 5)


def test_close_context_from_a_handler(coap_server: CoapServer) -> None:
    ctx = coap.Context()
    session = ctx.client_session(coap_server.coap_uri)
    seen: list[Any] = []

    @ctx.register_response_handler
    def on_response(s: coap.Session, sent: Any, received: coap.PDU, mid: int) -> None:
        seen.append(received.code)
        ctx.close()
        seen.append(s.closed)

    session.send(session.new_pdu(coap.MessageType.CON, coap.Code.GET))
    deadline = time.monotonic() + 10
    while not ctx.closed:
        assert time.monotonic() < deadline
        ctx.run_once(100)
    assert seen == [coap.Code.CONTENT, True]
    with pytest.raises(coap.CoapError, match="closed"):
        ctx.run_once(0)
    ctx.close()


def test_close_session_from_a_handler(coap_server: CoapServer) -> None:
    with coap.Context() as ctx:
        session = ctx.client_session(coap_server.coap_uri)
        other = ctx.client_session(coap_server.coap_uri)
        seen: list[Any] = []

        @ctx.register_response_handler
        def on_response(s: coap.Session, sent: Any, received: coap.PDU, mid: int) -> None:
            s.close()
            seen.append(received.code)  # the borrowed PDU is still valid here

        session.send(session.new_pdu(coap.MessageType.CON, coap.Code.GET))
        run_until(ctx, lambda: bool(seen))
        assert seen == [coap.Code.CONTENT]
        assert session.closed
        ctx.register_response_handler(lambda *a: None)
        assert other.request("GET", "", timeout=5).code is coap.Code.CONTENT


@pytest.mark.needs_dtls
def test_exception_in_handler_aborts_request_and_is_reraised(coap_server: CoapServer) -> None:
    with coap.Context() as ctx:
        pki_events: list[Any] = []

        @ctx.register_event_handler
        def on_event(s: Any, event: Any) -> None:
            pki_events.append(event)
            raise RuntimeError("handler broke")

        session = ctx.client_session(
            coap_server.coaps_uri, dtls=coap.PSK(coap_server.psk_identity, coap_server.psk_key)
        )
        with pytest.raises(RuntimeError, match="handler broke"):
            session.request("GET", "", timeout=5)
        assert pki_events and pki_events[0] is coap.Event.DTLS_CONNECTED
