"""libcoap's own programs as peers: ``coap-server`` and ``coap-client``.

Nothing in the suite mocks libcoap. The peer is libcoap's own ``coap-server`` of
the same TLS backend as the build under test (``coap-server-openssl``,
``-gnutls``, ``-notls``: see ``TOOL_SUFFIX``), one process serving ``coap://``
on port P and ``coaps://`` with PSK *and* PKI on P+1.

On libcoap 4.2 (``build.LIBCOAP_42``) the tools are libcoap2-bin's and take fewer
flags (see ``cert_args``).
"""

from __future__ import annotations

import re
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import pytest

from helpers.build import BIN_PACKAGE, LIBCOAP_42, TLS_NAME
from helpers.net import coap_ping, free_port_pair, uri_host

#: The suffix of libcoap's programs built with the build's TLS library (libcoap3-bin
#: and libcoap2-bin ship coap-client-openssl, -gnutls and -notls).
TOOL_SUFFIX = {
    "OpenSSL": "openssl",
    "GnuTLS": "gnutls",
    "Mbed TLS": "mbedtls",
    "TinyDTLS": "tinydtls",
    "none": "notls",
}[TLS_NAME]


def tool(name: str) -> str:
    """libcoap's program ``name`` of the build's TLS backend: coap-server -> coap-server-gnutls."""
    return f"{name}-{TOOL_SUFFIX}"


COAP_SERVER_NAME = tool("coap-server")
COAP_CLIENT_NAME = tool("coap-client")
COAP_SERVER = shutil.which(COAP_SERVER_NAME)
COAP_CLIENT = shutil.which(COAP_CLIENT_NAME)
NO_SERVER_REASON = (
    f"{COAP_SERVER_NAME} is not installed (apt install {BIN_PACKAGE}); "
    "tests against a real peer are skipped"
)
NO_CLIENT_REASON = f"{COAP_CLIENT_NAME} is not installed (apt install {BIN_PACKAGE})"

#: What libcoap's coap-client logs (lower case) when the server, of the same backend,
#: refuses its certificate (the alert it got), per TLS backend.
CLIENT_CERT_REFUSED_LOG = {"OpenSSL": "unknown ca", "GnuTLS": "certificate is bad"}.get(TLS_NAME)
#: What it logs (one of these) when it refuses the server's certificate for a CA it does
#: not know: OpenSSL 3.0 says "certificate verify failed", libcoap with OpenSSL 3.5
#: "unknown ca"; no texts: a backend not measured, the log is not checked.
SERVER_CA_UNKNOWN_LOG: tuple[str, ...] = {
    "OpenSSL": ("certificate verify failed", "unknown ca"),
    "GnuTLS": ("the peer certificate's ca is unknown",),
}.get(TLS_NAME, ())

#: The method that makes coap-server create a resource and answer 2.01:
#: POST on 4.3; 4.2's server has no POST handler at all (4.05), only PUT.
CREATE_METHOD = "PUT" if LIBCOAP_42 else "POST"

PSK_IDENTITY = b"libcoap-py-test"
PSK_KEY = b"libcoap-py-test-psk-key"
PSK_HINT = b"libcoap-py-hint"
#: How many resources the server may create on PUT/POST (its ``-d``).
DYNAMIC_RESOURCES = 200
#: Start of the payload the server returns for ``GET /``.
WELCOME = b"This is a test server made with libcoap"


#: A line of libcoap's log as its tools print it: "Nov 25 12:39:14 WARN ..." (4.2),
#: "Dec 03 03:31:21.351 WARN ..." (4.3).
_TOOL_LOG_LINE = r"[A-Z][a-z]{2} [ \d]?\d \d\d:\d\d:\d\d(?:\.\d+)? [A-Z]{4} [^\n]*(\n|$)"
_LOG_LINES_BYTES = re.compile(f"(?:{_TOOL_LOG_LINE})*".encode())
_LOG_LINES_STR = re.compile(f"(?:{_TOOL_LOG_LINE})*")

AnyStr_ = TypeVar("AnyStr_", str, bytes)


