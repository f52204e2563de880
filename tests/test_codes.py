"""The protocol enums: libcoap's numbers, codes without a name, content formats' media types."""

from __future__ import annotations

import copy
import pickle
from collections.abc import Callable
from typing import Any

import pytest
from helpers.waiting import run_until

import libcoap_py as coap
from libcoap_py.cli._coapargs import code_text, content_format, content_format_name
from libcoap_py.cli._common import CliError

Serve = Callable[..., Any]

# --------------------------------------------------------------------------
# the values: what the registries say, whichever libcoap they were read from

CODES = {
    "EMPTY": "0.00", "GET": "0.01", "POST": "0.02", "PUT": "0.03", "DELETE": "0.04",
    "FETCH": "0.05", "PATCH": "0.06", "IPATCH": "0.07",
    "CREATED": "2.01", "DELETED": "2.02", "VALID": "2.03", "CHANGED": "2.04",
    "CONTENT": "2.05", "CONTINUE": "2.31",
    "BAD_REQUEST": "4.00", "UNAUTHORIZED": "4.01", "BAD_OPTION": "4.02", "FORBIDDEN": "4.03",
    "NOT_FOUND": "4.04", "METHOD_NOT_ALLOWED": "4.05", "NOT_ACCEPTABLE": "4.06",
    "REQUEST_ENTITY_INCOMPLETE": "4.08", "CONFLICT": "4.09", "PRECONDITION_FAILED": "4.12",
    "REQUEST_ENTITY_TOO_LARGE": "4.13", "UNSUPPORTED_CONTENT_FORMAT": "4.15",
    "UNPROCESSABLE_ENTITY": "4.22", "TOO_MANY_REQUESTS": "4.29",
    "INTERNAL_SERVER_ERROR": "5.00", "NOT_IMPLEMENTED": "5.01", "BAD_GATEWAY": "5.02",
    "SERVICE_UNAVAILABLE": "5.03", "GATEWAY_TIMEOUT": "5.04", "PROXYING_NOT_SUPPORTED": "5.05",
    "HOP_LIMIT_REACHED": "5.08",
    "CSM": "7.01", "PING": "7.02", "PONG": "7.03", "RELEASE": "7.04", "ABORT": "7.05",
}  # fmt: skip

OPTIONS = {
    "IF_MATCH": 1, "URI_HOST": 3, "ETAG": 4, "IF_NONE_MATCH": 5, "OBSERVE": 6, "URI_PORT": 7,
    "LOCATION_PATH": 8, "OSCORE": 9, "URI_PATH": 11, "CONTENT_FORMAT": 12, "MAX_AGE": 14,
    "URI_QUERY": 15, "HOP_LIMIT": 16, "ACCEPT": 17, "Q_BLOCK1": 19, "LOCATION_QUERY": 20,
    "EDHOC": 21, "BLOCK2": 23, "BLOCK1": 27, "SIZE2": 28, "Q_BLOCK2": 31, "PROXY_URI": 35,
    "PROXY_SCHEME": 39, "SIZE1": 60, "ECHO": 252, "NO_RESPONSE": 258, "REQUEST_TAG": 292,
}  # fmt: skip

FORMATS = {
    "TEXT_PLAIN": (0, "text/plain"),
    "LINK_FORMAT": (40, "application/link-format"),
    "XML": (41, "application/xml"),
    "OCTET_STREAM": (42, "application/octet-stream"),
    "EXI": (47, "application/exi"),
    "JSON": (50, "application/json"),
    "JSON_PATCH": (51, "application/json-patch+json"),
    "MERGE_PATCH": (52, "application/merge-patch+json"),
    "CBOR": (60, "application/cbor"),
    "CWT": (61, "application/cwt"),
    "SENML_JSON": (110, "application/senml+json"),
    "SENSML_JSON": (111, "application/sensml+json"),
    "SENML_CBOR": (112, "application/senml+cbor"),
    "SENSML_CBOR": (113, "application/sensml+cbor"),
}

EVENTS = {
    "DTLS_CLOSED": 0x0000, "DTLS_CONNECTED": 0x01DE, "DTLS_RENEGOTIATE": 0x01DF,
    "DTLS_ERROR": 0x0200, "TCP_CONNECTED": 0x1001, "TCP_CLOSED": 0x1002, "TCP_FAILED": 0x1003,
    "SESSION_CONNECTED": 0x2001, "SESSION_CLOSED": 0x2002, "SESSION_FAILED": 0x2003,
    "PARTIAL_BLOCK": 0x3001, "XMIT_BLOCK_FAIL": 0x3002,
    "SERVER_SESSION_NEW": 0x4001, "SERVER_SESSION_DEL": 0x4002,
}  # fmt: skip


