"""One API on both libcoap generations: what 4.2 lacks is refused with NotSupportedError."""

from __future__ import annotations

import pytest
from helpers.build import LIBCOAP_VERSION_INFO

import libcoap_py as coap

GENERATION = coap.lib.LCP_GENERATION
on_42 = pytest.mark.skipif(GENERATION != 2, reason="checks libcoap 4.2 behaviour")


def test_generation_matches_version() -> None:
    major, minor = (int(x) for x in coap.libcoap_version().split(".")[:2])
    assert (major, minor) >= (4, 2)
    assert GENERATION == (2 if (major, minor) == (4, 2) else 3)


@on_42
def test_psk_client_sni_needs_43() -> None:
    with coap.Context() as ctx:
        with pytest.raises(coap.NotSupportedError, match=r"4\.3"):
            ctx.client_session(
                "coaps://127.0.0.1:5684", dtls=coap.PSK(b"id", b"key", client_sni="host")
            )


@on_42
def test_binary_psk_identity_needs_43() -> None:
    with coap.Context() as ctx:
        with pytest.raises(coap.NotSupportedError, match="NUL"):
            ctx.client_session("coaps://127.0.0.1:5684", dtls=coap.PSK(b"a\0b", b"key"))


def test_feature_flags_are_consistent() -> None:
    lib = coap.lib
    if GENERATION >= 3:
        assert lib.LCP_HAS_PEM_BUF and lib.LCP_HAS_SERVER_SESSION_EVENTS
        assert lib.LCP_HAS_PSK_CLIENT_SNI and lib.LCP_HAS_BINARY_PSK_IDENTITY
    else:
        assert not lib.LCP_HAS_PEM_BUF and not lib.LCP_HAS_SERVER_SESSION_EVENTS
    # Names of protocol numbers (codes.py): 4.3 has them, 4.2 not; Q-Block from 4.3.2.
    names = (
        lib.LCP_HAS_EMPTY_CODE,
        lib.LCP_HAS_OPTION_NAMES_43,
        lib.LCP_HAS_MEDIATYPE_CWT,
        lib.LCP_HAS_BLOCK_EVENTS,
    )
    assert all(bool(flag) == (GENERATION >= 3) for flag in names)
    assert bool(lib.LCP_HAS_Q_BLOCK_OPTIONS) == (LIBCOAP_VERSION_INFO >= (4, 3, 2))


def test_observe_on_both_generations() -> None:
    lib = coap.lib
    assert lib.LCP_HAS_CLIENT_OBSERVE and lib.LCP_HAS_SERVER_OBSERVE
    # 4.2 has no coap_cancel_observe and runs the GET handler for a notification
    # without the request: the binding does both itself there.
    assert bool(lib.LCP_HAS_CANCEL_OBSERVE) == (GENERATION >= 3)
    assert bool(lib.LCP_NOTIFY_WITHOUT_REQUEST) == (GENERATION == 2)
    with coap.Context() as ctx:
        resource = ctx.add_resource("x")
        resource.observable = True
        assert resource.observable


@on_42
def test_tcp_on_42() -> None:
    # Debian's 4.2 is built with TCP; test_transports.py runs it against peers.
    assert coap.tcp_is_supported()
    with coap.Context() as ctx:
        assert ctx.client_session("coap+tcp://127.0.0.1:5683").proto is coap.Proto.TCP
