#!/usr/bin/env python3
"""Run the DTLS examples end to end against a local libcoap server.

Until the project has a server of its own, this stands in for Span:

1. makes a demo PKI in a working folder, unless a valid one is there
   (``libcoap_py.certs``: root CA, server certificate, and the sample's
   ``cert.crt`` = device certificate + CA, ``key.pem``);
2. starts ``coap-server-openssl`` (Debian package libcoap3-bin) on free
   loopback ports with the server certificate: coap on P, coaps on P+1;
   ``-d`` lets it create the POSTed resource (2.01 Created, then 2.04
   Changed) and ``-e`` has it echo the payload back, so the response
   carries a "downstream message" as Span's does;
3. waits until the server answers a CoAP ping (bounded);
4. runs ``examples/dtls_sample.py`` and ``examples/span_client.py`` against
   coaps://127.0.0.1:P+1 and checks what they print;
5. stops the server.

Exits non-zero if any step failed.

    pip install '.[certs]'
    python examples/local_demo.py [--workdir .demo]
"""

from __future__ import annotations

import argparse
import datetime
import os
import shlex
import shutil
import socket
import struct
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
CERT_FILES = ("ca.crt", "ca.key", "server.crt", "server.key", "cert.crt", "key.pem")


def step(text: str) -> None:
    print(f"\n--- {text}", flush=True)


class DemoError(Exception):
    pass


def certs_usable(workdir: Path) -> bool:
    """All demo files present, and no certificate in them expires within a day."""
    if not all((workdir / name).is_file() for name in CERT_FILES):
        return False
    from cryptography import x509

    soon = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(days=1)
    for name in ("ca.crt", "server.crt", "cert.crt"):
        try:
            cert = x509.load_pem_x509_certificate((workdir / name).read_bytes())
        except ValueError:
            return False
        end = getattr(cert, "not_valid_after_utc", None)
        if end is None:  # cryptography < 42: a naive UTC datetime
            end = cert.not_valid_after.replace(tzinfo=datetime.timezone.utc)
        if end < soon:
            return False
    return True


def make_certs(workdir: Path) -> None:
    if certs_usable(workdir):
        print(f"Using the certificates in {workdir}")
        return
    from libcoap_py import certs

    files = certs.init_dir(workdir, device_id="device-1", overwrite=True)
    print(
        f"Made new certificates in {workdir}: {', '.join(sorted(p.name for p in files.values()))}"
    )


def port_pair_free(port: int) -> bool:
    """P and P+1 free on 127.0.0.1 for UDP and TCP (coap-server binds all four)."""
    socks = []
    try:
        for p in (port, port + 1):
            for kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM):
                s = socket.socket(socket.AF_INET, kind)
                socks.append(s)
                s.bind(("127.0.0.1", p))
        return True
    except OSError:
        return False
    finally:
        for s in socks:
            s.close()


def free_port_pair(tries: int = 50) -> int:
    for _ in range(tries):
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port < 65535 and port_pair_free(port):
            return port
    raise DemoError("found no two free adjacent loopback ports")


def coap_ping(port: int, timeout: float) -> bool:
    """Send a CoAP ping (empty CON) to 127.0.0.1:port; True when an RST comes back."""
    mid = os.getpid() & 0xFFFF
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(timeout)
        try:
            s.sendto(struct.pack("!BBH", 0x40, 0x00, mid), ("127.0.0.1", port))
            data = s.recv(64)
        except OSError:  # timeout, or ICMP port unreachable while it starts
            return False
    return len(data) >= 4 and data[0] >> 4 & 0x3 == 3 and struct.unpack("!H", data[2:4])[0] == mid


