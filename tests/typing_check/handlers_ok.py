"""Correct uses of the callback APIs: ``mypy --strict`` reports nothing here.

Type-checked by tests/test_typing.py, never run (pytest does not collect it).
"""

from __future__ import annotations

import libcoap_py as coap
from libcoap_py.server.delayed import DelayedResponse


def get_note(request: coap.Request, response: coap.ServerResponse) -> None:
    response.payload = f"{request.method} {request.path}"


def on_response(
    session: coap.Session | None, sent: coap.PDU | None, received: coap.PDU, mid: int
) -> bool:
    return received.code.is_success


def on_nack(
    session: coap.Session | None, sent: coap.PDU | None, reason: coap.NackReason | int, mid: int
) -> None:
    print(reason, mid)


def on_event(session: coap.Session | None, event: coap.Event | int) -> None:
    print(event)


def on_notification(response: coap.Response) -> None:
    print(response.code.dotted, response.code.phrase)


def on_progress(done: int, total: int | None) -> None:
    print(done, total)


def on_delivered(delayed: DelayedResponse) -> None:
    print(delayed.delivery)


def add(a: int, b: str) -> int:
    return a + len(b)


def check_cn(common_name: str, depth: int) -> bool:
    return common_name == "device" or depth > 0


def key_for(identity: bytes) -> bytes | None:
    return b"secret" if identity == b"device" else None


def server(ctx: coap.Context) -> None:
    ctx.add_resource("notes").handle(["GET", "PUT"], get_note)
    ctx.set_unknown_handler(get_note)
    ctx.set_unknown_handler(lambda request, response: None, methods="POST")

    @ctx.resource("time", observable=True)
    def get_time(request: coap.Request, response: coap.ServerResponse) -> None:
        response.code = coap.Code.CONTENT
        delayed = response.delay()
        delayed.add_done_callback(on_delivered)

    @ctx.unknown_resource(("PUT", "POST"))
    def anything(request: coap.Request, response: coap.ServerResponse) -> None:
        response.code = "2.04"

    @ctx.add_resource("other").handler("DELETE")
    def delete(request: coap.Request, response: coap.ServerResponse) -> None:
        response.code = 0x42

    # The decorators hand the function back as it was.
    # An async def handler, for a Context an event loop drives (libcoap_py.aio).
    @ctx.resource("slow")
    async def slow(request: coap.Request, response: coap.ServerResponse) -> None:
        response.payload = request.path

    handlers: list[coap.RequestHandler] = [get_time, anything, delete, slow]
    print(handlers)
    ctx.call_soon(add, 1, "two")
    ctx.call_soon_threadsafe(print, "from another thread")
    ctx.add_reader(0, add, 1, "x")
    coap.PKI(validate_cn=check_cn)
    coap.PSK(hint=b"hint", keys=key_for)


def client(ctx: coap.Context, session: coap.Session) -> str:
    handler = ctx.register_response_handler(on_response)
    assert handler is on_response
    ctx.register_nack_handler(on_nack)
    ctx.register_event_handler(on_event)
    ctx.register_event_handler(lambda session, event: None)
    session.observe("time", on_notification)
    session.observe("time", callback=lambda response: None)
    r = session.request("GET", "notes", progress=on_progress)
    code: coap.Code = r.code
    pdu = session.new_pdu()
    same: coap.Code = pdu.code
    return f"{code.dotted} {code.phrase} {r.code.class_} {same.name} {int(code)}"
