"""What differs between libcoap's TLS backends (OpenSSL, GnuTLS, none): each build does
the thing, or refuses it with NotSupportedError naming why; nothing is silently ignored.

Expectations follow the TLS library the build reports (``helpers.build.TLS_NAME``), not
the binding's own capability flags, so a wrong flag fails here.
"""

from __future__ import annotations

import subprocess
from typing import Any, Callable

import pytest
from helpers.build import DTLS, PSK_PKI_MIXED, TLS_NAME
from helpers.certs import CertFiles
from helpers.ctools import COAP_CLIENT, NO_CLIENT_REASON, CoapServer, cert_args, client_data
from helpers.waiting import run_until

import libcoap_py as coap

# -- a libcoap without DTLS ---------------------------------------------------------------


def test_coaps_refused_exactly_where_libcoap_has_no_dtls(certs: CertFiles) -> None:
    """libcoap-3-notls: every coaps:// use is refused up front, naming the build."""
    psk = coap.PSK(identity=b"device", key=b"secret")
    pki = coap.PKI(cert=certs.cert, key=certs.key, ca=certs.ca)
    server_psk = coap.PSK(hint=b"hint", keys={b"device": b"secret"})
    with coap.Context() as ctx:
        if DTLS:
            # (nobody listens on port 9: making the sessions is what is checked)
            assert ctx.client_session("coaps://127.0.0.1:9", dtls=psk).uri.secure
            assert ctx.add_endpoint("coaps://127.0.0.1:0", dtls=server_psk).port > 0
            return
        for dtls in (psk, pki):
            with pytest.raises(coap.NotSupportedError, match="no DTLS") as refused:
                ctx.client_session("coaps://127.0.0.1:9", dtls=dtls)
            assert coap.package_name() in str(refused.value)
        with pytest.raises(coap.NotSupportedError, match="no DTLS"):
            ctx.add_endpoint("coaps://127.0.0.1:0", dtls=server_psk)
        assert ctx.sessions == [] and ctx.endpoints == []
        # plain coap:// is unaffected
        assert ctx.add_endpoint("coap://127.0.0.1:0").port > 0


# -- DTLS_CONNECTED -----------------------------------------------------------------------


def _credentials(kind: str, server: CoapServer, certs: CertFiles) -> coap.PSK | coap.PKI:
    if kind == "psk":
        return coap.PSK(identity=server.psk_identity, key=server.psk_key)
    return coap.PKI(cert=certs.cert, key=certs.key, ca=certs.ca)


def _run_until(ctx: coap.Context, done: Callable[[], bool], seconds: float = 15.0) -> None:
    assert run_until(ctx, done, seconds), "condition not reached in time"


@pytest.mark.needs_dtls
@pytest.mark.parametrize("kind", ["psk", "pki"])
def test_dtls_connected_once_per_handshake_before_the_response(
    coap_server: CoapServer, certs: CertFiles, kind: str
) -> None:
    """Every client handshake ends with one DTLS_CONNECTED, before any response of that
    session reaches a handler, whether libcoap raised it (OpenSSL) or not (GnuTLS)."""
    log: list[tuple[str, Any, Any]] = []
    with coap.Context() as ctx:

        @ctx.register_event_handler
        def on_event(session: Any, event: Any) -> None:
            log.append(("event", session, event))

        @ctx.register_response_handler
        def on_response(session: Any, sent: Any, received: coap.PDU, mid: int) -> None:
            log.append(("response", session, received.code))

        # the C sample's loop: send(), then run_once() until the answer
        looped = ctx.client_session(
            coap_server.coaps_uri, dtls=_credentials(kind, coap_server, certs)
        )
        looped.send(looped.new_pdu(coap.MessageType.CON, coap.Code.GET))
        _run_until(ctx, lambda: any(what == "response" for what, _, _ in log))
        # request(): the event arrives before request() returns
        requested = ctx.client_session(
            coap_server.coaps_uri, dtls=_credentials(kind, coap_server, certs)
        )
        assert requested.request("GET", "", timeout=10).code is coap.Code.CONTENT
        assert ("event", requested, coap.Event.DTLS_CONNECTED) in log
        # more traffic over the same two handshakes: no more DTLS_CONNECTED
        for _ in range(3):
            assert requested.request("GET", "", timeout=10).code is coap.Code.CONTENT
        looped.send(looped.new_pdu(coap.MessageType.CON, coap.Code.GET))
        _run_until(ctx, lambda: sum(what == "response" for what, _, _ in log) >= 2)

    connected = [s for what, s, e in log if what == "event" and e is coap.Event.DTLS_CONNECTED]
    assert connected == [looped, requested], log
    first_response = next(i for i, (what, _, _) in enumerate(log) if what == "response")
    assert log.index(("event", looped, coap.Event.DTLS_CONNECTED)) < first_response, log
    assert [code for what, _, code in log if what == "response"] == [coap.Code.CONTENT] * 2


