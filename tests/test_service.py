"""The data service (``libcoap-py serve``) against real clients.

Peers: libcoap's C client ``coap-client`` (certificates and PSK) and
the project's own client. The service runs as a child process on free
loopback ports, as users run it; the tests read its SQLite file directly.
"""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers.build import LIBCOAP_42, LIBCOAP_VERSION_INFO
from helpers.certs import CertFiles
from helpers.ctools import (
    CLIENT_CERT_REFUSED_LOG,
    COAP_CLIENT,
    NO_CLIENT_REASON,
    cert_args,
    client_data,
)
from helpers.service import (
    DEVICE,
    PSK_DEVICE,
    PSK_DEVICE_KEY,
    Service,
    coap_client,
    pki_args,
    start_service,
)
from helpers.waiting import wait_until

import libcoap_py as coap
from libcoap_py.service.store import Store

# The data service serves coaps:// (certificates and PSK).
pytestmark = pytest.mark.needs_dtls

needs_coap_client = pytest.mark.skipif(COAP_CLIENT is None, reason=NO_CLIENT_REASON)


def answer(out: subprocess.CompletedProcess[str]) -> str:
    """The payload coap-client printed (without the log lines before it)."""
    return client_data(out.stdout).rstrip("\n")


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "service.db"


@pytest.fixture
def service(db: Path, certs: CertFiles) -> Iterator[Service]:
    """The service with certificates and PSK on one coaps endpoint, plus plain coap."""
    svc = start_service(db, certs, psk=True, plain=True)
    try:
        yield svc
    finally:
        status = svc.stop()
        assert status == 0, svc.output()


def queue(db: Path, device: str, *messages: bytes) -> None:
    with Store(db) as store:
        for message in messages:
            store.add_outbox(device, message, "text")


def inbox(db: Path) -> list[tuple[str, str, bytes, int | None]]:
    with Store(db, create=False) as store:
        return [(m.device, m.path, m.payload, m.content_format) for m in store.list_inbox()]


def states(db: Path) -> list[str]:
    with Store(db, create=False) as store:
        return [m.state for m in store.list_outbox()]


def pki_client(certs: CertFiles, *, cert: Path | None = None, key: Path | None = None) -> coap.PKI:
    return coap.PKI(cert or certs.cert, key or certs.key, ca=certs.cert)


# -- libcoap's C client ---------------------------------------------------------------


@needs_coap_client
def test_c_client_with_certificate_gets_downstream_message_once(
    service: Service, db: Path, certs: CertFiles
) -> None:
    queue(db, DEVICE, b"first downstream", b"second downstream")
    uri = f"{service.uri()}/some/path"
    first = coap_client("-m", "post", "-e", "payload one", "-t", "50", *pki_args(certs), uri)
    assert answer(first) == "first downstream", first.stderr + service.output()
    second = coap_client("-m", "put", "-e", "payload two", *pki_args(certs), uri)
    assert answer(second) == "second downstream", second.stderr
    third = coap_client("-m", "post", "-e", "payload three", *pki_args(certs), uri)
    assert answer(third) == "" and third.stderr == "", "nothing left: 2.04 without payload"
    assert inbox(db) == [
        (DEVICE, "some/path", b"payload one", 50),
        (DEVICE, "some/path", b"payload two", None),
        (DEVICE, "some/path", b"payload three", None),
    ]
    # Piggybacked answers: each message is "sent" once handed to the socket (recorded
    # by the storage process just after).
    assert wait_until(lambda: states(db) == ["sent", "sent"], 10), states(db)


@needs_coap_client
def test_c_client_with_psk_files_under_its_identity(
    service: Service, db: Path, certs: CertFiles
) -> None:
    queue(db, PSK_DEVICE, b"for the psk device")
    queue(db, DEVICE, b"for the certificate device")
    psk = ["-u", PSK_DEVICE, "-k", PSK_DEVICE_KEY]
    uri = f"{service.uri()}/psk/data"
    first = coap_client("-m", "post", "-e", "over psk", *psk, uri)
    assert answer(first) == "for the psk device", first.stderr + service.output()
    again = coap_client("-m", "post", "-e", "over psk again", *psk, uri)
    assert answer(again) == ""
    assert inbox(db) == [
        (PSK_DEVICE, "psk/data", b"over psk", None),
        (PSK_DEVICE, "psk/data", b"over psk again", None),
    ]
    with Store(db, create=False) as store:
        pending = [m.device for m in store.list_outbox() if m.state == "pending"]
    assert pending == [DEVICE], "another device's message stays queued"


