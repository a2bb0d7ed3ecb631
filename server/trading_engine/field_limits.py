"""Size bounds of request fields, as the contracts declare them, checked in one place.

A bounded field carries the option `(tradeflow.common.v1.limits)` (max_chars, max_items) and
states the bound in its comment. `violations` reads the options of a message type once and
checks a message against them: strings and each element of a repeated string by characters
(Unicode code points, which is what Python's len counts, not bytes), repeated fields by
elements, a FieldMask by its paths, message fields recursively. Prediction batches carry no
options: the engine bounds them on every transport (core/validation.py).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Final, cast

from google.protobuf import descriptor, field_mask_pb2, message

from tradeflow.common.v1 import limits_pb2
from trading_engine import errors

_FIELD_MASK: Final = field_mask_pb2.FieldMask.DESCRIPTOR.full_name


@dataclasses.dataclass(frozen=True, slots=True)
class _Bound:
    name: str
    max_chars: int
    max_items: int
    repeated: bool
    # A FieldMask field: its bounds apply to its paths.
    mask: bool


@dataclasses.dataclass(frozen=True, slots=True)
class _Plan:
    """What to check in messages of one type: its bounded fields, and the message fields
    whose types have bounded fields somewhere below them."""

    bounds: list[_Bound]
    nested: list[tuple[str, bool, _Plan]]

    @property
    def empty(self) -> bool:
        return not self.bounds and not self.nested


_plans: dict[str, _Plan] = {}


def bounded(message_type: descriptor.Descriptor) -> bool:
    """Whether messages of this type have any bounded field (else checking them is a no-op)."""
    return not _plan(message_type).empty


def violations(request: message.Message, prefix: str = "") -> list[errors.FieldViolation]:
    """Each field of `request` beyond its bound, named by its path from `prefix`."""
    found: list[errors.FieldViolation] = []
    _check(request, _plan(cast(descriptor.Descriptor, request.DESCRIPTOR)), prefix, found)
    return found


def check(request: message.Message) -> None:
    """Raise INVALID_ARGUMENT naming every field of `request` beyond its bound."""
    found = violations(request)
    if found:
        raise errors.invalid("the request exceeds the contract's size limits", found)


def _plan(message_type: descriptor.Descriptor) -> _Plan:
    name = message_type.full_name
    plan = _plans.get(name)
    if plan is None:
        # Registered before its fields are read, so a recursive type ends the recursion.
        plan = _plans[name] = _Plan([], [])
        for field in message_type.fields:
            limits = field.GetOptions().Extensions[limits_pb2.limits]
            inner = field.message_type
            mask = inner is not None and inner.full_name == _FIELD_MASK
            if limits.max_chars or limits.max_items:
                plan.bounds.append(
                    _Bound(field.name, limits.max_chars, limits.max_items, field.is_repeated, mask)
                )
            elif inner is not None and not mask and not inner.GetOptions().map_entry:
                below = _plan(inner)
                if not below.empty:
                    plan.nested.append((field.name, field.is_repeated, below))
    return plan


def _check(
    request: message.Message, plan: _Plan, prefix: str, found: list[errors.FieldViolation]
) -> None:
    for bound in plan.bounds:
        path = prefix + bound.name
        if bound.mask:
            if request.HasField(bound.name):
                _check_items(getattr(request, bound.name).paths, bound, path, "paths", found)
        elif bound.repeated:
            _check_items(getattr(request, bound.name), bound, path, "entries", found)
        else:
            _check_chars(getattr(request, bound.name), bound.max_chars, path, found)
    for name, repeated, below in plan.nested:
        if repeated:
            for index, element in enumerate(getattr(request, name)):
                _check(element, below, f"{prefix}{name}[{index}].", found)
        elif request.HasField(name):
            _check(getattr(request, name), below, f"{prefix}{name}.", found)


def _check_items(
    values: Sequence[object],
    bound: _Bound,
    path: str,
    noun: str,
    found: list[errors.FieldViolation],
) -> None:
    if bound.max_items and len(values) > bound.max_items:
        found.append(
            errors.FieldViolation(path, f"at most {bound.max_items} {noun}, got {len(values):,}")
        )
        # Each element of a list already refused need not be named too.
        return
    if bound.max_chars:
        for index, value in enumerate(values):
            if isinstance(value, str):
                _check_chars(value, bound.max_chars, f"{path}[{index}]", found)


def _check_chars(
    value: object, max_chars: int, path: str, found: list[errors.FieldViolation]
) -> None:
    if isinstance(value, str) and len(value) > max_chars:
        found.append(
            errors.FieldViolation(
                path,
                f"at most {max_chars:,} characters (Unicode code points), got {len(value):,}",
            )
        )
