"""Sending, probing, measuring; on a crash, replaying and shrinking the window.

A run: start the target, warm it up with every seed as it is plus a short
mutated stream (so that every seed family has been through the server once),
read its RSS, then send the stream of the run's seed in batches (each batch
followed by a short bounded drain of the answers), probing liveness every
``probe_every`` datagrams with a valid request from a second socket (or DTLS
session) whose answer is checked, code and payload. At the end: a last probe,
the RSS again. The datagrams since the last good probe are the window; when
the server dies or a probe fails, the window is replayed against a fresh
server and, if that reproduces it, shrunk by delta debugging.
"""

from __future__ import annotations

import collections
import random
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from . import pdu
from .mutate import Datagram, Stream, clean_sequence
from .seeds import corpus
from .targets import Certs, Target

WAYS = ("udp", "dtls")
#: Probe answers must come within this (retransmitting each second).
PROBE_TIMEOUT_S = 5.0
#: After a failed probe, how long a dying server gets to exit.
EXIT_GRACE_S = 2.0


class SetupError(Exception):
    """The fuzzer cannot start: a missing module, a server that does not come up."""


class Way(Protocol):
    name: str
    sessions: int
    send_errors: int
    ended: int

    @property
    def max_datagram(self) -> int: ...

    def send(self, data: bytes) -> None: ...

    def receive(self, wait: float) -> list[bytes]: ...

    def renew(self) -> None: ...

    def close(self) -> None: ...


def open_way(target: Target, way: str) -> Way:
    if way == "udp":
        from .udp import UdpWay

        return UdpWay(*target.address("coap"))
    if way == "dtls":
        try:
            from .dtls import DtlsWay
        except ImportError as exc:
            raise SetupError(
                f"the DTLS way in needs pyOpenSSL (pip install pyopenssl): {exc}"
            ) from None

        certs = target.certs
        return DtlsWay(*target.address("coaps"), certs.cert, certs.key, certs.ca)
    raise ValueError(f"unknown way {way!r}; one of {', '.join(WAYS)}")


@dataclass
class Config:
    target: str = "api"
    way: str = "udp"
    seed: int = 1
    datagrams: int = 10_000
    batch: int = 8
    drain_s: float = 0.002
    probe_every: int = 500
    warmup: int = 2_000
    #: The warm-up sends every seed (1) or every n-th seed of each family.
    warmup_seed_step: int = 1
    rss_limit_kib: int = 1024
    shrink: bool = True
    max_shrink_tests: int = 60
    #: Datagrams kept for a replay when the window alone does not reproduce a crash.
    history: int = 20_000
    seconds: float | None = None


@dataclass
class Crash:
    """What went wrong, the window that led there, and what replaying it showed."""

    what: str
    window: list[Datagram]
    output_tail: str
    history: list[Datagram] = field(default_factory=list)
    reproduced: bool | None = None
    minimal: list[Datagram] = field(default_factory=list)
    replay_what: str = ""
    file: Path | None = None


@dataclass
class Result:
    config: Config
    sent: int = 0
    answers: int = 0
    codes: collections.Counter[str] = field(default_factory=collections.Counter)
    probes: int = 0
    sessions: int = 0
    ended: int = 0
    silent: int = 0
    send_errors: int = 0
    elapsed_s: float = 0.0
    warmup_sent: int = 0
    rss_start_kib: int = 0
    rss_before_kib: int = 0
    rss_after_kib: int = 0
    crash: Crash | None = None
    tracebacks: int = 0
    exceptions: dict[str, int] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)

    @property
    def rss_growth_kib(self) -> int:
        return self.rss_after_kib - self.rss_before_kib

    @property
    def ok(self) -> bool:
        return self.crash is None and not self.failures


class ProbeFailed(Exception):
    """The server did not answer the probe, or answered it wrongly."""


