"""A handshake libcoap abandons is started again while the request's timeout allows.

libcoap gives up on a DTLS handshake after ``max_retransmit`` DTLS timeouts, long
before a generous request timeout. ``request()`` then starts a new one, since no
request can have reached the server before a handshake completed; a handshake
that either side refused fails at once.

The link is ``benchmarks/lossy_proxy.py`` on loopback, in blackout (every
datagram dropped) for its first seconds. ``max_retransmit = 1`` makes libcoap
abandon a handshake after about 3 s (DTLS timers of 1 s and 2 s).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Callable

import pytest
from helpers.certs import CertFiles
from helpers.ctools import CoapServer

import libcoap_py as coap

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
from lossy_proxy import LossyProxy

pytestmark = pytest.mark.needs_dtls

Serve = Callable[..., Any]


def _recording_server(certs: CertFiles, payloads: list[bytes]) -> Callable[[coap.Context], int]:
    def setup(ctx: coap.Context) -> int:
        pki = coap.PKI(certs.server_cert, certs.server_key, certs.ca)
        endpoint = ctx.add_endpoint("coaps://127.0.0.1:0", dtls=pki)

        @ctx.resource("x", ("POST",))
        def x(request: coap.Request, response: coap.ServerResponse) -> None:
            payloads.append(request.payload)
            response.code = coap.Code.CHANGED

        return endpoint.port

    return setup


@pytest.fixture
def proxy_factory() -> Iterator[Callable[..., LossyProxy]]:
    made: list[LossyProxy] = []

    def make(port: int, **options: Any) -> LossyProxy:
        proxy = LossyProxy(("127.0.0.1", port), loss=0.0, duplicate=0.0, reorder=0.0, **options)
        made.append(proxy.start())
        return proxy

    yield make
    for proxy in made:
        proxy.close()


def _session(ctx: coap.Context, port: int, pki: coap.PKI) -> coap.Session:
    session = ctx.client_session(f"coaps://127.0.0.1:{port}", dtls=pki)
    session.max_retransmit = 1
    return session


def test_an_abandoned_handshake_is_started_again(
    serve: Serve, certs: CertFiles, proxy_factory: Callable[..., LossyProxy]
) -> None:
    payloads: list[bytes] = []
    proxy = proxy_factory(serve(_recording_server(certs, payloads)), blackout=2.0)
    with coap.Context() as ctx:
        s = _session(ctx, proxy.port, coap.PKI(certs.cert, certs.key, certs.ca))
        response = s.request("POST", "x", payload=b"once", timeout=20)
        assert response.code == coap.Code.CHANGED
        assert s.renewals >= 1  # libcoap abandoned the first handshake
    assert payloads == [b"once"]


def test_the_c_server_too(
    coap_server: CoapServer, certs: CertFiles, proxy_factory: Callable[..., LossyProxy]
) -> None:
    proxy = proxy_factory(coap_server.coaps_port, blackout=2.0)
    with coap.Context() as ctx:
        s = _session(ctx, proxy.port, coap.PKI(certs.cert, certs.key, certs.ca))
        assert s.request("GET", "", timeout=20).code == coap.Code.CONTENT
        assert s.renewals >= 1


def test_the_timeout_ends_the_handshakes(
    serve: Serve, certs: CertFiles, proxy_factory: Callable[..., LossyProxy]
) -> None:
    payloads: list[bytes] = []
    proxy = proxy_factory(serve(_recording_server(certs, payloads)), blackout=3600.0)
    with coap.Context() as ctx:
        s = _session(ctx, proxy.port, coap.PKI(certs.cert, certs.key, certs.ca))
        with pytest.raises(coap.DTLSError, match=r"within 7 s \([2-9] handshakes tried"):
            s.request("POST", "x", payload=b"never", timeout=7)
        assert s.renewals >= 1
    assert payloads == []


def test_a_refused_handshake_is_not_retried(serve: Serve, certs: CertFiles) -> None:
    """An untrusted server certificate: the handshake fails at once, and stays failed."""
    payloads: list[bytes] = []
    port = serve(_recording_server(certs, payloads))
    with coap.Context() as ctx:
        s = _session(ctx, port, coap.PKI(certs.cert, certs.key, certs.other_ca))
        with pytest.raises(coap.DTLSError) as caught:
            s.request("POST", "x", payload=b"refused", timeout=30)
        assert "handshakes tried" not in str(caught.value)
        assert s.renewals == 0


def test_a_refused_name_is_not_retried(serve: Serve, certs: CertFiles) -> None:
    port = serve(_recording_server(certs, []))
    with coap.Context() as ctx:
        s = ctx.client_session(
            f"coaps://127.0.0.1:{port}",
            dtls=coap.PKI(certs.cert, certs.key, certs.ca),
            server_name="elsewhere.example",
        )
        with pytest.raises(coap.DTLSError, match=r"not for 'elsewhere\.example'"):
            s.request("POST", "x", payload=b"refused", timeout=30)
        assert s.renewals == 0
