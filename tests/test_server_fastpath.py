"""The server's fast path (one C call reads a request, one writes the usual answer), at
its edges: options beyond the first scratch buffer, Content-Format forms, and bodies
around the size of one PDU. Seen from aiocoap, an independent implementation."""

from __future__ import annotations

import socket
from typing import Any, Callable

import pytest
from helpers.codec import encode_message
from helpers.payloads import binary_payload
from helpers.peers import Seen

import libcoap_py as coap

aiocoap = pytest.importorskip(
    "aiocoap", reason="aiocoap (an independent CoAP implementation) is not installed"
)
from aiocoap.numbers.optionnumbers import OptionNumber as AioOption  # noqa: E402
from aiocoap.optiontypes import OpaqueOption  # noqa: E402
from test_server_api import aio, msg, plain_endpoint  # noqa: E402

Serve = Callable[..., Any]
CUSTOM_OPTION = 65000  # elective, unregistered: libcoap passes it through


def test_requests_with_many_and_large_options(serve: Serve) -> None:
    """Options that need more room than the first scratch buffer arrive whole, and so
    do smaller ones after it grew; a kept request still reads them later."""
    seen: list[Seen] = []
    kept: list[Any] = []

    def setup(ctx: coap.Context) -> int:
        @ctx.resource("opts", methods=("PUT",))
        def handler(request: Any, response: Any) -> None:
            seen.append(Seen.of(request))
            kept.append(request)
            response.payload = request.payload

        return plain_endpoint(ctx)

    port = serve(setup)
    big = binary_payload(700)
    queries = [f"k{i}=" + "v" * 20 for i in range(12)]
    first = msg("PUT", port, "opts?" + "&".join(queries), b"one")
    first.opt.add_option(OpaqueOption(AioOption(CUSTOM_OPTION), big))
    second = msg("PUT", port, "opts?small", b"two")
    third = msg("PUT", port, "opts", b"")
    third.opt.add_option(OpaqueOption(AioOption(CUSTOM_OPTION), b""))
    responses = aio(first, second, third)
    assert [r.payload for r in responses] == [b"one", b"two", b""]
    one, two, three = seen
    assert one.path == "opts" and one.query == tuple(queries)
    assert [v for n, v in one.options if n == CUSTOM_OPTION] == [big]
    assert two.query == ("small",)
    assert [n for n, _ in two.options] == [int(coap.OptionNumber.URI_PATH), 15]
    assert [v for n, v in three.options if n == CUSTOM_OPTION] == [b""]
    # Read for the first time after the handler returned: still the same.
    late = kept[0]
    assert late.option(CUSTOM_OPTION) == big
    assert late.uri_query == tuple(queries)
    late.options = [(int(coap.OptionNumber.URI_PATH), b"else")]
    assert late.path == "else"


@pytest.mark.parametrize(
    ("content_format", "payload"),
    [
        (0, b"text"),  # uint 0: a zero-length option
        (coap.ContentFormat.JSON, b"{}"),  # one byte
        (11542, b"\x01\x02"),  # two bytes
        (60, b""),  # no payload
    ],
)
def test_content_format_forms(serve: Serve, content_format: int, payload: bytes) -> None:
    def setup(ctx: coap.Context) -> int:
        @ctx.resource("cf", methods=("GET",))
        def handler(request: Any, response: Any) -> None:
            response.content_format = content_format
            response.payload = payload

        return plain_endpoint(ctx)

    port = serve(setup)
    (got,) = aio(msg("GET", port, "cf"))
    assert got.code == aiocoap.CONTENT
    assert got.opt.content_format is not None
    assert int(got.opt.content_format) == int(content_format)
    assert got.payload == payload


def test_bodies_around_one_pdu(serve: Serve) -> None:
    """Each size comes back whole: in one PDU while it fits (with a Content-Format),
    block-wise once it does not."""
    sizes = [1024, *range(1100, 1160, 3), 1200, 3000]

    def setup(ctx: coap.Context) -> int:
        @ctx.resource("size", methods=("GET",))
        def handler(request: Any, response: Any) -> None:
            size = int(request.query[0])
            response.content_format = coap.ContentFormat.OCTET_STREAM
            response.payload = binary_payload(size)

        return plain_endpoint(ctx)

    port = serve(setup)
    responses = aio(*(msg("GET", port, f"size?{size}") for size in sizes))
    for size, got in zip(sizes, responses):
        assert got.code == aiocoap.CONTENT, size
        assert got.payload == binary_payload(size), size
        assert int(got.opt.content_format) == int(coap.ContentFormat.OCTET_STREAM)


@pytest.mark.parametrize("how", ["stop", "raise"])
def test_run_returns_after_the_request_that_stopped_it_with_more_queued(how: str) -> None:
    """run() answers queued requests back to back, but a handler that calls stop() or
    raises a BaseException ends run() with that pass; the rest wait for the next run."""
    queued = 8
    answered: list[str] = []
    with coap.Context() as ctx:

        @ctx.resource("halt", methods=("POST",))
        def halt(request: Any, response: Any) -> None:
            answered.append("halt")
            if how == "stop":
                ctx.stop()
            else:
                raise KeyboardInterrupt

        @ctx.resource("next", methods=("GET",))
        def more(request: Any, response: Any) -> None:
            answered.append("next")

        port = ctx.add_endpoint("coap://127.0.0.1:0").port
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            requests = [(coap.Code.POST, "halt")] + [(coap.Code.GET, "next")] * queued
            for mid, (code, path) in enumerate(requests, start=1):
                datagram = encode_message(0, code, mid, b"t%d" % mid, [(11, path.encode())], b"")
                s.sendto(datagram, ("127.0.0.1", port))
            if how == "stop":
                ctx.run(timeout=10)
            else:
                with pytest.raises(KeyboardInterrupt):
                    ctx.run(timeout=10)
            assert answered[0] == "halt"
            assert len(answered) < 1 + queued, "run() went on after the halting request"
            for _ in range(100):
                if len(answered) == 1 + queued:
                    break
                ctx.run_once(100)
            assert answered == ["halt"] + ["next"] * queued
