"""Strategy layers: update masks, updates, validation per field and per tier, and the merge."""

from __future__ import annotations

import math
from typing import Any

import pytest
from google.protobuf import descriptor, duration_pb2
from hypothesis import given, settings
from hypothesis import strategies as st

from tradeflow.trading.v1 import strategy_pb2
from trading_engine.core import instruments, tiers
from trading_engine.core.strategy import from_config
from trading_engine.core.strategy_layers import (
    EMPTY_LAYER,
    FIELD_PATHS,
    Layer,
    apply_update,
    layer_from_stored,
    merge,
    parse_mask,
    present_paths,
    update_paths,
    validate_effective,
    validate_values,
)
from trading_engine.core.tiers import TierPolicy
from trading_engine.errors import FieldViolation

PROPERTY = settings(max_examples=200, deadline=None, derandomize=True, database=None)

TIER_DEFAULT = strategy_pb2.STRATEGY_LAYER_TIER_DEFAULT
USER = strategy_pb2.STRATEGY_LAYER_USER
COMPANY = strategy_pb2.STRATEGY_LAYER_COMPANY
POLICIES = [tiers.FREE, tiers.PRO, tiers.ENTERPRISE]
POLICY_IDS = ["FREE", "PRO", "ENTERPRISE"]

CONFIG_FIELDS = strategy_pb2.StrategyConfig.DESCRIPTOR.fields
FLAGS = [flag.name for flag in strategy_pb2.TierFeatures.DESCRIPTOR.fields]
FEATURE_PATHS = (
    "features.advanced_features_enabled",
    "features.pattern_trading_enabled",
    "features.multi_leg_entries_enabled",
    "features.advanced_timing_enabled",
    "features.custom_strategies_enabled",
    "features.algorithmic_execution_enabled",
)
NAN = math.nan
INF = math.inf
NOTHING_TO_CHANGE = FieldViolation(
    "strategy",
    "names no field to change: send the fields to change, for example min_confidence_threshold",
)


def _fields_of(kind: int) -> list[str]:
    return [field.name for field in CONFIG_FIELDS if field.type == kind]


def _seconds(seconds: int, nanos: int = 0) -> duration_pb2.Duration:
    return duration_pb2.Duration(seconds=seconds, nanos=nanos)


def _config(**fields: Any) -> strategy_pb2.StrategyConfig:
    """A config from fields named at run time, of whichever type each field has."""
    return strategy_pb2.StrategyConfig(**fields)


def _layer(**fields: Any) -> Layer:
    """A layer defining exactly the (top-level) fields given."""
    return Layer(frozenset(fields), _config(**fields))


def _features(*flags: str) -> strategy_pb2.TierFeatures:
    return strategy_pb2.TierFeatures(**dict.fromkeys(flags, True))


def _defaults_with(policy: TierPolicy, **overrides: object) -> strategy_pb2.StrategyConfig:
    config = strategy_pb2.StrategyConfig()
    config.CopyFrom(policy.defaults)
    for name, value in overrides.items():
        setattr(config, name, value)
    return config


# --- FIELD_PATHS ---------------------------------------------------------------------------


def test_field_paths_name_every_config_field_once() -> None:
    expected: list[str] = []
    for field in CONFIG_FIELDS:
        if field.message_type is strategy_pb2.TierFeatures.DESCRIPTOR:
            expected.extend(f"{field.name}.{flag}" for flag in FLAGS)
        else:
            expected.append(field.name)
    assert list(FIELD_PATHS) == expected
    assert len(set(FIELD_PATHS)) == len(FIELD_PATHS)


def test_field_paths_address_each_feature_flag_not_the_message() -> None:
    assert set(FEATURE_PATHS) <= set(FIELD_PATHS)
    assert "features" not in FIELD_PATHS


# --- parse_mask ----------------------------------------------------------------------------


def _unknown(path: str, hint: str) -> FieldViolation:
    return FieldViolation("update_mask", f'unknown field "{path}"; {hint}')


