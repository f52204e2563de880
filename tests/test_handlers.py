"""The C sample's shape: handlers, new_pdu/send, run_once until can_exit."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from helpers.build import LIBCOAP_42
from helpers.certs import CertFiles
from helpers.ctools import CREATE_METHOD, CoapServer
from helpers.payloads import binary_payload
from helpers.peers import UdpPeer

import libcoap_py as coap

LOOP_DEADLINE_S = 15.0


@pytest.fixture
def ctx() -> Iterator[coap.Context]:
    with coap.Context() as context:
        yield context


@dataclass
class Seen:
    responses: list[dict[str, Any]] = field(default_factory=list)
    nacks: list[tuple[Any, Any, Any, Any]] = field(default_factory=list)
    events: list[tuple[Any, Any]] = field(default_factory=list)


def register_all(ctx: coap.Context) -> Seen:
    """Register the three handlers like the C sample; copy what they see into plain data."""
    seen = Seen()

    @ctx.register_response_handler
    def on_response(session: Any, sent: Any, received: Any, mid: Any) -> None:
        seen.responses.append(
            {
                "session": session,
                "mid": mid,
                "code": received.code,
                "type": received.type,
                "payload": received.payload,
                "options": received.options,
                "token": received.token,
                "received_mid": received.mid,
            }
        )

    @ctx.register_nack_handler
    def on_nack(session: Any, sent: Any, reason: Any, mid: Any) -> None:
        seen.nacks.append((session, sent, reason, mid))

    @ctx.register_event_handler
    def on_event(session: Any, event: Any) -> None:
        seen.events.append((session, event))

    return seen


def run_until_can_exit(ctx: coap.Context) -> None:
    """The sample's ``while (!coap_can_exit(ctx)) coap_run_once(ctx, 1000);``, bounded."""
    deadline = time.monotonic() + LOOP_DEADLINE_S
    while not ctx.can_exit():
        assert time.monotonic() < deadline, "ctx.can_exit() never became true"
        ctx.run_once(1000)


#: The sample's POST; PUT where the server (libcoap 4.2's) creates resources only on PUT.
UPLOAD = coap.Code[CREATE_METHOD]


def sample_post(session: coap.Session, server: CoapServer, path: str, payload: bytes) -> Any:
    pdu = session.new_pdu(coap.MessageType.CON, UPLOAD)
    pdu.add_option(coap.OptionNumber.URI_PORT, server.coaps_port)  # uint, unlike the C sample
    pdu.add_option(coap.OptionNumber.URI_HOST, server.host)
    for segment in path.split("/"):
        pdu.add_option(coap.OptionNumber.URI_PATH, segment)
    pdu.payload = payload
    return pdu


@pytest.mark.needs_dtls
def test_sample_loop_over_pki(
    ctx: coap.Context, coap_server: CoapServer, certs: CertFiles, unique_path: str
) -> None:
    ctx.keepalive = 10
    seen = register_all(ctx)
    pki = coap.PKI(
        cert=certs.cert,
        key=certs.key,
        ca=certs.cert,
        verify_peer_cert=True,
        require_peer_cert=True,
        allow_self_signed=False,
        allow_expired_certs=False,
        cert_chain_validation=True,
        cert_chain_verify_depth=2,
        check_cert_revocation=False,
    )
    session = ctx.client_session(coap_server.coaps_uri, dtls=pki)
    pdu = sample_post(session, coap_server, unique_path, b"this is the payload")
    assert pdu.type is coap.MessageType.CON and pdu.code is UPLOAD
    expected_mid = pdu.mid  # new_pdu() sets the MID
    assert type(expected_mid) is int
    mid = session.send(pdu)
    assert type(mid) is int and mid == expected_mid

    run_until_can_exit(ctx)

    assert not seen.nacks
    assert len(seen.responses) == 1, seen.responses
    got = seen.responses[0]
    assert got["session"] is session
    assert got["mid"] == mid and type(got["mid"]) is int
    assert got["received_mid"] == mid  # piggybacked ACK carries the request's MID
    assert isinstance(got["code"], coap.Code) and got["code"].class_ == 2
    assert got["code"] is coap.Code.CREATED  # coap-server creates the resource
    assert isinstance(got["type"], coap.MessageType)
    assert type(got["payload"]) is bytes and type(got["token"]) is bytes
    # the server echoes the Uri-Path as Location-Path options (4.3's; 4.2's sends none)
    location = [v for n, v in got["options"] if n == coap.OptionNumber.LOCATION_PATH]
    assert location == ([] if LIBCOAP_42 else [s.encode() for s in unique_path.split("/")])
    assert all(type(n) is int and type(v) is bytes for n, v in got["options"])

    events = [e for s, e in seen.events if s is session]
    assert coap.Event.DTLS_CONNECTED in events, seen.events
    assert all(isinstance(e, coap.Event) for _, e in seen.events)

    # the data arrived: read it back with the high-level call on the same session
    assert session.request("GET", unique_path, timeout=5).payload == b"this is the payload"


