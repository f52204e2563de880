"""DataService's request handling, served for real: identities, filing after the commit,
downstream messages with their ETag, retransmissions (also across a restart), the
two answer modes, a locked database.

The service runs in a thread of the test process (its Context, Store and storage
process belong to it), on a PSK ``coaps://`` endpoint and a plain ``coap://`` one;
devices are the binding's own client (``request()``, or ``new_pdu()``/``send()``
where a message ID and token must repeat) and libcoap's ``coap-client``. The
tests read the SQLite file with connections of their own.
"""

from __future__ import annotations

import logging
import os
import signal
import sqlite3
import subprocess
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from helpers.build import LIBCOAP_42
from helpers.ctools import COAP_CLIENT, NO_CLIENT_REASON, client_data
from helpers.waiting import run_until, wait_until

import libcoap_py as coap
from libcoap_py.service import DataService, Store, device_of, etag_of
from libcoap_py.service.server import BUSY_MAX_AGE_S, EXCHANGE_LIFETIME_S
from libcoap_py.service.store import Exchange, OutboxMessage

pytestmark = pytest.mark.needs_dtls

DEVICE_1 = "device-1"
DEVICE_2 = "device-2"
KEYS = {DEVICE_1: b"device-1-secret", DEVICE_2: b"device-2-secret"}
#: Bound on every wait for the service or a client.
TIMEOUT = 10.0
TEXT_PLAIN = int(coap.ContentFormat.TEXT_PLAIN)
OCTET_STREAM = int(coap.ContentFormat.OCTET_STREAM)


