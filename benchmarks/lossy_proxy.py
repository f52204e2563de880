"""A lossy UDP proxy on loopback: drops, duplicates and reorders datagrams.

Each client address gets its own upstream socket, so the server sees one peer
per client, as it would without the proxy. Every datagram, in each direction,
is dropped with probability ``loss``; one that passes is sent twice with
probability ``duplicate`` and held back 10-100 ms (so that later ones overtake
it) with probability ``reorder``. ``blackout`` drops everything for its first
seconds after the proxy's first datagram: a handshake that cannot complete
until then.

    python benchmarks/lossy_proxy.py --target 127.0.0.1:5684 --loss 0.2
    # then point clients at the printed port

From Python (the suite and ``benchmarks/handshake_loss.py`` use it)::

    with LossyProxy(("127.0.0.1", 5684), loss=0.2, seed=1) as proxy:
        ...  # clients use ("127.0.0.1", proxy.port)

Loopback only: the proxy listens on 127.0.0.1 (or ::1) and forwards to the
target given, which must be a loopback address too.
"""

from __future__ import annotations

import argparse
import heapq
import ipaddress
import random
import selectors
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Any

__all__ = ["LossyProxy", "ProxyStats"]

Address = tuple[Any, ...]


@dataclass
class ProxyStats:
    """What the proxy did, both directions together."""

    received: int = 0
    dropped: int = 0
    duplicated: int = 0
    reordered: int = 0
    clients: int = 0


@dataclass(order=True)
class _Later:
    due: float
    seq: int
    sock: socket.socket = field(compare=False)
    data: bytes = field(compare=False)
    to: Address = field(compare=False)


class LossyProxy:
    """A UDP proxy from ``(listen_host, port)`` to ``target``, losing datagrams."""

    def __init__(
        self,
        target: tuple[str, int],
        *,
        loss: float = 0.2,
        duplicate: float = 0.03,
        reorder: float = 0.03,
        blackout: float = 0.0,
        seed: int | None = None,
        listen_host: str | None = None,
        max_clients: int = 4096,
    ) -> None:
        for name, p in (("loss", loss), ("duplicate", duplicate), ("reorder", reorder)):
            if not 0.0 <= p <= 1.0:
                raise ValueError(f"{name} must be a probability (0..1), not {p}")
        host = target[0].strip("[]")
        if not ipaddress.ip_address(host).is_loopback:
            raise ValueError(f"the target must be a loopback address, not {host}")
        self.target = (host, target[1])
        self.family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.loss, self.duplicate, self.reorder = loss, duplicate, reorder
        self.blackout = blackout
        self.max_clients = max_clients
        self.stats = ProxyStats()
        self._random = random.Random(seed)
        self._selector = selectors.DefaultSelector()
        self._front = socket.socket(self.family, socket.SOCK_DGRAM)
        self._front.bind((listen_host or host, 0))
        self.port: int = self._front.getsockname()[1]
        self._selector.register(self._front, selectors.EVENT_READ, None)
        self._upstream: dict[Address, socket.socket] = {}
        self._first: float | None = None  # when the first datagram came
        self._later: list[_Later] = []
        self._seq = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="lossy-proxy", daemon=True)

    # -- lifetime ---------------------------------------------------------------------------

    def start(self) -> LossyProxy:
        self._thread.start()
        return self

    def close(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)
        for sock in self._upstream.values():
            sock.close()
        self._upstream.clear()
        self._front.close()
        self._selector.close()

    def __enter__(self) -> LossyProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- forwarding -------------------------------------------------------------------------

    def _run(self) -> None:
        while not self._stop.is_set():
            wait = 0.1
            if self._later:
                wait = max(0.0, min(wait, self._later[0].due - time.monotonic()))
            for key, _ in self._selector.select(wait):
                sock: socket.socket = key.fileobj  # type: ignore[assignment]
                try:
                    data, source = sock.recvfrom(65535)
                except OSError:
                    continue
                if key.data is None:
                    self._from_client(data, source)
                else:
                    self._from_server(data, key.data)
            now = time.monotonic()
            while self._later and self._later[0].due <= now:
                item = heapq.heappop(self._later)
                self._send(item.sock, item.data, item.to)

    def _from_client(self, data: bytes, client: Address) -> None:
        sock = self._upstream.get(client)
        if sock is None:
            if len(self._upstream) >= self.max_clients:
                return
            sock = socket.socket(self.family, socket.SOCK_DGRAM)
            sock.bind((self.target[0], 0))
            self._selector.register(sock, selectors.EVENT_READ, client)
            self._upstream[client] = sock
            self.stats.clients += 1
        self._pass(sock, data, self.target)

    def _from_server(self, data: bytes, client: Address) -> None:
        if client in self._upstream:
            self._pass(self._front, data, client)

    def _pass(self, sock: socket.socket, data: bytes, to: Address) -> None:
        self.stats.received += 1
        now = time.monotonic()
        if self._first is None:
            self._first = now
        rnd = self._random.random
        if now - self._first < self.blackout or rnd() < self.loss:
            self.stats.dropped += 1
            return
        copies = 1
        if rnd() < self.duplicate:
            copies = 2
            self.stats.duplicated += 1
        for copy in range(copies):
            delay = 0.0
            if rnd() < self.reorder:
                delay = 0.01 + 0.09 * rnd()
                self.stats.reordered += 1
            elif copy:
                delay = 0.005
            if delay:
                self._seq += 1
                later = _Later(now + delay, self._seq, sock, data, to)
                heapq.heappush(self._later, later)
            else:
                self._send(sock, data, to)

    @staticmethod
    def _send(sock: socket.socket, data: bytes, to: Address) -> None:
        try:
            sock.sendto(data, to)
        except OSError:
            pass  # (a closed client port: the datagram is lost, as on a network)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--target", required=True, help="loopback host:port to forward to")
    parser.add_argument("--loss", type=float, default=0.2)
    parser.add_argument("--duplicate", type=float, default=0.03)
    parser.add_argument("--reorder", type=float, default=0.03)
    parser.add_argument("--seed", type=int, default=None)
    args = parser.parse_args()
    host, _, port = args.target.rpartition(":")
    with LossyProxy(
        (host, int(port)), loss=args.loss, duplicate=args.duplicate, reorder=args.reorder,
        seed=args.seed,
    ) as proxy:  # fmt: skip
        print(f"forwarding {host}:{proxy.port} -> {args.target}", flush=True)
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            pass
    print(proxy.stats)


if __name__ == "__main__":
    main()
