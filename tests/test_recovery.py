"""A Session outlives a failed handshake and a restarted peer.

Since libcoap 4.3.2 a client session that libcoap disconnects (a failed
handshake, a DTLS error) has closed its socket and can never send again. The
binding then puts a new C session, to the same peer with the same
credentials, behind the same Python ``Session``: on every generation, so the
behaviour does not depend on the libcoap release.
"""

from __future__ import annotations

import subprocess
import threading
from collections.abc import Iterator

import pytest
from helpers.certs import CertFiles
from helpers.ctools import COAP_SERVER, NO_SERVER_REASON, PSK_HINT, PSK_IDENTITY, PSK_KEY, WELCOME
from helpers.net import coap_ping, free_port_pair
from helpers.waiting import wait_until

import libcoap_py as coap

pytestmark = pytest.mark.needs_dtls

KEY = b"recovery-psk-key"
IDENTITY = b"device-r"


class Server:
    """Our own coaps:// server in a thread, on a given port: /hello answers its name."""

    def __init__(self, port: int, name: bytes, dtls: coap.PKI | coap.PSK) -> None:
        self.port = port
        self.name = name
        self.dtls = dtls
        self._stop = threading.Event()
        self._ready = threading.Event()
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        assert self._ready.wait(10), "the server thread did not start"
        if self.error is not None:
            raise self.error

    def _run(self) -> None:
        try:
            with coap.Context() as ctx:
                ctx.add_endpoint(f"coaps://127.0.0.1:{self.port}", dtls=self.dtls)

                @ctx.resource("hello", methods=("GET",))
                def hello(request: coap.Request, response: coap.ServerResponse) -> None:
                    response.payload = self.name

                self._ready.set()
                while not self._stop.is_set():
                    ctx.run_once(20)
        except BaseException as exc:  # reported by the test
            self.error = exc
            self._ready.set()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)
        assert not self._thread.is_alive()


def server_psk() -> coap.PSK:
    return coap.PSK(hint=b"recovery", keys={IDENTITY: KEY})


@pytest.fixture
def ctx() -> Iterator[coap.Context]:
    with coap.Context() as context:
        yield context


def test_a_request_after_a_failed_handshake_goes_over_a_new_session(ctx: coap.Context) -> None:
    port = free_port_pair()
    session = ctx.client_session(f"coaps://127.0.0.1:{port}", dtls=coap.PSK(IDENTITY, KEY))
    events: list[tuple[object, coap.Event | int]] = []
    ctx.register_event_handler(lambda s, e: events.append((s, e)))
    # Nothing listens yet: the handshake fails.
    with pytest.raises(coap.NackError):
        session.request("GET", "hello", timeout=1.0)
    server = Server(port, b"first", server_psk())
    try:
        response = session.request("GET", "hello", timeout=5.0)
        assert response.code == coap.Code.CONTENT
        assert response.payload == b"first"
        assert session.renewals >= 1
        # Handlers are told about the new C session with the same Session object.
        assert (session, coap.Event.DTLS_CONNECTED) in events
        assert all(s is session for s, _ in events)
        assert ctx.sessions == [session]
    finally:
        server.stop()


def test_two_failed_handshakes_then_success_on_one_session(ctx: coap.Context) -> None:
    """Each failure raises DTLSError again; none leaves the Session unusable."""
    port = free_port_pair()
    server = Server(port, b"server", server_psk())
    try:
        wrong = ctx.client_session(f"coaps://127.0.0.1:{port}", dtls=coap.PSK(IDENTITY, b"x"))
        for _ in range(2):
            with pytest.raises(coap.DTLSError):
                wrong.request("GET", "hello", timeout=1.0)
        right = ctx.client_session(f"coaps://127.0.0.1:{port}", dtls=coap.PSK(IDENTITY, KEY))
        assert right.request("GET", "hello", timeout=5.0).payload == b"server"
    finally:
        server.stop()


