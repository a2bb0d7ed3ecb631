"""The entry: order type and price, stop loss, take profit, timing, position size and legs."""

from __future__ import annotations

from typing import Any

import pytest

from tests.core.builders import (
    DOWN,
    ENTERPRISE,
    FREE,
    MINUTE_NS,
    NOW_NS,
    PRO,
    UP,
    WEAK_DOWN,
    WEAK_UP,
    alternating,
    context,
    history_then,
    pip_size,
    prediction,
    run,
    step,
    strategy,
)
from tradeflow.trading.v1 import signal_pb2, strategy_pb2
from trading_engine.core.decision import (
    ACTIONABLE,
    ADJUST,
    FAIL,
    HELD,
    PASS,
    REJECTED,
    Decision,
    Entry,
)
from trading_engine.core.market import MarketBook

S = signal_pb2
MARKET = S.ORDER_TYPE_MARKET
LIMIT = S.ORDER_TYPE_LIMIT
IOC = S.TIME_IN_FORCE_IMMEDIATE_OR_CANCEL
GTT = S.TIME_IN_FORCE_GOOD_TILL_TIME
VOLATILITY_SCALED = strategy_pb2.STOP_LOSS_MODE_VOLATILITY_SCALED
FIXED_TP = strategy_pb2.TAKE_PROFIT_MODE_FIXED_PIPS
PREDICTED_TP = strategy_pb2.TAKE_PROFIT_MODE_PREDICTED_PRICE


def _entry(message: Any, tier: int = PRO, **context_args: Any) -> Entry:
    decision = run(message, context(tier=tier, **context_args))
    assert decision.disposition == ACTIONABLE, decision.cancellation_reason
    assert decision.entry is not None
    return decision.entry


# --- Order type and price --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("symbol", "direction", "overrides", "entry_price", "order", "trace"),
    [
        # Market orders pay the ask for buys and get the bid for sells (bid/ask 1.09995/1.10005).
        pytest.param(
            "EURUSD", UP, {}, 1.10005, MARKET, (PASS, 1.10005, 1.10005, "market order"),
            id="buy-market-at-ask",
        ),
        pytest.param(
            "EURUSD", DOWN, {}, 1.09995, MARKET, (PASS, 1.09995, 1.09995, "market order"),
            id="sell-market-at-bid",
        ),
        pytest.param(
            "EURUSD", UP, {"prefer_market_orders": False}, 1.09985, LIMIT,
            (PASS, 2.0, 10.0, "limit offset (pips) on the favourable side"),
            id="buy-limit-2-pips-below-ask",
        ),
        pytest.param(
            "EURUSD", DOWN, {"prefer_market_orders": False}, 1.10015, LIMIT,
            (PASS, 2.0, 10.0, "limit offset (pips) on the favourable side"),
            id="sell-limit-2-pips-above-bid",
        ),
        pytest.param(
            "EURUSD", UP, {"prefer_market_orders": False, "limit_order_discount_pips": 10.0},
            1.09905, LIMIT, (PASS, 10.0, 10.0, "limit offset (pips) on the favourable side"),
            id="buy-limit-at-max-deviation",
        ),
        pytest.param(
            "EURUSD", UP, {"prefer_market_orders": False, "limit_order_discount_pips": 15.0},
            1.09905, LIMIT,
            (ADJUST, 10.0, 10.0, "limit offset (pips) clamped to the maximum deviation"),
            id="buy-limit-clamped",
        ),
        pytest.param(
            "EURUSD", DOWN,
            {"prefer_market_orders": False, "limit_order_premium_pips": 12.0,
             "max_limit_deviation_pips": 8.0},
            1.10075, LIMIT,
            (ADJUST, 8.0, 8.0, "limit offset (pips) clamped to the maximum deviation"),
            id="sell-limit-clamped",
        ),
        # The discount applies to buys only and the premium to sells only.
        pytest.param(
            "EURUSD", DOWN,
            {"prefer_market_orders": False, "limit_order_discount_pips": 7.0,
             "limit_order_premium_pips": 3.0},
            1.10025, LIMIT, (PASS, 3.0, 10.0, "limit offset (pips) on the favourable side"),
            id="sell-uses-premium",
        ),
        pytest.param(
            "USDJPY", UP, {"prefer_market_orders": False}, 149.985, LIMIT,
            (PASS, 2.0, 10.0, "limit offset (pips) on the favourable side"),
            id="USDJPY-buy-limit-in-yen-pips",
        ),
    ],
)  # fmt: skip
def test_order_type_and_entry_price(
    symbol: str,
    direction: int,
    overrides: dict[str, Any],
    entry_price: float,
    order: int,
    trace: tuple[int, float, float, str],
) -> None:
    decision = run(
        prediction(symbol=symbol, direction=direction), context(strategy(PRO, **overrides))
    )

    entry = decision.entry
    assert entry is not None
    assert entry.order_type == order
    assert entry.entry_price == entry_price
    if order == MARKET:
        assert entry.limit_price == 0.0
        assert entry.time_in_force == IOC
        assert entry.urgency == S.EXECUTION_URGENCY_IMMEDIATE
    else:
        assert entry.limit_price == entry_price
        assert entry.time_in_force == GTT
        # Buys are limited below the reference, sells above it.
        assert (entry.reference_price - entry.limit_price) * (1 if direction == UP else -1) >= 0
    assert step(decision, S.DECISION_RULE_ORDER_TYPE)[1:] == trace


