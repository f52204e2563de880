"""Run every benchmark scenario and write results.md and results.png.

    python -I benchmarks/run.py [--quick] [--rounds N] [--out DIR] [--only KEY ...]
                                [--before PYTHON [--before-label TEXT]]

Each measurement is one subprocess (a contender: the C reference client
``cclient.c``, compiled here; ``pyclient.py`` with ``Session.request`` or the
handler loop; ``aioclient.py``) that reports JSON: operations, wall seconds and
its own CPU seconds around the timed loop after a warm-up, and its RSS. The
servers are started fresh for every measurement on free loopback ports.
Contenders alternate within each round (the order rotates from round to
round); the table gives medians over the rounds, the min-max range, and the
median over rounds of each round's ratio to C. Default: 9 rounds (memory
scenarios: at most 5). ``--quick`` uses tiny counts
and one round: it checks that everything runs (CI), its numbers mean nothing.

Two shapes beside the throughput scenarios. "Send in handler" (in get_udp and
get_psk): the response handler builds a fresh PDU with a Uri-Path and sends the
next request itself, the main loop runs run_once() until can_exit(), as libcoap's
C client samples do; the C client does the same (``cclient -H``), and the handler
loop sending the same PDU from outside the handler is measured beside them. "First
request" (keys first_psk, first_pki): the DTLS client sample's whole run, N times:
a new Context and session, the handshake, one CON POST with a 16-byte payload, its
answer, close; in ms and CPU ms a run.

The service-ingest section (key ``ingest``) runs ``service_ingest.py`` as a
subprocess: 50 devices over DTLS-PKI against the data service and against the
same server without storage, at most 3 rounds of 10 s (``--quick``: 4 devices,
0.5 s, one round), and reports its table and target in results.md.

Before and after a change (``--before PYTHON``, see compare.py): every contender that
runs the project's Python code (pyclient.py, own_server.py) is also measured with
PYTHON, an interpreter whose libcoap_py is the baseline, as "<contender> (before)", in
the same rounds; results.md gets a "Before and after" section. The service-ingest
section stays after only.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))  # python -I leaves the script's directory out

import compare  # noqa: E402

PSK_KEY = "libcoap-py-bench-key"
PSK_HINT = "libcoap-py-bench"
BIG = 1 << 20

C, REQUEST, LOOP, AIO, PY = "C", "Session.request", "handler loop", "aiocoap", "libcoap-py"
# Yardsticks: the C client with this many ns of busy work after each answer (cclient -x).
C_PLUS = {"C + 2 us busy a request": 2000, "C + 5 us busy a request": 5000}
C_SERVER, OWN_SERVER, AIO_SERVER = "coap-server-notls", "own server", "aiocoap server"
# libcoap_py.aio (asyncclient.py; own_server.py --async), on asyncio's loop and uvloop's.
ASYNC, ASYNC_UV = "aio request", "aio request, uvloop"
ASYNC_SERVER, ASYNC_SERVER_UV = "own aio server", "own aio server, uvloop"
ASYNC_CLIENTS = (ASYNC, ASYNC_UV)
# The in-handler shape (cclient -H, pyclient inhandler), and the handler loop sending the
# same PDU (with a Uri-Path) from outside the handler; all three GET IN_HANDLER_PATH.
C_IN, LOOP_PATH = "C, send in handler", "handler loop, Uri-Path"
LOOP_IN = "handler loop, send in handler"
IN_HANDLER = (C_IN, LOOP_PATH, LOOP_IN)
IN_HANDLER_PATH = "time"  # coap-server's clock resource: a 15-byte answer
# The contenders that run the project's Python code: --before measures them twice.
PYTHON_CONTENDERS = (REQUEST, LOOP, LOOP_PATH, LOOP_IN, PY, OWN_SERVER)


# ---------------------------------------------------------------------------
# scenarios


@dataclass
class Scenario:
    key: str
    title: str
    kind: str  # "client" (throughput), "server" (throughput), "memory" (RSS), "first" (ms/run)
    mode: str  # cclient/pyclient mode
    server: str  # "notls", "openssl", or "" (the contender is a server)
    n: int
    contenders: tuple[str, ...]
    secure: str = ""  # "", "psk", "pki"
    path: str = ""
    warmup: int = 100
    sessions: int = 1
    setup: str = ""  # "big": PUT 1 MiB to /big first; "bench": PUT 64 bytes to /bench
    scale: dict[str, float] = field(default_factory=dict)  # n multiplier per contender
    unit: str = "req/s"
    max_rounds: int = 0  # when set: at most this many rounds (memory: RSS barely moves)
    body: int = 0  # when set: the request payload's size (cclient/pyclient -b)


SEQ = (C, REQUEST, LOOP)
SCENARIOS = [
    Scenario("get_udp", "sequential CON GET, UDP", "client", "get", "notls", 10000,
             (*SEQ, *C_PLUS, AIO, *IN_HANDLER, *ASYNC_CLIENTS), scale={AIO: 0.1}),
    Scenario("get_psk", "sequential CON GET, DTLS-PSK", "client", "get", "openssl", 10000,
             (*SEQ, *C_PLUS, *IN_HANDLER, *ASYNC_CLIENTS), secure="psk"),
    Scenario("get_pki", "sequential CON GET, DTLS-PKI", "client", "get", "openssl", 10000,
             SEQ, secure="pki"),
    Scenario("inflight64", "64 in flight (64 sessions), UDP", "client", "inflight", "notls",
             100000, (C, LOOP, AIO, *ASYNC_CLIENTS), sessions=64, scale={AIO: 0.05}),
    Scenario("post1k", "sequential CON POST 1 KiB, UDP", "client", "post", "notls", 10000,
             (*SEQ, AIO), path="post", scale={AIO: 0.1}),
    Scenario("block1m", "1 MiB block-wise GET, UDP", "client", "get", "notls", 15,
             (*SEQ, AIO), path="big", warmup=1, setup="big", scale={AIO: 0.2},
             unit="GET/s"),
    Scenario("hs_psk", "DTLS-PSK handshakes (session, GET, close)", "client", "handshake",
             "openssl", 1000, SEQ, secure="psk", warmup=20, unit="hs/s"),
    Scenario("hs_pki", "DTLS-PKI handshakes (session, GET, close)", "client", "handshake",
             "openssl", 300, SEQ, secure="pki", warmup=10, unit="hs/s"),
    Scenario("first_psk", "first request of a fresh DTLS-PSK session", "first", "first",
             "openssl", 300, SEQ, secure="psk", path="post", body=16, warmup=10,
             unit="ms/run"),
    Scenario("first_pki", "first request of a fresh DTLS-PKI session", "first", "first",
             "openssl", 100, SEQ, secure="pki", path="post", body=16, warmup=5,
             unit="ms/run"),
    Scenario("server", "server throughput, GET /bench (64-byte body)",
             "server", "inflight", "", 100000,
             (C_SERVER, OWN_SERVER, AIO_SERVER, ASYNC_SERVER, ASYNC_SERVER_UV),
             path="bench", sessions=16, setup="bench", scale={AIO_SERVER: 0.05}),
    Scenario("idle1000", "RSS of 1,000 idle DTLS-PSK sessions", "memory", "idle", "openssl",
             1000, (C, PY), secure="psk", unit="MiB", max_rounds=5),
    Scenario("growth", "RSS growth over 100,000 GETs after warm-up, UDP", "memory", "growth",
             "notls", 100000, SEQ, warmup=2000, unit="MiB", max_rounds=5),
]  # fmt: skip

# This VM's timings move by 10-30% from second to second (other guests on the host):
# many short rounds, each ratio taken within its round, keep the medians steady.
ROUNDS = 9
QUICK_N = {"block1m": 1, "hs_psk": 5, "hs_pki": 3, "idle1000": 20, "growth": 1000,
           "first_psk": 5, "first_pki": 3}  # fmt: skip

# The service-ingest section (service_ingest.py): its own rounds, each ~15 s per server.
INGEST = "ingest"
INGEST_ARGS = ["--devices", "50", "--seconds", "10"]
INGEST_QUICK_ARGS = ["--devices", "4", "--seconds", "0.5", "--rounds", "1"]
INGEST_MAX_ROUNDS = 3


# ---------------------------------------------------------------------------
# processes


def free_port_pair() -> int:
    """A port P with P and P+1 free for UDP on 127.0.0.1 (coap-server binds both)."""
    for _ in range(50):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        if port >= 65535:
            continue
        try:
            with (
                socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as a,
                socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as b,
            ):
                a.bind(("127.0.0.1", port))
                b.bind(("127.0.0.1", port + 1))
            return port
        except OSError:
            continue
    raise RuntimeError("no free UDP port pair on 127.0.0.1")


def coap_ping(port: int, timeout: float = 0.2) -> bool:
    """An empty CON (CoAP ping); any answer (RST) means the server is up."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(timeout)
        try:
            s.sendto(b"\x40\x00\x12\x34", ("127.0.0.1", port))
            s.recvfrom(64)
            return True
        except OSError:
            return False