@needs_coap_client
def test_c_client_with_an_unknown_psk_identity_files_nothing(service: Service, db: Path) -> None:
    out = coap_client(
        "-m", "post", "-e", "intruder", "-u", "stranger", "-k", PSK_DEVICE_KEY,
        f"{service.uri()}/x", wait_s=2,
    )  # fmt: skip
    # libcoap's client logs to stdout; the handshake never completes
    # (4.2's client logs the handshake's failure; 4.3's, the request it could not send).
    failed = "DTLS: SSL_connect:error" if LIBCOAP_42 else "cannot send CoAP pdu"
    assert failed in out.stdout + out.stderr
    assert inbox(db) == []


@needs_coap_client
def test_c_client_with_the_samples_uri_host_and_port(
    service: Service, db: Path, certs: CertFiles
) -> None:
    queue(db, DEVICE, b"downstream")
    out = coap_client(
        "-m", "post", "-e", "this is the payload",
        "-O", "3,data.lab5e.com", "-O", "7,0x1634",  # Uri-Host, Uri-Port 5684 (a uint)
        *pki_args(certs), f"{service.uri()}/path-for-data",
    )  # fmt: skip
    assert answer(out) == "downstream", out.stderr + service.output()
    # coap-client 4.3.5 sends no Uri-Path at all once -O 3 (Uri-Host) is given (not
    # even one given with -O 11): the service files the message under the root path.
    path = "" if LIBCOAP_VERSION_INFO >= (4, 3, 5) else "path-for-data"
    assert inbox(db) == [(DEVICE, path, b"this is the payload", None)]


@needs_coap_client
def test_c_client_with_a_certificate_of_another_ca_is_refused(
    service: Service, db: Path, certs: CertFiles
) -> None:
    queue(db, DEVICE, b"not for intruders")
    out = coap_client(
        "-m", "post", "-e", "intruder",
        *cert_args(certs.other_cert, certs.other_key), "-C", certs.cert,
        f"{service.uri()}/x", wait_s=3,
    )  # fmt: skip
    # libcoap's client logs to stdout: the service's alert, and no payload.
    if CLIENT_CERT_REFUSED_LOG is not None:
        assert CLIENT_CERT_REFUSED_LOG in out.stdout.lower(), out.stdout
    assert "not for intruders" not in out.stdout
    assert inbox(db) == []
    with Store(db, create=False) as store:
        assert [m.state for m in store.list_outbox()] == ["pending"]


# -- the project's own client ----------------------------------------------------------


def test_own_client_posts_and_reads_downstream(
    service: Service, db: Path, certs: CertFiles
) -> None:
    queue(db, DEVICE, b"Hello this is a downstream message")
    with coap.Context() as ctx:
        session = ctx.client_session(service.uri(), dtls=pki_client(certs))
        r = session.request(
            "POST", "sensors/1", payload=b"\x00\x01binary", content_format=42, timeout=10
        )
        assert r.code == coap.Code.CHANGED
        assert r.payload == b"Hello this is a downstream message"
        assert r.option(coap.OptionNumber.CONTENT_FORMAT) == b""  # text/plain is 0
        r = session.request("PUT", "sensors/1", payload=b"again", timeout=10)
        assert (r.code, r.payload) == (coap.Code.CHANGED, b"")
        r = session.request("GET", "sensors/1", timeout=10)
        # Only POST and PUT are served; libcoap answers GET for an unknown path.
        assert r.code in (coap.Code.NOT_FOUND, coap.Code.METHOD_NOT_ALLOWED)
    assert inbox(db) == [
        (DEVICE, "sensors/1", b"\x00\x01binary", 42),
        (DEVICE, "sensors/1", b"again", None),
    ]


def test_own_client_sends_the_samples_options(service: Service, db: Path, certs: CertFiles) -> None:
    """The C sample's request: Uri-Host data.lab5e.com, Uri-Port 5684, Uri-Path."""
    queue(db, DEVICE, b"down")
    with coap.Context() as ctx:
        session = ctx.client_session(service.uri(), dtls=pki_client(certs))
        r = session.request(
            "POST",
            "path-for-data",
            payload=b"this is the payload",
            options=[
                (coap.OptionNumber.URI_HOST, "data.lab5e.com"),
                (coap.OptionNumber.URI_PORT, 5684),
            ],
            timeout=10,
        )
    assert (r.code, r.payload) == (coap.Code.CHANGED, b"down")
    assert inbox(db) == [(DEVICE, "path-for-data", b"this is the payload", None)]


