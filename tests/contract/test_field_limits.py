"""Every free-text and repeated field a caller sends the engine is bounded in the contract, and
its comment says so: the bound a user reads is the bound the engine enforces."""

from __future__ import annotations

import re

from google.protobuf import descriptor

from tests.support import ROOT
from tradeflow.common.v1 import limits_pb2
from tradeflow.ml.v1 import prediction_pb2
from tradeflow.trading.v1 import trading_engine_service_pb2 as service_pb2

SERVICE = service_pb2.DESCRIPTOR.services_by_name["TradingEngineService"]
# Bounded by the engine on every transport, the bus included (core/validation.py).
ENGINE_VALIDATED = prediction_pb2.MLPredictionBatch.DESCRIPTOR.full_name
FIELD_MASK = "google.protobuf.FieldMask"


def _request_fields() -> list[tuple[str, descriptor.FieldDescriptor]]:
    """(path, field) of every field reachable from the service's request messages."""
    found: list[tuple[str, descriptor.FieldDescriptor]] = []
    seen: set[str] = set()

    def walk(message: descriptor.Descriptor, prefix: str) -> None:
        if message.full_name in seen or message.full_name == ENGINE_VALIDATED:
            return
        seen.add(message.full_name)
        for field in message.fields:
            found.append((f"{prefix}{field.name}", field))
            inner = field.message_type
            if inner is not None and inner.full_name.startswith("tradeflow."):
                walk(inner, f"{prefix}{field.name}.")

    for method in SERVICE.methods:
        walk(method.input_type, f"{method.input_type.name}.")
    return found


def _limits(field: descriptor.FieldDescriptor) -> limits_pb2.FieldLimits:
    return field.GetOptions().Extensions[limits_pb2.limits]


def _needs_bound(field: descriptor.FieldDescriptor) -> bool:
    text = field.type in (field.TYPE_STRING, field.TYPE_BYTES)
    mask = field.message_type is not None and field.message_type.full_name == FIELD_MASK
    return text or mask or (field.is_repeated and field.message_type is None)


def _comment(field: descriptor.FieldDescriptor) -> str:
    """The comment above the field's declaration in its .proto file."""
    message = field.containing_type
    assert message is not None
    source = (ROOT / "proto" / message.file.name).read_text()
    block = re.search(rf"^message {message.name} \{{\n(.*?)^\}}", source, re.S | re.M)
    assert block is not None, field.full_name
    match = re.search(rf"((?:\s*//[^\n]*\n)+)\s*[\w. ]+ {field.name} = \d+", block.group(1))
    assert match is not None, field.full_name
    return " ".join(line.strip().removeprefix("//").strip() for line in match.group(1).split("\n"))


def test_every_text_list_and_mask_a_caller_sends_is_bounded() -> None:
    unbounded = [
        path
        for path, field in _request_fields()
        if _needs_bound(field) and not (_limits(field).max_chars or _limits(field).max_items)
    ]

    assert unbounded == []


def test_each_bound_is_stated_in_the_fields_comment() -> None:
    bounded = {field for _, field in _request_fields() if _limits(field).ByteSize()}
    assert len(bounded) > 40

    for field in bounded:
        limits, comment = _limits(field), _comment(field)
        for bound in (limits.max_chars, limits.max_items):
            if bound:
                assert f"at most {bound:,}" in comment, (field.full_name, comment)
        if limits.max_chars:
            assert "characters" in comment, field.full_name
