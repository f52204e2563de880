"""asyncio (libcoap_py.aio): awaited requests, async observations, async server
handlers and the thread hand-off, against libcoap's coap-server, aiocoap and the
project's own server. Every wait is bounded (``asyncio.wait_for``); nothing sleeps
except the handlers that stand for slow work."""

from __future__ import annotations

import asyncio
import concurrent.futures
import sys
import threading
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import pytest
from helpers.aio import AioServer
from helpers.ctools import CoapServer
from helpers.payloads import binary_payload
from helpers.peers import UdpPeer

import libcoap_py as coap
from libcoap_py import aio

T = TypeVar("T")
BOUND = 20.0  # seconds any test's awaited work may take at most


def run(main: Callable[[], Awaitable[T]], *, loop_factory: Any = None) -> T:
    """Run ``main()`` in a new event loop, bounded by BOUND."""

    async def bounded() -> T:
        return await asyncio.wait_for(main(), BOUND)

    if loop_factory is None:
        return asyncio.run(bounded())
    loop: asyncio.AbstractEventLoop = loop_factory()
    try:
        return loop.run_until_complete(bounded())
    finally:
        loop.close()


def own_server(ctx: aio.Context) -> str:
    """Serve /hello (plain), /slow (async, awaits), /echo (body length) and /big
    (a 5000-byte body) on a free loopback port of ``ctx``; its URI."""
    endpoint = ctx.add_endpoint("coap://127.0.0.1:0")

    @ctx.resource("hello")
    def hello(request: coap.Request, response: coap.ServerResponse) -> None:
        response.payload = b"hi"

    @ctx.resource("slow")
    async def slow(request: coap.Request, response: coap.ServerResponse) -> None:
        await asyncio.sleep(0.05)
        response.payload = b"slow done"

    @ctx.resource("echo", ["POST", "PUT"])
    def echo(request: coap.Request, response: coap.ServerResponse) -> None:
        response.code = coap.Code.CHANGED
        response.payload = str(len(request.payload)).encode()

    @ctx.resource("big")
    def big(request: coap.Request, response: coap.ServerResponse) -> None:
        response.payload = binary_payload(5000)

    return f"coap://127.0.0.1:{endpoint.port}"


# -- requests -----------------------------------------------------------------------------


def test_request_against_coap_server(coap_server: CoapServer, unique_path: str) -> None:
    async def main() -> None:
        async with aio.Context() as ctx:
            session = ctx.client_session(coap_server.coap_uri)
            data = binary_payload(500)
            created = await session.request("PUT", unique_path, data)
            assert created.code is coap.Code.CREATED
            got = await session.request("GET", unique_path)
            assert got.code is coap.Code.CONTENT
            assert got.payload == data
            assert got.type is coap.MessageType.ACK
            missing = await session.request("GET", unique_path + "/missing")
            assert missing.code is coap.Code.NOT_FOUND

    run(main)


@pytest.mark.needs_dtls
def test_request_over_dtls_psk(coap_server: CoapServer) -> None:
    async def main() -> None:
        async with aio.Context() as ctx:
            psk = coap.PSK(identity=coap_server.psk_identity, key=coap_server.psk_key)
            session = ctx.client_session(coap_server.coaps_uri, psk)
            first = await session.request("GET", "", timeout=10)
            assert first.code is coap.Code.CONTENT
            assert session.established
            again = await session.request("GET", "", timeout=10)
            assert again.payload == first.payload

    run(main)


@pytest.mark.needs_dtls
def test_dtls_failure_is_the_blocking_one(coap_server: CoapServer) -> None:
    async def main() -> None:
        async with aio.Context() as ctx:
            psk = coap.PSK(identity=coap_server.psk_identity, key=b"not the key")
            session = ctx.client_session(coap_server.coaps_uri, psk)
            with pytest.raises(coap.DTLSError):
                await session.request("GET", "", timeout=3)

    run(main)


def test_timeout_and_reset_are_the_blocking_exceptions(
    silent_peer: UdpPeer, rst_peer: UdpPeer
) -> None:
    async def main() -> None:
        async with aio.Context() as ctx:
            silent = ctx.client_session(silent_peer.uri)
            with pytest.raises(coap.RequestTimeout, match=r"within 0\.5 s"):
                await silent.request("GET", "x", timeout=0.5)
            rst = ctx.client_session(rst_peer.uri)
            with pytest.raises(coap.ResetError):
                await rst.request("GET", "x", timeout=5)

    run(main)