@pytest.mark.parametrize(
    ("mask", "paths", "violations"),
    [
        pytest.param(
            ["min_confidence_threshold"], ("min_confidence_threshold",), [], id="one field"
        ),
        pytest.param(
            ["max_spread_pips", "min_confidence_threshold", "max_spread_pips"],
            ("min_confidence_threshold", "max_spread_pips"),
            [],
            id="duplicates dropped, field order",
        ),
        pytest.param(["features"], FEATURE_PATHS, [], id="features expands to every flag"),
        pytest.param(
            ["features.pattern_trading_enabled", "features"],
            FEATURE_PATHS,
            [],
            id="features with one of its flags",
        ),
        pytest.param(
            ["features.multi_leg_entries_enabled", "duplicate_window"],
            ("features.multi_leg_entries_enabled", "duplicate_window"),
            [],
            id="one flag, a duration",
        ),
        pytest.param([], (), [], id="empty"),
        pytest.param(
            ["min_confidence"],
            (),
            [_unknown("min_confidence", 'did you mean "min_confidence_threshold"?')],
            id="unknown with suggestion",
        ),
        pytest.param(
            ["strategy.max_position_count"],
            (),
            [_unknown("strategy.max_position_count", 'did you mean "max_position_count"?')],
            id="request prefix",
        ),
        pytest.param(
            ["features.multi_leg"],
            (),
            [_unknown("features.multi_leg", 'did you mean "features.multi_leg_entries_enabled"?')],
            id="unknown flag",
        ),
        pytest.param(
            ["stop_loss_pips", "zzz", "zzz"],
            ("stop_loss_pips",),
            [
                _unknown(
                    "zzz",
                    "the fields are those of StrategyConfig, for example "
                    "min_confidence_threshold or features.pattern_trading_enabled",
                )
            ],
            id="nothing close, reported once, known path kept",
        ),
    ],
)
def test_parse_mask(
    mask: list[str], paths: tuple[str, ...], violations: list[FieldViolation]
) -> None:
    assert parse_mask(mask) == (paths, violations)


# --- update_paths: presence, not zero, means "set" ------------------------------------------


def _not_sent(path: str) -> FieldViolation:
    return FieldViolation(
        f"strategy.{path}",
        f"{path} is in the update mask but not in the strategy: send its value "
        "(0 and false are values) or leave it out of the mask",
    )


@pytest.mark.parametrize(
    ("values", "mask", "paths", "violations"),
    [
        pytest.param(
            _config(min_confidence_threshold=0.0),
            ["min_confidence_threshold"],
            ("min_confidence_threshold",),
            [],
            id="a zero that was sent is a value",
        ),
        pytest.param(
            _config(),
            ["min_confidence_threshold"],
            ("min_confidence_threshold",),
            [_not_sent("min_confidence_threshold")],
            id="a mask naming a field not sent",
        ),
        pytest.param(
            _config(max_position_count=0, prefer_market_orders=False),
            ["max_position_count", "prefer_market_orders", "halt_drawdown_percent"],
            ("prefer_market_orders", "max_position_count", "halt_drawdown_percent"),
            [_not_sent("halt_drawdown_percent")],
            id="each unsent path named, the sent zeros kept",
        ),
        pytest.param(
            _config(features=strategy_pb2.TierFeatures(pattern_trading_enabled=False)),
            ["features.pattern_trading_enabled", "features.multi_leg_entries_enabled"],
            ("features.pattern_trading_enabled", "features.multi_leg_entries_enabled"),
            [_not_sent("features.multi_leg_entries_enabled")],
            id="a flag sent false, a flag not sent",
        ),
        pytest.param(
            _config(features=strategy_pb2.TierFeatures(pattern_trading_enabled=True)),
            ["features"],
            FEATURE_PATHS,
            [
                _not_sent(path)
                for path in FEATURE_PATHS
                if path != "features.pattern_trading_enabled"
            ],
            id="features names every flag, so every flag must be sent",
        ),
        pytest.param(
            _config(),
            ["available_instruments"],
            ("available_instruments",),
            [],
            id="an empty list named in the mask: all the tier allows",
        ),
        pytest.param(
            _config(stop_loss_pips=0.0, available_instruments=["EURUSD"]),
            [],
            ("stop_loss_pips", "available_instruments"),
            [],
            id="no mask: the fields present, zeros included",
        ),
        pytest.param(
            _config(duplicate_window=_seconds(0), features=strategy_pb2.TierFeatures()),
            [],
            ("duplicate_window",),
            [],
            id="no mask: a message present, features without flags carry none",
        ),
        pytest.param(_config(), [], (), [NOTHING_TO_CHANGE], id="no mask, nothing present"),
    ],
)
def test_update_paths(
    values: strategy_pb2.StrategyConfig,
    mask: list[str],
    paths: tuple[str, ...],
    violations: list[FieldViolation],
) -> None:
    assert update_paths(values, mask) == (paths, violations)


def test_present_paths_of_a_tier_default_are_every_path() -> None:
    # The defaults carry every field explicitly, so a merged strategy shows every value
    # (the instrument list is empty: all the tier allows).
    every_path = tuple(path for path in FIELD_PATHS if path != "available_instruments")
    for policy in POLICIES:
        assert present_paths(policy.defaults) == every_path


# --- apply_update ----------------------------------------------------------------------------


def test_apply_update_copies_only_the_named_fields() -> None:
    layer = _layer(min_confidence_threshold=0.9, available_instruments=["EURUSD"])
    values = strategy_pb2.StrategyConfig(
        min_confidence_threshold=0.5,
        max_position_count=4,
        stop_loss_pips=33.0,
        available_instruments=["GBPUSD"],
        features=_features("pattern_trading_enabled", "multi_leg_entries_enabled"),
    )
    updated = apply_update(
        layer, values, ["max_position_count", "features.pattern_trading_enabled"]
    )
    assert updated.fields == {
        "min_confidence_threshold",
        "available_instruments",
        "max_position_count",
        "features.pattern_trading_enabled",
    }
    config = updated.config
    assert config.max_position_count == 4
    assert config.features.pattern_trading_enabled
    assert not config.features.multi_leg_entries_enabled
    assert config.min_confidence_threshold == 0.9
    assert list(config.available_instruments) == ["EURUSD"]
    assert config.stop_loss_pips == 0.0


