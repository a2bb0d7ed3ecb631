"""From direction to signal type (patterns, volatility mode, trend), and the signal's strength."""

from __future__ import annotations

from typing import Any

import pytest

from tests.core.builders import (
    DOWN,
    FREE,
    MINUTE_NS,
    NEUTRAL,
    PRO,
    UP,
    WEAK_DOWN,
    WEAK_UP,
    alternating,
    context,
    history_then,
    pattern,
    prediction,
    ramp,
    run,
    step,
    strategy,
)
from tradeflow.trading.v1 import market_pb2, signal_pb2, strategy_pb2
from trading_engine.core.decision import (
    ACTIONABLE,
    ADJUST,
    BUY,
    FAIL,
    HELD,
    HOLD,
    PASS,
    SELL,
    SKIP,
    WEAK_BUY,
    WEAK_SELL,
)
from trading_engine.core.market import REGIME_HIGH, REGIME_NORMAL
from trading_engine.core.strength import market_favourability, signal_strength

M = market_pb2
S = signal_pb2

CONSERVATIVE = strategy_pb2.VOLATILITY_MODE_CONSERVATIVE
BALANCED = strategy_pb2.VOLATILITY_MODE_BALANCED
AGGRESSIVE = strategy_pb2.VOLATILITY_MODE_AGGRESSIVE

# --- Direction -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("direction", "signal_type", "detail"),
    [
        pytest.param(UP, BUY, "primary direction UP gives BUY", id="UP-BUY"),
        pytest.param(WEAK_UP, WEAK_BUY, "primary direction WEAK_UP gives WEAK_BUY", id="WEAK_UP"),
        pytest.param(
            WEAK_DOWN, WEAK_SELL, "primary direction WEAK_DOWN gives WEAK_SELL", id="WEAK_DOWN"
        ),
        pytest.param(DOWN, SELL, "primary direction DOWN gives SELL", id="DOWN-SELL"),
    ],
)
def test_direction_gives_the_signal_type(direction: int, signal_type: int, detail: str) -> None:
    decision = run(prediction(direction=direction), context(tier=PRO))

    assert decision.disposition == ACTIONABLE
    assert decision.signal_type == signal_type
    assert decision.reason == S.DISPOSITION_REASON_UNSPECIFIED
    assert decision.cancellation_reason == ""
    assert step(decision, S.DECISION_RULE_DIRECTION)[1:] == (PASS, 0.0, 0.0, detail)


def test_neutral_direction_holds() -> None:
    decision = run(prediction(direction=NEUTRAL), context(tier=PRO))

    assert decision.disposition == HELD
    assert decision.reason == S.DISPOSITION_REASON_NEUTRAL_DIRECTION
    assert decision.signal_type == HOLD
    assert decision.entry is None
    assert decision.trace[-1][0] == S.DECISION_RULE_DIRECTION
    assert decision.trace[-1][4] == "primary direction NEUTRAL gives HOLD"


def test_neutral_direction_is_recorded_as_the_failing_rule() -> None:
    # The direction rule stopped the signal: its trace line must say FAIL (RuleOutcome docs).
    decision = run(prediction(direction=NEUTRAL), context(tier=PRO))

    assert decision.trace[-1][:2] == (S.DECISION_RULE_DIRECTION, FAIL)


