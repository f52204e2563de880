"""The data service (``libcoap-py serve``) under faults: a lossy link and ``kill -9``.

Devices are real DTLS clients of this binding, each with a certificate of its
own (its common name is its device id), in a thread of its own with a
Context of its own. A device POSTs its messages one after the other, each a
confirmable request with a unique payload (``device:seq``) and a message ID and
token of its own, and keeps a record of every 2.04 it gets (the downstream
message's payload and ETag). An unanswered message is sent again *as it was*
(same message ID, same token: ``Session.new_pdu(mid=, token=)``) over a new
session, after a NACK or when no answer came within the attempt timeout, until
it is answered or its deadline passes (or the device's attempt limit is hit).

The service is the real ``python -I -m libcoap_py.cli serve`` process. Two
faults, alone or together:

- loss: the devices reach it through ``lossy_proxy.LossyProxy`` (loopback),
  which drops, duplicates and reorders datagrams both ways;
- kills: the harness ``kill -9``s the service at random points under load (when
  the devices' answer count reaches a random threshold, while other requests
  are being filed, committed or answered), and starts it again on the same
  database and port; ``PRAGMA integrity_check`` must say ok after each restart.

Both answer modes: ``default`` (answers piggybacked on the ACK after the
commit) and ``confirmed`` (``--confirm-downstream``: empty ACK, then a separate
confirmable response). :func:`run_scenario` returns a :class:`Result` whose
``violations`` list what went wrong (empty: every check passed):

- every upstream message a device saw answered 2.04 is in the inbox exactly
  once, under that device; no message is in the inbox twice; messages never
  answered may be missing (counted apart: ``unanswered_filed``/``_missing``);
- every answer carried the downstream message its exchange took (the inbox
  row's ``outbox_id``), and nothing meant for another device;
- downstream: every queued message is, at the end, received by its device or
  still pending/in_flight. One marked ``sent`` that its device never received
  is allowed only in default mode and only when the device gave up on the
  exchange that carried it (a piggybacked answer lost after the device stopped
  retransmitting: ``lost_after_give_up``); ``delivered`` needs a receipt;
- no downstream payload is received under two ETags (the same ETag twice is a
  duplicate, allowed and counted);
- ``PRAGMA integrity_check`` ok after every restart; what devices saw answered
  before a kill is in the inbox after it; the service stops cleanly at the end.

The suite (``tests/test_service_durability.py``) runs small instances. The long
run, one command (loopback only; bounded in count and time)::

    python -I benchmarks/service_faults.py --long               # 9000 messages, 50 kills
    python -I benchmarks/service_faults.py --long --scale 0.4   # about ten minutes

prints the figures of three scenarios run side by side: both modes with 20%
loss and repeated kills, and default mode at 20% loss with devices that give
up after libcoap's own retransmissions (one attempt per message), which
measures how often a piggybacked answer is lost with the device having given
up. It exits 1 if any check failed.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import sqlite3
import struct
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from lossy_proxy import LossyProxy  # noqa: E402

import libcoap_py as coap  # noqa: E402
from libcoap_py.cli.demo import ServiceProcess  # noqa: E402
from libcoap_py.service import Store  # noqa: E402

__all__ = [
    "MODES",
    "Device",
    "DeviceFiles",
    "DevicePolicy",
    "Message",
    "Pki",
    "Received",
    "Result",
    "SampleOutcome",
    "Scenario",
    "ScenarioRun",
    "ServiceRunner",
    "long_scenarios",
    "make_pki",
    "run_scenario",
    "run_scenarios",
    "sample_loop_post",
]

MODES = ("default", "confirmed")
#: Where devices POST (any path is filed; this one names the harness).
PATH = "faults"
#: Bound on the service's start (and on each restart).
START_TIMEOUT_S = 15.0
_ETAG = int(coap.OptionNumber.ETAG)
_URI_PATH = int(coap.OptionNumber.URI_PATH)
_CHANGED = int(coap.Code.CHANGED)
_SESSION_ENDINGS = frozenset(
    {coap.Event.DTLS_CLOSED, coap.Event.DTLS_ERROR, coap.Event.SESSION_FAILED}
)


# --------------------------------------------------------------------------------------
# certificates


@dataclass(frozen=True)
class DeviceFiles:
    """A device's identity: its common name, certificate (+ CA) and key files."""

    name: str
    cert: Path
    key: Path


@dataclass(frozen=True)
class Pki:
    """A CA, the service's certificate and key, and ``devices`` device certificates."""

    ca: Path
    server_cert: Path
    server_key: Path
    devices: tuple[DeviceFiles, ...]

    def device_pki(self, index: int) -> coap.PKI:
        files = self.devices[index]
        return coap.PKI(files.cert, files.key, self.ca)


def make_pki(directory: Path, devices: int, prefix: str = "dev") -> Pki:
    """A CA, a server certificate for 127.0.0.1, and device certificates with the common
    names ``{prefix}-00``, ``{prefix}-01``, ... (each file: leaf followed by the CA)."""
    from libcoap_py import certs

    directory.mkdir(parents=True, exist_ok=True)
    ca, ca_key = certs.make_ca("service-faults CA")
    server, server_key = certs.make_leaf(ca, ca_key, "localhost", server=True)
    made = []
    for index in range(devices):
        name = f"{prefix}-{index:02d}"
        leaf, leaf_key = certs.make_leaf(ca, ca_key, name, server=False)
        made.append(
            DeviceFiles(
                name,
                certs.write_pem(directory / f"{name}.crt", leaf, ca),
                certs.write_pem(directory / f"{name}.key", leaf_key),
            )
        )
    return Pki(
        ca=certs.write_pem(directory / "ca.crt", ca),
        server_cert=certs.write_pem(directory / "server.crt", server),
        server_key=certs.write_pem(directory / "server.key", server_key),
        devices=tuple(made),
    )


# --------------------------------------------------------------------------------------
# the service process


