"""Session.request() over plain coap:// against coap-server-openssl (IPv4 and IPv6)."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from helpers.codec import decode_message
from helpers.ctools import WELCOME, CoapServer
from helpers.payloads import binary_payload

import libcoap_py as coap


@pytest.fixture
def ctx() -> Iterator[coap.Context]:
    with coap.Context() as context:
        yield context


def test_get_root(ctx: coap.Context, coap_server: CoapServer) -> None:
    session = ctx.client_session(coap_server.coap_uri)
    r = session.request("GET", "", timeout=5)
    assert r.code is coap.Code.CONTENT
    assert type(r.payload) is bytes
    assert r.payload.startswith(WELCOME)
    assert r.type is coap.MessageType.ACK  # piggybacked response to a CON
    assert isinstance(r.mid, int) and 0 <= r.mid <= 0xFFFF
    assert type(r.token) is bytes and len(r.token) <= 8


def test_put_then_get_binary_round_trip(
    ctx: coap.Context, coap_server: CoapServer, unique_path: str
) -> None:
    data = binary_payload(500)
    assert b"\x00" in data
    session = ctx.client_session(coap_server.coap_uri)
    created = session.request("PUT", unique_path, payload=data, timeout=5)
    assert created.code is coap.Code.CREATED
    got = session.request("GET", unique_path, timeout=5)
    assert got.code is coap.Code.CONTENT
    assert got.payload == data


def test_error_codes_are_responses_not_exceptions(
    ctx: coap.Context, coap_server: CoapServer, unique_path: str
) -> None:
    session = ctx.client_session(coap_server.coap_uri)
    r = session.request("GET", unique_path + "/missing", timeout=5)
    assert r.code is coap.Code.NOT_FOUND
    assert r.code.class_ == 4


def test_method_spellings_and_delete(
    ctx: coap.Context, coap_server: CoapServer, unique_path: str
) -> None:
    session = ctx.client_session(coap_server.coap_uri)
    assert session.request("put", unique_path, payload=b"x", timeout=5).code is coap.Code.CREATED
    assert session.request(coap.Code.GET, unique_path, timeout=5).payload == b"x"
    assert session.request("Delete", unique_path, timeout=5).code is coap.Code.DELETED
    assert session.request("GET", unique_path, timeout=5).code is coap.Code.NOT_FOUND
    with pytest.raises(ValueError):
        session.request("FROB", unique_path, timeout=5)


def test_content_format_option_round_trip(
    ctx: coap.Context, coap_server: CoapServer, unique_path: str
) -> None:
    """The server stores the PUT's Content-Format and returns it with the GET."""
    session = ctx.client_session(coap_server.coap_uri)
    put = session.request(
        "PUT", unique_path, payload=b'{"a": 1}', content_format=coap.ContentFormat(50), timeout=5
    )
    assert put.code is coap.Code.CREATED
    r = session.request("GET", unique_path, timeout=5)
    assert r.payload == b'{"a": 1}'
    assert r.option(coap.OptionNumber.CONTENT_FORMAT) == b"\x32"
    assert (int(coap.OptionNumber.CONTENT_FORMAT), b"\x32") in r.options
    assert all(type(n) is int and type(v) is bytes for n, v in r.options)
    assert r.option(coap.OptionNumber.LOCATION_QUERY) is None


def test_query_and_options(ctx: coap.Context, coap_server: CoapServer) -> None:
    """/time?ticks answers a number; /time without it a human-readable date."""
    session = ctx.client_session(coap_server.coap_uri)
    ticks = session.request("GET", "time", query="ticks", timeout=5)
    assert ticks.code is coap.Code.CONTENT
    assert ticks.payload.isdigit(), ticks.payload
    listed = session.request("GET", "time", query=["ticks"], timeout=5)
    assert listed.payload.isdigit(), listed.payload
    by_option = session.request(
        "GET", "time", options=[(coap.OptionNumber.URI_QUERY, "ticks")], timeout=5
    )
    assert by_option.payload.isdigit(), by_option.payload
    human = session.request("GET", "time", timeout=5)
    assert human.code is coap.Code.CONTENT and not human.payload.isdigit()


def test_non_confirmable_request(ctx: coap.Context, coap_server: CoapServer) -> None:
    session = ctx.client_session(coap_server.coap_uri)
    r = session.request("GET", "", confirmable=False, timeout=5)
    assert r.code is coap.Code.CONTENT
    assert r.type is coap.MessageType.NON
    assert r.payload.startswith(WELCOME)


def test_base_path_from_uri(ctx: coap.Context, coap_server: CoapServer, unique_path: str) -> None:
    plain = ctx.client_session(coap_server.coap_uri)
    assert plain.request("PUT", unique_path, payload=b"base", timeout=5).code is coap.Code.CREATED
    based = ctx.client_session(f"{coap_server.coap_uri}/{unique_path}")
    assert based.request("GET", timeout=5).payload == b"base"


def test_session_properties(ctx: coap.Context, coap_server: CoapServer) -> None:
    session = ctx.client_session(coap_server.coap_uri)
    assert session.proto is coap.Proto.UDP
    assert session.closed is False
    assert str(session.uri).startswith(coap_server.coap_uri)
    assert 500 < session.max_payload < 1152

    session.ack_timeout = 1.25
    assert session.ack_timeout == pytest.approx(1.25, abs=0.002)
    session.max_retransmit = 2
    assert session.max_retransmit == 2
    assert session.request("GET", "", timeout=5).code is coap.Code.CONTENT

    session.close()
    assert session.closed is True


