"""Certificate options beyond the C sample: a client without a certificate, and CRLs.

Peers: the project's own server (a certificate endpoint that does or does not ask
for a client certificate), coap-server -n (certificates, none asked of
clients), and coap-client and the project's CLI with -C only. CRLs are
made with ``cryptography`` and given to OpenSSL next to the trusted root
(``root_cas``), where it looks for them.
"""

from __future__ import annotations

import datetime
import subprocess
from pathlib import Path
from typing import Any, Callable

import pytest
from helpers.build import CHECKS_REVOCATION, DTLS, TLS_NAME
from helpers.certs import CertFiles
from helpers.ctools import COAP_SERVER, NO_SERVER_REASON, cert_args, client_data, coap_client_run
from helpers.net import coap_ping, free_port_pair
from helpers.waiting import wait_until

import libcoap_py as coap

pytest.importorskip("cryptography", reason="test certificates need the 'cryptography' package")
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization

pytestmark = pytest.mark.needs_dtls

Serve = Callable[..., Any]


def _own_server(certs: CertFiles, *, client_certs: bool) -> Callable[[coap.Context], int]:
    """A certificate endpoint with /x; ``client_certs`` asks for and checks client certificates."""

    def setup(ctx: coap.Context) -> int:
        pki = coap.PKI(
            certs.server_cert,
            certs.server_key,
            certs.ca,
            verify_peer_cert=client_certs,
            require_peer_cert=client_certs,
        )
        endpoint = ctx.add_endpoint("coaps://127.0.0.1:0", dtls=pki)

        @ctx.resource("x")
        def x(request: coap.Request, response: coap.ServerResponse) -> None:
            response.payload = b"cn=" + (request.peer_cn or "-").encode()

        return endpoint.port

    return setup


def _get(port: int, pki: coap.PKI) -> coap.Response:
    with coap.Context() as ctx:
        session = ctx.client_session(f"coaps://127.0.0.1:{port}", dtls=pki)
        return session.request("GET", "x", timeout=5)


def test_client_without_certificate_checks_the_server(serve: Serve, certs: CertFiles) -> None:
    port = serve(_own_server(certs, client_certs=False))
    assert _get(port, coap.PKI(ca=certs.ca)).payload == b"cn=-"
    # the server's certificate is still verified: an unrelated CA refuses it
    with pytest.raises(coap.DTLSError):
        _get(port, coap.PKI(ca=certs.other_ca))


def test_server_that_wants_a_client_certificate_refuses_none(
    serve: Serve, certs: CertFiles
) -> None:
    port = serve(_own_server(certs, client_certs=True))
    with pytest.raises(coap.DTLSError):
        _get(port, coap.PKI(ca=certs.ca))
    assert _get(port, coap.PKI(certs.cert, certs.key, certs.ca)).payload == b"cn=device-1"


def test_certificate_and_key_go_together(certs: CertFiles) -> None:
    with pytest.raises(ValueError, match="key is missing"):
        coap.PKI(certs.cert, ca=certs.ca)
    with pytest.raises(ValueError, match="cert is missing"):
        coap.PKI(key=certs.key, ca=certs.ca)


def test_a_server_needs_its_own_certificate(certs: CertFiles) -> None:
    with coap.Context() as ctx, pytest.raises(ValueError, match="own certificate"):
        ctx.add_endpoint("coaps://127.0.0.1:0", dtls=coap.PKI(ca=certs.ca))


@pytest.mark.skipif(COAP_SERVER is None, reason=NO_SERVER_REASON)
def test_client_without_certificate_against_the_c_server(certs: CertFiles) -> None:
    port = free_port_pair()
    command = [str(COAP_SERVER), "-A", "127.0.0.1", "-p", str(port), "-n"]
    command += [*cert_args(certs.server_cert, certs.server_key), "-C", str(certs.ca)]
    proc = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        assert wait_until(lambda: coap_ping("127.0.0.1", port), 10), "coap-server did not start"
        with coap.Context() as ctx:
            session = ctx.client_session(
                f"coaps://127.0.0.1:{port + 1}", dtls=coap.PKI(ca=certs.ca)
            )
            assert session.request("GET", "", timeout=5).code is coap.Code.CONTENT
            assert session.peer_cn == "localhost"
    finally:
        proc.terminate()
        proc.wait(10)


def test_c_client_without_certificate(serve: Serve, certs: CertFiles) -> None:
    port = serve(_own_server(certs, client_certs=False))
    out = coap_client_run("-C", str(certs.ca), f"coaps://127.0.0.1:{port}/x")
    assert out.returncode == 0, out.stderr
    assert client_data(out.stdout).strip() == b"cn=-"


