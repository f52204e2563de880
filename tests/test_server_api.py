"""The server API (docs/server.md) seen from aiocoap, an independent CoAP implementation.

The binding's Context serves ``coap://`` in a thread of the test process
(``serve`` in conftest); aiocoap runs in the test thread under asyncio. Every
exchange has a deadline.
"""

from __future__ import annotations

import asyncio
import logging
import re
import socket
import struct
from typing import Any, Callable

import pytest
from helpers.build import CORE_CHECKS_FETCH_AND_IF_NONE_MATCH, DTLS, LIBCOAP_42
from helpers.certs import CertFiles
from helpers.net import IPV6_AVAILABLE
from helpers.payloads import binary_payload
from helpers.peers import Seen

import libcoap_py as coap

aiocoap = pytest.importorskip(
    "aiocoap", reason="aiocoap (an independent CoAP implementation) is not installed"
)
from aiocoap.numbers.optionnumbers import OptionNumber as AioOption  # noqa: E402
from aiocoap.optiontypes import OpaqueOption  # noqa: E402

#: An elective (even), unregistered option number: libcoap passes it through.
CUSTOM_OPTION = 65000
ALL_METHODS = ("GET", "POST", "PUT", "DELETE", "FETCH", "PATCH", "IPATCH")
AIO_METHOD = {
    "GET": aiocoap.GET,
    "POST": aiocoap.POST,
    "PUT": aiocoap.PUT,
    "DELETE": aiocoap.DELETE,
    "FETCH": aiocoap.FETCH,
    "PATCH": aiocoap.PATCH,
    "IPATCH": aiocoap.iPATCH,
}
DEFAULT_CODE = {
    "GET": aiocoap.CONTENT,
    "FETCH": aiocoap.CONTENT,
    "POST": aiocoap.CHANGED,
    "PUT": aiocoap.CHANGED,
    "PATCH": aiocoap.CHANGED,
    "IPATCH": aiocoap.CHANGED,
    "DELETE": aiocoap.DELETED,
}

Serve = Callable[..., Any]


def aio(*requests: Any, timeout: float = 10.0) -> list[Any]:
    """Send ``requests`` (aiocoap Messages) one after another; return the responses."""

    async def main() -> list[Any]:
        client = await aiocoap.Context.create_client_context()
        try:
            responses = []
            for message in requests:
                responses.append(await asyncio.wait_for(client.request(message).response, timeout))
            return responses
        finally:
            await client.shutdown()

    return asyncio.run(main())


def msg(
    method: str,
    port: int,
    path: str,
    payload: bytes = b"",
    *,
    host: str = "127.0.0.1",
    non: bool = False,
    content_format: int | None = None,
) -> Any:
    """An aiocoap request for ``coap://host:port/path``."""
    uri = f"coap://{f'[{host}]' if ':' in host else host}:{port}/{path}"
    kwargs: dict[str, Any] = {"code": AIO_METHOD[method], "uri": uri, "payload": payload}
    if content_format is not None:
        kwargs["content_format"] = content_format
    if non:
        if hasattr(aiocoap, "Unreliable"):
            kwargs["transport_tuning"] = aiocoap.Unreliable
        else:  # aiocoap < 0.4.8
            kwargs["mtype"] = aiocoap.NON
    return aiocoap.Message(**kwargs)


def custom_option(message: Any) -> list[bytes]:
    return [bytes(o.value) for o in message.opt.get_option(AioOption(CUSTOM_OPTION))]


def plain_endpoint(ctx: coap.Context, host: str = "127.0.0.1") -> int:
    uri_host = f"[{host}]" if ":" in host else host
    return ctx.add_endpoint(f"coap://{uri_host}:0").port


# --------------------------------------------------------------------------
# methods, payloads, default codes


