"""Typed options: the registry, encoding and decoding, checks, conveniences, end to end.

Peers: libcoap's ``coap-server-openssl`` (fixture ``coap_server``) and the
binding's own server in a thread (``serve`` in conftest).
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from typing import Any, Callable

import pytest
from helpers.build import LIBCOAP_42
from helpers.codec import decode_message, encode_message
from helpers.ctools import CREATE_METHOD, CoapServer
from helpers.peers import UdpPeer

import libcoap_py as coap
from libcoap_py import options as opts
from libcoap_py.options import OptionFormat, OptionSpec

Serve = Callable[..., Any]
N = coap.OptionNumber

#: Unregistered option numbers: odd is critical, even elective (RFC 7252, 5.4.6).
CRITICAL = 65001
ELECTIVE = 65000

SPECS = sorted(opts.REGISTRY.values(), key=lambda spec: spec.number)


@pytest.fixture
def ctx() -> Iterator[coap.Context]:
    with coap.Context() as context:
        yield context


def spec_id(spec: OptionSpec) -> str:
    return f"{spec.number}-{spec.name}"


# --------------------------------------------------------------------------
# the registry and the properties of numbers


def test_registry_has_every_option_number() -> None:
    assert set(opts.REGISTRY) == {int(n) for n in coap.OptionNumber}
    names = [spec.name for spec in SPECS]
    assert len(set(names)) == len(names)
    for spec in SPECS:
        assert 0 <= spec.min_length <= spec.max_length
        if spec.format is OptionFormat.EMPTY:
            assert spec.max_length == 0
        if spec.format is OptionFormat.UINT:
            assert spec.max_length <= 4


def test_formats_and_lengths_of_well_known_options() -> None:
    reg = opts.REGISTRY
    assert (reg[N.URI_PATH].format, reg[N.URI_PATH].max_length) == (OptionFormat.STRING, 255)
    assert reg[N.URI_PATH].repeatable
    assert (reg[N.ETAG].format, reg[N.ETAG].min_length, reg[N.ETAG].max_length) == (
        OptionFormat.OPAQUE,
        1,
        8,
    )
    assert reg[N.IF_NONE_MATCH].format is OptionFormat.EMPTY
    assert (reg[N.URI_PORT].format, reg[N.URI_PORT].max_length) == (OptionFormat.UINT, 2)
    assert (reg[N.MAX_AGE].format, reg[N.MAX_AGE].max_length) == (OptionFormat.UINT, 4)
    assert reg[N.PROXY_URI].max_length == 1034
    assert opts.option_spec(CRITICAL) is None
    assert opts.option_name(N.CONTENT_FORMAT) == "Content-Format"
    assert opts.option_name(CRITICAL) == "65001"


# (number, critical, unsafe, no-cache-key) as in RFC 7252's table of options
RFC_7252_PROPERTIES = [
    (1, True, False, False),  # If-Match
    (3, True, True, False),  # Uri-Host
    (4, False, False, False),  # ETag
    (5, True, False, False),  # If-None-Match
    (7, True, True, False),  # Uri-Port
    (8, False, False, False),  # Location-Path
    (11, True, True, False),  # Uri-Path
    (12, False, False, False),  # Content-Format
    (14, False, True, False),  # Max-Age
    (15, True, True, False),  # Uri-Query
    (17, True, False, False),  # Accept
    (20, False, False, False),  # Location-Query
    (35, True, True, False),  # Proxy-Uri
    (39, True, True, False),  # Proxy-Scheme
    (60, False, False, True),  # Size1
]


@pytest.mark.parametrize(("number", "critical", "unsafe", "no_cache_key"), RFC_7252_PROPERTIES)
def test_properties_from_the_number(
    number: int, critical: bool, unsafe: bool, no_cache_key: bool
) -> None:
    assert opts.is_critical(number) is critical
    assert opts.is_unsafe(number) is unsafe
    assert opts.is_no_cache_key(number) is no_cache_key
    spec = opts.REGISTRY[number]
    assert (spec.critical, spec.unsafe, spec.no_cache_key) == (critical, unsafe, no_cache_key)
    assert coap.OptionNumber(number).critical is critical


def test_properties_of_unregistered_numbers() -> None:
    assert opts.is_critical(CRITICAL) and not opts.is_critical(ELECTIVE)
    assert opts.is_no_cache_key(28)  # Size2
    assert not opts.is_no_cache_key(ELECTIVE)


# --------------------------------------------------------------------------
# encoding and decoding: every registered option


def samples(spec: OptionSpec) -> list[Any]:
    """Values of the option's Python type at the edges of its length range."""
    lo, hi = spec.min_length, spec.max_length
    if spec.format is OptionFormat.EMPTY:
        return [None]
    if spec.format is OptionFormat.UINT:
        values = [0, 1, 2 ** (8 * hi) - 1]
        if hi >= 2:
            values.append(256)
        return values
    if spec.format is OptionFormat.STRING:
        values = ["a" * max(lo, 1), "b" * hi]
        if lo == 0:
            values.append("")
        if hi >= 4:
            values.append("é/€")
        return values
    values = [bytes(range(max(lo, 1))), b"\xff" * hi]
    if lo == 0:
        values.append(b"")
    return values