# --- Stop loss and take profit ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("direction", "market_order", "entry_price", "stop_loss", "take_profit"),
    [
        pytest.param(UP, True, 1.10005, 1.09805, 1.10405, id="buy-market"),
        pytest.param(DOWN, True, 1.09995, 1.10195, 1.09595, id="sell-market"),
        pytest.param(UP, False, 1.09985, 1.09785, 1.10385, id="buy-limit"),
        pytest.param(DOWN, False, 1.10015, 1.10215, 1.09615, id="sell-limit"),
        pytest.param(WEAK_UP, True, 1.10005, 1.09805, 1.10405, id="weak-buy"),
        pytest.param(WEAK_DOWN, True, 1.09995, 1.10195, 1.09595, id="weak-sell"),
    ],
)
def test_stop_on_the_losing_side_and_target_on_the_winning_side(
    direction: int, market_order: bool, entry_price: float, stop_loss: float, take_profit: float
) -> None:
    chosen = strategy(PRO, prefer_market_orders=market_order)
    decision = run(prediction(direction=direction), context(chosen))

    entry = decision.entry
    assert entry is not None
    assert (entry.entry_price, entry.stop_loss, entry.take_profit) == (
        entry_price,
        stop_loss,
        take_profit,
    )
    assert (entry.stop_loss_pips, entry.take_profit_pips) == (20.0, 40.0)
    assert step(decision, S.DECISION_RULE_STOP_LOSS)[1:] == (
        PASS,
        20.0,
        20.0,
        "fixed stop_loss_pips; threshold: pips wanted",
    )
    assert step(decision, S.DECISION_RULE_TAKE_PROFIT)[1:] == (
        PASS,
        40.0,
        20.0,
        "at risk_reward_ratio x stop",
    )


