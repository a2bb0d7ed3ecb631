"""MLPredictionBatch bytes -> BatchInput, through the C decoder (decision 7)."""

from __future__ import annotations

from typing import Final

from trading_engine.core.inputs import BatchInput, PredictionInput
from trading_engine.wire import _fastwire

# Field number -> wire type of every Prediction field the decoder reads.
PREDICTION_WIRE_TYPES: Final = _fastwire.PREDICTION_WIRE_TYPES


def decode_batch(data: bytes) -> BatchInput:
    """Read a serialized tradeflow.ml.v1.MLPredictionBatch; DecodeError if malformed.

    Unknown (newer) fields are skipped. A known field with the wrong wire type,
    truncated data, a string that is not UTF-8, and anything else the protobuf
    runtime refuses (field number 0, for one) is an error.
    """
    # The C codec's tuples, unpacked by name in the order _fastwire.c lays them out.
    (
        batch_id,
        has_tenant,
        user_id,
        company_id,
        tier,
        equity,
        currency,
        produced_ns,
        correlation_id,
        raw_predictions,
    ) = _fastwire.decode_batch(data)
    predictions: list[PredictionInput] = []
    for (
        prediction_id,
        symbol,
        direction,
        confidence,
        price,
        predicted_price,
        bid,
        ask,
        spread_pips,
        volume,
        horizon_ns,
        observed_ns,
        votes,
        patterns,
    ) in raw_predictions:
        predictions.append(
            PredictionInput(
                prediction_id=prediction_id,
                symbol=symbol,
                direction=direction,
                confidence=confidence,
                price=price,
                predicted_price=predicted_price,
                bid=bid,
                ask=ask,
                spread_pips=spread_pips,
                volume=volume,
                horizon_ns=horizon_ns,
                # A prediction without a timestamp was priced when its batch was produced.
                observed_ns=produced_ns if observed_ns is None else observed_ns,
                votes=votes,
                patterns=patterns,
            )
        )
    return BatchInput(
        batch_id=batch_id,
        has_tenant=has_tenant,
        user_id=user_id,
        company_id=company_id,
        tier=tier,
        equity=equity,
        currency=currency,
        produced_ns=produced_ns,
        correlation_id=correlation_id,
        predictions=predictions,
    )
