"""Ownership: closed contexts and sessions, consumed and borrowed PDUs raise, never crash."""

from __future__ import annotations

import gc
import time
from typing import Any

import pytest
from helpers.ctools import CoapServer
from helpers.peers import UdpPeer

import libcoap_py as coap


def test_close_is_idempotent(coap_server: CoapServer) -> None:
    ctx = coap.Context()
    ctx.client_session(coap_server.coap_uri)
    ctx.close()
    ctx.close()
    with ctx:  # entering/leaving a closed context is harmless too
        pass
    ctx.close()


def test_everything_raises_after_context_close(coap_server: CoapServer) -> None:
    ctx = coap.Context()
    session = ctx.client_session(coap_server.coap_uri)
    assert session.request("GET", "", timeout=5).code is coap.Code.CONTENT
    pdu = session.new_pdu(coap.MessageType.CON, coap.Code.GET)
    ctx.close()

    assert session.closed is True
    with pytest.raises(coap.CoapError):
        session.request("GET", "", timeout=1)
    with pytest.raises(coap.CoapError):
        session.new_pdu(coap.MessageType.CON, coap.Code.GET)
    with pytest.raises(coap.CoapError):
        pdu.add_option(coap.OptionNumber.URI_PATH, b"x")
    with pytest.raises(coap.CoapError):
        pdu.payload = b"late"
    with pytest.raises(coap.CoapError):
        _ = pdu.code
    with pytest.raises(coap.CoapError):
        session.send(pdu)
    with pytest.raises(coap.CoapError):
        ctx.client_session(coap_server.coap_uri)
    with pytest.raises(coap.CoapError):
        ctx.run_once(0)
    session.close()  # closing a dead session is a no-op, not an error


def test_context_manager_closes(coap_server: CoapServer) -> None:
    with coap.Context() as ctx:
        session = ctx.client_session(coap_server.coap_uri)
    assert session.closed
    with pytest.raises(coap.CoapError):
        session.request("GET", "", timeout=1)


def test_session_close(coap_server: CoapServer) -> None:
    with coap.Context() as ctx:
        session = ctx.client_session(coap_server.coap_uri)
        with session:
            assert session.request("GET", "", timeout=5).code is coap.Code.CONTENT
        assert session.closed
        with pytest.raises(coap.CoapError):
            session.request("GET", "", timeout=1)
        with pytest.raises(coap.CoapError):
            session.new_pdu(coap.MessageType.CON, coap.Code.GET)
        session.close()
        # other sessions of the context are unaffected
        other = ctx.client_session(coap_server.coap_uri)
        assert other.request("GET", "", timeout=5).code is coap.Code.CONTENT


def test_sent_pdu_is_consumed(coap_server: CoapServer) -> None:
    with coap.Context() as ctx:
        session = ctx.client_session(coap_server.coap_uri)
        pdu = session.new_pdu(coap.MessageType.CON, coap.Code.GET)
        session.send(pdu)
        with pytest.raises(coap.CoapError):
            session.send(pdu)  # coap_send consumed it: a second send would be a double free
        with pytest.raises(coap.CoapError):
            pdu.add_option(coap.OptionNumber.URI_PATH, b"x")
        deadline = time.monotonic() + 10
        while not ctx.can_exit():
            assert time.monotonic() < deadline
            ctx.run_once(500)


def test_borrowed_pdu_dies_with_its_handler(coap_server: CoapServer) -> None:
    kept: list[Any] = []
    inside: list[bytes] = []
    with coap.Context() as ctx:

        @ctx.register_response_handler
        def on_response(session: Any, sent: Any, received: Any, mid: Any) -> None:
            inside.append(received.payload)  # fine while the handler runs
            kept.append(received)

        session = ctx.client_session(coap_server.coap_uri)
        session.send(session.new_pdu(coap.MessageType.CON, coap.Code.GET))
        deadline = time.monotonic() + 10
        while not kept:
            assert time.monotonic() < deadline, "no response"
            ctx.run_once(1000)

        assert inside and inside[0].startswith(b"This is a test server")
        received = kept[0]
        with pytest.raises(coap.CoapError):
            _ = received.payload
        with pytest.raises(coap.CoapError):
            _ = received.code
        with pytest.raises(coap.CoapError):
            _ = received.options
        with pytest.raises(coap.CoapError):
            received.add_option(coap.OptionNumber.URI_PATH, b"x")
        # the context is fine
        assert session.request("GET", "", timeout=5).code is coap.Code.CONTENT


def test_garbage_collection_in_any_order(coap_server: CoapServer, silent_peer: UdpPeer) -> None:
    """Dropping wrappers in awkward orders, with requests still in flight, must not crash."""
    for order in range(3):
        ctx = coap.Context()
        s1 = ctx.client_session(coap_server.coap_uri)
        s2 = ctx.client_session(silent_peer.uri)
        pdu = s1.new_pdu(coap.MessageType.CON, coap.Code.GET)
        s2.send(s2.new_pdu(coap.MessageType.CON, coap.Code.GET))  # never answered
        if order == 0:
            del ctx
            gc.collect()
            del pdu, s1, s2
        elif order == 1:
            del s1, s2
            gc.collect()
            del pdu
            gc.collect()
            ctx.close()
            del ctx
        else:
            del pdu
            ctx.close()
            del s2, ctx
            gc.collect()
            del s1
        gc.collect()
    with coap.Context() as ctx:
        session = ctx.client_session(coap_server.coap_uri)
        assert session.request("GET", "", timeout=5).code is coap.Code.CONTENT


def test_many_contexts(coap_server: CoapServer) -> None:
    for _ in range(20):
        with coap.Context() as ctx:
            session = ctx.client_session(coap_server.coap_uri)
            assert session.request("GET", "", timeout=5).code is coap.Code.CONTENT