class Prober:
    """Valid requests from their own socket or session, answers checked."""

    def __init__(self, target: Target, way: str) -> None:
        self.target = target
        self.way_name = way
        self.way = open_way(target, way)
        self.count = 0
        self.mid = 0x4000

    def check(self) -> None:
        """One probe; ProbeFailed if it is not answered as it must be."""
        self.count += 1
        probe = self.target.probe(self.way_name, self.count)
        self.mid = (self.mid + 1) & 0xFFFF
        token = b"pr%06d" % (self.count % 1_000_000)
        datagram = probe.message(self.mid, token)
        answer = exchange(self.way, datagram, lambda a: a.token == token and a.code != 0)
        if answer is None:
            raise ProbeFailed(f"probe {self.count}: no answer in {PROBE_TIMEOUT_S:g} s")
        if answer.code != probe.code or answer.payload != probe.answer:
            raise ProbeFailed(
                f"probe {self.count}: answered {pdu.dotted(answer.code)} {answer.payload!r}, "
                f"expected {pdu.dotted(probe.code)} {probe.answer!r}"
            )

    def close(self) -> None:
        self.way.close()


def exchange(
    way: Way,
    datagram: bytes,
    match: Callable[[pdu.Answer], bool],
    timeout: float = PROBE_TIMEOUT_S,
    seen: Callable[[bytes], None] | None = None,
    resend_s: float = 1.0,
) -> pdu.Answer | None:
    """Send ``datagram`` (again every ``resend_s``) until an answer ``match``es; None at
    ``timeout``."""
    deadline = time.monotonic() + timeout
    next_send = 0.0
    while True:
        now = time.monotonic()
        if now >= deadline:
            return None
        if now >= next_send:
            way.send(datagram)
            next_send = now + resend_s
        for data in way.receive(min(0.05, deadline - now)):
            if seen is not None:
                seen(data)
            answer = pdu.decode(data)
            if answer is not None and match(answer):
                return answer


class Session:
    """A target and the fuzzing way into it, sending in paced batches."""

    def __init__(self, config: Config, certs: Certs) -> None:
        self.config = config
        self.target = Target(config.target, certs, dtls=config.way == "dtls")
        try:
            self.way = open_way(self.target, config.way)
            self.prober = Prober(self.target, config.way)
        except BaseException:
            self.target.stop()
            raise
        self.sent = 0
        self.answers = 0
        self.codes: collections.Counter[str] = collections.Counter()
        self.last_mid = 0
        self.silent = 0  # fuzzing sessions that stopped answering pings (then replaced)

    def send_batches(
        self, datagrams: Iterable[Datagram], after_batch: Callable[[list[Datagram]], bool]
    ) -> None:
        """Send in batches of ``config.batch``; ``after_batch`` returns False to stop."""
        limit = self.way.max_datagram
        batch: list[Datagram] = []
        for d in datagrams:
            self.way.send(d.data[:limit])
            if len(d.data) >= 4:
                self.last_mid = int.from_bytes(d.data[2:4], "big")
            self.sent += 1
            batch.append(d)
            if len(batch) >= self.config.batch:
                self._drain()
                if not after_batch(batch):
                    return
                batch = []
        if batch:
            self._drain()
            after_batch(batch)

    def _drain(self) -> None:
        for data in self.way.receive(self.config.drain_s):
            self._count(data)

    def _count(self, data: bytes) -> None:
        self.answers += 1
        answer = pdu.decode(data)
        self.codes["undecodable" if answer is None else pdu.dotted(answer.code)] += 1

    def check_way(self) -> None:
        """The fuzzing session still gets answers (a CON ping gets an RST); a DTLS session
        that went silent is replaced, counted in the way's ``sessions``."""
        for attempt in range(3):
            # Half the id space away from the stream's recent (sequential) ids, so that
            # libcoap does not take the ping for a duplicate of a fuzzed message.
            mid = (self.last_mid + 0x8000 + 101 * attempt) & 0xFFFF
            ping = pdu.Message(pdu.CON, pdu.EMPTY, mid).encode()
            answer = exchange(
                self.way,
                ping,
                lambda a, mid=mid: a.type == pdu.RST and a.mid == mid,  # type: ignore[misc]
                timeout=1.0,
                seen=self._count,
                resend_s=0.25,
            )
            if answer is not None:
                return
            if self.way.name == "dtls" and attempt == 1:
                from .dtls import DtlsWay

                assert isinstance(self.way, DtlsWay)
                self.silent += 1
                self.way.dead = True
                self.way.renew()
        raise ProbeFailed("the fuzzing session gets no answer to a ping")

    def dead(self) -> str | None:
        """Why the server is to be taken for dead or broken, or None."""
        status = self.target.exit_status()
        if status is not None:
            return _status_text(status)
        try:
            self.prober.check()
        except ProbeFailed as exc:
            deadline = time.monotonic() + EXIT_GRACE_S
            while time.monotonic() < deadline:
                status = self.target.exit_status()
                if status is not None:
                    return _status_text(status)
                time.sleep(0.05)
            return str(exc)
        return None

    def close(self) -> None:
        self.way.close()
        self.prober.close()
        self.target.stop()


