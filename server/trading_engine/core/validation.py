"""Input validation: a batch that cannot be decided at all, and predictions that cannot be.

A malformed batch (no tenant, no id) is refused as a whole with one violation
per field. A bad prediction only makes its own decision INVALID, naming the
field; the rest of the batch is still decided.
"""

from __future__ import annotations

import math
from typing import Final

from tradeflow.ml.v1 import prediction_pb2
from trading_engine.core.inputs import BatchInput, PredictionInput
from trading_engine.errors import FieldViolation

MAX_ID_LENGTH: Final = 128
# Votes and patterns one prediction may carry (tradeflow.ml.v1.Prediction): each costs decision
# time, and ensembles and pattern detectors are far smaller.
MAX_VOTES: Final = 64
MAX_PATTERNS: Final = 32
# How far in the future a prediction's timestamp may lie (clock skew between hosts).
MAX_FUTURE_SKEW_NS: Final = 5_000_000_000

_FIRST_DIRECTION: Final[int] = prediction_pb2.DIRECTION_UP
_LAST_DIRECTION: Final[int] = prediction_pb2.DIRECTION_DOWN
_INF: Final = math.inf


def batch_violations(batch: BatchInput) -> list[FieldViolation]:
    """Why a batch cannot be decided at all; empty when it can."""
    violations = []
    if not batch.batch_id:
        violations.append(FieldViolation("batch.batch_id", "required"))
    elif len(batch.batch_id) > MAX_ID_LENGTH:
        violations.append(FieldViolation("batch.batch_id", f"longer than {MAX_ID_LENGTH}"))
    if len(batch.correlation_id) > MAX_ID_LENGTH:
        # Copied onto every signal of the batch.
        violations.append(FieldViolation("batch.correlation_id", f"longer than {MAX_ID_LENGTH}"))
    if not batch.has_tenant:
        violations.append(FieldViolation("batch.user_context", "required: the tenant"))
        return violations
    for name, value in (("user_id", batch.user_id), ("company_id", batch.company_id)):
        if not value:
            violations.append(FieldViolation(f"batch.user_context.{name}", "required"))
        elif len(value) > MAX_ID_LENGTH:
            violations.append(
                FieldViolation(f"batch.user_context.{name}", f"longer than {MAX_ID_LENGTH}")
            )
    if not 0.0 <= batch.equity < _INF:
        violations.append(
            FieldViolation("batch.user_context.account_equity", "must be a finite number >= 0")
        )
    currency = batch.currency
    if currency and not (len(currency) == 3 and currency.isascii() and currency.isupper()):
        violations.append(
            FieldViolation(
                "batch.user_context.account_currency", "must be an ISO 4217 code such as USD"
            )
        )
    return violations


def prediction_problem(prediction: PredictionInput, now_ns: int) -> tuple[str, str] | None:
    """The first problem with a prediction as (field, why), or None when it can be decided."""
    identifier = prediction.prediction_id
    if not identifier:
        return "prediction_id", "required"
    if len(identifier) > MAX_ID_LENGTH:
        return "prediction_id", f"longer than {MAX_ID_LENGTH} characters"
    if not prediction.symbol:
        return "symbol", "required"
    if not _FIRST_DIRECTION <= prediction.direction <= _LAST_DIRECTION:
        return "primary_direction", "must be UP, WEAK_UP, NEUTRAL, WEAK_DOWN or DOWN"
    confidence = prediction.confidence
    if not 0.0 <= confidence <= 1.0:
        return "confidence", f"{confidence} is not in [0, 1]"
    price = prediction.price
    if not 0.0 < price < _INF:
        return "current_price", f"{price} is not a positive finite price"
    if not 0.0 <= prediction.predicted_price < _INF:
        return "predicted_price", "must be a finite price >= 0 (0 = not predicted)"
    bid, ask = prediction.bid, prediction.ask
    if not (0.0 <= bid < _INF and 0.0 <= ask < _INF):
        return "bid", "bid and ask must be finite prices >= 0 (0 = not known)"
    if bid > 0.0 and ask > 0.0 and ask < bid:
        return "ask", f"ask {ask} is below bid {bid}"
    spread = prediction.spread_pips
    if spread is not None and not 0.0 <= spread < _INF:
        return "spread_pips", "must be a finite number >= 0"
    volume = prediction.volume
    if volume is not None and not 0.0 <= volume <= 1.0:
        return "volume_confirmation", "must be in [0, 1]"
    if len(prediction.votes) > MAX_VOTES:
        return "votes", f"at most {MAX_VOTES} votes"
    if len(prediction.patterns) > MAX_PATTERNS:
        return "patterns", f"at most {MAX_PATTERNS} patterns"
    index = 0
    for direction, vote_confidence, weight in prediction.votes:
        if not _FIRST_DIRECTION <= direction <= _LAST_DIRECTION:
            return f"votes[{index}].direction", "must be set"
        if not 0.0 <= vote_confidence <= 1.0:
            return f"votes[{index}].confidence", "must be in [0, 1]"
        if not 0.0 <= weight < _INF:
            return f"votes[{index}].weight", "must be a finite number >= 0"
        index += 1  # noqa: SIM113 - enumerate would build a tuple per vote on the hot path
    index = 0
    for direction, probability in prediction.patterns:
        if not 0.0 <= probability <= 1.0:
            return f"patterns[{index}].probability", "must be in [0, 1]"
        if not _FIRST_DIRECTION <= direction <= _LAST_DIRECTION:
            return f"patterns[{index}].direction", "must be set"
        index += 1  # noqa: SIM113 - as above
    if prediction.horizon_ns < 0:
        return "horizon", "must not be negative"
    observed_ns = prediction.observed_ns
    if observed_ns <= 0:
        return "timestamp", "required (or batch.produced_at): the age of the price"
    if observed_ns > now_ns + MAX_FUTURE_SKEW_NS:
        return "timestamp", "lies more than 5 s in the future"
    return None
