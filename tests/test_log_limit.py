"""Logs a remote sender cannot flood: libcoap's repeated warnings are rate-limited.

Malformed datagrams make libcoap log "discard malformed PDU" (WARNING) each, and
resets "got RST for ..." (CRITICAL). Sent by the thousand from a loopback socket,
they must leave a few lines and "N more suppressed" summaries at the default
verbosity, and every one of them at DEBUG.
"""

from __future__ import annotations

import logging
import os
import re
import socket
import struct
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Callable

import pytest
from helpers.codec import encode_message, exchange
from helpers.waiting import wait_until

import libcoap_py as coap
from libcoap_py.cli.demo import ServiceProcess

Serve = Callable[..., Any]

MALFORMED = "discard malformed PDU"
RST = "got RST for"
SUMMARY = re.compile(r"^(\d+) more suppressed in ")
BATCH = 100  # datagrams between two synchronising requests
ANSWER_TIMEOUT_S = 10.0


def malformed(i: int) -> bytes:
    """Datagram ``i`` of a flood: a malformed CoAP message, or (every sixth) an RST
    for a message the server never sent."""
    mid = struct.pack("!H", i & 0xFFFF)
    # (libcoap 4.3.5 drops a bad version number with no warning: not one of these.)
    kinds = (
        b"\x41\x00" + mid + b"t",  # an empty message with a token
        b"\x49\x01" + mid + b"12345678",  # token length 9 (reserved)
        b"\x48\x01" + mid + b"12",  # token cut short
        b"\x40\x01" + mid + b"\xff",  # payload marker without payload
        b"\x40\x01" + mid + b"\xd5\x01",  # option cut short
        b"\x70\x00" + mid,  # RST
    )
    return kinds[i % len(kinds)]


