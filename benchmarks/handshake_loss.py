"""Certificate DTLS handshakes through a lossy link: libcoap-py against coap-client.

Every run is a new DTLS session (a handshake, then one PUT) to
``coap-server-openssl`` through ``lossy_proxy.py`` (default: 20% loss each way,
3% duplication, 3% reordering), with a request timeout of ``--deadline``
seconds (``-B`` for the command-line clients). Three contenders, interleaved,
``--count`` runs each, ``--jobs`` at a time:

- ``api``: ``Context.client_session(...).request("PUT", ...)`` in this process;
- ``cli``: ``libcoap-py put coaps://... -B DEADLINE`` (a subprocess per run);
- ``coap-client``: ``coap-client-openssl -m put ... -B DEADLINE``.

The server files each PUT as a resource of its own (``-d``); afterwards every
path is read back from it directly (no proxy). A run of libcoap-py succeeds
when the client reported a 2.xx response and the server filed the PUT. A run
of coap-client succeeds when the server filed its PUT: coap-client 4.3 exits
with status 0 even when it got no response, so its status says nothing.

    python -I benchmarks/handshake_loss.py                    # 200 runs each
    python -I benchmarks/handshake_loss.py --count 20 --floor 0.85   # CI's sample

``--floor F`` exits 1 unless libcoap-py's API and CLI each succeed in at least
the fraction F of their runs and in at least as many runs as coap-client (the
latter only with ``--count`` 100 or more, where chance evens out). Loopback
only: the server, the proxy and the clients all run on 127.0.0.1.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from lossy_proxy import LossyProxy  # noqa: E402

import libcoap_py as coap  # noqa: E402
from libcoap_py import certs  # noqa: E402


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _answers_ping(port: int) -> bool:
    """A CoAP ping (an empty CON) to coap://127.0.0.1:port answered with RST."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(0.2)
        try:
            sock.sendto(b"\x40\x00\x12\x34", ("127.0.0.1", port))
            return sock.recv(64)[:1] == b"\x70"
        except OSError:
            return False