def test_every_method_reaches_its_handler(serve: Serve) -> None:
    seen: list[Seen] = []

    def setup(ctx: coap.Context) -> int:
        @ctx.resource("res", methods=ALL_METHODS)
        def handler(request: Any, response: Any) -> None:
            seen.append(Seen.of(request))
            response.payload = request.method.encode() + b":" + request.payload

        return plain_endpoint(ctx)

    port = serve(setup)
    body = binary_payload(300)
    # FETCH says what its body is (RFC 8132): libcoap 4.3.2 and later insist.
    octets = int(coap.ContentFormat.OCTET_STREAM)
    responses = aio(
        *(
            msg(
                m, port, "res", b"" if m in ("GET", "DELETE") else body,
                content_format=octets if m == "FETCH" else None,
            )
            for m in ALL_METHODS
        )
    )  # fmt: skip
    for method, response, request in zip(ALL_METHODS, responses, seen):
        expected_body = b"" if method in ("GET", "DELETE") else body
        assert response.code == DEFAULT_CODE[method], method
        assert response.payload == method.encode() + b":" + expected_body, method
        assert request.method == method
        assert request.code == getattr(coap.Code, method)
        assert isinstance(request.code, coap.Code)
        assert request.path == "res"
        assert request.payload == expected_body
    assert [s.method for s in seen] == list(ALL_METHODS)


def test_fetch_without_content_format(serve: Serve) -> None:
    """libcoap 4.3.2 and later answer it 4.15 before any handler runs; earlier
    releases hand it to the handler."""
    seen: list[Seen] = []

    def setup(ctx: coap.Context) -> int:
        @ctx.resource("res", methods=("FETCH",))
        def handler(request: Any, response: Any) -> None:
            seen.append(Seen.of(request))
            response.payload = b"fetched"

        return plain_endpoint(ctx)

    port = serve(setup)
    (response,) = aio(msg("FETCH", port, "res", b"query"))
    if CORE_CHECKS_FETCH_AND_IF_NONE_MATCH:
        assert response.code == aiocoap.UNSUPPORTED_CONTENT_FORMAT
        assert seen == []
    else:
        assert response.code == aiocoap.CONTENT
        assert response.payload == b"fetched"
        assert [s.method for s in seen] == ["FETCH"]


@pytest.mark.parametrize("size", [0, 1, 255, 700, 1024])
def test_payload_round_trips_byte_for_byte(serve: Serve, size: int) -> None:
    seen: list[Seen] = []

    def setup(ctx: coap.Context) -> int:
        @ctx.resource("echo", methods=("POST",))
        def echo(request: Any, response: Any) -> None:
            seen.append(Seen.of(request))
            response.payload = request.payload

        return plain_endpoint(ctx)

    port = serve(setup)
    body = binary_payload(size)
    (response,) = aio(msg("POST", port, "echo", body))
    assert seen[0].payload == body
    assert response.code == aiocoap.CHANGED
    assert response.payload == body


def test_text_and_str_payload(serve: Serve) -> None:
    texts: list[str] = []

    def setup(ctx: coap.Context) -> int:
        @ctx.resource("text", methods=("PUT",))
        def text(request: Any, response: Any) -> None:
            texts.append(request.text)
            response.payload = "grüße ✓"  # str is sent as UTF-8

        return plain_endpoint(ctx)

    port = serve(setup)
    (response,) = aio(msg("PUT", port, "text", "héllo wörld".encode()))
    assert texts == ["héllo wörld"]
    assert response.payload == "grüße ✓".encode()


# --------------------------------------------------------------------------
# options and query, both directions