@pytest.mark.parametrize(
    ("tier", "direction", "overrides", "predicted", "take_profit", "tp_pips", "detail"),
    [
        pytest.param(
            PRO, UP, {"risk_reward_ratio": 1.5}, 0.0, 1.10305, 30.0,
            "at risk_reward_ratio x stop", id="risk-reward-1.5",
        ),
        pytest.param(
            PRO, UP, {"take_profit_mode": FIXED_TP, "take_profit_pips": 30.0}, 0.0, 1.10305, 30.0,
            "at take_profit_pips", id="fixed-buy",
        ),
        pytest.param(
            PRO, DOWN, {"take_profit_mode": FIXED_TP, "take_profit_pips": 25.0}, 0.0, 1.09745,
            25.0, "at take_profit_pips", id="fixed-sell",
        ),
        pytest.param(
            PRO, UP, {"take_profit_mode": PREDICTED_TP}, 1.105, 1.105, 49.5,
            "at the predicted price", id="predicted-buy",
        ),
        pytest.param(
            PRO, DOWN, {"take_profit_mode": PREDICTED_TP}, 1.095, 1.095, 49.5,
            "at the predicted price", id="predicted-sell",
        ),
        pytest.param(
            PRO, UP, {"take_profit_mode": PREDICTED_TP}, 1.1050049, 1.105, 49.5,
            "at the predicted price", id="predicted-rounded",
        ),
        pytest.param(
            PRO, UP, {"take_profit_mode": PREDICTED_TP}, 1.09, 1.10405, 40.0,
            "predicted price unusable: risk_reward_ratio x stop", id="predicted-buy-wrong-side",
        ),
        pytest.param(
            PRO, DOWN, {"take_profit_mode": PREDICTED_TP}, 1.105, 1.09595, 40.0,
            "predicted price unusable: risk_reward_ratio x stop", id="predicted-sell-wrong-side",
        ),
        pytest.param(
            PRO, UP, {"take_profit_mode": PREDICTED_TP}, 1.10008, 1.10405, 40.0,
            "predicted price unusable: risk_reward_ratio x stop", id="predicted-too-close",
        ),
        pytest.param(
            PRO, UP, {"take_profit_mode": PREDICTED_TP}, 0.0, 1.10405, 40.0,
            "predicted price unusable: risk_reward_ratio x stop", id="predicted-missing",
        ),
        # Predicted-price targets are an advanced feature FREE does not have.
        pytest.param(
            FREE, UP, {"take_profit_mode": PREDICTED_TP}, 1.105, 1.10405, 40.0,
            "predicted price unusable: risk_reward_ratio x stop", id="predicted-free-tier",
        ),
    ],
)  # fmt: skip
def test_take_profit_modes(
    tier: int,
    direction: int,
    overrides: dict[str, Any],
    predicted: float,
    take_profit: float,
    tp_pips: float,
    detail: str,
) -> None:
    message = prediction(direction=direction, predicted_price=predicted)
    decision = run(message, context(strategy(tier, **overrides)))

    entry = decision.entry
    assert entry is not None
    assert entry.take_profit == take_profit
    assert entry.take_profit_pips == tp_pips
    assert step(decision, S.DECISION_RULE_TAKE_PROFIT)[1:] == (PASS, tp_pips, 20.0, detail)


@pytest.mark.parametrize(
    ("overrides", "stop_pips", "outcome", "detail"),
    [
        pytest.param(
            {"stop_loss_pips": 150.0}, 100.0, ADJUST,
            "fixed stop_loss_pips, clamped to the stop bounds; threshold: pips wanted",
            id="fixed-above-max",
        ),
        pytest.param(
            {"stop_loss_pips": 3.0}, 5.0, ADJUST,
            "fixed stop_loss_pips, clamped to the stop bounds; threshold: pips wanted",
            id="fixed-below-min",
        ),
        pytest.param(
            {"stop_loss_pips": 35.0}, 35.0, PASS, "fixed stop_loss_pips; threshold: pips wanted",
            id="fixed-within-bounds",
        ),
    ],
)  # fmt: skip
def test_fixed_stop_is_clamped_to_the_stop_bounds(
    overrides: dict[str, Any], stop_pips: float, outcome: int, detail: str
) -> None:
    decision = run(prediction(), context(strategy(PRO, **overrides)))

    assert decision.entry is not None
    assert decision.entry.stop_loss_pips == stop_pips
    assert decision.entry.stop_loss == pytest.approx(1.10005 - stop_pips * 0.0001, abs=1e-9)
    line = step(decision, S.DECISION_RULE_STOP_LOSS)
    assert line[1:3] == (outcome, stop_pips)
    assert line[4] == detail


