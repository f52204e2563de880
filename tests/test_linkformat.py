"""Link format (RFC 6690): the parser, serialising back, and /.well-known/core end to end.

The end-to-end tests read ``/.well-known/core`` from libcoap's ``coap-server-openssl``
and from the binding's own server (a Context in a thread, ``serve`` in conftest).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Callable

import pytest
from helpers.ctools import CoapServer

import libcoap_py as coap
from libcoap_py.linkformat import Link, format_link_format, parse_link_format

Serve = Callable[..., Any]

#: What libcoap's coap-server answers for /.well-known/core (4.3.1; 4.2.1 lacks the last link).
COAP_SERVER_CORE = (
    '</>;title="General Info";ct=0,'
    '</time>;if="clock";rt="ticks";title="Internal Clock";ct=0;obs,'
    "</async>;ct=0,"
    '</example_data>;title="Example Data";ct=0;obs'
)


@pytest.fixture
def ctx() -> Iterator[coap.Context]:
    with coap.Context() as context:
        yield context


# --------------------------------------------------------------------------
# parser


def test_parses_coap_servers_document() -> None:
    links = parse_link_format(COAP_SERVER_CORE)
    assert [link.target for link in links] == ["/", "/time", "/async", "/example_data"]
    root, time, async_, data = links
    assert root.title == "General Info"
    assert root.ct == [0]
    assert not root.obs
    assert time.if_ == ["clock"]
    assert time.rt == ["ticks"]
    assert time.title == "Internal Clock"
    assert time.obs
    assert time.params["obs"] == [""]
    assert async_.params == {"ct": ["0"]}
    assert async_.title is None
    assert data.obs and data.ct == [0]


def test_bytes_and_str_give_the_same_links() -> None:
    assert parse_link_format(COAP_SERVER_CORE.encode()) == parse_link_format(COAP_SERVER_CORE)
    assert parse_link_format(bytearray(b"</a>")) == [Link("/a")]


@pytest.mark.parametrize("text", ["", "   ", "\n", b""])
def test_empty_document_has_no_links(text: str | bytes) -> None:
    assert parse_link_format(text) == []


def test_quoted_values_hold_commas_semicolons_and_escaped_quotes() -> None:
    text = r'</a>;title="x, y; z";rt="say \"hi\"",</b>;title="back\\slash"'
    a, b = parse_link_format(text)
    assert a.title == "x, y; z"
    assert a.rt == ["say", '"hi"']
    assert a.params["rt"] == ['say "hi"']
    assert b.title == "back\\slash"


def test_angle_brackets_commas_in_targets_and_absolute_uris() -> None:
    text = '<coap://[2001:db8::1]:5683/s?x=1,2>;anchor="coap://h/";rel=describedby,</q?a=b;c>'
    first, second = parse_link_format(text)
    assert first.target == "coap://[2001:db8::1]:5683/s?x=1,2"
    assert first.anchor == "coap://h/"
    assert first.rel == ["describedby"]
    assert second.target == "/q?a=b;c"


def test_parameters_without_values_and_repeated_parameters() -> None:
    (link,) = parse_link_format('</s>;obs;rt=a;rt="b c";ct=40;ct="0 50";foo;sz=1234')
    assert link.obs
    assert link.rt == ["a", "b", "c"]
    assert link.params["rt"] == ["a", "b c"]
    assert link.ct == [40, 0, 50]
    assert link.params["foo"] == [""]
    assert link.get("foo") == ""
    assert link.get("bar") is None
    assert link.sz == 1234


def test_names_are_case_insensitive_and_whitespace_between_items_is_tolerated() -> None:
    links = parse_link_format(' </a> ; RT = "x" ;Obs ,\n\t</b>;Ct=0 ')
    assert links == [Link("/a", {"rt": ["x"], "obs": [""]}), Link("/b", {"ct": ["0"]})]
    assert links[0].get("RT") == "x"


def test_unquoted_values_take_every_ptoken_character() -> None:
    (link,) = parse_link_format("</a>;x=!#$%&'()*+-./:<=>?@[]^_`{|}~09AZaz")
    assert link.get("x") == "!#$%&'()*+-./:<=>?@[]^_`{|}~09AZaz"


def test_utf8_in_quoted_values() -> None:
    (link,) = parse_link_format('</t>;title="Température °C"'.encode())
    assert link.title == "Température °C"


def test_defaults_of_the_conveniences() -> None:
    link = Link("/x")
    assert (link.rt, link.if_, link.rel, link.ct) == ([], [], [], [])
    assert (link.title, link.anchor, link.sz) == (None, None, None)
    assert not link.obs


def test_non_numeric_ct_and_sz_are_value_errors() -> None:
    (link,) = parse_link_format('</x>;ct="0 json";sz=big')
    with pytest.raises(ValueError, match="json"):
        _ = link.ct
    with pytest.raises(ValueError, match="big"):
        _ = link.sz


@pytest.mark.parametrize(
    ("text", "position"),
    [
        ("x", 0),  # no '<'
        ("/a>", 0),
        ("</a", 0),  # no '>' closing the target
        ("</a>;", 5),  # ';' with no parameter
        ("</a>;=1", 5),
        ("</a>,", 5),  # trailing comma: a link expected
        ("</a>,,</b>", 5),
        ("</a>;t=", 7),  # '=' with no value
        ('</a>;t="x', 7),  # unclosed quote
        ('</a>;t="x\\', 7),  # escape at the very end
        ("</a> </b>", 5),  # no comma between links
        ('</a>;t=x"y"', 8),  # quote inside an unquoted value
        ("</a b>", 3),  # space in the target
        ("</a>;ti tle=1", 8),
    ],
)
def test_malformed_input_names_the_position(text: str, position: int) -> None:
    with pytest.raises(ValueError, match=f"at position {position}:"):
        parse_link_format(text)


def test_malformed_utf8_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="not UTF-8 at byte position 4"):
        parse_link_format(b"</a>\xff")


def test_not_text_is_a_type_error() -> None:
    with pytest.raises(TypeError):
        parse_link_format(42)  # type: ignore[arg-type]


# --------------------------------------------------------------------------
# serialising back


def test_str_writes_link_format_back() -> None:
    links = parse_link_format(COAP_SERVER_CORE)
    assert format_link_format(links) == COAP_SERVER_CORE
    assert str(links[1]) == '</time>;if="clock";rt="ticks";title="Internal Clock";ct=0;obs'


@pytest.mark.parametrize(
    "text",
    [
        COAP_SERVER_CORE,
        r'</a>;title="x, y; z";rt="say \"hi\"",</b>;title="back\\slash"',
        '</s>;obs;rt=a;rt="b c";ct=40;ct="0 50";foo;sz=1234',
        '<coap://[::1]/x?a=1,2>;anchor="coap://h/";x="",</y>',
        '</t>;title="Température °C";ct=0',
    ],
)
def test_parse_str_parse_round_trip(text: str) -> None:
    links = parse_link_format(text)
    again = parse_link_format(format_link_format(links))
    assert again == links


def test_values_that_need_quotes_get_them() -> None:
    link = Link("/a", {"x": ["a,b"], "y": ["a b"], "z": ['q"'], "sz": ["10"], "obs": [""]})
    assert str(link) == r'</a>;x="a,b";y="a b";z="q\"";sz=10;obs'
    assert parse_link_format(str(link)) == [link]


def test_unwritable_links_are_value_errors() -> None:
    with pytest.raises(ValueError, match="target"):
        str(Link("/a>b"))
    with pytest.raises(ValueError, match="parameter name"):
        str(Link("/a", {"bad name": ["1"]}))


# --------------------------------------------------------------------------
# end to end: /.well-known/core


def test_well_known_core_from_coap_server(ctx: coap.Context, coap_server: CoapServer) -> None:
    session = ctx.client_session(coap_server.coap_uri)
    response = session.request("GET", ".well-known/core", timeout=10)
    assert response.code is coap.Code.CONTENT
    assert response.content_format == coap.ContentFormat.LINK_FORMAT
    links = {link.target: link for link in response.links()}
    # the server also lists what other tests created on it (PUT/POST), so: a subset
    assert {"/", "/time", "/async"} <= set(links), response.payload
    time = links["/time"]
    assert time.rt == ["ticks"]
    assert time.if_ == ["clock"]
    assert time.title == "Internal Clock"
    assert time.ct == [0]
    assert time.obs
    assert links["/"].title == "General Info"
    assert not links["/async"].obs


def test_well_known_core_from_own_server(ctx: coap.Context, serve: Serve) -> None:
    def setup(server: coap.Context) -> int:
        def handler(request: Any, response: Any) -> None:
            response.payload = b"x"

        server.resource("hello", methods=("GET",))(handler)
        server.resource("sensors/temp", methods=("GET", "PUT"))(handler)
        server.add_resource("plain").handle("POST", handler)
        return server.add_endpoint("coap://127.0.0.1:0").port

    port = serve(setup)
    session = ctx.client_session(f"coap://127.0.0.1:{port}")
    response = session.request("GET", ".well-known/core", timeout=10)
    assert response.code is coap.Code.CONTENT
    assert response.content_format == coap.ContentFormat.LINK_FORMAT
    links = response.links()
    assert sorted(link.target for link in links) == ["/hello", "/plain", "/sensors/temp"]
    # written back and read again, the document means the same
    assert parse_link_format(format_link_format(links)) == links


def test_links_of_a_payload_that_is_not_link_format(ctx: coap.Context, serve: Serve) -> None:
    def setup(server: coap.Context) -> int:
        @server.resource("text", methods=("GET",))
        def text(request: Any, response: Any) -> None:
            response.payload = "plain words"

        return server.add_endpoint("coap://127.0.0.1:0").port

    port = serve(setup)
    session = ctx.client_session(f"coap://127.0.0.1:{port}")
    response = session.request("GET", "text", timeout=10)
    with pytest.raises(ValueError, match="position 0"):
        response.links()