def cpu_ticks(pid: int) -> int:
    """utime + stime of a process, in clock ticks."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


class Server:
    """A server subprocess on 127.0.0.1:port, stopped on exit."""

    def __init__(self, argv: list[str], port: int, log: Path) -> None:
        self.argv, self.port, self.log = argv, port, log
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Server:
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                self.argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
            )
        deadline = time.monotonic() + 15
        while not coap_ping(self.port):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"server did not come up: {' '.join(self.argv)}")
        return self

    def stop(self) -> None:
        proc = self.proc
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)

    def __exit__(self, *exc: object) -> None:
        self.stop()


# ---------------------------------------------------------------------------
# the harness


class Bench:
    def __init__(self, args: argparse.Namespace, work: Path) -> None:
        self.args = args
        self.work = work
        self.quick: bool = args.quick
        self.errors: list[str] = []
        self.cclient, self.c_pkg, self.c_version = build_cclient(work)
        from libcoap_py import certs

        self.certs = certs.init_dir(work / "certs")
        self.python = sys.executable
        # --before: the baseline's interpreter, and which code each side imports.
        self.before: str | None = args.before
        self.packages: tuple[compare.Package, compare.Package] | None = None
        if args.before:
            self.packages = (
                compare.probe(args.before, args.before_label),
                compare.probe(self.python),
            )
            if self.packages[0].directory == self.packages[1].directory:
                raise SystemExit(f"--before {args.before} imports this run's libcoap_py")

    def with_twins(self, contenders: list[str], round_: int = 0) -> list[str]:
        """With --before, each Python contender next to its "(before)" twin: the twin
        second in even rounds, first in odd ones. Without, the contenders as they are."""
        if not self.before:
            return contenders
        return list(compare.with_before(tuple(contenders), PYTHON_CONTENDERS, round_ % 2 == 1))

    def python_for(self, contender: str) -> str:
        """The interpreter of a Python contender: --before's for the "(before)" ones."""
        return self.before if self.before and compare.is_before(contender) else self.python

    # -- servers ------------------------------------------------------------------------

    def c_server(self, kind: str, port: int) -> Server:
        if kind == "notls":
            exe = shutil.which("coap-server-notls") or shutil.which("coap-server-openssl")
            argv = [str(exe), "-A", "127.0.0.1", "-p", str(port), "-d", "10"]
        else:
            exe = shutil.which("coap-server-openssl")
            c = self.certs
            argv = [
                str(exe), "-A", "127.0.0.1", "-p", str(port), "-d", "10",
                "-k", PSK_KEY, "-h", PSK_HINT,
                "-c", str(c["server_cert"]), "-j", str(c["server_key"]), "-C", str(c["ca"]),
            ]  # fmt: skip
        return Server(argv, port, self.work / "servers.log")

    def server_for(self, sc: Scenario, contender: str, port: int) -> Server:
        if sc.kind != "server":
            return self.c_server(sc.server, port)
        if contender == C_SERVER:
            return self.c_server("notls", port)
        base = compare.base(contender)
        script = "aio_server.py" if base == AIO_SERVER else "own_server.py"
        argv = [self.python_for(contender), "-I", str(HERE / script), str(port)]
        if base in (ASYNC_SERVER, ASYNC_SERVER_UV):
            argv += ["--async", *(["--uvloop"] if base == ASYNC_SERVER_UV else [])]
        return Server(argv, port, self.work / "servers.log")

    def setup(self, sc: Scenario, port: int) -> None:
        """Give coap-server's dynamic resources their bodies (libcoap-py, block-wise)."""
        if not sc.setup:
            return
        import libcoap_py as coap

        path, body = ("big", os.urandom(BIG)) if sc.setup == "big" else ("bench", b"x" * 64)
        with coap.Context() as ctx:
            r = ctx.client_session(f"coap://127.0.0.1:{port}").request(
                "PUT", path, body, timeout=60
            )
            if coap.Code(r.code).class_ != 2:
                raise RuntimeError(f"setup PUT /{path} answered {coap.Code(r.code).dotted}")

    # -- one measurement ----------------------------------------------------------------

    def count(self, sc: Scenario, contender: str) -> tuple[int, int]:
        if self.quick:
            n = QUICK_N.get(sc.key, 200)
            return n, min(sc.warmup, 10)
        return max(1, int(sc.n * sc.scale.get(compare.base(contender), 1.0))), sc.warmup

    def argv(self, sc: Scenario, contender: str, uri: str) -> list[str]:
        n, warmup = self.count(sc, contender)
        python, contender = self.python_for(contender), compare.base(contender)
        opts = ["-w", str(warmup), "-s", str(sc.sessions)]
        path = IN_HANDLER_PATH if contender in IN_HANDLER else sc.path
        if path:
            opts += ["-P", path]
        if sc.body:
            opts += ["-b", str(sc.body)]
        if sc.secure == "psk":
            opts += ["-k", PSK_KEY]
        elif sc.secure == "pki":
            c = self.certs
            opts += ["-c", str(c["cert"]), "-j", str(c["key"]), "-C", str(c["ca"])]
        common = [sc.mode, uri, str(n), *opts]
        if contender in (C, C_SERVER, OWN_SERVER, AIO_SERVER, ASYNC_SERVER, ASYNC_SERVER_UV):
            return [str(self.cclient), *common]
        if contender in C_PLUS:
            return [str(self.cclient), *common, "-x", str(C_PLUS[contender])]
        if contender == C_IN:
            return [str(self.cclient), *common, "-H"]
        if contender == AIO:
            return [self.python, "-I", str(HERE / "aioclient.py"), *common]
        if contender in ASYNC_CLIENTS:
            uv = ["--uvloop"] if contender == ASYNC_UV else []
            return [self.python, "-I", str(HERE / "asyncclient.py"), *common, *uv]
        api = {REQUEST: "request", LOOP_IN: "inhandler"}.get(contender, "loop")
        return [python, "-I", str(HERE / "pyclient.py"), api, *common]

    def measure(self, sc: Scenario, contender: str) -> dict[str, Any] | None:
        port = free_port_pair()
        uri_port = port + 1 if sc.secure else port
        uri = f"{'coaps' if sc.secure else 'coap'}://127.0.0.1:{uri_port}"
        argv = self.argv(sc, contender, uri)
        try:
            with self.server_for(sc, contender, port) as server:
                if sc.kind != "server" or contender == C_SERVER:
                    self.setup(sc, port)
                assert server.proc is not None
                ticks = cpu_ticks(server.proc.pid)
                done = subprocess.run(argv, capture_output=True, text=True, timeout=300)
                server_cpu = (cpu_ticks(server.proc.pid) - ticks) / os.sysconf("SC_CLK_TCK")
            if done.returncode != 0:
                raise RuntimeError(f"exit {done.returncode}: {done.stderr.strip()[-2000:]}")
            result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
            if result.get("failures"):  # a non-2.xx answer: the numbers would be wrong
                raise RuntimeError(f"{result['failures']} requests failed (not 2.xx)")
            result["server_cpu"] = server_cpu
            # The server also answered the client's warm-up.
            result["server_ops"] = result["ops"] + max(self.count(sc, contender)[1], sc.sessions)
            return result
        except Exception as exc:  # report, go on with the other measurements
            message = f"{sc.key} / {contender}: {exc}\n  command: {' '.join(argv)}"
            print("ERROR " + message, file=sys.stderr, flush=True)
            self.errors.append(message)
            return None

    # -- rounds -------------------------------------------------------------------------

    def run(self, scenarios: list[Scenario], rounds: int) -> dict[str, dict[str, list[Any]]]:
        """results[scenario][contender] = one dict (or None) per round."""
        results: dict[str, dict[str, list[Any]]] = {}
        for sc in scenarios:
            started = time.monotonic()
            per = results.setdefault(sc.key, {c: [] for c in self.with_twins([*sc.contenders])})
            for r in range(min(rounds, sc.max_rounds or rounds)):
                order = list(sc.contenders)
                order = order[r % len(order) :] + order[: r % len(order)]
                for contender in self.with_twins(order, r):
                    per[contender].append(self.measure(sc, contender))
                # Same-round ratios need every contender's result of this round.
            took = time.monotonic() - started
            done = min(rounds, sc.max_rounds or rounds)
            print(f"{sc.key:10s} {done} round(s) in {took:5.1f} s: " + summary(sc, per), flush=True)
        return results


