"""The binding's server against libcoap's C client, and against the binding's own client.

``coap-client`` of the build's TLS backend (libcoap3-bin; libcoap2-bin on 4.2) is an
independent program over the same C library: coap://, coaps:// with PSK (identities
mapped to keys, or a callback) and with certificates (CA-issued client certificate
accepted and its CN shown; a certificate from another CA or none at all refused, and
no handler runs), over IPv4 and IPv6.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import pytest
from helpers.build import LIBCOAP_42, PSK_PKI_MIXED, TLS_NAME
from helpers.certs import CertFiles
from helpers.ctools import COAP_CLIENT, NO_CLIENT_REASON, cert_args, client_data, coap_client_run
from helpers.net import IPV6_AVAILABLE, uri_host
from helpers.payloads import binary_payload
from helpers.peers import Seen

import libcoap_py as coap

Serve = Callable[..., Any]

needs_c_client = pytest.mark.skipif(COAP_CLIENT is None, reason=NO_CLIENT_REASON)
needs_ipv6 = pytest.mark.skipif(
    not IPV6_AVAILABLE, reason="IPv6 loopback ::1 is not available on this machine"
)

HINT = b"libcoap-py-server-hint"
KEYS = {b"device-1": b"secret-one", b"device-2": b"secret-two"}
#: What the test resource answers; its absence in the client's output means "not served".
MARK = b"served-by-libcoap-py"
#: -B for exchanges that must fail: long enough for a handshake, short for the run.
REFUSED_WAIT_S = 2


def echo_setup(
    seen: list[Seen], endpoints: list[tuple[str, Any]], *, host: str = "127.0.0.1"
) -> Callable[[coap.Context], dict[str, int]]:
    """A server with resource ``echo`` (all methods: MARK + payload) on the given endpoints.

    ``endpoints``: (scheme, dtls) pairs; the setup returns {scheme: port}.
    """

    def setup(ctx: coap.Context) -> dict[str, int]:
        @ctx.resource("echo", methods=("GET", "POST", "PUT", "DELETE", "FETCH", "PATCH", "IPATCH"))
        def echo(request: Any, response: Any) -> None:
            seen.append(Seen.of(request))
            response.payload = MARK + request.payload
            response.content_format = coap.ContentFormat.OCTET_STREAM

        ports = {}
        for scheme, dtls in endpoints:
            ports[scheme] = ctx.add_endpoint(f"{scheme}://{uri_host(host)}:0", dtls=dtls).port
        return ports

    return setup


def served(out: Any, payload: bytes = b"") -> bool:
    return bool(client_data(out.stdout).startswith(MARK + payload))


def explain(out: Any) -> str:
    return f"rc={out.returncode} stdout={out.stdout[:200]!r} stderr={out.stderr[-1500:]!r}"


# --------------------------------------------------------------------------
# coap://


@needs_c_client
def test_c_client_plain_payload_options_and_query(serve: Serve, tmp_path: Path) -> None:
    seen: list[Seen] = []
    ports = serve(echo_setup(seen, [("coap", None)]))
    body = binary_payload(600)
    (tmp_path / "in.bin").write_bytes(body)
    out_file = tmp_path / "out.bin"
    out = coap_client_run(
        "-m", "put",
        "-f", str(tmp_path / "in.bin"),
        "-t", "json",
        "-A", "cbor",
        "-O", "65000,0x00ff7a",
        "-o", str(out_file),
        f"coap://127.0.0.1:{ports['coap']}/echo?k=v&flag",
    )  # fmt: skip
    assert out.returncode == 0, explain(out)
    assert out_file.read_bytes() == MARK + body
    (got,) = seen
    assert got.method == "PUT"
    assert got.path == "echo"
    assert got.payload == body
    assert got.content_format == coap.ContentFormat.JSON
    assert got.accept == coap.ContentFormat.CBOR
    assert got.query == ("k=v", "flag")
    assert got.option_values(65000) == [b"\x00\xff\x7a"]
    assert got.proto == coap.Proto.UDP
    assert got.peer[0] == "127.0.0.1"


@needs_c_client
@pytest.mark.parametrize("method", ["get", "post", "delete", "fetch", "patch", "ipatch"])
def test_c_client_plain_methods(serve: Serve, method: str) -> None:
    seen: list[Seen] = []
    ports = serve(echo_setup(seen, [("coap", None)]))
    # FETCH says what its body is (RFC 8132): libcoap 4.3.2 and later answer 4.15
    # without a Content-Format (test_server_api.py shows that).
    typed = ["-t", "text"] if method == "fetch" else []
    out = coap_client_run(
        "-m", method, "-e", "text", *typed, f"coap://127.0.0.1:{ports['coap']}/echo"
    )  # fmt: skip
    assert served(out), explain(out)
    assert [s.method for s in seen] == [method.upper()]


@needs_c_client
def test_c_client_not_found_method_not_allowed_and_well_known(serve: Serve) -> None:
    calls: list[str] = []

    def setup(ctx: coap.Context) -> int:
        @ctx.resource("read-only", methods=("GET",))
        def ro(request: Any, response: Any) -> None:
            calls.append(request.method)
            response.payload = MARK

        return ctx.add_endpoint("coap://127.0.0.1:0").port

    port = serve(setup)
    base = f"coap://127.0.0.1:{port}"
    missing = coap_client_run(base + "/missing")
    assert b"4.04" in missing.stdout + missing.stderr, explain(missing)
    not_allowed = coap_client_run("-m", "put", "-e", "x", base + "/read-only")
    assert b"4.05" in not_allowed.stdout + not_allowed.stderr, explain(not_allowed)
    core = coap_client_run(base + "/.well-known/core")
    assert b"</read-only>" in core.stdout, explain(core)
    ok = coap_client_run(base + "/read-only")
    assert client_data(ok.stdout).startswith(MARK), explain(ok)
    assert calls == ["GET"]


@needs_c_client
def test_c_client_unknown_resource_handler(serve: Serve) -> None:
    seen: list[Seen] = []

    def setup(ctx: coap.Context) -> int:
        @ctx.unknown_resource(methods=("PUT", "POST"))
        def anything(request: Any, response: Any) -> None:
            seen.append(Seen.of(request))
            response.code = coap.Code.CREATED
            response.payload = MARK + request.path.encode()

        return ctx.add_endpoint("coap://127.0.0.1:0").port

    port = serve(setup)
    out = coap_client_run("-m", "put", "-e", "v", f"coap://127.0.0.1:{port}/some/new/path")
    assert client_data(out.stdout).startswith(MARK + b"some/new/path"), explain(out)
    assert [(s.path, s.payload) for s in seen] == [("some/new/path", b"v")]


@needs_c_client
def test_c_client_handler_raises_then_server_serves(
    serve: Serve, caplog: pytest.LogCaptureFixture
) -> None:
    def setup(ctx: coap.Context) -> int:
        @ctx.resource("boom", methods=("GET", "POST"))
        def boom(request: Any, response: Any) -> None:
            if request.method == "POST":
                raise ZeroDivisionError("boom on purpose")
            response.payload = MARK

        return ctx.add_endpoint("coap://127.0.0.1:0").port

    port = serve(setup)
    failed = coap_client_run("-m", "post", "-e", "x", f"coap://127.0.0.1:{port}/boom")
    assert b"5.00" in failed.stdout + failed.stderr, explain(failed)
    ok = coap_client_run(f"coap://127.0.0.1:{port}/boom")
    assert client_data(ok.stdout).startswith(MARK), explain(ok)
    assert "boom on purpose" in caplog.text
    assert any(r.name == "libcoap_py.server" and r.exc_info for r in caplog.records)


@pytest.mark.needs_dtls
@needs_c_client
@needs_ipv6
@pytest.mark.skipif(
    TLS_NAME == "GnuTLS",
    reason="libcoap's coap-client sends the IPv6 literal '::1' as SNI, which libcoap's "
    "GnuTLS code as a DTLS server refuses ('A disallowed SNI server name has been "
    "received'); libcoap's own coap-server-gnutls fails the same way",
)
def test_c_client_ipv6_plain_and_psk(serve: Serve) -> None:
    seen: list[Seen] = []
    ports = serve(
        echo_setup(seen, [("coap", None), ("coaps", coap.PSK(hint=HINT, keys=KEYS))], host="::1")
    )
    plain = coap_client_run("-m", "post", "-e", "six", f"coap://[::1]:{ports['coap']}/echo")
    assert served(plain, b"six"), explain(plain)
    secure = coap_client_run(
        "-u", "device-1", "-k", "secret-one", "-m", "post", "-e", "sec6",
        f"coaps://[::1]:{ports['coaps']}/echo",
    )  # fmt: skip
    assert served(secure, b"sec6"), explain(secure)
    assert [s.peer[0] for s in seen] == ["::1", "::1"]
    assert [s.proto for s in seen] == [coap.Proto.UDP, coap.Proto.DTLS]
    assert seen[1].psk_identity == b"device-1"


# --------------------------------------------------------------------------
# coaps:// with PSK


def psk_lookup(asked: list[bytes]) -> Callable[[bytes], bytes | None]:
    def lookup(identity: bytes) -> bytes | None:
        asked.append(identity)
        return KEYS.get(identity)

    return lookup


@dataclass
class PskServer:
    port: int
    seen: list[Seen]
    asked: list[bytes]  # identities the key callback was asked for
    form: str  # "mapping" or "callback"


@pytest.fixture(params=["mapping", "callback"])
def psk_server(request: pytest.FixtureRequest, serve: Serve) -> PskServer:
    """A PSK coaps:// server whose keys are a mapping or a callback."""
    asked: list[bytes] = []
    keys: Any = KEYS if request.param == "mapping" else psk_lookup(asked)
    seen: list[Seen] = []
    ports = serve(echo_setup(seen, [("coaps", coap.PSK(hint=HINT, keys=keys))]))
    return PskServer(ports["coaps"], seen, asked, request.param)


