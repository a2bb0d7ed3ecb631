"""Tier bounds: a tier's template bounds the numbers that set a trader's exposure.

Layers may tighten a bound, never loosen it, unless the tier includes custom
strategies and the strategy has them on (decision 31); the merge holds every
layer (user, adaptive, company) to the bounds, so a value stored past one never
reaches a decision.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tradeflow.trading.v1 import strategy_pb2
from trading_engine.core import tiers
from trading_engine.core.strategy import from_config
from trading_engine.core.strategy_layers import (
    EMPTY_LAYER,
    Layer,
    bound_violations,
    merge,
    tier_bounds,
)
from trading_engine.core.tiers import NUMBER_BOUNDS, NumberBound, TierPolicy
from trading_engine.errors import FieldViolation

TIER_DEFAULT = strategy_pb2.STRATEGY_LAYER_TIER_DEFAULT
USER = strategy_pb2.STRATEGY_LAYER_USER
ADAPTIVE = strategy_pb2.STRATEGY_LAYER_ADAPTIVE
COMPANY = strategy_pb2.STRATEGY_LAYER_COMPANY
BOUNDED = [policy for policy in tiers.POLICIES if not policy.allowed.custom_strategies_enabled]
BOUND_IDS = [bound.path for bound in NUMBER_BOUNDS]
CUSTOM_FLAG = "features.custom_strategies_enabled"


def past(bound: NumberBound, policy: TierPolicy) -> float:
    """The nearest value on the loose side of the bound (a count moves by one)."""
    limit = policy.bound(bound.path)
    step = 1 if isinstance(limit, int) else 0.01
    return limit - step if bound.floor else limit + step


def tighter(bound: NumberBound, policy: TierPolicy) -> float:
    limit = policy.bound(bound.path)
    step = 1 if isinstance(limit, int) else 0.01
    return limit + step if bound.floor else limit - step


def config(**values: Any) -> strategy_pb2.StrategyConfig:
    """A config from fields named at run time, of whichever type each field has."""
    return strategy_pb2.StrategyConfig(**values)


def layer(**values: Any) -> Layer:
    return Layer(frozenset(values), config(**values))


def custom_off(**values: Any) -> Layer:
    config_off = config(**values)
    config_off.features.custom_strategies_enabled = False
    return Layer(frozenset({*values, CUSTOM_FLAG}), config_off)


def test_the_bounds_are_the_exposure_numbers_of_the_seed_template() -> None:
    assert [(bound.path, bound.floor) for bound in NUMBER_BOUNDS] == [
        ("min_confidence_threshold", True),
        ("min_consensus_score", True),
        ("max_position_count", False),
        ("max_signals_per_minute", False),
        ("risk_per_trade_percent", False),
        ("max_position_size_lots", False),
    ]
    # The seed's FREE tier: confidence 0.8, 3 positions, two pairs; custom strategies only
    # for ENTERPRISE.
    assert tiers.FREE.bound("min_confidence_threshold") == pytest.approx(0.8)
    assert tiers.FREE.bound("max_position_count") == 3
    assert tiers.FREE.instruments == {"EURUSD", "GBPUSD"}
    assert [p.tier for p in tiers.POLICIES if p.allowed.custom_strategies_enabled] == [
        tiers.ENTERPRISE.tier
    ]


@pytest.mark.parametrize("bound", NUMBER_BOUNDS, ids=BOUND_IDS)
@pytest.mark.parametrize("policy", BOUNDED, ids=["FREE", "PRO"])
@pytest.mark.parametrize("source", [USER, ADAPTIVE, COMPANY], ids=["user", "adaptive", "company"])
def test_a_layer_past_a_bound_merges_to_the_bound(
    policy: TierPolicy, bound: NumberBound, source: int
) -> None:
    loose = layer(**{bound.path: past(bound, policy)})
    user, adaptive, company = (
        loose if source == layer_source else EMPTY_LAYER
        for layer_source in (USER, ADAPTIVE, COMPANY)
    )

    merged = merge(policy, user, company, adaptive)

    assert getattr(merged.config, bound.path) == policy.bound(bound.path)
    assert merged.sources[bound.path] == TIER_DEFAULT
    assert merged.clamped == {bound.path: pytest.approx(past(bound, policy))}
    # What the decision rules read is the bound, not the stored value.
    attribute, scale = _RULE_INPUTS[bound.path]
    assert getattr(from_config(merged.config, policy, 1), attribute) == pytest.approx(
        policy.bound(bound.path) * scale
    )


@pytest.mark.parametrize("bound", NUMBER_BOUNDS, ids=BOUND_IDS)
@pytest.mark.parametrize("policy", BOUNDED, ids=["FREE", "PRO"])
def test_the_exact_bound_and_tighter_values_are_kept_from_their_layer(
    policy: TierPolicy, bound: NumberBound
) -> None:
    for value in (policy.bound(bound.path), tighter(bound, policy)):
        merged = merge(policy, layer(**{bound.path: value}), EMPTY_LAYER)
        assert getattr(merged.config, bound.path) == pytest.approx(value)
        assert merged.sources[bound.path] == USER
        assert merged.clamped == {}


def test_custom_strategies_lift_the_bounds_until_a_layer_switches_them_off() -> None:
    loose = {bound.path: past(bound, tiers.ENTERPRISE) for bound in NUMBER_BOUNDS}

    lifted = merge(tiers.ENTERPRISE, layer(**loose), EMPTY_LAYER)
    # The company's word is final: custom strategies off means the template binds again.
    held = merge(tiers.ENTERPRISE, layer(**loose), custom_off())

    for path, value in loose.items():
        assert getattr(lifted.config, path) == pytest.approx(value)
        assert lifted.sources[path] == USER
        assert getattr(held.config, path) == tiers.ENTERPRISE.bound(path)
        assert held.sources[path] == TIER_DEFAULT
    assert lifted.clamped == {}
    assert set(held.clamped) == set(loose)


def test_a_tier_without_custom_strategies_cannot_switch_them_on_to_lift_its_bounds() -> None:
    asked = strategy_pb2.StrategyConfig(min_confidence_threshold=0.5)
    asked.features.custom_strategies_enabled = True
    user = Layer(frozenset({"min_confidence_threshold", CUSTOM_FLAG}), asked)

    merged = merge(tiers.PRO, user, EMPTY_LAYER)

    assert merged.config.min_confidence_threshold == pytest.approx(0.7)
    assert not merged.config.features.custom_strategies_enabled


@pytest.mark.parametrize(
    ("policy", "path", "value", "description"),
    [
        (
            tiers.FREE,
            "min_confidence_threshold",
            0.5,
            "min_confidence_threshold 0.5 is below the FREE tier's floor 0.8; "
            "only a tier with custom strategies (ENTERPRISE) may go past it",
        ),
        (
            tiers.PRO,
            "max_signals_per_minute",
            100,
            "max_signals_per_minute 100 is above the PRO tier's ceiling 60; "
            "only a tier with custom strategies (ENTERPRISE) may go past it",
        ),
        (
            tiers.ENTERPRISE,
            "risk_per_trade_percent",
            1.5,
            "risk_per_trade_percent 1.5 is above the ENTERPRISE tier's ceiling 1; "
            "they apply while custom strategies are switched off",
        ),
    ],
)
def test_a_loosening_value_is_named_with_the_tiers_bound(
    policy: TierPolicy, path: str, value: float, description: str
) -> None:
    values = config(**{path: value})
    assert bound_violations(values, [path], policy) == [
        FieldViolation(f"strategy.{path}", description)
    ]


@pytest.mark.parametrize("bound", NUMBER_BOUNDS, ids=BOUND_IDS)
@pytest.mark.parametrize("policy", tiers.POLICIES, ids=["FREE", "PRO", "ENTERPRISE"])
def test_bound_violations_refuse_past_the_bound_only(
    policy: TierPolicy, bound: NumberBound
) -> None:
    def refused(value: float) -> bool:
        values = config(**{bound.path: value})
        return bool(bound_violations(values, [bound.path], policy))

    assert refused(past(bound, policy))
    assert not refused(policy.bound(bound.path))
    assert not refused(tighter(bound, policy))
    # A path the change does not set is not judged.
    assert not bound_violations(config(**{bound.path: past(bound, policy)}), [], policy)


def test_the_bounds_shown_beside_a_strategy() -> None:
    free = tier_bounds(tiers.FREE, tiers.FREE.defaults)
    assert free.min_confidence_threshold == pytest.approx(0.8)
    assert free.min_consensus_score == pytest.approx(0.7)
    assert (free.max_position_count, free.max_signals_per_minute) == (3, 10)
    assert free.risk_per_trade_percent == pytest.approx(1.0)
    assert free.max_position_size_lots == pytest.approx(10.0)
    assert list(free.available_instruments) == ["EURUSD", "GBPUSD"]
    assert free.features.HasField("custom_strategies_enabled")
    assert not free.features.custom_strategies_enabled
    # Other fields are free choices: no bound shown.
    assert not free.HasField("duplicate_window")
    assert not free.HasField("stop_loss_pips")

    lifted = tier_bounds(tiers.ENTERPRISE, tiers.ENTERPRISE.defaults)
    for bound in NUMBER_BOUNDS:
        assert not lifted.HasField(bound.path)  # type: ignore[arg-type]
    assert set(lifted.available_instruments) == tiers.ENTERPRISE.instruments
    assert lifted.features.custom_strategies_enabled

    held_config = merge(tiers.ENTERPRISE, EMPTY_LAYER, custom_off()).config
    held = tier_bounds(tiers.ENTERPRISE, held_config)
    assert held.max_signals_per_minute == 600


_NUMBERS = st.floats(min_value=0.0, max_value=1_000.0, allow_nan=False)
_COUNTS = st.integers(min_value=0, max_value=10_000)


@st.composite
def _number_layer(draw: st.DrawFn) -> Layer:
    values: dict[str, Any] = {}
    for bound in NUMBER_BOUNDS:
        if draw(st.booleans()):
            is_count = isinstance(tiers.FREE.bound(bound.path), int)
            values[bound.path] = draw(_COUNTS if is_count else _NUMBERS)
    return layer(**values)


@settings(max_examples=200, deadline=None, derandomize=True, database=None)
@given(
    st.sampled_from(tiers.POLICIES),
    _number_layer(),
    _number_layer(),
    _number_layer(),
    st.booleans(),
)
def test_no_stack_of_layers_goes_past_a_bound_that_applies(
    policy: TierPolicy, user: Layer, adaptive: Layer, company: Layer, company_off: bool
) -> None:
    if company_off:
        company = Layer(company.fields | {CUSTOM_FLAG}, company.config)
    merged = merge(policy, user, company, adaptive)
    lifted = policy.bounds_lifted(merged.config)
    assert lifted == (policy is tiers.ENTERPRISE and not company_off)
    for bound in NUMBER_BOUNDS:
        value = getattr(merged.config, bound.path)
        if not lifted:
            assert not bound.looser(value, policy.bound(bound.path)), bound.path
        # The winning layer's own value, unless it was past the bound.
        winner = next(
            (
                candidate
                for candidate in (company, adaptive, user)
                if bound.path in candidate.fields
            ),
            None,
        )
        if winner is not None and bound.path not in merged.clamped:
            assert value == getattr(winner.config, bound.path)


# The attribute of core.strategy.Strategy the decision rules read for each bounded path.
_RULE_INPUTS = {
    "min_confidence_threshold": ("min_confidence", 1.0),
    "min_consensus_score": ("min_consensus", 1.0),
    "max_position_count": ("max_positions", 1.0),
    "max_signals_per_minute": ("max_signals_per_minute", 1.0),
    "risk_per_trade_percent": ("risk_fraction", 0.01),
    "max_position_size_lots": ("max_position_lots", 1.0),
}
