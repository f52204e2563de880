"""Block-wise request sequences that crashed servers built on libcoap 4.3 (issue 13).

libcoap 4.3.1 to 4.3.4, reassembling Block1 bodies for the application
(COAP_BLOCK_SINGLE_BODY), keep a partial upload whose body they never built
(no Size1 on 4.3.1; an empty first block on every 4.3 before 4.3.5) and then
read through it when a later block says the body is complete: SIGSEGV. The
binding now reassembles bodies itself on the server side (``glue.c``,
``lcp_client_blocks``), and these sequences are the regression test.

Each sequence is sent from one socket, in order, each datagram after the answer
to the one before (or a bounded wait for it): a plain module, used by the API
server test (test_server_robustness.py) and the data service test
(test_service_hostile.py).
"""

from __future__ import annotations

import socket
from collections.abc import Iterator

from helpers.codec import decode_message, encode_message
from helpers.waiting import wait_until

import libcoap_py as coap

URI_PATH = int(coap.OptionNumber.URI_PATH)
BLOCK1 = int(coap.OptionNumber.BLOCK1)
SIZE1 = int(coap.OptionNumber.SIZE1)
CON = 0

#: The two datagrams of the report, byte for byte: a CON POST with Observe 0,
#: Uri-Path "x", Block1 0/more/128, Size2 and a 1024-byte payload; then a CON POST
#: with Block2 5, Block1 2 (last) and Size1.
REPORTED = [
    bytes.fromhex("420244ca1799605178d1030b130ade4dff") + bytes(1024),
    bytes.fromhex("4502eb83c3bdfe0830d10a5e4124d214161fff") + b"\x42" * 16,
]


def _block(num: int, more: bool, szx: int) -> bytes:
    raw = num << 4 | (8 if more else 0) | szx
    return raw.to_bytes((raw.bit_length() + 7) // 8, "big")


def _upload(code: int, path: str, mid: int, num: int, more: bool, szx: int, body: bytes,
            size1: int | None = None) -> bytes:  # fmt: skip
    options = [(URI_PATH, part.encode()) for part in path.split("/") if part]
    options.append((BLOCK1, _block(num, more, szx)))
    if size1 is not None:
        options.append((SIZE1, size1.to_bytes(2, "big")))
    return encode_message(CON, code, mid, bytes([mid & 0xFF, 7]), options, body)


def sequences(path: str) -> Iterator[tuple[str, list[bytes]]]:
    """(name, datagrams) for each attack, against ``path`` where a path matters."""
    post, put, fetch = int(coap.Code.POST), int(coap.Code.PUT), int(coap.Code.FETCH)
    yield "the reported pair", REPORTED
    for name, code in (("POST", post), ("PUT", put), ("FETCH", fetch)):
        # an empty first block that announces more, then an empty last block
        yield (
            f"{name}: empty block 0 (more), empty block 0 (last)",
            [
                _upload(code, path, 0x100 + code, 0, True, 6, b""),
                _upload(code, path, 0x200 + code, 0, False, 6, b""),
            ],
        )
    # block 0 with no Size1, then the last block twice (new message IDs)
    yield (
        "POST without Size1, last block twice",
        [
            _upload(post, path, 0x301, 0, True, 2, bytes(64)),
            _upload(post, path, 0x302, 1, False, 2, b"end"),
            _upload(post, path, 0x303, 1, False, 2, b"end"),
        ],
    )
    # a block larger than its size says, then an earlier block again as the last one
    yield (
        "oversized block 0, then block 0 as the last",
        [
            _upload(post, path, 0x401, 0, True, 3, bytes(1024), size1=1024),
            _upload(post, path, 0x402, 0, False, 3, bytes(16)),
        ],
    )


def send_sequence(port: int, datagrams: list[bytes], wait_s: float = 1.0) -> int:
    """Send ``datagrams`` to 127.0.0.1:port, each after the answer to the one before (or
    ``wait_s``); returns how many were answered."""
    answered = 0
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(wait_s)
        for datagram in datagrams:
            sock.sendto(datagram, ("127.0.0.1", port))
            try:
                sock.recv(65535)
                answered += 1
            except socket.timeout:
                pass
    return answered


class SessionSender:
    """Sends the same requests (code, options, payload) inside a client session, with
    new_pdu() and send(): what an authenticated device can do."""

    def __init__(self, ctx: coap.Context, session: coap.Session) -> None:
        self.ctx = ctx
        self.session = session
        self.answers: list[int] = []
        ctx.register_response_handler(self._on_response)

    def _on_response(self, session: coap.Session, sent: object, received: coap.PDU,
                     mid: int) -> None:  # fmt: skip
        self.answers.append(int(received.code))

    def send(self, datagram: bytes, wait_s: float = 10.0) -> bool:
        """Send it and wait (bounded) for the answer; True when one came."""
        message = decode_message(datagram)
        pdu = self.session.new_pdu(coap.MessageType.CON, message.code)
        for number, value in message.options:
            pdu.add_option(number, value)
        if message.payload:
            pdu.payload = message.payload
        before = len(self.answers)
        self.session.send(pdu)
        return wait_until(lambda: self.ctx.run_once(50) >= 0 and len(self.answers) > before, wait_s)
