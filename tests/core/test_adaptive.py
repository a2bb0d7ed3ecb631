"""Adaptive rules: the seed's thresholds, with the sample minimum, bounds and cooldown."""

from __future__ import annotations

import pytest

from trading_engine.core.adaptive import AdaptiveRules, Current, Evidence, adjust

HOUR_NS = 3_600 * 1_000_000_000
NOW_NS = 1_800_000_000_000_000_000
RULES = AdaptiveRules()


def evidence(closed: int = 20, wins: int = 10, drawdown: float = 0.0) -> Evidence:
    return Evidence(closed, wins, drawdown)


def current(
    threshold: float = 0.7, multiplier: float = 1.0, floor: float = 0.7, **flags: bool
) -> Current:
    return Current(threshold, multiplier, floor, **flags)


@pytest.mark.parametrize(
    ("wins", "threshold", "floor", "expected"),
    [
        pytest.param(11, 0.7, 0.7, 0.75, id="hit-rate-0.55-raises-by-0.05"),
        pytest.param(12, 0.7, 0.7, None, id="hit-rate-0.60-is-not-below"),
        pytest.param(16, 0.75, 0.7, None, id="hit-rate-0.80-is-not-above"),
        pytest.param(17, 0.75, 0.7, 0.73, id="hit-rate-0.85-lowers-by-0.02"),
        pytest.param(17, 0.71, 0.7, 0.7, id="lowered-to-the-floor-not-below"),
        pytest.param(17, 0.7, 0.7, None, id="at-the-floor-stays"),
        pytest.param(17, 0.65, 0.7, None, id="below-the-floor-never-raised-by-a-cut"),
        pytest.param(0, 0.97, 0.7, 0.99, id="raised-to-0.99-not-above"),
        pytest.param(0, 0.99, 0.7, None, id="at-0.99-stays"),
    ],
)
def test_the_threshold_follows_the_hit_rate_within_its_bounds(
    wins: int, threshold: float, floor: float, expected: float | None
) -> None:
    adjustment = adjust(evidence(20, wins), current(threshold, floor=floor), 0, NOW_NS, RULES)

    if expected is None:
        assert adjustment is None
    else:
        assert adjustment is not None
        assert adjustment.min_confidence_threshold == expected
        assert adjustment.position_size_multiplier is None
        assert f"min_confidence_threshold {threshold:g} -> {expected:g}" in adjustment.reason
        assert "over 20 closed signals" in adjustment.reason


@pytest.mark.parametrize(
    ("drawdown", "multiplier", "expected"),
    [
        pytest.param(0.10, 1.0, None, id="10-percent-is-not-above"),
        pytest.param(0.1001, 1.0, 0.8, id="above-10-percent-cuts-20-percent"),
        pytest.param(0.25, 0.8, 0.64, id="cuts-compound"),
        pytest.param(0.25, 0.3, 0.25, id="not-below-the-minimum"),
        pytest.param(0.25, 0.25, None, id="at-the-minimum-stays"),
    ],
)
def test_drawdown_cuts_the_size_multiplier_within_its_bounds(
    drawdown: float, multiplier: float, expected: float | None
) -> None:
    # A 0.70 hit rate leaves the threshold alone.
    adjustment = adjust(
        evidence(20, 14, drawdown), current(multiplier=multiplier), 0, NOW_NS, RULES
    )

    if expected is None:
        assert adjustment is None
    else:
        assert adjustment is not None
        assert adjustment.position_size_multiplier == expected
        assert adjustment.min_confidence_threshold is None
        assert "position_size_multiplier" in adjustment.reason


def test_both_rules_can_act_at_once_and_the_reason_names_both() -> None:
    adjustment = adjust(evidence(20, 5, 0.15), current(), 0, NOW_NS, RULES)

    assert adjustment is not None
    assert (adjustment.min_confidence_threshold, adjustment.position_size_multiplier) == (
        0.75,
        0.8,
    )
    assert adjustment.reason == (
        "hit rate 0.25 over 20 closed signals is below 0.6: min_confidence_threshold 0.7 -> 0.75; "
        "drawdown 15.0% is above 10%: position_size_multiplier 1 -> 0.8"
    )


def test_nothing_changes_before_the_minimum_number_of_closed_signals() -> None:
    assert adjust(evidence(19, 0, 0.5), current(), 0, NOW_NS, RULES) is None
    assert adjust(evidence(20, 0, 0.5), current(), 0, NOW_NS, RULES) is not None


@pytest.mark.parametrize(
    ("since_ns", "adjusted"),
    [
        pytest.param(HOUR_NS - 1, False, id="within-the-cooldown"),
        pytest.param(HOUR_NS, True, id="cooldown-over"),
    ],
)
def test_a_cooldown_separates_two_adjustments(since_ns: int, adjusted: bool) -> None:
    last = NOW_NS - since_ns
    assert (adjust(evidence(20, 0), current(), last, NOW_NS, RULES) is not None) == adjusted


def test_fields_the_company_decides_are_left_alone() -> None:
    frozen = current(threshold_adjustable=False, size_adjustable=False)

    assert adjust(evidence(20, 0, 0.5), frozen, 0, NOW_NS, RULES) is None


def test_steps_do_not_accumulate_binary_noise() -> None:
    threshold = 0.6
    for _ in range(7):
        adjustment = adjust(evidence(20, 0), current(threshold, floor=0.6), 0, NOW_NS, RULES)
        assert adjustment is not None
        assert adjustment.min_confidence_threshold is not None
        threshold = adjustment.min_confidence_threshold
    assert threshold == 0.95
