"""libcoap-py contenders of the benchmarks: one measurement, one JSON line on stdout.

    python -I benchmarks/pyclient.py API MODE URI N [options]

API is ``request`` (``Session.request``), ``loop`` (the C sample's handler loop:
``session.send(pdu)`` from the main loop, ``ctx.run_once()`` until the response
handler counted the answer) or ``inhandler`` (the response handler sends the next
request itself).
MODE and the options are those of ``cclient.c``: get, post, inflight (loop only),
handshake, idle, growth. The timed loop follows
a warm-up; CPU is this process's own (``time.process_time``).
"""

from __future__ import annotations

import argparse
import gc
import json
import resource
import time
from typing import Any, Callable

import libcoap_py as coap


def rss_kib() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return -1


def raise_nack(
    session: coap.Session | None, sent: coap.PDU | None, reason: coap.NackReason | int, mid: int
) -> None:
    """The clients' NACK handler: a failed request ends the measurement."""
    raise coap.NackError(reason)


class Client:
    """One Context and the way (``request`` or ``loop``) requests go out."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.ctx = coap.Context()
        self.method = coap.Code.POST if args.mode == "post" else coap.Code.GET
        self.con, self.uri_path = coap.MessageType.CON, coap.OptionNumber.URI_PATH
        self.body = b"x" * args.bytes if args.mode == "post" else b""
        self.path = args.path.encode()
        self.dtls: coap.PKI | coap.PSK | None = None
        if args.uri.startswith("coaps://"):
            if args.key:
                self.dtls = coap.PSK(identity=args.identity.encode(), key=args.key.encode())
            else:
                self.dtls = coap.PKI(cert=args.cert, key=args.cert_key, ca=args.ca)
        self.waiting: dict[coap.Session, bool] = {}
        # Answered sessions, for in_flight() to send again (None: not in in_flight()).
        self.ready: list[coap.Session] | None = None
        self.responses = 0
        self.failures = 0
        # The in-handler shape: requests the response handler still sends.
        self.chain_left = 0
        handler = self.on_response_send if args.api == "inhandler" else self.on_response
        self.ctx.register_response_handler(handler)
        self.ctx.register_nack_handler(self.on_nack)

    def on_response(
        self, session: coap.Session | None, sent: coap.PDU | None, received: coap.PDU, mid: int
    ) -> None:
        assert session is not None  # every session here is one of ours
        if received.code.class_ != 2:
            self.failures += 1
        self.waiting[session] = False
        if self.ready is not None:
            self.ready.append(session)
        self.responses += 1

    def on_response_send(
        self, session: coap.Session | None, sent: coap.PDU | None, received: coap.PDU, mid: int
    ) -> None:
        """The in-handler shape: count the answer, then send the next request from here,
        a fresh PDU as the C sample builds it."""
        assert session is not None
        if received.code.class_ != 2:
            self.failures += 1
        self.responses += 1
        if self.chain_left:
            self.chain_left -= 1
            pdu = session.new_pdu(self.con, self.method)
            if self.path:
                pdu.add_option(self.uri_path, self.path)
            if self.body:
                pdu.payload = self.body
            session.send(pdu)

    on_nack = staticmethod(raise_nack)

    def session(self) -> coap.Session:
        s = self.ctx.client_session(self.args.uri, dtls=self.dtls)
        self.waiting[s] = False
        return s

    # -- the handler loop -----------------------------------------------------------------

    def send(self, s: coap.Session) -> None:
        pdu = s.new_pdu(self.con, self.method)
        if self.path:
            pdu.add_option(self.uri_path, self.path)
        if self.body:
            pdu.payload = self.body
        self.waiting[s] = True
        s.send(pdu)

    def wait_for(self, s: coap.Session) -> None:
        deadline = time.monotonic() + 30
        while self.waiting[s]:
            self.ctx.run_once(1000)
            if time.monotonic() > deadline:
                raise coap.RequestTimeout("no response within 30 s")

    # -- one request, either way ----------------------------------------------------------

    def one(self, s: coap.Session) -> None:
        """One request and its answer (handshakes and idle sessions)."""
        if self.args.api == "loop":
            self.send(s)
            self.wait_for(s)
        else:
            r = s.request(self.method, self.args.path, self.body, timeout=30)
            if r.code >> 5 != 2:  # the code class, as C's COAP_RESPONSE_CLASS
                self.failures += 1

    # -- sequential requests: the loops a user would write, names hoisted as C has them --

    def sequential(self, s: coap.Session, n: int) -> None:
        if self.args.api == "request":
            self.request_loop(s, n)
        elif self.args.api == "loop":
            self.handler_loop(s, n)
        else:
            self.in_handler_loop(s, n)

    def request_loop(self, s: coap.Session, n: int) -> None:
        request, method, path, body = s.request, self.method, self.args.path, self.body
        failures = 0
        for _ in range(n):
            if request(method, path, body, timeout=30).code >> 5 != 2:
                failures += 1
        self.failures += failures

    def handler_loop(self, s: coap.Session, n: int) -> None:
        """The C sample's shape: new_pdu, options, payload, send, then run_once()
        until the response handler has counted the answer."""
        new_pdu, send, run_once = s.new_pdu, s.send, self.ctx.run_once
        con, method, uri_path = self.con, self.method, self.uri_path
        path, body, waiting = self.path, self.body, self.waiting
        for _ in range(n):
            pdu = new_pdu(con, method)
            if path:
                pdu.add_option(uri_path, path)
            if body:
                pdu.payload = body
            waiting[s] = True
            send(pdu)
            run_once(1000)
            if waiting[s]:  # not answered in the first pass: wait, bounded (30 s)
                self.wait_for(s)

    def in_handler_loop(self, s: coap.Session, n: int) -> None:
        """The first request from here, the other n - 1 from the response handler;
        run_once() until libcoap has nothing left to send (the C sample's loop)."""
        if n <= 0:
            return
        self.chain_left = n - 1
        target = self.responses + n
        self.send(s)
        run_once, can_exit, monotonic = self.ctx.run_once, self.ctx.can_exit, time.monotonic
        deadline = monotonic() + 30
        while not can_exit():
            run_once(1000)
            if monotonic() > deadline:
                raise coap.RequestTimeout("no response within 30 s")
        if self.chain_left or self.responses != target:
            raise RuntimeError("the in-handler chain stopped early")

    def in_flight(self, sessions: list[coap.Session], n: int) -> None:
        target, sent = self.responses + n, 0
        deadline = time.monotonic() + 60
        ready: list[coap.Session] = []
        run_once, send = self.ctx.run_once, self.send
        self.ready = ready
        for s in sessions[:n]:
            send(s)
            sent += 1
        while self.responses < target:
            run_once(1000)
            # The sessions answered in this pass get their next request (the C client
            # looks through all sessions instead, which costs C next to nothing).
            while ready and sent < n:
                send(ready.pop())
                sent += 1
            if time.monotonic() > deadline:
                raise coap.RequestTimeout("in-flight run did not finish within 60 s")
        self.ready = None

    def handshakes(self, n: int) -> None:
        for _ in range(n):
            s = self.session()
            self.one(s)
            del self.waiting[s]
            s.close()


class FirstRequest:
    """The DTLS client sample's whole run, ported: credentials, a new Context and
    session, one CON POST with a Uri-Path and a small payload, its answer, close."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.body = b"x" * args.bytes
        self.code: int | None = None
        self.failures = 0

    def credentials(self) -> coap.PKI | coap.PSK:
        args = self.args
        if args.key:
            return coap.PSK(identity=args.identity.encode(), key=args.key.encode())
        return coap.PKI(cert=args.cert, key=args.cert_key, ca=args.ca)

    def on_response(
        self, session: coap.Session | None, sent: coap.PDU | None, received: coap.PDU, mid: int
    ) -> None:
        self.code = int(received.code)

    on_nack = staticmethod(raise_nack)

    def run(self, n: int) -> None:
        one = self.one_request if self.args.api == "request" else self.one_loop
        for _ in range(n):
            one()

    def one_request(self) -> None:
        with coap.Context() as ctx:
            with ctx.client_session(self.args.uri, dtls=self.credentials()) as s:
                r = s.request(coap.Code.POST, self.args.path, self.body, timeout=30)
                if r.code >> 5 != 2:
                    self.failures += 1

    def one_loop(self) -> None:
        with coap.Context() as ctx:
            ctx.register_response_handler(self.on_response)
            ctx.register_nack_handler(self.on_nack)
            with ctx.client_session(self.args.uri, dtls=self.credentials()) as s:
                pdu = s.new_pdu(coap.MessageType.CON, coap.Code.POST)
                pdu.add_option(coap.OptionNumber.URI_PATH, self.args.path)
                pdu.payload = self.body
                self.code = None
                s.send(pdu)
                deadline = time.monotonic() + 30
                while not ctx.can_exit():
                    ctx.run_once(1000)
                    if time.monotonic() > deadline:
                        raise coap.RequestTimeout("no response within 30 s")
                if self.code is None:
                    raise RuntimeError("no response before can_exit()")
                if self.code >> 5 != 2:
                    self.failures += 1


def measure_first(args: argparse.Namespace) -> dict[str, Any]:
    if args.api not in ("request", "loop"):
        raise SystemExit("first needs request or loop")
    first = FirstRequest(args)
    first.run(args.warmup)
    gc.collect()
    before = rss_kib()
    timed = Timed(lambda: first.run(args.n))
    gc.collect()
    return {
        "ops": args.n,
        **timed.fields(),
        "rss_before_kib": before,
        "rss_after_kib": rss_kib(),
        "failures": first.failures,
    }


class Timed:
    """Around the timed loop: wall and CPU seconds (``time.process_time``), and from
    getrusage the kernel's part of the CPU and the context switches, voluntary (a
    wait that slept) and involuntary (preempted), as cclient.c reports them."""

    def __init__(self, fn: Callable[[], None]) -> None:
        before = resource.getrusage(resource.RUSAGE_SELF)
        wall, cpu = time.perf_counter(), time.process_time()
        fn()
        self.wall = time.perf_counter() - wall
        self.cpu = time.process_time() - cpu
        after = resource.getrusage(resource.RUSAGE_SELF)
        self.sys = after.ru_stime - before.ru_stime
        self.vcsw = after.ru_nvcsw - before.ru_nvcsw
        self.ivcsw = after.ru_nivcsw - before.ru_nivcsw

    def fields(self) -> dict[str, Any]:
        return {
            "wall": self.wall,
            "cpu": self.cpu,
            "sys": self.sys,
            "vcsw": self.vcsw,
            "ivcsw": self.ivcsw,
        }


def measure(args: argparse.Namespace) -> dict[str, Any]:
    if args.mode == "first":
        return measure_first(args)
    if args.api == "inhandler" and args.mode not in ("get", "post", "growth"):
        raise SystemExit("inhandler: sequential modes only (get, post, growth)")
    c = Client(args)
    n, warmup = args.n, args.warmup
    try:
        if args.mode in ("get", "post", "growth"):
            s = c.session()
            c.sequential(s, warmup)
            gc.collect()
            before = rss_kib()
            timed = Timed(lambda: c.sequential(s, n))
        elif args.mode == "inflight":
            if args.api != "loop":
                raise SystemExit("inflight needs the handler loop (Session.request waits)")
            sessions = [c.session() for _ in range(args.sessions)]
            c.in_flight(sessions, max(warmup, args.sessions))
            gc.collect()
            before = rss_kib()
            timed = Timed(lambda: c.in_flight(sessions, n))
        elif args.mode == "handshake":
            c.handshakes(warmup)
            gc.collect()
            before = rss_kib()
            timed = Timed(lambda: c.handshakes(n))
        elif args.mode == "idle":
            gc.collect()
            before = rss_kib()
            kept: list[coap.Session] = []

            def establish() -> None:
                for first in range(0, n, 50):
                    batch = [c.session() for _ in range(min(50, n - first))]
                    kept.extend(batch)
                    if args.api == "loop":
                        for s in batch:
                            c.send(s)
                        for s in batch:
                            c.wait_for(s)
                    else:
                        for s in batch:
                            c.one(s)

            timed = Timed(establish)
        else:
            raise SystemExit(f"unknown mode {args.mode!r}")
        gc.collect()
        after = rss_kib()
    finally:
        c.ctx.close()
    return {
        "ops": n,
        **timed.fields(),
        "rss_before_kib": before,
        "rss_after_kib": after,
        "failures": c.failures,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("api", choices=("request", "loop", "inhandler"))
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
    args = parser.parse_args()
    print(json.dumps(measure(args)))


if __name__ == "__main__":
    main()
