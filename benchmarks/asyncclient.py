"""libcoap-py's asyncio contender (libcoap_py.aio): one measurement, one JSON line.

    python -I benchmarks/asyncclient.py MODE URI N [options] [--uvloop]

MODE and the options are those of ``cclient.c``: ``get``/``post`` (sequential
awaited requests on one session) and ``inflight`` (``-s`` sessions, one task
each, every task awaiting one request after another: as many requests in
flight as sessions). The timed loop follows a warm-up; CPU is this process's
own (``time.process_time``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import sys
import time
from pathlib import Path
from typing import Any

import libcoap_py as coap
from libcoap_py import aio

sys.path.insert(0, str(Path(__file__).resolve().parent))
from pyclient import rss_kib


async def measure(args: argparse.Namespace) -> dict[str, Any]:
    method = coap.Code.POST if args.mode == "post" else coap.Code.GET
    body = b"x" * args.bytes if args.mode == "post" else b""
    dtls: coap.PKI | coap.PSK | None = None
    if args.uri.startswith("coaps://"):
        if args.key:
            dtls = coap.PSK(identity=args.identity.encode(), key=args.key.encode())
        else:
            dtls = coap.PKI(cert=args.cert, key=args.cert_key, ca=args.ca)
    failures = 0
    async with aio.Context() as ctx:
        if args.mode in ("get", "post"):
            sessions = [ctx.client_session(args.uri, dtls)]
        elif args.mode == "inflight":
            sessions = [ctx.client_session(args.uri, dtls) for _ in range(args.sessions)]
        else:
            raise SystemExit(f"unknown mode {args.mode!r}")

        async def worker(session: aio.Session, n: int) -> None:
            nonlocal failures
            request, path = session.request, args.path
            for _ in range(n):
                if (await request(method, path, body, timeout=30)).code >> 5 != 2:
                    failures += 1

        async def run(total: int) -> None:
            each, extra = divmod(total, len(sessions))
            await asyncio.gather(*[worker(s, each + (i < extra)) for i, s in enumerate(sessions)])

        await run(max(args.warmup, len(sessions)))
        before = rss_kib()
        usage = resource.getrusage(resource.RUSAGE_SELF)
        wall, cpu = time.perf_counter(), time.process_time()
        await run(args.n)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        after = resource.getrusage(resource.RUSAGE_SELF)
    return {
        "ops": args.n,
        "wall": wall,
        "cpu": cpu,
        "sys": after.ru_stime - usage.ru_stime,
        "vcsw": after.ru_nvcsw - usage.ru_nvcsw,
        "ivcsw": after.ru_nivcsw - usage.ru_nivcsw,
        "rss_before_kib": before,
        "rss_after_kib": rss_kib(),
        "failures": failures,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode")
    parser.add_argument("uri")
    parser.add_argument("n", type=int)
    parser.add_argument("-P", "--path", default="")
    parser.add_argument("-s", "--sessions", type=int, default=1)
    parser.add_argument("-w", "--warmup", type=int, default=100)
    parser.add_argument("-b", "--bytes", type=int, default=1024)
    parser.add_argument("-u", "--identity", default="bench")
    parser.add_argument("-k", "--key", default="")
    parser.add_argument("-c", "--cert", default="")
    parser.add_argument("-j", "--cert-key", default="")
    parser.add_argument("-C", "--ca", default="")
    parser.add_argument("--uvloop", action="store_true", help="run on uvloop's event loop")
    args = parser.parse_args()
    if args.uvloop:
        import uvloop

        loop = uvloop.new_event_loop()
        try:
            result = loop.run_until_complete(measure(args))
        finally:
            loop.close()
    else:
        result = asyncio.run(measure(args))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
