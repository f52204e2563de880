"""The client checks the server's name in its certificate, inside the handshake.

A trusted CA issues certificates for several names; the client must accept only
the one for the host it asked for (RFC 6125: subjectAltName DNS names and IP
addresses, the common name only without them), abort the handshake otherwise
(so that an impostor gets no request), and say which names did not match.

Peers: the project's own server (which records what reaches its handlers) and
coap-server-openssl / -gnutls with the same certificates.
"""

from __future__ import annotations

import datetime
import ipaddress
import subprocess
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import pytest
from helpers.build import LIBCOAP_42
from helpers.ctools import COAP_SERVER, NO_SERVER_REASON
from helpers.net import IPV6_AVAILABLE, coap_ping, free_port_pair

import libcoap_py as coap
from libcoap_py.peername import ServerName, certificate_names, matches, name_problem

pytest.importorskip("cryptography", reason="test certificates need the 'cryptography' package")
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

Serve = Callable[..., Any]

# --------------------------------------------------------------------------
# certificates


@dataclass(frozen=True)
class Issued:
    cert: Path
    key: Path
    der: bytes


class Pki:
    """One trusted CA that issues server certificates for any name asked of it."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.timezone.utc)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "server-name test CA")])
        self.cert = (
            x509.CertificateBuilder()
            .subject_name(name)
            .issuer_name(name)
            .public_key(self.key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=30))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(
                x509.SubjectKeyIdentifier.from_public_key(self.key.public_key()), critical=False
            )
            .sign(self.key, hashes.SHA256())
        )
        self.ca = directory / "ca.crt"
        self.ca.write_bytes(self.cert.public_bytes(serialization.Encoding.PEM))
        self._count = 0

    def issue(
        self,
        cn: str,
        sans: Sequence[str] = (),
        *,
        expired: bool = False,
        self_signed: bool = False,
    ) -> Issued:
        """A server certificate: ``sans`` are IP addresses or DNS names (none: no SAN)."""
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.now(datetime.timezone.utc)
        start, end = now - datetime.timedelta(days=1), now + datetime.timedelta(days=30)
        if expired:
            start, end = now - datetime.timedelta(days=30), now - datetime.timedelta(days=2)
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
        builder = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject if self_signed else self.cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(start)
            .not_valid_after(end)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        )
        entries: list[x509.GeneralName] = []
        for san in sans:
            try:
                entries.append(x509.IPAddress(ipaddress.ip_address(san)))
            except ValueError:
                entries.append(x509.DNSName(san))
        if entries:
            builder = builder.add_extension(x509.SubjectAlternativeName(entries), critical=False)
        cert = builder.sign(key if self_signed else self.key, hashes.SHA256())
        self._count += 1
        stem = self.directory / f"server-{self._count}"
        cert_path, key_path = stem.with_suffix(".crt"), stem.with_suffix(".key")
        cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        key_path.write_bytes(
            key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        return Issued(cert_path, key_path, cert.public_bytes(serialization.Encoding.DER))


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return Pki(tmp_path_factory.mktemp("server-name"))


# --------------------------------------------------------------------------
# the name rules, on certificates (no network)


def _names(pki: Pki, cn: str, sans: Sequence[str] = ()) -> Any:
    return certificate_names(pki.issue(cn, sans).der)


@pytest.mark.parametrize(
    ("sans", "cn", "name", "ok"),
    [
        (["localhost"], "x", "localhost", True),
        (["localhost"], "x", "LocalHost.", True),
        (["evil.example", "10.9.9.9"], "x", "localhost", False),
        (["evil.example", "10.9.9.9"], "x", "127.0.0.1", False),
        (["evil.example", "10.9.9.9"], "x", "10.9.9.9", True),
        (["127.0.0.1"], "x", "127.0.0.1", True),
        (["127.0.0.1"], "127.0.0.1", "localhost", False),
        (["::1"], "x", "[::1]", True),
        (["::1"], "x", "0:0:0:0:0:0:0:1", True),
        (["::1"], "x", "::2", False),
        (["fe80::1"], "x", "fe80::1%lo", True),
        # The common name counts only without DNS / IP subjectAltNames.
        ([], "localhost", "localhost", True),
        ([], "localhost", "127.0.0.1", False),
        ([], "127.0.0.1", "127.0.0.1", True),
        (["evil.example"], "localhost", "localhost", False),
        # Wildcards: one whole left-most label, never across dots, never the bare domain.
        (["*.example.test"], "x", "a.example.test", True),
        (["*.example.test"], "x", "example.test", False),
        (["*.example.test"], "x", "a.b.example.test", False),
        (["f*.example.test"], "x", "foo.example.test", False),
        (["*.test"], "x", "example.test", False),
        (["xn--bcher-kva.example"], "x", "bücher.example", True),
    ],
)
def test_name_rules(pki: Pki, sans: list[str], cn: str, name: str, ok: bool) -> None:
    assert matches(_names(pki, cn, sans), ServerName.parse(name)) is ok


def test_the_problem_names_both_names(pki: Pki) -> None:
    problem = name_problem(
        pki.issue("evil", ["evil.example", "10.9.9.9"]).der, ServerName.parse("127.0.0.1")
    )
    assert problem is not None
    assert "'127.0.0.1'" in problem and "evil.example" in problem and "10.9.9.9" in problem
    assert name_problem(b"\x30\x03garbage", ServerName.parse("localhost")) is not None


@pytest.mark.parametrize("bad", ["", "a..b", "bad name", "x" * 64 + ".example", "*.example"])
def test_unusable_server_names_are_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="not a valid host name"):
        ServerName.parse(bad)


# --------------------------------------------------------------------------
# the project's own server: what reaches the impostor


class Recorder:
    def __init__(self) -> None:
        self.payloads: list[bytes] = []


def _own_server(
    issued: Issued, pki: Pki, seen: Recorder, host: str = "127.0.0.1"
) -> Callable[[coap.Context], int]:
    def setup(ctx: coap.Context) -> int:
        server_pki = coap.PKI(
            issued.cert, issued.key, pki.ca, verify_peer_cert=False, require_peer_cert=False
        )
        bracketed = f"[{host}]" if ":" in host else host
        endpoint = ctx.add_endpoint(f"coaps://{bracketed}:0", dtls=server_pki)

        @ctx.resource("x", ("GET", "POST"))
        def x(request: coap.Request, response: coap.ServerResponse) -> None:
            seen.payloads.append(request.payload)
            response.payload = b"ok"

        return endpoint.port

    return setup


def _post(
    uri: str, client_pki: coap.PKI, payload: bytes = b"secret", **session: Any
) -> coap.Response:
    with coap.Context() as ctx:
        s = ctx.client_session(uri, dtls=client_pki, **session)
        return s.request("POST", "x", payload=payload, timeout=5)


@pytest.fixture
def impostor(serve: Serve, pki: Pki) -> tuple[int, Recorder]:
    """Our own server with a trusted certificate for evil.example / 10.9.9.9."""
    seen = Recorder()
    port = serve(_own_server(pki.issue("evil", ["evil.example", "10.9.9.9"]), pki, seen))
    return port, seen


@pytest.mark.needs_dtls
@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
def test_impostor_gets_no_request(impostor: tuple[int, Recorder], pki: Pki, host: str) -> None:
    port, seen = impostor
    with pytest.raises(coap.DTLSError) as caught:
        _post(f"coaps://{host}:{port}", coap.PKI(ca=pki.ca))
    message = str(caught.value)
    assert repr(host) in message and "evil.example" in message and "10.9.9.9" in message
    # The server is alive and in order: a session that opts out gets through, and
    # its payload is the only one the server ever saw.
    answer = _post(
        f"coaps://{host}:{port}", coap.PKI(ca=pki.ca, check_hostname=False), b"opted out"
    )
    assert answer.payload == b"ok"
    assert seen.payloads == [b"opted out"]


@pytest.mark.needs_dtls
def test_a_session_refused_stays_refused(impostor: tuple[int, Recorder], pki: Pki) -> None:
    """A refused Session renews on the next request, and the new handshake checks again."""
    port, seen = impostor
    with coap.Context() as ctx:
        s = ctx.client_session(f"coaps://127.0.0.1:{port}", dtls=coap.PKI(ca=pki.ca))
        for _ in range(2):
            with pytest.raises(coap.DTLSError, match=r"evil\.example"):
                s.request("POST", "x", payload=b"secret", timeout=5)
        assert s.refusal is not None and "evil.example" in s.refusal
    assert seen.payloads == []


@pytest.mark.needs_dtls
def test_server_name_checks_another_name(impostor: tuple[int, Recorder], pki: Pki) -> None:
    port, seen = impostor
    uri = f"coaps://127.0.0.1:{port}"
    assert _post(uri, coap.PKI(ca=pki.ca), server_name="evil.example").payload == b"ok"
    assert _post(uri, coap.PKI(ca=pki.ca), server_name="10.9.9.9").payload == b"ok"
    with pytest.raises(coap.DTLSError, match=r"'other\.example'"):
        _post(uri, coap.PKI(ca=pki.ca), server_name="other.example")
    assert seen.payloads == [b"secret", b"secret"]


@pytest.mark.needs_dtls
@pytest.mark.parametrize(
    ("cn", "sans", "host", "ok"),
    [
        ("x", ["localhost"], "localhost", True),
        ("x", ["localhost"], "127.0.0.1", False),
        ("x", ["127.0.0.1"], "127.0.0.1", True),
        ("x", ["127.0.0.1"], "localhost", False),
        ("localhost", [], "localhost", True),
        ("localhost", [], "127.0.0.1", False),
        ("localhost", ["evil.example"], "localhost", False),
    ],
)
def test_own_server_names(
    serve: Serve, pki: Pki, cn: str, sans: list[str], host: str, ok: bool
) -> None:
    seen = Recorder()
    port = serve(_own_server(pki.issue(cn, sans), pki, seen))
    uri = f"coaps://{host}:{port}"
    if ok:
        assert _post(uri, coap.PKI(ca=pki.ca)).payload == b"ok"
        assert seen.payloads == [b"secret"]
    else:
        with pytest.raises(coap.DTLSError, match=f"not for '{host}'"):
            _post(uri, coap.PKI(ca=pki.ca))
        assert seen.payloads == []


@pytest.mark.needs_dtls
def test_ipv6_address(serve: Serve, pki: Pki) -> None:
    if not IPV6_AVAILABLE:
        pytest.skip("IPv6 loopback ::1 is not available on this machine")
    seen = Recorder()
    good = serve(_own_server(pki.issue("x", ["::1"]), pki, seen, host="::1"))
    bad = serve(_own_server(pki.issue("x", ["::2"]), pki, seen, host="::1"))
    assert _post(f"coaps://[::1]:{good}", coap.PKI(ca=pki.ca)).payload == b"ok"
    with pytest.raises(coap.DTLSError, match="IP ::2"):
        _post(f"coaps://[::1]:{bad}", coap.PKI(ca=pki.ca))
    assert seen.payloads == [b"secret"]


@pytest.mark.needs_dtls
def test_flags_that_accept_a_certificate_do_not_skip_the_name(serve: Serve, pki: Pki) -> None:
    """Where a flag overrides a failed check (an expired or self-signed certificate),
    the name is still checked: every TLS backend calls the certificate callback."""
    seen = Recorder()
    expired = serve(_own_server(pki.issue("evil", ["evil.example"], expired=True), pki, seen))
    with pytest.raises(coap.DTLSError, match=r"evil\.example"):
        _post(f"coaps://127.0.0.1:{expired}", coap.PKI(ca=pki.ca, allow_expired_certs=True))
    self_signed = serve(
        _own_server(pki.issue("evil", ["evil.example"], self_signed=True), pki, seen)
    )
    lenient = coap.PKI(ca=pki.ca, require_peer_cert=False, allow_self_signed=True)
    with pytest.raises(coap.DTLSError, match=r"evil\.example"):
        _post(f"coaps://127.0.0.1:{self_signed}", lenient)
    assert seen.payloads == []


@pytest.mark.needs_dtls
def test_self_signed_flags_mean_what_they_mean_in_c(serve: Serve, pki: Pki) -> None:
    """allow_self_signed is ignored while require_peer_cert (check_common_ca) is on."""
    seen = Recorder()
    port = serve(_own_server(pki.issue("x", ["127.0.0.1"], self_signed=True), pki, seen))
    uri = f"coaps://127.0.0.1:{port}"
    as_in_the_sample = coap.PKI(ca=pki.ca, require_peer_cert=True, allow_self_signed=True)
    with pytest.raises(coap.DTLSError):
        _post(uri, as_in_the_sample)
    lenient = coap.PKI(ca=pki.ca, require_peer_cert=False, allow_self_signed=True)
    if LIBCOAP_42:
        # 4.2 lets allow_self_signed pass a self-signed root in a chain, never a
        # self-signed peer certificate: only turning verification off does.
        with pytest.raises(coap.DTLSError):
            _post(uri, lenient)
    else:
        assert _post(uri, lenient).payload == b"ok"
    unverified = coap.PKI(ca=pki.ca, verify_peer_cert=False, check_hostname=False)
    assert _post(uri, unverified).payload == b"ok"
    assert seen.payloads == [b"secret"] * (1 if LIBCOAP_42 else 2)


@pytest.mark.needs_dtls
def test_option_errors(pki: Pki) -> None:
    with coap.Context() as ctx:
        with pytest.raises(ValueError, match="check_hostname=False"):
            ctx.client_session(
                "coaps://127.0.0.1", dtls=coap.PKI(ca=pki.ca, verify_peer_cert=False)
            )
        with pytest.raises(ValueError, match="check_hostname=False"):
            ctx.client_session(
                "coaps://127.0.0.1",
                dtls=coap.PKI(ca=pki.ca, check_hostname=False),
                server_name="x.example",
            )
        with pytest.raises(ValueError, match=r"needs dtls=coap\.PKI"):
            ctx.client_session("coaps://127.0.0.1", dtls=coap.PSK("id", "key"), server_name="x")
        with pytest.raises(ValueError, match=r"needs dtls=coap\.PKI"):
            ctx.client_session("coap://127.0.0.1", server_name="x")
        with pytest.raises(ValueError, match="not a valid host name"):
            ctx.client_session("coaps://127.0.0.1", dtls=coap.PKI(ca=pki.ca), server_name="a b")
        # Both opt-outs together are accepted.
        ctx.client_session(
            "coaps://127.0.0.1",
            dtls=coap.PKI(ca=pki.ca, verify_peer_cert=False, check_hostname=False),
        )


# --------------------------------------------------------------------------
# libcoap's own server


@dataclass
class CServer:
    port: int
    process: subprocess.Popen[bytes]


def _c_server(tmp_path: Path, issued: Issued, pki: Pki, *extra: str) -> Iterator[CServer]:
    if COAP_SERVER is None:
        pytest.skip(NO_SERVER_REASON)
    from helpers.ctools import cert_args

    for _ in range(3):
        port = free_port_pair()
        log = (tmp_path / f"coap-server-{port}.log").open("wb")
        proc = subprocess.Popen(
            [COAP_SERVER, "-A", "127.0.0.1", "-p", str(port), "-d", "10", "-v", "6",
             *cert_args(issued.cert, issued.key), "-C", str(pki.ca), "-n", *extra],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )  # fmt: skip
        log.close()
        for _ in range(200):
            if proc.poll() is not None or coap_ping("127.0.0.1", port):
                break
        if proc.poll() is None:
            try:
                yield CServer(port + 1, proc)
            finally:
                proc.terminate()
                proc.wait(timeout=5)
            return
    raise RuntimeError(f"{COAP_SERVER} did not come up")


@pytest.fixture
def c_impostor(tmp_path: Path, pki: Pki) -> Iterator[CServer]:
    yield from _c_server(tmp_path, pki.issue("evil", ["evil.example", "10.9.9.9"]), pki)


@pytest.mark.needs_dtls
def test_c_impostor_gets_no_request(c_impostor: CServer, pki: Pki) -> None:
    """coap-server creates a resource on PUT: the refused PUT must not create it."""
    uri = f"coaps://127.0.0.1:{c_impostor.port}"
    with coap.Context() as ctx:
        s = ctx.client_session(uri, dtls=coap.PKI(ca=pki.ca))
        with pytest.raises(coap.DTLSError, match=r"'127\.0\.0\.1'.*evil\.example"):
            s.request("PUT", "secret", payload=b"secret", timeout=5)
    with coap.Context() as ctx:
        s = ctx.client_session(uri, dtls=coap.PKI(ca=pki.ca, check_hostname=False))
        assert s.request("GET", "secret", timeout=5).code == coap.Code.NOT_FOUND
        assert s.request("PUT", "mine", payload=b"x", timeout=5).code == coap.Code.CREATED
    with coap.Context() as ctx:
        s = ctx.client_session(uri, dtls=coap.PKI(ca=pki.ca), server_name="evil.example")
        assert s.request("GET", "mine", timeout=5).payload == b"x"


@pytest.mark.needs_dtls
@pytest.mark.skipif(LIBCOAP_42, reason="libcoap 4.2's coap-server has no -S (certificates by SNI)")
def test_sni_is_sent_for_names(tmp_path: Path, pki: Pki) -> None:
    """coap-server -S picks its certificate by the SNI the client sends: the name check
    passes only if the client sent the expected name as SNI."""
    named = pki.issue("named", ["sni.example"])
    combined = tmp_path / "named.pem"
    combined.write_bytes(named.cert.read_bytes() + named.key.read_bytes())
    sni_file = tmp_path / "sni.txt"
    sni_file.write_text(f"sni.example,{combined},{pki.ca}\n")
    default = pki.issue("default", ["default.example"])
    for server in _c_server(tmp_path, default, pki, "-S", str(sni_file)):
        uri = f"coaps://127.0.0.1:{server.port}"
        with coap.Context() as ctx:
            s = ctx.client_session(uri, dtls=coap.PKI(ca=pki.ca), server_name="sni.example")
            assert s.request("GET", "", timeout=5).code == coap.Code.CONTENT
        # An explicit client_sni wins over the name.
        with coap.Context() as ctx:
            pki_sni = coap.PKI(ca=pki.ca, client_sni="other.example")
            s = ctx.client_session(uri, dtls=pki_sni, server_name="sni.example")
            with pytest.raises(coap.DTLSError, match=r"default\.example"):
                s.request("GET", "", timeout=5)


# --------------------------------------------------------------------------
# the CLI


def _cli(*args: str | int) -> subprocess.CompletedProcess[bytes]:
    command = [sys.executable, "-I", "-m", "libcoap_py", *map(str, args)]
    return subprocess.run(
        command, capture_output=True, timeout=40, stdin=subprocess.DEVNULL, check=False
    )


@pytest.mark.needs_dtls
def test_cli_checks_the_name(impostor: tuple[int, Recorder], pki: Pki) -> None:
    port, seen = impostor
    uri = f"coaps://127.0.0.1:{port}/x"
    refused = _cli("post", uri, "-C", pki.ca, "-e", "secret", "-B", 5)
    assert refused.returncode != 0
    assert b"not for '127.0.0.1'" in refused.stderr and b"evil.example" in refused.stderr
    assert seen.payloads == []
    opt_outs = (["--no-check-hostname"], ["--server-name", "evil.example"], ["-n"])
    for number, flags in enumerate(opt_outs):
        done = _cli("post", uri, "-C", pki.ca, "-e", f"p{number}", "-B", 5, *flags)
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip() == b"ok"
    assert seen.payloads == [b"p0", b"p1", b"p2"]


def test_cli_server_name_needs_a_name_check(pki: Pki) -> None:
    for flags in (
        ["--no-check-hostname"],
        ["-n"],
    ):
        done = _cli("get", "coaps://127.0.0.1:9/x", "-C", pki.ca, "--server-name", "a", *flags)
        assert done.returncode == 2 and b"--server-name" in done.stderr
    done = _cli("get", "coaps://127.0.0.1:9/x", "-k", "key", "--server-name", "a")
    assert done.returncode == 2 and b"--server-name" in done.stderr
