"""Strategy layers: the fields a layer defines, their validation, and the merge.

A strategy is merged from four layers: the tier's defaults, the user's
customisations, the adaptive adjustments learned from the user's results, and
the company's overrides, which win over all of them; the result is held to the
tier's bounds (core/tiers.py, decision 31). A layer
defines only some fields, so a layer is the set of field paths it defines
together with a `StrategyConfig` holding their values (layers stored before
the fields had presence carry no presence for their zeros). Paths are
top-level field names, except the feature flags, which are addressed one by
one ("features.pattern_trading_enabled").

An update names its fields by presence: every singular field of
StrategyConfig has explicit presence, so a field that is present is set, 0
and false included (decision 23).

Everything here is pure: configs are copied, never changed in place.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Final

from google.protobuf import descriptor, duration_pb2
from google.protobuf.message import Message

from tradeflow.trading.v1 import strategy_pb2
from trading_engine.core import instruments
from trading_engine.core.strategy import NANOS_PER_SECOND
from trading_engine.core.tiers import NUMBER_BOUNDS, POLICIES, TierPolicy
from trading_engine.errors import FieldViolation
from trading_engine.tenancy import tier_name

TIER_DEFAULT: Final[int] = strategy_pb2.STRATEGY_LAYER_TIER_DEFAULT
USER: Final[int] = strategy_pb2.STRATEGY_LAYER_USER
COMPANY: Final[int] = strategy_pb2.STRATEGY_LAYER_COMPANY
ADAPTIVE: Final[int] = strategy_pb2.STRATEGY_LAYER_ADAPTIVE

_FIELDS: Final = strategy_pb2.StrategyConfig.DESCRIPTOR.fields_by_name
_FEATURES: Final = "features"
_INSTRUMENTS: Final = "available_instruments"
_FEATURE_PATHS: Final[tuple[str, ...]] = tuple(
    f"{_FEATURES}.{flag.name}" for flag in strategy_pb2.TierFeatures.DESCRIPTOR.fields
)
FIELD_PATHS: Final[tuple[str, ...]] = tuple(
    path
    for field in strategy_pb2.StrategyConfig.DESCRIPTOR.fields
    for path in (_FEATURE_PATHS if field.name == _FEATURES else (field.name,))
)
_PATH_ORDER: Final[Mapping[str, int]] = {path: index for index, path in enumerate(FIELD_PATHS)}


@dataclasses.dataclass(frozen=True)
class Layer:
    """The field paths a layer defines and a config holding their values (other fields unused)."""

    fields: frozenset[str]
    config: strategy_pb2.StrategyConfig

    def stored(self) -> tuple[tuple[str, ...], bytes]:
        """Sorted paths and the serialized config, the form a store keeps."""
        return tuple(sorted(self.fields)), self.config.SerializeToString(deterministic=True)


EMPTY_LAYER: Final = Layer(frozenset(), strategy_pb2.StrategyConfig())


def layer_from_stored(fields: Sequence[str], config: bytes) -> Layer:
    return Layer(frozenset(fields), strategy_pb2.StrategyConfig.FromString(config))


def _closest(word: str, choices: Sequence[str]) -> str | None:
    matches = difflib.get_close_matches(word, choices, n=1)
    return matches[0] if matches else None


def parse_mask(paths: Sequence[str]) -> tuple[tuple[str, ...], list[FieldViolation]]:
    """The known paths of an update mask, deduplicated in FIELD_PATHS order, and the bad ones.

    "features" alone names every feature flag.
    """
    named: set[str] = set()
    violations = []
    for path in dict.fromkeys(paths):
        if path in _PATH_ORDER:
            named.add(path)
        elif path == _FEATURES:
            named.update(_FEATURE_PATHS)
        else:
            suggestion = _closest(path, (*FIELD_PATHS, _FEATURES))
            hint = (
                f'did you mean "{suggestion}"?'
                if suggestion
                else "the fields are those of StrategyConfig, for example "
                "min_confidence_threshold or features.pattern_trading_enabled"
            )
            violations.append(FieldViolation("update_mask", f'unknown field "{path}"; {hint}'))
    return tuple(sorted(named, key=_PATH_ORDER.__getitem__)), violations


def is_present(values: strategy_pb2.StrategyConfig, path: str) -> bool:
    """Whether `values` carries a value for `path`; a list is present when it is not empty."""
    name, _, flag = path.partition(".")
    if flag:
        return _has(values, name) and _has(getattr(values, name), flag)
    if _FIELDS[name].is_repeated:
        return len(getattr(values, name)) > 0
    return _has(values, name)


def _has(message: Message, name: str) -> bool:
    # Through the base class: the generated stubs accept only literal field names.
    return message.HasField(name)


def present_paths(values: strategy_pb2.StrategyConfig) -> tuple[str, ...]:
    """The field paths `values` carries, in FIELD_PATHS order."""
    return tuple(path for path in FIELD_PATHS if is_present(values, path))


def update_paths(
    values: strategy_pb2.StrategyConfig, mask: Sequence[str]
) -> tuple[tuple[str, ...], list[FieldViolation]]:
    """The paths an update of `values` changes, and why it cannot be applied.

    With a mask, the paths it names, each of which must be present in `values`
    (a zero is only a setting when it was sent); without one, the paths present.
    """
    if not mask:
        paths = present_paths(values)
        if paths:
            return paths, []
        return (), [
            FieldViolation(
                "strategy",
                "names no field to change: send the fields to change, "
                "for example min_confidence_threshold",
            )
        ]
    paths, violations = parse_mask(mask)
    violations += [
        FieldViolation(
            f"strategy.{path}",
            f"{path} is in the update mask but not in the strategy: send its value "
            "(0 and false are values) or leave it out of the mask",
        )
        for path in paths
        # A list has no presence: named in a mask, an empty one means "all the tier allows".
        if path != _INSTRUMENTS and not is_present(values, path)
    ]
    return paths, violations


def _copy_path(
    target: strategy_pb2.StrategyConfig, source: strategy_pb2.StrategyConfig, path: str
) -> None:
    name, _, flag = path.partition(".")
    if flag:
        setattr(getattr(target, name), flag, getattr(getattr(source, name), flag))
        return
    field = _FIELDS[name]
    if field.is_repeated:
        # Replace the list: a layer names the whole list, never additions to it.
        del getattr(target, name)[:]
        getattr(target, name).extend(getattr(source, name))
    elif field.message_type is not None:
        getattr(target, name).CopyFrom(getattr(source, name))
    else:
        setattr(target, name, getattr(source, name))


def apply_update(layer: Layer, values: strategy_pb2.StrategyConfig, paths: Sequence[str]) -> Layer:
    """`layer` with `paths` (as parse_mask returns them) set to their values in `values`."""
    config = strategy_pb2.StrategyConfig()
    config.CopyFrom(layer.config)
    for path in paths:
        _copy_path(config, values, path)
    return Layer(layer.fields | frozenset(paths), config)


def defined_values(layer: Layer, paths: Sequence[str]) -> dict[str, object]:
    """The values `layer` defines for `paths`, as JSON values by path (durations "300s",
    enums by name); a path the layer leaves to the layers below is absent."""
    values: dict[str, object] = {}
    for path in paths:
        if path not in layer.fields:
            continue
        name, _, flag = path.partition(".")
        value = getattr(layer.config, name)
        field = _FIELDS[name]
        if flag:
            values[path] = bool(getattr(value, flag))
        elif field.is_repeated:
            values[path] = list(value)
        elif isinstance(value, duration_pb2.Duration):
            values[path] = value.ToJsonString()
        elif field.enum_type is not None:
            number = field.enum_type.values_by_number.get(value)
            values[path] = number.name if number is not None else value
        else:
            values[path] = value
    return values


@dataclasses.dataclass(frozen=True)
class _Range:
    """Numbers from `low` (inclusive unless `low_open`) to `high` inclusive."""

    low: float
    high: float = math.inf
    low_open: bool = False

    def contains(self, value: float) -> bool:
        above = value > self.low if self.low_open else value >= self.low
        return above and value <= self.high

    def describe(self) -> str:
        if self.high == math.inf:
            return f"{'>' if self.low_open else '>='} {self.low:g}"
        return f"in {'(' if self.low_open else '['}{self.low:g}, {self.high:g}]"


_UNIT: Final = _Range(0.0, 1.0)
_FRACTION: Final = _Range(0.0, 1.0, low_open=True)
_NON_NEGATIVE: Final = _Range(0.0)
_POSITIVE: Final = _Range(0.0, low_open=True)

# The ranges the proto comments document, for every number field.
_RANGES: Final[Mapping[str, _Range]] = {
    "min_confidence_threshold": _UNIT,
    "min_consensus_score": _UNIT,
    "counter_trend_confidence_threshold": _UNIT,
    "limit_order_discount_pips": _NON_NEGATIVE,
    "limit_order_premium_pips": _NON_NEGATIVE,
    "max_limit_deviation_pips": _NON_NEGATIVE,
    "stop_loss_pips": _POSITIVE,
    "stop_loss_volatility_multiplier": _POSITIVE,
    "min_stop_loss_pips": _POSITIVE,
    # Also >= min_stop_loss_pips, checked on the merged config by validate_effective.
    "max_stop_loss_pips": _POSITIVE,
    "take_profit_pips": _POSITIVE,
    "risk_reward_ratio": _POSITIVE,
    "risk_per_trade_percent": _Range(0.0, 10.0, low_open=True),
    "max_position_size_lots": _POSITIVE,
    "position_size_multiplier": _FRACTION,
    "weak_signal_size_factor": _FRACTION,
    "max_position_count": _NON_NEGATIVE,
    "duplicate_price_tolerance_pips": _NON_NEGATIVE,
    "max_signals_per_minute": _POSITIVE,
    "volatility_low_bps": _POSITIVE,
    "volatility_high_bps": _POSITIVE,
    "volatility_extreme_bps": _POSITIVE,
    "trend_threshold_bps": _POSITIVE,
    # Undocumented; no market quotes a zero spread, so 0 would silently block every signal.
    "max_spread_pips": _POSITIVE,
    "min_pattern_probability": _UNIT,
    "multi_leg_count": _Range(2, 5),
    "halt_drawdown_percent": _Range(0.0, 100.0),
}
# Whether each duration may be zero: no duplicate window means no duplicate suppression.
_ZERO_DURATION_ALLOWED: Final[Mapping[str, bool]] = {
    "duplicate_window": True,
    "max_price_age": False,
    "signal_validity": False,
    # No cooldown after a stop loss.
    "stop_loss_cooldown": True,
}
# No timing rule needs more than a day; a longer value is a unit mistake.
_MAX_DURATION_NS: Final = 86_400 * NANOS_PER_SECOND
_FEATURE_LABELS: Final[Mapping[str, str]] = {
    "advanced_features_enabled": "advanced features",
    "pattern_trading_enabled": "pattern trading",
    "multi_leg_entries_enabled": "multi-leg entries",
    "advanced_timing_enabled": "advanced timing",
    "custom_strategies_enabled": "custom strategies",
    "algorithmic_execution_enabled": "algorithmic execution",
}
_SYMBOLS: Final[tuple[str, ...]] = tuple(sorted(instruments.all_symbols()))


def _number_problem(value: float, allowed: _Range) -> str | None:
    if not math.isfinite(value):
        return f"must be a finite number {allowed.describe()}"
    if allowed.contains(value):
        return None
    return f"must be {allowed.describe()}; got {value:g}"


def _duration_problem(value: duration_pb2.Duration, zero_allowed: bool) -> str | None:
    if value.seconds < 0 or value.nanos < 0:
        return "must not be negative"
    if value.nanos >= NANOS_PER_SECOND:
        return f"nanos must be below {NANOS_PER_SECOND}; carry whole seconds into seconds"
    total_ns = value.seconds * NANOS_PER_SECOND + value.nanos
    if total_ns == 0 and not zero_allowed:
        return "must be longer than 0 s"
    if total_ns > _MAX_DURATION_NS:
        return "must be at most 1 day (86400 s)"
    return None


def _enum_problem(enum_type: descriptor.EnumDescriptor, value: int) -> str | None:
    if value != 0 and value in enum_type.values_by_number:
        return None
    choices = ", ".join(choice.name for choice in enum_type.values if choice.number != 0)
    return f"must be one of {choices}; got {value}"


def _value_problem(values: strategy_pb2.StrategyConfig, path: str) -> str | None:
    field = _FIELDS[path]
    value = getattr(values, path)
    if field.type == descriptor.FieldDescriptor.TYPE_BOOL:
        return None
    if field.enum_type is not None:
        return _enum_problem(field.enum_type, value)
    if path in _ZERO_DURATION_ALLOWED:
        return _duration_problem(value, _ZERO_DURATION_ALLOWED[path])
    # Every other field is a number; one added without a range here fails loudly (KeyError).
    return _number_problem(value, _RANGES[path])


def _feature_problem(
    values: strategy_pb2.StrategyConfig, flag: str, policy: TierPolicy | None
) -> str | None:
    # Switching a flag off is always allowed; only switching on needs the entitlement.
    if policy is None or not getattr(values.features, flag) or getattr(policy.allowed, flag):
        return None
    return f"the {tier_name(policy.tier)} tier does not include {_FEATURE_LABELS[flag]}"


def _instrument_violations(
    symbols: Sequence[str], policy: TierPolicy | None
) -> list[FieldViolation]:
    violations = []
    seen: set[str] = set()
    for index, symbol in enumerate(symbols):
        if instruments.lookup(symbol) is None:
            # Symbols are upper case; "eurusd" most likely means EURUSD.
            suggestion = _closest(symbol.upper(), _SYMBOLS)
            problem = f'unknown instrument "{symbol}"' + (
                f"; did you mean {suggestion}?" if suggestion else ""
            )
        elif symbol in seen:
            problem = f"{symbol} is listed twice"
        elif policy is not None and symbol not in policy.instruments:
            problem = f"the {tier_name(policy.tier)} tier does not include {symbol}"
        else:
            problem = None
        seen.add(symbol)
        if problem is not None:
            violations.append(FieldViolation(f"strategy.{_INSTRUMENTS}[{index}]", problem))
    return violations


def validate_values(
    values: strategy_pb2.StrategyConfig, paths: Sequence[str], policy: TierPolicy | None
) -> list[FieldViolation]:
    """Why the values of `paths` (as parse_mask returns them) cannot be stored; empty when they can.

    `policy` is the user's tier for a user layer, and None for a company layer,
    whose users have different tiers (the merge clamps each to its tier).
    """
    violations = []
    for path in paths:
        if path == _INSTRUMENTS:
            violations.extend(_instrument_violations(values.available_instruments, policy))
            continue
        flag = path.partition(".")[2]
        problem = _feature_problem(values, flag, policy) if flag else _value_problem(values, path)
        if problem is not None:
            violations.append(FieldViolation(f"strategy.{path}", problem))
    return violations


# (lower, upper, strict): pairs of a merged config that must be ordered.
_ORDERED: Final[tuple[tuple[str, str, bool], ...]] = (
    ("min_stop_loss_pips", "max_stop_loss_pips", False),
    # Bands out of order would make a volatility both LOW and HIGH, or leave no HIGH band.
    ("volatility_low_bps", "volatility_high_bps", True),
    ("volatility_high_bps", "volatility_extreme_bps", True),
)


def validate_effective(config: strategy_pb2.StrategyConfig) -> list[FieldViolation]:
    """Contradictions between fields of a merged, complete config; empty when there are none.

    Only contradictions are refused. Values the rules clamp by design (a fixed
    stop outside the stop band, a limit offset beyond the maximum deviation) are
    explained in each decision's trace instead.
    """
    violations = []
    for lower_name, upper_name, strict in _ORDERED:
        lower, upper = getattr(config, lower_name), getattr(config, upper_name)
        # Written as "not ordered" so that NaN is refused too.
        if not (lower < upper if strict else lower <= upper):
            relation = "above" if strict else ">="
            violations.append(
                FieldViolation(
                    f"strategy.{upper_name}",
                    f"must be {relation} {lower_name} ({lower:g}); got {upper:g}",
                )
            )
    return violations


_CUSTOM_TIERS: Final = " or ".join(
    tier_name(policy.tier) for policy in POLICIES if policy.allowed.custom_strategies_enabled
)


def bound_violations(
    values: strategy_pb2.StrategyConfig, paths: Sequence[str], policy: TierPolicy
) -> list[FieldViolation]:
    """Why the values of `paths` loosen `policy`'s number bounds; empty when they do not.

    Whether the bounds apply (policy.bounds_lifted) is the caller's to decide: it
    depends on the strategy the values end up in.
    """
    if policy.allowed.custom_strategies_enabled:
        remedy = "they apply while custom strategies are switched off"
    else:
        remedy = f"only a tier with custom strategies ({_CUSTOM_TIERS}) may go past it"
    requested = frozenset(paths)
    return [
        FieldViolation(
            f"strategy.{bound.path}",
            f"{bound.describe(value, limit, tier_name(policy.tier))}; {remedy}",
        )
        for bound in NUMBER_BOUNDS
        if bound.path in requested
        and bound.looser(value := getattr(values, bound.path), limit := policy.bound(bound.path))
    ]


def tier_bounds(
    policy: TierPolicy, config: strategy_pb2.StrategyConfig
) -> strategy_pb2.StrategyConfig:
    """The bounds `policy` sets on `config` (a merged strategy), as a config whose present
    fields are the bounds: the numbers only while they apply, instruments and features always."""
    bounds = strategy_pb2.StrategyConfig(available_instruments=sorted(policy.instruments))
    for flag in strategy_pb2.TierFeatures.DESCRIPTOR.fields:
        setattr(bounds.features, flag.name, getattr(policy.allowed, flag.name))
    if not policy.bounds_lifted(config):
        for bound in NUMBER_BOUNDS:
            setattr(bounds, bound.path, getattr(policy.defaults, bound.path))
    return bounds


@dataclasses.dataclass(frozen=True)
class MergedStrategy:
    """A complete config clamped to the tier, and the layer each field path came from."""

    config: strategy_pb2.StrategyConfig
    sources: Mapping[str, int]
    # Paths a layer set past a tier bound, and the value it set: the bound is in force instead.
    clamped: Mapping[str, float]


def merge(
    policy: TierPolicy, user: Layer, company: Layer, adaptive: Layer = EMPTY_LAYER
) -> MergedStrategy:
    """Tier defaults, overridden by the user, adaptive and company layers; clamped to the tier."""
    config = strategy_pb2.StrategyConfig()
    config.CopyFrom(policy.defaults)
    sources = dict.fromkeys(FIELD_PATHS, TIER_DEFAULT)
    for layer, source in ((user, USER), (adaptive, ADAPTIVE), (company, COMPANY)):
        # Paths no longer in StrategyConfig (a retired field in a stored layer) are ignored.
        for path in layer.fields.intersection(FIELD_PATHS):
            _copy_path(config, layer.config, path)
            sources[path] = source
    for path in _FEATURE_PATHS:
        flag = path.partition(".")[2]
        if getattr(config.features, flag) and not getattr(policy.allowed, flag):
            setattr(config.features, flag, False)
            # The value in effect is the tier's, not the one the layer asked for.
            sources[path] = TIER_DEFAULT
    entitled = [symbol for symbol in config.available_instruments if symbol in policy.instruments]
    # When nothing requested is entitled, the request stays as configured: the strategy
    # then trades nothing, which each decision explains; "all the tier allows" would
    # widen a company's restriction.
    if entitled:
        del config.available_instruments[:]
        config.available_instruments.extend(entitled)
    clamped = {} if policy.bounds_lifted(config) else _clamp_to_bounds(config, policy)
    for path in clamped:
        sources[path] = TIER_DEFAULT
    return MergedStrategy(config, MappingProxyType(sources), MappingProxyType(clamped))


def _clamp_to_bounds(config: strategy_pb2.StrategyConfig, policy: TierPolicy) -> dict[str, float]:
    """Set each number past a bound of `policy` to the bound; the values it replaced.

    Refusing such a layer instead would leave the user without a strategy (and so
    without signals) after a downgrade, and the bound is what they are entitled to.
    """
    clamped = {}
    for bound in NUMBER_BOUNDS:
        value, limit = getattr(config, bound.path), policy.bound(bound.path)
        if bound.looser(value, limit):
            setattr(config, bound.path, getattr(policy.defaults, bound.path))
            clamped[bound.path] = value
    return clamped
