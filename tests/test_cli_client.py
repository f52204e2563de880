"""The coap-client style command line: ``libcoap-py get URI``, ``libcoap-py URI -m METHOD``.

The CLI runs in subprocesses (``python -I -m libcoap_py``: the installed package,
not the checkout) against libcoap's ``coap-server-openssl`` and, where the test
needs to see what arrived, against the project's own server in a thread.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable

import pytest
from helpers.build import CORE_CHECKS_FETCH_AND_IF_NONE_MATCH, LIBCOAP_42, LIBCOAP_VERSION_INFO
from helpers.certs import CertFiles
from helpers.ctools import WELCOME, CoapServer, coap_client_run
from helpers.payloads import binary_payload
from helpers.peers import Seen, UdpPeer
from helpers.waiting import wait_until

import libcoap_py as coap
from libcoap_py.cli.client import Progress

Serve = Callable[..., Any]

#: Every flag the client takes (coap-client's names).
CLIENT_FLAGS = "-m -e -f -o -w -s -b -t -A -O -T -N -B -v -a -p -r -u -k -c -j -C -R -n".split()

CUSTOM_OPTION = 65000


def cli(
    *args: str | Path | int,
    stdin: bytes | None = None,
    module: str = "libcoap_py",
    timeout: float = 40.0,
) -> subprocess.CompletedProcess[bytes]:
    """Run ``python -I -m libcoap_py ARGS``; never raises on the exit status."""
    command = [sys.executable, "-I", "-m", module, *map(str, args)]
    if stdin is None:
        return subprocess.run(
            command, capture_output=True, timeout=timeout, stdin=subprocess.DEVNULL, check=False
        )
    return subprocess.run(command, capture_output=True, timeout=timeout, input=stdin, check=False)


def one_line(stderr: bytes) -> str:
    """The single line the CLI wrote on stderr (fails if there is not exactly one)."""
    text = stderr.decode()
    assert text.endswith("\n") and text.count("\n") == 1, text
    return text.rstrip("\n")


# --------------------------------------------------------------------------
# against coap-server-openssl


def test_get_root_prints_the_welcome_text(coap_server: CoapServer) -> None:
    out = cli("get", coap_server.coap_uri + "/")
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith(WELCOME)
    assert out.stderr == b""


@pytest.mark.parametrize("module", ["libcoap_py", "libcoap_py.cli"])
def test_uri_first_like_coap_client(coap_server: CoapServer, module: str) -> None:
    uri = coap_server.coap_uri + "/"
    out = cli(uri, "-m", "get", module=module)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith(WELCOME)
    # flags before the URI, as people type coap-client
    out = cli("-m", "get", "-B", "5", uri, module=module)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith(WELCOME)


def test_put_then_get_round_trip(coap_server: CoapServer, unique_path: str) -> None:
    uri = f"{coap_server.coap_uri}/{unique_path}"
    put = cli("put", uri, "-e", "hello%20world%21 100%")
    assert put.returncode == 0, put.stderr
    assert put.stdout == b"" and put.stderr == b""
    got = cli(uri, "-m", "get")
    assert got.returncode == 0, got.stderr
    assert got.stdout == b"hello world! 100%"
    # coap-client style: method and payload flags first
    again = cli("-m", "put", "-e", "second", uri)
    assert again.returncode == 0, again.stderr
    assert cli("get", uri, "-w").stdout == b"second\n"


def test_file_in_and_file_out_byte_for_byte(
    coap_server: CoapServer, unique_path: str, tmp_path: Path
) -> None:
    body = binary_payload(700)
    source, target = tmp_path / "in.bin", tmp_path / "out.bin"
    source.write_bytes(body)
    uri = f"{coap_server.coap_uri}/{unique_path}"
    put = cli("put", uri, "-f", source)
    assert put.returncode == 0, put.stderr
    got = cli("get", uri, "-o", target)
    assert got.returncode == 0, got.stderr
    assert got.stdout == b""
    assert target.read_bytes() == body
    # -f - reads stdin; a pipe gets the bytes as they came
    reversed_body = body[::-1]
    assert cli("put", uri, "-f", "-", stdin=reversed_body).returncode == 0
    assert cli("get", uri).stdout == reversed_body
    assert cli("get", uri, "-o", "-").stdout == reversed_body


def test_empty_payload_still_makes_the_output_file(
    coap_server: CoapServer, unique_path: str, tmp_path: Path
) -> None:
    uri = f"{coap_server.coap_uri}/{unique_path}"
    assert cli("put", uri, "-e", "x").returncode == 0
    target = tmp_path / "deleted.out"
    out = cli("delete", uri, "-o", target)
    assert out.returncode == 0, out.stderr
    assert target.read_bytes() == b""
    gone = tmp_path / "not-written.out"
    assert cli("get", uri, "-o", gone).returncode == 4
    assert not gone.exists()


def test_non_confirmable(coap_server: CoapServer) -> None:
    out = cli("get", coap_server.coap_uri + "/", "-N", "-B", "10")
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith(WELCOME)


def test_not_found_exit_status_and_one_line(coap_server: CoapServer, unique_path: str) -> None:
    out = cli("get", f"{coap_server.coap_uri}/{unique_path}")
    assert out.returncode == 4
    assert out.stdout == b""
    assert one_line(out.stderr).startswith("libcoap-py: 4.04 Not Found")


def test_verbose_shows_code_and_options(coap_server: CoapServer) -> None:
    out = cli("get", coap_server.coap_uri + "/", "-v", "4")
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith(WELCOME)
    lines = out.stderr.decode().splitlines()
    assert lines[0].startswith("2.05 Content (ACK, token 0x")
    assert f"  payload: {len(out.stdout)} bytes" in lines


def test_unreachable_port(free_udp_port: int) -> None:
    out = cli("get", f"coap://127.0.0.1:{free_udp_port}/x", "-B", "3")
    assert out.returncode == 3
    line = one_line(out.stderr)
    assert line.startswith("libcoap-py: ")
    if not LIBCOAP_42:  # 4.2 does not report the ICMP error: it waits out -B
        assert "unreachable" in line  # the ICMP error ends the wait, not -B


def test_no_answer_within_the_wait_limit(silent_peer: UdpPeer) -> None:
    started = time.monotonic()
    out = cli("get", silent_peer.uri + "/x", "-B", "1")
    elapsed = time.monotonic() - started
    assert out.returncode == 3
    assert elapsed >= 1  # it waited out -B 1 (a lower bound: no flake on a busy machine)
    assert one_line(out.stderr) == f"libcoap-py: no response from {silent_peer.uri}/x within 1 s"


@pytest.mark.needs_dtls
def test_psk(coap_server: CoapServer) -> None:
    uri = coap_server.coaps_uri + "/"
    identity, key = coap_server.psk_identity.decode(), coap_server.psk_key.decode()
    out = cli("get", uri, "-u", identity, "-k", key)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith(WELCOME)
    wrong = cli("get", uri, "-u", identity, "-k", "not the key", "-B", "2")
    assert wrong.returncode == 3
    assert "DTLS" in one_line(wrong.stderr)


@pytest.mark.needs_dtls
def test_pki(coap_server: CoapServer, certs: CertFiles, tmp_path: Path) -> None:
    uri = coap_server.coaps_uri + "/"
    out = cli("get", uri, "-c", certs.cert, "-j", certs.key, "-C", certs.ca)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith(WELCOME)
    # the key inside the certificate file, as coap-client allows (no -j)
    both = tmp_path / "cert+key.pem"
    both.write_bytes(certs.cert.read_bytes() + certs.key.read_bytes())
    out = cli("get", uri, "-c", both, "-R", certs.ca)
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith(WELCOME)
    # a server certificate that does not chain to the CA given is refused
    refused = cli("get", uri, "-c", certs.cert, "-j", certs.key, "-C", certs.other_ca, "-B", "5")
    assert refused.returncode == 3
    assert "DTLS" in refused.stderr.decode().splitlines()[-1]


def test_missing_credentials_and_files(coap_server: CoapServer, tmp_path: Path) -> None:
    out = cli("get", coap_server.coaps_uri + "/")
    assert out.returncode == 2
    assert "needs credentials" in one_line(out.stderr)
    out = cli("get", coap_server.coaps_uri + "/", "-c", tmp_path / "absent.crt")
    assert out.returncode == 1
    assert "absent.crt" in one_line(out.stderr)
    out = cli("put", coap_server.coap_uri + "/x", "-f", tmp_path / "absent.bin")
    assert out.returncode == 1
    assert one_line(out.stderr).startswith("libcoap-py: error: -f: cannot read")


def test_block_wise_200_kib(coap_server: CoapServer, unique_path: str, tmp_path: Path) -> None:
    body = os.urandom(200 * 1024)
    source, target = tmp_path / "big.bin", tmp_path / "big.out"
    source.write_bytes(body)
    uri = f"{coap_server.coap_uri}/{unique_path}"
    put = cli("put", uri, "-f", source, "-b", "1024")
    assert put.returncode == 0, put.stderr
    got = cli("get", uri, "-b", "1024", "-o", target)
    assert got.returncode == 0, got.stderr
    assert target.read_bytes() == body
    piped = cli("get", uri, "-b", "256")
    assert piped.returncode == 0, piped.stderr
    assert piped.stdout == body
    assert piped.stderr == b""  # no progress indicator when stderr is not a terminal
    small_uri, small_body = f"{uri}-small", body[:20_000]  # 16-byte blocks: 1250 each way
    assert cli("put", small_uri, "-f", "-", "-b", "16", stdin=small_body).returncode == 0
    small = cli("get", small_uri, "-b", "16")
    assert small.returncode == 0, small.stderr
    assert small.stdout == small_body


def test_reader_going_away_is_quiet(coap_server: CoapServer, unique_path: str) -> None:
    uri = f"{coap_server.coap_uri}/{unique_path}"
    assert cli("put", uri, "-f", "-", stdin=os.urandom(300 * 1024)).returncode == 0
    process = subprocess.Popen(
        [sys.executable, "-I", "-m", "libcoap_py", "get", uri],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert process.stdout is not None and process.stderr is not None
    assert len(process.stdout.read(10)) == 10
    process.stdout.close()  # like '| head -c 10'
    try:
        stderr = process.stderr.read()
        assert process.wait(timeout=20) == 141
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert stderr == b""


def test_observe_time(coap_server: CoapServer) -> None:
    started = time.monotonic()
    out = cli("get", coap_server.coap_uri + "/time", "-s", "8", "-w")
    elapsed = time.monotonic() - started
    assert out.returncode == 0, out.stderr
    assert elapsed >= 8  # it observed for -s 8 (a lower bound: no flake when busy)
    lines = out.stdout.decode().splitlines()
    # the first response, then notifications: 4.3's coap-server sends one a second;
    # 4.2's only when traffic wakes it, at the latest the re-registration after
    # Max-Age (1 s) + 5 s
    assert len(lines) >= 2, out.stdout
    assert all(lines), lines


def test_observe_needs_get(coap_server: CoapServer) -> None:
    out = cli("put", coap_server.coap_uri + "/time", "-s", "3")
    assert out.returncode == 2
    assert "-s" in one_line(out.stderr)


@pytest.mark.skipif(not coap.tcp_is_supported(), reason="this libcoap has no TCP")
def test_reliable_uses_tcp(coap_server: CoapServer) -> None:
    out = cli("get", coap_server.coap_uri + "/", "-r", "-B", "10")
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith(WELCOME)


# --------------------------------------------------------------------------
# against the project's server: what reached it


def _recording_server(ctx: coap.Context, seen: list[Seen]) -> int:
    @ctx.resource("rec", methods=("GET", "POST", "PUT", "DELETE", "FETCH", "PATCH", "IPATCH"))
    def record(request: Any, response: Any) -> None:
        seen.append(Seen.of(request))
        response.payload = b'{"ok":true}'
        response.content_format = coap.ContentFormat.JSON

    @ctx.resource("boom", methods=("GET",))
    def boom(request: Any, response: Any) -> None:
        raise RuntimeError("this handler fails on purpose")

    return ctx.add_endpoint("coap://127.0.0.1:0").port


def test_options_reach_the_server(serve: Serve) -> None:
    seen: list[Seen] = []
    port = serve(lambda ctx: _recording_server(ctx, seen))
    # (libcoap 4.3.2 and later answer If-None-Match on an existing resource 4.12
    # themselves, before the handler: test_if_none_match_on_an_existing_resource)
    if_none_match = [] if CORE_CHECKS_FETCH_AND_IF_NONE_MATCH else ["-O", "if-none-match"]
    out = cli(
        "post", f"coap://127.0.0.1:{port}/rec?x=1",
        "-e", '{"a":1}', "-t", "application/json", "-A", "cbor",
        "-O", f"{CUSTOM_OPTION},0x00ff41", "-O", f"{CUSTOM_OPTION},text",
        "-O", "uri-query,y=2", "-O", "max-age,60", *if_none_match, "-v", "4",
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert out.stdout == b'{"ok":true}'
    assert "  Content-Format: 50 (application/json)" in out.stderr.decode().splitlines()
    (request,) = seen
    assert request.method == "POST"
    assert request.path == "rec"
    assert sorted(request.query) == ["x=1", "y=2"]
    assert request.payload == b'{"a":1}'
    assert request.content_format == 50
    assert request.accept == 60
    assert request.option_values(CUSTOM_OPTION) == [b"\x00\xffA", b"text"]
    assert request.option_values(coap.OptionNumber.MAX_AGE) == [b"\x3c"]  # a uint
    assert request.option_values(coap.OptionNumber.IF_NONE_MATCH) == (
        [] if CORE_CHECKS_FETCH_AND_IF_NONE_MATCH else [b""]
    )
    assert request.type == coap.MessageType.CON


def test_if_none_match_on_an_existing_resource(serve: Serve) -> None:
    """If-None-Match (RFC 7252, 5.10.8.2) on a resource that exists: libcoap 4.3.2 and
    later answer 4.12 Precondition Failed themselves; earlier releases leave it to
    the handler, which here answers as if the resource were new."""
    seen: list[Seen] = []
    port = serve(lambda ctx: _recording_server(ctx, seen))
    out = cli("put", f"coap://127.0.0.1:{port}/rec", "-e", "new", "-O", "if-none-match")
    if CORE_CHECKS_FETCH_AND_IF_NONE_MATCH:
        assert out.returncode == 4, out.stderr
        assert "4.12 Precondition Failed" in out.stderr.decode()
        assert seen == []
    else:
        assert out.returncode == 0, out.stderr
        (request,) = seen
        assert request.option_values(coap.OptionNumber.IF_NONE_MATCH) == [b""]


def test_methods_non_and_numeric_formats(serve: Serve) -> None:
    seen: list[Seen] = []
    port = serve(lambda ctx: _recording_server(ctx, seen))
    uri = f"coap://127.0.0.1:{port}/rec"
    for method in ("get", "post", "put", "delete", "fetch", "patch", "ipatch"):
        out = cli(method, uri, "-N", "-t", "42", "-B", "10")
        assert out.returncode == 0, (method, out.stderr)
    assert [s.method for s in seen] == ["GET", "POST", "PUT", "DELETE", "FETCH", "PATCH", "IPATCH"]
    assert all(s.type == coap.MessageType.NON for s in seen)
    assert all(s.content_format == 42 for s in seen)


def test_token(serve: Serve) -> None:
    seen: list[Seen] = []
    port = serve(lambda ctx: _recording_server(ctx, seen))
    uri = f"coap://127.0.0.1:{port}/rec"
    out = cli("get", uri, "-T", "0x0102")
    assert out.returncode == 0, out.stderr
    assert cli("get", uri, "-T", "cafe").returncode == 0
    if LIBCOAP_42 or LIBCOAP_VERSION_INFO >= (4, 3, 5):
        # 4.2's and 4.3.5's coap-client send the token as given
        assert [s.token for s in seen] == [b"\x01\x02", b"cafe"]
    else:  # 4.3.0 to 4.3.4 count up from the base token, as their coap-client's -T does
        assert [s.token for s in seen] == [b"\x01\x03", b"caff"]
    # libcoap's own coap-client of the same version sends the same token
    assert coap_client_run("-T", "cafe", uri).returncode == 0
    assert len(seen) == 3 and seen[2].token == seen[1].token


def test_token_of_an_observation(serve: Serve) -> None:
    tokens: list[bytes] = []

    def setup(ctx: coap.Context) -> int:
        @ctx.resource("obs", observable=True)
        def obs(request: Any, response: Any) -> None:
            tokens.append(request.token)
            response.payload = b"1"

        return ctx.add_endpoint("coap://127.0.0.1:0").port

    port = serve(setup)
    out = cli("get", f"coap://127.0.0.1:{port}/obs", "-s", "1", "-T", "0x0102")
    assert out.returncode == 0, out.stderr
    # as for a plain request: 4.2 and 4.3.5 send the token as given, 4.3.0 to 4.3.4
    # count up from it
    as_given = LIBCOAP_42 or LIBCOAP_VERSION_INFO >= (4, 3, 5)
    assert tokens[0] == (b"\x01\x02" if as_given else b"\x01\x03")


def test_server_error_exit_status(serve: Serve) -> None:
    port = serve(lambda ctx: _recording_server(ctx, []))
    out = cli("get", f"coap://127.0.0.1:{port}/boom")
    assert out.returncode == 5
    assert one_line(out.stderr).startswith("libcoap-py: 5.00 Internal Server Error")


# --------------------------------------------------------------------------
# flags and help


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["-b", "100"], "-b 100"),
        (["-b", "2,64"], "starting at block 2"),
        (["-t", "nonsense"], "unknown content format"),
        (["-O", "x,1"], "-O x,1"),
        (["-O", "65000,0xabc"], "not hex"),
        (["-O", "content-format,0x010203"], "Content-Format"),
        (["-O", "max-age,soon"], "not a number"),
        (["-T", "123456789"], "1 to 8 bytes"),
        (["-u", "me"], "-u needs -k"),
    ],
)
def test_bad_flag_values(flags: list[str], message: str) -> None:
    uri = "coaps://127.0.0.1:9/" if flags[0] == "-u" else "coap://127.0.0.1:9/"
    out = cli("get", uri, *flags)
    assert out.returncode == 2
    line = one_line(out.stderr)
    assert line.startswith("libcoap-py: error: ") and message in line


def test_help_documents_every_flag() -> None:
    for argv in (["get", "--help"], ["coap://h/", "--help"]):
        out = cli(*argv)
        assert out.returncode == 0
        text = out.stdout.decode()
        flags = CLIENT_FLAGS if argv[0] != "get" else [f for f in CLIENT_FLAGS if f != "-m"]
        for flag in flags:
            assert f"\n  {flag} " in text, flag
        assert "exit status" in text and "examples" in text
    top = cli("--help")
    assert top.returncode == 0
    assert b"get|post|put|delete|fetch|patch|ipatch" in top.stdout
    # the other commands are still there
    assert cli("outbox", "--help").returncode == 0
    assert cli("--version").stdout.startswith(b"libcoap-py ")


# --------------------------------------------------------------------------
# the progress indicator


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_only_on_a_terminal() -> None:
    terminal = _Terminal()
    with Progress("GET coap://x/big", stream=terminal, delay=0, interval=0.01):
        assert wait_until(lambda: " s" in terminal.getvalue(), timeout=5)
    text = terminal.getvalue()
    assert "GET coap://x/big" in text and " s" in text
    assert text.endswith("\r") and text.rsplit("\r", 2)[-2].strip() == ""  # erased at the end
    piped = io.StringIO()
    with Progress("GET coap://x/big", stream=piped, delay=0, interval=0.01) as progress:
        assert progress._thread is None  # not a terminal: nothing runs, nothing is written
        progress.update(1024, 4096)
    assert piped.getvalue() == ""


def test_progress_bar_with_bytes_done() -> None:
    terminal = _Terminal()
    with Progress("GET coap://x/big", stream=terminal, delay=0, interval=0.01) as progress:
        progress.update(1024, 4096)
        assert wait_until(lambda: "1024/4096 bytes" in terminal.getvalue(), timeout=5)
        progress.update(3000, None)  # no total known: a byte counter
        assert wait_until(lambda: "3000 bytes" in terminal.getvalue(), timeout=5)
    text = terminal.getvalue()
    assert "[######..................]  25% 1024/4096 bytes  " in text
    assert "s  GET coap://x/big" in text
    assert text.rsplit("\r", 2)[-2].strip() == ""  # erased at the end
    progress = Progress("PUT coap://x/big", stream=terminal)
    progress.update(4095, 4096)
    assert (
        progress.line(1.25) == "[" + "#" * 23 + ".]  99% 4095/4096 bytes  1.2 s  PUT coap://x/big"
    )


def test_progress_is_fed_per_block(serve: Serve, monkeypatch: pytest.MonkeyPatch) -> None:
    """The client's request() reports each block (libcoap 4.2) or the end (4.3)."""
    from libcoap_py.cli import client

    def setup(ctx: coap.Context) -> int:
        @ctx.resource("big", methods=("GET",))
        def big(request: Any, response: Any) -> None:
            response.payload = bytes(50_000)

        return ctx.add_endpoint("coap://127.0.0.1:0").port

    port = serve(setup)
    seen: list[tuple[int, int | None]] = []

    class Recording(Progress):
        def update(self, done: int, total: int | None) -> None:
            seen.append((done, total))
            super().update(done, total)

    monkeypatch.setattr(client, "Progress", Recording)
    args = client.build_client_parser().parse_args(
        [f"coap://127.0.0.1:{port}/big", "-b", "1024", "-o", os.devnull]
    )
    plan = client.make_plan(args)
    with coap.Context() as ctx:
        session = ctx.client_session(plan.uri)
        assert client._request(session, plan, client.Output(plan.output, False)) == 0
    assert seen[-1] == (50_000, 50_000)
    if not coap.lib.LCP_HAS_BLOCK:
        assert seen[0] == (1024, 50_000) and len(seen) >= 49