@pytest.mark.parametrize(
    ("before", "after"),
    [
        pytest.param(["EURUSD", "GBPUSD"], ["USDJPY"], id="shorter list"),
        pytest.param(["EURUSD"], [], id="empty list: all the tier allows"),
    ],
)
def test_apply_update_replaces_the_instrument_list(before: list[str], after: list[str]) -> None:
    layer = _layer(available_instruments=before)
    values = strategy_pb2.StrategyConfig(available_instruments=after)
    updated = apply_update(layer, values, ["available_instruments"])
    assert list(updated.config.available_instruments) == after


def test_apply_update_copies_a_duration_whole() -> None:
    layer = _layer(duplicate_window=_seconds(60, 500))
    values = strategy_pb2.StrategyConfig(duplicate_window=_seconds(5))
    updated = apply_update(layer, values, ["duplicate_window"])
    assert updated.config.duplicate_window == _seconds(5)


def test_apply_update_leaves_the_original_layer_alone() -> None:
    layer = _layer(min_confidence_threshold=0.9, available_instruments=["EURUSD"])
    before = layer.stored()
    values = strategy_pb2.StrategyConfig(min_confidence_threshold=0.5, available_instruments=[])
    apply_update(layer, values, ["min_confidence_threshold", "available_instruments"])
    assert layer.stored() == before


# --- validate_values: ranges --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "value", "problem"),
    [
        pytest.param("min_confidence_threshold", 0.0, None, id="confidence 0"),
        pytest.param("min_confidence_threshold", 1.0, None, id="confidence 1"),
        pytest.param(
            "min_confidence_threshold", -0.01, "must be in [0, 1]; got -0.01", id="confidence <0"
        ),
        pytest.param(
            "min_confidence_threshold", 1.01, "must be in [0, 1]; got 1.01", id="confidence >1"
        ),
        pytest.param(
            "min_confidence_threshold",
            NAN,
            "must be a finite number in [0, 1]",
            id="confidence NaN",
        ),
        pytest.param("min_consensus_score", 1.5, "must be in [0, 1]; got 1.5", id="consensus >1"),
        pytest.param("counter_trend_confidence_threshold", 0.0, None, id="counter-trend 0"),
        pytest.param("min_pattern_probability", 1.0, None, id="pattern probability 1"),
        pytest.param(
            "min_pattern_probability",
            -INF,
            "must be a finite number in [0, 1]",
            id="pattern probability -inf",
        ),
        pytest.param("limit_order_discount_pips", 0.0, None, id="discount 0"),
        pytest.param(
            "limit_order_premium_pips", -0.1, "must be >= 0; got -0.1", id="premium negative"
        ),
        pytest.param(
            "max_limit_deviation_pips", INF, "must be a finite number >= 0", id="deviation inf"
        ),
        pytest.param("duplicate_price_tolerance_pips", 0.0, None, id="tolerance 0"),
        pytest.param("stop_loss_pips", 0.0, "must be > 0; got 0", id="stop 0"),
        pytest.param("stop_loss_pips", 0.1, None, id="stop 0.1"),
        pytest.param(
            "stop_loss_volatility_multiplier", 0.0, "must be > 0; got 0", id="stop multiplier 0"
        ),
        pytest.param("min_stop_loss_pips", 0.0, "must be > 0; got 0", id="min stop 0"),
        pytest.param("max_stop_loss_pips", -1.0, "must be > 0; got -1", id="max stop negative"),
        pytest.param("take_profit_pips", 0.0, "must be > 0; got 0", id="take profit 0"),
        pytest.param("risk_reward_ratio", NAN, "must be a finite number > 0", id="ratio NaN"),
        pytest.param(
            "risk_per_trade_percent", 0.0, "must be in (0, 10]; got 0", id="risk 0 percent"
        ),
        pytest.param("risk_per_trade_percent", 0.01, None, id="risk 0.01 percent"),
        pytest.param("risk_per_trade_percent", 10.0, None, id="risk 10 percent"),
        pytest.param(
            "risk_per_trade_percent", 10.01, "must be in (0, 10]; got 10.01", id="risk >10 percent"
        ),
        pytest.param("max_position_size_lots", 0.0, "must be > 0; got 0", id="max lots 0"),
        pytest.param("max_position_size_lots", 0.01, None, id="max lots 0.01"),
        pytest.param("position_size_multiplier", 1.0, None, id="size multiplier 1"),
        pytest.param(
            "position_size_multiplier", 0.0, "must be in (0, 1]; got 0", id="size multiplier 0"
        ),
        pytest.param(
            "position_size_multiplier",
            1.01,
            "must be in (0, 1]; got 1.01",
            id="size multiplier >1",
        ),
        pytest.param(
            "weak_signal_size_factor", 0.0, "must be in (0, 1]; got 0", id="weak factor 0"
        ),
        pytest.param("max_position_count", 0, None, id="position count 0"),
        pytest.param(
            "max_position_count", -1, "must be >= 0; got -1", id="position count negative"
        ),
        pytest.param("max_signals_per_minute", 0, "must be > 0; got 0", id="signals per minute 0"),
        pytest.param("max_signals_per_minute", 1, None, id="signals per minute 1"),
        pytest.param("multi_leg_count", 1, "must be in [2, 5]; got 1", id="legs 1"),
        pytest.param("multi_leg_count", 2, None, id="legs 2"),
        pytest.param("multi_leg_count", 5, None, id="legs 5"),
        pytest.param("multi_leg_count", 6, "must be in [2, 5]; got 6", id="legs 6"),
        pytest.param("volatility_low_bps", 0.0, "must be > 0; got 0", id="low band 0"),
        pytest.param("volatility_high_bps", 0.5, None, id="high band 0.5"),
        pytest.param(
            "volatility_extreme_bps", INF, "must be a finite number > 0", id="extreme band inf"
        ),
        pytest.param("trend_threshold_bps", 0.0, "must be > 0; got 0", id="trend threshold 0"),
        pytest.param("max_spread_pips", 0.0, "must be > 0; got 0", id="spread cap 0"),
        pytest.param("max_spread_pips", 0.1, None, id="spread cap 0.1"),
        pytest.param("trend_following_enabled", False, None, id="boolean off"),
        pytest.param("require_risk_assessment", True, None, id="boolean on"),
    ],
)
def test_validate_values_number_bounds(path: str, value: float, problem: str | None) -> None:
    values = _config(**{path: value})
    expected = [] if problem is None else [FieldViolation(f"strategy.{path}", problem)]
    assert validate_values(values, [path], tiers.FREE) == expected