def test_own_client_with_psk(service: Service, db: Path) -> None:
    with coap.Context() as ctx:
        session = ctx.client_session(
            service.uri(), dtls=coap.PSK(PSK_DEVICE.encode(), PSK_DEVICE_KEY.encode())
        )
        r = session.request("POST", "p", payload=b"psk data", timeout=10)
    assert r.code == coap.Code.CHANGED
    assert inbox(db) == [(PSK_DEVICE, "p", b"psk data", None)]


def test_own_client_with_a_certificate_of_another_ca_is_refused(
    service: Service, db: Path, certs: CertFiles
) -> None:
    queue(db, DEVICE, b"not for intruders")
    pki = pki_client(certs, cert=certs.other_cert, key=certs.other_key)
    with coap.Context() as ctx:
        session = ctx.client_session(service.uri(), dtls=pki)
        with pytest.raises(coap.NackError):
            session.request("POST", "x", payload=b"intruder", timeout=10)
    assert inbox(db) == []


def test_plain_coap_has_no_identity_and_gets_4_01(service: Service, db: Path) -> None:
    queue(db, DEVICE, b"stays queued")
    with coap.Context() as ctx:
        session = ctx.client_session(service.uri("coap"))
        r = session.request("POST", "x", payload=b"anonymous", timeout=10)
    assert r.code == coap.Code.UNAUTHORIZED
    assert inbox(db) == []
    with Store(db, create=False) as store:
        assert [m.state for m in store.list_outbox()] == ["pending"]


