"""Certificates for tests and demos, made with ``cryptography``.

Everything here is for test rigs and local experiments: EC P-256 keys,
unencrypted private keys, a long validity period. Do not use these helpers
to run a production PKI.

Typical use::

    from libcoap_py import certs
    files = certs.init_dir("demo-certs")
    # files["cert"] is the device certificate followed by the CA certificate,
    # files["key"] its private key, as the C DTLS sample expects them.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
from collections.abc import Iterable, Sequence
from pathlib import Path

try:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError(
        "libcoap_py.certs needs the 'cryptography' package: pip install 'libcoap-py[certs]'"
    ) from exc

#: The private key type every helper here makes.
PrivateKey = ec.EllipticCurvePrivateKey
#: A certificate and its private key.
CertAndKey = tuple[x509.Certificate, ec.EllipticCurvePrivateKey]

__all__ = [
    "DEFAULT_SANS",
    "init_dir",
    "make_ca",
    "make_intermediate",
    "make_leaf",
    "pem",
    "write_pem",
]

#: Subject alternative names a server leaf gets unless told otherwise.
DEFAULT_SANS: tuple[str, ...] = ("localhost", "127.0.0.1", "::1")

_CA_DAYS = 3650
_LEAF_DAYS = 825


def _now() -> datetime.datetime:
    # Aware local time (cryptography stores it as UTC), backdated a little so a
    # peer whose clock lags slightly still accepts the certificate.
    return datetime.datetime.now().astimezone() - datetime.timedelta(minutes=5)


def _new_key() -> PrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "libcoap-py"),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _ca_cert(
    subject_cn: str,
    key: PrivateKey,
    issuer_cert: x509.Certificate | None,
    issuer_key: PrivateKey,
    path_length: int | None,
) -> x509.Certificate:
    start = _now()
    subject = _name(subject_cn)
    issuer = issuer_cert.subject if issuer_cert is not None else subject
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + datetime.timedelta(days=_CA_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=path_length), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    )
    if issuer_cert is not None:
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()),
            critical=False,
        )
    return builder.sign(issuer_key, hashes.SHA256())


def make_ca(common_name: str = "libcoap-py test CA") -> CertAndKey:
    """Make a self-signed root CA (EC P-256, valid 10 years)."""
    key = _new_key()
    return _ca_cert(common_name, key, None, key, None), key


def make_intermediate(
    issuer_cert: x509.Certificate,
    issuer_key: PrivateKey,
    common_name: str = "libcoap-py test intermediate CA",
) -> CertAndKey:
    """Make an intermediate CA signed by ``issuer_cert``; it may sign leaves only."""
    key = _new_key()
    return _ca_cert(common_name, key, issuer_cert, issuer_key, 0), key


def _san_entries(names: Iterable[str]) -> list[x509.GeneralName]:
    entries: list[x509.GeneralName] = []
    for name in names:
        try:
            entries.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            entries.append(x509.DNSName(name))
    return entries


def make_leaf(
    issuer_cert: x509.Certificate,
    issuer_key: PrivateKey,
    common_name: str,
    *,
    server: bool,
    sans: Sequence[str] | None = None,
) -> CertAndKey:
    """Make an end-entity certificate signed by ``issuer_cert``.

    A server leaf gets the serverAuth extended key usage and, unless ``sans``
    says otherwise, the subject alternative names in :data:`DEFAULT_SANS`.
    A device (client) leaf gets clientAuth and only the SANs given in ``sans``.
    """
    key = _new_key()
    start = _now()
    usage = ExtendedKeyUsageOID.SERVER_AUTH if server else ExtendedKeyUsageOID.CLIENT_AUTH
    if sans is None:
        sans = DEFAULT_SANS if server else ()
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name))
        .issuer_name(issuer_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + datetime.timedelta(days=_LEAF_DAYS))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()),
            critical=False,
        )
    )
    entries = _san_entries(sans)
    if entries:
        builder = builder.add_extension(x509.SubjectAlternativeName(entries), critical=False)
    return builder.sign(issuer_key, hashes.SHA256()), key


def pem(*objs: x509.Certificate | PrivateKey) -> bytes:
    """PEM-encode certificates and private keys (keys unencrypted, PKCS#8), in order."""
    out = []
    for obj in objs:
        if isinstance(obj, x509.Certificate):
            out.append(obj.public_bytes(serialization.Encoding.PEM))
        else:
            out.append(
                obj.private_bytes(
                    serialization.Encoding.PEM,
                    serialization.PrivateFormat.PKCS8,
                    serialization.NoEncryption(),
                )
            )
    return b"".join(out)


def write_pem(
    path: str | os.PathLike[str],
    *objs: x509.Certificate | PrivateKey,
    overwrite: bool = True,
) -> Path:
    """Write ``objs`` PEM-encoded to ``path`` and return it as a :class:`Path`.

    A file that holds a private key is created with mode 0600. With
    ``overwrite=False`` an existing file raises :class:`FileExistsError`.
    """
    target = Path(path)
    secret = any(not isinstance(obj, x509.Certificate) for obj in objs)
    data = pem(*objs)
    flags = os.O_WRONLY | os.O_CREAT | (os.O_TRUNC if overwrite else os.O_EXCL)
    mode = 0o600 if secret else 0o644
    try:
        fd = os.open(target, flags, mode)
    except FileExistsError:
        raise FileExistsError(
            f"{target} already exists; pass overwrite=True to replace it"
        ) from None
    with os.fdopen(fd, "wb") as fh:
        if secret:
            # O_CREAT's mode is ignored for an existing file: tighten it anyway.
            os.fchmod(fh.fileno(), 0o600)
        fh.write(data)
    return target


def init_dir(
    directory: str | os.PathLike[str],
    device_id: str = "device-1",
    overwrite: bool = False,
) -> dict[str, Path]:
    """Create a demo PKI in ``directory`` and return the files by role.

    Writes ``ca.crt``/``ca.key`` (root CA), ``server.crt``/``server.key``
    (server leaf for localhost, 127.0.0.1 and ::1), and the device files the
    C DTLS sample uses: ``cert.crt`` (device certificate followed by the CA
    certificate, so it also serves as the CA file) and ``key.pem``.

    Returned keys: ``ca``, ``ca_key``, ``server_cert``, ``server_key``,
    ``cert``, ``key``. Existing files raise :class:`FileExistsError` naming
    the file unless ``overwrite`` is true; nothing is written in that case.
    """
    out = Path(directory)
    files = {
        "ca": out / "ca.crt",
        "ca_key": out / "ca.key",
        "server_cert": out / "server.crt",
        "server_key": out / "server.key",
        "cert": out / "cert.crt",
        "key": out / "key.pem",
    }
    if not overwrite:
        for path in files.values():
            if path.exists():
                raise FileExistsError(f"{path} already exists; pass overwrite=True to replace it")
    out.mkdir(parents=True, exist_ok=True)

    ca_cert, ca_key = make_ca()
    server_cert, server_key = make_leaf(ca_cert, ca_key, "localhost", server=True)
    device_cert, device_key = make_leaf(ca_cert, ca_key, device_id, server=False)

    write_pem(files["ca"], ca_cert)
    write_pem(files["ca_key"], ca_key)
    write_pem(files["server_cert"], server_cert)
    write_pem(files["server_key"], server_key)
    write_pem(files["cert"], device_cert, ca_cert)
    write_pem(files["key"], device_key)
    return files