def run_ingest(bench: Bench, rounds: int) -> dict[str, Any] | None:
    """service_ingest.py in a subprocess; its JSON (table lines, target, every
    measurement), or None when it produced none. Failed measurements go to bench.errors."""
    out = bench.work / "ingest.json"
    extra = INGEST_QUICK_ARGS if bench.quick else [*INGEST_ARGS, "--rounds",
                                                   str(min(rounds, INGEST_MAX_ROUNDS))]  # fmt: skip
    argv = [bench.python, "-I", str(HERE / "service_ingest.py"), *extra, "--json", str(out)]
    started = time.monotonic()
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=3600)
    except subprocess.TimeoutExpired:
        bench.errors.append(f"{INGEST}: no result within an hour\n  command: {' '.join(argv)}")
        return None
    data: dict[str, Any] | None = json.loads(out.read_text()) if out.is_file() else None
    if done.returncode != 0 or data is None:
        problems = [line for line in done.stderr.splitlines() if line.startswith("ERROR")]
        why = "; ".join(problems) or done.stderr.strip()[-2000:] or f"exit {done.returncode}"
        message = f"{INGEST}: {why}\n  command: {' '.join(argv)}"
        print("ERROR " + message, file=sys.stderr, flush=True)
        bench.errors.append(message)
    if data is not None:
        took = time.monotonic() - started
        rates = ", ".join(
            f"{key} {row['rate'][0]:.4g}" if row else f"{key} failed"
            for key, row in data["summary"].items()
        )
        print(f"{INGEST:10s} {data['args']['rounds']} round(s) in {took:5.1f} s: {rates}",
              flush=True)  # fmt: skip
    return data