@pytest.mark.needs_dtls
@needs_c_client
def test_c_client_psk_known_identities(psk_server: PskServer) -> None:
    port, seen = psk_server.port, psk_server.seen
    for identity, key in KEYS.items():
        out = coap_client_run(
            "-u", identity.decode(), "-k", key.decode(), "-m", "post", "-e", identity.decode(),
            f"coaps://127.0.0.1:{port}/echo",
        )  # fmt: skip
        assert served(out, identity), explain(out)
    assert [(s.psk_identity, s.payload) for s in seen] == [(i, i) for i in KEYS]
    assert all(s.proto == coap.Proto.DTLS and s.peer_cn is None for s in seen)
    if psk_server.form == "callback":
        assert set(psk_server.asked) == set(KEYS)


@pytest.mark.needs_dtls
@needs_c_client
def test_c_client_psk_unknown_identity_refused(psk_server: PskServer) -> None:
    port, seen = psk_server.port, psk_server.seen
    out = coap_client_run(
        "-u", "stranger", "-k", "secret-one", "-e", "x",
        f"coaps://127.0.0.1:{port}/echo",
        wait_s=REFUSED_WAIT_S,
    )  # fmt: skip
    assert not served(out), explain(out)
    assert seen == []
    if psk_server.form == "callback":  # it was asked, and said no
        assert psk_server.asked == [b"stranger"]
    ok = coap_client_run("-u", "device-1", "-k", "secret-one", f"coaps://127.0.0.1:{port}/echo")
    assert served(ok), explain(ok)