def test_request_options_and_query_reach_the_handler(serve: Serve) -> None:
    seen: list[Seen] = []
    option_calls: list[tuple[bytes | None, bytes | None]] = []

    def setup(ctx: coap.Context) -> int:
        @ctx.resource("a/b", methods=("PUT",))
        def handler(request: Any, response: Any) -> None:
            seen.append(Seen.of(request))
            option_calls.append(
                (request.option(CUSTOM_OPTION), request.option(coap.OptionNumber.IF_MATCH))
            )

        return plain_endpoint(ctx)

    port = serve(setup)
    request = msg("PUT", port, "a/b?x=1&name=two%20words&flag", b"{}")
    request.opt.content_format = 50  # application/json
    request.opt.accept = 60  # application/cbor
    request.opt.add_option(OpaqueOption(AioOption(CUSTOM_OPTION), b"\x00\xffz"))
    (response,) = aio(request)
    assert response.code == aiocoap.CHANGED
    (got,) = seen
    assert got.path == "a/b"
    assert got.query == ("x=1", "name=two words", "flag")
    assert got.content_format == coap.ContentFormat.JSON
    assert got.accept == coap.ContentFormat.CBOR
    assert got.option_values(CUSTOM_OPTION) == [b"\x00\xffz"]
    assert got.option_values(coap.OptionNumber.URI_PATH) == [b"a", b"b"]
    assert got.option_values(coap.OptionNumber.URI_QUERY) == [b"x=1", b"name=two words", b"flag"]
    assert got.option_values(coap.OptionNumber.CONTENT_FORMAT) in ([b"\x32"], [b"\x00\x32"])
    assert option_calls == [(b"\x00\xffz", None)]
    numbers = [n for n, _ in got.options]
    assert numbers == sorted(numbers), "options are listed in wire order"


def test_request_without_options(serve: Serve) -> None:
    seen: list[Seen] = []

    def setup(ctx: coap.Context) -> int:
        @ctx.resource("bare", methods=("GET",))
        def handler(request: Any, response: Any) -> None:
            seen.append(Seen.of(request))

        return plain_endpoint(ctx)

    port = serve(setup)
    aio(msg("GET", port, "bare"))
    (got,) = seen
    assert got.query == ()
    assert got.content_format is None
    assert got.accept is None
    assert got.payload == b""


def test_response_options_and_content_format_reach_the_client(serve: Serve) -> None:
    response_options: list[list[tuple[int, bytes]]] = []

    def setup(ctx: coap.Context) -> int:
        @ctx.resource("made", methods=("POST", "GET"))
        def handler(request: Any, response: Any) -> None:
            if request.method == "GET":
                response.payload = b"plain"
                response.content_format = coap.ContentFormat.TEXT_PLAIN
                return
            response.code = coap.Code.CREATED
            response.content_format = coap.ContentFormat.JSON
            response.add_option(coap.OptionNumber.ETAG, b"\x01\x02\x03")
            response.add_option(coap.OptionNumber.MAX_AGE, 60)
            response.add_option(coap.OptionNumber.LOCATION_PATH, "made")
            response.add_option(coap.OptionNumber.LOCATION_PATH, "7")
            response.add_option(CUSTOM_OPTION, b"\x00\xfe")
            response.payload = b'{"id":7}'
            response_options.append([(int(n), bytes(v)) for n, v in response.options])

        return plain_endpoint(ctx)

    port = serve(setup)
    created, got = aio(msg("POST", port, "made", b"x"), msg("GET", port, "made"))
    assert created.code == aiocoap.CREATED
    assert created.payload == b'{"id":7}'
    assert int(created.opt.content_format) == 50
    assert created.opt.etag == b"\x01\x02\x03"
    assert created.opt.max_age == 60
    assert tuple(created.opt.location_path) == ("made", "7")
    assert custom_option(created) == [b"\x00\xfe"]
    (listed,) = response_options
    assert (int(coap.OptionNumber.ETAG), b"\x01\x02\x03") in listed
    assert (CUSTOM_OPTION, b"\x00\xfe") in listed
    assert got.code == aiocoap.CONTENT
    assert got.opt.content_format is not None and int(got.opt.content_format) == 0
    assert got.payload == b"plain"


def test_response_without_content_format_has_none(serve: Serve) -> None:
    def setup(ctx: coap.Context) -> int:
        @ctx.resource("raw", methods=("GET",))
        def handler(request: Any, response: Any) -> None:
            response.payload = b"\x00raw"

        return plain_endpoint(ctx)

    port = serve(setup)
    (got,) = aio(msg("GET", port, "raw"))
    assert got.payload == b"\x00raw"
    assert got.opt.content_format is None


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (coap.Code.CREATED, "CREATED"),
        ("4.03", "FORBIDDEN"),
        (coap.Code.NOT_FOUND.value, "NOT_FOUND"),  # the header byte, 4 << 5 | 4
        ("5.03", "SERVICE_UNAVAILABLE"),
        (coap.Code.VALID, "VALID"),
    ],
)
def test_response_code_forms(serve: Serve, value: Any, expected: str) -> None:
    def setup(ctx: coap.Context) -> int:
        @ctx.resource("code", methods=("POST",))
        def handler(request: Any, response: Any) -> None:
            response.code = value
            response.payload = b"diagnostic"

        return plain_endpoint(ctx)

    port = serve(setup)
    (got,) = aio(msg("POST", port, "code", b"x"))
    assert got.code == getattr(aiocoap, expected)
    assert got.payload == b"diagnostic"


