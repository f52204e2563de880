"""aiocoap contender of the benchmarks: one measurement, one JSON line on stdout.

    python -I benchmarks/aioclient.py MODE URI N [-P path] [-s concurrency] [-w warmup]

MODE: get, post (``-b`` bytes), inflight (``-s`` requests kept in flight with
asyncio), growth (sequential GET, RSS before and after). coap:// only: aiocoap's
DTLS is PSK through tinydtls (DTLSSocket), not part of this comparison. CPU is
this process's own (``time.process_time``) around the timed loop.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import time
from typing import Any

import aiocoap


def rss_kib() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return -1


async def measure(args: argparse.Namespace) -> dict[str, Any]:
    ctx = await aiocoap.Context.create_client_context(transports=["udp6"])
    uri = args.uri.rstrip("/") + "/" + args.path
    code = aiocoap.POST if args.mode == "post" else aiocoap.GET
    body = b"x" * args.bytes if args.mode == "post" else b""
    failures = 0

    async def one() -> None:
        nonlocal failures
        msg = aiocoap.Message(code=code, uri=uri, payload=body)
        response = await ctx.request(msg).response
        if not response.code.is_successful():
            failures += 1

    async def sequential(n: int) -> None:
        for _ in range(n):
            await one()

    async def in_flight(n: int) -> None:
        left = n

        async def worker() -> None:
            nonlocal left
            while left > 0:
                left -= 1
                await one()

        await asyncio.gather(*(worker() for _ in range(args.sessions)))

    run = in_flight if args.mode == "inflight" else sequential
    if args.mode not in ("get", "post", "inflight", "growth"):
        raise SystemExit(f"mode {args.mode!r} is not measured with aiocoap")
    try:
        await run(args.warmup)
        gc.collect()
        before = rss_kib()
        wall, cpu = time.perf_counter(), time.process_time()
        await run(args.n)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        gc.collect()
        after = rss_kib()
    finally:
        await ctx.shutdown()
    return {
        "ops": args.n,
        "wall": wall,
        "cpu": cpu,
        "rss_before_kib": before,
        "rss_after_kib": after,
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
    args = parser.parse_args()
    print(json.dumps(asyncio.run(measure(args))))


if __name__ == "__main__":
    main()