def build_cclient(work: Path) -> tuple[Path, str, str]:
    """Compile cclient.c against libcoap 4.3 with cc and pkg-config."""
    cc = os.environ.get("CC", "cc")
    for pkg in ("libcoap-3-openssl", "libcoap-3", "libcoap-3-gnutls", "libcoap-3-mbedtls",
                "libcoap-3-notls"):  # fmt: skip
        flags = subprocess.run(
            ["pkg-config", "--cflags", "--libs", pkg], capture_output=True, text=True
        )
        if flags.returncode == 0:
            break
    else:
        raise SystemExit("no libcoap-3 pkg-config file: the C client needs libcoap 4.3")
    version = subprocess.run(
        ["pkg-config", "--modversion", pkg], capture_output=True, text=True
    ).stdout.strip()
    out = work / "cclient"
    subprocess.run(
        [cc, "-O2", "-o", str(out), str(HERE / "cclient.c"), *flags.stdout.split()], check=True
    )
    return out, pkg, version


# ---------------------------------------------------------------------------
# numbers


def value(sc: Scenario, res: dict[str, Any]) -> float:
    """The scenario's headline number of one measurement."""
    if sc.kind == "memory":
        return float(res["rss_after_kib"] - res["rss_before_kib"]) / 1024
    return float(res["ops"] / res["wall"]) if res["wall"] > 0 else float("nan")


def kib(sc: Scenario, res: dict[str, Any]) -> float:
    """The headline number in KiB (memory scenarios: MiB)."""
    return value(sc, res) * 1024


def rss_after(sc: Scenario, res: dict[str, Any]) -> float:
    """The process's whole RSS at the end, MiB (interpreter included)."""
    return float(res["rss_after_kib"]) / 1024


def ms_per_op(sc: Scenario, res: dict[str, Any]) -> float:
    """Wall milliseconds per operation (first-request scenarios: per run)."""
    return float(res["wall"] / res["ops"] * 1e3)


def cpu_ms(sc: Scenario, res: dict[str, Any]) -> float:
    """The client's CPU milliseconds per operation."""
    return float(res["cpu"] / res["ops"] * 1e3)


def sleeps(sc: Scenario, res: dict[str, Any]) -> float:
    """Voluntary context switches per operation: waits that slept (-1: not reported)."""
    return float(res["vcsw"] / res["ops"]) if "vcsw" in res else -1.0


def cpu_us(sc: Scenario, res: dict[str, Any]) -> float:
    """CPU microseconds per operation: the client's own, or the server's."""
    if sc.kind == "server":
        return float(res["server_cpu"] / res["server_ops"] * 1e6)
    return float(res["cpu"] / res["ops"] * 1e6)


def median_ratio(per: dict[str, list[Any]], a: str, b: str, fn: Callable[..., float],
                 sc: Scenario) -> float | None:  # fmt: skip
    """Median over rounds of fn(a) / fn(b) within the same round."""
    ratios = []
    for ra, rb in zip(per.get(a, []), per.get(b, [])):
        if ra is not None and rb is not None:
            vb = fn(sc, rb)
            if vb:
                ratios.append(fn(sc, ra) / vb)
    return statistics.median(ratios) if ratios else None


