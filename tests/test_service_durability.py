"""The data service under faults: a lossy link, ``kill -9`` under load, the C sample's loop.

The scenarios are ``benchmarks/service_faults.py``'s (its ``--long`` run is the
same at scale): devices are real DTLS clients of this binding, each with a
certificate of its own, the service is the real ``libcoap-py serve`` process,
the lossy link is ``benchmarks/lossy_proxy.py`` on loopback. A scenario's
``Result.violations`` lists every check that failed (see the module's doc):
answered messages filed exactly once, no downstream message lost or marked
delivered without a receipt, none received under two ETags, the database
intact after every ``kill -9``.

The four scenarios run side by side (the first test that needs one starts them
all), each bounded by its ``time_limit``; each test waits for its own.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers.certs import CertFiles
from helpers.service import DEVICE, start_service
from helpers.waiting import wait_until

import libcoap_py as coap
from libcoap_py.service import etag_of
from libcoap_py.service.store import Store

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))
from service_faults import (
    MODES,
    DevicePolicy,
    Result,
    Scenario,
    ScenarioRun,
    make_pki,
    sample_loop_post,
)

pytestmark = pytest.mark.needs_dtls

#: Over the lossy link: libcoap retransmits a CON twice (1 s, then 2 s, randomised up
#: to 1.5x), then NACKs; a separate response may take the service's own retransmissions
#: (2 s, 4 s, ...): a device waits 10 s before it resends over a new session, and once its
#: request is acknowledged (confirmed mode) it waits on that session for the response.
LOSSY_POLICY = DevicePolicy(
    ack_timeout=1.0,
    max_retransmit=2,
    attempt_timeout=10.0,
    wait_after_ack=14.0,
    message_deadline=14.0,
)
#: Without loss every answer comes within milliseconds; after a kill -9 only silence
#: tells the device: it resends over a new session after 2 s without an answer. The
#: deadline is generous: what the test checks is that every message is answered, and
#: on a loaded CI machine (four scenarios at once, on two cores) three restarts once
#: took the scenario past a 35 s limit with a 20 s deadline.
KILL_POLICY = DevicePolicy(
    ack_timeout=1.0, max_retransmit=1, attempt_timeout=2.0, message_deadline=45.0
)

#: The lossy scenarios send what fits in this time (at 20% loss each way a message
#: takes about a second on average, some ten); what is not sent by then is not counted.
LOSSY_TIME_S = 16.0

SCENARIOS = {
    **{
        f"lossy-{mode}": Scenario(
            mode=mode,
            devices=4,
            messages=32,
            downstream=10,
            loss=0.2,
            duplicate=0.05,
            reorder=0.05,
            loss_after_connect=True,
            seed=7,
            policy=LOSSY_POLICY,
            time_limit=LOSSY_TIME_S,
            settle=1.0,
            name=f"lossy-{mode}",
        )
        for mode in MODES
    },
    **{
        f"kills-{mode}": Scenario(
            mode=mode,
            devices=3,
            messages=45,
            downstream=15,
            drain=12,
            kills=3,
            seed=11,
            policy=KILL_POLICY,
            time_limit=70.0,
            stall_timeout=15.0,
            name=f"kills-{mode}",
        )
        for mode in MODES
    },
}
#: How long a test waits for its scenario (they all started with the first test: this
#: covers the longest time limit, plus the stop and the checks).
RESULT_TIMEOUT_S = 80.0


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, ScenarioRun]]:
    pytest.importorskip("cryptography", reason="device certificates need 'cryptography'")
    workdir = tmp_path_factory.mktemp("service-faults")
    pki = make_pki(workdir / "pki", max(s.devices for s in SCENARIOS.values()))
    started = {label: ScenarioRun(s, workdir / label, pki) for label, s in SCENARIOS.items()}
    yield started
    for run in started.values():  # nothing outlives the module
        try:
            run.result(timeout=60.0)
        except Exception:
            pass  # (the scenario's test reported it)


def explain(result: Result) -> str:
    return f"{result.summary()}\n--- the service's last lines:\n{result.service_output}"


@pytest.mark.parametrize("mode", MODES)
def test_lossy_link(runs: dict[str, ScenarioRun], mode: str) -> None:
    """20% loss each way, duplication, reordering: every answered message is filed once,
    no downstream message is lost, none arrives under two ETags."""
    result = runs[f"lossy-{mode}"].result(RESULT_TIMEOUT_S)
    assert result.ok, explain(result)
    assert result.proxy["dropped"] > 0, "the link lost nothing: the scenario tested no loss"
    assert result.answered > 0 and result.downstream_received > 0, explain(result)
    # Answered ones are filed (checked above); the inbox has nothing else twice.
    assert result.inbox_duplicates == 0


@pytest.mark.parametrize("mode", MODES)
def test_kill_9_under_load(runs: dict[str, ScenarioRun], mode: str) -> None:
    """kill -9 at three random points under load, restarted on the same database and
    port: the database is intact each time; every device gets every answer (a request
    resent after the restart is recognised: filed once, answered alike); and once the
    devices have drained their queues, every queued downstream message has reached its
    device, those in flight at a kill included."""
    result = runs[f"kills-{mode}"].result(RESULT_TIMEOUT_S)
    assert result.ok, explain(result)
    assert (result.kills, result.restarts, result.integrity_checks) == (3, 3, 3), explain(result)
    assert result.answered == result.sent == result.messages + result.drained, explain(result)
    assert result.inbox_rows == result.sent
    assert result.drained_empty == result.devices, explain(result)
    assert result.downstream_received == result.downstream_queued, explain(result)


# -- the C sample's loop ---------------------------------------------------------------


def _pki(certs: CertFiles) -> coap.PKI:
    return coap.PKI(certs.cert, certs.key, certs.cert)


def _states(db: Path) -> list[str]:
    with Store(db, create=False) as store:
        return [m.state for m in store.list_outbox()]


def test_c_sample_loop_gets_its_downstream_message(tmp_path: Path, certs: CertFiles) -> None:
    """The C sample sends its CON and runs ``while (!coap_can_exit(ctx))``: it stops as
    soon as its request is acknowledged (on 4.2 and 4.3 alike). In the default mode
    the answer, downstream message included, rides in that ACK."""
    db = tmp_path / "service.db"
    with Store(db) as store:
        first = store.add_outbox(DEVICE, b"first downstream", "text")
        second = store.add_outbox(DEVICE, b"second downstream", "text")
    service = start_service(db, certs)
    try:
        outcomes = [
            sample_loop_post(service.port(), _pki(certs), f"sample {n}".encode(), limit=20.0)
            for n in range(3)
        ]
        assert wait_until(lambda: _states(db) == ["sent", "sent"], 10.0), _states(db)
    finally:
        assert service.stop() == 0, service.output()
    assert [o.exited for o in outcomes] == [True] * 3, "the loop ended by can_exit()"
    assert [(o.responses, o.code, o.payload, o.etag) for o in outcomes] == [
        (1, int(coap.Code.CHANGED), b"first downstream", first),
        (1, int(coap.Code.CHANGED), b"second downstream", second),
        (1, int(coap.Code.CHANGED), b"", None),
    ]
    with Store(db, create=False) as store:
        assert [m.payload for m in store.list_inbox()] == [b"sample 0", b"sample 1", b"sample 2"]


def test_c_sample_loop_in_confirmed_mode_leaves_the_message_queued(
    tmp_path: Path, certs: CertFiles
) -> None:
    """With ``--confirm-downstream`` the C sample's loop ends at the empty ACK, before
    the separate response (on 4.2 and 4.3 alike): the message must not count as
    delivered. The service keeps it in flight (retransmitting to a client that is
    gone), puts it back in the queue at its next start, and a client that waits for
    its response gets it then."""
    db = tmp_path / "service.db"
    with Store(db) as store:
        queued = store.add_outbox(DEVICE, b"for a waiting client", "text")
    service = start_service(db, certs, extra=["--confirm-downstream"])
    try:
        outcome = sample_loop_post(service.port(), _pki(certs), b"sample", limit=20.0)
        assert outcome.exited and outcome.responses == 0, outcome
        answered = f"answered ({len(b'for a waiting client')} bytes, confirmable)"
        assert wait_until(lambda: answered in service.output(), 10.0), service.output()
        # In flight while libcoap retransmits it to the client that is gone (pending if
        # its session ended first): not delivered either way.
        assert _states(db) in (["in_flight"], ["pending"])
    finally:
        assert service.stop() == 0, service.output()
    assert _states(db) in (["in_flight"], ["pending"]), "no ACK came: not delivered"

    again = start_service(db, certs, extra=["--confirm-downstream"])
    try:
        assert _states(db) == ["pending"]
        with coap.Context() as ctx:
            session = ctx.client_session(again.uri(), dtls=_pki(certs))
            response = session.request("POST", "waits", payload=b"waiting", timeout=10)
        assert (response.payload, response.etag) == (b"for a waiting client", etag_of(queued))
        assert wait_until(lambda: _states(db) == ["delivered"], 10.0), _states(db)
    finally:
        assert again.stop() == 0, again.output()
    with Store(db, create=False) as store:
        assert [m.payload for m in store.list_inbox()] == [b"sample", b"waiting"]