@pytest.mark.parametrize("spec", SPECS, ids=spec_id)
def test_round_trip_of_every_registered_option(spec: OptionSpec) -> None:
    for value in samples(spec):
        number, raw = coap.encode_option(spec.number, value)
        assert number == spec.number
        assert spec.min_length <= len(raw) <= spec.max_length, (value, raw)
        decoded = coap.decode_option(spec.number, raw)
        assert decoded == value
        assert type(decoded) is type(value)
        # and back: the typed value encodes to the same bytes
        assert coap.encode_option(spec.number, decoded) == (spec.number, raw)
        # bytes are accepted as the encoded value of any option
        assert coap.encode_option(spec.number, raw) == (spec.number, raw)


def test_uint_encoding_is_minimal_big_endian() -> None:
    assert coap.encode_option(N.URI_PORT, 5684) == (7, b"\x16\x34")
    assert coap.encode_option(N.CONTENT_FORMAT, 0) == (12, b"")
    assert coap.encode_option(N.MAX_AGE, 60) == (14, b"\x3c")
    assert coap.encode_option(N.OBSERVE, 0x10000) == (6, b"\x01\x00\x00")
    # Hop-Limit is exactly one byte (RFC 8768), so 0 is b"\x00" rather than nothing
    assert coap.encode_option(N.HOP_LIMIT, 0) == (16, b"\x00")
    assert coap.decode_option(N.URI_PORT, b"\x00\x00\x16\x34") == 5684


def test_decode_of_values_that_do_not_fit_their_format() -> None:
    assert coap.decode_option(N.URI_PATH, b"\xff\xfe") == b"\xff\xfe"  # not UTF-8
    assert coap.decode_option(N.IF_NONE_MATCH, b"x") == b"x"
    assert coap.decode_option(N.IF_NONE_MATCH, b"") is None
    assert coap.decode_option(CRITICAL, b"abc") == b"abc"
    assert coap.decode_option(ELECTIVE, b"") == b""


def test_unregistered_numbers_take_bytes_str_and_int() -> None:
    assert coap.encode_option(ELECTIVE, b"\x00\xfe") == (ELECTIVE, b"\x00\xfe")
    assert coap.encode_option(ELECTIVE, "hé") == (ELECTIVE, "hé".encode())
    assert coap.encode_option(ELECTIVE, 258) == (ELECTIVE, b"\x01\x02")
    assert coap.encode_option(CRITICAL, memoryview(b"m")) == (CRITICAL, b"m")
    with pytest.raises(ValueError, match="too long"):
        coap.encode_option(ELECTIVE, b"x" * 1035)
    with pytest.raises(TypeError, match="None"):
        coap.encode_option(ELECTIVE, None)


def test_pdu_encode_option_is_the_same_function() -> None:
    from libcoap_py import pdu

    assert pdu.encode_option is opts.encode_option is coap.encode_option


# --------------------------------------------------------------------------
# checks: wrong types, wrong lengths, bad numbers


def wrong_values(spec: OptionSpec) -> list[Any]:
    wrong: dict[OptionFormat, list[Any]] = {
        OptionFormat.UINT: ["5", None, 1.0],
        OptionFormat.STRING: [5, None, 1.0],
        OptionFormat.OPAQUE: [5, "x", None],
        OptionFormat.EMPTY: [0, "", 1.0],
    }
    return [True, *wrong[spec.format]]


@pytest.mark.parametrize("spec", SPECS, ids=spec_id)
def test_wrong_python_type_is_a_type_error_naming_the_option(spec: OptionSpec) -> None:
    for value in wrong_values(spec):
        with pytest.raises(TypeError, match=f"option {spec.number} \\({spec.name}\\)"):
            coap.encode_option(spec.number, value)