@pytest.mark.needs_dtls
@needs_c_client
def test_c_client_psk_wrong_key_refused(psk_server: PskServer) -> None:
    port, seen = psk_server.port, psk_server.seen
    out = coap_client_run(
        "-u", "device-1", "-k", "secret-two", "-e", "x",
        f"coaps://127.0.0.1:{port}/echo",
        wait_s=REFUSED_WAIT_S,
    )  # fmt: skip
    assert not served(out), explain(out)
    assert seen == []


@pytest.mark.needs_dtls
@needs_c_client
def test_c_client_psk_receives_the_hint(serve: Serve, tmp_path: Path) -> None:
    """coap-client's -h file maps the server's hint to an identity and key: the hint arrives."""
    seen: list[Seen] = []
    ports = serve(echo_setup(seen, [("coaps", coap.PSK(hint=HINT, keys=KEYS))]))
    if LIBCOAP_42:
        # 4.2's client has no -h hint file; at -v 7 it logs the hint it got.
        out = coap_client_run(
            "-v", "7", "-u", "device-2", "-k", "secret-two",
            f"coaps://127.0.0.1:{ports['coaps']}/echo",
        )  # fmt: skip
        assert b"got psk_identity_hint: '" + HINT + b"'" in out.stdout, explain(out)
        assert MARK in out.stdout, explain(out)
    else:
        hints = tmp_path / "hints.txt"
        hints.write_text(f"{HINT.decode()},device-2,secret-two\n")
        out = coap_client_run(
            "-h", str(hints), "-u", "nobody", "-k", "wrong-key",
            f"coaps://127.0.0.1:{ports['coaps']}/echo",
            wait_s=REFUSED_WAIT_S,
        )  # fmt: skip
        assert served(out), explain(out)
    assert [s.psk_identity for s in seen] == [b"device-2"]