# --------------------------------------------------------------------------
# 4.04, 4.05, the unknown-resource handler, /.well-known/core


def test_unknown_path_is_not_found_without_unknown_handler(serve: Serve) -> None:
    def setup(ctx: coap.Context) -> int:
        @ctx.resource("known", methods=("GET",))
        def handler(request: Any, response: Any) -> None:
            response.payload = b"known"

        return plain_endpoint(ctx)

    port = serve(setup)
    responses = aio(
        msg("GET", port, "unknown"),
        msg("POST", port, "known/deeper", b"x"),
        msg("PUT", port, "nothing/here", b"x"),
        msg("GET", port, "known"),
    )
    assert [r.code for r in responses[:3]] == [aiocoap.NOT_FOUND] * 3
    assert responses[3].code == aiocoap.CONTENT
    assert responses[3].payload == b"known"


def test_method_without_handler_is_method_not_allowed(serve: Serve) -> None:
    calls: list[str] = []

    def setup(ctx: coap.Context) -> int:
        @ctx.resource("ro", methods=("GET",))
        def handler(request: Any, response: Any) -> None:
            calls.append(request.method)

        return plain_endpoint(ctx)

    port = serve(setup)
    responses = aio(*(msg(m, port, "ro", b"x") for m in ALL_METHODS if m != "GET"))
    assert [r.code for r in responses] == [aiocoap.METHOD_NOT_ALLOWED] * 6
    assert calls == []


def test_unknown_resource_handler(serve: Serve) -> None:
    seen: list[Seen] = []

    def setup(ctx: coap.Context) -> int:
        @ctx.resource("known", methods=("PUT",))
        def known(request: Any, response: Any) -> None:
            response.payload = b"known handler"

        @ctx.unknown_resource(methods=("POST", "PUT"))
        def anything(request: Any, response: Any) -> None:
            seen.append(Seen.of(request))
            response.code = coap.Code.CHANGED
            response.payload = b"unknown handler for " + request.path.encode()

        return plain_endpoint(ctx)

    port = serve(setup)
    put, post, get, known = aio(
        msg("PUT", port, "new/thing?q=1", b"made"),
        msg("POST", port, "other", b"\x00\x01"),
        msg("GET", port, "new/thing"),
        msg("PUT", port, "known", b"k"),
    )
    assert put.code == aiocoap.CHANGED
    assert put.payload == b"unknown handler for new/thing"
    assert post.payload == b"unknown handler for other"
    assert get.code == aiocoap.NOT_FOUND  # no GET for unknown paths
    assert known.payload == b"known handler"
    assert [(s.method, s.path, s.query, s.payload) for s in seen] == [
        ("PUT", "new/thing", ("q=1",), b"made"),
        ("POST", "other", (), b"\x00\x01"),
    ]


def test_set_unknown_handler_function_form(serve: Serve) -> None:
    paths: list[str] = []

    def on_unknown(request: Any, response: Any) -> None:
        paths.append(request.path)
        response.payload = b"caught"

    def setup(ctx: coap.Context) -> int:
        ctx.set_unknown_handler(on_unknown, methods=(coap.Code.POST,))
        return plain_endpoint(ctx)

    port = serve(setup)
    (got,) = aio(msg("POST", port, "x/y/z", b"1"))
    assert got.code == aiocoap.CHANGED
    assert got.payload == b"caught"
    assert paths == ["x/y/z"]


def _links(payload: bytes) -> set[str]:
    return set(re.findall(r"<([^>]*)>", payload.decode()))