def test_cli_with_only_a_ca_file(serve: Serve, certs: CertFiles) -> None:
    from test_cli_client import cli

    port = serve(_own_server(certs, client_certs=False))
    out = cli("get", f"coaps://127.0.0.1:{port}/x", "-C", str(certs.ca))
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == b"cn=-"


# -- certificate revocation lists ---------------------------------------------------------


def _trust_with_crl(
    certs: CertFiles, where: Path, *, expired: bool = False, revoke: bool = False
) -> Path:
    """The CA certificate followed by a CRL it signed, as one root_cas file."""
    ca_pem = certs.ca.read_bytes()
    ca_cert = x509.load_pem_x509_certificate(ca_pem)
    ca_key = serialization.load_pem_private_key(certs.ca_key.read_bytes(), password=None)
    now = datetime.datetime.now(datetime.timezone.utc)
    if expired:
        last, next_ = now - datetime.timedelta(days=10), now - datetime.timedelta(days=1)
    else:
        last, next_ = now - datetime.timedelta(days=1), now + datetime.timedelta(days=30)
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(ca_cert.subject)
        .last_update(last)
        .next_update(next_)
    )
    if revoke:
        server = x509.load_pem_x509_certificate(certs.server_cert.read_bytes())
        builder = builder.add_revoked_certificate(
            x509.RevokedCertificateBuilder()
            .serial_number(server.serial_number)
            .revocation_date(last)
            .build()
        )
    crl = builder.sign(ca_key, hashes.SHA256())  # type: ignore[arg-type]
    path = where / "trust-with-crl.pem"
    path.write_bytes(ca_pem + crl.public_bytes(serialization.Encoding.PEM))
    return path


def _crl_pki(root_cas: Path, **flags: bool) -> coap.PKI:
    return coap.PKI(root_cas=root_cas, require_peer_cert=False, check_cert_revocation=True, **flags)


needs_crls = pytest.mark.skipif(
    DTLS and TLS_NAME not in CHECKS_REVOCATION,  # (without DTLS: needs_dtls says so)
    reason=f"libcoap's {TLS_NAME} code loads no CRLs, so check_cert_revocation is refused "
    "(test_revocation_refused_where_libcoap_loads_no_crls)",
)


def test_revocation_refused_where_libcoap_loads_no_crls(
    serve: Serve, certs: CertFiles, tmp_path: Path
) -> None:
    """Asking for revocation checks is never ignored: where libcoap's TLS code loads no
    CRLs (GnuTLS, Mbed TLS), a revoked certificate would pass, so the PKI is refused."""
    revoked = _trust_with_crl(certs, tmp_path, revoke=True)
    if TLS_NAME in CHECKS_REVOCATION:
        port = serve(_own_server(certs, client_certs=False))
        with pytest.raises(coap.DTLSError):
            _get(port, _crl_pki(revoked))
        return
    for flags in ({}, {"allow_no_crl": True, "allow_expired_crl": True}):
        with pytest.raises(coap.NotSupportedError, match="revocation"):
            _crl_pki(revoked, **flags)
    # set after construction: refused when the PKI is used, not ignored
    pki = coap.PKI(root_cas=revoked, require_peer_cert=False)
    pki.check_cert_revocation = True
    with coap.Context() as ctx, pytest.raises(coap.NotSupportedError, match="revocation"):
        ctx.client_session("coaps://127.0.0.1:9", dtls=pki)


@needs_crls
def test_revocation_check_without_a_crl(serve: Serve, certs: CertFiles) -> None:
    port = serve(_own_server(certs, client_certs=False))
    with pytest.raises(coap.DTLSError):
        _get(port, _crl_pki(certs.ca))
    assert _get(port, _crl_pki(certs.ca, allow_no_crl=True)).code is coap.Code.CONTENT


@needs_crls
def test_revocation_check_with_a_crl(serve: Serve, certs: CertFiles, tmp_path: Path) -> None:
    port = serve(_own_server(certs, client_certs=False))
    assert _get(port, _crl_pki(_trust_with_crl(certs, tmp_path))).code is coap.Code.CONTENT
    revoked = _trust_with_crl(certs, tmp_path, revoke=True)
    for flags in ({}, {"allow_no_crl": True, "allow_expired_crl": True}):
        with pytest.raises(coap.DTLSError):
            _get(port, _crl_pki(revoked, **flags))


@needs_crls
def test_expired_crl(serve: Serve, certs: CertFiles, tmp_path: Path) -> None:
    port = serve(_own_server(certs, client_certs=False))
    stale = _trust_with_crl(certs, tmp_path, expired=True)
    with pytest.raises(coap.DTLSError):
        _get(port, _crl_pki(stale))
    assert _get(port, _crl_pki(stale, allow_expired_crl=True)).code is coap.Code.CONTENT