class ServiceRunner:
    """``python -I -m libcoap_py.cli serve`` on one database, killed and started again on
    the same port."""

    def __init__(self, db: Path, pki: Pki, *, confirmed: bool, verbose: bool = True) -> None:
        self.db = db
        self.pki = pki
        self.confirmed = confirmed
        self.verbose = verbose
        self.port = 0
        self.process: ServiceProcess | None = None
        self.starts = 0
        #: The output of the service's earlier runs (each run's lines, in order).
        self.earlier: list[list[str]] = []

    def argv(self, port: int) -> list[str]:
        argv = [sys.executable, "-I", "-m", "libcoap_py.cli", "serve", "--db", str(self.db)]
        argv += ["--cert", str(self.pki.server_cert), "--key", str(self.pki.server_key)]
        argv += ["--ca", str(self.pki.ca), "--listen", f"coaps://127.0.0.1:{port}"]
        if self.confirmed:
            argv.append("--confirm-downstream")
        if self.verbose:
            argv.append("-v")
        return argv

    def start(self) -> int:
        """Start it (on the port of its first start, once it has one); return the port."""
        last: BaseException | None = None
        for _ in range(3):  # another program may take the port in the moment it is free
            process = ServiceProcess(self.argv(self.port))
            try:
                [uri] = process.wait_listening(START_TIMEOUT_S)
            except BaseException as error:
                process.stop()
                self.earlier.append(list(process.lines))
                last = error
                if self.port == 0 or "cannot listen" not in "\n".join(process.lines):
                    raise
                continue
            self.process = process
            self.port = int(uri.rsplit(":", 1)[1])
            self.starts += 1
            return self.port
        assert last is not None
        raise last

    def kill(self) -> None:
        """``kill -9``, and wait until the process is gone."""
        assert self.process is not None
        self.process.stop(sig=signal.SIGKILL)
        self.earlier.append(list(self.process.lines))
        self.process = None

    def stop(self) -> int:
        """SIGTERM; the exit status (0: it stopped cleanly)."""
        if self.process is None:
            return 0
        status = self.process.stop()
        self.earlier.append(list(self.process.lines))
        self.process = None
        return status

    def output(self, lines: int = 80) -> str:
        """The last ``lines`` lines the service printed, over all its runs."""
        runs = [*self.earlier, *([self.process.lines] if self.process is not None else [])]
        joined = [line for run in runs for line in [*run, "--- (process ended)"]]
        return "\n".join(joined[-lines:])


# --------------------------------------------------------------------------------------
# devices


@dataclass
class Message:
    """One upstream message of a device, and what became of it."""

    seq: int
    payload: bytes
    mid: int
    token: bytes
    #: Sends (each a CON that libcoap retransmits on its own; each after the first over
    #: a new session, or on the same one after a 5.03).
    attempts: int = 0
    answered: bool = False
    #: The downstream message in the first 2.04: its ETag (outbox id), payload.
    etag: int | None = None
    downstream: bytes = b""
    #: 2.04s received for it (more than one: the answer came again).
    answers: int = 0
    #: Answers other than 2.04 (5.03 when the service cannot store).
    other_codes: list[int] = field(default_factory=list)
    #: How each unanswered send ended: "nack:REASON", "event:NAME", "timeout",
    #: "timeout after ack" (acknowledged, no separate response came).
    endings: list[str] = field(default_factory=list)
    #: The device stopped trying (deadline, attempt limit, end of the run).
    gave_up: bool = False


@dataclass(frozen=True)
class Received:
    """A downstream message a device got: its ETag (outbox id) and payload."""

    etag: int | None
    payload: bytes
    seq: int


@dataclass(frozen=True)
class DevicePolicy:
    """How a device sends and retries."""

    #: libcoap's CON retransmission (ACK_TIMEOUT >= 1 s on 4.3, MAX_RETRANSMIT).
    ack_timeout: float = 1.0
    max_retransmit: int = 2
    #: No answer this long after a send: resend over a new session. None: libcoap's
    #: MAX_TRANSMIT_WAIT plus a second (only a NACK ends the attempt sooner).
    attempt_timeout: float | None = 3.0
    #: Once the request was acknowledged (an empty ACK: a separate response is to come,
    #: and libcoap has nothing left to retransmit), wait this long from the send for that
    #: response on the same session, as a client that waits for its response does
    #: (the attempt timeout then no longer applies). None: the attempt timeout applies.
    wait_after_ack: float | None = None
    #: When that wait ends without the response, give up on the message: the service
    #: has it (it acknowledged it), and the running service acknowledges the same
    #: request resent over a new session again without ever answering it.
    give_up_after_ack: bool = False
    #: Sends per message before giving up; None: until the deadline.
    max_attempts: int | None = None
    #: Give up on a message after this long.
    message_deadline: float = 30.0


