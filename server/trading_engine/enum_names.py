"""Enum values as people read them: in a terminal, in metric labels."""

from __future__ import annotations

from google.protobuf.descriptor import EnumDescriptor


def short_name(enum: EnumDescriptor, value: int) -> str:
    """The value's name without the enum's prefix: SIGNAL_TYPE_BUY -> BUY; unknown: the number."""
    known = enum.values_by_number.get(value)
    if known is None:
        return str(value)
    prefix = enum.values[0].name.removesuffix("UNSPECIFIED")
    return known.name.removeprefix(prefix)