def stats(
    sc: Scenario, runs: list[Any], fn: Callable[..., float]
) -> tuple[float, float, float] | None:
    values = [fn(sc, r) for r in runs if r is not None]
    if not values:
        return None
    return statistics.median(values), min(values), max(values)


def summary(sc: Scenario, per: dict[str, list[Any]]) -> str:
    parts = []
    fn = ms_per_op if sc.kind == "first" else value
    for contender, runs in per.items():
        st = stats(sc, runs, fn)
        parts.append(f"{contender} {st[0]:.4g}" if st else f"{contender} failed")
    return ", ".join(parts) + (" (ms/run)" if sc.kind == "first" else "")


def fmt(x: float | None, digits: int = 2) -> str:
    return "n/a" if x is None else f"{x:.{digits}f}"


def num(x: float) -> str:
    return f"{x:,.0f}" if x >= 100 else f"{x:.3g}"


# ---------------------------------------------------------------------------
# targets


@dataclass
class Target:
    text: str
    measured: float | None
    limit: float
    at_least: bool

    @property
    def met(self) -> bool | None:
        if self.measured is None:
            return None
        return self.measured >= self.limit if self.at_least else self.measured <= self.limit


def targets(
    results: dict[str, dict[str, list[Any]]], ingest: dict[str, Any] | None = None
) -> list[Target]:
    by = {sc.key: sc for sc in SCENARIOS}
    out: list[Target] = []

    def ratio(key: str, a: str, b: str, fn: Callable[..., float]) -> float | None:
        if key not in results:
            return None
        return median_ratio(results[key], a, b, fn, by[key])

    for key in ("get_udp", "get_psk"):
        for who in (REQUEST, LOOP):
            out.append(Target(f"{by[key].title}: {who} throughput >= 0.95 x C",
                              ratio(key, who, C, value), 0.95, True))  # fmt: skip
    for key in ("get_udp", "get_psk"):
        for who in (REQUEST, LOOP):
            out.append(Target(f"{by[key].title}: {who} CPU/request <= 1.5 x C",
                              ratio(key, who, C, cpu_us), 1.5, False))  # fmt: skip
    out.append(Target("64 in flight: handler loop throughput >= 0.7 x C",
                      ratio("inflight64", LOOP, C, value), 0.7, True))  # fmt: skip
    # libcoap_py.aio (the asyncio issue's floors).
    for key in ("get_udp", "get_psk"):
        for who in ASYNC_CLIENTS:
            out.append(Target(f"{by[key].title}: {who} throughput >= 0.75 x C",
                              ratio(key, who, C, value), 0.75, True))  # fmt: skip
        out.append(Target(f"{by[key].title}: {ASYNC} throughput >= 5 x aiocoap",
                          ratio(key, ASYNC, AIO, value), 5.0, True))  # fmt: skip
    for who in ASYNC_CLIENTS:
        out.append(Target(f"64 in flight: {who} (64 tasks) throughput >= 0.8 x C",
                          ratio("inflight64", who, C, value), 0.8, True))  # fmt: skip
        out.append(Target(f"64 in flight: {who} (64 tasks) CPU/request <= 1.5 x C",
                          ratio("inflight64", who, C, cpu_us), 1.5, False))  # fmt: skip
    for who in (ASYNC_SERVER, ASYNC_SERVER_UV):
        out.append(Target(f"{who} throughput >= 0.6 x coap-server-notls",
                          ratio("server", who, C_SERVER, value), 0.6, True))  # fmt: skip
        out.append(Target(f"{who} throughput >= 10 x aiocoap server",
                          ratio("server", who, AIO_SERVER, value), 10.0, True))  # fmt: skip
    out.append(Target("own server throughput >= 0.6 x coap-server-notls",
                      ratio("server", OWN_SERVER, C_SERVER, value), 0.6, True))  # fmt: skip
    out.append(Target("own server throughput >= 3 x aiocoap server",
                      ratio("server", OWN_SERVER, AIO_SERVER, value), 3.0, True))  # fmt: skip
    for who in (REQUEST, LOOP):
        st = stats(by["growth"], results.get("growth", {}).get(who, []), value)
        out.append(Target(f"RSS growth over 100,000 requests, {who} < 1 MiB",
                          st[0] if st else None, 1.0, False))  # fmt: skip
    out.append(Target("1,000 idle DTLS sessions: libcoap-py RSS growth <= 1.5 x C's",
                      ratio("idle1000", PY, C, value), 1.5, False))  # fmt: skip
    out.append(Target("1,000 idle DTLS sessions: libcoap-py whole RSS (interpreter "
                      "included) <= 1.5 x C's", ratio("idle1000", PY, C, rss_after), 1.5,
                      False))  # fmt: skip
    if ingest is not None:
        devices = ingest["args"]["devices"]
        out.append(Target(f"service ingest, {devices} devices over DTLS-PKI: data service "
                          "throughput >= 0.5 x the same server without storage (its "
                          "storage process answering at once, no database)",
                          ingest.get("target"), 0.5, True))  # fmt: skip
        out.append(Target(f"service ingest, {devices} devices: data service throughput "
                          ">= 0.5 x a plain handler answering at once (no storage)",
                          ingest.get("target_plain"), 0.5, True))  # fmt: skip
    return out


# ---------------------------------------------------------------------------
# output