def _status_text(status: int) -> str:
    if status < 0:
        import signal

        try:
            name = signal.Signals(-status).name
        except ValueError:
            name = f"signal {-status}"
        return f"the server died of {name}"
    return f"the server exited with status {status}"


def warmup_datagrams(seed: int, count: int, seed_step: int = 1) -> list[Datagram]:
    """Every seed (or every ``seed_step``-th of each family) as it is, then ``count``
    mutated datagrams of a stream of its own."""
    seeds = corpus()
    out: list[Datagram] = []
    taken: dict[str, int] = {}
    for i, s in enumerate(seeds):
        n = taken.get(s.family, 0)
        taken[s.family] = n + 1
        if n % seed_step == 0:
            out += clean_sequence(s, i)
    out += Stream(seed + 1_000_003, seeds).first(count)
    return out


def run(config: Config, certs: Certs, log: Callable[[str], None] = print) -> Result:
    """One fuzzing run; a crash is replayed (and shrunk) before returning."""
    result = Result(config)
    session = Session(config, certs)
    window: collections.deque[Datagram] = collections.deque()
    history: collections.deque[Datagram] = collections.deque(maxlen=max(config.history, 1))
    try:
        result.rss_start_kib = session.target.rss_kib()
        warm = warmup_datagrams(config.seed, config.warmup, config.warmup_seed_step)
        failure: list[str] = []

        def watch(batch: list[Datagram]) -> bool:
            window.extend(batch)
            history.extend(batch)
            status = session.target.exit_status()
            if status is not None:
                failure.append(_status_text(status))
                return False
            if len(window) >= config.probe_every:
                why = session.dead()
                if why is not None:
                    failure.append(why)
                    return False
                session.check_way()
                window.clear()
            return True

        session.send_batches(warm, watch)
        result.warmup_sent = session.sent
        if not failure:
            why = session.dead()
            if why is not None:
                failure.append(why)
        if not failure:
            session.check_way()
            window.clear()
            result.rss_before_kib = session.target.rss_kib()
            log(
                f"{config.target}/{config.way}: warm-up of {session.sent} datagrams; "
                f"RSS {result.rss_start_kib} -> {result.rss_before_kib} KiB"
            )
            session.sent = session.answers = 0
            session.codes.clear()
            start = time.monotonic()
            deadline = None if config.seconds is None else start + config.seconds
            next_report = start + 10.0

            def watch_main(batch: list[Datagram]) -> bool:
                nonlocal next_report
                if not watch(batch):
                    return False
                now = time.monotonic()
                if now >= next_report:
                    next_report = now + 10.0
                    rate = session.sent / (now - start)
                    log(
                        f"  {session.sent} sent, {session.answers} answers, {rate:,.0f}/s, "
                        f"RSS {session.target.rss_kib()} KiB"
                    )
                return deadline is None or now < deadline

            stream = Stream(config.seed)
            session.send_batches(_take(stream, config.datagrams), watch_main)
            result.elapsed_s = time.monotonic() - start
            if not failure:
                why = session.dead()
                if why is not None:
                    failure.append(why)
            if not failure:
                result.rss_after_kib = session.target.rss_kib()
        result.sent = session.sent
        result.answers = session.answers
        result.codes = session.codes
        result.probes = session.prober.count
        result.sessions = session.way.sessions
        result.ended = session.way.ended
        result.silent = session.silent
        result.send_errors = session.way.send_errors
        if failure:
            result.crash = Crash(
                failure[0], list(window), _tail(session.target.output(), 40), list(history)
            )
    finally:
        session.close()
    result.tracebacks = session.target.tracebacks
    result.exceptions = dict(session.target.process.exceptions)
    if result.tracebacks:
        shown = "\n".join("\n".join(tb) for tb in session.target.process.first_tracebacks)
        result.failures.append(
            f"the server logged {result.tracebacks} tracebacks; the first ones:\n{shown}"
        )
    if result.crash is None and result.rss_growth_kib >= config.rss_limit_kib:
        result.failures.append(
            f"RSS grew by {result.rss_growth_kib} KiB (limit {config.rss_limit_kib} KiB): "
            f"{result.rss_before_kib} -> {result.rss_after_kib} KiB"
        )
    if result.crash is not None:
        log(f"{config.target}/{config.way}: {result.crash.what}; replaying the window")
        confirm(config, certs, result.crash, log)
    return result


