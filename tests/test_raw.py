"""The raw layer: coap.ffi / coap.lib are enough for a 1:1 port of the C sample's calls."""

from __future__ import annotations

from helpers.build import LIBCOAP_42
from helpers.ctools import CoapServer

import libcoap_py as coap
from libcoap_py import ffi, lib


def test_sample_names_exist() -> None:
    for name in (
        "coap_startup",
        "coap_cleanup",
        "coap_set_log_level",
        "coap_dtls_set_log_level",
        "coap_address_init",
        "coap_new_context",
        "coap_context_set_keepalive",
        "coap_new_client_session",
        "coap_new_client_session_pki",
        "coap_new_pdu",
        "coap_new_message_id",
        "coap_add_option",
        "coap_add_data",
        "coap_get_data",
        "coap_send",
        "coap_run_once",
        "coap_can_exit",
        "coap_session_release",
        "coap_free_context",
        "coap_new_optlist",
        "coap_insert_optlist",
        "coap_add_optlist_pdu",
        "coap_delete_optlist",
        # The calls that differ: 4.2's names, as the sample was written, or 4.3's.
        *(
            ("coap_new_client_session_psk", "coap_pdu_init")
            if LIBCOAP_42
            else ("coap_new_client_session_psk2", "coap_io_process")
        ),
    ):
        assert callable(getattr(lib, name)), name
    assert lib.COAP_MESSAGE_CON == 0
    assert lib.COAP_REQUEST_POST == coap.Code.POST
    assert lib.COAP_OPTION_URI_PATH == coap.OptionNumber.URI_PATH
    assert lib.COAP_NACK_TLS_FAILED == coap.NackReason.TLS_FAILED
    assert lib.COAP_EVENT_DTLS_CONNECTED == coap.Event.DTLS_CONNECTED
    assert lib.COAP_PROTO_DTLS == coap.Proto.DTLS
    assert lib.LOG_NOTICE == coap.LogLevel.NOTICE


def test_pki_struct_has_the_sample_fields() -> None:
    pki = ffi.new("coap_dtls_pki_t *")
    pki.version = lib.COAP_DTLS_PKI_SETUP_VERSION
    pki.verify_peer_cert = 1
    if LIBCOAP_42:
        pki.require_peer_cert = 1  # where 4.3 has check_common_ca
    else:
        pki.check_common_ca = 1
    pki.allow_self_signed = 1
    pki.cert_chain_validation = 1
    pki.cert_chain_verify_depth = 2
    pki.pki_key.key_type = lib.COAP_PKI_KEY_PEM
    path = ffi.new("char[]", b"cert.crt")
    pki.pki_key.key.pem.public_cert = path
    assert ffi.string(pki.pki_key.key.pem.public_cert) == b"cert.crt"


def test_raw_port_sends_a_put(coap_server: CoapServer, unique_path: str) -> None:
    """The C sample's steps with raw calls: the server must receive the payload."""
    ctx = lib.coap_new_context(ffi.NULL)
    assert ctx != ffi.NULL
    try:
        server = ffi.new("coap_address_t *")
        assert lib.lcp_address_set(server, coap_server.host.encode(), coap_server.port)
        session = lib.coap_new_client_session(ctx, ffi.NULL, server, lib.COAP_PROTO_UDP)
        assert session != ffi.NULL
        if LIBCOAP_42:  # the PDU is a public structure: the sample sets its fields
            pdu = lib.coap_new_pdu(session)
            assert pdu != ffi.NULL
            pdu.type = lib.COAP_MESSAGE_CON
            pdu.code = lib.COAP_REQUEST_PUT
            pdu.tid = lib.coap_new_message_id(session)
        else:
            pdu = lib.coap_new_pdu(lib.COAP_MESSAGE_CON, lib.COAP_REQUEST_PUT, session)
        assert pdu != ffi.NULL
        optlist = ffi.new("coap_optlist_t **")
        for segment in unique_path.split("/"):
            value = segment.encode()
            lib.coap_insert_optlist(
                optlist, lib.coap_new_optlist(lib.COAP_OPTION_URI_PATH, len(value), value)
            )
        assert lib.coap_add_optlist_pdu(pdu, optlist)
        payload = b"raw \x00 payload"
        assert lib.coap_add_data(pdu, len(payload), payload)
        invalid = lib.COAP_INVALID_TID if LIBCOAP_42 else lib.COAP_INVALID_MID
        assert lib.coap_send(session, pdu) != invalid
        for _ in range(50):
            if lib.coap_can_exit(ctx):
                break
            lib.coap_run_once(ctx, 100)
        assert lib.coap_can_exit(ctx)
        lib.coap_delete_optlist(optlist[0])
        lib.coap_session_release(session)
    finally:
        lib.coap_free_context(ctx)

    with coap.Context() as pyctx:
        got = pyctx.client_session(coap_server.coap_uri).request("GET", unique_path, timeout=5)
    assert got.code == coap.Code.CONTENT
    assert got.payload == payload