class Clock:
    """The service's clock (``DataService(clock=...)``), moved by the test."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class ServiceThread:
    """A DataService opened, served and closed in a thread of its own, on a Store it
    opens there (a Context and a Store belong to the thread that made them)."""

    def __init__(self, db: Path, **options: Any) -> None:
        self.db = db
        self.options = {
            "psk_keys": {k.encode(): v for k, v in KEYS.items()},
            "listen": ["coaps://127.0.0.1:0", "coap://127.0.0.1:0"],
            **options,
        }
        self.service: DataService | None = None
        self.uris: list[str] = []
        self.error: BaseException | None = None
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._main, name="data-service", daemon=True)

    def start(self) -> ServiceThread:
        self._thread.start()
        if not self._ready.wait(TIMEOUT):
            raise RuntimeError("the service did not open in time")
        if self.error is not None:
            raise self.error
        return self

    def _main(self) -> None:
        try:
            with Store(self.db) as store:
                service = DataService(store, **self.options)
                try:
                    self.uris = service.open()
                    self.service = service
                    self._ready.set()
                    service.run()
                finally:
                    service.close()
        except BaseException as error:
            self.error = error
        finally:
            self._ready.set()

    def uri(self, scheme: str = "coaps") -> str:
        return next(u for u in self.uris if u.startswith(f"{scheme}://"))

    @property
    def backlog(self) -> int:
        """Writes the storage process has not answered yet."""
        writer = self.service.writer if self.service is not None else None
        return writer.backlog if writer is not None else 0

    def stop(self) -> None:
        service = self.service
        if service is not None and service.context is not None and self._thread.is_alive():
            try:
                service.context.call_soon_threadsafe(service.stop)  # wakes the loop
            except coap.CoapError:
                pass  # closed meanwhile: its thread is ending
        self._thread.join(TIMEOUT)
        if self._thread.is_alive():
            raise RuntimeError("the service did not stop in time")
        if self.error is not None:
            raise self.error


Start = Callable[..., ServiceThread]


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "service.db"


@pytest.fixture
def start(db: Path) -> Iterator[Start]:
    """``start(**DataService options)``: a running service on ``db``; stopped at teardown."""
    started: list[ServiceThread] = []

    def run(**options: Any) -> ServiceThread:
        service = ServiceThread(db, **options)
        started.append(service)
        return service.start()

    yield run
    for service in started:
        service.stop()


@dataclass(frozen=True)
class Answer:
    """What a device got: a copy of the response (the PDU dies with the handler)."""

    code: int
    payload: bytes
    etag: bytes | None
    content_format: int | None
    max_age: int | None
    type: int
    token: bytes

    @classmethod
    def of(cls, message: Any) -> Answer:
        return cls(
            int(message.code),
            bytes(message.payload),
            message.etag,
            message.content_format,
            message.max_age,
            int(message.type),
            bytes(message.token),
        )


class Device:
    """A device with a PSK session to the service, in the thread that makes it."""

    def __init__(self, uri: str, identity: str = DEVICE_1, *, reset_separate: bool = False) -> None:
        self.ctx = coap.Context()
        self.session = self.ctx.client_session(
            uri, dtls=coap.PSK(identity.encode(), KEYS[identity])
        )
        #: Answers to what ``send()`` sent (``request()`` takes its own).
        self.answers: list[Answer] = []
        self.reset_separate = reset_separate
        self.ctx.register_response_handler(self._on_response)

    def _on_response(self, session: Any, sent: Any, received: coap.PDU, mid: int) -> bool:
        self.answers.append(Answer.of(received))
        # False: libcoap answers a separate (CON) response with RST.
        return not (self.reset_separate and received.type == coap.MessageType.CON)

    def post(self, payload: bytes, path: str = "data", content_format: int | None = None) -> Answer:
        response = self.session.request(
            "POST", path, payload, content_format=content_format, timeout=TIMEOUT
        )
        return Answer.of(response)

    def send(self, payload: bytes, *, mid: int, token: bytes, path: str = "data") -> None:
        """A POST with this message ID and token (as a retransmission has them)."""
        pdu = self.session.new_pdu(coap.MessageType.CON, coap.Code.POST, mid=mid, token=token)
        pdu.add_option(coap.OptionNumber.URI_PATH, path)
        pdu.payload = payload
        self.session.send(pdu)

    def answer_to(self, token: bytes, after: int = 0) -> Answer:
        """Drive the loop until an answer with ``token`` came (beyond the first ``after``)."""

        def mine() -> list[Answer]:
            return [a for a in self.answers[after:] if a.token == token]

        assert run_until(self.ctx, lambda: bool(mine()), TIMEOUT), f"no answer to {token!r}"
        return mine()[0]

    def exchange(self, payload: bytes, *, mid: int, token: bytes, path: str = "data") -> Answer:
        after = len(self.answers)
        self.send(payload, mid=mid, token=token, path=path)
        return self.answer_to(token, after)

    def close(self) -> None:
        self.ctx.close()


@pytest.fixture
def devices() -> Iterator[Callable[..., Device]]:
    """``devices(uri, identity)``: Devices in the test thread, closed at teardown."""
    made: list[Device] = []

    def make(uri: str, identity: str = DEVICE_1, **kwargs: Any) -> Device:
        device = Device(uri, identity, **kwargs)
        made.append(device)
        return device

    yield make
    for device in made:
        device.close()


def queue_messages(db: Path, device: str, *messages: tuple[bytes, str]) -> list[int]:
    with Store(db) as store:
        return [store.add_outbox(device, payload, fmt) for payload, fmt in messages]


def outbox(db: Path) -> list[OutboxMessage]:
    with Store(db, create=False) as store:
        return store.list_outbox()


def inbox(db: Path) -> list[tuple[str, str, bytes, int | None]]:
    with Store(db, create=False) as store:
        return [(m.device, m.path, m.payload, m.content_format) for m in store.list_inbox()]


def states(db: Path) -> list[str]:
    return [m.state for m in outbox(db)]


def post_in_thread(pool: ThreadPoolExecutor, uri: str, identity: str) -> Future[Answer]:
    """A device's POST from a worker thread (its own Context there)."""

    def run() -> Answer:
        device = Device(uri, identity)
        try:
            return device.post(identity.encode())
        finally:
            device.close()

    return pool.submit(run)


def resend(uri: str, payload: bytes, *, mid: int, token: bytes, identity: str = DEVICE_1) -> Answer:
    """A POST with this message ID and token over a new DTLS session, as a device sends
    a message again after a new handshake (libcoap 4.3's client drops the answer to a
    token reused within one session: "Token reused")."""
    device = Device(uri, identity)
    try:
        return device.exchange(payload, mid=mid, token=token)
    finally:
        device.close()


# --------------------------------------------------------------------------
# identities, construction


def test_device_of_prefers_the_certificate_name() -> None:
    def request(cn: str | None, identity: bytes | None) -> Any:
        return SimpleNamespace(peer_cn=cn, psk_identity=identity)

    assert device_of(request("cn-1", b"id")) == "cn-1"
    assert device_of(request(None, b"id-2")) == "id-2"
    assert device_of(request(None, None)) is None