@pytest.mark.parametrize("path", _fields_of(descriptor.FieldDescriptor.TYPE_DOUBLE))
def test_every_number_field_refuses_nan(path: str) -> None:
    values = _config(**{path: NAN})
    [violation] = validate_values(values, [path], None)
    assert violation.field == f"strategy.{path}"
    assert violation.description.startswith("must be a finite number")


@pytest.mark.parametrize(
    ("path", "value", "problem"),
    [
        pytest.param("duplicate_window", _seconds(0), None, id="duplicate window 0"),
        pytest.param(
            "duplicate_window", _seconds(-1), "must not be negative", id="duplicate window -1s"
        ),
        pytest.param(
            "duplicate_window", _seconds(0, -1), "must not be negative", id="duplicate window -1ns"
        ),
        pytest.param("max_price_age", _seconds(0), "must be longer than 0 s", id="price age 0"),
        pytest.param("max_price_age", _seconds(0, 1), None, id="price age 1ns"),
        pytest.param("signal_validity", _seconds(86_400), None, id="validity 1 day"),
        pytest.param(
            "signal_validity",
            _seconds(86_400, 1),
            "must be at most 1 day (86400 s)",
            id="validity 1 day + 1ns",
        ),
        pytest.param(
            "signal_validity",
            _seconds(1, 1_000_000_000),
            "nanos must be below 1000000000; carry whole seconds into seconds",
            id="nanos out of range",
        ),
    ],
)
def test_validate_values_durations(
    path: str, value: duration_pb2.Duration, problem: str | None
) -> None:
    values = _config(**{path: value})
    expected = [] if problem is None else [FieldViolation(f"strategy.{path}", problem)]
    assert validate_values(values, [path], None) == expected


@pytest.mark.parametrize(
    "path",
    [
        field.name
        for field in CONFIG_FIELDS
        if field.message_type is duration_pb2.Duration.DESCRIPTOR
    ],
)
def test_every_duration_refuses_negative(path: str) -> None:
    values = _config(**{path: _seconds(-30)})
    assert validate_values(values, [path], None) == [
        FieldViolation(f"strategy.{path}", "must not be negative")
    ]


@pytest.mark.parametrize("path", _fields_of(descriptor.FieldDescriptor.TYPE_ENUM))
@pytest.mark.parametrize("value", [0, 99], ids=["UNSPECIFIED", "undefined 99"])
def test_every_enum_refuses_unspecified_and_undefined(path: str, value: int) -> None:
    values = _config(**{path: value})
    [violation] = validate_values(values, [path], None)
    assert violation.field == f"strategy.{path}"
    assert violation.description.startswith("must be one of ")
    assert violation.description.endswith(f"; got {value}")
    assert "UNSPECIFIED" not in violation.description