# -- PSK and certificates in one Context --------------------------------------------------

#: What libcoap 4.3.1 with OpenSSL cannot do in one Context (seen: the certificate
#: handshake, or every handshake of the PSK endpoint, fails).
OPENSSL_FAILS = {
    ("client PSK", "client PKI"),
    ("endpoint PSK", "client PKI"),
    ("client PKI", "endpoint PSK"),
}

MIXES = [
    ("client PKI", "client PSK"),
    ("client PSK", "client PKI"),
    ("endpoint PKI", "client PSK"),
    ("client PSK", "endpoint PKI"),
    ("endpoint PSK", "client PKI"),
    ("client PKI", "endpoint PSK"),
    ("endpoint PKI", "endpoint PSK"),
]


def _refused(first: str, second: str) -> bool:
    if first.startswith("endpoint") and second.startswith("endpoint"):
        return False  # a server offering both: its clients pick one
    if TLS_NAME in PSK_PKI_MIXED:
        return True
    return TLS_NAME == "OpenSSL" and (first, second) in OPENSSL_FAILS


class Mix:
    """One Context set up step by step, each step then used for real: client sessions
    against coap-server, endpoints by coap-client (both of the build's backend)."""

    def __init__(self, ctx: coap.Context, server: CoapServer, certs: CertFiles) -> None:
        self.ctx, self.server, self.certs = ctx, server, certs
        self.used: list[tuple[str, Any]] = []

        @ctx.resource("who", methods=("GET",))
        def who(request: Any, response: Any) -> None:
            response.payload = f"cn={request.peer_cn} id={request.psk_identity!r}".encode()

    def step(self, what: str) -> None:
        certs = self.certs
        if what == "client PSK":
            dtls: coap.PSK | coap.PKI = coap.PSK(self.server.psk_identity, self.server.psk_key)
        elif what == "client PKI":
            dtls = coap.PKI(cert=certs.cert, key=certs.key, ca=certs.ca)
        elif what == "endpoint PSK":
            dtls = coap.PSK(hint=b"hint", keys={b"device-1": b"secret-one"})
        else:
            dtls = coap.PKI(certs.server_cert, certs.server_key, certs.ca)
        if what.startswith("client"):
            self.used.append((what, self.ctx.client_session(self.server.coaps_uri, dtls=dtls)))
        else:
            self.used.append((what, self.ctx.add_endpoint("coaps://127.0.0.1:0", dtls=dtls)))

    def check(self) -> None:
        """Every step works, with the credentials it was made with."""
        for what, thing in self.used:
            if what.startswith("client"):
                assert thing.request("GET", "", timeout=10).code is coap.Code.CONTENT, what
                # a PSK session must not have authenticated with a certificate
                assert thing.peer_cn == (None if what == "client PSK" else "localhost"), what
                continue
            if what == "endpoint PSK":
                args, expected = ["-u", "device-1", "-k", "secret-one"], b"cn=None id=b'device-1'"
            else:
                args = [*cert_args(self.certs.cert, self.certs.key), "-C", str(self.certs.ca)]
                expected = b"cn=device-1 id=None"
            out = self._c_client(*args, f"coaps://127.0.0.1:{thing.port}/who")
            assert client_data(out).strip() == expected, (what, out)

    def _c_client(self, *args: str) -> bytes:
        if COAP_CLIENT is None:
            pytest.skip(NO_CLIENT_REASON)
        proc = subprocess.Popen(
            [COAP_CLIENT, "-B", "5", *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT
        )
        try:
            # Serve while libcoap's client talks to us.
            finished = run_until(self.ctx, lambda: proc.poll() is not None, 20)
            assert finished, "coap-client did not finish"
            assert proc.stdout is not None
            return proc.stdout.read()
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


@pytest.mark.needs_dtls
@pytest.mark.parametrize(("first", "second"), MIXES, ids=[f"{a}, then {b}" for a, b in MIXES])
def test_psk_and_pki_in_one_context(
    coap_server: CoapServer, certs: CertFiles, first: str, second: str
) -> None:
    """A mix of PSK and certificates in one Context works, each with its own credentials,
    or is refused up front naming why: with GnuTLS (which offers every setup of a
    Context in every client handshake) every mix with a client session, in either order;
    with OpenSSL the mixes whose handshakes fail."""
    with coap.Context() as ctx:
        mix = Mix(ctx, coap_server, certs)
        mix.step(first)
        if _refused(first, second):
            with pytest.raises(coap.NotSupportedError, match="separate Context") as refused:
                mix.step(second)
            assert TLS_NAME in str(refused.value)
        else:
            mix.step(second)
        mix.check()