@pytest.mark.needs_dtls
@needs_c_client
def test_c_client_psk_single_key_for_any_identity(serve: Serve) -> None:
    seen: list[Seen] = []
    ports = serve(echo_setup(seen, [("coaps", coap.PSK(hint=HINT, key=b"one-key-for-all"))]))
    for identity in ("alpha", "beta"):
        out = coap_client_run(
            "-u", identity, "-k", "one-key-for-all", f"coaps://127.0.0.1:{ports['coaps']}/echo"
        )  # fmt: skip
        assert served(out), explain(out)
    assert [s.psk_identity for s in seen] == [b"alpha", b"beta"]


@pytest.mark.needs_dtls
@needs_c_client
def test_psk_callback_that_raises_refuses_and_logs(
    serve: Serve, caplog: pytest.LogCaptureFixture
) -> None:
    """A failing key lookup refuses that client and is logged; the server goes on."""
    caplog.set_level(logging.ERROR, logger="libcoap_py.server")

    def lookup(identity: bytes) -> bytes | None:
        if identity == b"device-1":
            raise RuntimeError("key store down on purpose")
        return b"secret-two" if identity == b"device-2" else None

    seen: list[Seen] = []
    ports, server = serve(
        echo_setup(seen, [("coaps", coap.PSK(hint=HINT, keys=lookup))]), handle=True
    )
    out = coap_client_run(
        "-u", "device-1", "-k", "secret-one", f"coaps://127.0.0.1:{ports['coaps']}/echo",
        wait_s=REFUSED_WAIT_S,
    )  # fmt: skip
    assert not served(out), explain(out)
    assert seen == []
    server.check()  # still serving, nothing raised
    assert any(
        "key store down on purpose" in str(r.exc_info[1])
        for r in caplog.records
        if r.name == "libcoap_py.server" and r.exc_info
    ), caplog.text
    out = coap_client_run(
        "-u", "device-2", "-k", "secret-two", f"coaps://127.0.0.1:{ports['coaps']}/echo"
    )  # fmt: skip
    assert served(out), explain(out)


# --------------------------------------------------------------------------
# coaps:// with certificates


def server_pki(certs: CertFiles, **kwargs: Any) -> coap.PKI:
    return coap.PKI(certs.server_cert, certs.server_key, certs.ca, **kwargs)


@pytest.mark.needs_dtls
@needs_c_client
def test_c_client_certificate_from_the_ca_is_accepted(serve: Serve, certs: CertFiles) -> None:
    seen: list[Seen] = []
    ports = serve(echo_setup(seen, [("coaps", server_pki(certs))]))
    out = coap_client_run(
        *cert_args(certs.cert, certs.key), "-C", str(certs.ca),
        "-m", "post", "-e", "from-device",
        f"coaps://127.0.0.1:{ports['coaps']}/echo",
    )  # fmt: skip
    assert served(out, b"from-device"), explain(out)
    (got,) = seen
    assert got.peer_cn == "device-1"
    assert got.psk_identity is None
    assert got.proto == coap.Proto.DTLS


@pytest.mark.needs_dtls
@needs_c_client
@pytest.mark.parametrize("who", ["other-ca", "no-cert"])
def test_c_client_certificate_refused(serve: Serve, certs: CertFiles, who: str) -> None:
    seen: list[Seen] = []
    ports = serve(echo_setup(seen, [("coaps", server_pki(certs))]))
    uri = f"coaps://127.0.0.1:{ports['coaps']}/echo"
    creds = [*cert_args(certs.other_cert, certs.other_key)] if who == "other-ca" else []
    out = coap_client_run(*creds, "-C", str(certs.ca), "-e", "x", uri, wait_s=REFUSED_WAIT_S)
    assert not served(out), explain(out)
    assert seen == [], "the handler ran for a refused client"
    ok = coap_client_run(*cert_args(certs.cert, certs.key), "-C", str(certs.ca), uri)
    assert served(ok), explain(ok)
    assert [s.peer_cn for s in seen] == ["device-1"]


