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
    raw = _fastwire.decode_batch(data)
    produced_ns = raw[7]
    return BatchInput(
        raw[0],
        raw[1],
        raw[2],
        raw[3],
        raw[4],
        raw[5],
        raw[6],
        produced_ns,
        raw[8],
        [
            PredictionInput(
                p[0],
                p[1],
                p[2],
                p[3],
                p[4],
                p[5],
                p[6],
                p[7],
                p[8],
                p[9],
                p[10],
                produced_ns if p[11] is None else p[11],
                p[12],
                p[13],
            )
            for p in raw[9]
        ],
    )
