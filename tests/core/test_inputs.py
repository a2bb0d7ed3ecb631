"""Validation, the instrument registry and entitlement: the first rules a prediction meets."""

from __future__ import annotations

import math
from typing import Any

import pytest

from tests.core.builders import (
    DOWN,
    ENTERPRISE,
    FREE,
    NOW_NS,
    PRO,
    SECOND_NS,
    context,
    pattern,
    prediction,
    rules,
    run,
    step,
    strategy,
    vote,
)
from tradeflow.common.v1 import tier_pb2
from tradeflow.trading.v1 import signal_pb2
from trading_engine.core.decision import (
    ACTIONABLE,
    BUY,
    FAIL,
    HOLD,
    INVALID,
    PASS,
    REJECTED,
)
from trading_engine.core.market import MarketBook
from trading_engine.core.memory import SignalMemory

S = signal_pb2

# --- Instruments -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("symbol", "pip", "ask", "stop_loss", "take_profit", "lots"),
    [
        # 10,000 USD x 1% = 100 USD over a 20-pip stop.
        pytest.param("EURUSD", 0.0001, 1.10005, 1.09805, 1.10405, 0.5, id="EURUSD-pip-0.0001"),
        # Pip value 1000 JPY / 150 = 6.67 USD per lot: 100 / (20 x 6.67) = 0.75 lots.
        pytest.param("USDJPY", 0.01, 150.005, 149.805, 150.405, 0.75, id="USDJPY-pip-0.01"),
        # 100 oz x 0.1 = 10 USD per pip and lot.
        pytest.param("XAUUSD", 0.1, 2000.05, 1998.05, 2004.05, 0.5, id="XAUUSD-pip-0.1"),
        # 1 USD per index point and lot: 100 / 20 = 5 lots.
        pytest.param("US30", 1.0, 35000.5, 34980.5, 35040.5, 5.0, id="US30-pip-1.0"),
    ],
)
def test_stop_and_target_distances_use_the_instruments_pip_size(
    symbol: str, pip: float, ask: float, stop_loss: float, take_profit: float, lots: float
) -> None:
    decision = run(prediction(symbol=symbol), context(tier=ENTERPRISE))

    assert decision.disposition == ACTIONABLE
    assert step(decision, S.DECISION_RULE_INSTRUMENT)[:3] == (S.DECISION_RULE_INSTRUMENT, PASS, pip)
    entry = decision.entry
    assert entry is not None
    assert entry.entry_price == ask
    assert entry.stop_loss == stop_loss
    assert entry.take_profit == take_profit
    # The default 20-pip stop is 20 x pip in price, and 2 x 20 pips to the target.
    assert entry.entry_price - entry.stop_loss == pytest.approx(20 * pip)
    assert (entry.stop_loss_pips, entry.take_profit_pips) == (20.0, 40.0)
    assert entry.lots == lots


@pytest.mark.parametrize(
    ("symbol", "raw_price", "entry_price", "stop_loss"),
    [
        pytest.param("EURUSD", 1.1234567, 1.12346, 1.12146, id="EURUSD-5-decimals"),
        pytest.param("USDJPY", 150.12345, 150.123, 149.923, id="USDJPY-3-decimals"),
        pytest.param("XAUUSD", 2000.456, 2000.46, 1998.46, id="XAUUSD-2-decimals"),
        pytest.param("US30", 35000.26, 35000.3, 34980.3, id="US30-1-decimal"),
    ],
)
def test_prices_are_rounded_to_the_instruments_decimals(
    symbol: str, raw_price: float, entry_price: float, stop_loss: float
) -> None:
    # No bid and ask: the current price is the reference, rounded to the quote precision.
    message = prediction(symbol=symbol, price=raw_price, spread_pips=None)
    decision = run(message, context(tier=ENTERPRISE))

    assert decision.entry is not None
    assert decision.entry.reference_price == entry_price
    assert decision.entry.entry_price == entry_price
    assert decision.entry.stop_loss == stop_loss


@pytest.mark.parametrize("symbol", ["ABCXYZ", "eurusd", "EUR/USD", "BTCUSD"])
def test_unknown_symbol_is_invalid(symbol: str) -> None:
    decision = run(prediction(symbol=symbol, spread_pips=None), context(tier=ENTERPRISE))

    assert decision.disposition == INVALID
    assert decision.reason == S.DISPOSITION_REASON_UNKNOWN_SYMBOL
    assert decision.signal_type == HOLD
    assert decision.entry is None
    assert symbol in decision.cancellation_reason
    assert decision.trace[-1][:2] == (S.DECISION_RULE_INSTRUMENT, FAIL)
    assert rules(decision) == [S.DECISION_RULE_INPUT_VALIDATION, S.DECISION_RULE_INSTRUMENT]


# --- Validation ------------------------------------------------------------------------------

