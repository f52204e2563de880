"""``libcoap-py demo``: the C DTLS sample's port, end to end, against the local data service.

1. certificates in the working folder (made if absent or unusable);
2. ``libcoap-py serve`` on a free loopback port (it reports the port);
3. a downstream message queued for the device;
4. ``examples/dtls_sample.py`` run against the service, its output shown;
5. the inbox listed; the service stopped.

Exits non-zero if any step failed, including the sample not printing the
downstream message.
"""

from __future__ import annotations

import argparse
import datetime
import os
import re
import selectors
import shlex
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path

from ._common import CliError

__all__ = ["DOWNSTREAM_MESSAGE", "LISTENING", "DemoFailed", "ServiceProcess", "register"]

#: The message the demo queues, as in ``span outbox add --format=text ...``.
DOWNSTREAM_MESSAGE = "Hello this is a downstream message"
#: What the sample POSTs (its default payload) and where.
SAMPLE_PAYLOAD = "this is the payload"
SAMPLE_PATH = "path-for-data"

CERT_FILES = ("ca.crt", "ca.key", "server.crt", "server.key", "cert.crt", "key.pem")
#: The line ``libcoap-py serve`` prints for each endpoint once it is bound.
LISTENING = re.compile(r"^listening on (\S+)\s*$")


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    demo = commands.add_parser(
        "demo",
        help="run the C DTLS sample's port against the local data service, end to end",
        description="Make certificates (if absent), start 'libcoap-py serve' on a free "
        "loopback port, queue a downstream message for the device, run "
        "examples/dtls_sample.py against the service, list the inbox, stop the service. "
        "Exits non-zero if a step failed.",
    )
    demo.add_argument(
        "--dir",
        type=Path,
        default=Path(".demo"),
        help="working folder: certificates, database, service log (default: %(default)s)",
    )
    demo.add_argument(
        "--sample",
        type=Path,
        default=None,
        metavar="PATH",
        help="the sample to run (default: examples/dtls_sample.py of this source checkout)",
    )
    demo.add_argument(
        "--device-id",
        default="device-1",
        metavar="ID",
        help="device id for new certificates (default: %(default)s)",
    )
    demo.add_argument(
        "--timeout",
        type=float,
        default=30.0,
        help="limit for the service to start and for the sample, seconds (default: %(default)s)",
    )
    demo.set_defaults(run=run)


class DemoFailed(CliError):
    """A demo step failed."""


def step(text: str) -> None:
    print(f"\n--- {text}", flush=True)


def show_command(argv: Sequence[str]) -> None:
    print("$ " + shlex.join(argv), flush=True)


# -- certificates -------------------------------------------------------------


def _not_after(cert: object) -> datetime.datetime:
    end = getattr(cert, "not_valid_after_utc", None)
    if isinstance(end, datetime.datetime):
        return end
    naive: datetime.datetime = cert.not_valid_after  # type: ignore[attr-defined]
    return naive.replace(tzinfo=datetime.timezone.utc)


def device_id_of(workdir: Path) -> str | None:
    """The device id (CN of the first certificate in cert.crt) if every demo file is
    there and no certificate expires within a day; else None."""
    if not all((workdir / name).is_file() for name in CERT_FILES):
        return None
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    soon = datetime.datetime.now(datetime.timezone.utc) + datetime.timedelta(days=1)
    device: str | None = None
    for name in ("ca.crt", "server.crt", "cert.crt"):
        try:
            cert = x509.load_pem_x509_certificate((workdir / name).read_bytes())
        except ValueError:
            return None
        if _not_after(cert) < soon:
            return None
        if name == "cert.crt":
            names = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
            device = str(names[0].value) if names else None
    return device


def ensure_certs(workdir: Path, device_id: str) -> str:
    """Reuse usable certificates in ``workdir`` or make new ones; return the device id."""
    try:
        from .. import certs
    except ImportError as exc:
        raise DemoFailed(str(exc)) from None
    existing = device_id_of(workdir)
    if existing is not None:
        print(f"Using the certificates in {workdir} (device {existing})")
        return existing
    replacing = [name for name in CERT_FILES if (workdir / name).exists()]
    if replacing:
        print(f"Replacing incomplete or expiring demo certificates in {workdir}")
    files = certs.init_dir(workdir, device_id=device_id, overwrite=True)
    print(f"Made certificates in {workdir} for device {device_id}:")
    for path in files.values():
        print(f"  {path.name}")
    return device_id


