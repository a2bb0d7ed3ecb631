"""A prediction read into plain Python values, once.

Reading a protobuf field costs about 0.1 µs and each repeated element (a vote,
a pattern) about 0.5 µs, so every field is read exactly once here and the
rules work on the plain values.
"""

from __future__ import annotations

import dataclasses

from tradeflow.ml.v1 import prediction_pb2

_NANOS = 1_000_000_000


@dataclasses.dataclass(slots=True)
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


@dataclasses.dataclass(slots=True)
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