_NAN = math.nan
_INF = math.inf


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        pytest.param({"confidence": _NAN}, "confidence", id="confidence-nan"),
        pytest.param({"confidence": _INF}, "confidence", id="confidence-infinite"),
        pytest.param({"confidence": -0.01}, "confidence", id="confidence-negative"),
        pytest.param({"confidence": 1.0000001}, "confidence", id="confidence-above-1"),
        pytest.param({"price": 0.0, "spread_pips": None}, "current_price", id="price-zero"),
        pytest.param({"price": -1.1, "spread_pips": None}, "current_price", id="price-negative"),
        pytest.param({"price": _NAN, "spread_pips": None}, "current_price", id="price-nan"),
        pytest.param({"price": _INF, "spread_pips": None}, "current_price", id="price-infinite"),
        pytest.param({"symbol": ""}, "symbol", id="symbol-empty"),
        pytest.param({"prediction_id": ""}, "prediction_id", id="prediction-id-empty"),
        pytest.param({"prediction_id": "p" * 129}, "prediction_id", id="prediction-id-too-long"),
        pytest.param({"direction": 0}, "primary_direction", id="direction-unspecified"),
        pytest.param({"bid": 1.1001, "ask": 1.1000}, "ask", id="ask-below-bid"),
        pytest.param({"bid": _NAN, "ask": 1.1}, "bid", id="bid-nan"),
        pytest.param({"predicted_price": -1.0}, "predicted_price", id="predicted-price-negative"),
        pytest.param(
            {"spread_pips": None, "quoted_spread_pips": -0.5}, "spread_pips", id="spread-negative"
        ),
        pytest.param({"volume": 1.5}, "volume_confirmation", id="volume-above-1"),
        pytest.param(
            {"votes": [vote(weight=1.0), vote(weight=-0.5)]},
            "votes[1].weight",
            id="vote-weight-negative",
        ),
        pytest.param({"votes": [vote(weight=_INF)]}, "votes[0].weight", id="vote-weight-infinite"),
        pytest.param(
            {"votes": [vote(confidence=1.5)]}, "votes[0].confidence", id="vote-confidence-above-1"
        ),
        pytest.param({"votes": [vote(direction=0)]}, "votes[0].direction", id="vote-direction"),
        pytest.param(
            {"patterns": [pattern(probability=1.2)]},
            "patterns[0].probability",
            id="pattern-probability-above-1",
        ),
        pytest.param({"votes": [vote()] * 65}, "votes", id="votes-over-64"),
        pytest.param({"patterns": [pattern()] * 33}, "patterns", id="patterns-over-32"),
        pytest.param({"horizon_ns": -SECOND_NS}, "horizon", id="horizon-negative"),
        pytest.param(
            {"at_ns": NOW_NS + 5 * SECOND_NS + 1}, "timestamp", id="timestamp-over-5s-in-future"
        ),
    ],
)
def test_invalid_prediction_names_the_field(overrides: dict[str, Any], field: str) -> None:
    book = MarketBook()
    decision = run(prediction(**overrides), context(tier=PRO), book)

    assert decision.disposition == INVALID
    assert decision.reason == S.DISPOSITION_REASON_INVALID_PREDICTION
    assert decision.signal_type == HOLD
    assert decision.entry is None
    assert decision.cancellation_reason.startswith(f"prediction.{field}: ")
    assert len(decision.trace) == 1
    rule, outcome, _, _, detail = decision.trace[0]
    assert (rule, outcome) == (S.DECISION_RULE_INPUT_VALIDATION, FAIL)
    assert detail.startswith(f"{field}: ")
    # An invalid price never moves the company's market view.
    assert book.last_price("company-1", "EURUSD") == 0.0


def test_missing_timestamp_without_batch_time_is_invalid() -> None:
    decision = run(prediction(at_ns=None), context(produced_ns=0))

    assert decision.disposition == INVALID
    assert decision.reason == S.DISPOSITION_REASON_INVALID_PREDICTION
    assert decision.cancellation_reason.startswith("prediction.timestamp: required")


@pytest.mark.parametrize(
    ("produced_ago_s", "disposition", "reason"),
    [
        pytest.param(10, ACTIONABLE, S.DISPOSITION_REASON_UNSPECIFIED, id="batch-10s-old-fresh"),
        pytest.param(31, REJECTED, S.DISPOSITION_REASON_STALE_PRICE, id="batch-31s-old-stale"),
    ],
)
def test_missing_timestamp_falls_back_to_the_batch_time(
    produced_ago_s: int, disposition: int, reason: int
) -> None:
    produced_ns = NOW_NS - produced_ago_s * SECOND_NS
    decision = run(prediction(at_ns=None), context(produced_ns=produced_ns))

    assert decision.disposition == disposition
    assert decision.reason == reason
    assert decision.market is not None
    assert decision.market.price_age_ns == produced_ago_s * SECOND_NS


@pytest.mark.parametrize(
    "overrides",
    [
        pytest.param({"confidence": 1.0}, id="confidence-exactly-1"),
        pytest.param({"at_ns": NOW_NS + 5 * SECOND_NS}, id="timestamp-exactly-5s-ahead"),
        pytest.param({"votes": [vote(weight=0.0)]}, id="vote-weight-zero"),
        pytest.param({"volume": 0.0}, id="volume-zero"),
        pytest.param({"bid": 1.1, "ask": 1.1}, id="bid-equals-ask"),
        pytest.param({"spread_pips": None}, id="no-bid-no-ask"),
    ],
)
def test_edge_values_are_valid(overrides: dict[str, Any]) -> None:
    decision = run(prediction(**overrides))

    assert decision.trace[0] == (
        S.DECISION_RULE_INPUT_VALIDATION,
        PASS,
        0.0,
        0.0,
        "every field is valid",
    )
    assert decision.disposition == ACTIONABLE


