"""The servers under test, each a child process on free loopback ports.

- ``serve``: ``libcoap-py serve`` with a fresh database, the certificates of
  ``libcoap-py cert init``, a ``coap://`` and a ``coaps://`` endpoint.
- ``api``: ``fuzz/api_server.py``, a server on the package's server API.

A target knows its liveness probe: one valid request and the answer (code
and payload) it must get, per way in.
"""

from __future__ import annotations

import collections
import os
import re
import selectors
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from . import pdu

TARGETS = ("serve", "api")
START_TIMEOUT_S = 30.0
API_SERVER = Path(__file__).resolve().parent / "api_server.py"
#: What ``serve`` answers a request without a device identity (plain coap://).
SERVE_NO_IDENTITY = b"a device identity is needed: a client certificate or PSK"
#: The common name of the device certificate ``cert init`` writes.
DEVICE = "device-1"


LISTENING = re.compile(r"^listening on (\S+)\s*$")


class ChildProcess:
    """A server process; its output (stdout and stderr) kept: the last lines, and a count
    of the tracebacks in all of it.

    The fuzzer does not import libcoap_py itself (so that ``python -m fuzz`` runs from
    the source folder): the servers are ``python -I`` children using the installed one.
    """

    def __init__(self, argv: Sequence[str], keep_lines: int = 400) -> None:
        self.lines: collections.deque[str] = collections.deque(maxlen=keep_lines)
        self.tracebacks = 0
        #: The first few tracebacks in the output, whole.
        self.first_tracebacks: list[list[str]] = []
        self._in_traceback = False
        #: The exception line ending each traceback, counted.
        self.exceptions: collections.Counter[str] = collections.Counter()
        self._traceback_open = False
        self._pending = b""
        self._drainer: threading.Thread | None = None
        self.process = subprocess.Popen(
            list(argv), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
        )

    def wait_listening(self, timeout: float, count: int) -> list[str]:
        """The URIs of the first ``count`` ``listening on URI`` lines, within ``timeout``."""
        assert self.process.stdout is not None
        fd = self.process.stdout.fileno()
        deadline = time.monotonic() + timeout
        uris: list[str] = []
        with selectors.DefaultSelector() as sel:
            sel.register(fd, selectors.EVENT_READ)
            while len(uris) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise RuntimeError(f"the server did not listen within {timeout:g} s")
                if not sel.select(left):
                    continue
                chunk = os.read(fd, 65536)
                if not chunk:
                    self.process.wait(timeout=10)
                    raise RuntimeError(
                        f"the server exited with status {self.process.returncode} before "
                        "listening:\n" + "\n".join(self.lines)
                    )
                for line in self._take(chunk):
                    match = LISTENING.match(line)
                    if match:
                        uris.append(match.group(1))
        self._drainer = threading.Thread(target=self._drain, daemon=True)
        self._drainer.start()
        return uris

    def _take(self, chunk: bytes) -> list[str]:
        *complete, self._pending = (self._pending + chunk).split(b"\n")
        new = [line.decode("utf-8", "replace").rstrip("\r") for line in complete]
        for line in new:
            if self._traceback_open and line and not line[0].isspace():
                self.exceptions[line[:200]] += 1
                self._traceback_open = False
            if line.startswith("Traceback"):
                self.tracebacks += 1
                self._traceback_open = True
                self._in_traceback = len(self.first_tracebacks) < 3
                if self._in_traceback:
                    self.first_tracebacks.append([])
            if self._in_traceback:
                self.first_tracebacks[-1].append(line)
                if line and not line[0].isspace() and not line.startswith("Traceback"):
                    self._in_traceback = False  # the exception line ends it
        self.lines.extend(new)
        return new

    def _drain(self) -> None:
        assert self.process.stdout is not None
        fd = self.process.stdout.fileno()
        while True:
            try:
                chunk = os.read(fd, 65536)
            except OSError:
                break
            if not chunk:
                break
            self._take(chunk)
        if self._pending:
            self._take(b"\n")

    def output(self) -> str:
        return "\n".join(self.lines)

    def stop(self, timeout: float = 10.0) -> int:
        """SIGTERM, then wait (SIGKILL after ``timeout``); the exit status."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=timeout)
        if self._drainer is not None:
            self._drainer.join(timeout=timeout)
        if self.process.stdout is not None:
            self.process.stdout.close()
        return self.process.returncode


@dataclass(frozen=True)
class Certs:
    directory: Path

    @property
    def cert(self) -> Path:
        return self.directory / "cert.crt"

    @property
    def key(self) -> Path:
        return self.directory / "key.pem"

    @property
    def ca(self) -> Path:
        return self.directory / "ca.crt"


def make_certs(directory: Path) -> Certs:
    """``libcoap-py cert init DIRECTORY`` (CA, server and device ``device-1``)."""
    done = subprocess.run(
        [sys.executable, "-I", "-m", "libcoap_py.cli", "cert", "init", str(directory)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    if done.returncode != 0:
        raise RuntimeError(f"libcoap-py cert init failed: {done.stderr.strip()}")
    return Certs(directory)


@dataclass(frozen=True)
class Probe:
    """A valid request and the answer it must get."""

    path: str
    payload: bytes
    code: int
    answer: bytes

    def message(self, mid: int, token: bytes) -> bytes:
        return pdu.Message(
            pdu.CON,
            pdu.POST,
            mid,
            token,
            tuple((pdu.URI_PATH, p.encode()) for p in self.path.split("/")),
            self.payload,
        ).encode()


class Target:
    """A server child process; ``uris`` by scheme."""

    def __init__(self, name: str, certs: Certs, *, dtls: bool, workdir: Path | None = None) -> None:
        if name not in TARGETS:
            raise ValueError(f"unknown target {name!r}; one of {', '.join(TARGETS)}")
        self.name = name
        self.certs = certs
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        if workdir is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="libcoap-py-fuzz-")
            workdir = Path(self._tmp.name)
        listen = ["coap://127.0.0.1:0"] + (["coaps://127.0.0.1:0"] if dtls else [])
        if name == "serve":
            # -X faulthandler: a crash prints the Python stack it happened under.
            argv = [sys.executable, "-X", "faulthandler", "-I", "-m", "libcoap_py.cli", "serve"]
            argv += ["--db", str(workdir / "fuzz.db"), "--certs", str(certs.directory)]
        else:
            argv = [sys.executable, "-X", "faulthandler", "-I", str(API_SERVER)]
            argv += ["--certs", str(certs.directory)]
        for uri in listen:
            argv += ["--listen", uri]
        self.argv = argv
        self.process = ChildProcess(argv)
        try:
            found = self.process.wait_listening(START_TIMEOUT_S, count=len(listen))
        except BaseException:
            self.process.stop()
            self._cleanup()
            raise
        self.uris = {uri.split(":", 1)[0]: uri for uri in found}

    @property
    def pid(self) -> int:
        return self.process.process.pid

    def address(self, scheme: str) -> tuple[str, int]:
        host, port = self.uris[scheme].split("://", 1)[1].rsplit(":", 1)
        return host.strip("[]"), int(port)

    def exit_status(self) -> int | None:
        """None while running; else the exit status (negative: killed by that signal)."""
        return self.process.process.poll()

    def rss_kib(self) -> int:
        """VmRSS of the server process, in KiB."""
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise RuntimeError("no VmRSS")

    def probe(self, way: str, n: int) -> Probe:
        """The liveness probe number ``n`` over ``way`` (udp or dtls)."""
        body = b"probe %d" % n
        if self.name == "serve":
            if way == "udp":
                return Probe("fuzz-probe", body, pdu.code(4, 1), SERVE_NO_IDENTITY)
            # The device's outbox stays empty: 2.04 without payload.
            return Probe("fuzz-probe", body, pdu.code(2, 4), b"")
        who = DEVICE.encode() if way == "dtls" else b"-"
        return Probe("probe", body, pdu.code(2, 4), who + b"|" + body)

    def output(self) -> str:
        return self.process.output()

    @property
    def tracebacks(self) -> int:
        return self.process.tracebacks

    def stop(self) -> int:
        status = self.process.stop()
        self._cleanup()
        return status

    def _cleanup(self) -> None:
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None
