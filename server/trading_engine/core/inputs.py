"""A prediction read into plain Python values, once.

Reading a protobuf field costs about 0.1 µs and each repeated element (a vote,
a pattern) about 0.5 µs, so every field is read exactly once here and the
rules work on the plain values.
"""

from __future__ import annotations

import dataclasses
from typing import Final

from tradeflow.ml.v1 import prediction_pb2

_NANOS: Final = 1_000_000_000


# Written-out __init__: see core/decision.py.
@dataclasses.dataclass(init=False)
class PredictionInput:
    prediction_id: str
    symbol: str
    direction: int
    confidence: float
    price: float
    predicted_price: float
    bid: float
    ask: float
    # Quoted spread in pips; None when the prediction has none.
    spread_pips: float | None
    # Volume confirmation in [0, 1]; None when the prediction has none.
    volume: float | None
    horizon_ns: int
    # When the price was observed: the prediction's timestamp, else the batch's production time.
    observed_ns: int
    # (direction, confidence, weight) per model vote.
    votes: list[tuple[int, float, float]]
    # (direction, probability) per detected pattern.
    patterns: list[tuple[int, float]]

    def __init__(
        self,
        prediction_id: str,
        symbol: str,
        direction: int,
        confidence: float,
        price: float,
        predicted_price: float,
        bid: float,
        ask: float,
        spread_pips: float | None,
        volume: float | None,
        horizon_ns: int,
        observed_ns: int,
        votes: list[tuple[int, float, float]],
        patterns: list[tuple[int, float]],
    ) -> None:
        self.prediction_id = prediction_id
        self.symbol = symbol
        self.direction = direction
        self.confidence = confidence
        self.price = price
        self.predicted_price = predicted_price
        self.bid = bid
        self.ask = ask
        self.spread_pips = spread_pips
        self.volume = volume
        self.horizon_ns = horizon_ns
        self.observed_ns = observed_ns
        self.votes = votes
        self.patterns = patterns


def read_prediction(prediction: prediction_pb2.Prediction, produced_ns: int) -> PredictionInput:
    """Every field the rules use; `produced_ns` stands in for a missing timestamp."""
    horizon = prediction.horizon
    if prediction.HasField("timestamp"):
        stamp = prediction.timestamp
        observed_ns = stamp.seconds * _NANOS + stamp.nanos
    else:
        observed_ns = produced_ns
    return PredictionInput(
        prediction.prediction_id,
        prediction.symbol,
        prediction.primary_direction,
        prediction.confidence,
        prediction.current_price,
        prediction.predicted_price,
        prediction.bid,
        prediction.ask,
        prediction.spread_pips if prediction.HasField("spread_pips") else None,
        prediction.volume_confirmation if prediction.HasField("volume_confirmation") else None,
        horizon.seconds * _NANOS + horizon.nanos,
        observed_ns,
        [(vote.direction, vote.confidence, vote.weight) for vote in prediction.votes],
        [(pattern.direction, pattern.probability) for pattern in prediction.patterns],
    )


@dataclasses.dataclass(init=False)
class BatchInput:
    """An MLPredictionBatch read into plain values."""

    batch_id: str
    # Whether the batch carries a user_context at all.
    has_tenant: bool
    user_id: str
    company_id: str
    tier: int
    equity: float
    currency: str
    # When ML-Processing produced the batch; 0 when not set.
    produced_ns: int
    correlation_id: str
    predictions: list[PredictionInput]

    def __init__(
        self,
        batch_id: str,
        has_tenant: bool,
        user_id: str,
        company_id: str,
        tier: int,
        equity: float,
        currency: str,
        produced_ns: int,
        correlation_id: str,
        predictions: list[PredictionInput],
    ) -> None:
        self.batch_id = batch_id
        self.has_tenant = has_tenant
        self.user_id = user_id
        self.company_id = company_id
        self.tier = tier
        self.equity = equity
        self.currency = currency
        self.produced_ns = produced_ns
        self.correlation_id = correlation_id
        self.predictions = predictions
