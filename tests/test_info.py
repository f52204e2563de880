"""Library facts, log routing and the enums users compare against."""

from __future__ import annotations

import logging
import re
import subprocess
from collections.abc import Iterator

import pytest
from helpers.ctools import COAP_SERVER, NO_SERVER_REASON, CoapServer

import libcoap_py as coap


def _server_banner() -> bytes | None:
    """What coap-server (of the build's TLS backend) prints as its usage banner."""
    if COAP_SERVER is None:
        return None
    out = subprocess.run(
        [COAP_SERVER, "-?"], capture_output=True, timeout=10, check=False, stdin=subprocess.DEVNULL
    )
    return out.stdout + out.stderr


def _server_banner_version() -> str | None:
    """The version coap-server prints in its usage banner ("... v4.3.1 -- ...")."""
    banner = _server_banner()
    match = re.search(rb"coap-server-\w+ v(\d+\.\d+\.\d+)", banner or b"")
    return match.group(1).decode() if match else None


def test_libcoap_version_matches_installed_tools() -> None:
    version = coap.libcoap_version()
    assert re.fullmatch(r"\d+\.\d+\.\d+", version), version
    banner = _server_banner_version()
    if banner is None:
        pytest.skip(f"{NO_SERVER_REASON}; only the version format was checked")
    assert version == banner


def test_tls_library_matches_the_package_and_the_tools() -> None:
    """tls_library() names the library of the pkg-config package built against, and the
    one libcoap's own coap-server of that backend reports."""
    name = coap.tls_library().split(" ")[0]
    suffix = coap.package_name().rsplit("-", 1)[-1]
    expected = {"openssl": "OpenSSL", "gnutls": "GnuTLS", "mbedtls": "Mbed", "notls": "none"}
    if suffix in expected:
        assert name == expected[suffix], (coap.package_name(), coap.tls_library())
    banner = _server_banner()
    if banner is None:
        pytest.skip(f"{NO_SERVER_REASON}; only the package name was compared")
    match = re.search(rb"TLS Library: (\w+)", banner)
    assert match, banner
    assert match.group(1).decode().lower() == name.lower(), banner


def test_dtls_is_supported() -> None:
    """DTLS is there exactly when the build's backend has it (not in libcoap-3-notls)."""
    assert coap.dtls_is_supported() is (coap.tls_library() != "none")
    assert coap.dtls_is_supported() is not coap.package_name().endswith("-notls")
    banner = _server_banner()
    if banner is not None:
        assert (b"No DTLS" not in banner) is coap.dtls_is_supported(), banner


def test_raw_binding_is_exposed() -> None:
    """coap.ffi / coap.lib are there for 1:1 ports of C code."""
    assert (
        coap.ffi.string(coap.lib.coap_package_version()).decode().endswith(coap.libcoap_version())
    )


@pytest.fixture
def restore_log_level() -> Iterator[None]:
    saved = int(coap.lib.coap_get_log_level())
    yield
    coap.set_log_level(saved)


@pytest.mark.usefixtures("restore_log_level")
def test_debug_log_goes_to_python_logging(
    coap_server: CoapServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="libcoap")
    coap.set_log_level(coap.LogLevel.DEBUG)
    with coap.Context() as ctx:
        session = ctx.client_session(coap_server.coap_uri)
        response = session.request("GET", "", timeout=5)
    assert response.code is coap.Code.CONTENT
    records = [r for r in caplog.records if r.name == "libcoap"]
    assert any(r.levelno == logging.DEBUG for r in records), caplog.text
    assert all(isinstance(r.getMessage(), str) and r.getMessage() for r in records)


@pytest.mark.usefixtures("restore_log_level")
def test_pdu_dumps_go_to_python_logging_not_stdout(
    coap_server: CoapServer, caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]
) -> None:
    caplog.set_level(logging.DEBUG, logger="libcoap")
    coap.set_log_level(coap.LogLevel.DEBUG)
    with coap.Context() as ctx:
        ctx.client_session(coap_server.coap_uri).request("GET", "", timeout=5)
    coap.set_log_level(coap.LogLevel.WARNING)
    out, err = capfd.readouterr()
    assert "t:CON" not in out and "t:CON" not in err
    assert any("t:CON" in r.getMessage() for r in caplog.records if r.name == "libcoap")


@pytest.mark.usefixtures("restore_log_level")
def test_quiet_log_level_suppresses_debug(
    coap_server: CoapServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="libcoap")
    coap.set_log_level(coap.LogLevel.WARNING)
    with coap.Context() as ctx:
        session = ctx.client_session(coap_server.coap_uri)
        assert session.request("GET", "", timeout=5).code is coap.Code.CONTENT
    assert not [r for r in caplog.records if r.name == "libcoap" and r.levelno < logging.WARNING]


# --------------------------------------------------------------------------
# enums


def test_code_dotted_and_class() -> None:
    assert coap.Code.CONTENT.dotted == "2.05"
    assert coap.Code.CONTENT.class_ == 2
    assert coap.Code.NOT_FOUND.dotted == "4.04"
    assert coap.Code.NOT_FOUND.class_ == 4
    assert coap.Code.INTERNAL_SERVER_ERROR.dotted == "5.00"
    assert coap.Code.GET.dotted == "0.01"


@pytest.mark.parametrize(
    ("text", "code"),
    [("4.04", "NOT_FOUND"), ("2.05", "CONTENT"), ("2.01", "CREATED"), ("0.02", "POST")],
)
def test_code_from_dotted(text: str, code: str) -> None:
    assert coap.Code.from_dotted(text) is coap.Code[code]


@pytest.mark.parametrize("text", ["", "404", "4.4.4", "x.05", "2.xx", "8.00", "2.32", "-1.00"])
def test_code_from_dotted_rejects_garbage(text: str) -> None:
    with pytest.raises(ValueError):
        coap.Code.from_dotted(text)


def test_enums_have_wire_values() -> None:
    """IntEnums whose values are what goes on the wire / into libcoap."""
    assert int(coap.Code.CONTENT) == 69  # 2 << 5 | 5
    assert int(coap.MessageType.CON) == 0 and int(coap.MessageType.RST) == 3
    assert int(coap.OptionNumber.URI_PATH) == 11 and int(coap.OptionNumber.URI_PORT) == 7
    assert int(coap.ContentFormat(50)) == 50
    assert int(coap.NackReason.TOO_MANY_RETRIES) == 0 and int(coap.NackReason.RST) == 2
    assert int(coap.Event.DTLS_CONNECTED) == 0x01DE
    assert int(coap.Proto.UDP) == 1 and int(coap.Proto.DTLS) == 2
    assert coap.LogLevel.DEBUG > coap.LogLevel.NOTICE > coap.LogLevel.WARNING