def client_data(stdout: AnyStr_) -> AnyStr_:
    """What coap-client printed as the response, without the log lines before it.

    libcoap's tools log to stdout; 4.2's client warns about every server
    certificate it accepts without a CRL before it prints the payload.
    """
    if isinstance(stdout, bytes):
        found = _LOG_LINES_BYTES.match(stdout)
        return stdout[found.end() :] if found else stdout
    match = _LOG_LINES_STR.match(stdout)
    return stdout[match.end() :] if match else stdout


_combined_pem: dict[tuple[Path, Path], Path] = {}


def cert_args(cert: Path | str, key: Path | str) -> list[str]:
    """The certificate and key arguments of coap-client / coap-server.

    4.3's tools take ``-c cert -j key``. 4.2's have no ``-j``: their ``-c``
    PEM file holds the certificate(s) *and* the private key, so on 4.2 the two
    are written into one file next to the certificate and that is passed.
    """
    if not LIBCOAP_42:
        return ["-c", str(cert), "-j", str(key)]
    cert, key = Path(cert), Path(key)
    combined = _combined_pem.get((cert, key))
    if combined is None:
        combined = cert.with_name(f"{cert.stem}+{key.stem}.pem")
        text = cert.read_text().rstrip("\n") + "\n" + key.read_text()
        combined.write_text(text)
        _combined_pem[(cert, key)] = combined
    return ["-c", str(combined)]


def coap_client_run(
    *args: str, wait_s: int = 3, timeout: float = 20.0
) -> subprocess.CompletedProcess[bytes]:
    """Run ``coap-client -B wait_s ARGS`` and return what it did (never raises on rc)."""
    if COAP_CLIENT is None:
        pytest.skip(NO_CLIENT_REASON)
    return subprocess.run(
        [COAP_CLIENT, "-B", str(wait_s), *args],
        capture_output=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
        check=False,
    )


@dataclass
class CoapServer:
    """A running ``coap-server``: coap on ``port``, coaps on ``port + 1``."""

    host: str
    port: int
    psk_identity: bytes
    psk_key: bytes
    psk_hint: bytes
    log_path: Path
    process: subprocess.Popen[bytes] = field(repr=False)

    @property
    def coaps_port(self) -> int:
        return self.port + 1

    @property
    def coap_uri(self) -> str:
        return f"coap://{uri_host(self.host)}:{self.port}"

    @property
    def coaps_uri(self) -> str:
        return f"coaps://{uri_host(self.host)}:{self.coaps_port}"

    def log(self) -> str:
        """What the server wrote so far (for assertion messages)."""
        try:
            return self.log_path.read_text(errors="replace")[-4000:]
        except OSError:
            return ""


def stop_process(proc: subprocess.Popen[bytes]) -> None:
    """Terminate ``proc`` (kill it if it does not end within 5 s) and reap it."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


def start_coap_server(
    host: str, log_dir: Path, server_cert: Path, server_key: Path, ca: Path
) -> CoapServer:
    """coap-server on ``host`` (free ports P, P+1), PSK and PKI on coaps; returns once it
    answers a ping. Stop it with ``stop_process(server.process)``."""
    assert COAP_SERVER is not None
    last_log = ""
    for attempt in range(3):
        port = free_port_pair(host)
        log_path = log_dir / f"coap-server-{host.replace(':', '_')}-{port}.log"
        cmd = [
            COAP_SERVER,
            "-A", host,
            "-p", str(port),
            "-d", str(DYNAMIC_RESOURCES),
            "-v", "6",
            "-k", PSK_KEY.decode(),
            "-h", PSK_HINT.decode(),
            *cert_args(server_cert, server_key),
            "-C", str(ca),
        ]  # fmt: skip
        with open(log_path, "wb") as log:
            log.write((" ".join(cmd) + "\n").encode())
            log.flush()
            proc = subprocess.Popen(
                cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
            )
        server = CoapServer(host, port, PSK_IDENTITY, PSK_KEY, PSK_HINT, log_path, proc)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and proc.poll() is None:
            if coap_ping(host, port):
                return server
        stop_process(proc)
        last_log = server.log()
        if attempt == 2 or "bind" not in last_log.lower():
            break
    raise RuntimeError(f"{COAP_SERVER_NAME} did not come up on {host}; its log:\n{last_log}")