def test_type_error_messages_say_what_to_give() -> None:
    with pytest.raises(TypeError, match=r"Uri-Port\) holds a uint: give an int .* not str '5684'"):
        coap.encode_option(N.URI_PORT, "5684")
    with pytest.raises(TypeError, match=r"ETag\) holds opaque bytes: give bytes, not int 5"):
        coap.encode_option(N.ETAG, 5)
    with pytest.raises(TypeError, match=r"Uri-Path\) holds a string: give a str"):
        coap.encode_option(N.URI_PATH, 3)
    with pytest.raises(TypeError, match=r"If-None-Match\) holds no value"):
        coap.encode_option(N.IF_NONE_MATCH, 0)


@pytest.mark.parametrize("spec", SPECS, ids=spec_id)
def test_length_outside_the_registry_range_is_a_value_error(spec: OptionSpec) -> None:
    name = f"option {spec.number} \\({spec.name}\\)"
    with pytest.raises(ValueError, match=name):
        coap.encode_option(spec.number, b"\x01" * (spec.max_length + 1))
    if spec.min_length > 0:
        with pytest.raises(ValueError, match=name):
            coap.encode_option(spec.number, b"\x01" * (spec.min_length - 1))
    if spec.format is OptionFormat.UINT:
        with pytest.raises(ValueError, match=name):
            coap.encode_option(spec.number, 2 ** (8 * spec.max_length))
        with pytest.raises(ValueError, match="negative"):
            coap.encode_option(spec.number, -1)
    if spec.format is OptionFormat.STRING:
        with pytest.raises(ValueError, match=name):
            coap.encode_option(spec.number, "é" * (spec.max_length // 2 + 1))  # UTF-8 bytes


def test_value_error_messages_give_the_lengths() -> None:
    with pytest.raises(ValueError, match=r"Uri-Port\): value b'5684' is 4 bytes long, .* 0 to 2"):
        coap.encode_option(N.URI_PORT, b"5684")
    with pytest.raises(ValueError, match=r"ETag\): value b'' is 0 bytes long, .* 1 to 8"):
        coap.encode_option(N.ETAG, b"")
    with pytest.raises(ValueError, match=r"Hop-Limit\): value 256 is 2 bytes long, .* takes 1 "):
        coap.encode_option(N.HOP_LIMIT, 256)


@pytest.mark.parametrize("number", [0, -1, 65536, 1.5, True, "11"])
def test_bad_option_numbers(number: Any) -> None:
    with pytest.raises(ValueError, match="option number"):
        coap.encode_option(number, b"")


def test_raw_value_skips_the_checks() -> None:
    assert coap.encode_option(N.URI_PORT, coap.RawValue(b"5684")) == (7, b"5684")
    assert coap.encode_option(N.ETAG, coap.RawValue(b"")) == (4, b"")
    with pytest.raises(ValueError, match="too long"):
        coap.encode_option(N.ETAG, coap.RawValue(b"x" * 1035))


def test_option_from_text() -> None:
    assert opts.option_from_text(N.URI_PORT, "5684") == 5684
    assert opts.option_from_text(N.URI_QUERY, "a=1") == "a=1"
    assert opts.option_from_text(N.ETAG, "abc") == b"abc"
    assert opts.option_from_text(N.ETAG, "0x0102") == b"\x01\x02"
    assert opts.option_from_text(N.IF_NONE_MATCH, "") is None
    assert opts.option_from_text(ELECTIVE, "text") == "text"
    for number, text in ((N.URI_PORT, "port"), (N.IF_NONE_MATCH, "x"), (ELECTIVE, "0xZZ")):
        with pytest.raises(ValueError, match=f"option {int(number)}"):
            opts.option_from_text(number, text)


def test_request_refuses_bad_values_before_sending(ctx: coap.Context, silent_peer: UdpPeer) -> None:
    session = ctx.client_session(silent_peer.uri)
    with pytest.raises(TypeError, match="Uri-Port"):
        session.request("GET", "", options=[(N.URI_PORT, "5684")])
    with pytest.raises(ValueError, match="Uri-Port"):
        session.request("GET", "", options=[(N.URI_PORT, b"5684")])
    with pytest.raises(TypeError, match="ETag"):
        session.request("GET", "", options=[(N.ETAG, 1)])
    with pytest.raises(ValueError, match="Content-Format"):
        session.request("GET", "", content_format=70000)
    pdu = session.new_pdu(coap.MessageType.CON, coap.Code.GET)
    with pytest.raises(TypeError, match="Uri-Port"):
        pdu.add_option(N.URI_PORT, "5684")
    # nothing of that reached the wire: the first datagram the peer sees is this one
    with pytest.raises(coap.RequestTimeout):
        session.request("GET", "marker", confirmable=False, timeout=0.3)
    first = silent_peer.wait_for(1)[0]
    assert b"marker" in first


# --------------------------------------------------------------------------
# typed views, without a network


def test_response_views() -> None:
    response = coap.Response(
        coap.Code.CREATED,
        b"",
        [
            (N.ETAG, b"\x01\x02"),
            (N.OBSERVE, b"\x05"),
            (N.LOCATION_PATH, b"a"),
            (N.LOCATION_PATH, b"b"),
            (N.CONTENT_FORMAT, b"\x32"),
            (N.MAX_AGE, b"\x0e\x10"),
            (N.LOCATION_QUERY, b"x=1"),
            (ELECTIVE, b"2"),
            (ELECTIVE, b"1"),
            (CRITICAL, b"c"),
        ],
    )
    assert response.etag == b"\x01\x02"
    assert response.observe == 5
    assert response.location_path == ("a", "b")
    assert response.location_query == ("x=1",)
    assert response.content_format == 50
    assert response.max_age == 3600
    assert response.accept is None
    assert response.uri_path == () and response.uri_query == ()
    assert response.option_values(ELECTIVE) == [b"2", b"1"]
    assert response.typed_options == [
        (N.ETAG, b"\x01\x02"),
        (N.OBSERVE, 5),
        (N.LOCATION_PATH, "a"),
        (N.LOCATION_PATH, "b"),
        (N.CONTENT_FORMAT, 50),
        (N.MAX_AGE, 3600),
        (N.LOCATION_QUERY, "x=1"),
        (ELECTIVE, b"2"),
        (ELECTIVE, b"1"),
        (CRITICAL, b"c"),
    ]
    assert isinstance(response.typed_options[0][0], coap.OptionNumber)
    assert not isinstance(response.typed_options[-1][0], coap.OptionNumber)
    assert response.unknown_critical_options() == [CRITICAL]
    assert response.unknown_critical_options(known=[CRITICAL]) == []


def test_unknown_critical_options_and_the_error() -> None:
    options = [(11, b"a"), (ELECTIVE, b""), (CRITICAL, b"1"), (65003, b""), (CRITICAL, b"2")]
    assert opts.unknown_critical_options(options) == [CRITICAL, 65003]
    opts.check_critical_options([(11, b"a"), (ELECTIVE, b"")])
    with pytest.raises(opts.CriticalOptionError, match="65001, 65003") as info:
        opts.check_critical_options(options)
    assert info.value.numbers == (CRITICAL, 65003)
    assert isinstance(info.value, coap.CoapError)


def test_server_response_setters() -> None:
    response = coap.ServerResponse(coap.Code.CONTENT)
    assert (response.etag, response.max_age, response.location_path) == (None, None, ())
    response.etag = b"\x01"
    response.etag = b"\x02\x03"  # replaces
    response.max_age = 0
    response.location_path = "made/7"
    response.content_format = coap.ContentFormat.JSON
    response.add_option(ELECTIVE, b"x")
    assert response.etag == b"\x02\x03"
    assert response.option_values(N.ETAG) == [b"\x02\x03"]
    assert response.max_age == 0
    assert response.location_path == ("made", "7")
    assert response.content_format == 50
    assert response.typed_options == [
        (N.ETAG, b"\x02\x03"),
        (N.LOCATION_PATH, "made"),
        (N.LOCATION_PATH, "7"),
        (N.CONTENT_FORMAT, 50),
        (N.MAX_AGE, 0),
        (ELECTIVE, b"x"),
    ]
    # options lists raw options only, as before (content_format is kept apart)
    assert (int(N.CONTENT_FORMAT), b"\x32") not in response.options
    response.location_path = ("a", "b/c")
    assert response.location_path == ("a", "b/c")
    response.etag = None
    response.max_age = None
    response.location_path = None
    assert (response.etag, response.max_age, response.location_path) == (None, None, ())
    assert response.options == [(ELECTIVE, b"x")]
    with pytest.raises(ValueError, match="ETag"):
        response.etag = b"123456789"
    with pytest.raises(TypeError, match="Max-Age"):
        response.max_age = "60"  # type: ignore[assignment]
    with pytest.raises(ValueError, match="Max-Age"):
        response.max_age = 2**32


# --------------------------------------------------------------------------
# end to end: the own server


def own_server(seen: list[dict[str, Any]], kept: list[Any]) -> Callable[[coap.Context], int]:
    def setup(ctx: coap.Context) -> int:
        @ctx.resource("opts", methods=("GET", "POST"))
        def handler(request: Any, response: Any) -> None:
            seen.append(
                {
                    "uri_path": request.uri_path,
                    "uri_query": request.uri_query,
                    "query": request.query,
                    "accept": request.accept,
                    "content_format": request.content_format,
                    "etags": request.option_values(N.ETAG),
                    "etag": request.etag,
                    "custom": request.option_values(ELECTIVE),
                    "observe": request.observe,
                    "typed": request.typed_options,
                }
            )
            if request.method == "POST":
                response.code = coap.Code.CREATED
                response.location_path = "made/7"
                response.add_option(N.LOCATION_QUERY, "id=7")
                response.add_option(N.LOCATION_QUERY, "v=2")
                return
            response.etag = b"\x01\x02\x03"
            response.max_age = 30
            response.content_format = coap.ContentFormat.JSON
            for value in (b"3", b"1", b"2"):
                response.add_option(ELECTIVE, value)
            response.payload = b"{}"
            kept.append(response)

        return ctx.add_endpoint("coap://127.0.0.1:0").port

    return setup


def test_options_end_to_end_with_own_server(ctx: coap.Context, serve: Serve) -> None:
    seen: list[dict[str, Any]] = []
    kept: list[Any] = []
    port = serve(own_server(seen, kept))
    session = ctx.client_session(f"coap://127.0.0.1:{port}")
    got = session.request(
        "GET",
        "opts",
        query="b=2&a=1&c",
        accept=coap.ContentFormat.JSON,
        options=[(N.ETAG, b"e1"), (ELECTIVE, b"z"), (N.ETAG, b"e2"), (ELECTIVE, b"a")],
        timeout=10,
    )
    assert got.code is coap.Code.CONTENT
    (request,) = seen
    assert request["uri_path"] == ("opts",)
    assert request["uri_query"] == request["query"] == ("b=2", "a=1", "c")
    assert request["accept"] == coap.ContentFormat.JSON
    assert request["content_format"] is None
    assert request["etags"] == [b"e1", b"e2"]  # repeated options keep their order
    assert request["etag"] == b"e1"
    assert request["custom"] == [b"z", b"a"]
    assert request["observe"] is None
    assert (N.ACCEPT, 50) in request["typed"]
    assert (N.URI_QUERY, "a=1") in request["typed"]
    # the response, read through the typed views
    assert got.etag == b"\x01\x02\x03"
    assert got.max_age == 30
    assert got.content_format == coap.ContentFormat.JSON
    assert got.option_values(ELECTIVE) == [b"3", b"1", b"2"]
    assert got.observe is None
    typed = got.typed_options
    assert (N.ETAG, b"\x01\x02\x03") in typed
    assert (N.MAX_AGE, 30) in typed
    assert (N.CONTENT_FORMAT, 50) in typed
    assert [v for n, v in typed if n == ELECTIVE] == [b"3", b"1", b"2"]
    assert got.unknown_critical_options() == []
    # the handler's response is read-only once sent
    (sent,) = kept
    with pytest.raises(coap.CoapError):
        sent.etag = b"late"
    with pytest.raises(coap.CoapError):
        sent.max_age = 1

    created = session.request(
        "POST", "opts", b"{}", content_format=coap.ContentFormat.JSON, timeout=10
    )
    assert created.code is coap.Code.CREATED
    assert created.location_path == ("made", "7")
    assert created.location_query == ("id=7", "v=2")
    assert seen[1]["content_format"] == coap.ContentFormat.JSON


def test_own_server_answers_unknown_critical_option_with_4_02(
    ctx: coap.Context, serve: Serve
) -> None:
    seen: list[dict[str, Any]] = []
    port = serve(own_server(seen, []))
    session = ctx.client_session(f"coap://127.0.0.1:{port}")
    accept_echoed_option(ctx, CRITICAL)
    refused = session.request("GET", "opts", options=[(CRITICAL, b"x")], timeout=10)
    assert refused.code is coap.Code.BAD_OPTION
    assert seen == []  # libcoap refused it before the handler
    # libcoap's 4.02 names the offending option by echoing it
    assert refused.option_values(CRITICAL) == [b"x"]
    # an unknown *elective* option is ignored: the request is served
    served = session.request("GET", "opts", options=[(ELECTIVE, b"x")], timeout=10)
    assert served.code is coap.Code.CONTENT
    assert [s["custom"] for s in seen] == [[b"x"]]


def accept_echoed_option(ctx: coap.Context, number: int) -> None:
    """Let this client take responses carrying ``number`` (a 4.02 echoes the bad option).

    A client rejects a response with a critical option its context does not know,
    even the 4.02 that names the one the client sent; registering the number is what
    a C client does. (``request()`` registers what it sends by itself as well.)
    """
    ctx.register_option(number)


def test_repeated_options_keep_their_order_through_own_server(
    ctx: coap.Context, serve: Serve
) -> None:
    got: list[tuple[tuple[str, ...], tuple[str, ...], list[bytes]]] = []

    def setup(server: coap.Context) -> int:
        @server.unknown_resource(methods=("PUT",))
        def anything(request: Any, response: Any) -> None:
            got.append((request.uri_path, request.uri_query, request.option_values(ELECTIVE)))
            response.location_path = request.uri_path[::-1]
            for value in request.option_values(ELECTIVE)[::-1]:
                response.add_option(ELECTIVE, value)

        return server.add_endpoint("coap://127.0.0.1:0").port

    port = serve(setup)
    session = ctx.client_session(f"coap://127.0.0.1:{port}")
    custom = [bytes([i]) for i in (9, 3, 7, 1, 5)]
    response = session.request(
        "PUT",
        "z/a/y/b",
        query=["q=3", "q=1", "q=2"],
        options=[(ELECTIVE, value) for value in custom],
        timeout=10,
    )
    assert response.code is coap.Code.CHANGED
    assert got == [(("z", "a", "y", "b"), ("q=3", "q=1", "q=2"), custom)]
    assert response.location_path == ("b", "y", "a", "z")
    assert response.option_values(ELECTIVE) == custom[::-1]


# --------------------------------------------------------------------------
# end to end: coap-server-openssl


def test_max_age_and_etag_from_coap_server(ctx: coap.Context, coap_server: CoapServer) -> None:
    session = ctx.client_session(coap_server.coap_uri)
    time = session.request("GET", "time", timeout=10)
    assert time.code is coap.Code.CONTENT
    assert time.max_age == 1  # coap-server's /time says: good for one second
    assert (N.MAX_AGE, 1) in time.typed_options
    # 4.3's coap-server tags /example_data, 4.2's tags /time
    tagged = time if LIBCOAP_42 else session.request("GET", "example_data", timeout=10)
    assert tagged.code is coap.Code.CONTENT
    assert tagged.etag is not None and 1 <= len(tagged.etag) <= 8
    assert (N.ETAG, tagged.etag) in tagged.typed_options


def test_content_format_accept_and_location_with_coap_server(
    ctx: coap.Context, coap_server: CoapServer, unique_path: str
) -> None:
    session = ctx.client_session(coap_server.coap_uri)
    created = session.request(
        CREATE_METHOD, unique_path, b'{"v":1}', content_format=coap.ContentFormat.JSON, timeout=10
    )
    assert created.code is coap.Code.CREATED, created
    if CREATE_METHOD == "POST":  # 4.3's server says where it put the resource
        assert created.location_path == tuple(unique_path.split("/"))
    got = session.request("GET", unique_path, accept=coap.ContentFormat.JSON, timeout=10)
    assert got.code is coap.Code.CONTENT
    assert got.payload == b'{"v":1}'
    assert got.content_format == coap.ContentFormat.JSON
    assert (N.CONTENT_FORMAT, 50) in got.typed_options
    # repeated Uri-Path and Uri-Query options in order: /time?ticks answers seconds
    ticks = session.request("GET", "time", query=["ticks"], timeout=10)
    assert ticks.payload.isdigit(), ticks.payload


def test_coap_server_answers_unknown_critical_option_with_4_02(
    ctx: coap.Context, coap_server: CoapServer
) -> None:
    session = ctx.client_session(coap_server.coap_uri)
    accept_echoed_option(ctx, CRITICAL)
    refused = session.request("GET", "", options=[(CRITICAL, b"x")], timeout=10)
    assert refused.code is coap.Code.BAD_OPTION
    assert refused.option_values(CRITICAL) == [b"x"]
    served = session.request("GET", "", options=[(ELECTIVE, b"x")], timeout=10)
    assert served.code is coap.Code.CONTENT


def test_bad_option_answer_reaches_a_plain_request(
    ctx: coap.Context, coap_server: CoapServer
) -> None:
    session = ctx.client_session(coap_server.coap_uri)
    refused = session.request("GET", "", options=[(CRITICAL, b"x")], timeout=5)
    assert refused.code is coap.Code.BAD_OPTION


def test_handlers_in_server_thread_see_typed_views(serve: Serve, ctx: coap.Context) -> None:
    """The typed views work on the borrowed PDUs of the handler style too."""
    views: list[tuple[Any, ...]] = []
    done = threading.Event()

    def setup(server: coap.Context) -> int:
        @server.resource("v", methods=("GET",))
        def handler(request: Any, response: Any) -> None:
            response.max_age = 7
            response.etag = b"t"

        return server.add_endpoint("coap://127.0.0.1:0").port

    port = serve(setup)

    @ctx.register_response_handler
    def on_response(session: Any, sent: Any, received: Any, mid: int) -> None:
        sent_path = sent.uri_path if sent is not None else None
        views.append((received.max_age, received.etag, received.typed_options, sent_path))
        done.set()

    session = ctx.client_session(f"coap://127.0.0.1:{port}")
    pdu = session.new_pdu(coap.MessageType.CON, coap.Code.GET)
    pdu.add_option(N.URI_PATH, "v")
    assert pdu.uri_path == ("v",)  # read side of an own PDU
    session.send(pdu)
    for _ in range(100):
        if done.is_set():
            break
        ctx.run_once(100)
    assert views, "no response within 10 s"
    max_age, etag, typed, sent_path = views[0]
    assert (max_age, etag) == (7, b"t")
    assert (N.MAX_AGE, 7) in typed
    assert sent_path in (("v",), None)


# --------------------------------------------------------------------------
# a response that carries a critical option the client does not know


class OptionEchoPeer:
    """A UDP peer on loopback answering each CON GET with a piggybacked 2.05 that
    carries ``options`` (raw, so the options need no CoAP library's approval)."""

    def __init__(self, options: list[tuple[int, bytes]]) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.05)
        self.port = int(self.sock.getsockname()[1])
        self._stop = threading.Event()

        def run() -> None:
            while not self._stop.is_set():
                try:
                    data, addr = self.sock.recvfrom(2048)
                except OSError:
                    continue
                got = decode_message(data)
                answer = encode_message(2, 69, got.mid, got.token, options, b"hi")  # ACK 2.05
                self.sock.sendto(answer, addr)

        self._thread = threading.Thread(target=run, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self.sock.close()


@pytest.fixture
def critical_peer() -> Iterator[OptionEchoPeer]:
    peer = OptionEchoPeer([(CRITICAL, b"x")])
    yield peer
    peer.close()


def test_response_with_unknown_critical_option_is_rejected(
    ctx: coap.Context, critical_peer: OptionEchoPeer
) -> None:
    session = ctx.client_session(f"coap://127.0.0.1:{critical_peer.port}")
    session.max_retransmit = 1
    if LIBCOAP_42:  # the binding checks: a clear error at once
        with pytest.raises(coap.CriticalOptionError, match=str(CRITICAL)) as info:
            session.request("GET", "x", timeout=5)
        assert info.value.numbers == (CRITICAL,)
    else:  # libcoap 4.3 drops it before the binding sees it
        with pytest.raises(coap.RequestTimeout):
            session.request("GET", "x", timeout=2)


def test_registered_option_lets_the_response_through(
    ctx: coap.Context, critical_peer: OptionEchoPeer
) -> None:
    ctx.register_option(CRITICAL)
    session = ctx.client_session(f"coap://127.0.0.1:{critical_peer.port}")
    response = session.request("GET", "x", timeout=5)
    assert response.code is coap.Code.CONTENT and response.payload == b"hi"
    assert response.option_values(CRITICAL) == [b"x"]
    with pytest.raises(ValueError, match=r"0\.\.65535"):
        ctx.register_option(70000)