def test_a_request_without_timeout_waits_as_the_session_is_set_now(silent_peer: UdpPeer) -> None:
    """Without ``timeout``, a request waits libcoap's MAX_TRANSMIT_WAIT and a second,
    from the session's ack_timeout and max_retransmit as they are when it is made."""

    async def main() -> None:
        async with aio.Context() as ctx:
            session = ctx.client_session(silent_peer.uri)
            session.blocking.max_retransmit = 1  # (libcoap takes 1 at least)
            session.blocking.ack_timeout = 2.0  # 2 x 3 x 1.5 + 1: 10 s
            first = asyncio.ensure_future(session.request("GET", "x"))
            await asyncio.sleep(0)  # (it is sent, with its wait)
            session.blocking.ack_timeout = 1.0  # 1 x 3 x 1.5 + 1: 5.5 s
            assert session.blocking.max_transmit_wait() == 4.5
            with pytest.raises(coap.RequestTimeout, match=r"within 5\.5 s"):
                await session.request("GET", "y")
            assert not first.done()
            first.cancel()

    run(main)


def test_bad_arguments_raise_before_sending() -> None:
    async def main() -> None:
        async with aio.Context() as ctx:
            session = ctx.client_session("coap://127.0.0.1:9")
            with pytest.raises(ValueError):
                await session.request("GET", "x", token=b"123456789")
            with pytest.raises(ValueError):
                await session.request("BREW", "x")

    run(main)


def test_many_requests_in_flight_on_one_session_and_many(coap_server: CoapServer) -> None:
    async def main() -> None:
        async with aio.Context() as ctx:
            one = ctx.client_session(coap_server.coap_uri)
            many = [ctx.client_session(coap_server.coap_uri) for _ in range(8)]

            async def worker(session: aio.Session, n: int) -> list[coap.Code]:
                return [(await session.request("GET", "")).code for _ in range(n)]

            results = await asyncio.gather(
                *[worker(one, 10) for _ in range(32)], *[worker(s, 10) for s in many]
            )
            codes = [code for batch in results for code in batch]
            assert len(codes) == 400
            assert set(codes) == {coap.Code.CONTENT}

    run(main)


def test_cancelled_request_abandons_the_exchange() -> None:
    """wait_for cancels an awaited request; its late answer reaches no handler, and
    the session goes on."""

    async def main() -> None:
        async with aio.Context() as server_ctx, aio.Context() as ctx:
            answered = asyncio.Event()
            release = asyncio.Event()
            endpoint = server_ctx.add_endpoint("coap://127.0.0.1:0")

            @server_ctx.resource("late")
            async def late(request: coap.Request, response: coap.ServerResponse) -> None:
                await release.wait()
                response.payload = b"too late"
                asyncio.get_running_loop().call_soon(answered.set)

            @server_ctx.resource("now")
            def now(request: coap.Request, response: coap.ServerResponse) -> None:
                response.payload = b"now"

            stray: list[coap.PDU] = []
            ctx.blocking.register_response_handler(
                lambda s, sent, received, mid: stray.append(received)
            )
            session = ctx.client_session(f"coap://127.0.0.1:{endpoint.port}")
            with pytest.raises(asyncio.TimeoutError):
                await asyncio.wait_for(session.request("GET", "late"), 0.2)
            release.set()
            await asyncio.wait_for(answered.wait(), 5)
            # The separate response is acknowledged by the client's stack; the next
            # request's answer comes after it on the same socket.
            assert (await session.request("GET", "now", timeout=5)).payload == b"now"
            assert stray == []

    run(main)


@pytest.mark.skipif(sys.version_info < (3, 11), reason="asyncio.timeout() is new in 3.11")
def test_asyncio_timeout(silent_peer: UdpPeer) -> None:
    async def main() -> None:
        async with aio.Context() as ctx:
            session = ctx.client_session(silent_peer.uri)
            with pytest.raises(TimeoutError):
                async with asyncio.timeout(0.2):  # type: ignore[attr-defined]
                    await session.request("GET", "x")
            # The abandoned exchange does not keep the request's own timer alive.
            assert not session.closed

    run(main)


def test_blockwise_both_ways_with_own_server() -> None:
    async def main() -> None:
        async with aio.Context() as server_ctx, aio.Context() as ctx:
            uri = own_server(server_ctx)
            session = ctx.client_session(uri)
            big = await session.request("GET", "big", timeout=10)
            assert big.payload == binary_payload(5000)
            body = binary_payload(7000)
            echoed = await session.request("POST", "echo", body, timeout=10, block_size=256)
            assert echoed.code is coap.Code.CHANGED
            assert echoed.payload == b"7000"

    run(main)


def test_blockwise_against_aiocoap() -> None:
    aiocoap = pytest.importorskip("aiocoap")
    resource = pytest.importorskip("aiocoap.resource")
    body = binary_payload(4000)

    base: Any = resource.Resource

    class Big(base):  # type: ignore[misc]
        async def render_get(self, request: Any) -> Any:
            return aiocoap.Message(payload=body)

        async def render_put(self, request: Any) -> Any:
            return aiocoap.Message(code=aiocoap.CHANGED, payload=str(len(request.payload)).encode())

    site = resource.Site()
    site.add_resource(["big"], Big())
    server = AioServer(site)
    server.start()
    try:

        async def main() -> None:
            async with aio.Context() as ctx:
                session = ctx.client_session(server.uri)
                got = await session.request("GET", "big", timeout=10)
                assert got.payload == body
                put = await session.request("PUT", "big", body, timeout=10, block_size=512)
                assert put.code is coap.Code.CHANGED
                assert put.payload == b"4000"

        run(main)
    finally:
        server.stop()


