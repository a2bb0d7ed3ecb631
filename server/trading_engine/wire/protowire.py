"""Protocol-buffer wire format primitives for the hot-path codecs.

Only what the prediction and signal messages use: varints, 64-bit doubles,
length-delimited strings and messages. Encoders follow proto3 canonical form
as upb writes it: fields in number order, scalars equal to their default
(0, empty string) left out, except that -0.0 is written (its bits are not
zero), and fields with explicit presence written whenever present.
"""

from __future__ import annotations

import struct
from typing import Final

WIRE_VARINT: Final = 0
WIRE_FIXED64: Final = 1
WIRE_LENGTH: Final = 2
WIRE_FIXED32: Final = 5

_UINT64: Final = 1 << 64
_INT64_LIMIT: Final = 1 << 63

_pack_double = struct.Struct("<d").pack
_unpack_double = struct.Struct("<d").unpack_from

# Varint encodings of 0..16383 (every length and enum value the signals use), built once.
_SMALL_VARINTS: Final = [
    bytes((n,)) if n < 0x80 else bytes(((n & 0x7F) | 0x80, n >> 7)) for n in range(1 << 14)
]


class DecodeError(ValueError):
    """The bytes are not a valid encoding of the expected message."""


# -- encoding ---------------------------------------------------------------


def varint(value: int) -> bytes:
    """Base-128 varint; negative values as their 64-bit two's complement (10 bytes)."""
    if 0 <= value < 16384:
        return _SMALL_VARINTS[value]
    if value < 0:
        value += _UINT64
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def tag(field: int, wire_type: int) -> bytes:
    return varint(field << 3 | wire_type)


def length_delimited(field_tag: bytes, payload: bytes) -> bytes:
    """A string, bytes or message field: tag, length, payload."""
    return field_tag + varint(len(payload)) + payload


def string_field(field_tag: bytes, value: str) -> bytes:
    """A string field, or nothing for the empty string."""
    if not value:
        return b""
    encoded = value.encode()
    return field_tag + varint(len(encoded)) + encoded


def double_field(field_tag: bytes, value: float) -> bytes:
    """A double field, or nothing for +0.0."""
    if value == 0.0 and _pack_double(value) == _POSITIVE_ZERO:
        return b""
    return field_tag + _pack_double(value)


def present_double_field(field_tag: bytes, value: float) -> bytes:
    """A double field with explicit presence: written even when zero."""
    return field_tag + _pack_double(value)


def varint_field(field_tag: bytes, value: int) -> bytes:
    """An integer or enum field, or nothing for 0."""
    if value == 0:
        return b""
    return field_tag + varint(value)


def bool_field(field_tag: bytes, value: bool) -> bytes:
    return field_tag + b"\x01" if value else b""


def timestamp_message(nanoseconds: int) -> bytes:
    """The payload of a google.protobuf.Timestamp: nanos in [0, 1e9), seconds floored."""
    seconds, nanos = divmod(nanoseconds, 1_000_000_000)
    return varint_field(b"\x08", seconds) + varint_field(b"\x10", nanos)


def duration_message(nanoseconds: int) -> bytes:
    """The payload of a google.protobuf.Duration: seconds and nanos share the sign."""
    seconds, nanos = divmod(abs(nanoseconds), 1_000_000_000)
    if nanoseconds < 0:
        seconds, nanos = -seconds, -nanos
    return varint_field(b"\x08", seconds) + varint_field(b"\x10", nanos)


_POSITIVE_ZERO: Final = _pack_double(0.0)


# -- decoding ---------------------------------------------------------------


def read_varint(data: bytes, position: int, end: int) -> tuple[int, int]:
    """(unsigned value, next position)."""
    result = 0
    shift = 0
    while True:
        if position >= end or shift > 63:
            raise DecodeError("truncated or overlong varint")
        byte = data[position]
        position += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, position
        shift += 7


def signed64(value: int) -> int:
    """An unsigned 64-bit varint value read as a signed int64 or int32."""
    return value - _UINT64 if value >= _INT64_LIMIT else value


def read_double(data: bytes, position: int, end: int) -> tuple[float, int]:
    if position + 8 > end:
        raise DecodeError("truncated double")
    value: float = _unpack_double(data, position)[0]
    return value, position + 8


def read_length(data: bytes, position: int, end: int) -> tuple[int, int]:
    """(end of the length-delimited payload, its start)."""
    length, position = read_varint(data, position, end)
    stop = position + length
    if stop > end:
        raise DecodeError("length runs past the end of the message")
    return stop, position


def read_string(data: bytes, position: int, end: int) -> tuple[str, int]:
    stop, position = read_length(data, position, end)
    try:
        return data[position:stop].decode(), stop
    except UnicodeDecodeError as error:
        raise DecodeError(f"string field is not valid UTF-8: {error.reason}") from None


def skip_field(data: bytes, position: int, end: int, wire_type: int) -> int:
    """The position after a field the decoder does not read (an unknown, newer field)."""
    if wire_type == WIRE_VARINT:
        return read_varint(data, position, end)[1]
    if wire_type == WIRE_FIXED64:
        position += 8
    elif wire_type == WIRE_LENGTH:
        return read_length(data, position, end)[0]
    elif wire_type == WIRE_FIXED32:
        position += 4
    else:
        raise DecodeError(f"unsupported wire type {wire_type}")
    if position > end:
        raise DecodeError("truncated field")
    return position


def read_time(data: bytes, position: int, end: int) -> int:
    """A google.protobuf.Timestamp or Duration payload spanning [position, end), in nanoseconds."""
    seconds = nanos = 0
    while position < end:
        key, position = read_varint(data, position, end)
        field, wire_type = key >> 3, key & 7
        if wire_type != WIRE_VARINT:
            position = skip_field(data, position, end, wire_type)
            continue
        value, position = read_varint(data, position, end)
        if field == 1:
            seconds = signed64(value)
        elif field == 2:
            nanos = signed64(value)
    return seconds * 1_000_000_000 + nanos