# --- Patterns --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("direction", "patterns", "signal_type", "outcome", "support", "opposition", "score"),
    [
        pytest.param(
            WEAK_UP, [pattern(UP, 0.7)], BUY, ADJUST, 0.7, 0.0, 0.7, id="weak-buy-strengthened"
        ),
        pytest.param(
            WEAK_DOWN,
            [pattern(DOWN, 0.7)],
            SELL,
            ADJUST,
            0.7,
            0.0,
            0.7,
            id="weak-sell-strengthened",
        ),
        pytest.param(UP, [pattern(DOWN, 0.7)], WEAK_BUY, ADJUST, 0.0, 0.7, 0.0, id="buy-weakened"),
        pytest.param(
            DOWN, [pattern(UP, 0.7)], WEAK_SELL, ADJUST, 0.0, 0.7, 0.0, id="sell-weakened"
        ),
        pytest.param(UP, [pattern(UP, 0.7)], BUY, PASS, 0.7, 0.0, 0.7, id="buy-already-strong"),
        pytest.param(
            WEAK_UP,
            [pattern(UP, 0.7), pattern(DOWN, 0.7)],
            WEAK_BUY,
            PASS,
            0.7,
            0.7,
            0.7,
            id="balanced-unchanged",
        ),
        pytest.param(
            WEAK_UP,
            [pattern(UP, 0.7), pattern(WEAK_UP, 0.65), pattern(DOWN, 0.9)],
            BUY,
            ADJUST,
            1.35,
            0.9,
            0.7,
            id="sums-of-probabilities",
        ),
        # Exactly at min_pattern_probability counts.
        pytest.param(
            WEAK_UP, [pattern(UP, 0.6)], BUY, ADJUST, 0.6, 0.0, 0.6, id="at-min-probability"
        ),
    ],
)
def test_patterns_adjust_the_signal_type(
    direction: int,
    patterns: list[Any],
    signal_type: int,
    outcome: int,
    support: float,
    opposition: float,
    score: float,
) -> None:
    decision = run(prediction(direction=direction, patterns=patterns), context(tier=PRO))

    assert decision.disposition == ACTIONABLE
    assert decision.signal_type == signal_type
    assert decision.pattern_score == score
    line = step(decision, S.DECISION_RULE_PATTERN)
    assert line[1] == outcome
    assert line[2:4] == pytest.approx((support, opposition))


@pytest.mark.parametrize(
    "direction", [pytest.param(WEAK_UP, id="weak-buy"), pytest.param(WEAK_DOWN, id="weak-sell")]
)
def test_pattern_conflict_weakens_a_weak_signal_to_hold(direction: int) -> None:
    against = DOWN if direction == WEAK_UP else UP
    decision = run(
        prediction(direction=direction, patterns=[pattern(against, 0.8)]), context(tier=PRO)
    )

    assert decision.disposition == HELD
    assert decision.reason == S.DISPOSITION_REASON_PATTERN_CONFLICT
    assert decision.signal_type == HOLD
    assert decision.entry is None
    assert decision.trace[-1][0] == S.DECISION_RULE_PATTERN
    assert decision.trace[-1][2:4] == (0.0, 0.8)


def test_pattern_conflict_is_recorded_as_the_failing_rule() -> None:
    # The pattern rule stopped the signal: its trace line must say FAIL (RuleOutcome docs).
    decision = run(prediction(direction=WEAK_UP, patterns=[pattern(DOWN, 0.8)]), context(tier=PRO))

    assert decision.trace[-1][:2] == (S.DECISION_RULE_PATTERN, FAIL)


@pytest.mark.parametrize(
    ("tier", "overrides", "patterns", "detail"),
    [
        pytest.param(
            PRO, {}, [pattern(UP, 0.59)], "no pattern at or above the minimum probability",
            id="below-min-probability",
        ),
        pytest.param(
            PRO, {}, [pattern(NEUTRAL, 0.95)], "no pattern at or above the minimum probability",
            id="neutral-pattern-not-counted",
        ),
        pytest.param(
            PRO, {"min_pattern_probability": 0.8}, [pattern(UP, 0.75)],
            "no pattern at or above the minimum probability", id="strategy-minimum",
        ),
        pytest.param(
            FREE, {}, [pattern(UP, 0.95)], "pattern trading is off", id="free-tier-no-patterns"
        ),
        pytest.param(
            FREE, {"features": {"pattern_trading_enabled": True}}, [pattern(UP, 0.95)],
            "pattern trading is off", id="free-tier-flag-clamped",
        ),
        pytest.param(
            PRO, {"features": {"pattern_trading_enabled": False}}, [pattern(UP, 0.95)],
            "pattern trading is off", id="pro-switched-off",
        ),
    ],
)  # fmt: skip
def test_patterns_ignored(
    tier: int, overrides: dict[str, Any], patterns: list[Any], detail: str
) -> None:
    decision = run(
        prediction(direction=WEAK_UP, patterns=patterns), context(strategy(tier, **overrides))
    )

    assert decision.disposition == ACTIONABLE
    assert decision.signal_type == WEAK_BUY
    assert decision.pattern_score is None
    line = step(decision, S.DECISION_RULE_PATTERN)
    assert (line[1], line[4]) == (SKIP, detail)


