"""libcoap_py.certs: the files it writes, and that real peers accept them."""

from __future__ import annotations

import datetime
import ipaddress
import stat
import subprocess
from pathlib import Path

import pytest
from helpers.build import LIBCOAP_42
from helpers.certs import CertFiles
from helpers.ctools import (
    CLIENT_CERT_REFUSED_LOG,
    COAP_CLIENT,
    NO_CLIENT_REASON,
    SERVER_CA_UNKNOWN_LOG,
    WELCOME,
    CoapServer,
    cert_args,
)

pytest.importorskip("cryptography", reason="libcoap_py.certs needs the 'cryptography' package")

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from libcoap_py import certs


def _load(path: Path) -> list[x509.Certificate]:
    return x509.load_pem_x509_certificates(path.read_bytes())


def test_init_dir_writes_the_sample_layout(tmp_path: Path) -> None:
    files = certs.init_dir(tmp_path / "pki", device_id="dev-42")
    assert {p.name for p in files.values()} == {
        "ca.crt", "ca.key", "server.crt", "server.key", "cert.crt", "key.pem",
    }  # fmt: skip
    for path in files.values():
        assert path.is_file() and path.parent == tmp_path / "pki"

    (ca,) = _load(files["ca"])
    device, ca_again = _load(files["cert"])  # device cert FOLLOWED BY the CA
    assert ca_again == ca
    assert device.issuer == ca.subject
    cn = device.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
    assert cn == "dev-42"
    device.verify_directly_issued_by(ca)

    # key.pem holds the key of the device certificate
    key = serialization.load_pem_private_key(files["key"].read_bytes(), password=None)
    assert key.public_key() == device.public_key()


def test_private_keys_are_owner_only(tmp_path: Path) -> None:
    files = certs.init_dir(tmp_path)
    for name in ("ca_key", "server_key", "key"):
        assert stat.S_IMODE(files[name].stat().st_mode) == 0o600, name
    assert stat.S_IMODE(files["ca"].stat().st_mode) & 0o044  # certificates stay readable


def test_init_dir_refuses_to_overwrite(tmp_path: Path) -> None:
    files = certs.init_dir(tmp_path)
    before = {name: path.read_bytes() for name, path in files.items()}
    with pytest.raises(FileExistsError, match=r"ca\.crt|ca\.key|server|cert\.crt|key\.pem"):
        certs.init_dir(tmp_path)
    assert {name: path.read_bytes() for name, path in files.items()} == before

    # even a single leftover key blocks it, and the message names that file
    other = tmp_path / "other"
    other.mkdir()
    (other / "key.pem").write_text("precious")
    with pytest.raises(FileExistsError, match=r"key\.pem"):
        certs.init_dir(other)
    assert (other / "key.pem").read_text() == "precious"
    assert not (other / "ca.key").exists()

    again = certs.init_dir(tmp_path, overwrite=True)
    assert again["key"].read_bytes() != before["key"]


def test_write_pem_refuses_overwrite_when_asked(tmp_path: Path) -> None:
    ca, key = certs.make_ca()
    target = certs.write_pem(tmp_path / "x.pem", ca)
    with pytest.raises(FileExistsError, match=r"x\.pem"):
        certs.write_pem(target, key, overwrite=False)
    assert _load(target) == [ca]


def test_certificate_profiles() -> None:
    ca, ca_key = certs.make_ca("My CA")
    server, _ = certs.make_leaf(ca, ca_key, "srv", server=True)
    device, _ = certs.make_leaf(ca, ca_key, "dev", server=False)

    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is True
    assert ca.not_valid_after_utc - ca.not_valid_before_utc >= datetime.timedelta(days=3649)
    assert ca.issuer == ca.subject

    sans = server.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert sans.get_values_for_type(x509.DNSName) == ["localhost"]
    assert set(sans.get_values_for_type(x509.IPAddress)) == {
        ipaddress.ip_address("127.0.0.1"),
        ipaddress.ip_address("::1"),
    }
    for leaf, usage in (
        (server, ExtendedKeyUsageOID.SERVER_AUTH),
        (device, ExtendedKeyUsageOID.CLIENT_AUTH),
    ):
        assert leaf.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is False
        assert list(leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value) == [usage]
        public = leaf.public_key()
        assert isinstance(public, ec.EllipticCurvePublicKey) and public.curve.name == "secp256r1"
        leaf.verify_directly_issued_by(ca)


