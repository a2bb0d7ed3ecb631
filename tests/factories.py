"""Realistic prediction batches for tests that go through the API or the bus."""

from __future__ import annotations

import time

from tradeflow.common.v1 import tier_pb2
from tradeflow.ml.v1 import prediction_pb2

NOW_NS = 1_800_000_000_000_000_000
# Mid prices the batches are built around.
PRICES = {
    "EURUSD": 1.08512,
    "GBPUSD": 1.27043,
    "USDJPY": 151.237,
    "XAUUSD": 2398.45,
    "AUDUSD": 0.65731,
    "NZDUSD": 0.59874,
}
_HALF_SPREAD = {
    "EURUSD": 0.00004,
    "GBPUSD": 0.00005,
    "USDJPY": 0.004,
    "XAUUSD": 0.15,
    "AUDUSD": 0.00004,
    "NZDUSD": 0.00005,
}


def prediction(
    prediction_id: str,
    symbol: str = "EURUSD",
    direction: int = prediction_pb2.DIRECTION_UP,
    confidence: float = 0.86,
    observed_ns: int = NOW_NS - 200_000_000,
    votes: int = 4,
) -> prediction_pb2.Prediction:
    """A prediction four models mostly agree on, priced a moment before NOW_NS."""
    price = PRICES[symbol]
    half_spread = _HALF_SPREAD[symbol]
    message = prediction_pb2.Prediction(
        prediction_id=prediction_id,
        symbol=symbol,
        primary_direction=direction,  # type: ignore[arg-type]
        confidence=confidence,
        current_price=price,
        bid=round(price - half_spread, 5),
        ask=round(price + half_spread, 5),
        predicted_price=price * (1.002 if direction <= prediction_pb2.DIRECTION_WEAK_UP else 0.998),
    )
    message.timestamp.FromNanoseconds(observed_ns)
    message.horizon.FromSeconds(900)
    for index in range(votes):
        agrees = index < votes - 1 or votes == 1
        message.votes.add(
            model_id=f"model-{index}",
            direction=direction if agrees else prediction_pb2.DIRECTION_NEUTRAL,
            confidence=0.8,
            weight=1.0,
        )
    return message


def batch(
    batch_id: str,
    predictions: list[prediction_pb2.Prediction],
    user_id: str = "trader-1",
    company_id: str = "acme",
    tier: int = tier_pb2.SUBSCRIPTION_TIER_PRO,
    equity: float = 25_000.0,
) -> prediction_pb2.MLPredictionBatch:
    message = prediction_pb2.MLPredictionBatch(
        batch_id=batch_id, predictions=predictions, correlation_id=f"corr-{batch_id}"
    )
    tenant = message.user_context
    tenant.user_id = user_id
    tenant.company_id = company_id
    tenant.tier = tier  # type: ignore[assignment]
    tenant.account_equity = equity
    tenant.account_currency = "USD"
    message.produced_at.FromNanoseconds(NOW_NS - 100_000_000)
    return message


def live(message: prediction_pb2.MLPredictionBatch) -> prediction_pb2.MLPredictionBatch:
    """The batch as if produced just now, its prices observed a moment before.

    For engines that read the real clock: the fixed NOW_NS lies in the future.
    """
    now_ns = time.time_ns()
    message.produced_at.FromNanoseconds(now_ns - 100_000_000)
    for each in message.predictions:
        each.timestamp.FromNanoseconds(now_ns - 200_000_000)
    return message
