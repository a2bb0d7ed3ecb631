"""A realistic, reproducible prediction stream for the benchmarks.

Ten currency pairs random-walk at about 10 bps per square-root hour; every
100 ms a batch of ten predictions arrives, one per pair, each from a
four-model ensemble (three agree, one is split), half of them with a chart
pattern and volume confirmation. Each batch is for another of 10,000 traders
of one ENTERPRISE company, so duplicate suppression and the rate limit rarely
cut a decision short: most predictions take the full path through the rules,
which is the slowest.
"""

from __future__ import annotations

import math
import random

from tradeflow.common.v1 import tier_pb2
from tradeflow.ml.v1 import prediction_pb2
from trading_engine.core.decide import DecisionContext
from trading_engine.core.inputs import BatchInput
from trading_engine.engine import DecisionEngine
from trading_engine.tenancy import Caller
from trading_engine.wire.predictions import decode_batch

START_NS = 1_800_000_000_000_000_000
STEP_NS = 100_000_000
SYMBOLS = {
    "EURUSD": 1.0851, "GBPUSD": 1.2704, "USDJPY": 151.24, "USDCHF": 0.8812, "AUDUSD": 0.6571,
    "USDCAD": 1.3602, "NZDUSD": 0.6012, "EURGBP": 0.8541, "EURJPY": 164.11, "GBPJPY": 192.14,
}  # fmt: skip
_VOLATILITY_PER_STEP = 10e-4 / math.sqrt(36_000)  # 10 bps per sqrt hour, 36,000 steps an hour
_DIRECTIONS = (
    prediction_pb2.DIRECTION_UP,
    prediction_pb2.DIRECTION_WEAK_UP,
    prediction_pb2.DIRECTION_WEAK_DOWN,
    prediction_pb2.DIRECTION_DOWN,
)


def batches(
    count: int, size: int = 10, seed: int = 7, *, start_ns: int = START_NS, users: int = 10_000
) -> list[bytes]:
    """`count` serialized MLPredictionBatch messages of `size` predictions each.

    The `index`th batch is stamped `start_ns + index * STEP_NS` and comes from
    trader `index % users`.
    """
    rng = random.Random(seed)
    prices = dict(SYMBOLS)
    symbols = list(SYMBOLS)
    result = []
    for index in range(count):
        at_ns = start_ns + index * STEP_NS
        message = prediction_pb2.MLPredictionBatch(
            batch_id=f"batch-{index}", correlation_id=f"corr-{index}"
        )
        tenant = message.user_context
        tenant.user_id = f"trader-{index % users}"
        tenant.company_id = "acme"
        tenant.tier = tier_pb2.SUBSCRIPTION_TIER_ENTERPRISE
        tenant.account_equity = 50_000.0
        tenant.account_currency = "USD"
        message.produced_at.FromNanoseconds(at_ns)
        for slot in range(size):
            symbol = symbols[(index * size + slot) % len(symbols)]
            price = prices[symbol] * (1.0 + rng.gauss(0.0, _VOLATILITY_PER_STEP))
            prices[symbol] = price
            message.predictions.append(_prediction(rng, f"{index}-{slot}", symbol, price, at_ns))
        result.append(message.SerializeToString())
    return result


def caller_of(batch: BatchInput) -> Caller:
    """The trader a batch comes from, as the transports would have authenticated them."""
    return Caller(batch.user_id, batch.company_id, batch.tier)


def callers(data: list[bytes]) -> list[Caller]:
    return [caller_of(decode_batch(encoded)) for encoded in data]


def decision_context(engine: DecisionEngine, batch: BatchInput, index: int) -> DecisionContext:
    """What the engine decides the `index`th batch with, at the instant it arrives."""
    return DecisionContext(
        batch.user_id, batch.company_id, batch.equity, batch.currency,
        engine.strategies.strategy_for(caller_of(batch)), START_NS + index * STEP_NS,
        batch.produced_ns, 0,
    )  # fmt: skip


def _prediction(
    rng: random.Random, prediction_id: str, symbol: str, price: float, at_ns: int
) -> prediction_pb2.Prediction:
    direction = rng.choice(_DIRECTIONS)
    pip = 0.01 if symbol.endswith("JPY") else 0.0001
    message = prediction_pb2.Prediction(
        prediction_id=prediction_id,
        symbol=symbol,
        primary_direction=direction,
        confidence=rng.uniform(0.62, 0.97),
        current_price=price,
        bid=price - pip * 0.4,
        ask=price + pip * 0.4,
        predicted_price=price * (1.0 + (0.0015 if direction <= 2 else -0.0015)),
    )
    message.timestamp.FromNanoseconds(at_ns - 20_000_000)
    message.horizon.FromSeconds(900)
    for model in range(4):
        message.votes.add(
            model_id=f"model-{model}",
            direction=direction if model < 3 else rng.choice(_DIRECTIONS),
            confidence=rng.uniform(0.6, 0.95),
            weight=(1.0, 0.8, 0.6, 0.5)[model],
        )
    if rng.random() < 0.5:
        message.patterns.add(
            name="engulfing", probability=rng.uniform(0.55, 0.9), direction=rng.choice(_DIRECTIONS)
        )
        message.volume_confirmation = rng.uniform(0.3, 0.9)
    return message
