"""CoAP by hand: the message codec (RFC 7252, 3) and a client made of a socket,
for exchanges that must not depend on any CoAP library (and for hand-made
malformed messages)."""

from __future__ import annotations

import os
import socket
import struct
import time
from dataclasses import dataclass

from helpers.net import family


def _option_nibble(value: int) -> tuple[int, bytes]:
    if value < 13:
        return value, b""
    if value < 269:
        return 13, bytes([value - 13])
    return 14, (value - 269).to_bytes(2, "big")


def encode_options(options: list[tuple[int, bytes]]) -> bytes:
    """CoAP option encoding (RFC 7252, 3.1) of ``(number, value)`` pairs, sorted by number."""
    out = bytearray()
    previous = 0
    for number, value in sorted(options, key=lambda option: option[0]):
        delta, delta_ext = _option_nibble(number - previous)
        length, length_ext = _option_nibble(len(value))
        out.append(delta << 4 | length)
        out += delta_ext + length_ext + value
        previous = number
    return bytes(out)


def encode_message(
    mtype: int,
    code: int,
    mid: int,
    token: bytes = b"",
    options: list[tuple[int, bytes]] | None = None,
    payload: bytes = b"",
) -> bytes:
    header = struct.pack("!BBH", 0x40 | mtype << 4 | len(token), code, mid)
    body = header + token + encode_options(options or [])
    return body + (b"\xff" + payload if payload else b"")


@dataclass(frozen=True)
class RawMessage:
    type: int
    code: int
    mid: int
    token: bytes
    options: list[tuple[int, bytes]]
    payload: bytes


def decode_message(data: bytes) -> RawMessage:
    """Parse a well-formed CoAP message (raises ValueError on a malformed one)."""
    if len(data) < 4 or data[0] >> 6 != 1:
        raise ValueError(f"not a CoAP message: {data!r}")
    tkl = data[0] & 0xF
    pos = 4 + tkl
    if tkl > 8 or pos > len(data):
        raise ValueError(f"bad token length in {data!r}")
    options: list[tuple[int, bytes]] = []
    number = 0
    payload = b""
    while pos < len(data):
        if data[pos] == 0xFF:
            payload = data[pos + 1 :]
            break
        delta, length = data[pos] >> 4, data[pos] & 0xF
        pos += 1
        values = []
        for nibble in (delta, length):
            if nibble == 13:
                values.append(data[pos] + 13)
                pos += 1
            elif nibble == 14:
                values.append(int.from_bytes(data[pos : pos + 2], "big") + 269)
                pos += 2
            elif nibble == 15:
                raise ValueError(f"reserved option nibble in {data!r}")
            else:
                values.append(nibble)
        number += values[0]
        options.append((number, data[pos : pos + values[1]]))
        pos += values[1]
    return RawMessage(
        type=(data[0] >> 4) & 0x3,
        code=data[1],
        mid=int.from_bytes(data[2:4], "big"),
        token=data[4 : 4 + tkl],
        options=options,
        payload=payload,
    )


def raw_coap_request(
    port: int,
    code: int,
    path: str = "",
    payload: bytes = b"",
    *,
    host: str = "127.0.0.1",
    options: list[tuple[int, bytes]] | None = None,
    timeout: float = 5.0,
) -> RawMessage:
    """One CON request over a plain socket; retransmits every second; returns the answer.

    Handles a piggybacked answer and a separate one (empty ACK, then CON which
    is acknowledged). Raises TimeoutError when nothing matching came in time.
    """
    mid = int.from_bytes(os.urandom(2), "big")
    token = os.urandom(4)
    opts = [(11, segment.encode()) for segment in path.split("/") if segment]
    opts += options or []
    datagram = encode_message(0, code, mid, token, opts, payload)
    with socket.socket(family(host), socket.SOCK_DGRAM) as s:
        return exchange(s, datagram, (host, port), timeout)


def exchange(
    s: socket.socket, datagram: bytes, address: tuple[str, int], timeout: float = 5.0
) -> RawMessage:
    """Send the CON request ``datagram`` from ``s``, again every second, until its answer
    (piggybacked, or separate and then acknowledged) comes; other datagrams are skipped.
    Raises TimeoutError when nothing matching came in time, ConnectionResetError on RST."""
    request = decode_message(datagram)
    deadline = time.monotonic() + timeout
    s.sendto(datagram, address)
    next_send = time.monotonic() + 1.0
    while True:
        now = time.monotonic()
        if now >= deadline:
            raise TimeoutError(f"no answer from {address[0]}:{address[1]} within {timeout} s")
        s.settimeout(max(0.01, min(deadline, next_send) - now))
        try:
            data, source = s.recvfrom(65535)
        except socket.timeout:
            if time.monotonic() >= next_send:
                s.sendto(datagram, address)  # lost, or in a full buffer: again
                next_send = time.monotonic() + 1.0
            continue
        try:
            answer = decode_message(data)
        except ValueError:
            continue
        if answer.type == 0:  # separate response (CON): acknowledge it
            s.sendto(encode_message(2, 0, answer.mid), source)
        if answer.token == request.token and answer.code != 0:
            return answer
        if answer.mid == request.mid and answer.type == 3:
            raise ConnectionResetError(f"{address[0]}:{address[1]} answered with RST")
