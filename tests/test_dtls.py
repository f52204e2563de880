"""coaps:// with PSK and with certificates (PKI), and how handshakes fail."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers.build import PSK_PKI_MIXED, TLS_NAME
from helpers.certs import CertFiles, ChainFiles
from helpers.ctools import WELCOME, CoapServer
from helpers.payloads import binary_payload

import libcoap_py as coap

pytestmark = pytest.mark.needs_dtls


@pytest.fixture
def ctx() -> Iterator[coap.Context]:
    with coap.Context() as context:
        yield context


def sample_pki(cert: Path | bytes, key: Path | bytes, ca: Path | bytes) -> coap.PKI:
    """The seed C sample's settings."""
    return coap.PKI(
        cert=cert,
        key=key,
        ca=ca,
        verify_peer_cert=True,
        require_peer_cert=True,
        allow_self_signed=False,
        allow_expired_certs=False,
        cert_chain_validation=True,
        cert_chain_verify_depth=2,
        check_cert_revocation=False,
    )


def _psk(server: CoapServer, key: bytes | None = None) -> coap.PSK:
    return coap.PSK(identity=server.psk_identity, key=server.psk_key if key is None else key)


def _round_trip(session: coap.Session, path: str) -> None:
    root = session.request("GET", "", timeout=10)
    assert root.code is coap.Code.CONTENT
    assert root.payload.startswith(WELCOME)
    data = binary_payload(500)
    assert session.request("PUT", path, payload=data, timeout=10).code is coap.Code.CREATED
    back = session.request("GET", path, timeout=10)
    assert back.code is coap.Code.CONTENT
    assert back.payload == data


def test_psk_round_trip(ctx: coap.Context, coap_server: CoapServer, unique_path: str) -> None:
    session = ctx.client_session(coap_server.coaps_uri, dtls=_psk(coap_server))
    assert session.proto is coap.Proto.DTLS
    _round_trip(session, unique_path)


def test_pki_round_trip_sample_files(
    ctx: coap.Context, coap_server: CoapServer, certs: CertFiles, unique_path: str
) -> None:
    """The sample's layout: cert.crt (device + CA) is also the CA file."""
    session = ctx.client_session(
        coap_server.coaps_uri, dtls=sample_pki(certs.cert, certs.key, certs.cert)
    )
    _round_trip(session, unique_path)


def test_pki_round_trip_path_strings(
    ctx: coap.Context, coap_server: CoapServer, certs: CertFiles, unique_path: str
) -> None:
    pki = coap.PKI(cert=str(certs.cert), key=str(certs.key), ca=str(certs.ca))
    _round_trip(ctx.client_session(coap_server.coaps_uri, dtls=pki), unique_path)


def test_client_validate_cn_that_raises_is_reraised_by_the_request(
    ctx: coap.Context, coap_server: CoapServer, certs: CertFiles
) -> None:
    """An exception in a client's validate_cn ends the handshake and comes out of the
    request that started it, as a handler's does; the next session works."""

    def validate_cn(cn: str, depth: int) -> bool:
        raise LookupError(f"no policy for {cn!r} on purpose")

    pki = coap.PKI(certs.cert, certs.key, certs.ca, validate_cn=validate_cn)
    session = ctx.client_session(coap_server.coaps_uri, dtls=pki)
    with pytest.raises(LookupError, match="on purpose"):
        session.request("GET", "", timeout=10)
    good = coap.PKI(certs.cert, certs.key, certs.ca)
    again = ctx.client_session(coap_server.coaps_uri, dtls=good)
    assert again.request("GET", "", timeout=10).code is coap.Code.CONTENT


def test_pki_round_trip_pem_bytes(
    ctx: coap.Context, coap_server: CoapServer, certs: CertFiles, unique_path: str
) -> None:
    pki = sample_pki(certs.cert.read_bytes(), certs.key.read_bytes(), certs.cert.read_bytes())
    _round_trip(ctx.client_session(coap_server.coaps_uri, dtls=pki), unique_path)


def test_psk_and_pki_in_separate_contexts(
    coap_server: CoapServer, certs: CertFiles, unique_path: str
) -> None:
    with coap.Context() as ctx_psk, coap.Context() as ctx_pki:
        psk = ctx_psk.client_session(coap_server.coaps_uri, dtls=_psk(coap_server))
        pki = ctx_pki.client_session(
            coap_server.coaps_uri, dtls=sample_pki(certs.cert, certs.key, certs.cert)
        )
        put = psk.request("PUT", unique_path, payload=b"via psk", timeout=10)
        assert put.code is coap.Code.CREATED
        assert pki.request("GET", unique_path, timeout=10).payload == b"via psk"


def test_pki_session_after_psk_session_in_one_context(
    ctx: coap.Context, coap_server: CoapServer, certs: CertFiles, unique_path: str
) -> None:
    """One Context, a PSK session made first, then a PKI session; PKI is used first.

    libcoap 4.3.1 keeps DTLS credentials per context: a PKI session made after a
    PSK session offers PSK cipher suites and has no key for them. The binding
    must make this work or refuse it clearly (NotSupportedError), not fail the
    handshake later.
    """
    psk = ctx.client_session(coap_server.coaps_uri, dtls=_psk(coap_server))
    try:
        pki = ctx.client_session(
            coap_server.coaps_uri, dtls=sample_pki(certs.cert, certs.key, certs.cert)
        )
    except coap.NotSupportedError:
        return  # refused up front, with a clear error: acceptable
    assert pki.request("PUT", unique_path, payload=b"via pki", timeout=10).code is coap.Code.CREATED
    assert psk.request("GET", unique_path, timeout=10).payload == b"via pki"