@pytest.mark.needs_dtls
def test_sample_loop_over_psk_binary(
    ctx: coap.Context, coap_server: CoapServer, unique_path: str
) -> None:
    seen = register_all(ctx)
    session = ctx.client_session(
        coap_server.coaps_uri,
        dtls=coap.PSK(identity=coap_server.psk_identity, key=coap_server.psk_key),
    )
    data = binary_payload(700)
    mid = session.send(sample_post(session, coap_server, unique_path, data))
    run_until_can_exit(ctx)
    assert [r["mid"] for r in seen.responses] == [mid]
    assert seen.responses[0]["code"] is coap.Code.CREATED
    assert coap.Event.DTLS_CONNECTED in [e for _, e in seen.events]
    assert session.request("GET", unique_path, timeout=5).payload == data


def test_sample_loop_plain_udp_several_requests(ctx: coap.Context, coap_server: CoapServer) -> None:
    seen = register_all(ctx)
    session = ctx.client_session(coap_server.coap_uri)
    mids = []
    for _ in range(3):
        pdu = session.new_pdu(coap.MessageType.CON, coap.Code.GET)
        mids.append(session.send(pdu))
    assert len(set(mids)) == 3
    deadline = time.monotonic() + LOOP_DEADLINE_S
    while len(seen.responses) < 3 or not ctx.can_exit():
        assert time.monotonic() < deadline
        ctx.run_once(1000)
    assert sorted(r["mid"] for r in seen.responses) == sorted(mids)
    assert all(r["code"] is coap.Code.CONTENT for r in seen.responses)
    tokens = [r["token"] for r in seen.responses]
    assert len(set(tokens)) == 3  # each request got its own token


def test_nack_handler_on_timeout(ctx: coap.Context, silent_peer: UdpPeer) -> None:
    seen = register_all(ctx)
    session = ctx.client_session(silent_peer.uri)
    session.ack_timeout = 1.0  # libcoap 4.3.1 ignores values below 1 s
    session.max_retransmit = 1
    mid = session.send(session.new_pdu(coap.MessageType.CON, coap.Code.GET))
    deadline = time.monotonic() + LOOP_DEADLINE_S
    while not seen.nacks:
        assert time.monotonic() < deadline, "no NACK"
        ctx.run_once(200)
    (nack_session, _sent, reason, nack_mid) = seen.nacks[0]
    assert nack_session is session
    assert reason is coap.NackReason.TOO_MANY_RETRIES
    assert nack_mid == mid
    assert not seen.responses
    assert len(silent_peer.wait_for(2)) == 2  # the first try and one retransmission


def test_nack_handler_on_rst(ctx: coap.Context, rst_peer: UdpPeer) -> None:
    seen = register_all(ctx)
    session = ctx.client_session(rst_peer.uri)
    mid = session.send(session.new_pdu(coap.MessageType.CON, coap.Code.GET))
    deadline = time.monotonic() + LOOP_DEADLINE_S
    while not seen.nacks:
        assert time.monotonic() < deadline, "no NACK"
        ctx.run_once(200)
    assert seen.nacks[0][2] is coap.NackReason.RST
    assert seen.nacks[0][3] == mid


# --------------------------------------------------------------------------
# a handler that raises


class Boom(Exception):
    pass


def test_handler_exception_reraised_by_run_once(ctx: coap.Context, coap_server: CoapServer) -> None:
    raised: list[BaseException] = []

    @ctx.register_response_handler
    def on_response(session: Any, sent: Any, received: Any, mid: Any) -> None:
        if not raised:
            exc = Boom(f"handler failed for mid {mid}")
            raised.append(exc)
            raise exc

    session = ctx.client_session(coap_server.coap_uri)
    mid = session.send(session.new_pdu(coap.MessageType.CON, coap.Code.GET))
    deadline = time.monotonic() + LOOP_DEADLINE_S
    with pytest.raises(Boom) as info:
        while True:
            assert time.monotonic() < deadline, "the handler's exception never surfaced"
            ctx.run_once(1000)
    assert raised and info.value is raised[0]
    assert str(info.value) == f"handler failed for mid {mid}"

    # raised once only, and the context keeps working
    ctx.run_once(0)
    r = session.request("GET", "", timeout=5)
    assert r.code is coap.Code.CONTENT
    mid2 = session.send(session.new_pdu(coap.MessageType.CON, coap.Code.GET))
    run_until_can_exit(ctx)
    assert isinstance(mid2, int)


@pytest.mark.needs_dtls
def test_event_handler_exception_reraised(ctx: coap.Context, coap_server: CoapServer) -> None:
    @ctx.register_event_handler
    def on_event(session: Any, event: Any) -> None:
        raise Boom(f"event {event!r}")

    session = ctx.client_session(
        coap_server.coaps_uri,
        dtls=coap.PSK(identity=coap_server.psk_identity, key=coap_server.psk_key),
    )
    session.send(session.new_pdu(coap.MessageType.CON, coap.Code.GET))
    deadline = time.monotonic() + LOOP_DEADLINE_S
    with pytest.raises(Boom, match="event"):
        while True:
            assert time.monotonic() < deadline, "the handler's exception never surfaced"
            ctx.run_once(1000)