def test_codes_have_their_registered_numbers() -> None:
    assert {c.name: c.dotted for c in coap.Code} == CODES
    assert all(c.is_known for c in coap.Code)


def test_option_numbers_formats_and_events_have_their_registered_numbers() -> None:
    assert {o.name: int(o) for o in coap.OptionNumber} == OPTIONS
    assert {f.name: (int(f), f.media_type) for f in coap.ContentFormat} == FORMATS
    assert {e.name: int(e) for e in coap.Event} == EVENTS
    assert [int(t) for t in coap.MessageType] == [0, 1, 2, 3]
    assert [int(r) for r in coap.NackReason] == [0, 1, 2, 3, 4]
    assert {p.name: int(p) for p in coap.Proto} == {
        "NONE": 0, "UDP": 1, "DTLS": 2, "TCP": 3, "TLS": 4
    }  # fmt: skip
    assert [int(level) for level in coap.LogLevel] == [0, 1, 2, 3, 4, 5, 6, 7, 9]


def test_values_are_libcoaps_constants() -> None:
    lib = coap.lib
    assert coap.Code.CONTENT == lib.COAP_RESPONSE_CODE(205)
    assert coap.Code.IPATCH == lib.COAP_REQUEST_IPATCH
    assert coap.Code.ABORT == lib.COAP_SIGNALING_ABORT
    assert coap.OptionNumber.NO_RESPONSE == lib.COAP_OPTION_NORESPONSE
    assert coap.ContentFormat.SENSML_CBOR == lib.COAP_MEDIATYPE_APPLICATION_SENSML_CBOR
    assert coap.LogLevel.CIPHERS == lib.COAP_LOG_CIPHERS
    assert coap.Proto.NONE == lib.COAP_PROTO_NONE
    if lib.LCP_HAS_EMPTY_CODE:
        assert coap.Code.EMPTY == lib.COAP_EMPTY_CODE
    if lib.LCP_HAS_OPTION_NAMES_43:
        assert coap.OptionNumber.REQUEST_TAG == lib.COAP_OPTION_RTAG
    if lib.LCP_HAS_Q_BLOCK_OPTIONS:
        assert coap.OptionNumber.Q_BLOCK2 == lib.COAP_OPTION_Q_BLOCK2
    if lib.LCP_HAS_MEDIATYPE_CWT:
        assert coap.ContentFormat.CWT == lib.COAP_MEDIATYPE_APPLICATION_CWT
    if lib.LCP_HAS_BLOCK_EVENTS:
        assert coap.Event.XMIT_BLOCK_FAIL == lib.COAP_EVENT_XMIT_BLOCK_FAIL


# --------------------------------------------------------------------------
# codes without a name


def test_an_unnamed_code_is_a_code() -> None:
    code = coap.Code(0x46)
    assert isinstance(code, coap.Code) and code is coap.Code(70)
    assert code.name == "CODE_2_06" and code.value == 70 and int(code) == 70
    assert code == 70 and hash(code) == hash(70) and code > coap.Code.CONTENT
    assert (code.class_, code.detail, code.dotted) == (2, 6, "2.06")
    assert code.is_success and not code.is_error and not code.is_request
    assert not code.is_known
    assert code.phrase == "Unknown Success" and str(code) == "2.06 Unknown Success"
    assert repr(code) == "<Code.CODE_2_06: 70>"
    assert "CODE_2_06" not in coap.Code.__members__ and code not in list(coap.Code)
    assert pickle.loads(pickle.dumps(code)) is code and copy.deepcopy(code) is code


@pytest.mark.parametrize(
    ("dotted", "phrase"),
    [
        ("0.08", "Unknown Method"),
        ("1.00", "Reserved"),
        ("3.07", "Reserved"),
        ("4.31", "Unknown Client Error"),
        ("5.09", "Unknown Server Error"),
        ("6.31", "Reserved"),
        ("7.31", "Unknown Signal"),
    ],
)
def test_every_code_byte_has_a_code(dotted: str, phrase: str) -> None:
    code = coap.Code.from_dotted(dotted)
    assert code.dotted == dotted and code.phrase == phrase
    assert code.name == "CODE_" + dotted.replace(".", "_")


def test_all_bytes_and_nothing_else() -> None:
    assert [int(coap.Code(b)) for b in range(256)] == list(range(256))
    assert sum(coap.Code(b).is_known for b in range(256)) == len(coap.Code)
    for bad in (-1, 256, "2.05", None):
        with pytest.raises(ValueError):
            coap.Code(bad)


