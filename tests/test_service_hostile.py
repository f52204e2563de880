"""The data service (``libcoap-py serve``) under hostile block-wise traffic (issue 13).

The sequences of block_attacks.py killed ``serve`` with SIGSEGV on libcoap 4.3.1:
two datagrams to its coap:// endpoint, or the same requests from an authenticated
device over coaps://. The service must answer each of them, stay up, file only
the uploads that completed, each once, and go on serving devices.
"""

from __future__ import annotations

from pathlib import Path

import block_attacks
import pytest
from helpers.certs import CertFiles
from helpers.codec import raw_coap_request
from helpers.service import DEVICE, Service, start_service

import libcoap_py as coap
from libcoap_py.service.store import Store

pytestmark = pytest.mark.needs_dtls

PATH = "path-for-data"


def _check_alive(service: Service, name: str) -> None:
    status = service.process.process.poll()
    assert status is None, f"serve died ({status}) after {name}:\n{service.output()}"


def _inbox(db: Path) -> list[tuple[str, str, bytes]]:
    with Store(db, create=False) as store:
        return [(m.device, m.path, m.payload) for m in store.list_inbox()]


def test_block_wise_attacks_over_plain_coap(tmp_path: Path, certs: CertFiles) -> None:
    db = tmp_path / "service.db"
    service = start_service(db, certs, plain=True)
    try:
        port = service.port("coap")
        for name, datagrams in block_attacks.sequences(PATH):
            answered = block_attacks.send_sequence(port, datagrams)
            _check_alive(service, name)
            assert answered == len(datagrams), f"{name}: {answered} of {len(datagrams)} answered"
        # plain coap:// has no device identity: refused, and nothing was filed
        answer = raw_coap_request(port, coap.Code.POST, PATH, b"after the attacks")
        assert answer.code == coap.Code.UNAUTHORIZED
        assert _inbox(db) == []
    finally:
        assert service.stop() == 0, service.output()


def test_block_wise_attacks_from_an_authenticated_device(tmp_path: Path, certs: CertFiles) -> None:
    """Sent with new_pdu()/send() inside a certificate session, as device-1."""
    db = tmp_path / "service.db"
    service = start_service(db, certs)
    try:
        with coap.Context() as ctx:
            dtls = coap.PKI(certs.cert, certs.key, ca=certs.cert)
            session = ctx.client_session(service.uri(), dtls=dtls)
            sender = block_attacks.SessionSender(ctx, session)
            for name, datagrams in block_attacks.sequences(PATH):
                for datagram in datagrams:
                    answered = sender.send(datagram)
                    _check_alive(service, name)
                    assert answered, f"{name}: no answer"
            after = session.request("POST", PATH, b"after the attacks", timeout=10)
            assert after.code == coap.Code.CHANGED
        # Filed: the uploads that completed (each once, a repeated last block is not
        # filed again), and the request after the attacks; nothing partial.
        filed = _inbox(db)
        assert filed[-1] == (DEVICE, PATH, b"after the attacks")
        complete = {bytes(64) + b"end", bytes(16), b""}
        assert {payload for _, _, payload in filed[:-1]} <= complete, filed
        assert filed.count((DEVICE, PATH, bytes(64) + b"end")) == 1, filed
    finally:
        assert service.stop() == 0, service.output()