def test_enum_violation_lists_the_choices() -> None:
    values = _config(volatility_mode=99)
    assert validate_values(values, ["volatility_mode"], None) == [
        FieldViolation(
            "strategy.volatility_mode",
            "must be one of VOLATILITY_MODE_CONSERVATIVE, VOLATILITY_MODE_BALANCED, "
            "VOLATILITY_MODE_AGGRESSIVE; got 99",
        )
    ]


@pytest.mark.parametrize(
    ("path", "value"),
    [
        ("volatility_mode", strategy_pb2.VOLATILITY_MODE_AGGRESSIVE),
        ("stop_loss_mode", strategy_pb2.STOP_LOSS_MODE_VOLATILITY_SCALED),
        ("take_profit_mode", strategy_pb2.TAKE_PROFIT_MODE_PREDICTED_PRICE),
    ],
)
def test_defined_enum_values_pass(path: str, value: int) -> None:
    values = _config(**{path: value})
    assert validate_values(values, [path], tiers.FREE) == []


def test_validate_values_checks_only_the_named_paths() -> None:
    # An empty config breaks many rules (zero stops, UNSPECIFIED modes), but only two are named.
    values = strategy_pb2.StrategyConfig(min_confidence_threshold=0.5)
    assert validate_values(values, ["min_confidence_threshold"], tiers.FREE) == []
    assert validate_values(values, ["take_profit_mode", "stop_loss_pips"], tiers.FREE) == [
        FieldViolation(
            "strategy.take_profit_mode",
            "must be one of TAKE_PROFIT_MODE_FIXED_PIPS, TAKE_PROFIT_MODE_RISK_REWARD, "
            "TAKE_PROFIT_MODE_PREDICTED_PRICE; got 0",
        ),
        FieldViolation("strategy.stop_loss_pips", "must be > 0; got 0"),
    ]


@pytest.mark.parametrize("policy", POLICIES, ids=POLICY_IDS)
def test_tier_defaults_are_valid(policy: TierPolicy) -> None:
    assert validate_values(policy.defaults, FIELD_PATHS, policy) == []
    assert validate_effective(policy.defaults) == []


# --- validate_values: instruments and features --------------------------------------------------


def _instrument(index: int, problem: str) -> FieldViolation:
    return FieldViolation(f"strategy.available_instruments[{index}]", problem)


@pytest.mark.parametrize(
    ("symbols", "policy", "violations"),
    [
        pytest.param([], tiers.FREE, [], id="empty: all the tier allows"),
        pytest.param(["EURUSD", "GBPUSD"], tiers.FREE, [], id="FREE within tier"),
        pytest.param(
            ["EURUSD", "USDJPY"],
            tiers.FREE,
            [_instrument(1, "the FREE tier does not include USDJPY")],
            id="FREE beyond tier",
        ),
        pytest.param(["USDJPY", "NZDUSD"], tiers.PRO, [], id="PRO majors"),
        pytest.param(
            ["XAUUSD"],
            tiers.PRO,
            [_instrument(0, "the PRO tier does not include XAUUSD")],
            id="PRO no metals",
        ),
        pytest.param(["XAUUSD", "US30", "EURGBP"], tiers.ENTERPRISE, [], id="ENTERPRISE any"),
        pytest.param(["XAUUSD", "GER40"], None, [], id="company: any known symbol"),
        pytest.param(
            ["EURUSD", "ABCXYZ"],
            None,
            [_instrument(1, 'unknown instrument "ABCXYZ"')],
            id="unknown",
        ),
        pytest.param(
            ["eurusd"],
            None,
            [_instrument(0, 'unknown instrument "eurusd"; did you mean EURUSD?')],
            id="unknown with suggestion",
        ),
        pytest.param(
            ["EURUSD", "GBPUSD", "EURUSD"],
            None,
            [_instrument(2, "EURUSD is listed twice")],
            id="duplicate",
        ),
        pytest.param(
            ["USDJPY", "USDJPY"],
            tiers.FREE,
            [
                _instrument(0, "the FREE tier does not include USDJPY"),
                _instrument(1, "USDJPY is listed twice"),
            ],
            id="duplicate beyond tier",
        ),
    ],
)
def test_validate_instruments(
    symbols: list[str], policy: TierPolicy | None, violations: list[FieldViolation]
) -> None:
    values = strategy_pb2.StrategyConfig(available_instruments=symbols)
    assert validate_values(values, ["available_instruments"], policy) == violations


@pytest.mark.parametrize(
    ("flag", "label"),
    [
        ("advanced_features_enabled", "advanced features"),
        ("pattern_trading_enabled", "pattern trading"),
        ("multi_leg_entries_enabled", "multi-leg entries"),
        ("advanced_timing_enabled", "advanced timing"),
        ("custom_strategies_enabled", "custom strategies"),
        ("algorithmic_execution_enabled", "algorithmic execution"),
    ],
)
def test_free_tier_cannot_switch_on_any_feature(flag: str, label: str) -> None:
    values = strategy_pb2.StrategyConfig(features=_features(flag))
    assert validate_values(values, [f"features.{flag}"], tiers.FREE) == [
        FieldViolation(f"strategy.features.{flag}", f"the FREE tier does not include {label}")
    ]