# --- Volatility mode -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("mode", "direction", "signal_type", "detail"),
    [
        pytest.param(
            CONSERVATIVE, UP, WEAK_BUY, "HIGH volatility, CONSERVATIVE: weakened",
            id="conservative-buy-weakened",
        ),
        pytest.param(
            CONSERVATIVE, DOWN, WEAK_SELL, "HIGH volatility, CONSERVATIVE: weakened",
            id="conservative-sell-weakened",
        ),
        pytest.param(
            CONSERVATIVE, WEAK_UP, WEAK_BUY, "HIGH volatility, CONSERVATIVE: already weak",
            id="conservative-weak-unchanged",
        ),
        pytest.param(
            AGGRESSIVE, WEAK_DOWN, SELL, "HIGH volatility, AGGRESSIVE: strengthened",
            id="aggressive-weak-sell-strengthened",
        ),
        pytest.param(
            AGGRESSIVE, WEAK_UP, BUY, "HIGH volatility, AGGRESSIVE: strengthened",
            id="aggressive-weak-buy-strengthened",
        ),
        pytest.param(
            AGGRESSIVE, UP, BUY, "HIGH volatility, AGGRESSIVE: already strong",
            id="aggressive-strong-unchanged",
        ),
        pytest.param(
            BALANCED, UP, BUY, "HIGH volatility, BALANCED: unchanged", id="balanced-buy"
        ),
        pytest.param(
            BALANCED, WEAK_DOWN, WEAK_SELL, "HIGH volatility, BALANCED: unchanged",
            id="balanced-weak-sell",
        ),
        pytest.param(
            strategy_pb2.VOLATILITY_MODE_UNSPECIFIED, UP, BUY,
            "HIGH volatility, BALANCED: unchanged", id="unspecified-is-balanced",
        ),
    ],
)  # fmt: skip
def test_volatility_mode_in_high_volatility(
    mode: int, direction: int, signal_type: int, detail: str
) -> None:
    book, last = history_then(alternating(1.1, 40.0, 8, MINUTE_NS))
    chosen = strategy(PRO, volatility_mode=mode)
    decision = run(prediction(direction=direction, price=last), context(chosen), book)

    assert decision.market is not None
    assert decision.market.regime == REGIME_HIGH
    assert decision.disposition == ACTIONABLE
    assert decision.signal_type == signal_type
    line = step(decision, S.DECISION_RULE_VOLATILITY_MODE)
    base = {UP: BUY, WEAK_UP: WEAK_BUY, WEAK_DOWN: WEAK_SELL, DOWN: SELL}[direction]
    assert line[1] == (PASS if signal_type == base else ADJUST)
    assert line[2:4] == pytest.approx((40.0, 25.0))
    assert line[4] == detail


@pytest.mark.parametrize("mode", [CONSERVATIVE, AGGRESSIVE])
def test_volatility_mode_leaves_normal_volatility_alone(mode: int) -> None:
    book, last = history_then(alternating(1.1, 10.0, 8, MINUTE_NS))
    chosen = strategy(PRO, volatility_mode=mode)
    decision = run(prediction(price=last, direction=WEAK_UP), context(chosen), book)

    assert decision.market is not None
    assert decision.market.regime == REGIME_NORMAL
    assert decision.signal_type == WEAK_BUY
    line = step(decision, S.DECISION_RULE_VOLATILITY_MODE)
    assert (line[1], line[4]) == (PASS, "volatility below the HIGH band: unchanged")