def _start_server(
    tool: str, files: dict[str, Path], count: int
) -> tuple[subprocess.Popen[bytes], int]:
    """coap-server on free ports P (coap) and P + 1 (coaps); returns (process, P + 1)."""
    for _ in range(5):
        port = _free_port()
        proc = subprocess.Popen(
            [tool, "-A", "127.0.0.1", "-p", str(port), "-d", str(4 * count + 10),
             "-c", str(files["server_cert"]), "-j", str(files["server_key"]),
             "-C", str(files["ca"]), "-v", "0"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL,
        )  # fmt: skip
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and proc.poll() is None:
            if _answers_ping(port):
                return proc, port + 1
        proc.kill()
        proc.wait()
    raise RuntimeError(f"{tool} did not start")


def _api_run(port: int, files: dict[str, Path], path: str, deadline: float) -> tuple[bool, str]:
    pki = coap.PKI(files["cert"], files["key"], files["ca"])
    started = time.monotonic()
    events: list[str] = []
    with coap.Context() as ctx:

        @ctx.register_event_handler
        def event(session: coap.Session | None, what: object) -> None:
            name = getattr(what, "name", str(what))
            events.append(f"{name}@{time.monotonic() - started:.0f}s")

        session = ctx.client_session(f"coaps://127.0.0.1:{port}", dtls=pki)
        try:
            response = session.request("PUT", path, payload=b"loss", timeout=deadline)
            code = int(response.code)
            return 64 <= code < 96, f"code {code >> 5}.{code & 31:02d}"
        except coap.CoapError as exc:
            return False, (
                f"{type(exc).__name__}: {exc} [{session.renewals} renewals; events "
                f"{' '.join(events) or 'none'}]"
            )


def _command_run(command: list[str], deadline: float) -> tuple[bool, str]:
    try:
        done = subprocess.run(
            command, capture_output=True, timeout=deadline + 30, stdin=subprocess.DEVNULL
        )
    except subprocess.TimeoutExpired:
        return False, "hung past the deadline"
    text = (done.stderr or done.stdout).decode("utf-8", "replace").strip().splitlines()
    return done.returncode == 0, text[-1] if text else f"exit {done.returncode}"


def _filed(coap_port: int, numbers: dict[str, list[int]]) -> dict[str, set[int]]:
    """Which runs' PUTs the server filed: each path read back over plain coap://."""
    found: dict[str, set[int]] = {}
    with coap.Context() as ctx:
        session = ctx.client_session(f"coap://127.0.0.1:{coap_port}")
        for kind, runs in numbers.items():
            found[kind] = {
                n
                for n in runs
                if session.request("GET", f"{kind}-{n}", timeout=5).code == coap.Code.CONTENT
            }
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=200, help="runs per contender")
    parser.add_argument("--jobs", type=int, default=8, help="runs at a time")
    parser.add_argument("--deadline", type=float, default=60.0, help="request timeout, s")
    parser.add_argument("--loss", type=float, default=0.2)
    parser.add_argument("--duplicate", type=float, default=0.03)
    parser.add_argument("--reorder", type=float, default=0.03)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--floor", type=float, default=None, help="fail below this success rate")
    parser.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = parser.parse_args(argv)

    tls = coap.backend().name.lower()
    server_tool = shutil.which(f"coap-server-{tls}")
    client_tool = shutil.which(f"coap-client-{tls}")
    if server_tool is None or client_tool is None:
        print(f"needs coap-server-{tls} and coap-client-{tls} (apt install libcoap3-bin)")
        return 2
    work = Path(tempfile.mkdtemp(prefix="handshake-loss-"))
    files = certs.init_dir(work / "certs")
    server, port = _start_server(server_tool, files, args.count)
    results: dict[str, dict[int, tuple[bool, str]]] = {"api": {}, "cli": {}, "coap-client": {}}
    lock = threading.Lock()
    started = time.monotonic()
    try:
        with LossyProxy(
            ("127.0.0.1", port), loss=args.loss, duplicate=args.duplicate,
            reorder=args.reorder, seed=args.seed,
        ) as proxy:  # fmt: skip
            uri = f"coaps://127.0.0.1:{proxy.port}"
            key_args = ["-c", str(files["cert"]), "-j", str(files["key"]), "-C", str(files["ca"])]
            if coap.libcoap_version().startswith("4.2"):
                # 4.2's tools have no -j: the -c file holds the certificate and its key.
                combined = work / "cert+key.pem"
                combined.write_bytes(files["cert"].read_bytes() + files["key"].read_bytes())
                key_args = ["-c", str(combined), "-C", str(files["ca"])]
            deadline = args.deadline

            def job(kind: str, number: int) -> Callable[[], None]:
                path = f"{kind}-{number}"

                def run() -> None:
                    if kind == "api":
                        outcome = _api_run(proxy.port, files, path, deadline)
                    elif kind == "cli":
                        outcome = _command_run(
                            [sys.executable, "-I", "-m", "libcoap_py", "put", f"{uri}/{path}",
                             "-e", "loss", "-B", f"{deadline:g}", *key_args], deadline,
                        )  # fmt: skip
                    else:
                        outcome = _command_run(
                            [client_tool, "-m", "put", "-e", "loss", "-B", f"{deadline:g}",
                             *key_args, f"{uri}/{path}"], deadline,
                        )  # fmt: skip
                    with lock:
                        results[kind][number] = outcome

                return run

            jobs = [job(kind, n) for n in range(args.count) for kind in results]
            with ThreadPoolExecutor(max_workers=args.jobs) as pool:
                for future in [pool.submit(j) for j in jobs]:
                    future.result()
            stats = proxy.stats
        filed = _filed(port - 1, {kind: list(runs) for kind, runs in results.items()})
    finally:
        server.terminate()
        server.wait(timeout=10)
        shutil.rmtree(work, ignore_errors=True)

    elapsed = time.monotonic() - started
    print(
        f"libcoap {coap.libcoap_version()} / {coap.backend().name}; {args.count} runs each, "
        f"{args.jobs} at a time, deadline {args.deadline:g} s; proxy loss {args.loss:.0%}, "
        f"duplication {args.duplicate:.0%}, reordering {args.reorder:.0%} "
        f"(seed {args.seed}); {elapsed:.0f} s"
    )
    print(
        f"proxy: {stats.received} datagrams, {stats.dropped} dropped, "
        f"{stats.duplicated} duplicated, {stats.reordered} reordered"
    )
    figures = {}
    for kind, runs in results.items():
        ok = 0
        failures: dict[str, int] = {}
        for number, (reported, why) in runs.items():
            on_server = number in filed[kind]
            if kind == "coap-client":
                reported, why = on_server, "not filed on the server"
            if reported and on_server:
                ok += 1
            else:
                if reported:
                    why = f"reported {why}, but not filed on the server"
                elif on_server:
                    why = f"{why} (the server filed it: only the answer was lost)"
                failures[why[:300]] = failures.get(why[:300], 0) + 1
        figures[kind] = ok
        print(f"{kind:>12}: {ok}/{len(runs)} succeeded ({ok / max(1, len(runs)):.1%})")
        for why, n in sorted(failures.items(), key=lambda item: -item[1])[:5]:
            print(f"{'':>14}{n} x {why}")
    if args.json is not None:
        args.json.write_text(json.dumps({"count": args.count, "succeeded": figures}, indent=1))
    if args.floor is not None:
        need = args.floor * args.count
        bad = [k for k in ("api", "cli") if figures[k] < need]
        if args.count >= 100:
            bad += [k for k in ("api", "cli") if figures[k] < figures["coap-client"]]
        if bad:
            print(f"below the floor ({args.floor:.0%}, or coap-client's count): {sorted(set(bad))}")
            return 1
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