@pytest.mark.parametrize(
    ("policy", "flag", "problem"),
    [
        pytest.param(tiers.PRO, "multi_leg_entries_enabled", None, id="PRO multi-leg"),
        pytest.param(tiers.PRO, "pattern_trading_enabled", None, id="PRO patterns"),
        pytest.param(
            tiers.PRO,
            "custom_strategies_enabled",
            "the PRO tier does not include custom strategies",
            id="PRO custom strategies",
        ),
        pytest.param(
            tiers.PRO,
            "algorithmic_execution_enabled",
            "the PRO tier does not include algorithmic execution",
            id="PRO algorithmic execution",
        ),
        pytest.param(
            tiers.ENTERPRISE, "algorithmic_execution_enabled", None, id="ENTERPRISE algorithmic"
        ),
        pytest.param(None, "multi_leg_entries_enabled", None, id="company layer"),
    ],
)
def test_feature_entitlements(policy: TierPolicy | None, flag: str, problem: str | None) -> None:
    values = strategy_pb2.StrategyConfig(features=_features(flag))
    expected = [] if problem is None else [FieldViolation(f"strategy.features.{flag}", problem)]
    assert validate_values(values, [f"features.{flag}"], policy) == expected


def test_switching_a_feature_off_is_always_allowed() -> None:
    assert validate_values(strategy_pb2.StrategyConfig(), FEATURE_PATHS, tiers.FREE) == []


# --- validate_effective ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "violations"),
    [
        pytest.param(
            {"min_stop_loss_pips": 30.0, "max_stop_loss_pips": 30.0}, [], id="stop band one value"
        ),
        pytest.param(
            {"min_stop_loss_pips": 50.0, "max_stop_loss_pips": 30.0},
            [
                FieldViolation(
                    "strategy.max_stop_loss_pips", "must be >= min_stop_loss_pips (50); got 30"
                )
            ],
            id="stop band crossed",
        ),
        pytest.param(
            {"max_stop_loss_pips": NAN},
            [
                FieldViolation(
                    "strategy.max_stop_loss_pips", "must be >= min_stop_loss_pips (5); got nan"
                )
            ],
            id="stop band NaN",
        ),
        pytest.param(
            {"volatility_low_bps": 25.0},
            [
                FieldViolation(
                    "strategy.volatility_high_bps", "must be above volatility_low_bps (25); got 25"
                )
            ],
            id="low equals high",
        ),
        pytest.param(
            {"volatility_extreme_bps": 25.0},
            [
                FieldViolation(
                    "strategy.volatility_extreme_bps",
                    "must be above volatility_high_bps (25); got 25",
                )
            ],
            id="high equals extreme",
        ),
        pytest.param(
            {"volatility_low_bps": 24.9, "volatility_extreme_bps": 25.1}, [], id="narrow bands"
        ),
        pytest.param(
            {"stop_loss_pips": 500.0, "limit_order_discount_pips": 50.0},
            [],
            id="values the rules clamp are not contradictions",
        ),
    ],
)
def test_validate_effective(overrides: dict[str, float], violations: list[FieldViolation]) -> None:
    assert validate_effective(_defaults_with(tiers.PRO, **overrides)) == violations


# --- merge ------------------------------------------------------------------------------------


@pytest.mark.parametrize("policy", POLICIES, ids=POLICY_IDS)
def test_empty_layers_give_exactly_the_tier_defaults(policy: TierPolicy) -> None:
    merged = merge(policy, EMPTY_LAYER, EMPTY_LAYER)
    assert merged.config == policy.defaults
    assert merged.sources == dict.fromkeys(FIELD_PATHS, TIER_DEFAULT)
    assert from_config(merged.config, policy, 7) == from_config(policy.defaults, policy, 7)


def test_company_wins_over_user_and_sources_say_who() -> None:
    user = _layer(min_confidence_threshold=0.75, max_position_count=5)
    company = _layer(min_confidence_threshold=0.9, stop_loss_pips=15.0)
    merged = merge(tiers.PRO, user, company)
    assert merged.config.min_confidence_threshold == 0.9
    assert merged.config.max_position_count == 5
    assert merged.config.stop_loss_pips == 15.0
    assert merged.config.risk_reward_ratio == tiers.PRO.defaults.risk_reward_ratio
    assert merged.sources == {
        **dict.fromkeys(FIELD_PATHS, TIER_DEFAULT),
        "min_confidence_threshold": COMPANY,
        "max_position_count": USER,
        "stop_loss_pips": COMPANY,
    }