def test_an_unnamed_method_is_no_method() -> None:
    assert coap.Code(8).is_request
    for name in (8, "CODE_0_08", coap.Code(8), 0x45, "CONTENT", 300):
        with pytest.raises(ValueError, match="unknown request method"):
            coap.Code.method(name)
    assert coap.Code.method("fetch") is coap.Code.FETCH
    assert coap.Code.method(3) is coap.Code.PUT


def test_responses_and_requests_hold_codes() -> None:
    response = coap.Response(0x9F, b"", [])
    assert response.code is coap.Code.from_dotted("4.31")
    assert repr(response) == "<Response 4.31 payload=b''>"
    with pytest.raises(ValueError):
        coap.Response(256, b"", [])
    reply = coap.ServerResponse(coap.Code.CONTENT)
    reply.code = 0x46
    assert reply.code is coap.Code(0x46)
    reply.code = "5.09"
    assert reply.code.name == "CODE_5_09"
    assert code_text(coap.Code(0x9F)) == "4.31" and code_text(0x84) == "4.04 Not Found"


def test_an_unnamed_response_code_reaches_the_client(serve: Serve) -> None:
    def setup(ctx: coap.Context) -> int:
        @ctx.resource("odd", methods=("GET",))
        def odd(request: coap.Request, response: coap.ServerResponse) -> None:
            response.code = "2.06"
            response.payload = b"odd"

        return ctx.add_endpoint("coap://127.0.0.1:0").port

    port = serve(setup)
    with coap.Context() as ctx:
        session = ctx.client_session(f"coap://127.0.0.1:{port}")
        got = session.request("GET", "odd", timeout=5)
        assert got.code is coap.Code(0x46) and got.code.is_success and got.payload == b"odd"

        seen: list[coap.Code] = []

        @ctx.register_response_handler
        def on_response(
            session: coap.Session | None, sent: coap.PDU | None, received: coap.PDU, mid: int
        ) -> None:
            seen.append(received.code)

        pdu = session.new_pdu(coap.MessageType.CON, coap.Code.GET)
        pdu.add_option(coap.OptionNumber.URI_PATH, "odd")
        session.send(pdu)
        assert run_until(ctx, lambda: bool(seen), 5)
    assert seen == [coap.Code(0x46)] and seen[0].name == "CODE_2_06"


# --------------------------------------------------------------------------
# content formats and media types


@pytest.mark.parametrize("name", list(FORMATS))
def test_media_types_round_trip(name: str) -> None:
    format_ = coap.ContentFormat[name]
    assert coap.ContentFormat.from_media_type(format_.media_type) is format_
    assert coap.ContentFormat.from_media_type(f" {format_.media_type.upper()} ") is format_


@pytest.mark.parametrize(
    "text", ["text/plain;charset=utf-8", "text/plain; charset=utf-8", "Text/Plain; Charset = UTF-8"]
)
def test_text_plain_takes_its_charset(text: str) -> None:
    assert coap.ContentFormat.from_media_type(text) is coap.ContentFormat.TEXT_PLAIN


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("", "no content format for the media type ''"),
        ("application/yaml", "no content format for the media type 'application/yaml'"),
        ("json", "no content format for the media type 'json'"),
        ("text/plain; charset=latin1", "parameters"),
        ("application/json; charset=utf-8", "parameters"),
        ("text/plain;", "parameters"),
    ],
)
def test_unknown_media_types_are_refused(text: str, why: str) -> None:
    with pytest.raises(ValueError, match=why.replace("(", r"\(")):
        coap.ContentFormat.from_media_type(text)


def test_a_media_type_is_text() -> None:
    with pytest.raises(TypeError):
        coap.ContentFormat.from_media_type(b"application/json")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("text", "number"),
    [
        ("application/json", 50),
        ("TEXT/PLAIN; charset=utf-8", 0),
        ("text/plain;charset=utf-8", 0),
        ("text/plain;c", 0),  # a prefix of text/plain;charset=utf-8
        ("cbor", 60),
        ("application/senml+c", 112),
        ("65000", 65000),
    ],
)
def test_cli_content_formats(text: str, number: int) -> None:
    assert content_format(text, "-t") == number


def test_cli_content_format_names() -> None:
    assert content_format_name(50) == "application/json"
    assert content_format_name(0) == "text/plain"
    assert content_format_name(12345) == "?"
    with pytest.raises(CliError, match="ambiguous"):
        content_format("application/s", "-A")
    with pytest.raises(CliError, match=r"unknown content format .*plain, text, link-format"):
        content_format("nonsense", "-A")