def _after_restart(session: coap.Session, path: str) -> coap.Response:
    """The first answer after the server restarted: at most one request may fail
    while the client notices (the new server is silent to the old association)."""
    failures: list[BaseException] = []
    for _ in range(2):
        try:
            return session.request("GET", path, timeout=3.0)
        except coap.NackError as exc:
            failures.append(exc)
    pytest.fail(f"no request got through after the restart: {failures!r}")


def _pki_pair(certs: CertFiles) -> tuple[coap.PKI, coap.PKI]:
    server = coap.PKI(certs.server_cert, certs.server_key, certs.ca)
    client = coap.PKI(cert=certs.cert, key=certs.key, ca=certs.ca)
    return server, client


@pytest.mark.parametrize("kind", ["psk", "pki"])
def test_requests_go_on_after_the_server_restarts(
    ctx: coap.Context, certs: CertFiles, kind: str
) -> None:
    """The restarted server knows no DTLS association: the Session handshakes anew.

    At most one request may fail while the client notices (the new server stays
    silent to records of an association it never made); the next one works.
    """
    port = free_port_pair()
    if kind == "psk":
        server_dtls: coap.PKI | coap.PSK = server_psk()
        client_dtls: coap.PKI | coap.PSK = coap.PSK(IDENTITY, KEY)
    else:
        server_dtls, client_dtls = _pki_pair(certs)
    server = Server(port, b"before", server_dtls)
    session = ctx.client_session(f"coaps://127.0.0.1:{port}", dtls=client_dtls)
    try:
        assert session.request("GET", "hello", timeout=5.0).payload == b"before"
    finally:
        server.stop()
    server = Server(port, b"after", server_dtls)
    try:
        assert _after_restart(session, "hello").payload == b"after"
    finally:
        server.stop()


def test_send_and_the_response_handler_after_a_renewal(ctx: coap.Context) -> None:
    """PDUs made with new_pdu() go over the new C session, and their responses reach
    the response handler with the same Session."""
    port = free_port_pair()
    session = ctx.client_session(f"coaps://127.0.0.1:{port}", dtls=coap.PSK(IDENTITY, KEY))
    with pytest.raises(coap.NackError):
        session.request("GET", "hello", timeout=1.0)
    server = Server(port, b"pdu", server_psk())
    got: list[tuple[object, bytes]] = []
    ctx.register_response_handler(lambda s, sent, received, mid: got.append((s, received.payload)))
    try:
        pdu = session.new_pdu(coap.MessageType.CON, coap.Code.GET)
        pdu.add_option(coap.OptionNumber.URI_PATH, b"hello")
        session.send(pdu)
        for _ in range(200):
            if got:
                break
            ctx.run_once(50)
        assert got == [(session, b"pdu")]
    finally:
        server.stop()


def _start_c_server(port: int) -> subprocess.Popen[bytes]:
    """libcoap's own server: coap on ``port``, coaps (PSK) on ``port + 1``."""
    assert COAP_SERVER is not None
    process = subprocess.Popen(
        [COAP_SERVER, "-A", "127.0.0.1", "-p", str(port), "-k", PSK_KEY.decode(),
         "-h", PSK_HINT.decode()],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    if not wait_until(lambda: coap_ping("127.0.0.1", port), 10):
        process.kill()
        process.wait()
        raise RuntimeError("the C server did not come up")
    return process


@pytest.mark.skipif(COAP_SERVER is None, reason=NO_SERVER_REASON)
def test_requests_go_on_after_the_c_server_is_killed_and_restarted(ctx: coap.Context) -> None:
    """A server killed with SIGKILL sends no close_notify: the client learns of the
    restart only from silence, and the next request handshakes anew."""
    port = free_port_pair()
    process = _start_c_server(port)
    session = ctx.client_session(
        f"coaps://127.0.0.1:{port + 1}", dtls=coap.PSK(PSK_IDENTITY, PSK_KEY)
    )
    try:
        assert WELCOME in session.request("GET", "", timeout=5.0).payload
        process.kill()
        process.wait()
        process = _start_c_server(port)
        assert WELCOME in _after_restart(session, "").payload
    finally:
        process.kill()
        process.wait()
