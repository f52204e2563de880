"""Block-wise transfer time: PUT then GET a body with ``Session.request``.

Against coap-server-openssl (the libcoap tools of the generation the binding was
built for, first on PATH) and against the project's own server in a thread. On
libcoap 4.3 libcoap does the blocks; on 4.2 the binding does them in Python.
Prints the best of ``--rounds`` wall-clock seconds per PUT and per GET.

    python benchmarks/blockwise.py [--size 1048576] [--block 1024] [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import threading
import time
from typing import Any

import libcoap_py as coap


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_c_server(port: int) -> subprocess.Popen[bytes]:
    exe = shutil.which("coap-server-openssl")
    if exe is None:
        raise SystemExit("coap-server-openssl not found (libcoap3-bin or libcoap2-bin)")
    return subprocess.Popen(
        [exe, "-A", "127.0.0.1", "-p", str(port), "-d", "10"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def start_own_server() -> tuple[int, Any]:
    ready = threading.Event()
    state: dict[str, Any] = {}

    def run() -> None:
        with coap.Context() as ctx:
            state["ctx"] = ctx
            state["port"] = ctx.add_endpoint("coap://127.0.0.1:0").port
            stored: dict[str, bytes] = {}

            @ctx.resource("body", methods=("GET", "PUT"))
            def body(request: coap.Request, response: coap.ServerResponse) -> None:
                if request.method == "PUT":
                    stored["body"] = request.payload
                else:
                    response.payload = stored.get("body", b"")

            ready.set()
            ctx.run()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    ready.wait(10)
    return int(state["port"]), state["ctx"]


def measure(uri: str, body: bytes, block: int, rounds: int) -> tuple[float, float]:
    best_put = best_get = float("inf")
    with coap.Context() as ctx:
        session = ctx.client_session(uri)
        for _ in range(rounds):
            started = time.perf_counter()
            put = session.request("PUT", "body", body, block_size=block, timeout=120)
            best_put = min(best_put, time.perf_counter() - started)
            assert put.code.class_ == 2, put
            started = time.perf_counter()
            got = session.request("GET", "body", block_size=block, timeout=120)
            best_get = min(best_get, time.perf_counter() - started)
            assert got.payload == body, "body differs"
    return best_put, best_get


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=1 << 20)
    parser.add_argument("--block", type=int, default=1024)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    body = os.urandom(args.size)
    print(f"libcoap {coap.libcoap_version()}, {args.size} bytes, {args.block}-byte blocks")
    port = free_udp_port()
    server = start_c_server(port)
    try:
        time.sleep(0.5)  # benchmark only: give the server time to bind
        put, get = measure(f"coap://127.0.0.1:{port}", body, args.block, args.rounds)
        print(f"coap-server-openssl: PUT {put:.3f} s, GET {get:.3f} s")
    finally:
        server.terminate()
        server.wait(5)
    own_port, ctx = start_own_server()
    put, get = measure(f"coap://127.0.0.1:{own_port}", body, args.block, args.rounds)
    ctx.stop()
    print(f"own server:          PUT {put:.3f} s, GET {get:.3f} s")


if __name__ == "__main__":
    main()