# --- Trend following -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("bps_per_minute", "direction", "confidence", "trend_following", "outcome", "held"),
    [
        pytest.param(2.0, DOWN, 0.84, True, FAIL, True, id="sell-in-uptrend-too-unsure"),
        pytest.param(2.0, DOWN, 0.85, True, PASS, False, id="sell-in-uptrend-at-threshold"),
        pytest.param(2.0, WEAK_DOWN, 0.84, True, FAIL, True, id="weak-sell-in-uptrend"),
        pytest.param(-2.0, UP, 0.84, True, FAIL, True, id="buy-in-downtrend-too-unsure"),
        pytest.param(-2.0, UP, 0.9, True, PASS, False, id="buy-in-downtrend-confident"),
        pytest.param(2.0, UP, 0.75, True, PASS, False, id="buy-with-uptrend"),
        pytest.param(2.0, DOWN, 0.75, False, SKIP, False, id="trend-following-off"),
    ],
)
def test_trend_following(
    bps_per_minute: float,
    direction: int,
    confidence: float,
    trend_following: bool,
    outcome: int,
    held: bool,
) -> None:
    book, last = history_then(ramp(1.1, bps_per_minute, 12))
    chosen = strategy(PRO, trend_following_enabled=trend_following)
    message = prediction(direction=direction, confidence=confidence, price=last)
    decision = run(message, context(chosen), book)

    assert decision.market is not None
    assert decision.market.trend == (M.TREND_UP if bps_per_minute > 0 else M.TREND_DOWN)
    line = step(decision, S.DECISION_RULE_TREND)
    assert line[1] == outcome
    if outcome == SKIP:
        assert line[4] == "trend following is off"
    else:
        assert line[2:4] == (confidence, 0.85)
    if held:
        assert decision.disposition == HELD
        assert decision.reason == S.DISPOSITION_REASON_COUNTER_TREND
        assert decision.signal_type == HOLD
        assert decision.trace[-1] is line
    else:
        assert decision.disposition == ACTIONABLE


# --- Strength --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("confidence", "consensus", "pattern_", "market", "volume", "strength", "weights"),
    [
        pytest.param(
            0.8, 0.6, None, 0.9, None, (0.3 * 0.8 + 0.25 * 0.6 + 0.15 * 0.9) / 0.7, 0.7,
            id="no-pattern-no-volume",
        ),
        pytest.param(
            0.8, 0.6, 0.5, 0.9, 0.4,
            0.3 * 0.8 + 0.25 * 0.6 + 0.2 * 0.5 + 0.15 * 0.9 + 0.1 * 0.4, 1.0, id="all-five",
        ),
        pytest.param(
            0.8, 0.6, 0.5, 0.9, None, (0.3 * 0.8 + 0.25 * 0.6 + 0.2 * 0.5 + 0.15 * 0.9) / 0.9,
            0.9, id="no-volume",
        ),
        pytest.param(
            0.8, 0.6, None, 0.9, 0.4, (0.3 * 0.8 + 0.25 * 0.6 + 0.15 * 0.9 + 0.1 * 0.4) / 0.8,
            0.8, id="no-pattern",
        ),
        # Zero is a present factor, not an absent one.
        pytest.param(
            1.0, 1.0, 0.0, 1.0, 0.0, 0.7, 1.0, id="zero-factors-count",
        ),
        pytest.param(1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0, id="all-ones"),
        pytest.param(0.0, 0.0, None, 0.0, None, 0.0, 0.7, id="all-zeros"),
    ],
)  # fmt: skip
def test_signal_strength_renormalises_over_present_factors(
    confidence: float,
    consensus: float,
    pattern_: float | None,
    market: float,
    volume: float | None,
    strength: float,
    weights: float,
) -> None:
    assert signal_strength(confidence, consensus, pattern_, market, volume) == pytest.approx(
        (strength, weights)
    )


@pytest.mark.parametrize(
    ("regime", "spread", "trend", "side", "favourability"),
    [
        pytest.param(
            M.VOLATILITY_REGIME_NORMAL, 0.0, M.TREND_UP, 1, 1.0, id="normal-tight-with-trend"
        ),
        pytest.param(
            M.VOLATILITY_REGIME_UNSPECIFIED, 1.0, M.TREND_UNSPECIFIED, 1,
            0.4 * 0.5 + 0.3 * (1 - 0.5 / 3) + 0.3 * 0.7, id="unknown-regime-and-trend",
        ),
        pytest.param(
            M.VOLATILITY_REGIME_LOW, -1.0, M.TREND_SIDEWAYS, -1, 0.4 * 0.8 + 0.3 * 0.75 + 0.3 * 0.7,
            id="low-unknown-spread",
        ),
        pytest.param(
            M.VOLATILITY_REGIME_HIGH, 3.0, M.TREND_UP, -1, 0.4 * 0.6 + 0.3 * 0.5 + 0.3 * 0.4,
            id="high-max-spread-against-trend",
        ),
        pytest.param(
            M.VOLATILITY_REGIME_EXTREME, 9.0, M.TREND_DOWN, -1, 0.0 + 0.0 + 0.3,
            id="extreme-spread-floored",
        ),
    ],
)  # fmt: skip
def test_market_favourability(
    regime: int, spread: float, trend: int, side: int, favourability: float
) -> None:
    assert market_favourability(regime, spread, 3.0, trend, side) == pytest.approx(favourability)


