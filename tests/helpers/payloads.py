"""Test bodies."""

from __future__ import annotations


def binary_payload(size: int = 500) -> bytes:
    """Deterministic bytes with NULs and every byte value."""
    pattern = bytes(range(256))
    return (b"\x00\x01\x00" + pattern * (size // 256 + 1))[:size]
