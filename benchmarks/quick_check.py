"""Quick throughput check: sequential CON GETs to coap-server-notls over loopback.

Two ways of driving libcoap-py: ``Session.request`` and the C sample's handler
loop (send a PDU, run_once until the response handler saw it). Prints requests
per second and client CPU microseconds per request for each, best of ``--rounds``.

    python benchmarks/quick_check.py [-n 20000] [--rounds 3]

The full side-by-side benchmark (C client, aiocoap) is a later issue; this is
the known starting point.
"""

from __future__ import annotations

import argparse
import shutil
import socket
import subprocess
import time

import libcoap_py as coap


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(port: int) -> subprocess.Popen[bytes]:
    exe = shutil.which("coap-server-notls") or shutil.which("coap-server-openssl")
    if exe is None:
        raise SystemExit("coap-server-notls not found: sudo apt install libcoap3-bin")
    proc = subprocess.Popen(
        [exe, "-A", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    with coap.Context() as ctx:
        s = ctx.client_session(f"coap://127.0.0.1:{port}")
        s.ack_timeout = 1.0
        while True:
            try:
                s.request("GET", "", timeout=0.5)
                return proc
            except coap.CoapError:
                if time.monotonic() > deadline:
                    proc.kill()
                    raise SystemExit("coap server did not answer within 10 s") from None


def with_request(uri: str, n: int) -> tuple[float, float]:
    with coap.Context() as ctx:
        s = ctx.client_session(uri)
        for _ in range(100):
            s.request("GET", "")
        wall, cpu = time.perf_counter(), time.process_time()
        for _ in range(n):
            s.request("GET", "")
        return time.perf_counter() - wall, time.process_time() - cpu


def with_handler_loop(uri: str, n: int) -> tuple[float, float]:
    with coap.Context() as ctx:
        s = ctx.client_session(uri)
        done = [0]

        @ctx.register_response_handler
        def on_response(session: object, sent: object, received: object, mid: int) -> None:
            done[0] += 1

        def one() -> None:
            target = done[0] + 1
            s.send(s.new_pdu(coap.MessageType.CON, coap.Code.GET))
            while done[0] < target:
                ctx.run_once(1000)

        for _ in range(100):
            one()
        wall, cpu = time.perf_counter(), time.process_time()
        for _ in range(n):
            one()
        return time.perf_counter() - wall, time.process_time() - cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=20000, help="requests per round")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    port = free_udp_port()
    server = start_server(port)
    uri = f"coap://127.0.0.1:{port}"
    try:
        print(
            f"libcoap {coap.libcoap_version()}, {args.n} sequential CON GETs, best of {args.rounds}"
        )
        for name, fn in (("Session.request", with_request), ("handler loop", with_handler_loop)):
            best = min((fn(uri, args.n) for _ in range(args.rounds)), key=lambda r: r[0])
            wall, cpu = best
            print(
                f"{name:16s} {args.n / wall:9.0f} req/s   "
                f"{cpu / args.n * 1e6:6.1f} us client CPU/request"
            )
    finally:
        server.terminate()
        server.wait(5)


if __name__ == "__main__":
    main()
