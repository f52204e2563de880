"""Helpers for the data service tests: ``libcoap-py serve`` as a child process, coap-client.

Plain functions and classes; the test modules wrap them in fixtures.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from helpers.certs import CertFiles
from helpers.ctools import COAP_CLIENT, cert_args
from libcoap_py.cli.demo import ServiceProcess

#: The device id in the test PKI's device certificate (``certs.init_dir``'s default).
DEVICE = "device-1"
PSK_DEVICE = "psk-device"
PSK_DEVICE_KEY = "psk-device-secret"
#: Bound on the service's start and on each coap-client run.
START_TIMEOUT_S = 15.0
CLIENT_TIMEOUT_S = 20.0


class Service:
    """A running ``libcoap-py serve`` on free loopback ports."""

    def __init__(self, process: ServiceProcess, uris: list[str], db: Path) -> None:
        self.process = process
        self.uris = uris
        self.db = db

    def uri(self, scheme: str = "coaps") -> str:
        return next(u for u in self.uris if u.startswith(f"{scheme}://"))

    def port(self, scheme: str = "coaps") -> int:
        return int(self.uri(scheme).rsplit(":", 1)[1])

    def output(self) -> str:
        return self.process.output()

    def stop(self, sig: int | None = None) -> int:
        if sig is None:
            return self.process.stop()
        return self.process.stop(sig=sig)


def start_service(
    db: Path,
    certs: CertFiles | None,
    *,
    plain: bool = False,
    psk: bool = False,
    extra: Sequence[str] = (),
) -> Service:
    """``libcoap-py serve`` with the test PKI (and PSK / a plain endpoint if asked)."""
    args = ["serve", "--db", str(db), "--listen", "coaps://127.0.0.1:0", "-v"]
    if certs is not None:
        args += ["--cert", str(certs.server_cert), "--key", str(certs.server_key)]
        args += ["--ca", str(certs.ca)]
    if psk:
        args += ["--psk-identity", PSK_DEVICE, "--psk-key", PSK_DEVICE_KEY]
    if plain:
        args += ["--listen", "coap://127.0.0.1:0"]
    args += list(extra)
    process = ServiceProcess([sys.executable, "-I", "-m", "libcoap_py.cli", *args])
    try:
        uris = process.wait_listening(START_TIMEOUT_S, count=2 if plain else 1)
    except BaseException:
        process.stop()
        raise
    return Service(process, uris, db)


def coap_client(*args: str | Path, wait_s: int = 5) -> subprocess.CompletedProcess[str]:
    """Run libcoap's ``coap-client`` of the build's backend (``-B wait_s``: its own bound
    on waiting)."""
    assert COAP_CLIENT is not None
    return subprocess.run(
        [COAP_CLIENT, "-B", str(wait_s), *map(str, args)],
        capture_output=True,
        text=True,
        timeout=CLIENT_TIMEOUT_S,
        stdin=subprocess.DEVNULL,
    )


def pki_args(certs: CertFiles) -> list[str]:
    """The C sample's files for coap-client: cert.crt (device + CA), key.pem, CA file cert.crt."""
    return [*cert_args(certs.cert, certs.key), "-C", str(certs.cert)]