class Device:
    """A device: a DTLS-PKI client with a certificate of its own, in a thread of its own.

    ``on_settled(device)`` is called (in the device's thread) whenever one of its
    messages got its first 2.04, or the device gave up on it.
    """

    def __init__(
        self,
        index: int,
        files: DeviceFiles,
        pki: coap.PKI,
        port: int,
        messages: int,
        policy: DevicePolicy,
        seed: int,
        on_settled: Callable[[Device], None] | None = None,
        stop: threading.Event | None = None,
        drain: int = 0,
    ) -> None:
        self.index = index
        self.name = files.name
        self.pki = pki
        self.port = port
        self.policy = policy
        self.on_settled = on_settled
        self.stop_event = stop or threading.Event()
        self.drain = drain
        self._rng = random.Random(seed * 1000003 + index)
        self._nonce = self._rng.randrange(1 << 16)
        self.messages: list[Message] = []
        self._by_token: dict[bytes, Message] = {}
        for _ in range(messages):
            self._new_message(f"{self.name}:{len(self.messages)}")
        #: Every downstream message received, in order (duplicates included).
        self.received: list[Received] = []
        self.sessions = 0
        self.nacks: Counter[str] = Counter()
        self.timeouts = 0
        #: Responses with a token this device never used.
        self.stray = 0
        self.error: BaseException | None = None
        #: Set at the device's first answer (or when it ends).
        self.first_answer = threading.Event()
        self._session: coap.Session | None = None
        self._current: Message | None = None
        self._failed = False
        self._why = ""
        self._thread = threading.Thread(target=self._main, name=f"device {self.name}", daemon=True)

    # -- lifetime ----------------------------------------------------------------------

    def start(self) -> Device:
        self._thread.start()
        return self

    def join(self, timeout: float) -> bool:
        """Wait for the device to finish; whether it did."""
        self._thread.join(timeout)
        return not self._thread.is_alive()

    @property
    def answered(self) -> int:
        return sum(m.answered for m in self.messages)

    def _new_message(self, payload: str) -> Message:
        seq = len(self.messages)
        token = struct.pack("!BIH", self.index & 0xFF, seq, self._nonce) + b"F"
        message = Message(seq, payload.encode(), self._rng.randrange(1 << 16), token)
        self._by_token[token] = message
        self.messages.append(message)
        return message

    # -- the thread --------------------------------------------------------------------

    def _main(self) -> None:
        try:
            with coap.Context() as ctx:
                ctx.register_response_handler(self._on_response)
                ctx.register_nack_handler(self._on_nack)
                ctx.register_event_handler(self._on_event)
                try:
                    for message in list(self.messages):
                        if self.stop_event.is_set():
                            break
                        self._send_until_answered(ctx, message)
                    # Drain: more messages until an answer brings no downstream message.
                    for n in range(self.drain):
                        if self.stop_event.is_set():
                            break
                        message = self._new_message(f"{self.name}:drain{n}")
                        self._send_until_answered(ctx, message)
                        if message.answered and message.etag is None:
                            break
                finally:
                    self._drop_session()
        except BaseException as error:
            self.error = error
        finally:
            for message in self.messages:
                if not message.answered:
                    message.gave_up = True
            self.first_answer.set()

    def _send_until_answered(self, ctx: coap.Context, message: Message) -> None:
        policy = self.policy
        deadline = time.monotonic() + policy.message_deadline
        self._current = message
        while not message.answered and not self.stop_event.is_set():
            now = time.monotonic()
            if now >= deadline or (
                policy.max_attempts is not None and message.attempts >= policy.max_attempts
            ):
                break
            session = self._session
            if session is None:
                try:
                    session = self._new_session(ctx)
                except coap.CoapError:
                    ctx.run_once(100)  # (a device's pause before it tries again)
                    continue
            self._failed = False
            self._why = ""
            codes_before = len(message.other_codes)
            try:
                # The message as it was: the same message ID and token on every send.
                pdu = session.new_pdu(
                    coap.MessageType.CON, coap.Code.POST, mid=message.mid, token=message.token
                )
                pdu.add_option(_URI_PATH, PATH)
                pdu.payload = message.payload
                session.send(pdu)
            except coap.CoapError:
                self._drop_session()
                ctx.run_once(100)  # (a device's pause before it tries again)
                continue
            message.attempts += 1
            sent_at = time.monotonic()
            limit = policy.attempt_timeout
            if limit is None:
                limit = session.max_transmit_wait() + 1.0
            end = min(deadline, sent_at + limit)
            extended = acked = False
            while (
                not message.answered
                and not self._failed
                and len(message.other_codes) == codes_before
                and not self.stop_event.is_set()
            ):
                left = end - time.monotonic()
                if left <= 0 and not extended and policy.wait_after_ack is not None:
                    extended = True
                    if ctx.can_exit():  # acknowledged, the answer is to come separately
                        acked = True
                        end = min(deadline, max(end, sent_at + policy.wait_after_ack))
                        continue
                if left <= 0:
                    self.timeouts += 1
                    self._why = "timeout after ack" if acked else "timeout"
                    break
                ctx.run_once(max(1, min(200, int(left * 1000))))
            if message.answered or len(message.other_codes) > codes_before:
                continue  # answered, or refused for now (5.03): send again on this session
            # A NACK, a failed session, or silence: again, as it was, over a new session.
            message.endings.append(self._why or "stopped")
            self._drop_session()
            if acked and policy.give_up_after_ack:
                break
            if time.monotonic() - sent_at < 0.1:
                ctx.run_once(100)  # (a device's pause before it tries again)
        self._current = None
        if not message.answered:
            message.gave_up = True
            if self.on_settled is not None:
                self.on_settled(self)

    def _new_session(self, ctx: coap.Context) -> coap.Session:
        session = ctx.client_session(f"coaps://127.0.0.1:{self.port}", dtls=self.pki)
        session.ack_timeout = self.policy.ack_timeout
        session.max_retransmit = self.policy.max_retransmit
        self._session = session
        self.sessions += 1
        return session

    def _drop_session(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            session.close()

    # -- handlers (the device's thread, inside run_once) -------------------------------

    def _on_response(self, session: Any, sent: Any, received: Any, mid: int) -> bool:
        message = self._by_token.get(received.token)
        if message is None:
            self.stray += 1
            return True
        code = int(received.code)
        if code != _CHANGED:
            message.other_codes.append(code)
            return True
        etag_bytes = received.option(_ETAG)
        etag = None if etag_bytes is None else int.from_bytes(etag_bytes, "big")
        payload = received.payload
        if payload or etag is not None:
            self.received.append(Received(etag, payload, message.seq))
        message.answers += 1
        if not message.answered:
            message.answered = True
            message.etag = etag
            message.downstream = payload
            self.first_answer.set()
            if self.on_settled is not None:
                self.on_settled(self)
        return True

    def _on_nack(self, session: Any, sent: Any, reason: Any, mid: int) -> None:
        name = getattr(reason, "name", str(reason))
        self.nacks[name] += 1
        if session is not None and session is self._session:
            self._failed = True
            self._why = self._why or f"nack:{name}"

    def _on_event(self, session: Any, event: Any) -> None:
        if event in _SESSION_ENDINGS and session is not None and session is self._session:
            self._failed = True
            self._why = self._why or f"event:{getattr(event, 'name', event)}"


# --------------------------------------------------------------------------------------
# the C sample's loop


@dataclass
class SampleOutcome:
    """What a client written like libcoap's C sample saw."""

    code: int | None = None
    payload: bytes = b""
    etag: int | None = None
    nack: str | None = None
    #: The loop ended because ``can_exit()`` said so (not the harness's deadline).
    exited: bool = False
    #: Responses the handler got before the loop ended.
    responses: int = 0


def sample_loop_post(
    port: int, pki: coap.PKI, payload: bytes, *, path: str = "path-for-data", limit: float = 30.0
) -> SampleOutcome:
    """POST as the C sample does: ``new_pdu`` CON POST, Uri-Path, payload, ``send``, a
    response handler, then ``while not ctx.can_exit(): ctx.run_once(1000)`` (with a
    harness bound ``limit`` on that loop). No retries of its own."""
    outcome = SampleOutcome()
    with coap.Context() as ctx:
        session = ctx.client_session(f"coaps://127.0.0.1:{port}", dtls=pki)

        def response_handler(session: Any, sent: Any, received: Any, mid: int) -> None:
            outcome.responses += 1
            outcome.code = int(received.code)
            outcome.payload = received.payload
            etag = received.option(_ETAG)
            outcome.etag = None if etag is None else int.from_bytes(etag, "big")

        def nack_handler(session: Any, sent: Any, reason: Any, mid: int) -> None:
            outcome.nack = getattr(reason, "name", str(reason))

        ctx.register_response_handler(response_handler)
        ctx.register_nack_handler(nack_handler)
        pdu = session.new_pdu(coap.MessageType.CON, coap.Code.POST)
        for segment in path.split("/"):
            pdu.add_option(coap.OptionNumber.URI_PATH, segment)
        pdu.payload = payload
        session.send(pdu)
        end = time.monotonic() + limit
        while not ctx.can_exit():
            if time.monotonic() >= end:
                return outcome
            ctx.run_once(1000)
        outcome.exited = True
    return outcome


# --------------------------------------------------------------------------------------
# scenarios


@dataclass(frozen=True)
class Scenario:
    """One run: a mode, devices, messages, faults."""

    mode: str = "default"
    devices: int = 3
    #: Upstream messages in all (shared out among the devices).
    messages: int = 30
    #: Downstream messages queued before the start (shared out), plus one per restart.
    downstream: int = 10
    #: After its messages, a device sends up to this many more, until an answer brings
    #: no downstream message (its queue is empty): then every queued message must have
    #: reached its device.
    drain: int = 0
    loss: float = 0.0
    duplicate: float = 0.0
    reorder: float = 0.0
    #: The link turns lossy only once every device had its first answer (its DTLS
    #: handshake done): spares the suite the handshakes' time under loss.
    loss_after_connect: bool = False
    kills: int = 0
    seed: int = 1
    policy: DevicePolicy = DevicePolicy()
    #: Bound on the whole run: devices still sending then give up.
    time_limit: float = 40.0
    #: Bound on the wait for the answers before a kill.
    stall_timeout: float = 20.0
    #: At the end, before the service is stopped, wait at most this long for it to
    #: record where its last answers stand (no message in flight).
    settle: float = 3.0
    verbose_service: bool = True
    name: str = ""

    @property
    def label(self) -> str:
        return self.name or self.mode


@dataclass
class Result:
    """What a scenario did, and what its checks found (``violations``: empty if none)."""

    label: str
    mode: str
    devices: int
    messages: int
    loss: float
    seed: int
    sent: int = 0
    #: Of those, sent after the planned ones to empty the device's queue.
    drained: int = 0
    #: Devices that ended with an answer without downstream message (queue empty).
    drained_empty: int = 0
    answered: int = 0
    #: Never answered: the device gave up (its deadline, its attempt limit, the end).
    gave_up: int = 0
    #: Answered only after the device had given up on them (the answer came late).
    late_answers: int = 0
    attempts: int = 0
    resends: int = 0
    sessions: int = 0
    nacks: dict[str, int] = field(default_factory=dict)
    other_codes: dict[str, int] = field(default_factory=dict)
    inbox_rows: int = 0
    inbox_duplicates: int = 0
    answered_missing: int = 0
    unanswered_filed: int = 0
    unanswered_missing: int = 0
    downstream_queued: int = 0
    downstream_received: int = 0
    downstream_duplicates: int = 0
    downstream_pending: int = 0
    downstream_in_flight: int = 0
    downstream_lost: int = 0
    lost_after_give_up: int = 0
    state_sent: int = 0
    state_delivered: int = 0
    #: Every outbox message's state at the end.
    states: dict[str, int] = field(default_factory=dict)
    kills: int = 0
    restarts: int = 0
    integrity_checks: int = 0
    stalls: int = 0
    clean_stop: bool = True
    duration: float = 0.0
    proxy: dict[str, int] = field(default_factory=dict)
    violations: list[str] = field(default_factory=list)
    #: The first messages never answered: "payload (sends, filed or not)".
    unanswered: list[str] = field(default_factory=list)
    service_output: str = ""

    @property
    def ok(self) -> bool:
        return not self.violations

    def figures(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("service_output")
        return data

    def summary(self) -> str:
        lines = [
            f"[{self.label}] mode {self.mode}, {self.devices} devices, loss {self.loss:.0%}, "
            f"seed {self.seed}: {self.duration:.1f} s, {self.kills} kills "
            f"({self.restarts} restarts, integrity_check ok {self.integrity_checks}x)",
            f"  upstream: {self.sent} sent ({self.drained} to drain the queues; "
            f"{self.drained_empty} of {self.devices} devices drained), {self.answered} "
            f"answered 2.04 ({self.late_answers} after the device gave up), {self.gave_up} "
            f"never; {self.attempts} sends "
            f"({self.resends} resent as they were), "
            f"{self.sessions} sessions; NACKs {dict(sorted(self.nacks.items())) or 'none'}; "
            f"other answers {self.other_codes or 'none'}",
            f"  inbox: {self.inbox_rows} rows, {self.inbox_duplicates} duplicates, "
            f"{self.answered_missing} answered but missing; never answered: "
            f"{self.unanswered_filed} filed, {self.unanswered_missing} missing",
            f"  downstream: {self.downstream_queued} queued, {self.downstream_received} received "
            f"({self.downstream_duplicates} duplicates under the same ETag), "
            f"{self.downstream_pending} pending, {self.downstream_in_flight} in_flight, "
            f"{self.downstream_lost} lost; states at the end: {dict(sorted(self.states.items()))}"
            f"; sent but lost after the device gave up: {self.lost_after_give_up}",
        ]
        if self.proxy:
            p = self.proxy
            lines.append(
                f"  proxy: {p['received']} datagrams, {p['dropped']} dropped, "
                f"{p['duplicated']} duplicated, {p['reordered']} reordered"
            )
        if self.stalls:
            lines.append(f"  stalls (no answers for a while before a kill): {self.stalls}")
        lines.append(
            "  checks: ok"
            if self.ok
            else f"  checks: {len(self.violations)} FAILED:\n    " + "\n    ".join(self.violations)
        )
        return "\n".join(lines)


def _share(total: int, parts: int) -> list[int]:
    return [total // parts + (1 if i < total % parts else 0) for i in range(parts)]


class _Progress:
    """Messages settled (answered, or given up), counted, for the harness to wait on."""

    def __init__(self) -> None:
        self.settled = 0
        self._cond = threading.Condition()

    def on_settled(self, device: Device) -> None:
        with self._cond:
            self.settled += 1
            self._cond.notify_all()

    def wait_for(self, target: int, timeout: float, done: Callable[[], bool]) -> bool:
        """Until ``target`` messages settled (True), or ``done()``, or ``timeout`` passed."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self.settled < target:
                left = deadline - time.monotonic()
                if left <= 0 or done():
                    return False
                self._cond.wait(min(left, 0.2))
        return True


def _answered_payloads(devices: Sequence[Device]) -> set[tuple[str, bytes]]:
    return {(d.name, m.payload) for d in devices for m in list(d.messages) if m.answered}


def _drained(device: Device) -> bool:
    """Whether ``device`` got its empty drain answer (it asks for nothing more)."""
    return any(
        m.answered and m.etag is None and b":drain" in m.payload for m in list(device.messages)
    )


def run_scenario(scenario: Scenario, workdir: Path, pki: Pki | None = None) -> Result:
    """Run ``scenario`` in ``workdir`` (the database, certificates unless ``pki`` is
    given with enough devices) and check what came of it."""
    if scenario.mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, not {scenario.mode!r}")
    workdir.mkdir(parents=True, exist_ok=True)
    if pki is None or len(pki.devices) < scenario.devices:
        pki = make_pki(workdir / "pki", scenario.devices)
    db = workdir / f"{scenario.label}.db"
    rng = random.Random(scenario.seed)
    started = time.monotonic()
    result = Result(
        scenario.label,
        scenario.mode,
        scenario.devices,
        scenario.messages,
        scenario.loss,
        scenario.seed,
    )
    devices_files = pki.devices[: scenario.devices]
    names = [files.name for files in devices_files]
    with Store(db) as store:
        for index, count in enumerate(_share(scenario.downstream, scenario.devices)):
            for n in range(count):
                store.add_outbox(names[index], f"down:{names[index]}:{n}".encode(), "text")

    service = ServiceRunner(
        db, pki, confirmed=scenario.mode == "confirmed", verbose=scenario.verbose_service
    )
    port = service.start()
    stop = threading.Event()
    progress = _Progress()
    devices: list[Device] = []
    lossy = scenario.loss > 0 or scenario.duplicate > 0 or scenario.reorder > 0
    later = scenario.loss_after_connect
    proxy_cm: Any = (
        LossyProxy(
            ("127.0.0.1", port),
            loss=0.0 if later else scenario.loss,
            duplicate=0.0 if later else scenario.duplicate,
            reorder=0.0 if later else scenario.reorder,
            seed=scenario.seed,
        )
        if lossy
        else nullcontext(None)
    )
    extra_downstream = 0
    before_kill: list[tuple[int, set[tuple[str, bytes]]]] = []
    reported: set[tuple[str, bytes]] = set()
    try:
        with proxy_cm as proxy:
            target = proxy.port if proxy is not None else port
            for index, count in enumerate(_share(scenario.messages, scenario.devices)):
                devices.append(
                    Device(
                        index,
                        devices_files[index],
                        pki.device_pki(index),
                        target,
                        count,
                        scenario.policy,
                        scenario.seed,
                        progress.on_settled,
                        stop,
                        scenario.drain,
                    ).start()
                )

            def all_done() -> bool:
                return all(not d._thread.is_alive() for d in devices)

            if proxy is not None and later:
                connect_by = started + scenario.time_limit / 2
                for device in devices:
                    device.first_answer.wait(max(0.0, connect_by - time.monotonic()))
                proxy.loss = scenario.loss
                proxy.duplicate = scenario.duplicate
                proxy.reorder = scenario.reorder

            # Kill points: counts of settled messages (answered or given up) spread over
            # the run, in random places.
            low = max(1, scenario.messages // 10)
            high = max(low + scenario.kills, scenario.messages * 85 // 100)
            points = sorted(rng.sample(range(low, high), min(scenario.kills, high - low)))
            for number, point in enumerate(points, 1):
                if time.monotonic() - started > scenario.time_limit:
                    break
                point = max(point, progress.settled + 1)
                if not progress.wait_for(point, scenario.stall_timeout, all_done):
                    if all_done():
                        break
                    result.stalls += 1
                service.kill()
                result.kills += 1
                before_kill.append((number, _answered_payloads(devices)))
                # Checked, and a message queued, while the service is down: a device
                # that has not drained its queue yet gets it, as no answer can come
                # between the choice and the restart.
                with Store(db, create=False) as check:
                    verdict = check.integrity_check()
                    if verdict != "ok":
                        result.violations.append(
                            f"integrity_check after restart {number}: {verdict}"
                        )
                    else:
                        result.integrity_checks += 1
                    filed = {(m.device, m.payload) for m in check.list_inbox()}
                    # A message for a device still at work (one that has drained its
                    # queue would never ask for it).
                    working = [d.name for d in devices if not _drained(d)]
                    if working:
                        victim = working[rng.randrange(len(working))]
                        check.add_outbox(victim, f"down:{victim}:k{number}".encode(), "text")
                        extra_downstream += 1
                service.start()
                result.restarts += 1
                missing = before_kill[-1][1] - filed - reported
                reported |= missing
                if missing:
                    result.violations.append(
                        f"{len(missing)} message(s) answered before kill {number} are not in "
                        f"the inbox after the restart: {sorted(missing)[:3]}"
                    )
            deadline = started + scenario.time_limit
            for device in devices:
                if not device.join(max(0.0, deadline - time.monotonic())):
                    stop.set()
            stop.set()
            for device in devices:
                if not device.join(30.0):
                    result.violations.append(f"device {device.name} did not stop")
            if proxy is not None:
                result.proxy = dict(asdict(proxy.stats))
            _wait_for(lambda: not _in_flight(db), scenario.settle)
    finally:
        stop.set()
        status = service.stop()
        result.clean_stop = status == 0
        result.service_output = service.output()
    if not result.clean_stop:
        result.violations.append(f"the service's last run exited with status {status}")
    result.duration = time.monotonic() - started
    _check(result, db, devices, scenario, extra_downstream)
    return result


def _wait_for(condition: Callable[[], bool], timeout: float) -> bool:
    """Poll ``condition`` until it holds (True) or ``timeout`` passed (False)."""
    deadline = time.monotonic() + timeout
    pause = threading.Event()  # never set: its wait() is the pause between polls
    while not condition():
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        pause.wait(min(0.05, left))
    return True


def _in_flight(db: Path) -> int:
    connection = sqlite3.connect(str(db), timeout=10.0)
    try:
        row = connection.execute("SELECT count(*) FROM outbox WHERE state = 'in_flight'")
        return int(row.fetchone()[0])
    finally:
        connection.close()


def _exchanges(db: Path) -> list[tuple[str, int, bytes, int | None]]:
    """(device, mid, inbox payload, outbox id) of every remembered exchange."""
    connection = sqlite3.connect(str(db))
    try:
        rows = connection.execute(
            "SELECT device, mid, payload, outbox_id FROM inbox WHERE mid IS NOT NULL"
        ).fetchall()
    finally:
        connection.close()
    return [(str(r[0]), int(r[1]), bytes(r[2]), r[3]) for r in rows]


def _check(
    result: Result, db: Path, devices: Sequence[Device], scenario: Scenario, extra: int
) -> None:
    v = result.violations
    for device in devices:
        if device.error is not None:
            v.append(f"device {device.name} failed: {device.error!r}")
    with Store(db, create=False) as store:
        verdict = store.integrity_check()
        if verdict != "ok":
            v.append(f"integrity_check at the end: {verdict}")
        inbox = store.list_inbox()
        outbox = store.list_outbox()
    exchanges = _exchanges(db)

    messages = {(d.name, m.payload): (d, m) for d in devices for m in d.messages}
    sent = [(d, m) for d in devices for m in d.messages if m.attempts]
    result.sent = len(sent)
    result.drained = sum(b":drain" in m.payload for _, m in sent)
    result.drained_empty = sum(_drained(d) for d in devices)
    result.answered = sum(m.answered for _, m in sent)
    result.gave_up = sum(not m.answered for _, m in sent)
    result.late_answers = sum(m.answered and m.gave_up for _, m in sent)
    result.attempts = sum(m.attempts for _, m in sent)
    result.resends = result.attempts - result.sent
    result.sessions = sum(d.sessions for d in devices)
    nacks: Counter[str] = Counter()
    for d in devices:
        nacks.update(d.nacks)
    result.nacks = dict(nacks)
    codes = Counter(f"{c >> 5}.{c & 31:02d}" for _, m in sent for c in m.other_codes)
    result.other_codes = dict(codes)
    if codes:
        v.append(f"answers other than 2.04: {dict(codes)}")
    stray = sum(d.stray for d in devices)
    if stray:
        v.append(f"{stray} response(s) with a token the device never used")

    # -- upstream: the inbox ----------------------------------------------------------
    result.inbox_rows = len(inbox)
    counts = Counter((m.device, m.payload) for m in inbox)
    result.inbox_duplicates = sum(n - 1 for n in counts.values())
    if result.inbox_duplicates:
        twice = [k for k, n in counts.items() if n > 1]
        v.append(f"{len(twice)} message(s) filed more than once, e.g. {twice[:3]}")
    unknown = [k for k in counts if k not in messages]
    if unknown:
        v.append(f"{len(unknown)} inbox row(s) no device sent (or under another device): "
                 f"{unknown[:3]}")  # fmt: skip
    wrong_path = [m.id for m in inbox if m.path != PATH]
    if wrong_path:
        v.append(f"{len(wrong_path)} inbox row(s) with another path than {PATH!r}")
    for d, m in sent:
        key = (d.name, m.payload)
        if m.answered and counts[key] != 1:
            result.answered_missing += counts[key] == 0
        elif not m.answered:
            if counts[key]:
                result.unanswered_filed += 1
            else:
                result.unanswered_missing += 1
            if len(result.unanswered) < 20:
                result.unanswered.append(
                    f"{m.payload.decode()} mid {m.mid} ({m.attempts} sends, "
                    f"{'filed' if counts[key] else 'not filed'}; {', '.join(m.endings)})"
                )
    if result.answered_missing:
        v.append(f"{result.answered_missing} message(s) answered 2.04 but not in the inbox")
    never_sent = [k for k, (_, m) in messages.items() if not m.attempts and counts[k]]
    if never_sent:
        v.append(f"{len(never_sent)} inbox row(s) for messages never sent: {never_sent[:3]}")

    # -- answers: each carried what its exchange took ---------------------------------
    taken: dict[tuple[str, bytes], int | None] = {}
    for device_name, _mid, payload, outbox_id in exchanges:
        taken[(device_name, payload)] = outbox_id
    mismatched = []
    for d, m in sent:
        key = (d.name, m.payload)
        if m.answered and key in taken and taken[key] != m.etag:
            mismatched.append((key, m.etag, taken[key]))
    if mismatched:
        v.append(
            f"{len(mismatched)} answer(s) carried another downstream message than their "
            f"exchange took (message, ETag seen, outbox id taken): {mismatched[:3]}"
        )

    # -- downstream --------------------------------------------------------------------
    by_id = {m.id: m for m in outbox}
    result.downstream_queued = len(outbox)
    result.states = dict(Counter(m.state for m in outbox))
    if len(outbox) != scenario.downstream + extra:
        v.append(f"the outbox has {len(outbox)} messages; {scenario.downstream + extra} queued")
    received_ids: Counter[int] = Counter()
    etags_of_payload: dict[tuple[str, bytes], set[int | None]] = {}
    for d in devices:
        for r in d.received:
            etags_of_payload.setdefault((d.name, r.payload), set()).add(r.etag)
            queued = by_id.get(r.etag) if r.etag is not None else None
            if queued is None or queued.payload != r.payload:
                v.append(f"{d.name} got {r.payload!r} under ETag {r.etag}, which is not that "
                         "outbox message")  # fmt: skip
                continue
            if queued.device != d.name:
                v.append(f"{d.name} got outbox message {r.etag}, meant for {queued.device}")
                continue
            received_ids[queued.id] += 1
    for (name, payload), etags in etags_of_payload.items():
        if len(etags) > 1:
            v.append(f"{name} got {payload!r} under {len(etags)} ETags: {sorted(map(str, etags))}")
    result.downstream_received = len(received_ids)
    result.downstream_duplicates = sum(n - 1 for n in received_ids.values())

    given_up = {(d.name, m.payload) for d, m in sent if not m.answered}
    given_up_count = Counter(d.name for d, m in sent if not m.answered)
    carried: dict[int, list[tuple[str, bytes]]] = {}
    for device_name, _mid, payload, outbox_id in exchanges:
        if outbox_id is not None:
            carried.setdefault(outbox_id, []).append((device_name, payload))
    wrong_state = "delivered" if scenario.mode == "default" else "sent"
    in_wrong_state = [m.id for m in outbox if m.state == wrong_state]
    if in_wrong_state:
        v.append(f"{len(in_wrong_state)} outbox message(s) {wrong_state} in {scenario.mode} "
                 f"mode: {in_wrong_state[:5]}")  # fmt: skip
    lost_per_device: Counter[str] = Counter()
    for message in outbox:
        state = message.state
        result.state_sent += state == "sent"
        result.state_delivered += state == "delivered"
        if message.id in received_ids:
            continue
        if state == "pending":
            result.downstream_pending += 1
        elif state == "in_flight":
            result.downstream_in_flight += 1
        elif state == "delivered":
            result.downstream_lost += 1
            v.append(f"outbox message {message.id} ({message.device}) is delivered, but no "
                     "device received it")  # fmt: skip
        elif state == "sent" and scenario.mode == "default":
            exchanges_of = carried.get(message.id, [])
            if exchanges_of and not any(k in given_up for k in exchanges_of):
                result.downstream_lost += 1
                v.append(
                    f"outbox message {message.id} ({message.device}) is sent and was never "
                    f"received, though the device got an answer to every exchange that took "
                    f"it: {exchanges_of[:3]}"
                )
            else:
                result.lost_after_give_up += 1
                lost_per_device[message.device] += 1
        else:
            result.downstream_lost += 1
            v.append(f"outbox message {message.id} ({message.device}) is {state} in "
                     f"{scenario.mode} mode, and no device received it")  # fmt: skip
    for name, lost in lost_per_device.items():
        if lost > given_up_count[name]:
            v.append(f"{name}: {lost} downstream message(s) sent and never received, but the "
                     f"device gave up on only {given_up_count[name]} message(s)")  # fmt: skip


class ScenarioRun:
    """A scenario running in a thread of its own: :meth:`result` waits for it."""

    def __init__(self, scenario: Scenario, workdir: Path, pki: Pki | None = None) -> None:
        self.scenario = scenario
        self._outcome: Result | BaseException | None = None
        self._thread = threading.Thread(
            target=self._main, args=(workdir, pki), name=f"scenario {scenario.label}", daemon=True
        )
        self._thread.start()

    def _main(self, workdir: Path, pki: Pki | None) -> None:
        try:
            self._outcome = run_scenario(self.scenario, workdir, pki)
        except BaseException as error:
            self._outcome = error

    def result(self, timeout: float | None = None) -> Result:
        """The scenario's result; raises what it raised, or TimeoutError."""
        self._thread.join(timeout)
        if self._thread.is_alive():
            raise TimeoutError(f"scenario {self.scenario.label} still running after {timeout} s")
        outcome = self._outcome
        if isinstance(outcome, BaseException):
            raise outcome
        assert outcome is not None
        return outcome


def run_scenarios(scenarios: Sequence[Scenario], workdir: Path) -> list[Result]:
    """Run several scenarios side by side (a thread each); their results, in order."""
    runs = [ScenarioRun(s, workdir / f"s{i}-{s.label}") for i, s in enumerate(scenarios)]
    return [run.result() for run in runs]


# --------------------------------------------------------------------------------------
# the long run


@contextmanager
def _workdir(given: Path | None) -> Iterator[Path]:
    if given is not None:
        given.mkdir(parents=True, exist_ok=True)
        yield given
        return
    with tempfile.TemporaryDirectory(prefix="service-faults-") as directory:
        yield Path(directory)


def long_scenarios(scale: float, seed: int, loss: float) -> list[Scenario]:
    """The long run: both modes with loss and kills, and the give-up measurement.

    ``scale`` multiplies the message, downstream and kill counts (1.0: 9000 messages,
    50 kills; it runs for well over ten minutes on two cores)."""

    def n(value: int) -> int:
        return max(1, round(value * scale))

    # Resend (same message ID and token) over a new session after 8 s without an answer.
    resending = DevicePolicy(
        ack_timeout=1.0, max_retransmit=3, attempt_timeout=8.0, message_deadline=120.0
    )
    # The same in confirmed mode; once the request is acknowledged (filed), wait 8 s for
    # the separate response on the same session, then give up on the message.
    confirmed = DevicePolicy(
        ack_timeout=1.0,
        max_retransmit=3,
        attempt_timeout=8.0,
        wait_after_ack=8.0,
        give_up_after_ack=True,
        message_deadline=120.0,
    )
    # The C sample's way: libcoap's own retransmissions (its defaults: ACK_TIMEOUT 2 s,
    # MAX_RETRANSMIT 4), then give up on the message.
    giving_up = DevicePolicy(
        ack_timeout=2.0,
        max_retransmit=4,
        attempt_timeout=None,
        max_attempts=1,
        message_deadline=120.0,
    )
    # At the end, wait for the service to know where every answer stands: in confirmed
    # mode a separate response counts as delivered only once libcoap has nothing left to
    # retransmit, or after its retransmission window (93 s), which under loss is the rule.
    common: dict[str, Any] = {
        "loss": loss, "duplicate": 0.03, "reorder": 0.03, "verbose_service": False,
        "time_limit": 3600.0, "stall_timeout": 120.0, "settle": 120.0,
    }  # fmt: skip
    return [
        Scenario(mode="default", devices=24, messages=n(3000), downstream=n(1000),
                 kills=n(25), seed=seed, policy=resending, name="default+kills", **common),
        Scenario(mode="confirmed", devices=24, messages=n(2000), downstream=n(700),
                 kills=n(25), seed=seed + 1, policy=confirmed, name="confirmed+kills",
                 **common),
        Scenario(mode="default", devices=48, messages=n(4000), downstream=n(4100), kills=0,
                 seed=seed + 2, policy=giving_up, name="default-give-up", **common),
    ]  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--long", action="store_true", help="the long run (three scenarios)")
    parser.add_argument("--scale", type=float, default=1.0, help="scale the long run's counts")
    parser.add_argument("--mode", choices=MODES, default="default", help="(without --long)")
    parser.add_argument("--devices", type=int, default=3)
    parser.add_argument("--messages", type=int, default=60)
    parser.add_argument("--downstream", type=int, default=20)
    parser.add_argument("--kills", type=int, default=3)
    parser.add_argument("--loss", type=float, default=0.2)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--dir", type=Path, default=None, help="keep the databases here")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = parser.parse_args(argv)

    if args.long:
        scenarios = long_scenarios(args.scale, args.seed, args.loss)
    else:
        scenarios = [
            Scenario(mode=args.mode, devices=args.devices, messages=args.messages,
                     downstream=args.downstream, kills=args.kills, loss=args.loss,
                     duplicate=0.03 if args.loss else 0.0, reorder=0.03 if args.loss else 0.0,
                     seed=args.seed, policy=DevicePolicy(attempt_timeout=10.0 if args.loss
                                                         else 3.0, max_retransmit=3),
                     time_limit=3600.0, verbose_service=False)
        ]  # fmt: skip
    print(
        f"libcoap {coap.libcoap_version()} / {coap.backend().name}; {len(scenarios)} "
        f"scenario(s) side by side on loopback",
        flush=True,
    )
    started = time.monotonic()
    with _workdir(args.dir) as workdir:
        results = run_scenarios(scenarios, workdir)
    elapsed = time.monotonic() - started
    for result in results:
        print(result.summary())
    figures = [r.figures() for r in results]
    total_sent = sum(r.sent for r in results)
    print(
        f"total: {total_sent} messages sent, {sum(r.answered for r in results)} answered, "
        f"{sum(r.inbox_rows for r in results)} inbox rows, "
        f"{sum(r.inbox_duplicates for r in results)} duplicates, "
        f"{sum(r.downstream_lost for r in results)} downstream lost, "
        f"{sum(r.kills for r in results)} kills; {elapsed:.0f} s"
    )
    for r in results:
        if r.mode == "default" and r.loss > 0:
            print(
                f"[{r.label}] gave up after all retransmissions while the piggybacked answer "
                f"(with a downstream message) was lost: {r.lost_after_give_up} of {r.sent} "
                f"messages ({r.lost_after_give_up / max(1, r.sent):.2%}); the device gave up "
                f"on {r.gave_up} ({r.gave_up / max(1, r.sent):.2%}; {r.unanswered_filed} of "
                f"them filed) at {r.loss:.0%} loss"
            )
        elif r.mode == "confirmed":
            print(
                f"[{r.label}] filed but never answered to the device: {r.unanswered_filed} of "
                f"{r.sent} messages ({r.unanswered_filed / max(1, r.sent):.2%}); downstream "
                f"messages received again under the same ETag: {r.downstream_duplicates} "
                f"(for {r.downstream_received} received)"
            )
    if args.json is not None:
        args.json.write_text(json.dumps(figures, indent=1))
    failed = [r.label for r in results if not r.ok]
    if failed:
        print(f"FAILED: {failed}")
        for r in results:
            if not r.ok:
                print(f"--- [{r.label}] the service's last lines:\n{r.service_output}")
        return 1
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
