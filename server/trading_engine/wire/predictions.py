"""MLPredictionBatch bytes -> BatchInput, without building protobuf objects."""

from __future__ import annotations

from trading_engine.core.inputs import BatchInput, PredictionInput
from trading_engine.wire.protowire import (
    WIRE_FIXED64,
    WIRE_LENGTH,
    WIRE_VARINT,
    DecodeError,
    read_double,
    read_length,
    read_string,
    read_time,
    read_varint,
    signed64,
    skip_field,
)

# A prediction without a timestamp, until the batch's production time is known.
_NO_TIMESTAMP = -1


def decode_batch(data: bytes) -> BatchInput:
    """Read a serialized tradeflow.ml.v1.MLPredictionBatch; DecodeError if malformed."""
    end = len(data)
    position = 0
    batch = BatchInput("", False, "", "", 0, 0.0, "", 0, "", [])
    while position < end:
        key, position = read_varint(data, position, end)
        field, wire_type = key >> 3, key & 7
        if field in (1, 2, 3, 4, 5) and wire_type != WIRE_LENGTH:
            raise DecodeError(f"MLPredictionBatch field {field} has wire type {wire_type}")
        if field == 1:
            batch.batch_id, position = read_string(data, position, end)
        elif field == 2:
            stop, position = read_length(data, position, end)
            _read_user_context(data, position, stop, batch)
            position = stop
        elif field == 3:
            stop, position = read_length(data, position, end)
            batch.produced_ns = read_time(data, position, stop)
            position = stop
        elif field == 4:
            stop, position = read_length(data, position, end)
            batch.predictions.append(_read_prediction(data, position, stop))
            position = stop
        elif field == 5:
            batch.correlation_id, position = read_string(data, position, end)
        else:
            position = skip_field(data, position, end, wire_type)
    for prediction in batch.predictions:
        if prediction.observed_ns == _NO_TIMESTAMP:
            prediction.observed_ns = batch.produced_ns
    return batch


def _read_user_context(data: bytes, position: int, end: int, batch: BatchInput) -> None:
    batch.has_tenant = True
    while position < end:
        key, position = read_varint(data, position, end)
        field, wire_type = key >> 3, key & 7
        if field == 1 and wire_type == WIRE_LENGTH:
            batch.user_id, position = read_string(data, position, end)
        elif field == 2 and wire_type == WIRE_LENGTH:
            batch.company_id, position = read_string(data, position, end)
        elif field == 3 and wire_type == WIRE_VARINT:
            value, position = read_varint(data, position, end)
            batch.tier = signed64(value)
        elif field == 4 and wire_type == WIRE_FIXED64:
            batch.equity, position = read_double(data, position, end)
        elif field == 5 and wire_type == WIRE_LENGTH:
            batch.currency, position = read_string(data, position, end)
        elif 1 <= field <= 5:
            raise DecodeError(f"UserContext field {field} has wire type {wire_type}")
        else:
            position = skip_field(data, position, end, wire_type)


# Wire type of each Prediction field the decoder reads.
_PREDICTION_WIRE_TYPES = {
    1: WIRE_LENGTH,  # prediction_id
    2: WIRE_LENGTH,  # symbol
    3: WIRE_VARINT,  # primary_direction
    4: WIRE_FIXED64,  # confidence
    5: WIRE_LENGTH,  # votes
    6: WIRE_LENGTH,  # patterns
    7: WIRE_FIXED64,  # volume_confirmation
    8: WIRE_FIXED64,  # current_price
    9: WIRE_FIXED64,  # predicted_price
    10: WIRE_FIXED64,  # bid
    11: WIRE_FIXED64,  # ask
    12: WIRE_FIXED64,  # spread_pips
    13: WIRE_LENGTH,  # horizon
    14: WIRE_LENGTH,  # timestamp
}


def _read_prediction(data: bytes, position: int, end: int) -> PredictionInput:
    prediction = PredictionInput(
        "", "", 0, 0.0, 0.0, 0.0, 0.0, 0.0, None, None, 0, _NO_TIMESTAMP, [], []
    )
    while position < end:
        key, position = read_varint(data, position, end)
        field, wire_type = key >> 3, key & 7
        expected = _PREDICTION_WIRE_TYPES.get(field)
        if expected is None:
            position = skip_field(data, position, end, wire_type)
            continue
        if wire_type != expected:
            raise DecodeError(f"Prediction field {field} has wire type {wire_type}")
        if wire_type == WIRE_FIXED64:
            value, position = read_double(data, position, end)
            if field == 4:
                prediction.confidence = value
            elif field == 8:
                prediction.price = value
            elif field == 10:
                prediction.bid = value
            elif field == 11:
                prediction.ask = value
            elif field == 9:
                prediction.predicted_price = value
            elif field == 7:
                prediction.volume = value
            else:
                prediction.spread_pips = value
        elif field == 5:
            stop, position = read_length(data, position, end)
            prediction.votes.append(_read_vote(data, position, stop))
            position = stop
        elif field == 6:
            stop, position = read_length(data, position, end)
            prediction.patterns.append(_read_pattern(data, position, stop))
            position = stop
        elif field == 1:
            prediction.prediction_id, position = read_string(data, position, end)
        elif field == 2:
            prediction.symbol, position = read_string(data, position, end)
        elif field == 3:
            value_int, position = read_varint(data, position, end)
            prediction.direction = signed64(value_int)
        else:
            stop, position = read_length(data, position, end)
            if field == 13:
                prediction.horizon_ns = read_time(data, position, stop)
            else:
                prediction.observed_ns = read_time(data, position, stop)
            position = stop
    return prediction


def _read_vote(data: bytes, position: int, end: int) -> tuple[int, float, float]:
    direction = 0
    confidence = weight = 0.0
    while position < end:
        key, position = read_varint(data, position, end)
        field, wire_type = key >> 3, key & 7
        if field == 2 and wire_type == WIRE_VARINT:
            value, position = read_varint(data, position, end)
            direction = signed64(value)
        elif field == 3 and wire_type == WIRE_FIXED64:
            confidence, position = read_double(data, position, end)
        elif field == 4 and wire_type == WIRE_FIXED64:
            weight, position = read_double(data, position, end)
        elif field == 1 and wire_type == WIRE_LENGTH:
            # The model id is not used by the rules, but must be valid UTF-8.
            _, position = read_string(data, position, end)
        elif 1 <= field <= 4:
            raise DecodeError(f"ModelVote field {field} has wire type {wire_type}")
        else:
            position = skip_field(data, position, end, wire_type)
    return direction, confidence, weight


def _read_pattern(data: bytes, position: int, end: int) -> tuple[int, float]:
    direction = 0
    probability = 0.0
    while position < end:
        key, position = read_varint(data, position, end)
        field, wire_type = key >> 3, key & 7
        if field == 2 and wire_type == WIRE_FIXED64:
            probability, position = read_double(data, position, end)
        elif field == 3 and wire_type == WIRE_VARINT:
            value, position = read_varint(data, position, end)
            direction = signed64(value)
        elif field == 1 and wire_type == WIRE_LENGTH:
            _, position = read_string(data, position, end)
        elif 1 <= field <= 3:
            raise DecodeError(f"PatternDetection field {field} has wire type {wire_type}")
        else:
            position = skip_field(data, position, end, wire_type)
    return direction, probability