def test_dtls_ipv6(
    ctx: coap.Context, coap_server_v6: CoapServer, certs: CertFiles, unique_path: str
) -> None:
    session = ctx.client_session(
        coap_server_v6.coaps_uri, dtls=sample_pki(certs.cert, certs.key, certs.cert)
    )
    _round_trip(session, unique_path)


def test_intermediate_chain_with_root_cas(
    ctx: coap.Context, chain_server: CoapServer, chain_certs: ChainFiles, unique_path: str
) -> None:
    """root -> intermediate -> leaf, both ways, trusting root and intermediate via root_cas.

    (libcoap 4.3.1 verifies such chains through the trusted-roots store, not
    through the CA file of check_common_ca; its peers send only their leaf.)
    """
    pki = coap.PKI(
        cert=chain_certs.device_chain,
        key=chain_certs.device_key,
        require_peer_cert=False,
        root_cas=chain_certs.cas,
    )
    _round_trip(ctx.client_session(chain_server.coaps_uri, dtls=pki), unique_path)


def test_intermediate_chain_untrusted_root(
    ctx: coap.Context, chain_server: CoapServer, chain_certs: ChainFiles, certs: CertFiles
) -> None:
    pki = coap.PKI(
        cert=chain_certs.device_chain,
        key=chain_certs.device_key,
        require_peer_cert=False,
        root_cas=certs.other_ca,
    )
    session = ctx.client_session(chain_server.coaps_uri, dtls=pki)
    with pytest.raises(coap.DTLSError):
        session.request("GET", "", timeout=10)


def test_coaps_without_dtls_config_is_value_error(
    ctx: coap.Context, coap_server: CoapServer
) -> None:
    with pytest.raises(ValueError):
        ctx.client_session(coap_server.coaps_uri)


# --------------------------------------------------------------------------
# failures


def test_server_rejects_device_of_unrelated_ca(
    ctx: coap.Context, coap_server: CoapServer, certs: CertFiles
) -> None:
    pki = sample_pki(certs.other_cert, certs.other_key, certs.ca)
    session = ctx.client_session(coap_server.coaps_uri, dtls=pki)
    with pytest.raises(coap.DTLSError) as info:
        session.request("GET", "", timeout=10)
    assert isinstance(info.value, coap.NackError)
    assert not isinstance(info.value, coap.RequestTimeout)
    assert info.value.reason is coap.NackReason.TLS_FAILED


def test_client_rejects_server_of_unrelated_ca(
    ctx: coap.Context, coap_server: CoapServer, certs: CertFiles
) -> None:
    pki = sample_pki(certs.cert, certs.key, certs.other_ca)
    session = ctx.client_session(coap_server.coaps_uri, dtls=pki)
    with pytest.raises(coap.DTLSError) as info:
        session.request("GET", "", timeout=10)
    assert info.value.reason is coap.NackReason.TLS_FAILED


def test_wrong_psk_is_dtls_error_not_timeout(ctx: coap.Context, coap_server: CoapServer) -> None:
    """A wrong PSK gets no alert: the handshake never completes. That is DTLSError."""
    session = ctx.client_session(coap_server.coaps_uri, dtls=_psk(coap_server, b"not-the-key"))
    started = time.monotonic()
    with pytest.raises(coap.DTLSError) as info:
        session.request("GET", "", timeout=3)
    assert not isinstance(info.value, coap.RequestTimeout)
    # bounded: the request gave up at (about) its timeout rather than libcoap's own
    # much later give-up; generous margin, this is not a timing test
    assert time.monotonic() - started < 15


def test_context_usable_after_failed_handshake(
    ctx: coap.Context, coap_server: CoapServer, certs: CertFiles
) -> None:
    bad = ctx.client_session(
        coap_server.coaps_uri, dtls=sample_pki(certs.cert, certs.key, certs.other_ca)
    )
    with pytest.raises(coap.DTLSError):
        bad.request("GET", "", timeout=10)
    # PSK after certificates, where the backend keeps them apart in one Context
    good_dtls = (
        sample_pki(certs.cert, certs.key, certs.cert)
        if TLS_NAME in PSK_PKI_MIXED
        else _psk(coap_server)
    )
    good = ctx.client_session(coap_server.coaps_uri, dtls=good_dtls)
    assert good.request("GET", "", timeout=10).code is coap.Code.CONTENT


@pytest.mark.parametrize("which", ["cert", "key", "ca"])
def test_missing_file_is_file_not_found(certs: CertFiles, tmp_path: Path, which: str) -> None:
    files: dict[str, Path] = {"cert": certs.cert, "key": certs.key, "ca": certs.cert}
    missing = tmp_path / f"no-such-{which}.pem"
    files[which] = missing
    with pytest.raises(FileNotFoundError) as info:
        coap.PKI(cert=files["cert"], key=files["key"], ca=files["ca"])
    assert missing.name in str(info.value) or info.value.filename in (str(missing), missing)
