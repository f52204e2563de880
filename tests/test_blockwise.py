"""Block-wise transfers (RFC 7959): bodies of any size, both ways, checked byte for byte.

Peers: libcoap's coap-server-openssl and coap-client-openssl (C), the project's own
server, and aiocoap (client and server). libcoap 4.3 does the block handling; on
4.2 a body larger than one PDU is refused with PayloadTooLargeError.
"""

from __future__ import annotations

import asyncio
import importlib
import os
import shutil
import socket
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Callable

import pytest
from conftest import CoapServer, decode_message, encode_message

import libcoap_py as coap

pytestmark = pytest.mark.skipif(
    not coap.lib.LCP_HAS_BLOCK, reason="block-wise transfer needs libcoap 4.3"
)

MIB = os.urandom(1 << 20)
COAP_CLIENT = shutil.which("coap-client-openssl")


class OwnServer:
    """A Context serving /big (GET returns ``body``, PUT/POST store it) in a thread."""

    def __init__(self) -> None:
        self.body = MIB
        self.stored: bytes | None = None
        self.port = 0
        self._ready = threading.Event()
        self._context: coap.Context | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        assert self._ready.wait(10), "server did not start"

    def _run(self) -> None:
        with coap.Context() as ctx:
            self._context = ctx
            self.port = ctx.add_endpoint("coap://127.0.0.1:0").port

            @ctx.resource("big", methods=("GET", "PUT", "POST"))
            def big(request: coap.Request, response: coap.ServerResponse) -> None:
                if request.method == "GET":
                    response.payload = self.body
                    response.content_format = coap.ContentFormat.OCTET_STREAM
                else:
                    self.stored = request.payload

            self._ready.set()
            ctx.run()

    def stop(self) -> None:
        assert self._context is not None
        self._context.stop()
        self._thread.join(10)


@pytest.fixture
def own_server() -> Iterator[OwnServer]:
    server = OwnServer()
    yield server
    server.stop()


@pytest.fixture
def ctx() -> Iterator[coap.Context]:
    with coap.Context() as context:
        yield context


@pytest.mark.parametrize("block_size", [None, 1024, 64])
def test_1mib_both_ways_with_the_c_server(
    ctx: coap.Context, coap_server: CoapServer, unique_path: str, block_size: int | None
) -> None:
    session = ctx.client_session(coap_server.coap_uri)
    put = session.request("PUT", unique_path, MIB, block_size=block_size, timeout=60)
    assert put.code in (coap.Code.CREATED, coap.Code.CHANGED)
    got = session.request("GET", unique_path, block_size=block_size, timeout=60)
    assert got.code is coap.Code.CONTENT
    assert got.payload == MIB


@pytest.mark.parametrize("block_size", [None, 512, 16])
def test_both_ways_with_the_own_server(
    ctx: coap.Context, own_server: OwnServer, block_size: int | None
) -> None:
    body = MIB if block_size != 16 else MIB[:40_000]
    own_server.body = body
    session = ctx.client_session(f"coap://127.0.0.1:{own_server.port}")
    got = session.request("GET", "big", block_size=block_size, timeout=60)
    assert got.code is coap.Code.CONTENT and got.payload == body
    assert got.content_format == coap.ContentFormat.OCTET_STREAM
    put = session.request("PUT", "big", body, block_size=block_size, timeout=60)
    assert put.code is coap.Code.CHANGED
    assert own_server.stored == body


