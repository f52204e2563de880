"""Service ingest: devices POST over DTLS-PKI to the data service, which files every
message durably (SQLite, synchronous=FULL, group commit) before its 2.04; against the
same service with a storage process that stores nothing, and a plain handler.

    python -I benchmarks/service_ingest.py [--devices 50] [--seconds 10] [--rounds 3]
        [--generators 1] [--client c|py] [--only service nostore plain confirmed downstream]
        [--json FILE] [--keep]

Every device is a DTLS-PKI client session with a certificate of its own (CN
``device-NN``, issued at setup by the CA the server trusts). Each keeps exactly
one CON POST in flight: the next goes out when the answer came. The devices are
split among ``--generators`` load generator processes: ``ingest_client.c``
(compiled here against libcoap 4.3; the default, as it leaves the most CPU to
the server on a small machine) or, with ``--client py`` or when it cannot be
built, this script's ``load`` on the binding's non-blocking API
(``session.send``, a response handler, ``ctx.run_once``). Each generator first
handshakes its sessions and gets one POST answered on each (the handshake phase,
reported apart); once every generator is ready they start together, count the
2.04s answered during ``--seconds``, then stop sending and wait for what is
still in flight. Servers, started fresh (a new database) for every measurement:

- ``service``: ``python -I -m libcoap_py.cli serve --db DB --cert --key --ca
  --listen coaps://127.0.0.1:0`` (answers piggybacked, the default), through
  the ``service-server`` wrapper below, which runs that same command line
  in-process and only adds a report of the writer's commit counters at exit;
- ``nostore``: the same, with the storage process replaced by one that answers
  every write at once without a database (``NULL_STORAGE``): the same server,
  its handler, its socket to the storage process and its delayed answers, and
  no storage. The issue's target is the service's rate over this one's;
- ``plain``: the same process shape and DTLS-PKI setup (``Context``, a
  ``coaps://`` endpoint with ``PKI(verify_peer_cert=True,
  require_peer_cert=True)``, an unknown-resource handler for POST and PUT)
  answering 2.04 at once, without storage: the ratio is what the whole
  service costs (its handler, the round trip to the storage process, SQLite,
  the fsync);
- ``confirmed``: the service with ``--confirm-downstream`` (empty ACK, then a
  separate CON 2.04 once filed, which the device acknowledges);
- ``downstream``: the service with enough downstream messages queued for every
  device that each 2.04 carries one (and the writer also records it as sent).

Checked in every measurement: no answer other than 2.04, no NACK, and the
inbox holds exactly one row per 2.04 counted (warm-up and drain included),
from every device (not for ``nostore``). Contenders alternate within a round (the order rotates);
the table gives medians over rounds with min-max, and the ratio to ``plain``
is the median of each round's own ratio. Loopback only.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from pathlib import Path
from typing import IO, Any

import libcoap_py as coap

HERE = Path(__file__).resolve().parent

SERVICE, PLAIN, CONFIRMED, DOWNSTREAM = "service", "plain", "confirmed", "downstream"
NOSTORE = "nostore"
CONTENDERS = (SERVICE, NOSTORE, PLAIN, CONFIRMED, DOWNSTREAM)
TITLES = {
    SERVICE: "data service (files, then piggybacked 2.04)",
    NOSTORE: "the same service, its storage process storing nothing",
    PLAIN: "plain handler, no storage (2.04 at once)",
    CONFIRMED: "data service --confirm-downstream (separate CON 2.04)",
    DOWNSTREAM: "data service, every 2.04 carries a downstream message",
}
#: The target from the issue: the service reaches at least this share of ``plain``.
TARGET = 0.5
#: Downstream messages queued, all devices together, per second of the run
#: (``downstream``): several times the service's rate here, so no device runs dry
#: (the run checks that every 2.04 carried one).
DOWNSTREAM_PER_S = 15000


# ---------------------------------------------------------------------------
# setup


def make_certs(directory: Path, devices: int) -> dict[str, Path]:
    """A CA, a server certificate for 127.0.0.1, and one certificate per device
    (CN device-NN) with its key: ``device-NN.crt`` / ``device-NN.key``."""
    from libcoap_py import certs

    directory.mkdir(parents=True, exist_ok=True)
    ca_cert, ca_key = certs.make_ca("service-ingest CA")
    server_cert, server_key = certs.make_leaf(ca_cert, ca_key, "localhost", server=True)
    files = {
        "ca": certs.write_pem(directory / "ca.crt", ca_cert),
        "server_cert": certs.write_pem(directory / "server.crt", server_cert),
        "server_key": certs.write_pem(directory / "server.key", server_key),
    }
    for name in device_names(devices):
        cert, key = certs.make_leaf(ca_cert, ca_key, name, server=False)
        certs.write_pem(directory / f"{name}.crt", cert)
        certs.write_pem(directory / f"{name}.key", key)
    return files


def build_client(work: Path) -> tuple[Path | None, str]:
    """Compile ingest_client.c against libcoap 4.3 with DTLS (cc, pkg-config); returns
    (executable, what was used) or (None, why not)."""
    cc = os.environ.get("CC", "cc")
    out = work / "ingest_client"
    try:
        for pkg in ("libcoap-3-openssl", "libcoap-3", "libcoap-3-gnutls", "libcoap-3-mbedtls"):
            flags = subprocess.run(
                ["pkg-config", "--cflags", "--libs", pkg], capture_output=True, text=True
            )
            if flags.returncode == 0:
                break
        else:
            return None, "no libcoap-3 pkg-config file with DTLS"
        version = subprocess.run(
            ["pkg-config", "--modversion", pkg], capture_output=True, text=True
        ).stdout.strip()
        source = str(HERE / "ingest_client.c")
        done = subprocess.run(
            [cc, "-O2", "-o", str(out), source, *flags.stdout.split()],
            capture_output=True,
            text=True,
        )
    except OSError as exc:
        return None, f"cannot run pkg-config or {cc}: {exc}"
    if done.returncode != 0:
        return None, f"{cc} failed: {done.stderr.strip()[-500:]}"
    return out, f"{pkg} {version}"


def device_names(devices: int) -> list[str]:
    width = max(2, len(str(devices)))
    return [f"device-{i:0{width}d}" for i in range(1, devices + 1)]


def queue_downstream(db: Path, names: list[str], per_device: int) -> int:
    """Queue ``per_device`` downstream messages for every device, in one transaction."""
    from libcoap_py.service import Store

    with Store(db) as store, store.transaction():
        for k in range(per_device):
            for name in names:
                store.add_outbox(name, f"set interval {k:06d} for {name}".encode())
    return per_device * len(names)


# ---------------------------------------------------------------------------
# the servers (subprocesses)


def plain_server(argv: list[str]) -> None:
    """``plain-server CERT KEY CA``: 2.04 at once to every POST/PUT from a device."""
    cert, key, ca = argv
    with coap.Context() as ctx:
        pki = coap.PKI(cert, key, ca, verify_peer_cert=True, require_peer_cert=True)
        endpoint = ctx.add_endpoint("coaps://127.0.0.1:0", dtls=pki)

        def handle(request: coap.Request, response: coap.ServerResponse) -> None:
            # As the service does first: a device identity, else 4.01.
            if request.peer_cn is None:
                response.code = coap.Code.UNAUTHORIZED
            else:
                response.code = coap.Code.CHANGED

        ctx.set_unknown_handler(handle, methods=("POST", "PUT"))
        print(f"listening on {endpoint.uri}", flush=True)
        ctx.run(handle_signals=True)
    print("stopped", flush=True)


def service_server(argv: list[str]) -> int:
    """``service-server STATS [--no-storage] -- SERVE-ARGS``: ``libcoap-py serve
    SERVE-ARGS`` in this process; when the service closes its writer, the writer's
    counters (groups committed, writes in them) go to the file STATS. Nothing else
    differs, except with ``--no-storage``: the storage process is replaced by one
    that answers every write at once and stores nothing (:data:`NULL_STORAGE`)."""
    from libcoap_py import cli
    from libcoap_py.service import writer

    stats = Path(argv[0])
    rest = argv[1:]
    if rest[:1] == ["--no-storage"]:
        writer._BOOT = NULL_STORAGE  # the benchmark's stand-in, on the same socket protocol
        rest = rest[1:]
    serve_args = rest[1:] if rest[:1] == ["--"] else rest
    original_stop = writer.StoreWriter.stop

    def stop(self: writer.StoreWriter, timeout: float = 30.0) -> None:
        original_stop(self, timeout)
        stats.write_text(json.dumps({"groups": self.groups, "writes": self.writes}))

    setattr(writer.StoreWriter, "stop", stop)  # noqa: B010 (mypy: no method assignment)
    return cli.main(["serve", *serve_args])


#: The ``nostore`` contender's storage process: started as the real one is (the same
#: arguments), it loads the same socket protocol and answers each write at once as
#: filed (a counter for the inbox id, no downstream message), with no database: the
#: service with everything but storing.
NULL_STORAGE = """\
import importlib.util, socket, sys
spec = importlib.util.spec_from_file_location("proto", sys.argv[1] + "/_storage_process.py")
proto = importlib.util.module_from_spec(spec)
spec.loader.exec_module(proto)
sock = socket.socket(fileno=int(sys.argv[2]))
sock.sendall(proto.encode(("ready",)))
reader = proto.FrameReader(sock)
filed = 0
while True:
    frames = reader.read()
    if frames is None:
        sys.exit(0)
    out = []
    for frame in frames:
        if frame.__class__ is list:
            results = []
            for item in frame:
                if item[0] == "F":
                    filed += 1
                    results.append((True, (filed, False, None)))
                else:
                    results.append((True, None))
            out.append(proto.encode(("R", 1, results)))
        elif frame[0] == "B":
            out.append(proto.encode(frame))
        else:
            sock.sendall(b"".join(out))
            sys.exit(0)
    sock.sendall(b"".join(out))