def test_sub_second_ack_timeout_is_not_silently_ignored(
    ctx: coap.Context, coap_server: CoapServer
) -> None:
    """RFC 7252 allows any ACK_TIMEOUT; if libcoap cannot take it, say so."""
    session = ctx.client_session(coap_server.coap_uri)
    try:
        session.ack_timeout = 0.2
    except ValueError:
        return  # refused loudly: fine
    assert session.ack_timeout == pytest.approx(0.2, abs=0.002)


def test_local_bind_address(ctx: coap.Context, coap_server: CoapServer) -> None:
    session = ctx.client_session(coap_server.coap_uri, local="127.0.0.1")
    assert session.request("GET", "", timeout=5).code is coap.Code.CONTENT


def test_local_bind_address_with_port(
    ctx: coap.Context, coap_server: CoapServer, free_udp_port: int
) -> None:
    session = ctx.client_session(coap_server.coap_uri, local=f"127.0.0.1:{free_udp_port}")
    assert session.local_address == ("127.0.0.1", free_udp_port)
    assert session.remote_address == ("127.0.0.1", coap_server.port)
    assert session.request("GET", "", timeout=5).code is coap.Code.CONTENT


def test_host_name_is_resolved(ctx: coap.Context, coap_server: CoapServer) -> None:
    first = socket.getaddrinfo("localhost", coap_server.port, 0, socket.SOCK_DGRAM)[0][4][0]
    if first != "127.0.0.1":
        pytest.skip(f"localhost resolves to {first} first here; the server is on 127.0.0.1")
    session = ctx.client_session(f"coap://localhost:{coap_server.port}")
    assert session.remote_address == ("127.0.0.1", coap_server.port)
    assert session.request("GET", "", timeout=5).code is coap.Code.CONTENT


def test_unknown_host_name_is_a_clear_error(ctx: coap.Context) -> None:
    with pytest.raises(OSError, match=r"no-such-host\.invalid"):
        ctx.client_session("coap://no-such-host.invalid")


def test_two_sessions_one_context(
    ctx: coap.Context, coap_server: CoapServer, unique_path: str
) -> None:
    a = ctx.client_session(coap_server.coap_uri)
    b = ctx.client_session(coap_server.coap_uri)
    assert a.request("PUT", unique_path, payload=b"from a", timeout=5).code is coap.Code.CREATED
    assert b.request("GET", unique_path, timeout=5).payload == b"from a"


def test_many_requests_in_a_row(ctx: coap.Context, coap_server: CoapServer) -> None:
    session = ctx.client_session(coap_server.coap_uri)
    mids = set()
    for _ in range(50):
        r = session.request("GET", "", timeout=5)
        assert r.code is coap.Code.CONTENT
        mids.add(r.mid)
    assert len(mids) == 50  # every exchange got its own message ID


def test_ipv6(ctx: coap.Context, coap_server_v6: CoapServer, unique_path: str) -> None:
    assert coap_server_v6.coap_uri.startswith("coap://[::1]:")
    session = ctx.client_session(coap_server_v6.coap_uri)
    data = binary_payload(300)
    assert session.request("PUT", unique_path, payload=data, timeout=5).code is coap.Code.CREATED
    assert session.request("GET", unique_path, timeout=5).payload == data


def test_options_follow_the_uri_query(ctx: coap.Context) -> None:
    """Uri-Query values given in options= come after the path's own query, in order."""
    ready = threading.Event()
    holder: dict[str, Any] = {}

    def serve() -> None:
        with coap.Context() as server:
            holder["server"] = server
            holder["port"] = server.add_endpoint("coap://127.0.0.1:0").port

            @server.resource("q")
            def echo(request: coap.Request, response: coap.ServerResponse) -> None:
                response.payload = "&".join(request.query)

            ready.set()
            server.run(timeout=20)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    assert ready.wait(10)
    try:
        session = ctx.client_session(f"coap://127.0.0.1:{holder['port']}")
        got = session.request(
            "GET", "q?x=1&w=0", options=[(coap.OptionNumber.URI_QUERY, "y=2")], timeout=5
        )
        assert got.payload == b"x=1&w=0&y=2"
    finally:
        holder["server"].stop()
        thread.join(10)


@pytest.mark.parametrize("token", [b"\xca\xfe", b"", b"12345678"])
def test_request_sends_the_given_token(
    ctx: coap.Context, coap_server: CoapServer, token: bytes
) -> None:
    session = ctx.client_session(coap_server.coap_uri)
    r = session.request("GET", "", token=token, timeout=5)
    assert r.code is coap.Code.CONTENT and r.token == token


def test_given_token_is_on_the_wire(ctx: coap.Context, silent_peer: Any) -> None:
    session = ctx.client_session(silent_peer.uri)
    session.max_retransmit = 1
    with pytest.raises(coap.RequestTimeout):
        session.request("GET", "t", token=b"\x01\x02\x03", timeout=0.3)
    sent = decode_message(silent_peer.wait_for(1)[0])
    assert sent.token == b"\x01\x02\x03"


@pytest.mark.parametrize(
    ("token", "error", "text"),
    [(b"123456789", ValueError, "at most 8 bytes"), ("cafe", TypeError, "must be bytes")],
)
def test_bad_token_is_refused(
    ctx: coap.Context, coap_server: CoapServer, token: Any, error: type, text: str
) -> None:
    session = ctx.client_session(coap_server.coap_uri)
    with pytest.raises(error, match=text):
        session.request("GET", "", token=token, timeout=5)
