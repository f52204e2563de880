"""A request() that gave up leaves nothing behind for the user's handlers or the loop."""

from __future__ import annotations

from typing import Any

import pytest
from helpers.ctools import CoapServer
from helpers.peers import UdpPeer
from helpers.waiting import run_until

import libcoap_py as coap


def test_late_nack_of_a_timed_out_request_is_not_delivered(silent_peer: UdpPeer) -> None:
    with coap.Context() as ctx:
        nacks: list[Any] = []
        ctx.register_nack_handler(lambda s, sent, reason, mid: nacks.append(reason))
        session = ctx.client_session(silent_peer.uri)
        session.ack_timeout = 1.0
        session.max_retransmit = 1
        with pytest.raises(coap.RequestTimeout):
            session.request("GET", "gone", timeout=0.3)
        # libcoap keeps retransmitting until its own limit (1 s * 1.5 * 3), then NACKs.
        assert run_until(ctx, ctx.can_exit, 10), "libcoap never gave up on the message"
        assert len(silent_peer.wait_for(2, timeout=1)) >= 2, "the CON was not retransmitted"
        assert nacks == []


@pytest.mark.needs_dtls
def test_handshake_timeout_leaves_nothing_queued(coap_server: CoapServer) -> None:
    with coap.Context() as ctx:
        session = ctx.client_session(
            coap_server.coaps_uri, dtls=coap.PSK(coap_server.psk_identity, b"not the key")
        )
        with pytest.raises(coap.DTLSError):
            session.request("GET", "", timeout=1.5)
        assert ctx.can_exit()
        assert not session.established
        # the context and other sessions go on working
        plain = ctx.client_session(coap_server.coap_uri)
        assert plain.request("GET", "", timeout=5).code is coap.Code.CONTENT


@pytest.mark.needs_dtls
def test_session_retries_the_handshake_after_a_failure(coap_server: CoapServer) -> None:
    """A second request on a session whose handshake timed out tries again (and fails again)."""
    with coap.Context() as ctx:
        session = ctx.client_session(
            coap_server.coaps_uri, dtls=coap.PSK(coap_server.psk_identity, b"not the key")
        )
        for _ in range(2):  # (a hang is caught by conftest's per-test deadline)
            with pytest.raises(coap.DTLSError):
                session.request("GET", "", timeout=1.0)