def _take(stream: Stream, count: int) -> Iterable[Datagram]:
    for d in stream:
        if d.index >= count:
            return
        yield d


def _tail(text: str, lines: int = 15) -> str:
    return "\n".join(text.splitlines()[-lines:])


def replay(config: Config, certs: Certs, datagrams: Sequence[Datagram]) -> tuple[str | None, str]:
    """Send ``datagrams`` to a fresh server; (why it is dead or None, its output)."""
    session = Session(config, certs)
    try:
        session.send_batches(datagrams, lambda batch: session.target.exit_status() is None)
        why = session.dead()
    finally:
        session.close()
    return why, session.target.output()


def confirm(config: Config, certs: Certs, crash: Crash, log: Callable[[str], None]) -> None:
    """Replay the window (then, if that is not enough, the longer history); if that
    reproduces the failure, shrink it (delta debugging)."""
    candidates = [crash.window]
    if len(crash.history) > len(crash.window):
        candidates.append(crash.history)
    for candidate in candidates:
        why, _ = replay(config, certs, candidate)
        if why is not None:
            break
        log(f"  replaying {len(candidate)} datagrams did not reproduce it")
    crash.reproduced = why is not None
    crash.replay_what = why or ""
    if why is None:
        return
    crash.window = candidate
    log(f"  reproduced with {len(candidate)} datagrams: {why}")
    crash.minimal = list(candidate)
    if config.shrink:
        tests = 0

        def fails(subset: list[Datagram]) -> bool:
            nonlocal tests
            tests += 1
            return replay(config, certs, subset)[0] is not None

        crash.minimal = ddmin(candidate, fails, config.max_shrink_tests)
        log(f"  shrunk to {len(crash.minimal)} datagrams in {tests} replays")