def test_chain_through_intermediate_validates() -> None:
    verification = pytest.importorskip("cryptography.x509.verification")
    root, root_key = certs.make_ca()
    inter, inter_key = certs.make_intermediate(root, root_key)
    leaf, _ = certs.make_leaf(inter, inter_key, "localhost", server=True)
    verifier = (
        verification.PolicyBuilder()
        .store(verification.Store([root]))
        .build_server_verifier(x509.DNSName("localhost"))
    )
    chain = verifier.verify(leaf, [inter])
    assert chain[-1] == root

    stranger, _ = certs.make_ca("stranger")
    bad = (
        verification.PolicyBuilder()
        .store(verification.Store([stranger]))
        .build_server_verifier(x509.DNSName("localhost"))
    )
    with pytest.raises(verification.VerificationError):
        bad.verify(leaf, [inter])


# --------------------------------------------------------------------------
# the same files with libcoap's own C client (independent of the binding)

needs_client = pytest.mark.skipif(COAP_CLIENT is None, reason=NO_CLIENT_REASON)


#: What OpenSSL says of a chain whose root is not among the trusted CAs.
SELF_SIGNED_IN_CHAIN = b"self signed certificate in certificate chain"


def _coap_client(*args: str) -> subprocess.CompletedProcess[bytes]:
    assert COAP_CLIENT is not None
    return subprocess.run(
        [COAP_CLIENT, "-B", "3", *args], capture_output=True, timeout=15, check=False
    )


@pytest.mark.needs_dtls
@needs_client
def test_c_client_accepts_server_and_is_accepted(coap_server: CoapServer, certs: CertFiles) -> None:
    """The sample's layout: cert.crt is both the client certificate and its CA file."""
    out = _coap_client(
        *cert_args(certs.cert, certs.key),
        "-C",
        str(certs.cert),
        coap_server.coaps_uri + "/",
    )
    assert WELCOME in out.stdout, out.stderr.decode(errors="replace")
    assert SELF_SIGNED_IN_CHAIN not in out.stdout.lower(), out.stdout.decode(errors="replace")


@pytest.mark.needs_dtls
@needs_client
def test_c_server_rejects_device_of_other_ca(coap_server: CoapServer, certs: CertFiles) -> None:
    out = _coap_client(
        *cert_args(certs.other_cert, certs.other_key),
        "-C",
        str(certs.ca),
        coap_server.coaps_uri + "/",
    )
    assert WELCOME not in out.stdout
    log = (out.stdout + out.stderr).lower()  # coap-client logs to stdout
    if CLIENT_CERT_REFUSED_LOG is not None:
        assert CLIENT_CERT_REFUSED_LOG.encode() in log, log.decode(errors="replace")


@pytest.mark.needs_dtls
@needs_client
def test_c_client_rejects_server_of_other_ca(coap_server: CoapServer, certs: CertFiles) -> None:
    out = _coap_client(
        *cert_args(certs.cert, certs.key),
        "-C",
        str(certs.other_ca),
        coap_server.coaps_uri + "/",
    )
    log = (out.stdout + out.stderr).lower()  # coap-client logs to stdout
    if LIBCOAP_42:
        # 4.2's coap-client always allows self-signed certificates: it reports
        # that the server's chain ends in a root it does not know, then goes on.
        assert SELF_SIGNED_IN_CHAIN + b": overridden" in log, log.decode(errors="replace")
        return
    assert WELCOME not in out.stdout
    if SERVER_CA_UNKNOWN_LOG:
        assert any(text.encode() in log for text in SERVER_CA_UNKNOWN_LOG), log.decode(
            errors="replace"
        )
