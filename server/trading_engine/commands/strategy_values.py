"""Strategy fields as an operator types and reads them: `min_confidence_threshold=0.75`.

A change is written FIELD=VALUE, the field a StrategyConfig path
(`features.pattern_trading_enabled` for a feature flag), the value as the
field's type reads it: a number, true/false, an enum value without its prefix
in any case (`conservative`), a duration in seconds or with a unit (`20s`,
`5m`, `1h`), a comma-separated list of symbols. The engine validates the
values; only what cannot be a value of the field at all is refused here.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Final

from google.protobuf import descriptor, json_format

from tradeflow.trading.v1 import strategy_pb2
from trading_engine.config import boolean
from trading_engine.core.strategy_layers import FIELD_PATHS, parse_mask, present_paths
from trading_engine.enum_names import short_name

_DURATION: Final = re.compile(r"(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?", re.IGNORECASE)
_SECONDS_PER_UNIT: Final = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86_400}
_INTEGER_TYPES: Final = (
    descriptor.FieldDescriptor.TYPE_INT32,
    descriptor.FieldDescriptor.TYPE_INT64,
    descriptor.FieldDescriptor.TYPE_UINT32,
    descriptor.FieldDescriptor.TYPE_UINT64,
)
_REAL_TYPES: Final = (descriptor.FieldDescriptor.TYPE_DOUBLE, descriptor.FieldDescriptor.TYPE_FLOAT)


class ChangeError(ValueError):
    """A FIELD=VALUE that names no field or holds no value of its type."""


def parse_changes(
    assignments: Sequence[str],
) -> tuple[strategy_pb2.StrategyConfig, tuple[str, ...]]:
    """The config holding the values of `assignments`, and the paths they set in FIELD_PATHS
    order."""
    values: dict[str, Any] = {}
    named = []
    for assignment in assignments:
        path, equals, text = assignment.partition("=")
        path = path.strip()
        if not equals:
            raise ChangeError(
                f"{assignment!r} is not FIELD=VALUE, e.g. min_confidence_threshold=0.75"
            )
        _, violations = parse_mask([path])
        if violations:
            raise ChangeError(violations[0].description)
        name, _, flag = path.partition(".")
        field = strategy_pb2.StrategyConfig.DESCRIPTOR.fields_by_name[name]
        if flag:
            assert field.message_type is not None  # parse_mask knows only features.* paths
            flag_field = field.message_type.fields_by_name[flag]
            values.setdefault(name, {})[flag] = _value(path, flag_field, text)
        elif name in FIELD_PATHS:
            values[name] = _value(path, field, text)
        else:
            raise ChangeError(f"{path} is a group of fields: set each, e.g. {name}.{_first(field)}")
        named.append(path)
    config = strategy_pb2.StrategyConfig()
    json_format.ParseDict(values, config, ignore_unknown_fields=False)
    return config, tuple(path for path in FIELD_PATHS if path in named)


def changes_from_file(path: Path) -> tuple[strategy_pb2.StrategyConfig, tuple[str, ...]]:
    """A StrategyConfig in JSON holding the fields to change (as `replay --strategy` reads)."""
    try:
        config = json_format.Parse(path.read_text(encoding="utf-8"), strategy_pb2.StrategyConfig())
    except json_format.ParseError as error:
        raise ChangeError(f"{path}: not a StrategyConfig in JSON: {error}") from None
    except OSError as error:
        raise ChangeError(f"cannot read {path}: {error}") from None
    return config, present_paths(config)


def _first(field: descriptor.FieldDescriptor) -> str:
    assert field.message_type is not None  # only message fields group others
    return str(field.message_type.fields[0].name)


def _value(path: str, field: descriptor.FieldDescriptor, text: str) -> Any:
    """The JSON value of `text` for `field` (json_format then builds the message)."""
    text = text.strip()
    try:
        if field.is_repeated:
            # Symbols: any case, comma-separated; empty means all the tier allows.
            return [item.strip().upper() for item in text.split(",") if item.strip()]
        if field.type in _REAL_TYPES:
            number = float(text)
            if not math.isfinite(number):
                raise ValueError("not a finite number")
            return number
        if field.type in _INTEGER_TYPES:
            return int(text)
        if field.type == descriptor.FieldDescriptor.TYPE_BOOL:
            return boolean(text)
        if field.enum_type is not None:
            return _enum_value(field.enum_type, text)
        if field.message_type is not None and field.message_type.full_name.endswith("Duration"):
            return f"{_seconds(text):g}s"
    except ValueError as error:
        raise ChangeError(f"{path}={text}: {error}") from None
    raise ChangeError(f"{path} cannot be set from the command line: use --file")


def _enum_value(enum: descriptor.EnumDescriptor, text: str) -> str:
    prefix = enum.values[0].name.removesuffix("UNSPECIFIED")
    name = text.upper()
    if not name.startswith(prefix):
        name = prefix + name
    if name not in enum.values_by_name or name.endswith("_UNSPECIFIED"):
        choices = ", ".join(value.name.removeprefix(prefix) for value in enum.values[1:])
        raise ValueError(f"not one of {choices}")
    return name


def _seconds(text: str) -> float:
    found = _DURATION.fullmatch(text)
    if found is None:
        raise ValueError("not a duration: seconds, or a number with ms, s, m, h or d")
    number, unit = found.groups()
    return float(number) * _SECONDS_PER_UNIT[(unit or "s").lower()]


def shown(config: strategy_pb2.StrategyConfig, path: str) -> str:
    """A field's value as the commands print it: enums without prefix, durations in seconds."""
    name, _, flag = path.partition(".")
    message: Any = getattr(config, name) if flag else config
    field = message.DESCRIPTOR.fields_by_name[flag or name]
    value = getattr(message, field.name)
    if field.is_repeated:
        return ",".join(value) or "(all the tier allows)"
    if field.enum_type is not None:
        return short_name(field.enum_type, value)
    if field.type == descriptor.FieldDescriptor.TYPE_BOOL:
        return "true" if value else "false"
    if field.message_type is not None:
        return str(json_format.MessageToJson(value)).strip('"')
    return f"{value:g}" if isinstance(value, float) else str(value)


def layer_name(layer: int) -> str:
    return short_name(strategy_pb2.StrategyLayer.DESCRIPTOR, layer).lower().replace("_", " ")


def table(rows: Iterable[Sequence[str]]) -> str:
    """Rows as left-aligned columns, two spaces apart."""
    listed = [list(row) for row in rows]
    widths = [max(len(row[column]) for row in listed) for column in range(len(listed[0]))]
    return "".join(
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        + "\n"
        for row in listed
    )