def _scaled_decision(
    tier: int, multiplier: float, horizon_ns: int | None = None
) -> tuple[Decision, Entry]:
    """A BUY in NORMAL volatility of exactly 10 bps/sqrt(h), volatility-scaled stop."""
    book, last = history_then(alternating(1.1, 10.0, 8, MINUTE_NS))
    chosen = strategy(
        tier, stop_loss_mode=VOLATILITY_SCALED, stop_loss_volatility_multiplier=multiplier
    )
    decision = run(prediction(price=last, horizon_ns=horizon_ns), context(chosen), book)
    assert decision.market is not None
    assert decision.market.volatility_bps == pytest.approx(10.0)
    assert decision.entry is not None
    return decision, decision.entry


@pytest.mark.parametrize(
    ("multiplier", "stop_pips", "outcome"),
    [
        # 2 x 10 bps x sqrt(0.25 h) x price 1.1002 / 0.0001 = 11.0 pips.
        pytest.param(2.0, 11.0, PASS, id="scaled-11-pips"),
        # 20 x ... = 110 pips, clamped to max_stop_loss_pips 100.
        pytest.param(20.0, 100.0, ADJUST, id="scaled-clamped-to-max"),
        # 0.5 x ... = 2.75 pips, clamped to min_stop_loss_pips 5.
        pytest.param(0.5, 5.0, ADJUST, id="scaled-clamped-to-min"),
    ],
)
def test_volatility_scaled_stop(multiplier: float, stop_pips: float, outcome: int) -> None:
    decision, entry = _scaled_decision(PRO, multiplier)

    wanted = multiplier * 0.0010 * 0.5 * entry.entry_price / 0.0001
    assert entry.stop_loss_pips == stop_pips
    assert entry.stop_loss < entry.entry_price
    line = step(decision, S.DECISION_RULE_STOP_LOSS)
    assert line[1] == outcome
    assert line[2:4] == pytest.approx((stop_pips, wanted))
    assert line[4].startswith("volatility-scaled")


def test_volatility_scaled_stop_follows_the_prediction_horizon() -> None:
    # Advanced timing: the entry is valid for the 4-minute horizon, and the stop scales with it.
    decision, entry = _scaled_decision(PRO, 2.0, horizon_ns=4 * MINUTE_NS)

    wanted = 2.0 * 0.0010 * (4 / 60) ** 0.5 * entry.entry_price / 0.0001
    assert wanted == pytest.approx(5.68, abs=0.01)
    assert entry.stop_loss_pips == 5.7
    assert step(decision, S.DECISION_RULE_STOP_LOSS)[3] == pytest.approx(wanted)
    assert entry.valid_until_ns == NOW_NS + 4 * MINUTE_NS
    assert step(decision, S.DECISION_RULE_TIMING)[1:] == (
        PASS,
        240.0,
        900.0,
        "valid for the prediction horizon (s)",
    )


@pytest.mark.parametrize(
    ("tier", "history"),
    [
        pytest.param(FREE, True, id="free-tier-has-no-advanced-features"),
        pytest.param(PRO, False, id="no-volatility-estimate-yet"),
    ],
)
def test_volatility_scaled_stop_falls_back_to_fixed_pips(tier: int, history: bool) -> None:
    if history:
        book, last = history_then(alternating(1.1, 10.0, 8, MINUTE_NS))
    else:
        book, last = MarketBook(), 1.1
    chosen = strategy(tier, stop_loss_mode=VOLATILITY_SCALED, stop_loss_volatility_multiplier=9.0)
    decision = run(prediction(price=last), context(chosen), book)

    assert decision.entry is not None
    assert decision.entry.stop_loss_pips == 20.0
    assert step(decision, S.DECISION_RULE_STOP_LOSS)[4].startswith("fixed stop_loss_pips")


