"""The fuzzer (``fuzz/``), a bounded run: both targets, both ways in, fixed seeds.

Each run starts its server as a child process, sends a third of the seeds of
every family once (the warm-up) and a stream of mutated datagrams, probes
liveness on the way, and must end with the server alive, answering its probe
with the right code and payload, RSS grown by less than 1 MiB after the
warm-up, and no traceback in its log other than the known ones below. The
long run is ``python -m fuzz`` (README, "Fuzzing").
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
from helpers.certs import CertFiles

sys.path.append(str(Path(__file__).resolve().parents[1]))

from fuzz import pdu
from fuzz.mutate import Datagram, Stream
from fuzz.runner import Config, ddmin, replay, report, run, stream_digest
from fuzz.seeds import corpus, families
from fuzz.targets import Certs

#: Handler errors (5.00 answers) the fuzzer has found and that are not fixed yet; a
#: new kind fails the test.
KNOWN_SERVER_ERRORS: frozenset[str] = frozenset()

#: What the fuzzer found in the API server once libcoap's Block1 reassembly was off
#: (shrunk with ddmin); each must now leave it alive, without a traceback.
FOUND = {
    # Block-wise FETCHes of the observable "obs" (one an ACK with Observe 0), then a
    # POST that notifies: the block layer answered the notification 4.08, and libcoap
    # 4.3.1 freed the observer and then used it (SIGSEGV).
    "an error answer to a notification": (
        "46051618967654f1a495b36f6273112ad10209d11421ff303030303030307c303030303030387c"
        "303030303031367c303030303032347c",
        "46051619967654f1a495b36f6273112ad10211ff30",
        "610534afc660536f6273113cd10216ffa0",
        "440535f449771a38b36f6273d10304d414ffffffffff3030300d3030307c303030303030387c3030"
        "30303031367c303030303032347c303030303033327c303030303034307c30303030303438",
        "42023606ffa1b36f6273ff6368616e676564",
    ),
    # An observer of 16-byte Block2 blocks, then a change: libcoap 4.3 puts its own
    # Block2 into the notification, and a second one was refused (5.00, a traceback).
    "a notification to an observer of small blocks": (
        "420100016f6260536f627345733d33303080",
        "42020002706fb36f6273ff78",
    ),
}

DATAGRAMS = 1000
#: Under AddressSanitizer (scripts/asan) RSS says nothing: freed memory waits in its
#: quarantine. The run still must leave the server alive, answering, without tracebacks.
UNDER_ASAN = "asan" in os.environ.get("LD_PRELOAD", "")
SEED = 20240


def test_encoder_writes_every_option_form() -> None:
    # The first of the two datagrams that crashed libcoap 4.3.1's Block1 reassembly.
    message = pdu.Message(
        pdu.CON,
        pdu.POST,
        0x44CA,
        bytes.fromhex("1799"),
        ((pdu.OBSERVE, b""), (pdu.URI_PATH, b"x"), (pdu.BLOCK1, b"\x0b"), (28, b"\x0a\xde\x4d")),
        bytes(1024),
    )
    assert message.encode()[:17].hex() == "420244ca1799605178d1030b130ade4dff"
    assert pdu.option_header(12, 12) == b"\xcc"
    assert pdu.option_header(13, 268) == b"\xdd\x00\xff"
    assert pdu.option_header(269, 65535 + 269) == b"\xee\x00\x00\xff\xff"
    decoded = pdu.decode(message.encode())
    assert decoded is not None
    assert decoded.options == message.options and decoded.payload == message.payload
    assert pdu.decode(b"\x40\x01\x00\x01\xf0") is None  # delta nibble 15 without a marker


def test_corpus_covers_every_family_method_and_token_length() -> None:
    seeds = corpus()
    assert set(families(seeds)) == {
        "method",
        "code",
        "option",
        "framing",
        "observe",
        "block2",
        "block1",
        "dup",
    }
    messages = [m for s in seeds for m in s.messages if m.raw is None]
    assert {m.code for m in messages} >= set(pdu.METHODS) | set(pdu.SIGNALLING) | {pdu.EMPTY}
    assert {len(m.token) for m in messages} == set(range(9))
    encoded = [m.encode() for m in messages]
    assert any(b"\xd0" <= d[4 + (d[0] & 15) : 5 + (d[0] & 15)] < b"\xe0" for d in encoded)
    assert any(bytes([0xEE]) in d for d in encoded)  # 14/14 extended delta and length


def test_stream_is_deterministic() -> None:
    assert stream_digest(SEED, 3000) == stream_digest(SEED, 3000)
    assert stream_digest(SEED, 3000) != stream_digest(SEED + 1, 3000)
    first = Stream(SEED).first(3000)
    assert [d.index for d in first] == list(range(3000))
    assert len({d.family for d in first}) == len(families(corpus()))
    assert sum(d.how != "clean" for d in first) > 1000


def test_ddmin_finds_the_two_datagrams_that_matter() -> None:
    window = Stream(SEED).first(64)
    needed = {window[10].index, window[50].index}
    tests: list[int] = []

    def fails(subset: list[Datagram]) -> bool:
        tests.append(len(subset))
        return needed <= {d.index for d in subset}

    assert [d.index for d in ddmin(window, fails, 100)] == sorted(needed)
    assert len(tests) <= 100


def _run(certs: CertFiles, target: str, way: str) -> None:
    config = Config(
        target=target,
        way=way,
        seed=SEED,
        datagrams=DATAGRAMS,
        warmup=0,
        warmup_seed_step=3,
        probe_every=250,
        shrink=False,
    )
    result = run(config, Certs(certs.directory), log=lambda text: None)
    text = report(result)
    print(text)
    assert result.crash is None, text
    assert result.sent == DATAGRAMS and result.warmup_sent > 0, text
    assert result.answers > DATAGRAMS // 4, text
    assert result.probes >= 4, text
    if not UNDER_ASAN:
        assert result.rss_growth_kib < config.rss_limit_kib, text
    unknown = set(result.exceptions) - KNOWN_SERVER_ERRORS
    assert not unknown, text


@pytest.mark.parametrize("target", ["serve", "api"])
def test_fuzz_udp(certs: CertFiles, target: str) -> None:
    _run(certs, target, "udp")


@pytest.mark.needs_dtls
@pytest.mark.parametrize("target", ["serve", "api"])
def test_fuzz_dtls(certs: CertFiles, target: str) -> None:
    pytest.importorskip("OpenSSL", reason="the DTLS way in needs pyOpenSSL")
    _run(certs, target, "dtls")


@pytest.mark.parametrize("name", sorted(FOUND))
def test_found_sequences_leave_the_api_server_alive(certs: CertFiles, name: str) -> None:
    config = Config(target="api", way="udp", seed=SEED, datagrams=0, shrink=False)
    datagrams = [
        Datagram(index, 0, 0, "found", "replay", bytes.fromhex(text))
        for index, text in enumerate(FOUND[name])
    ]
    why, output = replay(config, Certs(certs.directory), datagrams)
    assert why is None, output
    assert "Traceback" not in output, output
