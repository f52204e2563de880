"""Callbacks with the wrong signature: ``mypy --strict`` reports each line that has an
``E:`` comment, with the error code the comment names in brackets (tests/test_typing.py
checks that, and nothing else).

Type-checked by tests/test_typing.py, never run (pytest does not collect it).
"""

from __future__ import annotations

import libcoap_py as coap


def request_only(request: coap.Request) -> None:
    print(request)


def swapped(response: coap.ServerResponse, request: coap.Request) -> None:
    print(request, response)


def returns_text(request: coap.Request, response: coap.ServerResponse) -> str:
    return "ignored"


def response_without_mid(session: coap.Session | None, received: coap.PDU) -> None:
    print(session, received)


def response_as_response(
    session: coap.Session | None, sent: coap.PDU | None, received: coap.Response, mid: int
) -> None:
    print(received.text)


def nack_only_reason(
    session: coap.Session | None, sent: coap.PDU | None, reason: coap.NackReason, mid: int
) -> None:
    print(reason)


def event_as_text(session: coap.Session | None, event: str) -> None:
    print(event)


def notification_pair(old: coap.Response, new: coap.Response) -> None:
    print(old, new)


def progress_of_ints(done: int, total: int) -> None:
    print(done, total)


def done_without_argument() -> None:
    print("done")


def name_only(common_name: str) -> bool:
    return common_name == "device"


def add(a: int, b: str) -> int:
    return a + len(b)


def server(ctx: coap.Context) -> None:
    ctx.set_unknown_handler(request_only)  # E: [arg-type]
    ctx.add_resource("a").handle("GET", swapped)  # E: [arg-type]
    ctx.add_resource("c").handle("GET", returns_text)  # E: [arg-type]

    @ctx.unknown_resource()  # E: [type-var]
    def one_argument(request: coap.Request) -> None:
        print(request)

    ctx.call_soon(add, "one", "two")  # E: [arg-type]
    ctx.call_soon_threadsafe(add, 1)  # E: [arg-type]


def on_delay(response: coap.ServerResponse) -> None:
    response.delay().add_done_callback(done_without_argument)  # E: [arg-type]


def client(ctx: coap.Context, session: coap.Session) -> None:
    ctx.register_response_handler(response_without_mid)  # E: [type-var]
    ctx.register_response_handler(response_as_response)  # E: [type-var]
    ctx.register_nack_handler(nack_only_reason)  # E: [type-var]
    ctx.register_event_handler(event_as_text)  # E: [type-var]
    session.observe("time", notification_pair)  # E: [arg-type]
    session.request("GET", "big", progress=progress_of_ints)  # E: [arg-type]
    coap.PKI(validate_cn=name_only)  # E: [arg-type]
    r = session.request("GET")
    print(r.code.no_such_property)  # E: [attr-defined]