# --- Timing ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tier", "horizon_min", "valid_min", "detail"),
    [
        pytest.param(PRO, None, 15, "valid for signal_validity (s)", id="no-horizon"),
        pytest.param(PRO, 4, 4, "valid for the prediction horizon (s)", id="pro-short-horizon"),
        pytest.param(PRO, 20, 15, "valid for signal_validity (s)", id="pro-horizon-capped"),
        pytest.param(FREE, 4, 15, "valid for signal_validity (s)", id="free-no-advanced-timing"),
    ],
)
def test_entry_validity(tier: int, horizon_min: int | None, valid_min: int, detail: str) -> None:
    horizon = None if horizon_min is None else horizon_min * MINUTE_NS
    decision = run(prediction(horizon_ns=horizon), context(tier=tier))

    assert decision.entry is not None
    assert decision.entry.valid_until_ns == NOW_NS + valid_min * MINUTE_NS
    assert step(decision, S.DECISION_RULE_TIMING)[1:] == (PASS, valid_min * 60.0, 900.0, detail)


@pytest.mark.parametrize(
    ("tier", "confidence", "urgency"),
    [
        # Strength 0.85 >= 0.8 with advanced timing: worked without waiting.
        pytest.param(PRO, 0.9, S.EXECUTION_URGENCY_NORMAL, id="pro-strong-normal"),
        # Strength 0.73.
        pytest.param(PRO, 0.75, S.EXECUTION_URGENCY_PATIENT, id="pro-weaker-patient"),
        pytest.param(FREE, 0.9, S.EXECUTION_URGENCY_PATIENT, id="free-patient"),
    ],
)
def test_limit_order_urgency(tier: int, confidence: float, urgency: int) -> None:
    chosen = strategy(tier, prefer_market_orders=False)
    decision = run(prediction(confidence=confidence), context(chosen))

    assert decision.entry is not None
    assert decision.entry.urgency == urgency