def header(bench: Bench, rounds: int, argv: list[str]) -> list[str]:
    import libcoap_py as coap

    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        import aiocoap.meta

        aio_version = str(aiocoap.meta.version)
    except Exception:
        aio_version = "not installed"
    lines = [
        "# libcoap-py benchmarks",
        "",
        f"- Machine: {model}, {os.cpu_count()} cores, {platform.system()} {platform.release()}",
        f"- libcoap: {coap.libcoap_version()} (libcoap-py); C client built with "
        f"{bench.c_pkg} {bench.c_version}",
        f"- TLS library: {coap.tls_library()}",
        f"- Python: {platform.python_version()} ({platform.python_implementation()}); "
        f"aiocoap {aio_version}",
        f"- Date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC",
        f"- Command: `{' '.join(['bash scripts/bench', *argv])}`",
        f"- Rounds: {rounds}{' (--quick: tiny counts, the numbers mean nothing)' if bench.quick else ''}"  # noqa: E501
        + ("; memory scenarios at most 5" if rounds > 5 else ""),
        "",
    ]
    if bench.packages:
        before, after = bench.packages
        lines.insert(-1, f"- Before: {before.label} (`{before.python}`); after: {after.label}")
    if bench.c_version.startswith("4.2"):
        lines += ["Note: the C client was built against libcoap 4.2.", ""]
    return lines