def test_signal_id_is_deterministic_per_tenant_and_prediction() -> None:
    first = run(prediction(prediction_id="p-9"), context(user_id="u-1"))
    again = run(prediction(prediction_id="p-9"), context(user_id="u-1"))
    other_user = run(prediction(prediction_id="p-9"), context(user_id="u-2"))
    other_id = run(prediction(prediction_id="p-10"), context(user_id="u-1"))

    assert first.signal_id == again.signal_id
    assert len({first.signal_id, other_user.signal_id, other_id.signal_id}) == 3
    assert first.prediction_id == "p-9"


# --- Entitlement -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tier", "symbol", "entitled"),
    [
        pytest.param(FREE, "EURUSD", True, id="free-EURUSD"),
        pytest.param(FREE, "GBPUSD", True, id="free-GBPUSD"),
        pytest.param(FREE, "USDJPY", False, id="free-USDJPY"),
        pytest.param(FREE, "XAUUSD", False, id="free-XAUUSD"),
        pytest.param(PRO, "USDJPY", True, id="pro-USDJPY"),
        pytest.param(PRO, "USDCHF", True, id="pro-USDCHF"),
        pytest.param(PRO, "EURGBP", False, id="pro-cross-EURGBP"),
        pytest.param(PRO, "XAUUSD", False, id="pro-XAUUSD"),
        pytest.param(ENTERPRISE, "XAUUSD", True, id="enterprise-XAUUSD"),
        pytest.param(ENTERPRISE, "US30", True, id="enterprise-US30"),
        pytest.param(tier_pb2.SUBSCRIPTION_TIER_UNSPECIFIED, "USDJPY", False, id="unknown-as-free"),
        pytest.param(tier_pb2.SUBSCRIPTION_TIER_UNSPECIFIED, "EURUSD", True, id="unknown-EURUSD"),
    ],
)
def test_tier_entitlement(tier: int, symbol: str, entitled: bool) -> None:
    decision = run(prediction(symbol=symbol), context(tier=tier))

    if entitled:
        assert decision.disposition == ACTIONABLE
        assert decision.signal_type == BUY
        assert step(decision, S.DECISION_RULE_ENTITLEMENT)[1] == PASS
    else:
        assert decision.disposition == REJECTED
        assert decision.reason == S.DISPOSITION_REASON_INSTRUMENT_NOT_ENTITLED
        assert decision.signal_type == HOLD
        assert decision.trace[-1][:2] == (S.DECISION_RULE_ENTITLEMENT, FAIL)
        assert symbol in decision.cancellation_reason


@pytest.mark.parametrize(
    ("tier", "available", "symbol", "entitled"),
    [
        pytest.param(PRO, ["EURUSD"], "EURUSD", True, id="pro-narrowed-kept"),
        pytest.param(PRO, ["EURUSD"], "GBPUSD", False, id="pro-narrowed-dropped"),
        pytest.param(FREE, ["USDJPY", "EURUSD"], "USDJPY", False, id="free-cannot-widen"),
        pytest.param(FREE, ["USDJPY", "EURUSD"], "EURUSD", True, id="free-widening-keeps-own"),
        pytest.param(ENTERPRISE, ["XAUUSD"], "US30", False, id="enterprise-narrowed"),
    ],
)
def test_strategy_narrows_but_never_widens_instruments(
    tier: int, available: list[str], symbol: str, entitled: bool
) -> None:
    narrowed = strategy(tier, available_instruments=available)
    decision = run(prediction(symbol=symbol), context(narrowed))

    assert (decision.disposition == ACTIONABLE) is entitled
    if not entitled:
        assert decision.reason == S.DISPOSITION_REASON_INSTRUMENT_NOT_ENTITLED


def test_entitlement_is_checked_before_the_confidence_gate() -> None:
    # A weak prediction on a forbidden instrument is refused for the instrument.
    decision = run(prediction(symbol="USDJPY", confidence=0.1, direction=DOWN), context(tier=FREE))

    assert decision.reason == S.DISPOSITION_REASON_INSTRUMENT_NOT_ENTITLED
    assert S.DECISION_RULE_CONFIDENCE not in rules(decision)


def test_tenants_do_not_share_market_state_or_memory() -> None:
    book, memory = MarketBook(), SignalMemory()
    first = run(prediction(prediction_id="a"), context(user_id="u-1"), book, memory)
    other_user = run(prediction(prediction_id="b"), context(user_id="u-2"), book, memory)

    # Another user's identical signal is not a duplicate of this user's.
    assert first.disposition == other_user.disposition == ACTIONABLE
    assert book.last_price("company-2", "EURUSD") == 0.0
    assert book.last_price("company-1", "EURUSD") == 1.1