def test_constructor_errors(db: Path) -> None:
    with Store(db) as store:
        with pytest.raises(ValueError, match="needs a server certificate or PSK"):
            DataService(store, listen=["coaps://127.0.0.1:0"])
        with pytest.raises(ValueError, match="at least one endpoint"):
            DataService(store, listen=[])
        with pytest.raises(TypeError, match="collection of device ids"):
            DataService(store, listen=["coap://127.0.0.1:0"], confirm_downstream=DEVICE_1)
        service = DataService(store, listen=["coap://127.0.0.1:0"], confirm_downstream=[DEVICE_2])
        assert (service.confirms(DEVICE_1), service.confirms(DEVICE_2)) == (False, True)
        assert DataService(store, listen=["coap://127.0.0.1:0"], confirm_downstream=True).confirms(
            "anyone"
        )


def test_no_identity_is_unauthorized_and_files_nothing(start: Start, db: Path) -> None:
    queue_messages(db, DEVICE_1, (b"kept", "text"))
    service = start()
    with coap.Context() as ctx:
        session = ctx.client_session(service.uri("coap"))
        response = session.request("POST", "data", b"anonymous", timeout=TIMEOUT)
    assert response.code == coap.Code.UNAUTHORIZED
    assert b"identity" in response.payload
    assert inbox(db) == []
    assert states(db) == ["pending"]


# --------------------------------------------------------------------------
# filing and downstream messages


def test_files_and_answers_oldest_first_with_format_and_etag(
    start: Start, db: Path, devices: Callable[..., Device]
) -> None:
    ids = queue_messages(
        db, DEVICE_1, (b"text one", "text"), (b"\x00\x01", "hex"), (b"\xfe\xff", "base64")
    )
    [other] = queue_messages(db, DEVICE_2, (b"not for device-1", "text"))
    service = start()
    device = devices(service.uri())
    answers = [
        device.post(b"first", "sensors/1", content_format=50),
        device.post(b"second", "sensors/1"),
        device.post(b"third", "sensors/2", content_format=OCTET_STREAM),
        device.post(b"fourth", "sensors/2"),
    ]
    assert [(a.code, a.payload, a.content_format, a.etag) for a in answers] == [
        (coap.Code.CHANGED, b"text one", TEXT_PLAIN, etag_of(ids[0])),
        (coap.Code.CHANGED, b"\x00\x01", OCTET_STREAM, etag_of(ids[1])),
        (coap.Code.CHANGED, b"\xfe\xff", OCTET_STREAM, etag_of(ids[2])),
        (coap.Code.CHANGED, b"", None, None),  # nothing left
    ]
    assert inbox(db) == [
        (DEVICE_1, "sensors/1", b"first", 50),
        (DEVICE_1, "sensors/1", b"second", None),
        (DEVICE_1, "sensors/2", b"third", OCTET_STREAM),
        (DEVICE_1, "sensors/2", b"fourth", None),
    ]
    # Default mode: piggybacked answers, each message "sent" once handed to the socket.
    assert all(a.type == coap.MessageType.ACK for a in answers)
    assert wait_until(lambda: states(db) == ["sent", "sent", "sent", "pending"], TIMEOUT), outbox(
        db
    )
    for message in outbox(db)[:3]:
        assert message.attempts == 1 and message.sent_at is not None
        assert message.delivered_at is None
    assert outbox(db)[3].id == other and outbox(db)[3].attempts == 0


def test_etag_is_the_outbox_id_as_a_uint(start: Start, db: Path) -> None:
    assert etag_of(1) == b"\x01"
    assert etag_of(255) == b"\xff"
    assert etag_of(256) == b"\x01\x00"
    assert etag_of(0) == b"\x00"
    with Store(db) as store:  # ids beyond one byte
        store.add_outbox("filler", b"", "text")
        with store.transaction() as raw:
            raw.execute("UPDATE sqlite_sequence SET seq = 65535 WHERE name = 'outbox'")
    [big] = queue_messages(db, DEVICE_1, (b"id above 65535", "text"))
    assert big == 65536
    service = start()
    with coap.Context() as ctx:
        session = ctx.client_session(
            service.uri(), dtls=coap.PSK(DEVICE_1.encode(), KEYS[DEVICE_1])
        )
        response = session.request("POST", "x", b"y", timeout=TIMEOUT)
    assert (response.payload, response.etag) == (b"id above 65535", b"\x01\x00\x00")