def test_well_known_core_lists_the_resources(serve: Serve) -> None:
    def setup(ctx: coap.Context) -> int:
        def handler(request: Any, response: Any) -> None:
            response.payload = b"x"

        ctx.resource("hello", methods=("GET",))(handler)
        ctx.resource("sensors/temp", methods=("GET", "PUT"))(handler)
        ctx.add_resource("plain").handle("POST", handler)
        ctx.unknown_resource(methods=("PUT",))(handler)
        return plain_endpoint(ctx)

    port = serve(setup)
    (got,) = aio(msg("GET", port, ".well-known/core"))
    assert got.code == aiocoap.CONTENT
    assert int(got.opt.content_format) == 40  # application/link-format
    links = _links(got.payload)
    assert {"/hello", "/sensors/temp", "/plain"} <= links, got.payload


def test_add_resource_handle_and_decorator_forms(serve: Serve) -> None:
    def setup(ctx: coap.Context) -> int:
        resource = ctx.add_resource("thing")

        def get(request: Any, response: Any) -> None:
            response.payload = b"got"

        resource.handle("GET", get)

        @resource.handler("PUT")
        def put(request: Any, response: Any) -> None:
            response.payload = b"put " + request.payload

        resource.handle(coap.Code.DELETE, lambda request, response: None)
        return plain_endpoint(ctx)

    port = serve(setup)
    got, put, deleted, post = aio(
        msg("GET", port, "thing"),
        msg("PUT", port, "thing", b"v"),
        msg("DELETE", port, "thing"),
        msg("POST", port, "thing", b"v"),
    )
    assert (got.code, got.payload) == (aiocoap.CONTENT, b"got")
    assert (put.code, put.payload) == (aiocoap.CHANGED, b"put v")
    assert deleted.code == aiocoap.DELETED
    assert post.code == aiocoap.METHOD_NOT_ALLOWED


def test_remove_resource_while_serving(serve: Serve) -> None:
    def setup(ctx: coap.Context) -> int:
        for name in ("stay", "gone"):
            ctx.resource(name, methods=("GET",))(
                lambda request, response: setattr(response, "payload", request.path.encode())
            )
        return plain_endpoint(ctx)

    port, server = serve(setup, handle=True)
    before, stay = aio(msg("GET", port, "gone"), msg("GET", port, "stay"))
    assert before.payload == b"gone"
    server.call(lambda ctx: ctx.remove_resource("gone"))
    after, stay, core = aio(
        msg("GET", port, "gone"), msg("GET", port, "stay"), msg("GET", port, ".well-known/core")
    )
    assert after.code == aiocoap.NOT_FOUND
    assert stay.payload == b"stay"
    links = _links(core.payload)
    assert "/stay" in links
    assert "/gone" not in links


# --------------------------------------------------------------------------
# what the request shows: token, mid, type, peer, proto; its lifetime


