"""Protocol-buffer wire primitives for the batch-level fields written in Python.

Per-signal fields and the decoding of batches are in the C codec
(_fastwire.c). Encoders follow proto3 canonical form as upb writes it: a
scalar equal to its default (0, empty string) is left out, a present message
is written even when empty. `embedded_message` reads one message field out of
a request, so a batch can reach the C codec as the bytes it arrived in.
"""

from __future__ import annotations

from typing import Final

from trading_engine.wire._fastwire import DecodeError

__all__ = [
    "DecodeError",
    "embedded_message",
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


# The largest field number protobuf allows (2^29 - 1).
_MAX_FIELD_NUMBER: Final = (1 << 29) - 1


def embedded_message(data: bytes, number: int) -> bytes | None:
    """The bytes of message field `number` of the serialized message `data`, None when the
    field is absent. A field sent more than once is their concatenation (protobuf merges the
    occurrences of a message field). Raises DecodeError where upb does, and on groups (as the
    C codec): a truncated field, a key or length beyond 5 bytes or 32 bits, field number 0 or
    above 2^29 - 1, an unknown wire type, or field `number` with another wire type."""
    found: list[bytes] | None = None
    at = 0
    end = len(data)
    while at < end:
        key, at = _read_varint(data, at, _MAX_KEY_BYTES)
        field, wire_type = key >> 3, key & 7
        if field == 0 or field > _MAX_FIELD_NUMBER:
            raise DecodeError(f"invalid field number {field}")
        if wire_type == 2:
            length, at = _read_varint(data, at, _MAX_KEY_BYTES)
            if length > end - at:
                raise DecodeError(f"field {field} runs past the end of the message")
            if field == number:
                if found is None:
                    found = []
                found.append(data[at : at + length])
            at += length
            continue
        if field == number:
            raise DecodeError(f"field {number} has wire type {wire_type}, not a message's")
        if wire_type == 0:
            _, at = _read_varint(data, at, _MAX_VARINT_BYTES)
        elif wire_type == 1:
            at += 8
        elif wire_type == 5:
            at += 4
        else:
            raise DecodeError(f"unsupported wire type {wire_type}")
        if at > end:
            raise DecodeError(f"field {field} runs past the end of the message")
    if found is None:
        return None
    return found[0] if len(found) == 1 else b"".join(found)


# A key and a length are 32-bit: at most 5 bytes on the wire; any varint at most 10.
_MAX_KEY_BYTES: Final = 5
_MAX_VARINT_BYTES: Final = 10


def _read_varint(data: bytes, at: int, max_bytes: int) -> tuple[int, int]:
    """The varint at `at` and the offset after it; DecodeError beyond `max_bytes` bytes, or for
    a 5-byte one (a key, a length) beyond 32 bits."""
    value = 0
    shift = 0
    end = len(data)
    limit = at + max_bytes
    while True:
        if at >= end:
            raise DecodeError("truncated varint")
        if at >= limit:
            raise DecodeError(f"varint longer than {max_bytes} bytes")
        byte = data[at]
        at += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            if max_bytes == _MAX_KEY_BYTES and value >> 32:
                raise DecodeError("key or length beyond 32 bits")
            return value, at
        shift += 7