@pytest.mark.skipif(COAP_CLIENT is None, reason=NO_CLIENT_REASON)
def test_coap_client_files_and_gets_its_downstream_message(start: Start, db: Path) -> None:
    queue_messages(db, DEVICE_2, (b"hello coap-client", "text"))
    service = start()
    psk = ["-u", DEVICE_2, "-k", KEYS[DEVICE_2].decode()]
    out = subprocess.run(
        [COAP_CLIENT, "-B", "5", "-m", "post", "-e", "from C", "-t", "0", *psk,
         f"{service.uri()}/c/path"],
        capture_output=True, timeout=TIMEOUT + 10, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert client_data(out.stdout).rstrip(b"\n") == b"hello coap-client", out
    assert inbox(db) == [(DEVICE_2, "c/path", b"from C", TEXT_PLAIN)]
    assert wait_until(lambda: states(db) == ["sent"], TIMEOUT), outbox(db)


# --------------------------------------------------------------------------
# the two answer modes


def test_confirmed_mode_marks_delivered_default_mode_sent(
    start: Start, db: Path, devices: Callable[..., Device]
) -> None:
    [for_1] = queue_messages(db, DEVICE_1, (b"piggybacked", "text"))
    [for_2] = queue_messages(db, DEVICE_2, (b"confirmed", "text"))
    service = start(confirm_downstream={DEVICE_2})
    one = devices(service.uri(), DEVICE_1).post(b"1")
    two = devices(service.uri(), DEVICE_2).post(b"2")
    assert (one.payload, one.etag, one.type) == (
        b"piggybacked",
        etag_of(for_1),
        coap.MessageType.ACK,
    )
    # Confirmed: an empty ACK first, then the answer as a separate CON.
    assert (two.payload, two.etag, two.type) == (b"confirmed", etag_of(for_2), coap.MessageType.CON)
    assert wait_until(lambda: states(db) == ["sent", "delivered"], TIMEOUT), outbox(db)
    sent, delivered = outbox(db)
    assert sent.delivered_at is None and sent.sent_at is not None
    assert delivered.delivered_at is not None and delivered.sent_at is not None
    assert (sent.attempts, delivered.attempts) == (1, 1)


def test_confirmed_mode_requeues_a_message_the_device_resets(
    start: Start, db: Path, devices: Callable[..., Device]
) -> None:
    if LIBCOAP_42:
        pytest.skip(
            "libcoap 4.2's client acknowledges a CON response before the application sees "
            "it (the binding's RST comes after that ACK): a 4.2 device cannot refuse one"
        )
    [message] = queue_messages(db, DEVICE_1, (b"refused once", "text"))
    service = start(confirm_downstream=True)
    device = devices(service.uri(), reset_separate=True)
    refused = device.exchange(b"a", mid=100, token=b"t-1")
    assert (refused.payload, refused.type) == (b"refused once", coap.MessageType.CON)
    assert wait_until(lambda: states(db) == ["pending"], TIMEOUT), outbox(db)
    device.reset_separate = False
    again = device.exchange(b"b", mid=101, token=b"t-2")
    assert (again.payload, again.etag) == (b"refused once", etag_of(message))
    assert wait_until(lambda: states(db) == ["delivered"], TIMEOUT), outbox(db)
    assert outbox(db)[0].attempts == 2
    assert [row[2] for row in inbox(db)] == [b"a", b"b"]


# --------------------------------------------------------------------------
# retransmissions


def test_a_retransmission_is_answered_alike_and_filed_once(start: Start, db: Path) -> None:
    ids = queue_messages(db, DEVICE_1, (b"only once", "text"), (b"next", "text"))
    [for_2] = queue_messages(db, DEVICE_2, (b"device-2's", "text"))
    uri = start().uri()
    first = resend(uri, b"data", mid=7, token=b"tok-7")
    again = resend(uri, b"data", mid=7, token=b"tok-7")
    assert first == again
    assert (first.payload, first.etag) == (b"only once", etag_of(ids[0]))
    assert len(inbox(db)) == 1
    # The same message ID with another token, or another payload: a new request.
    other_token = resend(uri, b"data", mid=7, token=b"tok-8")
    assert (other_token.payload, other_token.etag) == (b"next", etag_of(ids[1]))
    other_payload = resend(uri, b"other data", mid=7, token=b"tok-8")
    assert (other_payload.payload, other_payload.etag) == (b"", None)
    assert len(inbox(db)) == 3
    # The same message ID and token from another device: that device's exchange.
    other_device = resend(uri, b"data", mid=7, token=b"tok-7", identity=DEVICE_2)
    assert (other_device.payload, other_device.etag) == (b"device-2's", etag_of(for_2))
    assert [row[0] for row in inbox(db)] == [DEVICE_1] * 3 + [DEVICE_2]
    assert wait_until(lambda: states(db) == ["sent", "sent", "sent"], TIMEOUT), outbox(db)
    assert outbox(db)[0].attempts == 1, "answered again from memory: no new attempt"


def test_a_retransmission_after_a_restart_is_answered_alike(
    start: Start, db: Path, devices: Callable[..., Device]
) -> None:
    """The device resends a message (same ID, token, content) over a new DTLS session to
    the restarted service: filed once, answered with the same downstream message."""
    ids = queue_messages(db, DEVICE_1, (b"before the restart", "text"), (b"later", "text"))
    first_service = start()
    device = devices(first_service.uri())
    first = device.exchange(b"reading 1", mid=0xBEEF, token=b"\x01\x02\x03\x04")
    assert (first.payload, first.etag) == (b"before the restart", etag_of(ids[0]))
    device.close()
    first_service.stop()

    second_service = start()
    device = devices(second_service.uri())
    again = device.exchange(b"reading 1", mid=0xBEEF, token=b"\x01\x02\x03\x04")
    assert again == first
    assert inbox(db) == [(DEVICE_1, "data", b"reading 1", None)]
    assert wait_until(lambda: states(db) == ["sent", "pending"], TIMEOUT), outbox(db)
    assert outbox(db)[0].attempts == 2
    new = device.exchange(b"reading 2", mid=0xBEF0, token=b"\x05")
    assert (new.payload, new.etag) == (b"later", etag_of(ids[1]))
    assert len(inbox(db)) == 2


def test_exchanges_are_forgotten_after_exchange_lifetime(start: Start, db: Path) -> None:
    ids = queue_messages(db, DEVICE_1, (b"first answer", "text"), (b"second answer", "text"))
    clock = Clock()
    uri = start(clock=clock).uri()
    first = resend(uri, b"same", mid=42, token=b"t")
    assert first.etag == etag_of(ids[0])
    # Past the lifetime by the service's clock: forgotten in memory, still in SQLite
    # (answered moments ago by the wall clock): answered alike, not filed again.
    clock.now += EXCHANGE_LIFETIME_S + 1
    assert resend(uri, b"same", mid=42, token=b"t") == first
    assert len(inbox(db)) == 1
    assert wait_until(lambda: outbox(db)[0].attempts == 2, TIMEOUT), outbox(db)
    # Past it in SQLite too: the message ID may be used for a new request.
    raw = sqlite3.connect(db)
    with raw:
        raw.execute("UPDATE inbox SET answered_at = answered_at - ?", (EXCHANGE_LIFETIME_S + 1,))
    raw.close()
    clock.now += EXCHANGE_LIFETIME_S + 1
    reused = resend(uri, b"same", mid=42, token=b"t")
    assert (reused.payload, reused.etag) == (b"second answer", etag_of(ids[1]))
    assert len(inbox(db)) == 2


def test_a_copy_while_the_first_is_being_filed_is_not_answered_on_its_own(
    start: Start,
    db: Path,
    devices: Callable[..., Device],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Storage is stuck behind another process's lock: the loop goes on answering (a
    plain request gets its 4.01); a copy of the waiting request (over a new session)
    gets no answer of its own; once the lock goes the first copy is answered, and the
    request is filed once."""
    caplog.set_level(logging.INFO, logger="libcoap_py.service")
    service = start(busy_timeout=30.0)
    device = devices(service.uri())
    device.exchange(b"warm-up", mid=1, token=b"w")  # the DTLS handshake, before the lock
    [message] = queue_messages(db, DEVICE_1, (b"after the lock", "text"))
    copy = devices(service.uri())
    locker = sqlite3.connect(db, isolation_level=None)
    try:
        locker.execute("BEGIN EXCLUSIVE")
        device.send(b"held", mid=2, token=b"held")
        assert run_until(device.ctx, lambda: service.backlog >= 1, TIMEOUT)
        copy.send(b"held", mid=2, token=b"held")
        assert run_until(copy.ctx, lambda: "retransmission of message 2" in caplog.text, TIMEOUT), (
            caplog.text
        )
        with coap.Context() as ctx:
            anonymous = ctx.client_session(service.uri("coap"))
            assert anonymous.request("POST", "x", timeout=TIMEOUT).code == coap.Code.UNAUTHORIZED
        assert device.answers[1:] == [] and copy.answers == []
        assert service.backlog >= 1, "the write still waits for the lock"
    finally:
        locker.execute("ROLLBACK")
        locker.close()
    answer = device.answer_to(b"held")
    assert (answer.code, answer.payload, answer.etag) == (
        coap.Code.CHANGED,
        b"after the lock",
        etag_of(message),
    )
    assert [row[2] for row in inbox(db)] == [b"warm-up", b"held"]


# --------------------------------------------------------------------------
# a locked database, in-flight messages at start


def test_a_locked_database_gives_5_03_with_max_age_then_recovers(start: Start, db: Path) -> None:
    queue_messages(db, DEVICE_1, (b"for one", "text"))
    queue_messages(db, DEVICE_2, (b"for two", "text"))
    service = start(busy_timeout=0.2)
    locker = sqlite3.connect(db, isolation_level=None)
    with ThreadPoolExecutor(max_workers=2) as pool:
        try:
            locker.execute("BEGIN EXCLUSIVE")
            busy = [post_in_thread(pool, service.uri(), d) for d in (DEVICE_1, DEVICE_2)]
            answers = [future.result(TIMEOUT + 5) for future in busy]
        finally:
            locker.execute("ROLLBACK")
            locker.close()
        for answer in answers:
            assert (answer.code, answer.max_age) == (coap.Code.SERVICE_UNAVAILABLE, BUSY_MAX_AGE_S)
            assert answer.etag is None and b"try again" in answer.payload
        assert inbox(db) == [] and states(db) == ["pending", "pending"]
        # The lock is gone: the same devices get through.
        again = [post_in_thread(pool, service.uri(), d) for d in (DEVICE_1, DEVICE_2)]
        done = [future.result(TIMEOUT + 5) for future in again]
    assert [(a.code, a.payload) for a in done] == [
        (coap.Code.CHANGED, b"for one"),
        (coap.Code.CHANGED, b"for two"),
    ]
    assert sorted(row[0] for row in inbox(db)) == [DEVICE_1, DEVICE_2]


def test_a_storage_process_that_dies_is_replaced_and_nothing_is_lost(
    start: Start, db: Path, devices: Callable[..., Device]
) -> None:
    ids = queue_messages(db, DEVICE_1, (b"first", "text"), (b"second", "text"))
    service = start()
    assert service.service is not None and service.service.writer is not None
    writer = service.service.writer
    device = devices(service.uri())
    before = device.post(b"before")
    assert (before.code, before.etag) == (coap.Code.CHANGED, etag_of(ids[0]))
    first = writer.pid
    assert first is not None
    os.kill(first, signal.SIGKILL)
    # A write the dead process took is answered 5.03 (the device sends again); then a
    # new storage process files.
    codes = []
    for _ in range(20):
        answer = device.post(b"after")
        codes.append(answer.code)
        if answer.code != coap.Code.SERVICE_UNAVAILABLE:
            break
    assert codes[-1] == coap.Code.CHANGED, codes
    assert answer.etag == etag_of(ids[1])
    assert writer.pid not in (None, first)
    assert [row[2] for row in inbox(db)] == [b"before", b"after"]
    assert wait_until(lambda: states(db) == ["sent", "sent"], TIMEOUT), states(db)


def test_in_flight_messages_are_queued_again_at_open(
    start: Start, db: Path, devices: Callable[..., Device]
) -> None:
    ids = queue_messages(db, DEVICE_1, (b"was in flight", "text"), (b"second", "text"))
    with Store(db) as store:  # as a service that stopped before its answer went out
        filed = store.file_exchange(Exchange(DEVICE_1, 9, b"digest", "p", b"", None))
    assert filed.downstream is not None and filed.downstream.id == ids[0]
    assert states(db) == ["in_flight", "pending"]
    service = start()
    assert states(db) == ["pending", "pending"], "open() queued it again"
    answer = devices(service.uri()).post(b"next request")
    assert (answer.payload, answer.etag) == (b"was in flight", etag_of(ids[0]))
    assert wait_until(lambda: states(db) == ["sent", "pending"], TIMEOUT), outbox(db)
    assert outbox(db)[0].attempts == 2
