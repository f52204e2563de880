"""Whom a server certificate is for: the name check of certificate DTLS clients.

RFC 6125 as TLS clients apply it: a DNS name is compared with the
certificate's subjectAltName DNS entries (case-insensitive, a ``*`` allowed
only as the whole left-most label), an IP address with its subjectAltName IP
entries. The subject's common name counts only when the certificate carries
no DNS or IP subjectAltName at all (older certificates).

The certificate comes from the network, before it is trusted for anything but
its chain: it is parsed with ``cryptography``, never by hand.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from typing import Union

__all__ = ["CertificateNames", "ServerName", "certificate_names", "matches", "name_problem"]

IPAddress = Union[ipaddress.IPv4Address, ipaddress.IPv6Address]


@dataclass(frozen=True)
class ServerName:
    """The name a client expects in the server's certificate."""

    text: str
    """As the user wrote it (for messages)."""
    dns: str | None
    """The DNS name in A-label form, lower case, no trailing dot (None for an address)."""
    ip: IPAddress | None
    """The IP address (None for a DNS name)."""

    @classmethod
    def parse(cls, name: str) -> ServerName:
        """``name`` is a DNS name, an IPv4 address, or an IPv6 address (brackets and a
        ``%zone`` allowed). Raises ValueError for anything else."""
        if not isinstance(name, str):
            raise TypeError(f"server_name must be a str, not {type(name).__name__}")
        text = name.strip()
        bare = text[1:-1] if text.startswith("[") and text.endswith("]") else text
        try:
            return cls(name, None, ipaddress.ip_address(bare.split("%", 1)[0]))
        except ValueError:
            pass
        dns = bare.rstrip(".").lower()
        try:
            dns = dns.encode("idna").decode("ascii")
        except UnicodeError:
            raise ValueError(f"server_name {name!r} is not a valid host name") from None
        labels = dns.split(".")
        if not dns or any(not 0 < len(label) <= 63 for label in labels) or len(dns) > 253:
            raise ValueError(f"server_name {name!r} is not a valid host name")
        if any(not all(c.isalnum() or c in "-_" for c in label) for label in labels):
            raise ValueError(f"server_name {name!r} is not a valid host name")
        return cls(name, dns, None)

    @property
    def sni(self) -> str | None:
        """What to send as TLS Server Name Indication: DNS names only (RFC 6066)."""
        return self.dns


@dataclass(frozen=True)
class CertificateNames:
    """The identities a certificate presents."""

    dns: tuple[str, ...]
    ips: tuple[IPAddress, ...]
    common_names: tuple[str, ...]

    def describe(self) -> str:
        """For messages: ``DNS evil.example, IP 10.9.9.9`` or ``CN name (no SAN)``."""
        parts = [f"DNS {d}" for d in self.dns] + [f"IP {ip}" for ip in self.ips]
        if parts:
            return ", ".join(parts)
        if self.common_names:
            return ", ".join(f"CN {cn}" for cn in self.common_names) + " (no subjectAltName)"
        return "no DNS name, IP address or common name"


def certificate_names(der: bytes) -> CertificateNames:
    """The DNS names, IP addresses and common names of a DER certificate.

    Raises ValueError if ``der`` is not a certificate ``cryptography`` can read.
    """
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    cert = x509.load_der_x509_certificate(der)
    dns: list[str] = []
    ips: list[IPAddress] = []
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        pass
    else:
        dns = [str(d) for d in san.get_values_for_type(x509.DNSName)]
        ips = [
            ip
            for ip in san.get_values_for_type(x509.IPAddress)
            if isinstance(ip, (ipaddress.IPv4Address, ipaddress.IPv6Address))
        ]
    cns = [
        value if isinstance(value, str) else value.decode("utf-8", "replace")
        for value in (a.value for a in cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME))
    ]
    return CertificateNames(tuple(dns), tuple(ips), tuple(cns))


def _dns_matches(pattern: str, name: str) -> bool:
    """RFC 6125 6.4: exact (case-insensitive), or ``*.rest`` for one whole label."""
    pattern = pattern.rstrip(".").lower()
    if "*" not in pattern:
        return pattern == name
    first, _, rest = pattern.partition(".")
    # Only a whole left-most label, over at least two more labels; never an address.
    if first != "*" or "*" in rest or rest.count(".") < 1:
        return False
    head, _, tail = name.partition(".")
    return bool(head) and tail == rest


def _cn_matches(cn: str, expected: ServerName) -> bool:
    if expected.ip is not None:
        try:
            return ipaddress.ip_address(cn.strip()) == expected.ip
        except ValueError:
            return False
    assert expected.dns is not None
    return _dns_matches(cn.strip(), expected.dns)


def matches(names: CertificateNames, expected: ServerName) -> bool:
    """Whether a certificate presenting ``names`` is one for ``expected``."""
    if names.dns or names.ips:
        if expected.ip is not None:
            return expected.ip in names.ips
        assert expected.dns is not None
        return any(_dns_matches(d, expected.dns) for d in names.dns)
    # No DNS or IP subjectAltName: the most specific (last) common name.
    return bool(names.common_names) and _cn_matches(names.common_names[-1], expected)


def name_problem(der: bytes, expected: ServerName) -> str | None:
    """None if the DER certificate is for ``expected``, else what is wrong, naming both."""
    try:
        names = certificate_names(der)
    except ValueError as error:
        return f"the server's certificate could not be read ({error})"
    if matches(names, expected):
        return None
    return f"the server's certificate is not for {expected.text!r}: it names {names.describe()}"