# --- Position size ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tier", "symbol", "direction", "overrides", "ctx", "lots", "pip_value", "risk", "factor"),
    [
        # 10,000 USD x 1% = 100 USD over 20 pips at 10 USD/pip = 0.5 lots.
        pytest.param(
            PRO, "EURUSD", UP, {}, {}, 0.5, 10.0, 100.0, 1.0, id="EURUSD-usd-account"
        ),
        # 1000 JPY per pip / 150 JPY per USD = 6.67 USD/pip: 100 / (20 x 6.67) = 0.75 lots.
        pytest.param(
            PRO, "USDJPY", UP, {}, {}, 0.75, 1000.0 / 150.0, 100.0, 1.0, id="USDJPY-usd-account"
        ),
        # 10 USD/pip / 1.1 USD per EUR = 9.09 EUR/pip: 100 EUR / (20 x 9.09) = 0.55 lots.
        pytest.param(
            PRO, "EURUSD", DOWN, {}, {"currency": "EUR"}, 0.55, 10.0 / 1.1, 100.0, 1.0,
            id="EURUSD-eur-account",
        ),
        pytest.param(
            PRO, "USDJPY", UP, {}, {"currency": "JPY", "equity": 1_500_000.0}, 0.75, 1000.0,
            15_000.0, 1.0, id="USDJPY-jpy-account",
        ),
        pytest.param(
            PRO, "EURUSD", WEAK_UP, {}, {}, 0.25, 10.0, 50.0, 0.5, id="weak-buy-half-size"
        ),
        pytest.param(
            PRO, "EURUSD", WEAK_DOWN, {"weak_signal_size_factor": 0.3}, {}, 0.15, 10.0, 30.0, 0.3,
            id="weak-sell-factor-0.3",
        ),
        # 0.5 x 0.5 x 0.5 lots = 0.125, floored to 0.12.
        pytest.param(
            PRO, "EURUSD", WEAK_UP, {"position_size_multiplier": 0.5}, {}, 0.12, 10.0, 24.0, 0.25,
            id="multiplier-and-weak-floored",
        ),
        pytest.param(
            PRO, "EURUSD", UP, {"risk_per_trade_percent": 2.0}, {}, 1.0, 10.0, 200.0, 1.0,
            id="two-percent-risk",
        ),
        # 100 / (30 x 10) = 0.333 lots, floored to 0.33: risk 0.33 x 30 x 10 = 99.
        pytest.param(
            PRO, "EURUSD", UP, {"stop_loss_pips": 30.0}, {}, 0.33, 10.0, 99.0, 1.0,
            id="floored-to-lot-step",
        ),
        pytest.param(
            PRO, "EURUSD", UP, {}, {"equity": 200.0}, 0.01, 10.0, 2.0, 1.0, id="exactly-min-lot"
        ),
        pytest.param(
            ENTERPRISE, "XAUUSD", UP, {}, {}, 0.5, 10.0, 100.0, 1.0, id="XAUUSD-10-usd-per-pip"
        ),
        # Index lot step 0.1: 10.3 USD over 20 points = 0.515, floored to 0.5.
        pytest.param(
            ENTERPRISE, "US30", UP, {}, {"equity": 1_030.0}, 0.5, 1.0, 10.0, 1.0,
            id="US30-lot-step-0.1",
        ),
    ],
)  # fmt: skip
def test_position_size(
    tier: int,
    symbol: str,
    direction: int,
    overrides: dict[str, Any],
    ctx: dict[str, Any],
    lots: float,
    pip_value: float,
    risk: float,
    factor: float,
) -> None:
    decision = run(
        prediction(symbol=symbol, direction=direction), context(strategy(tier, **overrides), **ctx)
    )

    entry = decision.entry
    assert entry is not None
    assert entry.lots == lots
    assert entry.pip_value == pytest.approx(pip_value)
    assert entry.risk_amount == risk
    assert entry.risk_amount == round(entry.lots * entry.stop_loss_pips * entry.pip_value, 2)
    assert entry.size_factor == factor
    assert entry.risk_budget == pytest.approx(ctx.get("equity", 10_000.0) * 0.01 * (
        overrides.get("risk_per_trade_percent", 1.0)
    ))  # fmt: skip
    line = step(decision, S.DECISION_RULE_POSITION_SIZE)
    assert line[1:3] == (PASS, lots)


@pytest.mark.parametrize(
    ("tier", "symbol", "overrides", "equity", "lots", "cap"),
    [
        # 1,000,000 x 1% / 200 = 50 lots, capped at max_position_size_lots 10.
        pytest.param(PRO, "EURUSD", {}, 1_000_000.0, 10.0, 10.0, id="strategy-cap"),
        pytest.param(
            PRO, "EURUSD", {"max_position_size_lots": 0.3}, 10_000.0, 0.3, 0.3, id="custom-cap"
        ),
        # The instrument's own maximum (50 lots of gold) caps a larger strategy cap.
        pytest.param(
            ENTERPRISE, "XAUUSD", {"max_position_size_lots": 100.0}, 10_000_000.0, 50.0, 50.0,
            id="instrument-max-lot",
        ),
    ],
)  # fmt: skip
def test_position_size_is_capped(
    tier: int, symbol: str, overrides: dict[str, Any], equity: float, lots: float, cap: float
) -> None:
    chosen = strategy(tier, **overrides)
    decision = run(prediction(symbol=symbol), context(chosen, equity=equity))

    assert decision.entry is not None
    assert decision.entry.lots == lots
    assert step(decision, S.DECISION_RULE_POSITION_SIZE)[1:4] == (ADJUST, lots, cap)


