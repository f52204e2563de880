"""The test peers themselves, checked with libcoap's C client (no binding involved).

If these fail, every other failure in the run is suspect: the fixture, not the
binding, is broken.
"""

from __future__ import annotations

import subprocess

import pytest
from helpers.ctools import COAP_CLIENT, NO_CLIENT_REASON, PSK_KEY, WELCOME, CoapServer
from helpers.net import coap_ping
from helpers.peers import UdpPeer

needs_client = pytest.mark.skipif(COAP_CLIENT is None, reason=NO_CLIENT_REASON)


def _coap_client(*args: str) -> subprocess.CompletedProcess[bytes]:
    assert COAP_CLIENT is not None
    return subprocess.run(
        [COAP_CLIENT, "-B", "3", *args], capture_output=True, timeout=15, check=False
    )


def test_server_answers_ping(coap_server: CoapServer) -> None:
    assert coap_server.process.poll() is None
    assert coap_ping(coap_server.host, coap_server.port)


@needs_client
def test_c_client_plain(coap_server: CoapServer) -> None:
    out = _coap_client(coap_server.coap_uri + "/")
    assert out.stdout.startswith(WELCOME), out.stderr


@pytest.mark.needs_dtls
@needs_client
def test_c_client_psk_on_the_pki_server(coap_server: CoapServer) -> None:
    """-k and -c together: one DTLS endpoint takes PSK and PKI clients."""
    out = _coap_client("-u", "someone", "-k", PSK_KEY.decode(), coap_server.coaps_uri + "/")
    assert out.stdout.startswith(WELCOME), out.stderr


@needs_client
def test_c_client_ipv6(coap_server_v6: CoapServer) -> None:
    out = _coap_client(coap_server_v6.coap_uri + "/")
    assert out.stdout.startswith(WELCOME), out.stderr


def test_rst_peer_resets_con(rst_peer: UdpPeer) -> None:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(2)
        s.sendto(bytes([0x40, 0x01, 0xAB, 0xCD]), ("127.0.0.1", rst_peer.port))
        data = s.recv(64)
    assert data == bytes([0x70, 0x00, 0xAB, 0xCD])
