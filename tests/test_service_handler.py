"""DataService's request handling without a network: identities, filing, retransmissions."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

import libcoap_py as coap
from libcoap_py.service import DataService, Store, device_of
from libcoap_py.service.server import EXCHANGE_LIFETIME_S


@dataclass
class FakeRequest:
    """The attributes of ``libcoap_py`` requests the service reads."""

    payload: bytes = b"data"
    path: str = "path-for-data"
    method: str = "POST"
    mid: int = 1
    peer: tuple[str, int] = ("127.0.0.1", 40000)
    peer_cn: str | None = "device-1"
    psk_identity: bytes | None = None
    content_format: int | None = None


@dataclass
class FakeResponse:
    code: Any = coap.Code.CHANGED
    payload: bytes = b""
    content_format: int | None = None
    options: list[Any] = field(default_factory=list)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with Store(tmp_path / "h.db") as s:
        yield s


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def service(store: Store, clock: Clock) -> DataService:
    return DataService(store, listen=["coap://127.0.0.1:0"], clock=clock)


def answer(service: DataService, request: FakeRequest) -> FakeResponse:
    response = FakeResponse()
    service.handle(request, response)
    return response


def test_device_of_prefers_the_certificate_name() -> None:
    assert device_of(FakeRequest(peer_cn="cn-1", psk_identity=b"id")) == "cn-1"
    assert device_of(FakeRequest(peer_cn=None, psk_identity=b"id-2")) == "id-2"
    assert device_of(FakeRequest(peer_cn=None, psk_identity=None)) is None


def test_no_identity_is_unauthorized_and_files_nothing(service: DataService, store: Store) -> None:
    store.add_outbox("device-1", b"kept", "text")
    r = answer(service, FakeRequest(peer_cn=None))
    assert r.code == coap.Code.UNAUTHORIZED
    assert store.list_inbox() == []
    assert store.list_outbox()[0].state == "pending"


def test_files_and_returns_the_oldest_downstream(service: DataService, store: Store) -> None:
    store.add_outbox("device-1", b"text one", "text")
    store.add_outbox("device-1", b"\x00\x01", "hex")
    r1 = answer(service, FakeRequest(mid=1, content_format=50))
    r2 = answer(service, FakeRequest(mid=2))
    r3 = answer(service, FakeRequest(mid=3))
    assert (r1.code, r1.payload, r1.content_format) == (coap.Code.CHANGED, b"text one", 0)
    assert (r2.payload, r2.content_format) == (b"\x00\x01", 42)
    assert (r3.code, r3.payload, r3.content_format) == (coap.Code.CHANGED, b"", None)
    assert [(m.path, m.content_format) for m in store.list_inbox()] == [
        ("path-for-data", 50),
        ("path-for-data", None),
        ("path-for-data", None),
    ]


def test_a_retransmission_is_answered_alike_and_filed_once(
    service: DataService, store: Store, clock: Clock
) -> None:
    store.add_outbox("device-1", b"only once", "text")
    store.add_outbox("device-1", b"next", "text")
    first = answer(service, FakeRequest(mid=7))
    again = answer(service, FakeRequest(mid=7))
    assert first.payload == again.payload == b"only once"
    assert len(store.list_inbox()) == 1
    # Same message id from another peer or device: a different exchange.
    other_peer = answer(service, FakeRequest(mid=7, peer=("127.0.0.1", 40001)))
    assert other_peer.payload == b"next"
    assert len(store.list_inbox()) == 2
    # After EXCHANGE_LIFETIME the id may be reused for a new request.
    clock.now += EXCHANGE_LIFETIME_S + 1
    later = answer(service, FakeRequest(mid=7))
    assert later.payload == b""
    assert len(store.list_inbox()) == 3


def test_coaps_needs_credentials(store: Store) -> None:
    with pytest.raises(ValueError, match="needs a server certificate or PSK"):
        DataService(store, listen=["coaps://127.0.0.1:0"])
    with pytest.raises(ValueError, match="at least one endpoint"):
        DataService(store, listen=[])