def start_server(
    binary: str, workdir: Path, log_path: Path, ready_within: float
) -> tuple[subprocess.Popen, int]:
    for attempt in range(3):
        port = free_port_pair()
        cmd = [
            binary,
            "-A",
            "127.0.0.1",
            "-p",
            str(port),
            "-c",
            str(workdir / "server.crt"),
            "-j",
            str(workdir / "server.key"),
            "-C",
            str(workdir / "ca.crt"),
            "-d",
            "10",
            "-e",
        ]
        print("$ " + shlex.join(cmd))
        log = open(log_path, "ab")
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        deadline = time.monotonic() + ready_within
        while time.monotonic() < deadline and proc.poll() is None:
            if coap_ping(port, timeout=0.2):
                print(f"Server answers on coap://127.0.0.1:{port}, coaps on {port + 1}")
                return proc, port
        stop_server(proc)
        print(f"Server did not come up on port {port} (attempt {attempt + 1})")
    raise DemoError(f"coap-server did not answer; its log: {log_path}")


def stop_server(proc: subprocess.Popen) -> None:
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=5)


def run_example(script: str, args: list[str], expect: list[str], timeout: float) -> None:
    cmd = [sys.executable, str(HERE / script), *args]
    print("$ " + shlex.join(cmd), flush=True)
    try:
        proc = subprocess.run(
            cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout
        )
    except subprocess.TimeoutExpired as exc:
        raise DemoError(f"{script} did not finish within {timeout:g} s") from exc
    for line in proc.stdout.splitlines():
        print(f"  | {line}")
    for line in proc.stderr.splitlines():
        print(f"  ! {line}")
    if proc.returncode != 0:
        raise DemoError(f"{script} exited with {proc.returncode}")
    missing = [text for text in expect if text not in proc.stdout]
    if missing:
        raise DemoError(f"{script} did not print: {missing}")
    print(f"{script}: OK")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description="Run the DTLS examples against a local coap-server-openssl."
    )
    p.add_argument(
        "--workdir",
        type=Path,
        default=Path(".demo"),
        help="folder for certificates and the server log (default: %(default)s)",
    )
    p.add_argument(
        "--server",
        default=os.environ.get("COAP_SERVER", "coap-server-openssl"),
        help="libcoap server program (default: %(default)s, or $COAP_SERVER)",
    )
    p.add_argument(
        "--path", default="path-for-data", help="Uri-Path to POST to (default: %(default)s)"
    )
    p.add_argument("--timeout", type=float, default=60.0, help="limit for each example, seconds")
    args = p.parse_args(argv)
    if hasattr(sys.stdout, "reconfigure"):
        sys.stdout.reconfigure(line_buffering=True)

    binary = shutil.which(args.server)
    if binary is None:
        print(
            f"{args.server} not found: install libcoap3-bin (scripts/install-system-deps)",
            file=sys.stderr,
        )
        return 2

    workdir = args.workdir.resolve()
    proc: subprocess.Popen | None = None
    try:
        step("1. Certificates")
        make_certs(workdir)

        step("2. Start the local server")
        log_path = workdir / "coap-server.log"
        proc, port = start_server(binary, workdir, log_path, ready_within=10.0)
        target = [
            "--host",
            "127.0.0.1",
            "--port",
            str(port + 1),
            "--path",
            args.path,
            "--cert",
            str(workdir / "cert.crt"),
            "--key",
            str(workdir / "key.pem"),
            "--ca",
            str(workdir / "cert.crt"),
        ]

        step("3. examples/dtls_sample.py (the C sample's port)")
        payload = "this is the payload"
        run_example(
            "dtls_sample.py",
            [*target, "--payload", payload],
            ["DTLS connected", "Response 2.0", f"Downstream message: {payload}", "Done: 2.0"],
            args.timeout,
        )

        step("4. examples/span_client.py (the same with Session.request)")
        payload = "hello from span_client.py"
        run_example(
            "span_client.py",
            [*target, "--payload", payload],
            ["Response 2.04 Changed", f"Downstream message: {payload}"],
            args.timeout,
        )
    except DemoError as exc:
        print(f"\nDemo FAILED: {exc}", file=sys.stderr)
        if proc is not None:
            print(f"(server log: {workdir / 'coap-server.log'})", file=sys.stderr)
        return 1
    finally:
        if proc is not None:
            step("5. Stop the server")
            stop_server(proc)
            print(f"Server stopped (exit status {proc.returncode})")
    print("\nDemo passed: both examples got a 2.xx response and their payload back over DTLS.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