# -- the service ----------------------------------------------------------------


class ServiceProcess:
    """``libcoap-py serve`` as a child process; its output is collected in ``lines``."""

    def __init__(self, argv: Sequence[str]) -> None:
        self.lines: list[str] = []
        self._pending = b""
        self._drainer: threading.Thread | None = None
        self.process = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )

    def wait_listening(self, timeout: float, count: int = 1) -> list[str]:
        """The URIs of the service's first ``count`` ``listening on URI`` lines,
        read within ``timeout`` seconds; DemoFailed if they do not come."""
        assert self.process.stdout is not None
        fd = self.process.stdout.fileno()
        deadline = time.monotonic() + timeout
        uris: list[str] = []
        with selectors.DefaultSelector() as sel:
            sel.register(fd, selectors.EVENT_READ)
            while len(uris) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise DemoFailed(f"the service did not report listening within {timeout:g} s")
                if not sel.select(left):
                    continue
                chunk = os.read(fd, 65536)
                if not chunk:
                    self.process.wait(timeout=5)
                    raise DemoFailed(
                        f"the service exited with status {self.process.returncode} before "
                        "listening: " + " / ".join(self.lines[-5:])
                    )
                for line in self._take_lines(chunk):
                    match = LISTENING.match(line)
                    if match:
                        uris.append(match.group(1))
        self._drainer = threading.Thread(target=self._drain, daemon=True)
        self._drainer.start()
        return uris[:count]

    def _take_lines(self, chunk: bytes) -> list[str]:
        *complete, self._pending = (self._pending + chunk).split(b"\n")
        new = [line.decode("utf-8", "replace").rstrip("\r") for line in complete]
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
            self._take_lines(chunk)
        if self._pending:
            self._take_lines(b"\n")

    def output(self) -> str:
        """What the service printed so far (standard output and error)."""
        return "\n".join(self.lines)

    def stop(self, timeout: float = 10.0, sig: int = signal.SIGTERM) -> int:
        """Send ``sig``, then wait (SIGKILL after ``timeout``); the exit status."""
        if self.process.poll() is None:
            self.process.send_signal(sig)
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


# -- the sample -------------------------------------------------------------------


def find_sample(given: Path | None) -> Path:
    """``--sample``, else ``examples/dtls_sample.py`` of the checkout the package was
    imported from, else ``examples/dtls_sample.py`` in the current folder."""
    if given is not None:
        if not given.is_file():
            raise DemoFailed(f"--sample: no such file: {given}")
        return given
    relative = Path("examples", "dtls_sample.py")
    for base in (Path(__file__).resolve().parents[2], Path.cwd()):
        if (base / relative).is_file():
            return base / relative
    raise DemoFailed(
        "examples/dtls_sample.py was not found (it comes with a source checkout): run the "
        "demo from the checkout or pass --sample PATH"
    )


def run_sample(argv: Sequence[str], timeout: float) -> str:
    """Run the sample, show its output, return its standard output."""
    show_command(argv)
    try:
        proc = subprocess.run(
            list(argv), stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout
        )
    except subprocess.TimeoutExpired as exc:
        raise DemoFailed(f"the sample did not finish within {timeout:g} s") from exc
    for line in proc.stdout.splitlines():
        print(f"  | {line}")
    for line in proc.stderr.splitlines():
        print(f"  ! {line}")
    sys.stdout.flush()
    if proc.returncode != 0:
        raise DemoFailed(f"the sample exited with status {proc.returncode}")
    for expected in ("DTLS connected", f"Downstream message: {DOWNSTREAM_MESSAGE}"):
        if expected not in proc.stdout:
            raise DemoFailed(f"the sample did not print {expected!r}")
    return proc.stdout


# -- the demo ---------------------------------------------------------------------