@pytest.mark.needs_dtls
@needs_c_client
def test_c_client_without_certificate_when_not_required(serve: Serve, certs: CertFiles) -> None:
    seen: list[Seen] = []
    pki = server_pki(certs, verify_peer_cert=False, require_peer_cert=False)
    ports = serve(echo_setup(seen, [("coaps", pki)]))
    out = coap_client_run("-C", str(certs.ca), f"coaps://127.0.0.1:{ports['coaps']}/echo")
    assert served(out), explain(out)
    assert [s.peer_cn for s in seen] == [None]


@pytest.mark.needs_dtls
@needs_c_client
@pytest.mark.parametrize("accept", [True, False])
def test_validate_cn_callback(serve: Serve, certs: CertFiles, accept: bool) -> None:
    asked: list[tuple[str, int]] = []

    def validate_cn(cn: str, depth: int) -> bool:
        asked.append((cn, depth))
        return accept or cn != "device-1"

    seen: list[Seen] = []
    ports = serve(echo_setup(seen, [("coaps", server_pki(certs, validate_cn=validate_cn))]))
    out = coap_client_run(
        *cert_args(certs.cert, certs.key), "-C", str(certs.ca),
        f"coaps://127.0.0.1:{ports['coaps']}/echo",
        wait_s=REFUSED_WAIT_S,
    )  # fmt: skip
    assert ("device-1", 0) in asked
    if accept:
        assert served(out), explain(out)
        assert [s.peer_cn for s in seen] == ["device-1"]
    else:
        assert not served(out), explain(out)
        assert seen == []


@pytest.mark.needs_dtls
@needs_c_client
def test_validate_cn_that_raises_refuses_and_logs(
    serve: Serve, certs: CertFiles, caplog: pytest.LogCaptureFixture
) -> None:
    """A failing validate_cn refuses that client and is logged; the server goes on."""
    caplog.set_level(logging.ERROR, logger="libcoap_py.server")
    calls: list[str] = []

    def validate_cn(cn: str, depth: int) -> bool:
        calls.append(cn)
        if len(calls) == 1:
            raise RuntimeError("name registry down on purpose")
        return True

    seen: list[Seen] = []
    ports, server = serve(
        echo_setup(seen, [("coaps", server_pki(certs, validate_cn=validate_cn))]), handle=True
    )
    uri = f"coaps://127.0.0.1:{ports['coaps']}/echo"
    args = [*cert_args(certs.cert, certs.key), "-C", str(certs.ca)]
    out = coap_client_run(*args, uri, wait_s=REFUSED_WAIT_S)
    assert not served(out), explain(out)
    assert seen == []
    server.check()  # still serving, nothing raised
    assert any(
        "name registry down on purpose" in str(r.exc_info[1])
        for r in caplog.records
        if r.name == "libcoap_py.server" and r.exc_info
    ), caplog.text
    out = coap_client_run(*args, uri)
    assert served(out), explain(out)
    assert [s.peer_cn for s in seen] == ["device-1"]


@pytest.mark.needs_dtls
@needs_c_client
def test_c_client_pki_and_psk_endpoints_on_one_context(serve: Serve, certs: CertFiles) -> None:
    seen: list[Seen] = []

    def setup(ctx: coap.Context) -> dict[str, int]:
        ports = echo_setup(seen, [("coaps", server_pki(certs))])(ctx)
        psk_port = ctx.add_endpoint("coaps://127.0.0.1:0", dtls=coap.PSK(hint=HINT, keys=KEYS))
        return {"pki": ports["coaps"], "psk": psk_port.port}

    ports = serve(setup)
    pki = coap_client_run(
        *cert_args(certs.cert, certs.key), "-C", str(certs.ca),
        f"coaps://127.0.0.1:{ports['pki']}/echo",
    )  # fmt: skip
    assert served(pki), explain(pki)
    psk = coap_client_run(
        "-u", "device-2", "-k", "secret-two", f"coaps://127.0.0.1:{ports['psk']}/echo"
    )
    assert served(psk), explain(psk)
    assert [(s.peer_cn, s.psk_identity) for s in seen] == [("device-1", None), (None, b"device-2")]