def test_zero_values_a_layer_defines_override_the_defaults() -> None:
    user = _layer(duplicate_window=_seconds(0), trend_following_enabled=False, max_position_count=0)
    merged = merge(tiers.PRO, user, EMPTY_LAYER)
    assert merged.config.duplicate_window.ToNanoseconds() == 0
    assert not merged.config.trend_following_enabled
    assert merged.config.max_position_count == 0
    assert merged.sources["duplicate_window"] == USER


@pytest.mark.parametrize(
    ("policy", "enabled"),
    [
        pytest.param(tiers.FREE, set(), id="FREE"),
        pytest.param(
            tiers.PRO,
            {
                "advanced_features_enabled",
                "pattern_trading_enabled",
                "multi_leg_entries_enabled",
                "advanced_timing_enabled",
            },
            id="PRO",
        ),
        pytest.param(tiers.ENTERPRISE, set(FLAGS), id="ENTERPRISE"),
    ],
)
def test_merge_clamps_features_to_the_tier(policy: TierPolicy, enabled: set[str]) -> None:
    user = Layer(frozenset(FEATURE_PATHS), strategy_pb2.StrategyConfig(features=_features(*FLAGS)))
    merged = merge(policy, user, EMPTY_LAYER)
    assert {flag for flag in FLAGS if getattr(merged.config.features, flag)} == enabled
    # A clamped flag's value is the tier's; a kept one is the user's.
    assert {
        path.removeprefix("features.") for path in FEATURE_PATHS if merged.sources[path] == USER
    } == enabled


def test_company_can_switch_off_what_the_user_switched_on() -> None:
    user = Layer(
        frozenset({"features.multi_leg_entries_enabled"}),
        strategy_pb2.StrategyConfig(features=_features("multi_leg_entries_enabled")),
    )
    company = Layer(
        frozenset({"features.multi_leg_entries_enabled", "features.pattern_trading_enabled"}),
        strategy_pb2.StrategyConfig(),
    )
    merged = merge(tiers.PRO, user, company)
    assert not merged.config.features.multi_leg_entries_enabled
    assert not merged.config.features.pattern_trading_enabled
    # Flags neither layer names keep the tier default.
    assert merged.config.features.advanced_timing_enabled
    assert merged.sources["features.multi_leg_entries_enabled"] == COMPANY


@pytest.mark.parametrize(
    ("policy", "user", "company", "configured", "traded"),
    [
        pytest.param(
            tiers.PRO,
            ["EURUSD", "XAUUSD", "USDJPY"],
            None,
            ["EURUSD", "USDJPY"],
            {"EURUSD", "USDJPY"},
            id="narrowed to the tier, order kept",
        ),
        pytest.param(
            tiers.PRO,
            ["EURUSD", "GBPUSD"],
            ["GBPUSD"],
            ["GBPUSD"],
            {"GBPUSD"},
            id="company restriction wins",
        ),
        pytest.param(
            tiers.FREE,
            None,
            ["XAUUSD", "US30"],
            ["XAUUSD", "US30"],
            set(),
            id="disjoint: kept, nothing traded",
        ),
        pytest.param(
            tiers.FREE, ["EURUSD"], [], [], {"EURUSD", "GBPUSD"}, id="empty: all the tier allows"
        ),
    ],
)
def test_merge_intersects_instruments_with_the_tier(
    policy: TierPolicy,
    user: list[str] | None,
    company: list[str] | None,
    configured: list[str],
    traded: set[str],
) -> None:
    user_layer = EMPTY_LAYER if user is None else _layer(available_instruments=user)
    company_layer = EMPTY_LAYER if company is None else _layer(available_instruments=company)
    merged = merge(policy, user_layer, company_layer)
    assert list(merged.config.available_instruments) == configured
    assert from_config(merged.config, policy, 1).instruments == traded


def test_merge_changes_neither_the_tier_defaults_nor_the_layers() -> None:
    defaults = tiers.FREE.defaults.SerializeToString(deterministic=True)
    user = _layer(min_confidence_threshold=0.95, available_instruments=["EURUSD", "USDJPY"])
    company = Layer(
        frozenset(FEATURE_PATHS), strategy_pb2.StrategyConfig(features=_features(*FLAGS))
    )
    stored = (user.stored(), company.stored())
    merge(tiers.FREE, user, company)
    assert tiers.FREE.defaults.SerializeToString(deterministic=True) == defaults
    assert (user.stored(), company.stored()) == stored


def test_merge_ignores_paths_no_longer_in_the_config() -> None:
    stored = _layer(max_position_count=2).config.SerializeToString()
    layer = layer_from_stored(["retired_field", "max_position_count"], stored)
    merged = merge(tiers.PRO, layer, EMPTY_LAYER)
    assert merged.config.max_position_count == 2
    assert "retired_field" not in merged.sources


# --- properties ---------------------------------------------------------------------------------