# -- observe -------------------------------------------------------------------------------


def test_observe_with_async_for_and_leaving_cancels() -> None:
    async def main() -> None:
        async with aio.Context() as server_ctx, aio.Context() as ctx:
            endpoint = server_ctx.add_endpoint("coap://127.0.0.1:0")
            state = {"n": 0, "calls": 0}

            @server_ctx.resource("counter", observable=True)
            def counter(request: coap.Request, response: coap.ServerResponse) -> None:
                state["calls"] += 1
                response.payload = str(state["n"]).encode()

            resource = server_ctx.resources["counter"]

            def bump() -> None:
                state["n"] += 1
                resource.notify()

            session = ctx.client_session(f"coap://127.0.0.1:{endpoint.port}")
            seen: list[bytes] = []
            async for notification in session.observe("counter"):
                seen.append(notification.payload)
                if len(seen) == 4:
                    break
                asyncio.get_running_loop().call_soon(bump)
            assert seen == [b"0", b"1", b"2", b"3"]
            # Leaving the loop deregistered: a change notifies no one any more (the GET
            # handler runs once, for the plain GET, not for a notification).
            await session.request("GET", "counter", timeout=5)  # after the deregistration
            calls = state["calls"]
            bump()
            plain = await session.request("GET", "counter", timeout=5)
            assert plain.option(coap.OptionNumber.OBSERVE) is None
            assert state["calls"] == calls + 1

    run(main)


def test_observation_ended_by_the_server_ends_the_loop() -> None:
    async def main() -> None:
        async with aio.Context() as server_ctx, aio.Context() as ctx:
            endpoint = server_ctx.add_endpoint("coap://127.0.0.1:0")
            gone = {"yes": False}

            @server_ctx.resource("thing", observable=True)
            def thing(request: coap.Request, response: coap.ServerResponse) -> None:
                if gone["yes"]:
                    response.code = coap.Code.NOT_FOUND
                else:
                    response.payload = b"here"

            resource = server_ctx.resources["thing"]
            session = ctx.client_session(f"coap://127.0.0.1:{endpoint.port}")
            got: list[coap.Code] = []
            async for notification in session.observe("thing"):
                got.append(notification.code)
                gone["yes"] = True
                resource.notify()
            assert got == [coap.Code.CONTENT, coap.Code.NOT_FOUND]

    run(main)


# -- server ---------------------------------------------------------------------------------


def test_async_handler_serves_others_while_it_awaits() -> None:
    async def main() -> None:
        async with aio.Context() as server_ctx, aio.Context() as ctx:
            endpoint = server_ctx.add_endpoint("coap://127.0.0.1:0")
            release = asyncio.Event()

            @server_ctx.resource("wait")
            async def wait(request: coap.Request, response: coap.ServerResponse) -> None:
                response.content_format = coap.ContentFormat.TEXT_PLAIN
                await release.wait()
                response.payload = b"released"

            @server_ctx.resource("quick")
            async def quick(request: coap.Request, response: coap.ServerResponse) -> None:
                response.payload = b"quick"  # (no await: answered in the ACK)

            session = ctx.client_session(f"coap://127.0.0.1:{endpoint.port}")
            slow = asyncio.ensure_future(session.request("GET", "wait", timeout=10))
            for _ in range(5):
                fast = await session.request("GET", "quick", timeout=5)
                assert fast.payload == b"quick"
                assert fast.type is coap.MessageType.ACK
            assert not slow.done()
            release.set()
            response = await slow
            assert response.payload == b"released"
            assert response.content_format == coap.ContentFormat.TEXT_PLAIN
            # Separate: the request was acknowledged with an empty ACK at once, and
            # the response came as a CON of its own.
            assert response.type is coap.MessageType.CON

    run(main)


def test_async_handler_failure_answers_5_00() -> None:
    async def main() -> None:
        async with aio.Context() as server_ctx, aio.Context() as ctx:
            endpoint = server_ctx.add_endpoint("coap://127.0.0.1:0")

            @server_ctx.resource("broken")
            async def broken(request: coap.Request, response: coap.ServerResponse) -> None:
                await asyncio.sleep(0)
                raise RuntimeError("handler bug")

            session = ctx.client_session(f"coap://127.0.0.1:{endpoint.port}")
            response = await session.request("GET", "broken", timeout=5)
            assert response.code is coap.Code.INTERNAL_SERVER_ERROR

    run(main)


