"""Timestamps from callers, refused with the field named when the engine cannot hold them.

Every instant the engine keeps is nanoseconds since the Unix epoch in a signed
64-bit integer, as the stores hold it: 1677-09-21T00:12:43Z to
2262-04-11T23:47:16Z. A google.protobuf.Timestamp reaches further (years 1
to 9999), and a careless or hostile sender can put anything in one (nanos
outside [0, 1e9), seconds of any 64-bit value). Such a field is a violation
naming it, never an exception from the runtime's ToNanoseconds or an integer
overflow in a database.
"""

from __future__ import annotations

from typing import Final

from google.protobuf import timestamp_pb2

from trading_engine.clock import NANOS_PER_SECOND
from trading_engine.errors import FieldViolation

FIRST_NS: Final = -(2**63)
LAST_NS: Final = 2**63 - 1
_RANGE: Final = "between 1677-09-21T00:12:43Z and 2262-04-11T23:47:16Z"


def nanoseconds(
    stamp: timestamp_pb2.Timestamp, field: str, violations: list[FieldViolation]
) -> int:
    """`stamp` in nanoseconds since the epoch, or 0 with a violation naming `field`."""
    if not 0 <= stamp.nanos < NANOS_PER_SECOND:
        violations.append(
            FieldViolation(field, f"nanos must be in [0, 999999999]; got {stamp.nanos}")
        )
        return 0
    total = stamp.seconds * NANOS_PER_SECOND + stamp.nanos
    if not FIRST_NS <= total <= LAST_NS:
        violations.append(
            FieldViolation(field, f"must lie {_RANGE}; got {stamp.seconds} seconds since 1970")
        )
        return 0
    return total