def test_message_queued_with_the_cli_while_serving(
    service: Service, db: Path, certs: CertFiles
) -> None:
    add = subprocess.run(
        [sys.executable, "-I", "-m", "libcoap_py.cli", "outbox", "add", "--db", str(db),
         "--device", DEVICE, "--format", "hex", "cafe", "f00d"],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert add.returncode == 0, add.stderr
    with coap.Context() as ctx:
        session = ctx.client_session(service.uri(), dtls=pki_client(certs))
        r = session.request("POST", "x", payload=b"hi", timeout=10)
    assert r.payload == bytes.fromhex("cafef00d")
    assert r.option(coap.OptionNumber.CONTENT_FORMAT) == bytes([42])  # octet-stream


# -- confirmed mode (serve --confirm-downstream) ---------------------------------------


def test_confirmed_mode_for_one_device(db: Path, certs: CertFiles) -> None:
    """--confirm-downstream device-1: device-1's answers come as separate CONs and its
    messages end "delivered"; a PSK device keeps piggybacked answers ("sent")."""
    queue(db, DEVICE, b"for the certificate device")
    queue(db, PSK_DEVICE, b"for the psk device")
    svc = start_service(db, certs, psk=True, extra=["--confirm-downstream", DEVICE])
    try:
        with coap.Context() as ctx:
            session = ctx.client_session(svc.uri(), dtls=pki_client(certs))
            confirmed = session.request("POST", "c", payload=b"1", timeout=10)
        with coap.Context() as ctx:
            session = ctx.client_session(
                svc.uri(), dtls=coap.PSK(PSK_DEVICE.encode(), PSK_DEVICE_KEY.encode())
            )
            piggybacked = session.request("POST", "p", payload=b"2", timeout=10)
        assert wait_until(lambda: states(db) == ["delivered", "sent"], 10), states(db)
    finally:
        assert svc.stop() == 0, svc.output()
    assert "confirmed downstream (separate CON responses) for device-1" in svc.output()
    assert (confirmed.payload, confirmed.type) == (
        b"for the certificate device",
        coap.MessageType.CON,
    )
    assert (piggybacked.payload, piggybacked.type) == (b"for the psk device", coap.MessageType.ACK)
    assert confirmed.etag == b"\x01" and piggybacked.etag == b"\x02"


@needs_coap_client
def test_confirmed_mode_with_coap_client(db: Path, certs: CertFiles) -> None:
    """coap-client waits for a separate response: it gets the message, and its ACK
    makes the message "delivered"."""
    queue(db, DEVICE, b"confirmed for coap-client")
    svc = start_service(db, certs, extra=["--confirm-downstream"])
    try:
        out = coap_client("-m", "post", "-e", "x", *pki_args(certs), f"{svc.uri()}/c")
        assert answer(out) == "confirmed for coap-client", out.stderr + svc.output()
        assert wait_until(lambda: states(db) == ["delivered"], 10), states(db)
    finally:
        assert svc.stop() == 0, svc.output()
    assert "confirmed downstream (separate CON responses) for every device" in svc.output()
    assert inbox(db) == [(DEVICE, "c", b"x", None)]


def test_confirm_downstream_refuses_an_empty_device_id(db: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-I", "-m", "libcoap_py.cli", "serve", "--db", str(db),
         "--listen", "coap://127.0.0.1:0", "--confirm-downstream", ""],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert out.returncode != 0
    assert "--confirm-downstream: an empty device id" in out.stderr
    assert "Traceback" not in out.stderr


# -- the process -------------------------------------------------------------------------


def test_restart_keeps_inbox_and_pending_outbox(db: Path, certs: CertFiles) -> None:
    queue(db, DEVICE, b"one", b"two")
    first = start_service(db, certs)
    try:
        with coap.Context() as ctx:
            session = ctx.client_session(first.uri(), dtls=pki_client(certs))
            r = session.request("POST", "before", payload=b"before restart", timeout=10)
        assert r.payload == b"one"
    finally:
        assert first.stop() == 0, first.output()
    assert "stopped" in first.output()

    second = start_service(db, certs)
    try:
        with coap.Context() as ctx:
            session = ctx.client_session(second.uri(), dtls=pki_client(certs))
            r1 = session.request("POST", "after", payload=b"after restart", timeout=10)
            r2 = session.request("POST", "after", payload=b"once more", timeout=10)
    finally:
        assert second.stop() == 0, second.output()
    assert (r1.payload, r2.payload) == (b"two", b"")
    assert [row[1:3] for row in inbox(db)] == [
        ("before", b"before restart"),
        ("after", b"after restart"),
        ("after", b"once more"),
    ]


def test_ctrl_c_stops_the_service_cleanly(db: Path, certs: CertFiles) -> None:
    svc = start_service(db, certs)
    status = svc.stop(sig=signal.SIGINT)
    assert status == 0, svc.output()
    assert "stopped" in svc.output()
    assert "Traceback" not in svc.output()


def test_address_in_use_is_a_clear_error(db: Path, certs: CertFiles) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as holder:
        holder.bind(("127.0.0.1", 0))
        port = holder.getsockname()[1]
        out = subprocess.run(
            [sys.executable, "-I", "-m", "libcoap_py.cli", "serve", "--db", str(db),
             "--cert", str(certs.server_cert), "--key", str(certs.server_key),
             "--ca", str(certs.ca), "--listen", f"coaps://127.0.0.1:{port}"],
            capture_output=True, text=True, timeout=30,
        )  # fmt: skip
    assert out.returncode != 0
    assert "libcoap-py: error: cannot listen" in out.stderr
    assert "Traceback" not in out.stderr


def test_a_psk_only_service(db: Path) -> None:
    svc = start_service(db, None, psk=True)
    try:
        with coap.Context() as ctx:
            session = ctx.client_session(
                svc.uri(), dtls=coap.PSK(PSK_DEVICE.encode(), PSK_DEVICE_KEY.encode())
            )
            r = session.request("POST", "p", payload=b"x", timeout=10)
        assert r.code == coap.Code.CHANGED
    finally:
        assert svc.stop() == 0, svc.output()
    assert inbox(db) == [(PSK_DEVICE, "p", b"x", None)]


def test_psk_keys_file(db: Path, certs: CertFiles, tmp_path: Path) -> None:
    keys = tmp_path / "psk-keys"
    keys.write_text("# identity key\nalpha alpha-key\nbeta  beta key with spaces\n")
    svc = start_service(db, certs, extra=["--psk-keys", str(keys)])
    try:
        for identity, key in (("alpha", "alpha-key"), ("beta", "beta key with spaces")):
            with coap.Context() as ctx:
                session = ctx.client_session(svc.uri(), dtls=coap.PSK(identity, key))
                r = session.request("POST", identity, payload=identity.encode(), timeout=10)
                assert r.code == coap.Code.CHANGED
    finally:
        assert svc.stop() == 0, svc.output()
    assert [row[:2] for row in inbox(db)] == [("alpha", "alpha"), ("beta", "beta")]
