"""CoAP over TCP and TLS (RFC 8323): coap+tcp:// and coaps+tcp://, client and server."""

from __future__ import annotations

import subprocess
import threading
from collections.abc import Iterator

import pytest
from helpers.certs import CertFiles
from helpers.ctools import COAP_CLIENT, CoapServer

import libcoap_py as coap

needs_tcp = pytest.mark.skipif(
    not coap.tcp_is_supported(), reason="this libcoap is built without TCP"
)


@pytest.fixture
def ctx() -> Iterator[coap.Context]:
    with coap.Context() as context:
        yield context


@needs_tcp
def test_tcp_client_against_the_c_server(
    ctx: coap.Context, coap_server: CoapServer, unique_path: str
) -> None:
    session = ctx.client_session(f"coap+tcp://127.0.0.1:{coap_server.port}")
    assert session.proto is coap.Proto.TCP
    body = bytes(range(256)) * 8  # larger than a UDP PDU: TCP carries it whole
    assert session.request("PUT", unique_path, body, timeout=5).code.class_ == 2
    got = session.request("GET", unique_path, timeout=5)
    assert got.code is coap.Code.CONTENT and got.payload == body


@pytest.mark.needs_dtls
@needs_tcp
@pytest.mark.parametrize("kind", ["psk", "pki"])
def test_tls_client_against_the_c_server(
    coap_server: CoapServer, certs: CertFiles, kind: str
) -> None:
    dtls: coap.PSK | coap.PKI
    if kind == "psk":
        dtls = coap.PSK(coap_server.psk_identity, coap_server.psk_key)
    else:
        dtls = coap.PKI(certs.cert, certs.key, certs.cert)
    with coap.Context() as ctx:
        session = ctx.client_session(f"coaps+tcp://127.0.0.1:{coap_server.coaps_port}", dtls=dtls)
        assert session.request("GET", "", timeout=5).code is coap.Code.CONTENT
        assert session.proto is coap.Proto.TLS


@pytest.mark.needs_dtls
@needs_tcp
def test_own_server_over_tcp_and_tls(certs: CertFiles) -> None:
    ready = threading.Event()
    ports: dict[str, int] = {}
    holder: dict[str, coap.Context] = {}

    def serve() -> None:
        with coap.Context() as server:
            holder["ctx"] = server
            ports["tcp"] = server.add_endpoint("coap+tcp://127.0.0.1:0").port
            ports["tls"] = server.add_endpoint(
                "coaps+tcp://127.0.0.1:0",
                dtls=coap.PKI(certs.server_cert, certs.server_key, certs.ca),
            ).port

            @server.resource("who")
            def who(request: coap.Request, response: coap.ServerResponse) -> None:
                response.payload = f"{request.proto.name} {request.peer_cn}"

            ready.set()
            server.run(timeout=30)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    assert ready.wait(10)
    try:
        with coap.Context() as ctx:
            plain = ctx.client_session(f"coap+tcp://127.0.0.1:{ports['tcp']}")
            assert plain.request("GET", "who", timeout=5).payload == b"TCP None"
            secure = ctx.client_session(
                f"coaps+tcp://127.0.0.1:{ports['tls']}",
                dtls=coap.PKI(certs.cert, certs.key, certs.ca),
            )
            assert secure.request("GET", "who", timeout=5).payload == b"TLS device-1"
        if COAP_CLIENT is not None:
            out = subprocess.run(
                [COAP_CLIENT, "-B", "3", f"coap+tcp://127.0.0.1:{ports['tcp']}/who"],
                capture_output=True,
                text=True,
                timeout=15,
            )
            assert "TCP None" in out.stdout, out.stdout + out.stderr
    finally:
        holder["ctx"].stop()
        thread.join(10)


@pytest.mark.skipif(
    coap.tcp_is_supported(),
    reason="checks the error of a libcoap built without TCP; this libcoap has TCP",
)
def test_tcp_refused_where_missing(ctx: coap.Context) -> None:
    with pytest.raises(coap.NotSupportedError, match="TCP"):
        ctx.client_session("coap+tcp://127.0.0.1:5683")
    with pytest.raises(coap.NotSupportedError, match="TCP"):
        ctx.add_endpoint("coap+tcp://127.0.0.1:0")


def test_unknown_scheme_still_refused(ctx: coap.Context) -> None:
    with pytest.raises(ValueError, match="unsupported URI scheme"):
        ctx.client_session("coap+ws://127.0.0.1")