@pytest.mark.needs_dtls
@needs_c_client
def test_c_client_pki_and_psk_on_one_endpoint(serve: Serve, certs: CertFiles) -> None:
    seen: list[Seen] = []
    both = [server_pki(certs), coap.PSK(hint=HINT, keys=KEYS)]
    ports = serve(echo_setup(seen, [("coaps", both)]))
    uri = f"coaps://127.0.0.1:{ports['coaps']}/echo"
    pki = coap_client_run(*cert_args(certs.cert, certs.key), "-C", str(certs.ca), uri)
    assert served(pki), explain(pki)
    psk = coap_client_run("-u", "device-1", "-k", "secret-one", uri)
    assert served(psk), explain(psk)
    # certificates are still verified, and unknown identities still refused
    intruder = coap_client_run(
        *cert_args(certs.other_cert, certs.other_key), "-C", str(certs.ca), uri,
        wait_s=REFUSED_WAIT_S,
    )  # fmt: skip
    assert not served(intruder), explain(intruder)
    stranger = coap_client_run("-u", "stranger", "-k", "x", uri, wait_s=REFUSED_WAIT_S)
    assert not served(stranger), explain(stranger)
    assert [(s.peer_cn, s.psk_identity) for s in seen] == [("device-1", None), (None, b"device-1")]


# --------------------------------------------------------------------------
# the binding's own client against the binding's server


@pytest.mark.needs_dtls
def test_own_client_same_context_plain_and_psk() -> None:
    """One Context, one thread: it serves and is the client; request() drives both."""
    seen: list[Seen] = []
    with coap.Context() as ctx:
        ports = echo_setup(seen, [("coap", None), ("coaps", coap.PSK(hint=HINT, keys=KEYS))])(ctx)
        plain = ctx.client_session(f"coap://127.0.0.1:{ports['coap']}")
        got = plain.request("POST", "echo", payload=b"\x00plain", timeout=10)
        assert got.code is coap.Code.CHANGED
        assert got.payload == MARK + b"\x00plain"
        assert got.option(coap.OptionNumber.CONTENT_FORMAT) in (b"\x2a", b"\x00\x2a")
        secure = ctx.client_session(
            f"coaps://127.0.0.1:{ports['coaps']}",
            dtls=coap.PSK(identity=b"device-2", key=b"secret-two"),
        )
        body = binary_payload(800)
        got = secure.request("PUT", "echo", payload=body, query="a=1&b", timeout=10)
        assert got.code is coap.Code.CHANGED
        assert got.payload == MARK + body
    assert [(s.proto, s.psk_identity) for s in seen] == [
        (coap.Proto.UDP, None),
        (coap.Proto.DTLS, b"device-2"),
    ]
    assert seen[1].query == ("a=1", "b")


@pytest.mark.needs_dtls
def test_own_client_same_context_pki(certs: CertFiles) -> None:
    """Serving with certificates and a certificate client session on one Context.

    libcoap 4.3.1 keeps one PKI setup per Context: the binding must either make
    this work or refuse the client session with NotSupportedError.
    """
    seen: list[Seen] = []
    with coap.Context() as ctx:
        ports = echo_setup(seen, [("coaps", server_pki(certs))])(ctx)
        try:
            session = ctx.client_session(
                f"coaps://127.0.0.1:{ports['coaps']}",
                dtls=coap.PKI(cert=certs.cert, key=certs.key, ca=certs.ca),
            )
        except coap.NotSupportedError:
            return
        got = session.request("POST", "echo", payload=b"pki", timeout=10)
        assert got.payload == MARK + b"pki"
    assert [s.peer_cn for s in seen] == ["device-1"]


