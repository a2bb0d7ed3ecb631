"""Requests a careless or hostile client would send, built from the contracts' descriptors.

Any request message of the service can be generated: every field may be
left out or set to an ordinary value, an extreme one (NaN, 2^63 - 1, a
Timestamp past year 9999, an enum number no version knows), a very long or
odd string, or a list of many. The same request can be sent over gRPC as
bytes, or over REST as the JSON Envoy transcodes, with typos, wrong types and
garbage mixed in.
"""

from __future__ import annotations

import json
import random
import string
from typing import Any, Final
from urllib.parse import urlencode

from google.protobuf import descriptor, json_format, message, message_factory
from google.protobuf.descriptor import FieldDescriptor

from bench.fuzz.bus_inputs import EXTREME_DOUBLES, EXTREME_NANOS, EXTREME_SECONDS

# Strings the engine knows (so some requests reach deep), and odd ones.
_ORDINARY_STRINGS: Final = (
    "trader-1",
    "acme",
    "ops-1",
    "rival",
    "EURUSD",
    "USDJPY",
    "XAUUSD",
    "default",
    "min_confidence_threshold",
    "strategy.min_confidence_threshold",
    "TRADING_STATE_HALTED",
)
_ODD_STRINGS: Final = (
    "",
    " ",
    "x" * 129,
    "x" * 4_097,
    "\x00",
    "\u00e9\U0001f600",
    "'; DROP TABLE signals; --",
    "../../etc/passwd",
    "%00",
    "9" * 40,
    "-1",
    "NaN",
)
_INT_RANGES: Final = {
    FieldDescriptor.TYPE_INT32: (-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_SINT32: (-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_SFIXED32: (-(2**31), 2**31 - 1),
    FieldDescriptor.TYPE_INT64: (-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_SINT64: (-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_SFIXED64: (-(2**63), 2**63 - 1),
    FieldDescriptor.TYPE_UINT32: (0, 2**32 - 1),
    FieldDescriptor.TYPE_FIXED32: (0, 2**32 - 1),
    FieldDescriptor.TYPE_UINT64: (0, 2**64 - 1),
    FieldDescriptor.TYPE_FIXED64: (0, 2**64 - 1),
}
_MAX_DEPTH: Final = 4


def random_message(
    message_type: descriptor.Descriptor, rng: random.Random, depth: int = 0
) -> message.Message:
    """A message of `message_type` with a random choice of its fields set, some oddly."""
    instance = _new(message_type)
    full_name = message_type.full_name
    if full_name == "google.protobuf.Timestamp":
        instance.seconds = rng.choice((*EXTREME_SECONDS, 1_800_000_000, rng.randrange(2**40)))  # type: ignore[attr-defined]
        instance.nanos = rng.choice((0, 0, *EXTREME_NANOS))  # type: ignore[attr-defined]
        return instance
    if full_name == "google.protobuf.Duration":
        instance.seconds = rng.choice((-1, 0, 60, 900, 86_400 * 400, 315_576_000_001, 2**63 - 1))  # type: ignore[attr-defined]
        instance.nanos = rng.choice((0, 0, *EXTREME_NANOS))  # type: ignore[attr-defined]
        return instance
    if full_name == "google.protobuf.FieldMask":
        instance.paths.extend(rng.choice(_field_names(rng)) for _ in range(rng.randint(0, 3)))  # type: ignore[attr-defined]
        return instance
    chosen_oneofs: set[str] = set()
    for field in message_type.fields:
        if rng.random() < 0.45:
            continue
        oneof = field.containing_oneof
        if oneof is not None:
            if oneof.name in chosen_oneofs:
                continue
            chosen_oneofs.add(oneof.name)
        _set_field(instance, field, rng, depth)
    return instance


def _new(message_type: descriptor.Descriptor) -> message.Message:
    return message_factory.GetMessageClass(message_type)()


def _set_field(
    instance: message.Message, field: FieldDescriptor, rng: random.Random, depth: int
) -> None:
    nested = field.message_type
    if field.is_repeated:
        count = rng.choice((0, 1, 1, 2, 3, rng.choice((50, 600))))
        if nested is not None:
            if depth >= _MAX_DEPTH or nested.GetOptions().map_entry:
                return
            container = getattr(instance, field.name)
            for _ in range(count if depth < 2 else min(count, 3)):
                container.add().CopyFrom(random_message(nested, rng, depth + 1))
        else:
            getattr(instance, field.name).extend(_scalar(field, rng) for _ in range(count))
        return
    if nested is not None:
        if depth < _MAX_DEPTH:
            getattr(instance, field.name).CopyFrom(random_message(nested, rng, depth + 1))
        return
    setattr(instance, field.name, _scalar(field, rng))


def _scalar(field: FieldDescriptor, rng: random.Random) -> Any:
    kind = field.type
    if kind in (FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT):
        value = rng.choice((*EXTREME_DOUBLES, rng.uniform(0, 2), rng.uniform(-100, 100)))
        return value if kind == FieldDescriptor.TYPE_DOUBLE or abs(value) < 3e38 else 1.0
    if kind in _INT_RANGES:
        low, high = _INT_RANGES[kind]
        return rng.choice((low, high, 0, 1, rng.randint(low, high), rng.randint(0, 100)))
    if kind == FieldDescriptor.TYPE_BOOL:
        return rng.random() < 0.5
    if field.enum_type is not None:
        known = [value.number for value in field.enum_type.values]
        return rng.choice((*known, *known, 99, -1, 2**31 - 1))
    if kind == FieldDescriptor.TYPE_STRING:
        return _string(rng)
    if kind == FieldDescriptor.TYPE_BYTES:
        return rng.randbytes(rng.choice((0, 8, 300)))
    raise ValueError(f"no generator for field type {kind} ({field.full_name})")


def _string(rng: random.Random) -> str:
    roll = rng.random()
    if roll < 0.45:
        return rng.choice(_ORDINARY_STRINGS)
    if roll < 0.85:
        return rng.choice(_ODD_STRINGS)
    return "".join(rng.choice(string.printable) for _ in range(rng.randint(1, 40)))


def _field_names(rng: random.Random) -> list[str]:
    return [
        "min_confidence_threshold",
        "minConfidenceThreshold",
        "min_confidence_treshold",
        "max_position_count",
        "instruments",
        "",
        "*",
        "strategy.x",
        rng.choice(_ODD_STRINGS),
    ]


def rest_body(request: message.Message, rng: random.Random) -> bytes:
    """The request as the JSON a REST client would post, often mangled."""
    body: Any = to_json(request, proto_names=rng.random() < 0.5)
    roll = rng.random()
    if roll < 0.08:
        return rng.choice((b"", b"{", b"null", b"[]", b"\xff\xfe", b'"text"', b"1e999"))
    if roll < 0.3 and isinstance(body, dict):
        _mangle(body, rng)
    return json.dumps(body, allow_nan=True).encode()


def _mangle(body: dict[str, Any], rng: random.Random) -> None:
    """A typo'd field, a value of the wrong type, a null, or a number too large for JSON."""
    how = rng.choice(("typo", "type", "null", "huge", "nested"))
    key = rng.choice(list(body)) if body else "field"
    if how == "typo":
        body[key + "x"] = body.pop(key, 1)
    elif how == "type":
        body[key] = rng.choice(([1, 2], {"a": 1}, "text", True, 1.5))
    elif how == "null":
        body[key] = None
    elif how == "huge":
        body[key] = rng.choice((10**30, -(10**30), "1e400", "NaN", "Infinity"))
    else:
        body[key] = {"inner": body.copy()}


def query_string(request: message.Message, rng: random.Random) -> str:
    """Some of the request's scalar fields as `?a=b&c.d=e`, with odd ones among them."""
    flat = _flatten(to_json(request, proto_names=True))
    pairs = [(name, str(value)) for name, value in flat if not isinstance(value, (dict, list))]
    if rng.random() < 0.3:
        pairs.append((rng.choice(("unknown", "pageSize", "page_size", "")), _string(rng)))
    return urlencode(pairs)


def _flatten(value: Any, prefix: str = "") -> list[tuple[str, Any]]:
    if isinstance(value, dict):
        items: list[tuple[str, Any]] = []
        for key, inner in value.items():
            items += _flatten(inner, f"{prefix}{key}" if not prefix else f"{prefix}.{key}")
        return items
    if isinstance(value, list):
        return [(prefix, item) for item in value if not isinstance(item, (dict, list))]
    return [(prefix, value)]


# What a client writes for a time or a span protobuf's JSON cannot hold.
_OUT_OF_RANGE_JSON: Final = {
    "google.protobuf.Timestamp": "10000-01-01T00:00:00Z",
    "google.protobuf.Duration": "315576000001s",
}


def to_json(request: message.Message, proto_names: bool) -> dict[str, Any]:
    """The request as JSON, out-of-range Timestamps and Durations written as a client would
    write them (json_format refuses to)."""
    odd: dict[str, str] = {}
    copy = type(request)()
    copy.CopyFrom(request)
    for field, value in copy.ListFields():
        nested = field.message_type
        if nested is None or field.is_repeated or nested.full_name not in _OUT_OF_RANGE_JSON:
            continue
        try:
            json_format.MessageToDict(value)
        except (json_format.SerializeToJsonError, ValueError):
            odd[field.name if proto_names else field.json_name] = _OUT_OF_RANGE_JSON[
                nested.full_name
            ]
            copy.ClearField(field.name)
    try:
        body = json_format.MessageToDict(copy, preserving_proto_field_name=proto_names)
    except (json_format.SerializeToJsonError, ValueError):
        # Deeper in: leave the request out rather than guess.
        body = {}
    return {**body, **odd}
