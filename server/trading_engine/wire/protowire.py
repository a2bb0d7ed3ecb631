"""Protocol-buffer wire primitives for the batch-level fields written in Python.

Per-signal fields and all decoding are in the C codec (_fastwire.c). Encoders
follow proto3 canonical form as upb writes it: a scalar equal to its default
(0, empty string) is left out, a present message is written even when empty.
"""

from __future__ import annotations

from typing import Final

from trading_engine.wire._fastwire import DecodeError

__all__ = [
    "DecodeError",
    "length_delimited",
    "string_field",
    "timestamp_message",
    "varint",
    "varint_field",
]

_UINT64: Final = 1 << 64
# Varint encodings of 0..16383 (every length and count a batch uses), built once.
_SMALL_VARINTS: Final = [
    bytes((n,)) if n < 0x80 else bytes(((n & 0x7F) | 0x80, n >> 7)) for n in range(1 << 14)
]


def varint(value: int) -> bytes:
    """Base-128 varint; negative values as their 64-bit two's complement (10 bytes)."""
    if 0 <= value < 16384:
        return _SMALL_VARINTS[value]
    if value < 0:
        value += _UINT64
    # A list, not a bytearray: compiled, appending to a list is a native call.
    groups: list[int] = []
    while value >= 0x80:
        groups.append((value & 0x7F) | 0x80)
        value >>= 7
    groups.append(value)
    return bytes(groups)


def length_delimited(field_tag: bytes, payload: bytes) -> bytes:
    """A string, bytes or message field: tag, length, payload."""
    return field_tag + varint(len(payload)) + payload


def string_field(field_tag: bytes, value: str) -> bytes:
    """A string field, or nothing for the empty string."""
    if not value:
        return b""
    encoded = value.encode()
    return field_tag + varint(len(encoded)) + encoded


def varint_field(field_tag: bytes, value: int) -> bytes:
    """An integer or enum field, or nothing for 0."""
    if value == 0:
        return b""
    return field_tag + varint(value)


def timestamp_message(nanoseconds: int) -> bytes:
    """The payload of a google.protobuf.Timestamp: nanos in [0, 1e9), seconds floored."""
    seconds, nanos = divmod(nanoseconds, 1_000_000_000)
    return varint_field(b"\x08", seconds) + varint_field(b"\x10", nanos)