def run(args: argparse.Namespace) -> int:
    if hasattr(sys.stdout, "reconfigure"):
        sys.stdout.reconfigure(line_buffering=True)
    previous = None
    if threading.current_thread() is threading.main_thread():
        # SIGTERM unwinds like Ctrl-C does, so the service is stopped too.
        previous = signal.signal(signal.SIGTERM, _terminated)
    try:
        return _run(args)
    except DemoFailed as exc:
        print(f"\nDemo FAILED: {exc}", file=sys.stderr)
        return 1
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


def _terminated(signum: int, frame: object) -> None:
    raise DemoFailed("terminated (SIGTERM)")


def _run(args: argparse.Namespace) -> int:
    from . import main as cli_main

    workdir: Path = args.dir.resolve()
    sample = find_sample(args.sample)
    db = workdir / "demo.db"
    service: ServiceProcess | None = None
    status: int | None = None
    shown = 0
    try:
        step("1. Certificates")
        workdir.mkdir(parents=True, exist_ok=True)
        device = ensure_certs(workdir, args.device_id)

        step("2. The data service")
        # A fresh database each run: the inbox then shows this run's message,
        # and no message left pending by an earlier run is delivered first.
        for suffix in ("", "-wal", "-shm"):
            Path(f"{db}{suffix}").unlink(missing_ok=True)
        serve_args = [
            "serve",
            "--db",
            str(db),
            "--certs",
            str(workdir),
            "--listen",
            "coaps://127.0.0.1:0",
            "-v",
        ]
        show_command(["libcoap-py", *serve_args])
        # -I: the folder we run in (a checkout, say) must not shadow the installed package.
        service = ServiceProcess([sys.executable, "-I", "-m", "libcoap_py.cli", *serve_args])
        [uri] = service.wait_listening(args.timeout)
        port = int(uri.rsplit(":", 1)[1])
        shown = len(service.lines)
        for line in service.lines:
            print(f"  > {line}")
        print(f"The service listens on coaps://127.0.0.1:{port}")

        step("3. A downstream message for the device")
        add_args = ["outbox", "add", "--db", str(db), "--device", device, "--format", "text"]
        add_args += DOWNSTREAM_MESSAGE.split()
        show_command(["libcoap-py", *add_args])
        if cli_main(add_args) != 0:
            raise DemoFailed("could not queue the downstream message")

        step("4. The C sample's port: examples/dtls_sample.py")
        cert = str(workdir / "cert.crt")
        sample_argv = [
            sys.executable,
            str(sample),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--cert",
            cert,
            "--key",
            str(workdir / "key.pem"),
            "--ca",
            cert,
            "--timeout",
            f"{args.timeout:g}",
        ]
        run_sample(sample_argv, args.timeout + 15)

        step("5. The inbox")
        list_args = ["inbox", "list", "--db", str(db), "--decode"]
        show_command(["libcoap-py", *list_args])
        if cli_main(list_args) != 0:
            raise DemoFailed("could not list the inbox")
        _check_store(db, device)
    finally:
        if service is not None:
            step("6. Stop the service")
            status = service.stop()
            for line in service.lines[shown:]:
                print(f"  > {line}")
            print(f"The service stopped (exit status {status})")
    if status != 0:
        raise DemoFailed(f"the service exited with status {status}")
    print(
        f"\nDemo passed: the sample POSTed over DTLS with its certificate as {device}, "
        f"and got the downstream message back: {DOWNSTREAM_MESSAGE!r}."
    )
    return 0


def _check_store(db: Path, device: str) -> None:
    from ..service.store import Store

    # The service records "sent" in its storage process just after the answer left:
    # wait for it a little.
    deadline = time.monotonic() + 5.0
    with Store(db, create=False) as store:
        while True:
            inbox = store.list_inbox(device)
            outbox = store.list_outbox(device)
            if [m.state for m in outbox] == ["sent"] or time.monotonic() > deadline:
                break
            time.sleep(0.05)
    if not any(m.payload == SAMPLE_PAYLOAD.encode() and m.path == SAMPLE_PATH for m in inbox):
        raise DemoFailed(f"the sample's payload is not in {device}'s inbox")
    if [m.state for m in outbox] != ["sent"]:
        raise DemoFailed(f"the downstream message was not marked sent: {outbox}")