@pytest.mark.needs_dtls
@needs_c_client
@pytest.mark.parametrize("order", ["server-first", "client-first"])
def test_server_certificate_survives_a_pki_client_session(
    serve: Serve, certs: CertFiles, order: str
) -> None:
    """A Context that serves with a certificate and opens a certificate client session
    (either order) must still present the server certificate, or refuse the second step
    with NotSupportedError (libcoap 4.3.1 keeps one certificate setup per Context)."""
    refused: list[str] = []

    def client_session(ctx: coap.Context) -> None:
        try:
            ctx.client_session(
                "coaps://127.0.0.1:9",  # nobody there; creating the session is enough
                dtls=coap.PKI(cert=certs.cert, key=certs.key, ca=certs.ca),
            )
        except coap.NotSupportedError as exc:
            refused.append(str(exc))

    def setup(ctx: coap.Context) -> int:
        if order == "client-first":
            client_session(ctx)
        try:
            port = echo_setup([], [("coaps", server_pki(certs))])(ctx)["coaps"]
        except coap.NotSupportedError as exc:
            refused.append(str(exc))
            return 0
        if order == "server-first":
            client_session(ctx)
        return port

    port = serve(setup)
    if refused:
        assert port == 0 or order == "server-first"
        return
    out = coap_client_run(
        *cert_args(certs.cert, certs.key), "-C", str(certs.ca),
        f"coaps://127.0.0.1:{port}/echo",
    )  # fmt: skip
    assert served(out), explain(out)


@pytest.mark.needs_dtls
def test_own_client_other_thread_pki_then_psk(serve: Serve, certs: CertFiles) -> None:
    """Server Context in its thread; client Context in the test thread (PKI first, then PSK)."""
    seen: list[Seen] = []

    def setup(ctx: coap.Context) -> dict[str, int]:
        ports = echo_setup(seen, [("coaps", server_pki(certs)), ("coap", None)])(ctx)
        ports["psk"] = ctx.add_endpoint(
            "coaps://127.0.0.1:0", dtls=coap.PSK(hint=HINT, keys=KEYS)
        ).port
        return ports

    ports = serve(setup)
    with coap.Context() as ctx, coap.Context() as psk_ctx:
        pki = ctx.client_session(
            f"coaps://127.0.0.1:{ports['coaps']}",
            dtls=coap.PKI(cert=certs.cert, key=certs.key, ca=certs.ca),
        )
        psk_uri, psk_credentials = (
            f"coaps://127.0.0.1:{ports['psk']}",
            coap.PSK(identity=b"device-1", key=b"secret-one"),
        )
        if TLS_NAME in PSK_PKI_MIXED:
            # libcoap's GnuTLS code would offer the certificate in the PSK handshake
            # (the server saw peer_cn='device-1' and no identity): refused, so PSK
            # gets a Context of its own.
            with pytest.raises(coap.NotSupportedError, match="separate Context"):
                ctx.client_session(psk_uri, dtls=psk_credentials)
            psk = psk_ctx.client_session(psk_uri, dtls=psk_credentials)
        else:
            psk = ctx.client_session(psk_uri, dtls=psk_credentials)
        plain = ctx.client_session(f"coap://127.0.0.1:{ports['coap']}")
        for i in range(5):
            for session in (pki, psk, plain):
                body = f"{session.proto.name}-{i}".encode()
                got = session.request("POST", "echo", payload=body, timeout=10)
                assert got.payload == MARK + body
    assert [(s.peer_cn, s.psk_identity) for s in seen[:3]] == [
        ("device-1", None),
        (None, b"device-1"),
        (None, None),
    ]
    assert len(seen) == 15


@pytest.mark.needs_dtls
def test_own_client_refused_certificate(serve: Serve, certs: CertFiles) -> None:
    seen: list[Seen] = []
    ports = serve(echo_setup(seen, [("coaps", server_pki(certs))]))
    with coap.Context() as ctx:
        session = ctx.client_session(
            f"coaps://127.0.0.1:{ports['coaps']}",
            dtls=coap.PKI(cert=certs.other_cert, key=certs.other_key, ca=certs.ca),
        )
        with pytest.raises(coap.NackError):
            session.request("POST", "echo", payload=b"intruder", timeout=5)
    assert seen == []


@pytest.mark.needs_dtls
def test_own_client_wrong_psk_is_dtls_error(serve: Serve) -> None:
    seen: list[Seen] = []
    ports = serve(echo_setup(seen, [("coaps", coap.PSK(hint=HINT, keys=KEYS))]))
    with coap.Context() as ctx:
        session = ctx.client_session(
            f"coaps://127.0.0.1:{ports['coaps']}",
            dtls=coap.PSK(identity=b"device-1", key=b"not-the-key"),
        )
        with pytest.raises(coap.DTLSError):
            session.request("GET", "echo", timeout=3)
    assert seen == []