def _raw_exchange(port: int, datagram: bytes, timeout: float = 5.0) -> tuple[bytes, int]:
    """Send one datagram from a fresh socket; return (first answer, our source port)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        s.settimeout(timeout)
        s.sendto(datagram, ("127.0.0.1", port))
        return s.recv(2048), int(s.getsockname()[1])


def test_request_shows_token_mid_type_peer_and_proto(serve: Serve) -> None:
    seen: list[Seen] = []
    sessions: list[bool] = []

    def setup(ctx: coap.Context) -> int:
        @ctx.resource("who", methods=("GET",))
        def handler(request: Any, response: Any) -> None:
            seen.append(Seen.of(request))
            sessions.append(request.session is not None)
            response.payload = b"you"

        return plain_endpoint(ctx)

    port = serve(setup)
    token = b"\xca\xfe\x00\x01"
    # CON GET, token length 4, MID 0x1234, Uri-Path "who" (delta 11, length 3)
    con = struct.pack("!BBH", 0x44, 0x01, 0x1234) + token + b"\xb3who"
    answer, source_port = _raw_exchange(port, con)
    assert answer[0] >> 6 == 1  # version
    assert (answer[0] >> 4) & 0x3 == coap.MessageType.ACK
    assert answer[1] == coap.Code.CONTENT
    assert answer[2:4] == b"\x12\x34"
    assert answer[4 : 4 + (answer[0] & 0xF)] == token
    assert answer.endswith(b"\xffyou")

    non = struct.pack("!BBH", 0x54, 0x01, 0x4321) + token + b"\xb3who"
    answer, non_port = _raw_exchange(port, non)
    assert (answer[0] >> 4) & 0x3 == coap.MessageType.NON
    assert answer[1] == coap.Code.CONTENT

    first, second = seen
    assert first.token == token
    assert first.mid == 0x1234
    assert first.type == coap.MessageType.CON
    assert first.peer == ("127.0.0.1", source_port)
    assert first.proto == coap.Proto.UDP
    assert first.peer_cn is None
    assert first.psk_identity is None
    assert second.type == coap.MessageType.NON
    assert second.mid == 0x4321
    assert second.peer == ("127.0.0.1", non_port)
    assert sessions == [True, True]


def test_non_request_gets_non_response_from_aiocoap(serve: Serve) -> None:
    types: list[int] = []

    def setup(ctx: coap.Context) -> int:
        @ctx.resource("n", methods=("GET",))
        def handler(request: Any, response: Any) -> None:
            types.append(request.type)
            response.payload = b"non"

        return plain_endpoint(ctx)

    port = serve(setup)
    (got,) = aio(msg("GET", port, "n", non=True))
    assert got.payload == b"non"
    assert types == [coap.MessageType.NON]


def test_request_kept_after_the_handler_response_frozen(serve: Serve) -> None:
    """The request is a copy (keep it); the response was sent (changing it raises)."""
    kept: list[Any] = []

    def setup(ctx: coap.Context) -> int:
        @ctx.resource("keep", methods=("POST",))
        def handler(request: Any, response: Any) -> None:
            kept.append((request, response))
            response.payload = request.payload

        return plain_endpoint(ctx)

    port, server = serve(setup, handle=True)
    (got,) = aio(msg("POST", port, "keep?q=1", b"data"))
    assert got.payload == b"data"

    def use_after(_: coap.Context) -> tuple[Any, list[str]]:
        request, response = kept[0]
        values = (request.payload, request.path, request.query, request.method)
        outcomes = []
        changes: list[Callable[[], None]] = [
            lambda: setattr(response, "payload", b"late"),
            lambda: setattr(response, "code", "4.04"),
            lambda: setattr(response, "content_format", 0),
            lambda: response.add_option(coap.OptionNumber.ETAG, b"x"),
        ]
        for change in changes:
            try:
                change()
            except coap.CoapError:
                outcomes.append("CoapError")
            else:
                outcomes.append("no error")
        return values, outcomes

    values, outcomes = server.call(use_after)
    assert values == (b"data", "keep", ("q=1",), "POST")
    assert outcomes == ["CoapError"] * 4
    server.check()


# --------------------------------------------------------------------------
# a handler that raises


def test_handler_that_raises_answers_500_logs_and_keeps_serving(
    serve: Serve, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger="libcoap_py.server")

    def setup(ctx: coap.Context) -> int:
        @ctx.resource("flaky", methods=("GET", "POST"))
        def flaky(request: Any, response: Any) -> None:
            if request.method == "POST":
                response.payload = b"half written"
                raise RuntimeError("handler exploded on purpose")
            response.payload = b"fine"

        @ctx.unknown_resource(methods=("PUT",))
        def unknown(request: Any, response: Any) -> None:
            raise KeyError("unknown handler exploded on purpose")

        return plain_endpoint(ctx)

    port, server = serve(setup, handle=True)
    failed, fine, failed_unknown, again = aio(
        msg("POST", port, "flaky", b"x"),
        msg("GET", port, "flaky"),
        msg("PUT", port, "nowhere", b"x"),
        msg("GET", port, "flaky"),
    )
    assert failed.code == aiocoap.INTERNAL_SERVER_ERROR
    assert failed_unknown.code == aiocoap.INTERNAL_SERVER_ERROR
    assert (fine.code, fine.payload) == (aiocoap.CONTENT, b"fine")
    assert (again.code, again.payload) == (aiocoap.CONTENT, b"fine")
    server.wait_passes(2)  # the loop did not stop or raise

    records = [r for r in caplog.records if r.name == "libcoap_py.server"]
    texts = [caplog.text]
    assert any(r.exc_info and isinstance(r.exc_info[1], RuntimeError) for r in records), texts
    assert any(r.exc_info and isinstance(r.exc_info[1], KeyError) for r in records), texts
    assert "handler exploded on purpose" in caplog.text
    assert "Traceback" in caplog.text
    assert "flaky" in caplog.text  # the traceback names the handler function


def test_many_requests_after_many_failures(serve: Serve) -> None:
    counter = {"n": 0}

    def setup(ctx: coap.Context) -> int:
        @ctx.resource("odd", methods=("POST",))
        def odd(request: Any, response: Any) -> None:
            counter["n"] += 1
            if int(request.payload) % 2:
                raise ValueError(request.payload)
            response.payload = request.payload

        return plain_endpoint(ctx)

    port = serve(setup)
    responses = aio(*(msg("POST", port, "odd", str(i).encode()) for i in range(20)))
    for i, r in enumerate(responses):
        if i % 2:
            assert r.code == aiocoap.INTERNAL_SERVER_ERROR
        else:
            assert (r.code, r.payload) == (aiocoap.CHANGED, str(i).encode())
    assert counter["n"] == 20


# --------------------------------------------------------------------------
# endpoints


@pytest.mark.needs_dtls
def test_endpoint_attributes_and_port_zero(serve: Serve, certs: CertFiles) -> None:
    def setup(ctx: coap.Context) -> list[tuple[int, int, str, str]]:
        plain = ctx.add_endpoint("coap://127.0.0.1:0")
        psk = ctx.add_endpoint("coaps://127.0.0.1:0", dtls=coap.PSK(hint=b"h", keys={b"i": b"k"}))
        both = ctx.add_endpoint(
            "coaps://127.0.0.1:0",
            dtls=[
                coap.PKI(certs.server_cert, certs.server_key, certs.ca),
                coap.PSK(hint=b"h", keys={b"i": b"k"}),
            ],
        )
        return [(e.port, e.proto, e.uri, e.host) for e in (plain, psk, both)]

    plain, psk, both = serve(setup)
    ports = {plain[0], psk[0], both[0]}
    assert len(ports) == 3 and all(0 < p < 65536 for p in ports)
    assert plain[1] == coap.Proto.UDP
    assert psk[1] == coap.Proto.DTLS and both[1] == coap.Proto.DTLS
    assert plain[2] == f"coap://127.0.0.1:{plain[0]}"  # the real port, not 0
    assert psk[2] == f"coaps://127.0.0.1:{psk[0]}"
    assert both[2] == f"coaps://127.0.0.1:{both[0]}"
    assert plain[3] == psk[3] == "127.0.0.1"
    (got,) = aio(msg("GET", plain[0], ".well-known/core"))
    # libcoap 4.2 answers 4.00 for /.well-known/core while no resource is registered.
    assert got.code == (aiocoap.BAD_REQUEST if LIBCOAP_42 else aiocoap.CONTENT)


def test_ipv6_endpoint_uri(serve: Serve) -> None:
    if not IPV6_AVAILABLE:
        pytest.skip("IPv6 loopback ::1 is not available on this machine")

    def setup(ctx: coap.Context) -> tuple[int, str, str]:
        endpoint = ctx.add_endpoint("coap://[::1]:0")
        return endpoint.port, endpoint.uri, endpoint.host

    port, uri, host = serve(setup)
    assert uri == f"coap://[::1]:{port}"
    assert host == "::1"


def test_endpoint_close_stops_answering(serve: Serve) -> None:
    endpoints: dict[str, Any] = {}

    def setup(ctx: coap.Context) -> tuple[int, int]:
        ctx.resource("r", methods=("GET",))(
            lambda request, response: setattr(response, "payload", b"r")
        )
        endpoints["first"] = ctx.add_endpoint("coap://127.0.0.1:0")
        endpoints["second"] = ctx.add_endpoint("coap://127.0.0.1:0")
        return endpoints["first"].port, endpoints["second"].port

    (first_port, second_port), server = serve(setup, handle=True)
    assert aio(msg("GET", first_port, "r"))[0].payload == b"r"
    server.call(lambda ctx: endpoints["first"].close())
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", first_port))  # the port is free again
    assert aio(msg("GET", second_port, "r"))[0].payload == b"r"
    server.check()


def test_endpoint_errors() -> None:
    with coap.Context() as ctx:
        for bad in ("http://127.0.0.1:5683", "coap//127.0.0.1", "coap://127.0.0.1:99999", ""):
            with pytest.raises(ValueError):
                ctx.add_endpoint(bad)
        # no dtls= (a ValueError), or a libcoap without DTLS (refused as such)
        with pytest.raises(ValueError if DTLS else coap.NotSupportedError):
            ctx.add_endpoint("coaps://127.0.0.1:0")
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
            taken.bind(("127.0.0.1", 0))
            port = taken.getsockname()[1]
            with pytest.raises(OSError) as in_use:
                ctx.add_endpoint(f"coap://127.0.0.1:{port}")
            assert "127.0.0.1" in str(in_use.value) and str(port) in str(in_use.value)
        with pytest.raises(OSError) as not_local:
            ctx.add_endpoint("coap://192.0.2.1:5683")  # TEST-NET-1, not ours
        assert "192.0.2.1" in str(not_local.value)


# --------------------------------------------------------------------------
# IPv6


def test_ipv6_endpoint_with_aiocoap(serve: Serve) -> None:
    if not IPV6_AVAILABLE:
        pytest.skip("IPv6 loopback ::1 is not available on this machine")
    seen: list[Seen] = []

    def setup(ctx: coap.Context) -> int:
        @ctx.resource("six", methods=("POST",))
        def handler(request: Any, response: Any) -> None:
            seen.append(Seen.of(request))
            response.payload = request.payload[::-1]

        return plain_endpoint(ctx, "::1")

    port = serve(setup)
    (got,) = aio(msg("POST", port, "six", b"\x01\x02\x03", host="::1"))
    assert got.payload == b"\x03\x02\x01"
    assert seen[0].peer[0] == "::1"


def test_a_session_token_base_starts_the_sessions_tokens(serve: Serve) -> None:
    """Session.set_token_base: the tokens libcoap 4.3 makes for the session continue
    from the base (4.3.0-4.3.4 start one after it, 4.3.5 at it, as their coap-client's
    -T does); 4.2 keeps no sequence and says so."""
    tokens: list[bytes] = []

    def setup(ctx: coap.Context) -> int:
        @ctx.resource("tok", methods=("GET",))
        def handler(request: Any, response: Any) -> None:
            tokens.append(request.token)

        return plain_endpoint(ctx)

    port = serve(setup)
    with coap.Context() as ctx:
        session = ctx.client_session(f"coap://127.0.0.1:{port}")
        with pytest.raises(ValueError, match="1 to 8 bytes"):
            session.set_token_base(b"")
        with pytest.raises(ValueError, match="1 to 8 bytes"):
            session.set_token_base(bytes(9))
        if LIBCOAP_42:
            with pytest.raises(coap.NotSupportedError, match="token sequence"):
                session.set_token_base(b"\x10\x00")
            return
        session.set_token_base(b"\x10\x00")
        for _ in range(3):
            assert session.request("GET", "tok", timeout=10).code is coap.Code.CONTENT
        # A token given to a request is used as it is.
        session.request("GET", "tok", token=b"mine", timeout=10)
    numbers = [int.from_bytes(t, "big") for t in tokens[:3]]
    assert all(len(t) == 2 for t in tokens[:3]), tokens
    assert numbers[0] in (0x1000, 0x1001), tokens
    assert numbers == [numbers[0], numbers[0] + 1, numbers[0] + 2], tokens
    assert tokens[3] == b"mine"