def write_results(bench: Bench, results: dict[str, dict[str, list[Any]]], rounds: int,
                  out: Path, argv: list[str],
                  ingest: dict[str, Any] | None = None) -> None:  # fmt: skip
    by = {sc.key: sc for sc in SCENARIOS}
    # Every table but the before-and-after one: the baseline's twins left out.
    everything, results = results, compare.after_only(results)
    lines = header(bench, rounds, argv)
    lines += [
        "Medians over the rounds; min-max in brackets. Ratios to C are the median of each",
        "round's ratio (same round, same machine state). CPU is the client process's own",
        "(getrusage / process_time around the timed loop, after a warm-up), per request.",
        "",
    ]
    if bench.packages:
        lines += compare.section(before_after_rows(everything, by), *bench.packages)
    lines += [
        "## Clients",
        "",
        "| Scenario | Contender | Median | Min-max | x C | CPU us/op | CPU x C |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    chart: list[tuple[str, float | None, float | None]] = []
    for key, per in results.items():
        sc = by[key]
        if sc.kind != "client":
            continue
        for contender, runs in per.items():
            st, cu = stats(sc, runs, value), stats(sc, runs, cpu_us)
            if st is None or cu is None:
                lines.append(f"| {sc.title} | {contender} | failed | | | | |")
                continue
            tr = median_ratio(per, contender, C, value, sc) if contender != C else 1.0
            cr = median_ratio(per, contender, C, cpu_us, sc) if contender != C else 1.0
            lines.append(
                f"| {sc.title} | {contender} | {num(st[0])} {sc.unit} | {num(st[1])}-{num(st[2])} "
                f"| {fmt(tr)} | {cu[0]:.1f} | {fmt(cr)} |"
            )
            if contender != C:
                chart.append((f"{key} / {contender}", tr, cr))
    lines += [
        "",
        f"{' and '.join(C_PLUS)}: yardsticks too. The C client",
        "spins that long after each answer, before the next request goes out (where a",
        "Python client runs its own code). A sequential request waits on two wake-ups",
        "(server, then client), so whatever a client adds between an answer and the next",
        "request adds to every request's time: these rows show how much throughput a few",
        "microseconds cost on this machine.",
        "",
        "Not measured: Session.request with 64 in flight (it waits for each response: one",
        "request at a time per thread); aiocoap over DTLS (its DTLS is PSK only, through",
        "tinydtls, an optional extra not installed here) and so aiocoap handshakes.",
        "",
    ]
    lines += in_handler_section(results, by)
    lines += first_section(results, by, chart)
    if "server" in results:
        sc, per = by["server"], results["server"]
        lines += [
            "## Servers",
            "",
            f"{sc.title}: the C client keeps one request in flight on each of",
            f"{sc.sessions} sessions. CPU is the server process's own per request",
            "(/proc/PID/stat, 10 ms ticks), warm-up included.",
            "",
            "| Server | Median req/s | Min-max | x C server | x aiocoap server "
            "| server CPU us/req |",
            "|---|---:|---:|---:|---:|---:|",
        ]
        for contender, runs in per.items():
            st, cu = stats(sc, runs, value), stats(sc, runs, cpu_us)
            if st is None or cu is None:
                lines.append(f"| {contender} | failed | | | | |")
                continue
            tr = median_ratio(per, contender, C_SERVER, value, sc)
            ar = median_ratio(per, contender, AIO_SERVER, value, sc)
            lines.append(
                f"| {contender} | {num(st[0])} | {num(st[1])}-{num(st[2])} | {fmt(tr)} "
                f"| {fmt(ar)} | {cu[0]:.1f} |"
            )
            if contender != C_SERVER:
                chart.append((f"server / {contender}", tr, None))
        lines.append("")
    mem = [k for k in results if by[k].kind == "memory"]
    if mem:
        lines += [
            "## Memory",
            "",
            "RSS (VmRSS) growth: idle sessions, from before the first session to after the",
            "last handshake (each session handshaken with one GET, then left idle); growth,",
            "from after the warm-up to after the last request (Python: after gc.collect()).",
            "",
            "| Scenario | Contender | Median growth | Min-max | x C | RSS after | x C |",
            "|---|---|---:|---:|---:|---:|---:|",
        ]
        for key in mem:
            sc, per = by[key], results[key]
            for contender, runs in per.items():
                st = stats(sc, runs, value)
                if st is None:
                    lines.append(f"| {sc.title} | {contender} | failed | | | |")
                    continue
                after = statistics.median(r["rss_after_kib"] for r in runs if r) / 1024
                ar = median_ratio(per, contender, C, rss_after, sc) if contender != C else 1.0
                if key == "growth":  # tens of KiB at most: a ratio says nothing
                    kib = [x * 1024 for x in st]
                    growth = f"{kib[0]:.0f} KiB | {kib[1]:.0f}-{kib[2]:.0f} KiB | -"
                else:
                    xr = median_ratio(per, contender, C, value, sc) if contender != C else 1.0
                    growth = f"{st[0]:.2f} MiB | {st[1]:.2f}-{st[2]:.2f} | {fmt(xr)}"
                lines.append(
                    f"| {sc.title} | {contender} | {growth} | {after:.1f} MiB | {fmt(ar)} |"
                )
        lines.append("")
    if ingest is not None:
        lines += [
            "## Service ingest",
            "",
            "The data service (`libcoap-py serve`: every POST filed in SQLite, committed",
            "with synchronous=FULL by its storage process in groups, before its 2.04)",
            "against the same service with a storage process that stores nothing, and a",
            "plain handler answering 2.04 at once, same run",
            "(benchmarks/service_ingest.py; run it alone for more rounds or the Python",
            "load generator).",
            "",
            *ingest["markdown"],
            "",
        ]
    lines += ["## Targets", "", "| Target | Measured | Met |", "|---|---:|---|"]
    for t in targets(results, ingest):
        met = "n/a" if t.met is None else ("yes" if t.met else "**no**")
        lines.append(f"| {t.text} | {fmt(t.measured)} | {met} |")
    lines.append("")
    if bench.errors:
        lines += ["## Failed measurements", ""]
        lines += [f"- {e.splitlines()[0]}" for e in bench.errors]
        lines.append("")
    lines += [
        "![ratios to C](results.png)",
        "",
        "Every measurement (one dict per round) is in results.json.",
        "",
    ]
    (out / "results.md").write_text("\n".join(lines))
    raw: dict[str, Any] = {"rounds": rounds, "command": argv, "results": everything}
    if ingest is not None:
        raw["ingest"] = ingest
    (out / "results.json").write_text(json.dumps(raw, indent=1) + "\n")
    write_chart(chart, out / "results.png")


def before_after_rows(results: dict[str, dict[str, list[Any]]],
                      by: dict[str, Scenario]) -> list[compare.Row]:  # fmt: skip
    """Each contender measured with --before's interpreter too: its numbers per round,
    before and after, and the reference's (C; server: coap-server-notls)."""
    rows = []
    for key, per in results.items():
        sc = by[key]
        ref = C_SERVER if sc.kind == "server" else C
        first = sc.kind == "first"
        for contender in per:
            if compare.before(contender) not in per:
                continue
            if key == "growth":  # a few KiB: a ratio says nothing (as in the memory table)
                rate = twin_measure(sc, per, contender, ref, kib, "KiB")
                rate.ratios = False
            else:
                rate = twin_measure(sc, per, contender, ref, ms_per_op if first else value,
                                    "ms/run" if first else sc.unit)  # fmt: skip
            cpu = twin_measure(sc, per, contender, ref, cpu_ms if first else cpu_us,
                               "ms/run" if first else "us/op")  # fmt: skip
            rows.append(compare.Row(sc.title, contender, rate, cpu))
    return rows


def twin_measure(sc: Scenario, per: dict[str, list[Any]], contender: str, ref: str,
                 fn: Callable[..., float], unit: str) -> compare.Measure:  # fmt: skip
    """fn of each round's measurement (None: failed): before, after, the reference."""
    before, after, c = (
        [None if r is None else fn(sc, r) for r in per.get(who, [])]
        for who in (compare.before(contender), contender, ref)
    )
    return compare.Measure(unit, before, after, c)


def in_handler_section(results: dict[str, dict[str, list[Any]]],
                       by: dict[str, Scenario]) -> list[str]:  # fmt: skip
    """The send-in-handler contenders of the sequential scenarios, against C both ways."""
    keys = [k for k in results if any(c in results[k] for c in IN_HANDLER)]
    if not keys:
        return []
    lines = [
        "## Sending from inside the response handler",
        "",
        f"{C_IN} and {LOOP_IN}: the response handler builds a fresh CON GET",
        f"with Uri-Path `{IN_HANDLER_PATH}` and sends it (C: coap_pdu_init, token,",
        "coap_add_option, coap_send; Python: `session.new_pdu()`, `add_option()`,",
        "`session.send()`), and the main loop runs `run_once(1000)` until `can_exit()`, the",
        f"shape of libcoap's client samples. {LOOP_PATH}: the same PDU sent from the",
        f"main loop, as {LOOP} does (which sends no Uri-Path: it GETs `/`). Sleeps:",
        "voluntary context switches a request (getrusage): how often the wait for the",
        "answer blocked. `benchmarks/instructions.py` counts the instructions of each shape.",
        "",
        "| Scenario | Contender | Median req/s | CPU us/req | CPU x C | "
        f"CPU x {C_IN} | CPU x {LOOP} | sleeps/req |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for key in keys:
        sc, per = by[key], results[key]
        for contender in (C, LOOP, *IN_HANDLER):
            runs = per.get(contender, [])
            st, cu, sl = stats(sc, runs, value), stats(sc, runs, cpu_us), stats(sc, runs, sleeps)
            if st is None or cu is None or sl is None:
                lines.append(f"| {sc.title} | {contender} | failed | | | | | |")
                continue
            ratios = [
                median_ratio(per, contender, other, cpu_us, sc) if contender != other else 1.0
                for other in (C, C_IN, LOOP)
            ]
            lines.append(
                f"| {sc.title} | {contender} | {num(st[0])} | {cu[0]:.1f} | "
                + " | ".join(fmt(r) for r in ratios)
                + (f" | {sl[0]:.2f} |" if sl[0] >= 0 else " | n/a |")
            )
    return [*lines, ""]


def first_section(results: dict[str, dict[str, list[Any]]], by: dict[str, Scenario],
                  chart: list[tuple[str, float | None, float | None]]) -> list[str]:  # fmt: skip
    """The first-request scenarios, in ms a run; their ratios also go to the chart."""
    keys = [k for k in results if by[k].kind == "first"]
    if not keys:
        return []
    lines = [
        "## First request of a fresh coaps:// session",
        "",
        "The DTLS client sample's whole run, repeated: a new Context (C: coap_new_context)",
        "and client session (credentials made anew: `coap.PSK`/`coap.PKI`), the handshake,",
        f"one CON POST with Uri-Path `post` and a {by[keys[0]].body}-byte payload, its answer, "
        "then the session and",
        f"the Context closed. {REQUEST}: `session.request()`. {LOOP}: `new_pdu`,",
        "`add_option`, `payload`, `send`, then `run_once(1000)` until `can_exit()`, the answer",
        "read in the response handler. C: the same with libcoap's calls (cclient.c `first`).",
        "Against coap-server-openssl; the Python client checks the server certificate's",
        "name (PKI's default `check_hostname`), the C client does not.",
        "",
        "| Scenario | Contender | Median ms/run | Min-max | x C | CPU ms/run | CPU x C |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for key in keys:
        sc, per = by[key], results[key]
        for contender, runs in per.items():
            st, cu = stats(sc, runs, ms_per_op), stats(sc, runs, cpu_ms)
            if st is None or cu is None:
                lines.append(f"| {sc.title} | {contender} | failed | | | | |")
                continue
            tr = median_ratio(per, contender, C, ms_per_op, sc) if contender != C else 1.0
            cr = median_ratio(per, contender, C, cpu_ms, sc) if contender != C else 1.0
            lines.append(
                f"| {sc.title} | {contender} | {st[0]:.2f} | {st[1]:.2f}-{st[2]:.2f} "
                f"| {fmt(tr)} | {cu[0]:.2f} | {fmt(cr)} |"
            )
            if contender != C:  # the chart's throughput: runs/s, higher is better
                chart.append((f"{key} / {contender}", median_ratio(per, contender, C, value, sc),
                              cr))  # fmt: skip
    return [*lines, ""]


def write_chart(rows: list[tuple[str, float | None, float | None]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = [r[0] for r in rows]
    height = max(3.0, 0.32 * len(rows) + 1.2)
    fig, axes = plt.subplots(1, 2, figsize=(12, height), sharey=True)
    panels = ((axes[0], 1, "throughput / C (higher is better)", "tab:blue"),
              (axes[1], 2, "CPU per request / C (lower is better)", "tab:orange"))  # fmt: skip
    for ax, idx, title, color in panels:
        # Ratios span 0.02 to 100: a log axis keeps the ones near 1 readable.
        ys = [i for i, r in enumerate(rows) if r[idx]]
        vals = [float(rows[i][idx] or 0) for i in ys]
        ax.barh(ys, vals, color=color)
        for y, v in zip(ys, vals):
            ax.annotate(f"{v:.2f}", (v, y), xytext=(3, 0), textcoords="offset points",
                        va="center", fontsize=7)  # fmt: skip
        ax.set_xscale("log")
        ax.axvline(1.0, color="black", linewidth=0.8)
        ax.set_title(title, fontsize=10)
        ax.set_yticks(range(len(rows)))
        ax.set_yticklabels(labels, fontsize=8)
        ax.grid(axis="x", which="major", linewidth=0.3)
    axes[0].invert_yaxis()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny counts, one round (CI)")
    parser.add_argument("--rounds", type=int, default=None,
                        help="rounds (default 9, memory scenarios at most 5; quick 1)")  # fmt: skip
    parser.add_argument("--out", type=Path, default=HERE, help="where results.md/png go")
    parser.add_argument(
        "--only", nargs="*", default=None, help=f"scenario keys to run ({INGEST}: service ingest)"
    )
    parser.add_argument("--before", metavar="PYTHON", default=None,
                        help="also measure the Python contenders with this interpreter's "
                        "libcoap_py (the baseline), as '... (before)'")  # fmt: skip
    parser.add_argument("--before-label", metavar="TEXT", default=None,
                        help="the baseline's name in results.md (default: its commit)")  # fmt: skip
    args = parser.parse_args()
    if args.before_label and not args.before:
        parser.error("--before-label needs --before")
    rounds = args.rounds or (1 if args.quick else ROUNDS)
    scenarios = [s for s in SCENARIOS if not args.only or s.key in args.only]
    args.out.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    work = Path(tempfile.mkdtemp(prefix="libcoap-py-bench-"))
    try:
        bench = Bench(args, work)
        results = bench.run(scenarios, rounds)
        ingest = run_ingest(bench, rounds) if not args.only or INGEST in args.only else None
        write_results(bench, results, rounds, args.out, sys.argv[1:], ingest)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    took = time.monotonic() - started
    print(f"wrote results.md, results.png, results.json in {args.out} in {took:.0f} s")
    if bench.errors:
        print(f"{len(bench.errors)} measurement(s) failed", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