class Records(logging.Handler):
    """The records of the ``libcoap`` logger, as (level, message)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.seen: list[tuple[int, str]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.seen.append((record.levelno, record.getMessage()))

    def shown(self, text: str) -> list[str]:
        """Lines at WARNING or above (what a default setup prints) containing ``text``,
        summaries apart."""
        return [
            m
            for level, m in self.seen
            if level >= logging.WARNING and text in m and not SUMMARY.match(m)
        ]

    def suppressed(self, text: str) -> int:
        """The sum of the counts in the "N more suppressed" lines about ``text``."""
        total = 0
        for level, message in self.seen:
            match = SUMMARY.match(message)
            if match and level >= logging.WARNING and text in message:
                total += int(match.group(1))
        return total

    def accounted(self, text: str) -> int:
        """Messages containing ``text``, shown or counted in a summary."""
        return len(self.shown(text)) + self.suppressed(text)


@pytest.fixture
def records() -> Iterator[Records]:
    logger = logging.getLogger("libcoap")
    handler = Records()
    saved_level = logger.level
    saved_limit = coap.get_log_rate_limit()
    coap.set_log_rate_limit()  # the defaults
    logger.addHandler(handler)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        logger.setLevel(saved_level)
        coap.set_log_rate_limit(*saved_limit)


def flood(port: int, count: int, code: int, path: str) -> float:
    """Send ``count`` malformed datagrams to ``port``, in batches, each followed by a
    CON request (``code``, ``path``) whose answer shows the server read the batch
    (one socket: the server reads its datagrams in order). Returns the seconds taken."""
    started = time.monotonic()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        for first in range(0, count, BATCH):
            for i in range(first, min(first + BATCH, count)):
                s.sendto(malformed(i), ("127.0.0.1", port))
            token = os.urandom(4)
            # (a message ID none of the flood's datagrams has)
            mid = 0x8000 | first // BATCH
            probe = encode_message(0, code, mid, token, [(11, path.encode())], b"x")
            exchange(s, probe, ("127.0.0.1", port), ANSWER_TIMEOUT_S)
    return time.monotonic() - started


def _ping_server(ctx: coap.Context) -> int:
    @ctx.resource("ping", methods=("POST",))
    def ping(request: coap.Request, response: coap.ServerResponse) -> None:
        response.payload = b"pong"

    return ctx.add_endpoint("coap://127.0.0.1:0").port


def _bound(seconds: float) -> int:
    """The most lines one kind may log in ``seconds`` with the default limit."""
    rate, burst = coap.get_log_rate_limit()
    assert rate is not None
    return burst + int(rate * seconds) + 1


def test_flood_leaves_a_few_lines_and_a_summary(serve: Serve, records: Records) -> None:
    logging.getLogger("libcoap").setLevel(logging.WARNING)  # the default verbosity
    count = 3000
    port = serve(_ping_server)
    elapsed = flood(port, count, 2, "ping")
    malformed_lines = records.shown(MALFORMED)
    rst_lines = records.shown(RST)
    assert 0 < len(malformed_lines) <= _bound(elapsed), (elapsed, malformed_lines)
    assert 0 < len(rst_lines) <= _bound(elapsed), (elapsed, rst_lines)
    # The flood has stopped; the summaries still come, from the server's loop, and
    # account for every datagram.
    rsts = count // 6
    assert wait_until(
        lambda: (records.accounted(MALFORMED), records.accounted(RST)) == (count - rsts, rsts),
        5.0,
    ), (records.accounted(MALFORMED), records.accounted(RST))
    assert records.suppressed(MALFORMED) > 0 and records.suppressed(RST) > 0
    lines = [m for level, m in records.seen if level >= logging.WARNING]
    assert len(lines) <= 4 * _bound(elapsed), lines


def test_at_debug_every_message_is_there(serve: Serve, records: Records) -> None:
    logging.getLogger("libcoap").setLevel(logging.DEBUG)
    count = 1200
    port = serve(_ping_server)
    elapsed = flood(port, count, 2, "ping")
    every = [level for level, m in records.seen if m == MALFORMED]
    assert len(every) == count - count // 6
    assert len([m for level, m in records.seen if m.startswith(RST)]) == count // 6
    # Those beyond the limit are there at DEBUG.
    assert 0 < every.count(logging.WARNING) <= _bound(elapsed)
    assert every.count(logging.DEBUG) == len(every) - every.count(logging.WARNING)


def test_rate_and_burst_are_configurable(serve: Serve, records: Records) -> None:
    logging.getLogger("libcoap").setLevel(logging.WARNING)
    with pytest.raises(ValueError):
        coap.set_log_rate_limit(rate=0)
    with pytest.raises(ValueError):
        coap.set_log_rate_limit(burst=0)
    port = serve(_ping_server)
    coap.set_log_rate_limit(None)
    assert coap.get_log_rate_limit()[0] is None
    flood(port, 300, 2, "ping")
    assert len(records.shown(MALFORMED)) == 250  # no limit: every one
    records.seen.clear()
    coap.set_log_rate_limit(rate=0.5, burst=40)
    assert coap.get_log_rate_limit() == (0.5, 40)
    elapsed = flood(port, 600, 2, "ping")
    shown = len(records.shown(MALFORMED))
    assert 40 <= shown <= 40 + int(0.5 * elapsed) + 1


def test_messages_from_own_calls_are_not_held_back(records: Records) -> None:
    # What libcoap logs outside its I/O processing comes from the application's own
    # calls (here: coap_show_pdu at WARNING, twenty times the same kind of line).
    logging.getLogger("libcoap").setLevel(logging.WARNING)
    with coap.Context() as ctx:
        session = ctx.client_session("coap://127.0.0.1:9")
        for _ in range(20):
            pdu = session.new_pdu(coap.MessageType.CON, coap.Code.GET)
            assert pdu.mid >= 0  # (libcoap makes a new PDU when a field is first read)
            coap.lib.coap_show_pdu(coap.lib.LOG_WARNING, pdu._ptr)
    shown = [m for level, m in records.seen if level == logging.WARNING]
    assert len(shown) == 20, shown
    assert not any(SUMMARY.match(m) for m in shown)


def test_serve_prints_a_few_lines_for_a_flood(tmp_path: Path) -> None:
    command = [sys.executable, "-I", "-m", "libcoap_py.cli", "serve", "--db"]
    process = ServiceProcess([*command, str(tmp_path / "db"), "--listen", "coap://127.0.0.1:0"])
    try:
        (uri,) = process.wait_listening(15.0)
        count = 3000
        # The data service answers a POST without a device identity with 4.01.
        elapsed = flood(int(uri.rsplit(":", 1)[1]), count, 2, "data")
    finally:
        status = process.stop()
    assert status == 0
    lines = process.lines
    summaries = [line for line in lines if "more suppressed" in line]
    malformed_lines = [line for line in lines if line.endswith(MALFORMED)]
    malformed_lines = [line for line in malformed_lines if line not in summaries]
    assert 0 < len(malformed_lines) <= _bound(elapsed), malformed_lines
    assert any(MALFORMED in line for line in summaries), lines
    assert len(lines) <= 4 * _bound(elapsed) + 5, lines


def test_a_handler_that_fails_on_every_request_logs_a_few_tracebacks(
    serve: Serve, records: Records
) -> None:
    """A handler a peer can make fail (here: on every request) is logged with its
    traceback a few times, then counted in summaries, like libcoap's own messages."""
    server_log = logging.getLogger("libcoap_py.server")
    server_log.addHandler(records)
    try:

        def setup(ctx: coap.Context) -> int:
            @ctx.resource("fails", methods=("POST",))
            def fails(request: coap.Request, response: coap.ServerResponse) -> None:
                raise RuntimeError("a handler bug the peer found")

            return ctx.add_endpoint("coap://127.0.0.1:0").port

        port = serve(setup)
        started = time.monotonic()
        count = 200
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            for i in range(count):
                token = os.urandom(4)
                probe = encode_message(0, 2, i, token, [(11, b"fails")], b"x")
                exchange(s, probe, ("127.0.0.1", port), ANSWER_TIMEOUT_S)
        elapsed = time.monotonic() - started
        shown = records.shown("handler for POST /fails")
        assert 0 < len(shown) <= _bound(elapsed), shown
        assert wait_until(lambda: records.accounted("handler for POST /fails") == count, 5.0)
    finally:
        server_log.removeHandler(records)