"""


# ---------------------------------------------------------------------------
# the load generator (subprocess): one Context, a session per device


class Load:
    """Devices ``names``, each one DTLS-PKI session keeping one POST in flight."""

    def __init__(self, uri: str, certs: Path, names: list[str], size: int) -> None:
        self.ctx = coap.Context()
        self.size = size
        self.answers = 0
        self.failures = 0
        self.nacks = 0
        self.with_payload = 0
        self.in_flight = 0
        # Sessions answered in this pass: the main loop sends their next POST.
        self.ready: list[coap.Session] = []
        self.connected: dict[coap.Session, float] = {}
        self.seq: dict[coap.Session, int] = {}
        self.names: dict[coap.Session, bytes] = {}
        self.ctx.register_response_handler(self.on_response)
        self.ctx.register_nack_handler(self.on_nack)
        self.ctx.register_event_handler(self.on_event)
        ca = str(certs / "ca.crt")
        self.started = time.perf_counter()
        self.sessions: list[coap.Session] = []
        for name in names:
            pki = coap.PKI(str(certs / f"{name}.crt"), str(certs / f"{name}.key"), ca)
            session = self.ctx.client_session(uri, dtls=pki)
            self.sessions.append(session)
            self.seq[session] = 0
            self.names[session] = name.encode()

    def on_response(
        self, session: coap.Session | None, sent: coap.PDU | None, received: coap.PDU, mid: int
    ) -> None:
        assert session is not None  # every session here is one of ours
        if received.code != coap.Code.CHANGED:
            self.failures += 1
        elif received.payload:
            self.with_payload += 1
        self.answers += 1
        self.in_flight -= 1
        self.ready.append(session)

    def on_nack(
        self,
        session: coap.Session | None,
        sent: coap.PDU | None,
        reason: coap.NackReason | int,
        mid: int,
    ) -> None:
        print(f"NACK {reason!r}", file=sys.stderr, flush=True)
        self.nacks += 1
        self.in_flight -= 1

    def on_event(self, session: coap.Session | None, event: coap.Event | int) -> None:
        if event == coap.Event.DTLS_CONNECTED and session is not None:
            self.connected.setdefault(session, time.perf_counter() - self.started)

    def send(self, session: coap.Session) -> None:
        seq = self.seq[session] = self.seq[session] + 1
        pdu = session.new_pdu(coap.MessageType.CON, coap.Code.POST)
        pdu.add_option(coap.OptionNumber.URI_PATH, b"data")
        body = b"%s seq %08d t=20.5C rh=41%% " % (self.names[session], seq)
        pdu.payload = body.ljust(self.size, b".")[: self.size]
        self.in_flight += 1
        session.send(pdu)

    def handshake(self, deadline_s: float) -> float:
        """Handshake every session and get one POST answered on each (the warm-up)."""
        for session in self.sessions:
            self.send(session)
        deadline = time.perf_counter() + deadline_s
        while self.in_flight > 0:
            self.ctx.run_once(200)
            if time.perf_counter() > deadline:
                raise SystemExit(f"handshakes: {self.in_flight} sessions unanswered")
        self.ready.clear()
        return time.perf_counter() - self.started

    def run(self, seconds: float) -> tuple[int, float, float]:
        """One POST in flight per session for ``seconds``; returns (answers, wall, cpu)."""
        ready, send, run_once = self.ready, self.send, self.ctx.run_once
        for session in self.sessions:
            send(session)
        first = self.answers
        wall, cpu = time.perf_counter(), time.process_time()
        end = wall + seconds
        while True:
            now = time.perf_counter()
            if now >= end:
                break
            run_once(max(1, min(200, int((end - now) * 1000))))
            while ready:
                send(ready.pop())
        answers = self.answers - first
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        ready.clear()
        return answers, wall, cpu

    def drain(self, deadline_s: float = 30.0) -> None:
        """No new POST: wait (bounded) for the answers still in flight."""
        deadline = time.perf_counter() + deadline_s
        while self.in_flight > 0 and time.perf_counter() < deadline:
            self.ctx.run_once(200)


def load(argv: list[str]) -> None:
    """``load URI CERTS SECONDS SIZE NAME...``: one line when handshaken, then "go" on
    stdin starts the timed run; a JSON line at the end."""
    uri, certs, seconds, size, *names = argv
    gen = Load(uri, Path(certs), names, int(size))
    handshake = gen.handshake(60.0)
    connect = sorted(gen.connected.values())
    ready = {"handshake_s": handshake, "connect_s": connect, "cpu_s": time.process_time()}
    print(json.dumps(ready), flush=True)
    if sys.stdin.readline().strip() != "go":
        raise SystemExit("expected 'go'")
    answers, wall, cpu = gen.run(float(seconds))
    gen.drain()
    result = {
        "answers": answers,
        "wall": wall,
        "cpu": cpu,
        "total_answers": gen.answers,
        "failures": gen.failures,
        "nacks": gen.nacks,
        "unanswered": gen.in_flight,
        "with_payload": gen.with_payload,
    }
    gen.ctx.close()
    print(json.dumps(result), flush=True)


# ---------------------------------------------------------------------------
# the harness


def task_ticks(pid: int) -> dict[int, int]:
    """utime + stime of every thread of ``pid`` and of its child processes (the data
    service's storage process), in clock ticks, by thread id."""
    out = {}
    pids = [pid]
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            pids += [int(child) for child in f.read().split()]
    except OSError:
        pass
    for one in pids:
        try:
            tids = os.listdir(f"/proc/{one}/task")
        except OSError:
            continue
        for tid in tids:
            try:
                with open(f"/proc/{one}/task/{tid}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            out[int(tid)] = int(fields[11]) + int(fields[12])
    return out


def machine_ticks() -> tuple[int, int]:
    """(busy, total) jiffies of all CPUs (/proc/stat; iowait counts as idle)."""
    with open("/proc/stat") as f:
        values = [int(v) for v in f.readline().split()[1:]]
    idle = values[3] + (values[4] if len(values) > 4 else 0)
    return sum(values) - idle, sum(values)


class Window:
    """CPU counters around the timed run: the server's threads and the whole machine."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.before, self.busy_before = task_ticks(pid), machine_ticks()
        self.after, self.busy_after = self.before, self.busy_before
        self.started = time.perf_counter()
        self.seconds = 0.0

    def end(self) -> None:
        self.after, self.busy_after = task_ticks(self.pid), machine_ticks()
        self.seconds = time.perf_counter() - self.started

    def server_cpu(self) -> tuple[float, float]:
        """CPU seconds of the server's main (loop) thread, and of all its threads."""
        tck = os.sysconf("SC_CLK_TCK")
        main = self.after.get(self.pid, 0) - self.before.get(self.pid, 0)
        every = sum(t - self.before.get(tid, 0) for tid, t in self.after.items())
        return main / tck, every / tck

    def machine_busy(self) -> float:
        busy = self.busy_after[0] - self.busy_before[0]
        total = self.busy_after[1] - self.busy_before[1]
        return busy / total if total else float("nan")


def tail(run_dir: Path, lines: int = 8) -> str:
    """The last lines of a measurement's logs, for an error message."""
    out = []
    for log in sorted(run_dir.glob("*.log")):
        text = log.read_text(errors="replace").strip().splitlines()[-lines:]
        if text:
            out.append(f"\n  {log.name}: " + "\n    ".join(text))
    return "".join(out)


def read_line(stream: IO[str] | None, timeout: float, what: str) -> str:
    """One line from a subprocess's pipe, or RuntimeError after ``timeout`` seconds."""
    assert stream is not None
    box: list[str] = []
    reader = threading.Thread(target=lambda: box.append(stream.readline()), daemon=True)
    reader.start()
    reader.join(timeout)
    if not box:
        raise RuntimeError(f"{what}: nothing within {timeout:.0f} s")
    if not box[0]:
        raise RuntimeError(f"{what}: the process ended")
    return box[0]


def stop_process(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


class Harness:
    def __init__(self, args: argparse.Namespace, work: Path) -> None:
        self.args = args
        self.work = work
        self.python = sys.executable
        self.certs_dir = work / "certs"
        self.files = make_certs(self.certs_dir, args.devices)
        self.names = device_names(args.devices)
        self.runs = 0
        self.client: Path | None = None
        self.client_note = "the binding's non-blocking API (service_ingest.py load)"
        if args.client == "c":
            self.client, what = build_client(work)
            if self.client is None:
                self.client_note += f"; the C generator could not be built: {what}"
            else:
                self.client_note = f"ingest_client.c on {what}"
        print(f"load generator: {self.client_note}", file=sys.stderr, flush=True)

    def load_argv(self, uri: str, names: list[str]) -> list[str]:
        args = self.args
        common = [uri, str(self.certs_dir), str(args.seconds), str(args.size), *names]
        if self.client is not None:
            return [str(self.client), *common]
        return [self.python, "-I", str(Path(__file__).resolve()), "load", *common]

    def server_argv(self, contender: str, db: Path, stats: Path) -> list[str]:
        f = self.files
        if contender == PLAIN:
            return [self.python, "-I", str(Path(__file__).resolve()), "plain-server",
                    str(f["server_cert"]), str(f["server_key"]), str(f["ca"])]  # fmt: skip
        serve = ["--db", str(db), "--cert", str(f["server_cert"]), "--key", str(f["server_key"]),
                 "--ca", str(f["ca"]), "--listen", "coaps://127.0.0.1:0"]  # fmt: skip
        if contender == CONFIRMED:
            serve.append("--confirm-downstream")
        null = ["--no-storage"] if contender == NOSTORE else []
        return [self.python, "-I", str(Path(__file__).resolve()), "service-server", str(stats),
                *null, "--", *serve]  # fmt: skip

    def measure(self, contender: str) -> dict[str, Any]:
        """One measurement: a fresh server and database, the generators, the checks."""
        args = self.args
        self.runs += 1
        run_dir = self.work / f"run{self.runs}-{contender}"
        run_dir.mkdir()
        db, stats = run_dir / "service.db", run_dir / "writer.json"
        queued = 0
        if contender == DOWNSTREAM:
            per_device = int(DOWNSTREAM_PER_S * (args.seconds + 2) / args.devices) + 20
            queued = queue_downstream(db, self.names, per_device)
        with contextlib.ExitStack() as logs:
            server_log = logs.enter_context(open(run_dir / "server.log", "w"))
            server = subprocess.Popen(
                self.server_argv(contender, db, stats),
                stdout=subprocess.PIPE,
                stderr=server_log,
                stdin=subprocess.DEVNULL,
                text=True,
            )
            generators: list[subprocess.Popen[str]] = []
            try:
                uri = ""
                while not uri:
                    line = read_line(server.stdout, 30, f"{contender} server")
                    if line.startswith("listening on "):
                        uri = line.split()[-1]
                for i in range(args.generators):
                    names = self.names[i :: args.generators]
                    generators.append(
                        subprocess.Popen(
                            self.load_argv(uri, names),
                            stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE,
                            stderr=logs.enter_context(open(run_dir / f"load{i}.log", "w")),
                            text=True,
                        )
                    )
                readies = [
                    json.loads(read_line(gen.stdout, 120, f"generator {i}"))
                    for i, gen in enumerate(generators)
                ]
                window = Window(server.pid)
                for gen in generators:
                    assert gen.stdin is not None
                    gen.stdin.write("go\n")
                    gen.stdin.flush()
                time.sleep(args.seconds)
                window.end()
                results = [
                    json.loads(read_line(gen.stdout, args.seconds + 60, f"generator {i} result"))
                    for i, gen in enumerate(generators)
                ]
            except Exception as exc:
                server_log.flush()
                raise RuntimeError(f"{exc}{tail(run_dir)}") from exc
            finally:
                for gen in generators:
                    stop_process(gen)
                stop_process(server)
        if server.returncode != 0:
            raise RuntimeError(f"{contender} server exited {server.returncode}{tail(run_dir)}")
        return self.result(contender, db, stats, queued, readies, results, window)

    def result(
        self,
        contender: str,
        db: Path,
        stats: Path,
        queued: int,
        readies: list[dict[str, Any]],
        results: list[dict[str, Any]],
        window: Window,
    ) -> dict[str, Any]:
        """The figures of one measurement; RuntimeError if a check fails."""
        main_cpu, all_cpu = window.server_cpu()
        answers = sum(r["answers"] for r in results)
        rate = sum(r["answers"] / r["wall"] for r in results)
        total_answers = sum(r["total_answers"] for r in results)
        out: dict[str, Any] = {
            "rate": rate,
            "answers": answers,
            "wall": statistics.mean(r["wall"] for r in results),
            "server_cpu": all_cpu,
            "server_main_cpu": main_cpu,
            "server_cpu_us": all_cpu / answers * 1e6 if answers else float("nan"),
            "server_cores": all_cpu / window.seconds,
            "server_other_cores": (all_cpu - main_cpu) / window.seconds,
            "generator_cores": [r["cpu"] / r["wall"] for r in results],
            "machine_busy": window.machine_busy(),
            "cores": os.cpu_count(),
            "handshake_s": max(r["handshake_s"] for r in readies),
            "connect_s": sorted(t for r in readies for t in r["connect_s"]),
            "total_answers": total_answers,
            "failures": sum(r["failures"] for r in results),
            "nacks": sum(r["nacks"] + r["unanswered"] for r in results),
            "with_payload": sum(r["with_payload"] for r in results),
        }
        problems = []
        if out["failures"] or out["nacks"]:
            problems.append(f"{out['failures']} answers not 2.04, {out['nacks']} NACK/unanswered")
        if contender == NOSTORE:
            try:
                out["writer"] = json.loads(stats.read_text())
            except (OSError, ValueError):
                problems.append("no writer counters (did the service stop cleanly?)")
        if contender not in (PLAIN, NOSTORE):
            with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as conn:
                rows = conn.execute("SELECT count(*) FROM inbox").fetchone()[0]
                devices = [d for (d,) in conn.execute("SELECT DISTINCT device FROM inbox")]
                states = dict(conn.execute("SELECT state, count(*) FROM outbox GROUP BY state"))
            out["inbox_rows"], out["inbox_devices"] = rows, len(devices)
            out["outbox_states"] = states
            if rows != total_answers:
                problems.append(f"inbox holds {rows} rows for {total_answers} 2.04s")
            if sorted(devices) != self.names:
                problems.append(
                    f"inbox rows from {len(devices)} devices, not the {len(self.names)}"
                )
            if contender == DOWNSTREAM:
                if out["with_payload"] != total_answers:
                    missing = total_answers - out["with_payload"]
                    problems.append(f"{missing} 2.04s without a downstream message")
                if states.get("sent", 0) != out["with_payload"]:
                    problems.append(
                        f"outbox: {states.get('sent', 0)} messages marked sent for "
                        f"{out['with_payload']} answers that carried one ({states})"
                    )
            try:
                out["writer"] = json.loads(stats.read_text())
            except (OSError, ValueError):
                problems.append("no writer counters (did the service stop cleanly?)")
        out["queued"] = queued
        if problems:
            raise RuntimeError(f"{contender}: " + "; ".join(problems))
        return out

    def run(self) -> dict[str, list[dict[str, Any] | None]]:
        args = self.args
        per: dict[str, list[dict[str, Any] | None]] = {c: [] for c in args.only}
        for r in range(args.rounds):
            order = list(args.only)
            order = order[r % len(order) :] + order[: r % len(order)]
            for contender in order:
                try:
                    res: dict[str, Any] | None = self.measure(contender)
                except Exception as exc:  # report, go on with the others
                    print(f"ERROR round {r + 1} {contender}: {exc}", file=sys.stderr, flush=True)
                    res = None
                per[contender].append(res)
                if res is not None and not args.quiet:
                    print(f"round {r + 1} {contender:10s} {res['rate']:8.0f} msg/s, server "
                          f"{res['server_cores']:.2f} cores, generators "
                          f"{sum(res['generator_cores']):.2f}, machine busy "
                          f"{res['machine_busy']:.0%}", flush=True)  # fmt: skip
        return per


# ---------------------------------------------------------------------------
# summary


def med(values: list[float]) -> tuple[float, float, float] | None:
    return (statistics.median(values), min(values), max(values)) if values else None


def ratios(per: dict[str, list[Any]], a: str, b: str) -> list[float]:
    """Each round's rate of ``a`` over ``b`` (rounds where both ran)."""
    return [x["rate"] / y["rate"] for x, y in zip(per.get(a, []), per.get(b, [])) if x and y]


def summarize(per: dict[str, list[Any]]) -> dict[str, dict[str, Any] | None]:
    """Per contender: (median, min, max) of each figure over the rounds that ran."""
    rows: dict[str, dict[str, Any] | None] = {}
    for contender, runs in per.items():
        ok = [r for r in runs if r]
        if not ok:
            rows[contender] = None
            continue
        writes = sum(r.get("writer", {}).get("writes", 0) for r in ok)
        groups = sum(r.get("writer", {}).get("groups", 0) for r in ok)

        def fig(key: str, runs: list[dict[str, Any]] = ok) -> tuple[float, float, float] | None:
            return med([r[key] for r in runs])

        rows[contender] = {
            "rate": fig("rate"),
            "ratio": med(ratios(per, contender, PLAIN)) if contender != PLAIN else None,
            "ratio_shape": med(ratios(per, contender, NOSTORE))
            if contender not in (PLAIN, NOSTORE) and NOSTORE in per
            else None,
            "server_cpu_us": fig("server_cpu_us"),
            "server_cores": fig("server_cores"),
            "server_other_cores": fig("server_other_cores"),
            "generator_cores": med([sum(r["generator_cores"]) for r in ok]),
            "machine_busy": fig("machine_busy"),
            "handshake_s": fig("handshake_s"),
            "connect_median_s": med([statistics.median(r["connect_s"]) for r in ok
                                     if r["connect_s"]]),
            "group": writes / groups if groups else None,
            "rounds": len(ok),
        }  # fmt: skip
    return rows


def markdown(args: argparse.Namespace, per: dict[str, list[Any]], generator: str) -> list[str]:
    """The table, with what it measured."""
    intro = (
        f"{args.devices} devices, each a DTLS-PKI session with a certificate of its own, "
        f"each keeping one CON POST /data ({args.size} bytes) in flight; {args.seconds:g} s "
        "timed per measurement, after every session's handshake and first POST; load: "
        f"{args.generators} generator process(es), {generator}; {args.rounds} round(s) on "
        f"{os.cpu_count()} cores, medians and min-max. x no storage: the median of each "
        "round's own ratio. Server CPU: the server process's, all threads, and its storage "
        "process's (/proc, 10 ms ticks), over the timed run, per message answered; server "
        "cores: their CPU seconds per second (in brackets, all but the loop's thread: the "
        "storage process); "
        "machine busy: all CPUs (/proc/stat; iowait counts as idle). Writes per commit: the "
        "writer's counters over the whole run (SQLite synchronous=FULL, one fsync per "
        "commit; with downstream messages each answer adds a second write, marking the "
        "message sent). Handshakes: until every session had its first answer (median "
        "time to a session's DTLS_CONNECTED)."
    )
    lines = [
        *textwrap.wrap(intro, 88),
        "",
        "| Server | msg/s | min-max | x plain handler | x same service, no storage "
        "| server CPU us/msg | server cores (storage) | generator cores | machine busy "
        "| writes per commit | handshakes |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for contender, row in summarize(per).items():
        if row is None:
            lines.append(f"| {TITLES[contender]} | failed | | | | | | | | | |")
            continue
        rate, ratio, connect = row["rate"], row["ratio"], row["connect_median_s"]
        rtext = "1" if contender == PLAIN else "n/a"
        if ratio:
            rtext = f"{ratio[0]:.2f} ({ratio[1]:.2f}-{ratio[2]:.2f})"
        shape = row.get("ratio_shape")
        stext = "1" if contender == NOSTORE else "-"
        if shape:
            stext = f"{shape[0]:.2f} ({shape[1]:.2f}-{shape[2]:.2f})"
        group = f"{row['group']:.1f}" if row["group"] else "-"
        shake = f"{row['handshake_s'][0]:.2f} s"
        if connect:
            shake += f" ({connect[0] * 1000:.0f} ms)"
        lines.append(
            f"| {TITLES[contender]} | {rate[0]:,.0f} | {rate[1]:,.0f}-{rate[2]:,.0f} | {rtext} "
            f"| {stext} "
            f"| {row['server_cpu_us'][0]:.0f} | {row['server_cores'][0]:.2f} "
            f"({row['server_other_cores'][0]:.2f}) | {row['generator_cores'][0]:.2f} "
            f"| {row['machine_busy'][0]:.0%} | {group} | {shake} |"
        )
    return lines


def target(per: dict[str, list[Any]], baseline: str = NOSTORE) -> float | None:
    """The service's rate over ``baseline``'s: the median of each round's ratio."""
    values = ratios(per, SERVICE, baseline)
    return statistics.median(values) if values else None


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["plain-server"]:
        plain_server(argv[1:])
        return 0
    if argv[:1] == ["service-server"]:
        return service_server(argv[1:])
    if argv[:1] == ["load"]:
        load(argv[1:])
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--devices", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=10.0, help="timed, per measurement")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--generators", type=int, default=1, help="load generator processes")
    parser.add_argument("--client", choices=("c", "py"), default="c",
                        help="load generator: ingest_client.c (default; the Python one if it "
                        "cannot be built) or this script's, on the binding's API")  # fmt: skip
    parser.add_argument("--size", type=int, default=64, help="POST payload bytes")
    parser.add_argument("--only", nargs="+", choices=CONTENDERS, default=list(CONTENDERS))
    parser.add_argument("--json", type=Path, default=None, help="also write everything here")
    parser.add_argument("--quiet", action="store_true", help="no line per measurement")
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    args = parser.parse_args(argv)
    for baseline in (PLAIN, NOSTORE):
        if baseline not in args.only:
            args.only.append(baseline)  # the ratios are to them
    args.generators = max(1, min(args.generators, args.devices))
    started = time.monotonic()
    work = Path(tempfile.mkdtemp(prefix="service-ingest-"))
    try:
        harness = Harness(args, work)
        per = harness.run()
    finally:
        if args.keep:
            print(f"kept {work} (databases, logs, certificates)", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)
    lines = markdown(args, per, harness.client_note)
    ratio = target(per)
    plain_ratio = target(per, PLAIN)
    verdict = "n/a" if ratio is None else ("met" if ratio >= TARGET else "NOT met")
    shown = "n/a" if ratio is None else f"{ratio:.2f}"
    plain_verdict = (
        "n/a" if plain_ratio is None else ("met" if plain_ratio >= TARGET else "NOT met")
    )
    plain_shown = "n/a" if plain_ratio is None else f"{plain_ratio:.2f}"
    lines += [
        "",
        f"Target: data service >= {TARGET} x the same server without storage (its storage "
        f"process answering at once, no database): {shown} ({verdict}). "
        f"Against a plain handler answering at once: {plain_shown} ({plain_verdict}).",
    ]
    print("\n".join(lines))
    print(f"({time.monotonic() - started:.0f} s)")
    failed = sum(1 for runs in per.values() for r in runs if r is None)
    if args.json is not None:
        everything = {
            "args": {k: v for k, v in vars(args).items() if k != "json"},
            "generator": harness.client_note,
            "results": per,
            "summary": summarize(per),
            "target": ratio,
            "target_plain": plain_ratio,
            "markdown": lines,
            "failed": failed,
        }
        args.json.write_text(json.dumps(everything, indent=1, default=str) + "\n")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
