"""The gates: confidence, consensus and market condition (volatility, trend, staleness, spread)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.core.builders import (
    DOWN,
    ENTERPRISE,
    FREE,
    MINUTE_NS,
    NEUTRAL,
    NOW_NS,
    PRO,
    SECOND_NS,
    UP,
    WEAK_DOWN,
    alternating,
    context,
    feed,
    history_then,
    prediction,
    ramp,
    rules,
    run,
    step,
    strategy,
    vote,
)
from tradeflow.trading.v1 import market_pb2, signal_pb2
from trading_engine.core.decision import ACTIONABLE, FAIL, HOLD, PASS, REJECTED
from trading_engine.core.market import MarketBook, classify_trend, classify_volatility

M = market_pb2
S = signal_pb2

# --- Confidence ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tier", "confidence", "passes"),
    [
        pytest.param(FREE, 0.8, True, id="free-at-0.8"),
        pytest.param(FREE, 0.7999, False, id="free-below-0.8"),
        pytest.param(PRO, 0.7, True, id="pro-at-0.7"),
        pytest.param(PRO, 0.6999, False, id="pro-below-0.7"),
        pytest.param(ENTERPRISE, 0.6, True, id="enterprise-at-0.6"),
        pytest.param(ENTERPRISE, 0.5999, False, id="enterprise-below-0.6"),
    ],
)
def test_confidence_gate(tier: int, confidence: float, passes: bool) -> None:
    threshold = {FREE: 0.8, PRO: 0.7, ENTERPRISE: 0.6}[tier]
    # Consensus at 1.0 from one agreeing vote, so only confidence decides.
    message = prediction(confidence=confidence, votes=[vote(UP, 1.0, 1.0)])
    decision = run(message, context(tier=tier))

    line = step(decision, S.DECISION_RULE_CONFIDENCE)
    assert line[2:4] == (confidence, threshold)
    if passes:
        assert line[1] == PASS
        assert decision.disposition == ACTIONABLE
    else:
        assert line[1] == FAIL
        assert decision.disposition == REJECTED
        assert decision.reason == S.DISPOSITION_REASON_CONFIDENCE_BELOW_THRESHOLD
        assert decision.signal_type == HOLD
        assert decision.trace[-1] is line
        assert f"{confidence:.4f}" in decision.cancellation_reason


# --- Consensus -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("direction", "votes", "consensus", "passes"),
    [
        # weight x confidence: 3 for, 2 against -> 0.6, exactly PRO's minimum.
        pytest.param(UP, [vote(UP, 1.0, 3.0), vote(DOWN, 1.0, 2.0)], 0.6, True, id="at-threshold"),
        pytest.param(
            UP, [vote(UP, 1.0, 59.0), vote(DOWN, 1.0, 41.0)], 0.59, False, id="just-below"
        ),
        # Neutral votes count against the signal.
        pytest.param(
            UP,
            [vote(UP, 1.0, 3.0), vote(NEUTRAL, 1.0, 2.0)],
            0.6,
            True,
            id="neutral-counts-against",
        ),
        pytest.param(
            UP, [vote(UP, 1.0, 1.0), vote(NEUTRAL, 1.0, 1.0)], 0.5, False, id="neutral-half"
        ),
        # Each vote counts with weight x confidence: 0.5 for, 1.0 against.
        pytest.param(
            UP, [vote(UP, 0.5, 1.0), vote(DOWN, 1.0, 1.0)], 1 / 3, False, id="confidence-weighted"
        ),
        # Weak votes are on the same side as strong ones.
        pytest.param(
            DOWN,
            [vote(WEAK_DOWN, 0.8, 1.0), vote(DOWN, 0.8, 1.0), vote(UP, 0.8, 1.0)],
            2 / 3,
            True,
            id="sell-side-weak-votes-agree",
        ),
        # A zero-weight vote carries no mass at all.
        pytest.param(
            UP, [vote(UP, 1.0, 3.0), vote(DOWN, 1.0, 0.0)], 1.0, True, id="zero-weight-ignored"
        ),
        # Masses whose sum overflows a double: only the weights' ratios count, as for 1 and 1.
        pytest.param(
            UP,
            [vote(UP, 0.8, 1.7976931348623157e308), vote(DOWN, 0.8, 1.7976931348623157e308)],
            0.5,
            False,
            id="weights-overflowing",
        ),
        pytest.param(
            UP,
            [vote(UP, 0.9, 1e308), vote(UP, 0.9, 1e308), vote(DOWN, 0.9, 1e308)],
            2 / 3,
            True,
            id="weights-overflowing-agree",
        ),
    ],
)
def test_consensus_gate(direction: int, votes: list[Any], consensus: float, passes: bool) -> None:
    decision = run(prediction(direction=direction, votes=votes), context(tier=PRO))

    assert decision.consensus == pytest.approx(consensus)
    line = step(decision, S.DECISION_RULE_CONSENSUS)
    assert line[2] == pytest.approx(consensus)
    assert line[3] == 0.6
    if passes:
        assert line[1] == PASS
        assert line[4] == "at or above the minimum"
        assert decision.disposition == ACTIONABLE
    else:
        assert line[1] == FAIL
        assert decision.disposition == REJECTED
        assert decision.reason == S.DISPOSITION_REASON_CONSENSUS_BELOW_THRESHOLD
        assert decision.trace[-1] is line
        assert f"of {len(votes)} votes" in decision.cancellation_reason


@pytest.mark.parametrize(
    ("votes", "confidence", "passes"),
    [
        pytest.param([], 0.8, True, id="no-votes-at-threshold"),
        pytest.param([], 0.79, False, id="no-votes-below"),
        pytest.param([vote(DOWN, 1.0, 0.0), vote(UP, 1.0, 0.0)], 0.8, True, id="zero-weights-at"),
        pytest.param([vote(DOWN, 1.0, 0.0)], 0.79, False, id="zero-weights-below"),
        pytest.param([vote(DOWN, 0.0, 5.0)], 0.8, True, id="zero-confidence-votes-at"),
    ],
)
def test_without_ensemble_mass_the_confidence_stands_in(
    votes: list[Any], confidence: float, passes: bool
) -> None:
    # min_consensus 0.8 above min_confidence 0.7, so the consensus gate decides.
    decision = run(
        prediction(confidence=confidence, votes=votes),
        context(strategy(PRO, min_consensus_score=0.8)),
    )

    assert decision.consensus == confidence
    line = step(decision, S.DECISION_RULE_CONSENSUS)
    assert line[1:4] == (PASS if passes else FAIL, confidence, 0.8)
    if passes:
        # Zero-weight or zero-confidence votes carry no ensemble opinion either.
        assert line[4] == "no usable votes: confidence stands in"
    if not passes:
        assert decision.reason == S.DISPOSITION_REASON_CONSENSUS_BELOW_THRESHOLD


# --- Market condition: regimes and trends ----------------------------------------------------


@pytest.mark.parametrize(
    ("volatility", "regime"),
    [
        pytest.param(0.0, M.VOLATILITY_REGIME_LOW, id="flat-is-low"),
        pytest.param(4.99, M.VOLATILITY_REGIME_LOW, id="below-low"),
        pytest.param(5.0, M.VOLATILITY_REGIME_NORMAL, id="at-low-is-normal"),
        pytest.param(24.99, M.VOLATILITY_REGIME_NORMAL, id="below-high"),
        pytest.param(25.0, M.VOLATILITY_REGIME_HIGH, id="at-high"),
        pytest.param(59.99, M.VOLATILITY_REGIME_HIGH, id="below-extreme"),
        pytest.param(60.0, M.VOLATILITY_REGIME_EXTREME, id="at-extreme"),
    ],
)
def test_volatility_bands(volatility: float, regime: int) -> None:
    assert classify_volatility(volatility, 5, 5, 5.0, 25.0, 60.0) == regime


def test_volatility_is_unknown_only_without_enough_history() -> None:
    assert classify_volatility(30.0, 4, 5, 5.0, 25.0, 60.0) == M.VOLATILITY_REGIME_UNSPECIFIED


@pytest.mark.parametrize(
    ("trend_bps", "samples", "trend"),
    [
        pytest.param(10.0, 4, M.TREND_UNSPECIFIED, id="too-few-samples"),
        pytest.param(3.0, 5, M.TREND_UP, id="at-threshold-up"),
        pytest.param(2.99, 5, M.TREND_SIDEWAYS, id="below-threshold"),
        pytest.param(-2.99, 5, M.TREND_SIDEWAYS, id="above-minus-threshold"),
        pytest.param(-3.0, 5, M.TREND_DOWN, id="at-minus-threshold-down"),
    ],
)
def test_trend_bands(trend_bps: float, samples: int, trend: int) -> None:
    assert classify_trend(trend_bps, samples, 5, 3.0) == trend


@pytest.mark.parametrize(
    ("volatility", "regime", "signal_type"),
    [
        pytest.param(2.0, M.VOLATILITY_REGIME_LOW, S.SIGNAL_TYPE_BUY, id="low"),
        pytest.param(10.0, M.VOLATILITY_REGIME_NORMAL, S.SIGNAL_TYPE_BUY, id="normal"),
        # CONSERVATIVE (the default) weakens BUY in HIGH volatility.
        pytest.param(40.0, M.VOLATILITY_REGIME_HIGH, S.SIGNAL_TYPE_WEAK_BUY, id="high"),
    ],
)
def test_price_history_sets_the_volatility_regime(
    volatility: float, regime: int, signal_type: int
) -> None:
    book, last = history_then(alternating(1.1, volatility, 8, MINUTE_NS))
    decision = run(prediction(price=last), context(tier=PRO), book)

    market = decision.market
    assert market is not None
    assert market.regime == regime
    assert market.volatility_bps == pytest.approx(volatility)
    assert market.trend == M.TREND_SIDEWAYS
    assert market.samples == 7
    assert decision.disposition == ACTIONABLE
    assert decision.signal_type == signal_type
    line = step(decision, S.DECISION_RULE_MARKET_CONDITION)
    assert line[1] == PASS
    assert line[2:4] == pytest.approx((volatility, 60.0))


def test_extreme_volatility_is_rejected() -> None:
    book, last = history_then(alternating(1.1, 100.0, 8, MINUTE_NS))
    decision = run(prediction(price=last), context(tier=PRO), book)

    assert decision.market is not None
    assert decision.market.regime == M.VOLATILITY_REGIME_EXTREME
    assert decision.disposition == REJECTED
    assert decision.reason == S.DISPOSITION_REASON_EXTREME_VOLATILITY
    assert decision.signal_type == HOLD
    rule, outcome, observed, threshold, _ = decision.trace[-1]
    assert (rule, outcome) == (S.DECISION_RULE_MARKET_CONDITION, FAIL)
    assert (observed, threshold) == pytest.approx((100.0, 60.0))
    assert "100.0 bps" in decision.cancellation_reason


def test_several_decisions_build_the_history_themselves() -> None:
    # Eight predictions a minute apart, alternating by 100 bps/sqrt(h): the last is EXTREME.
    book = MarketBook()
    prices = alternating(1.1, 100.0, 8, MINUTE_NS)
    decisions = []
    for index, price in enumerate(prices):
        at = NOW_NS - (len(prices) - 1 - index) * MINUTE_NS
        message = prediction(prediction_id=f"p-{index}", price=price, at_ns=at, spread_pips=None)
        decisions.append(run(message, context(tier=ENTERPRISE, now_ns=at), book))

    assert decisions[0].market is not None
    assert decisions[0].market.samples == 0
    assert decisions[-1].market is not None
    assert decisions[-1].market.samples == 7
    assert decisions[-1].reason == S.DISPOSITION_REASON_EXTREME_VOLATILITY


@pytest.mark.parametrize(
    ("bps_per_minute", "trend"),
    [
        pytest.param(2.0, M.TREND_UP, id="rising-up"),
        pytest.param(-2.0, M.TREND_DOWN, id="falling-down"),
        pytest.param(0.1, M.TREND_SIDEWAYS, id="drifting-sideways"),
    ],
)
def test_price_history_sets_the_trend(bps_per_minute: float, trend: int) -> None:
    book, last = history_then(ramp(1.1, bps_per_minute, 12))
    # ENTERPRISE, confident: the trend rule lets counter-trend signals through at 0.9.
    decision = run(prediction(price=last), context(tier=ENTERPRISE), book)

    market = decision.market
    assert market is not None
    assert market.trend == trend
    if trend == M.TREND_UP:
        assert market.trend_bps >= 3.0
    elif trend == M.TREND_DOWN:
        assert market.trend_bps <= -3.0
    else:
        assert abs(market.trend_bps) < 3.0
    # A steady 2 bps a minute is 2 x sqrt(60) = 15.5 bps/sqrt(h): NORMAL.
    assert market.volatility_bps == pytest.approx(abs(bps_per_minute) * 60**0.5, rel=1e-6)


def test_no_regime_or_trend_before_five_returns() -> None:
    book, last = history_then(alternating(1.1, 40.0, 5, MINUTE_NS))
    decision = run(prediction(price=last), context(tier=PRO), book)

    market = decision.market
    assert market is not None
    assert market.samples == 4
    assert market.regime == M.VOLATILITY_REGIME_UNSPECIFIED
    assert market.trend == M.TREND_UNSPECIFIED
    assert market.volatility_bps == 0.0
    assert decision.signal_type == S.SIGNAL_TYPE_BUY


def test_a_flat_market_with_enough_history_is_low_volatility() -> None:
    # Seven unchanged returns are enough history: realised volatility 0 is below the LOW band.
    book, last = history_then([1.1] * 8)
    decision = run(prediction(price=last), context(tier=PRO), book)

    market = decision.market
    assert market is not None
    assert market.samples == 7
    assert market.trend == M.TREND_SIDEWAYS
    assert market.regime == M.VOLATILITY_REGIME_LOW


def test_one_companys_prices_never_move_anothers_view() -> None:
    book = MarketBook()
    feed(book, alternating(1.1, 100.0, 8, MINUTE_NS), company_id="other", end_ns=NOW_NS)
    decision = run(prediction(), context(tier=PRO, company_id="company-1"), book)

    assert decision.market is not None
    assert decision.market.samples == 0
    assert decision.disposition == ACTIONABLE


# --- Market condition: staleness and spread --------------------------------------------------


@pytest.mark.parametrize(
    ("age_s", "stale"),
    [
        pytest.param(0, False, id="fresh"),
        pytest.param(30, False, id="at-max-age"),
        pytest.param(31, True, id="older-than-max-age"),
    ],
)
def test_stale_price(age_s: int, stale: bool) -> None:
    decision = run(prediction(at_ns=NOW_NS - age_s * SECOND_NS), context(tier=PRO))

    assert decision.market is not None
    assert decision.market.price_age_ns == age_s * SECOND_NS
    if stale:
        assert decision.disposition == REJECTED
        assert decision.reason == S.DISPOSITION_REASON_STALE_PRICE
        assert decision.trace[-1][:4] == (S.DECISION_RULE_MARKET_CONDITION, FAIL, 31.0, 30.0)
        assert "31.0 s old" in decision.cancellation_reason
    else:
        assert decision.disposition == ACTIONABLE


def test_max_price_age_follows_the_strategy() -> None:
    relaxed = strategy(PRO, max_price_age_ns=120 * SECOND_NS)
    decision = run(prediction(at_ns=NOW_NS - 90 * SECOND_NS), context(relaxed))

    assert decision.disposition == ACTIONABLE


@pytest.mark.parametrize(
    ("symbol", "bid", "ask", "spread", "too_wide"),
    [
        pytest.param("EURUSD", 1.10000, 1.10030, 3.0, False, id="EURUSD-3.0-at-max"),
        pytest.param("EURUSD", 1.10000, 1.10031, 3.1, True, id="EURUSD-3.1-too-wide"),
        pytest.param("USDJPY", 150.000, 150.030, 3.0, False, id="USDJPY-3.0-at-max"),
        pytest.param("USDJPY", 150.000, 150.031, 3.1, True, id="USDJPY-3.1-too-wide"),
        # 0.004 JPY is 0.4 yen pips, though it would be 40 pips of EURUSD.
        pytest.param("USDJPY", 150.000, 150.004, 0.4, False, id="USDJPY-uses-yen-pips"),
        pytest.param("XAUUSD", 2000.00, 2000.40, 4.0, True, id="XAUUSD-4-gold-pips"),
        pytest.param("XAUUSD", 2000.00, 2000.30, 3.0, False, id="XAUUSD-3-gold-pips"),
    ],
)
def test_spread_from_bid_and_ask_in_instrument_pips(
    symbol: str, bid: float, ask: float, spread: float, too_wide: bool
) -> None:
    price = (bid + ask) / 2
    decision = run(
        prediction(symbol=symbol, price=price, bid=bid, ask=ask), context(tier=ENTERPRISE)
    )

    assert decision.market is not None
    assert decision.market.spread_pips == spread
    if too_wide:
        assert decision.disposition == REJECTED
        assert decision.reason == S.DISPOSITION_REASON_SPREAD_TOO_WIDE
        assert decision.trace[-1][:4] == (S.DECISION_RULE_MARKET_CONDITION, FAIL, spread, 3.0)
    else:
        assert decision.disposition == ACTIONABLE


@pytest.mark.parametrize(
    ("quoted", "too_wide"),
    [
        pytest.param(2.0, False, id="quoted-2"),
        pytest.param(3.5, True, id="quoted-3.5"),
    ],
)
def test_quoted_spread_is_used_without_bid_and_ask(quoted: float, too_wide: bool) -> None:
    decision = run(prediction(spread_pips=None, quoted_spread_pips=quoted))

    assert decision.market is not None
    assert decision.market.spread_pips == quoted
    assert (decision.reason == S.DISPOSITION_REASON_SPREAD_TOO_WIDE) is too_wide


def test_market_gate_runs_after_the_consensus_gate() -> None:
    # A stale and too-wide prediction that fails consensus is refused for consensus.
    message = prediction(
        at_ns=NOW_NS - 60 * SECOND_NS, spread_pips=10.0, votes=[vote(DOWN, 1.0, 1.0)]
    )
    decision = run(message, context(tier=PRO))

    assert decision.reason == S.DISPOSITION_REASON_CONSENSUS_BELOW_THRESHOLD
    assert S.DECISION_RULE_MARKET_CONDITION not in rules(decision)