@pytest.mark.parametrize(
    ("symbol", "equity", "min_lot"),
    [
        # 1.99 USD over 20 pips at 10 USD/pip = 0.00995 lots.
        pytest.param("EURUSD", 199.0, 0.01, id="EURUSD-below-0.01"),
        # 1.9 USD over 20 points at 1 USD/point = 0.095 lots, below the index minimum 0.1.
        pytest.param("US30", 190.0, 0.1, id="US30-below-0.1"),
    ],
)
def test_size_below_minimum_holds(symbol: str, equity: float, min_lot: float) -> None:
    decision = run(prediction(symbol=symbol), context(tier=ENTERPRISE, equity=equity))

    assert decision.disposition == HELD
    assert decision.reason == S.DISPOSITION_REASON_SIZE_BELOW_MINIMUM
    assert decision.entry is None
    assert decision.trace[-1][:4] == (S.DECISION_RULE_POSITION_SIZE, FAIL, 0.0, min_lot)
    assert f"minimum {min_lot} lots" in decision.cancellation_reason


def test_cross_needs_a_conversion_rate_from_the_same_company() -> None:
    book = MarketBook()
    cross = prediction(prediction_id="x-1", symbol="EURGBP")

    before = run(cross, context(tier=ENTERPRISE), book)
    assert before.disposition == REJECTED
    assert before.reason == S.DISPOSITION_REASON_NO_CONVERSION_RATE
    assert before.trace[-1][:2] == (S.DECISION_RULE_POSITION_SIZE, FAIL)
    assert "GBP" in before.cancellation_reason
    assert "USD" in before.cancellation_reason

    # Another company's GBPUSD price does not convert this company's GBP.
    run(prediction(prediction_id="g-0", symbol="GBPUSD"), context(company_id="other"), book)
    still = run(prediction(prediction_id="x-2", symbol="EURGBP"), context(tier=ENTERPRISE), book)
    assert still.reason == S.DISPOSITION_REASON_NO_CONVERSION_RATE

    # Once this company has seen GBPUSD at 1.25: 10 GBP/pip x 1.25 = 12.5 USD/pip, 0.4 lots.
    run(prediction(prediction_id="g-1", symbol="GBPUSD"), context(tier=ENTERPRISE), book)
    after = run(prediction(prediction_id="x-3", symbol="EURGBP"), context(tier=ENTERPRISE), book)
    assert after.disposition == ACTIONABLE
    assert after.entry is not None
    assert after.entry.pip_value == pytest.approx(12.5)
    assert after.entry.lots == 0.4
    assert after.entry.risk_amount == 100.0


def test_a_euro_account_converts_yen_pips_through_the_dollar() -> None:
    book = MarketBook()
    euro = context(tier=ENTERPRISE, currency="EUR", equity=10_000.0)

    # USDJPY alone converts yen into dollars, not into euros.
    before = run(prediction(prediction_id="j-1", symbol="USDJPY"), euro, book)
    assert before.reason == S.DISPOSITION_REASON_NO_CONVERSION_RATE
    assert "JPY" in before.cancellation_reason
    assert "EUR" in before.cancellation_reason

    # Once EURUSD (1.10) is seen too: 1,000 JPY a pip per lot / 150 / 1.10 = 6.0606 EUR.
    run(prediction(prediction_id="e-1", symbol="EURUSD"), euro, book)
    after = run(prediction(prediction_id="j-2", symbol="USDJPY"), euro, book)
    assert after.disposition == ACTIONABLE
    assert after.entry is not None
    assert after.entry.pip_value == pytest.approx(1_000 / 150 / 1.10)
    # 100 EUR over 20 pips at 6.0606 EUR a pip: 0.825 lots, floored to 0.82.
    assert after.entry.lots == 0.82


# --- Multi-leg entries -----------------------------------------------------------------------


def _legs_are_consistent(entry: Entry, side: int) -> None:
    steps = [round(lots * 100) for lots, _, _ in entry.legs]
    assert sum(steps) == round(entry.lots * 100)
    prices = [price for _, price, _ in entry.legs]
    distances = [side * (price - entry.entry_price) for price in prices]
    assert all(distance > 0 for distance in distances)
    assert distances == sorted(distances)
    assert len(set(distances)) == len(distances)
    assert prices[-1] == entry.take_profit