# Market factor with no history (regime unknown 0.5, trend unknown 0.7) and a 1-pip spread.
_NO_HISTORY_MARKET = 0.4 * 0.5 + 0.3 * (1 - 0.5 * 1 / 3) + 0.3 * 0.7


@pytest.mark.parametrize(
    ("overrides", "strength", "weights"),
    [
        pytest.param(
            {"patterns": [pattern(UP, 0.7)], "volume": 0.9},
            0.3 * 0.8 + 0.25 * 0.8 + 0.2 * 0.7 + 0.15 * _NO_HISTORY_MARKET + 0.1 * 0.9,
            1.0, id="all-five-factors",
        ),
        pytest.param(
            {}, (0.3 * 0.8 + 0.25 * 0.8 + 0.15 * _NO_HISTORY_MARKET) / 0.7, 0.7,
            id="no-pattern-no-volume",
        ),
        pytest.param(
            {"patterns": [pattern(UP, 0.7)]},
            (0.3 * 0.8 + 0.25 * 0.8 + 0.2 * 0.7 + 0.15 * _NO_HISTORY_MARKET) / 0.9, 0.9,
            id="pattern-no-volume",
        ),
        pytest.param(
            {"volume": 0.9}, (0.3 * 0.8 + 0.25 * 0.8 + 0.15 * _NO_HISTORY_MARKET + 0.1 * 0.9) / 0.8,
            0.8, id="volume-no-pattern",
        ),
        pytest.param(
            {"volume": 0.0}, (0.3 * 0.8 + 0.25 * 0.8 + 0.15 * _NO_HISTORY_MARKET) / 0.8, 0.8,
            id="volume-zero-is-present",
        ),
        # Only an opposing pattern counted: the pattern factor is 0 and present.
        pytest.param(
            {"patterns": [pattern(DOWN, 0.7)]},
            (0.3 * 0.8 + 0.25 * 0.8 + 0.15 * _NO_HISTORY_MARKET) / 0.9, 0.9,
            id="opposing-pattern-scores-zero",
        ),
        # Bid equals ask: the spread part is 1.
        pytest.param(
            {"spread_pips": 0.0},
            (0.3 * 0.8 + 0.25 * 0.8 + 0.15 * (0.2 + 0.3 + 0.21)) / 0.7, 0.7, id="zero-spread",
        ),
        # No bid, ask or quoted spread: the spread part is 0.75.
        pytest.param(
            {"spread_pips": None},
            (0.3 * 0.8 + 0.25 * 0.8 + 0.15 * (0.2 + 0.225 + 0.21)) / 0.7, 0.7,
            id="unknown-spread",
        ),
    ],
)  # fmt: skip
def test_decision_strength(overrides: dict[str, Any], strength: float, weights: float) -> None:
    decision = run(prediction(confidence=0.8, **overrides), context(tier=PRO))

    assert decision.disposition == ACTIONABLE
    assert decision.strength == pytest.approx(strength)
    line = step(decision, S.DECISION_RULE_STRENGTH)
    assert line[1] == PASS
    assert line[2:4] == pytest.approx((strength, weights))


def test_strength_with_trend_and_regime_known() -> None:
    # Rising NORMAL market: BUY is with the trend (1.0), NORMAL scores 1.0, 1-pip spread.
    book, last = history_then(ramp(1.1, 2.0, 12))
    decision = run(prediction(price=last, confidence=0.9), context(tier=PRO), book)

    market = 0.4 * 1.0 + 0.3 * (1 - 0.5 / 3) + 0.3 * 1.0
    assert decision.market is not None
    assert decision.market.favourability == pytest.approx(market)
    assert decision.strength == pytest.approx((0.3 * 0.9 + 0.25 * 0.9 + 0.15 * market) / 0.7)