def ddmin(
    items: list[Datagram], fails: Callable[[list[Datagram]], bool], max_tests: int
) -> list[Datagram]:
    """Zeller's delta debugging, bounded: a smaller list that still ``fails``.

    The end of the window is tried first (most crashes need only the last few
    datagrams), then the classic complement-removal passes, keeping order.
    """
    tests = 0

    def test(subset: list[Datagram]) -> bool:
        nonlocal tests
        tests += 1
        return fails(subset)

    current = list(items)
    for size in (1, 2, 4, 8, 16, 32, 64):
        if size >= len(current) or tests >= max_tests:
            break
        if test(current[-size:]):
            current = current[-size:]
            break
    n = 2
    while len(current) >= 2 and tests < max_tests:
        chunk = -(-len(current) // n)
        reduced = False
        for start in range(0, len(current), chunk):
            if tests >= max_tests:
                break
            complement = current[:start] + current[start + chunk :]
            if complement and test(complement):
                current = complement
                n = max(n - 1, 2)
                reduced = True
                break
        if not reduced:
            if n >= len(current):
                break
            n = min(len(current), n * 2)
    return current


def report(result: Result) -> str:
    """The run in a few lines; a crash with its datagrams and the command that replays them."""
    c = result.config
    rate = result.sent / result.elapsed_s if result.elapsed_s else 0.0
    phase = " (stopped in the warm-up)" if result.crash is not None and not result.elapsed_s else ""
    lines = [
        f"target {c.target}, way {c.way}, seed {c.seed}{phase}: {result.sent:,} datagrams sent "
        f"(+{result.warmup_sent:,} warm-up) in {result.elapsed_s:.1f} s ({rate:,.0f}/s), "
        f"{result.answers:,} answers, {result.probes} probes, {result.sessions} session(s) "
        f"({result.ended} ended by the server, {result.silent} gone silent), "
        f"{result.send_errors} send errors",
        "answer codes: " + ", ".join(f"{k} {v}" for k, v in sorted(result.codes.items())),
        f"RSS: {result.rss_start_kib} KiB at start, {result.rss_before_kib} KiB after warm-up, "
        f"{result.rss_after_kib} KiB at the end ({result.rss_growth_kib:+d} KiB)",
    ]
    if result.exceptions:
        lines.append(
            "server exceptions: "
            + "; ".join(f"{n} x {text}" for text, n in sorted(result.exceptions.items()))
        )
    lines += result.failures
    crash = result.crash
    if crash is not None:
        lines.append(f"FAILURE: {crash.what}")
        lines.append("server output (tail):\n" + crash.output_tail)
        if crash.reproduced:
            shown = crash.minimal or crash.window
            lines.append(
                f"reproduced on a fresh server ({crash.replay_what}) with these "
                f"{len(shown)} datagrams (of a window of {len(crash.window)}):"
            )
            for d in shown:
                lines.append(f"  # index {d.index} step {d.step} seed {d.seed} {d.family} {d.how}")
                lines.append(f"  {d.data.hex()}")
            lines.append("reproduce with:")
            lines.append("  " + replay_command(c, shown, crash.file))
        else:
            lines.append(
                f"replaying the window of {len(crash.window)} datagrams (and the last "
                f"{len(crash.history)}) did not reproduce it (timing, or older state); to "
                f"send the whole stream up to there again: python -m fuzz --target {c.target} "
                f"--way {c.way} --seed {c.seed} --datagrams "
                f"{crash.window[-1].index + 1 if crash.window else 0}"
            )
    return "\n".join(lines)


def replay_command(config: Config, datagrams: Sequence[Datagram], file: Path | None = None) -> str:
    """The command that replays ``datagrams`` (in hex, or from ``file`` when they are many)."""
    command = f"python -m fuzz replay --target {config.target} --way {config.way}"
    if file is not None and len(datagrams) > 20:
        return f"{command} --file {file}"
    return command + " " + " ".join(d.data.hex() for d in datagrams)


def write_crash(result: Result, directory: Path) -> Path | None:
    """The datagrams that reproduce a crash (shrunk if it was), one hex line each."""
    crash = result.crash
    if crash is None:
        return None
    c = result.config
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"crash-{c.target}-{c.way}-seed{c.seed}.hex"
    lines = [f"# {crash.what}", f"# reproduced: {crash.reproduced} {crash.replay_what}"]
    for d in crash.minimal or crash.window:
        lines.append(f"# index {d.index} step {d.step} seed {d.seed} {d.family} {d.how}")
        lines.append(d.data.hex())
    path.write_text("\n".join(lines) + "\n")
    crash.file = path
    return path


def replay_main(
    config: Config, certs: Certs, hexes: Sequence[str], log: Callable[[str], None] = print
) -> bool:
    """``python -m fuzz replay``: send the datagrams to a fresh server; True if it survives."""
    datagrams = [Datagram(i, -1, -1, "replay", "", bytes.fromhex(h)) for i, h in enumerate(hexes)]
    why, output = replay(config, certs, datagrams)
    if why is None:
        log(f"{config.target}/{config.way}: the server survived {len(datagrams)} datagrams")
        return True
    log(f"{config.target}/{config.way}: {why}\nserver output (tail):\n{_tail(output)}")
    return False


def pick_seed() -> int:
    return random.SystemRandom().randrange(1 << 31)


def stream_digest(seed: int, count: int) -> str:
    """A digest of the first ``count`` datagrams of ``seed``'s stream (determinism check)."""
    import hashlib

    h = hashlib.sha256()
    for d in Stream(seed).first(count):
        h.update(len(d.data).to_bytes(2, "big") + d.data)
    return h.hexdigest()


def default_certs_dir() -> Path:
    return Path("fuzz-certs")