@pytest.mark.parametrize(
    ("direction", "legs"),
    [
        pytest.param(
            UP,
            [(0.17, 1.10138, 13.3), (0.17, 1.10272, 26.7), (0.16, 1.10405, 40.0)],
            id="buy-three-legs",
        ),
        pytest.param(
            DOWN,
            [(0.17, 1.09862, 13.3), (0.17, 1.09728, 26.7), (0.16, 1.09595, 40.0)],
            id="sell-three-legs",
        ),
    ],
)
def test_multi_leg_entry(direction: int, legs: list[tuple[float, float, float]]) -> None:
    chosen = strategy(PRO, features={"multi_leg_entries_enabled": True})
    decision = run(prediction(direction=direction), context(chosen))

    entry = decision.entry
    assert entry is not None
    assert entry.lots == 0.5
    assert entry.legs == legs
    _legs_are_consistent(entry, 1 if direction == UP else -1)
    assert step(decision, S.DECISION_RULE_MULTI_LEG)[1:] == (PASS, 3.0, 3.0, "staggered legs")


@pytest.mark.parametrize(
    ("symbol", "tier", "count", "equity", "sizes"),
    [
        pytest.param("EURUSD", PRO, 2, 10_000.0, [0.25, 0.25], id="two-legs"),
        pytest.param("EURUSD", PRO, 5, 10_000.0, [0.1] * 5, id="five-legs"),
        # 0.03 lots cannot make 5 legs: 3 legs of one lot step each.
        pytest.param("EURUSD", PRO, 5, 600.0, [0.01, 0.01, 0.01], id="fewer-steps-than-legs"),
        pytest.param("EURUSD", PRO, 3, 2_600.0, [0.05, 0.04, 0.04], id="remainder-to-first"),
        pytest.param("US30", ENTERPRISE, 3, 10_000.0, [1.7, 1.7, 1.6], id="US30-step-0.1"),
    ],
)
def test_legs_sum_to_the_size(
    symbol: str, tier: int, count: int, equity: float, sizes: list[float]
) -> None:
    chosen = strategy(tier, features={"multi_leg_entries_enabled": True}, multi_leg_count=count)
    decision = run(prediction(symbol=symbol), context(chosen, equity=equity))

    entry = decision.entry
    assert entry is not None
    assert [lots for lots, _, _ in entry.legs] == sizes
    step_size = 0.1 if symbol == "US30" else 0.01
    assert sum(round(lots / step_size) for lots in sizes) == round(entry.lots / step_size)
    assert entry.legs[-1][1] == entry.take_profit
    assert step(decision, S.DECISION_RULE_MULTI_LEG)[2:4] == (float(len(sizes)), float(count))


def test_a_single_lot_step_gets_no_legs() -> None:
    chosen = strategy(PRO, features={"multi_leg_entries_enabled": True})
    decision = run(prediction(), context(chosen, equity=200.0))

    assert decision.entry is not None
    assert decision.entry.lots == 0.01
    assert decision.entry.legs == []


@pytest.mark.parametrize(
    ("tier", "flag"),
    [
        pytest.param(FREE, True, id="free-flag-clamped-by-tier"),
        pytest.param(PRO, False, id="pro-opt-in-off"),
    ],
)
def test_no_legs_without_the_feature(tier: int, flag: bool) -> None:
    chosen = strategy(tier, features={"multi_leg_entries_enabled": flag})
    decision = run(prediction(), context(chosen))

    assert decision.entry is not None
    assert decision.entry.legs == []
    assert step(decision, S.DECISION_RULE_MULTI_LEG)[1:] == (
        S.RULE_OUTCOME_SKIP,
        0.0,
        0.0,
        "multi-leg entries are off",
    )


def test_pip_size_helper_matches_registry() -> None:
    # The builders derive bid and ask from these pip sizes; a wrong registry breaks every table.
    assert [pip_size(s) for s in ("EURUSD", "USDJPY", "XAUUSD", "US30")] == [
        0.0001,
        0.01,
        0.1,
        1.0,
    ]
