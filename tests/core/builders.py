"""Builders for the decision-core tests: predictions, strategies, contexts and price histories.

Every builder takes keyword overrides and defaults to a realistic, actionable
case: a confident UP prediction on EURUSD, fresh, one pip wide, for a USD
account of 10,000. The clock is fixed; the core never reads one.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

from google.protobuf import duration_pb2, timestamp_pb2

from tradeflow.common.v1 import tier_pb2
from tradeflow.ml.v1 import prediction_pb2
from tradeflow.trading.v1 import strategy_pb2
from trading_engine.core import instruments, tiers
from trading_engine.core import strategy as strategy_module
from trading_engine.core.decide import DecisionContext, decide
from trading_engine.core.decision import Decision, TraceStep
from trading_engine.core.market import MarketBook
from trading_engine.core.memory import SignalMemory
from trading_engine.core.protections import UNPROTECTED, Protection
from trading_engine.core.strategy import Strategy

NOW_NS = 1_800_000_000_000_000_000
SECOND_NS = 1_000_000_000
MINUTE_NS = 60 * SECOND_NS

UP: int = prediction_pb2.DIRECTION_UP
WEAK_UP: int = prediction_pb2.DIRECTION_WEAK_UP
NEUTRAL: int = prediction_pb2.DIRECTION_NEUTRAL
WEAK_DOWN: int = prediction_pb2.DIRECTION_WEAK_DOWN
DOWN: int = prediction_pb2.DIRECTION_DOWN

FREE: int = tier_pb2.SUBSCRIPTION_TIER_FREE
PRO: int = tier_pb2.SUBSCRIPTION_TIER_PRO
ENTERPRISE: int = tier_pb2.SUBSCRIPTION_TIER_ENTERPRISE

# Sides of the market per direction: +1 long, -1 short, 0 none.
SIDE_OF = {UP: 1, WEAK_UP: 1, NEUTRAL: 0, WEAK_DOWN: -1, DOWN: -1}

# A realistic mid price per instrument the tests trade.
MID = {
    "EURUSD": 1.10000,
    "GBPUSD": 1.25000,
    "USDJPY": 150.000,
    "USDCHF": 0.90000,
    "EURGBP": 0.86000,
    "EURJPY": 160.000,
    "XAUUSD": 2000.00,
    "XAGUSD": 25.000,
    "US30": 35000.0,
    "GER40": 18000.0,
}


def timestamp(at_ns: int) -> timestamp_pb2.Timestamp:
    return timestamp_pb2.Timestamp(seconds=at_ns // SECOND_NS, nanos=at_ns % SECOND_NS)


def duration(ns: int) -> duration_pb2.Duration:
    return duration_pb2.Duration(seconds=ns // SECOND_NS, nanos=ns % SECOND_NS)


def pip_size(symbol: str) -> float:
    instrument = instruments.lookup(symbol)
    assert instrument is not None, symbol
    return instrument.pip_size


def _direction(value: int) -> prediction_pb2.Direction.ValueType:
    return prediction_pb2.Direction.ValueType(value)


def vote(
    direction: int = UP, confidence: float = 0.8, weight: float = 1.0, model_id: str = "lstm-v1"
) -> prediction_pb2.ModelVote:
    return prediction_pb2.ModelVote(
        model_id=model_id, direction=_direction(direction), confidence=confidence, weight=weight
    )


def pattern(
    direction: int = UP, probability: float = 0.7, name: str = "bullish_engulfing"
) -> prediction_pb2.PatternDetection:
    return prediction_pb2.PatternDetection(
        name=name, probability=probability, direction=_direction(direction)
    )


def prediction(
    *,
    prediction_id: str = "p-1",
    symbol: str = "EURUSD",
    direction: int = UP,
    confidence: float = 0.9,
    price: float | None = None,
    spread_pips: float | None = 1.0,
    bid: float | None = None,
    ask: float | None = None,
    quoted_spread_pips: float | None = None,
    predicted_price: float = 0.0,
    votes: Iterable[prediction_pb2.ModelVote] = (),
    patterns: Iterable[prediction_pb2.PatternDetection] = (),
    volume: float | None = None,
    horizon_ns: int | None = None,
    at_ns: int | None = NOW_NS,
) -> prediction_pb2.Prediction:
    """A prediction; bid and ask straddle `price` by `spread_pips` unless given.

    `spread_pips=None` leaves bid and ask unset (0); `quoted_spread_pips` sets
    the optional `spread_pips` field; `at_ns=None` leaves the timestamp unset.
    """
    mid = MID.get(symbol, 1.0) if price is None else price
    if spread_pips is not None and bid is None and ask is None and symbol in MID:
        half = spread_pips * pip_size(symbol) / 2.0
        bid, ask = mid - half, mid + half
    message = prediction_pb2.Prediction(
        prediction_id=prediction_id,
        symbol=symbol,
        primary_direction=_direction(direction),
        confidence=confidence,
        current_price=mid,
        predicted_price=predicted_price,
        bid=bid or 0.0,
        ask=ask or 0.0,
        votes=list(votes),
        patterns=list(patterns),
    )
    if volume is not None:
        message.volume_confirmation = volume
    if quoted_spread_pips is not None:
        message.spread_pips = quoted_spread_pips
    if horizon_ns is not None:
        message.horizon.CopyFrom(duration(horizon_ns))
    if at_ns is not None:
        message.timestamp.CopyFrom(timestamp(at_ns))
    return message


def config(tier: int = PRO, **overrides: object) -> strategy_pb2.StrategyConfig:
    """A copy of the tier's default StrategyConfig with fields overridden.

    `features=` takes a dict of TierFeatures flags to set; `available_instruments=`
    a list of symbols; `*_ns=` durations are given in nanoseconds.
    """
    result = strategy_pb2.StrategyConfig()
    result.CopyFrom(tiers.policy_for(tier).defaults)
    for name, value in overrides.items():
        if name == "features":
            assert isinstance(value, dict)
            for flag, on in value.items():
                setattr(result.features, flag, on)
        elif name == "available_instruments":
            assert isinstance(value, list)
            del result.available_instruments[:]
            result.available_instruments.extend(value)
        elif name.endswith("_ns"):
            assert isinstance(value, int)
            getattr(result, name[:-3]).CopyFrom(duration(value))
        else:
            setattr(result, name, value)
    return result


def strategy(tier: int = PRO, version: int = 1, **overrides: object) -> Strategy:
    """The rules' strategy for a tier's defaults with `config` overrides, bounded by the tier."""
    return strategy_module.from_config(config(tier, **overrides), tiers.policy_for(tier), version)


def context(
    strategy_: Strategy | None = None,
    *,
    tier: int = PRO,
    user_id: str = "user-1",
    company_id: str = "company-1",
    equity: float = 10_000.0,
    currency: str = "USD",
    now_ns: int = NOW_NS,
    produced_ns: int = NOW_NS,
    open_positions: int = 0,
    protection: Protection = UNPROTECTED,
) -> DecisionContext:
    return DecisionContext(
        user_id,
        company_id,
        equity,
        currency,
        strategy_ if strategy_ is not None else strategy(tier),
        now_ns,
        produced_ns,
        open_positions,
        protection,
    )


def run(
    message: prediction_pb2.Prediction,
    context_: DecisionContext | None = None,
    book: MarketBook | None = None,
    memory: SignalMemory | None = None,
) -> Decision:
    """Decide one prediction with fresh state unless state is given."""
    return decide(
        message,
        context_ if context_ is not None else context(),
        book if book is not None else MarketBook(),
        memory if memory is not None else SignalMemory(),
    )


def step(decision: Decision, rule: int) -> TraceStep:
    """The one trace line of `rule`; fails the test when there is none or several."""
    lines = [line for line in decision.trace if line[0] == rule]
    assert len(lines) == 1, f"expected one {rule} line in {decision.trace}"
    return lines[0]


def rules(decision: Decision) -> list[int]:
    return [line[0] for line in decision.trace]


# --- Price histories -------------------------------------------------------------------------


def alternating(start: float, volatility_bps: float, count: int, step_ns: int) -> list[float]:
    """Prices that alternate up and down by a constant log return.

    With a constant |log return| r every `step_ns`, the realised volatility in
    bps per sqrt(hour) is exactly r / sqrt(step in hours) x 10,000, whatever
    the decay, and the average price does not trend.
    """
    hours = step_ns / 3_600_000_000_000
    r = volatility_bps / 10_000.0 * math.sqrt(hours)
    return [start * math.exp(r if i % 2 else 0.0) for i in range(count)]


def ramp(start: float, bps_per_step: float, count: int) -> list[float]:
    """Prices moving steadily by `bps_per_step` per step (negative for a fall)."""
    return [start * math.exp(bps_per_step / 10_000.0 * i) for i in range(count)]


def feed(
    book: MarketBook,
    prices: Sequence[float],
    *,
    symbol: str = "EURUSD",
    company_id: str = "company-1",
    end_ns: int = NOW_NS,
    step_ns: int = MINUTE_NS,
) -> None:
    """Observe `prices` one `step_ns` apart, the last one at `end_ns`."""
    count = len(prices)
    state = book.state(company_id, symbol)
    for index, price in enumerate(prices):
        state.observe(price, end_ns - (count - 1 - index) * step_ns, book.parameters)


def history_then(
    prices: Sequence[float],
    *,
    symbol: str = "EURUSD",
    company_id: str = "company-1",
    step_ns: int = MINUTE_NS,
) -> tuple[MarketBook, float]:
    """A book holding all but the last price (one step apart, ending one step before now),
    and the last price, which the prediction decided at NOW_NS carries."""
    book = MarketBook()
    feed(
        book,
        prices[:-1],
        symbol=symbol,
        company_id=company_id,
        end_ns=NOW_NS - step_ns,
        step_ns=step_ns,
    )
    return book, prices[-1]