def test_async_handler_on_a_blocking_context_is_refused_clearly(
    coap_server: CoapServer,
) -> None:
    with coap.Context() as server:
        endpoint = server.add_endpoint("coap://127.0.0.1:0")

        @server.resource("a")
        async def a(request: coap.Request, response: coap.ServerResponse) -> None:
            response.payload = b"never"

        results: list[int] = []

        def client() -> None:
            with coap.Context() as ctx:
                s = ctx.client_session(f"coap://127.0.0.1:{endpoint.port}")
                results.append(int(s.request("GET", "a", timeout=5).code))
            server.call_soon_threadsafe(server.stop)

        thread = threading.Thread(target=client)
        thread.start()
        server.run(timeout=10)
        thread.join(10)
        assert results == [int(coap.Code.INTERNAL_SERVER_ERROR)]


# -- threads, loops, idleness ------------------------------------------------------------------


def test_thread_hand_off_and_wrong_thread(coap_server: CoapServer) -> None:
    async def main() -> None:
        async with aio.Context() as ctx:
            session = ctx.client_session(coap_server.coap_uri)

            def from_thread() -> coap.Code:
                future: concurrent.futures.Future[coap.Response] = session.submit("GET", "")
                return future.result(10).code

            loop = asyncio.get_running_loop()
            codes = await asyncio.gather(
                *[loop.run_in_executor(None, from_thread) for _ in range(4)]
            )
            assert codes == [coap.Code.CONTENT] * 4

            def misuse() -> None:
                session.blocking.request("GET", "", timeout=1)

            with pytest.raises(coap.WrongThreadError):
                await loop.run_in_executor(None, misuse)

    run(main)


def test_works_with_uvloop(coap_server: CoapServer, silent_peer: UdpPeer) -> None:
    uvloop = pytest.importorskip("uvloop")

    async def main() -> None:
        async with aio.Context() as ctx:
            session = ctx.client_session(coap_server.coap_uri)
            responses = await asyncio.gather(*[session.request("GET", "") for _ in range(50)])
            assert {r.code for r in responses} == {coap.Code.CONTENT}
            with pytest.raises(coap.RequestTimeout):
                await ctx.client_session(silent_peer.uri).request("GET", "", timeout=0.3)

    run(main, loop_factory=uvloop.new_event_loop)


def test_no_passes_while_nothing_is_due(silent_peer: UdpPeer) -> None:
    """An idle Context, and one waiting on a silent peer, run no pass until something
    is due: no polling, no ticker."""

    async def main() -> None:
        async with aio.Context() as ctx:
            driver = ctx._driver
            passes = 0
            original = driver.run_pass

            def counted() -> None:
                nonlocal passes
                passes += 1
                original()

            loop = asyncio.get_running_loop()
            loop.remove_reader(driver.fd)
            loop.add_reader(driver.fd, counted)
            driver.run_pass = counted  # type: ignore[method-assign]
            session = ctx.client_session(silent_peer.uri)
            with pytest.raises(coap.RequestTimeout):
                await session.request("GET", "x", timeout=1.0)
            # The send's pass, the deadline's: a handful, not one per millisecond.
            assert passes <= 6, passes

    run(main)


def test_context_outside_a_coroutine_is_refused() -> None:
    with pytest.raises(coap.CoapError, match="inside a coroutine"):
        aio.Context()


def test_closing_fails_waiting_requests(silent_peer: UdpPeer) -> None:
    async def main() -> None:
        async with aio.Context() as ctx:
            session = ctx.client_session(silent_peer.uri)
            waiting = asyncio.ensure_future(session.request("GET", "x", timeout=10))
            await asyncio.sleep(0)
            await asyncio.sleep(0)
            session.close()
            with pytest.raises(coap.CoapError):
                await waiting

    run(main)


def test_closing_the_context_fails_every_waiting_request(silent_peer: UdpPeer) -> None:
    """Plain requests and those with extra options (the steps' way) alike."""

    async def main() -> None:
        ctx = aio.Context()
        session = ctx.client_session(silent_peer.uri)
        plain = asyncio.ensure_future(session.request("GET", "x", timeout=10))
        stepped = asyncio.ensure_future(session.request("GET", "x", query="a=1", timeout=10))
        other = ctx.client_session(silent_peer.uri)
        closed_session = asyncio.ensure_future(other.request("GET", "y", query="b=2", timeout=10))
        for _ in range(3):
            await asyncio.sleep(0)  # (the requests go out)
        other.close()
        with pytest.raises(coap.CoapError):
            await asyncio.wait_for(closed_session, 5)
        ctx.close()
        for waiting in (plain, stepped):
            with pytest.raises(coap.CoapError):
                await asyncio.wait_for(waiting, 5)

    run(main)