@pytest.mark.skipif(COAP_CLIENT is None, reason="coap-client-openssl is not installed")
def test_c_client_against_the_own_server(own_server: OwnServer, tmp_path: Path) -> None:
    uri = f"coap://127.0.0.1:{own_server.port}/big"
    out = tmp_path / "out.bin"
    done = subprocess.run(
        [str(COAP_CLIENT), "-b", "256", "-o", str(out), uri], capture_output=True, timeout=60
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert out.read_bytes() == MIB
    source = tmp_path / "in.bin"
    source.write_bytes(MIB[::-1])
    done = subprocess.run(
        [str(COAP_CLIENT), "-m", "put", "-b", "1024", "-f", str(source), uri],
        capture_output=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert own_server.stored == MIB[::-1]


aiocoap = pytest.importorskip("aiocoap", reason="aiocoap is not installed")
_AIOCOAP_VERSION = tuple(
    int(p) for p in importlib.import_module("aiocoap.meta").version.split(".")[:3] if p.isdigit()
)


def run_async(coro: Any) -> Any:
    return asyncio.run(asyncio.wait_for(coro, 60))


def test_aiocoap_client_against_the_own_server(own_server: OwnServer) -> None:
    uri = f"coap://127.0.0.1:{own_server.port}/big"

    async def exchange() -> tuple[Any, Any]:
        client = await aiocoap.Context.create_client_context()
        try:
            got = await client.request(aiocoap.Message(code=aiocoap.GET, uri=uri)).response
            put = await client.request(
                aiocoap.Message(code=aiocoap.PUT, uri=uri, payload=MIB[:300_000])
            ).response
            return got, put
        finally:
            await client.shutdown()

    got, put = run_async(exchange())
    assert str(got.code).startswith("2.05") and got.payload == MIB
    assert str(put.code).startswith("2.04")
    if _AIOCOAP_VERSION < (0, 4, 8):
        # aiocoap 0.4.7 (the last for Python 3.9) hands libcoap 4.3.1 a Block1
        # exchange that ends after the first block; libcoap's own client and
        # newer aiocoap send the whole body (checked above and below).
        pytest.xfail("aiocoap < 0.4.8 block-wise PUT to libcoap 4.3.1 stops after block 0")
    assert own_server.stored == MIB[:300_000]


def test_own_client_against_an_aiocoap_server(ctx: coap.Context) -> None:
    from aiocoap import resource

    body = MIB[:200_000]
    ready = threading.Event()
    state: dict[str, Any] = {}

    class Big(resource.Resource):  # type: ignore[misc]
        async def render_get(self, request: Any) -> Any:
            return aiocoap.Message(payload=body)

    def serve() -> None:
        loop = asyncio.new_event_loop()
        state["loop"] = loop
        site = resource.Site()
        site.add_resource(["big"], Big())

        async def start() -> None:
            state["server"] = await aiocoap.Context.create_server_context(
                site, bind=("127.0.0.1", state["port"])
            )
            ready.set()

        loop.run_until_complete(start())
        loop.run_forever()
        loop.run_until_complete(state["server"].shutdown())
        loop.close()

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        state["port"] = probe.getsockname()[1]
    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    assert ready.wait(10)
    try:
        session = ctx.client_session(f"coap://127.0.0.1:{state['port']}")
        got = session.request("GET", "big", block_size=256, timeout=60)
        assert got.code is coap.Code.CONTENT
        assert got.payload == body
    finally:
        state["loop"].call_soon_threadsafe(state["loop"].stop)
        thread.join(10)


def test_block_size_is_checked(ctx: coap.Context, coap_server: CoapServer) -> None:
    session = ctx.client_session(coap_server.coap_uri)
    for bad in (0, 8, 100, 2048):
        with pytest.raises(ValueError, match="block_size"):
            session.request("GET", "", block_size=bad, timeout=1)


def _peer(handle: Callable[[socket.socket, bytes, Any], None]) -> tuple[int, threading.Event]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(0.1)
    stop = threading.Event()

    def run() -> None:
        with sock:
            while not stop.is_set():
                try:
                    data, address = sock.recvfrom(2048)
                except socket.timeout:
                    continue
                handle(sock, data, address)

    threading.Thread(target=run, daemon=True).start()
    return int(sock.getsockname()[1]), stop


def test_a_transfer_failing_midway_raises(ctx: coap.Context) -> None:
    """The peer sends block 0 of a large body, then goes silent: no truncated Response."""
    first_block = bytes(range(256)) * 4

    def handle(sock: socket.socket, data: bytes, address: Any) -> None:
        message = decode_message(data)
        if message.type != 0 or message.code != coap.Code.GET:
            return
        block2 = dict(message.options).get(int(coap.OptionNumber.BLOCK2), b"")
        num = int.from_bytes(block2, "big") >> 4 if block2 else 0
        if num == 0:  # block 0 of a body said to be larger (M=1, SZX 6 = 1024)
            reply = encode_message(
                2,
                int(coap.Code.CONTENT),
                message.mid,
                message.token,
                [(int(coap.OptionNumber.BLOCK2), bytes([0x0E]))],
                first_block,
            )
            sock.sendto(reply, address)
        # later blocks: silence

    port, stop = _peer(handle)
    try:
        session = ctx.client_session(f"coap://127.0.0.1:{port}")
        session.ack_timeout = 1.0
        session.max_retransmit = 1
        with pytest.raises(coap.NackError):
            session.request("GET", "big", timeout=8)
    finally:
        stop.set()