_DOUBLE = descriptor.FieldDescriptor.TYPE_DOUBLE
_INT32 = descriptor.FieldDescriptor.TYPE_INT32
_ENUM = descriptor.FieldDescriptor.TYPE_ENUM
_BOOL = descriptor.FieldDescriptor.TYPE_BOOL
_SYMBOLS = [*sorted(instruments.all_symbols()), "ABCXYZ"]


_FEATURE_SETS = st.builds(strategy_pb2.TierFeatures, **{flag: st.booleans() for flag in FLAGS})
_VALUES_BY_TYPE: dict[int, st.SearchStrategy[Any]] = {
    _ENUM: st.integers(0, 4),
    _BOOL: st.booleans(),
    _INT32: st.integers(-1, 700),
    _DOUBLE: st.one_of(st.sampled_from([0.0, 0.5, 1.0, 10.0, NAN, INF]), st.floats(-1.0, 120.0)),
}


def _any_value(field: descriptor.FieldDescriptor) -> st.SearchStrategy[Any]:
    """Values of a field, valid and not: edges, NaN, negatives, unknown symbols."""
    if field.is_repeated:
        return st.lists(st.sampled_from(_SYMBOLS), max_size=4)
    if field.message_type is strategy_pb2.TierFeatures.DESCRIPTOR:
        return _FEATURE_SETS
    if field.message_type is duration_pb2.Duration.DESCRIPTOR:
        return st.builds(
            duration_pb2.Duration,
            seconds=st.integers(-5, 90_000),
            nanos=st.sampled_from([0, 1, -1, 999_999_999]),
        )
    return _VALUES_BY_TYPE[field.type]


_VALUES_BY_FIELD = {field.name: _any_value(field) for field in CONFIG_FIELDS}
_POLICY = st.sampled_from(POLICIES)


@st.composite
def _valid_layer(draw: st.DrawFn, policy: TierPolicy | None) -> Layer:
    """A layer of random fields with random values, keeping those validation accepts."""
    paths = draw(st.sets(st.sampled_from(FIELD_PATHS)))
    names = sorted({path.partition(".")[0] for path in paths})
    values = _config(
        **draw(st.fixed_dictionaries({name: _VALUES_BY_FIELD[name] for name in names}))
    )
    accepted = [path for path in paths if not validate_values(values, [path], policy)]
    return apply_update(EMPTY_LAYER, values, accepted)


@st.composite
def _tier_and_layers(draw: st.DrawFn) -> tuple[TierPolicy, Layer, Layer]:
    policy = draw(_POLICY)
    return policy, draw(_valid_layer(policy)), draw(_valid_layer(None))


@PROPERTY
@given(_POLICY, _FEATURE_SETS, _FEATURE_SETS)
def test_merge_never_enables_a_feature_the_tier_disallows(
    policy: TierPolicy, user: strategy_pb2.TierFeatures, company: strategy_pb2.TierFeatures
) -> None:
    user_layer = Layer(frozenset(FEATURE_PATHS), strategy_pb2.StrategyConfig(features=user))
    company_layer = Layer(frozenset(FEATURE_PATHS), strategy_pb2.StrategyConfig(features=company))
    merged = merge(policy, user_layer, company_layer)
    for flag in FLAGS:
        assert not getattr(merged.config.features, flag) or getattr(policy.allowed, flag), flag


@PROPERTY
@given(_tier_and_layers())
def test_merged_valid_layers_stay_valid_and_reach_the_hot_path(
    case: tuple[TierPolicy, Layer, Layer],
) -> None:
    policy, user, company = case
    merged = merge(policy, user, company)
    violations = validate_values(merged.config, FIELD_PATHS, policy)
    configured = set(merged.config.available_instruments)
    if configured and not configured & policy.instruments:
        # The one allowed exception: a company list with nothing in this tier, kept as configured.
        assert "available_instruments" in company.fields
        assert {v.field.partition("[")[0] for v in violations} == {"strategy.available_instruments"}
    else:
        assert violations == []
    strategy = from_config(merged.config, policy, 3)
    assert strategy.instruments <= policy.instruments
    assert strategy.version == 3
    for path in FIELD_PATHS:
        expected = (
            COMPANY if path in company.fields else USER if path in user.fields else TIER_DEFAULT
        )
        if path in merged.clamped:
            # A number past the tier's bound loses its layer to the bound.
            assert merged.sources[path] == TIER_DEFAULT
            assert getattr(merged.config, path) == policy.bound(path)
        elif path in FEATURE_PATHS and merged.sources[path] != expected:
            # Only a flag the tier clamped off may lose its layer.
            assert merged.sources[path] == TIER_DEFAULT
            assert not getattr(policy.allowed, path.removeprefix("features."))
        else:
            assert merged.sources[path] == expected, path


@PROPERTY
@given(st.one_of(_POLICY, st.none()).flatmap(_valid_layer))
def test_stored_layer_round_trips(layer: Layer) -> None:
    paths, config = layer.stored()
    assert list(paths) == sorted(layer.fields)
    assert layer_from_stored(paths, config) == layer
