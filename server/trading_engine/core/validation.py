"""Input validation: a batch that cannot be decided at all, and predictions that cannot be.

A malformed batch (no tenant, no id) is refused as a whole with one violation
per field. A bad prediction only makes its own decision INVALID, naming the
field; the rest of the batch is still decided.

Prices must also be plausible for their instrument (decision 19): within its
configured range, and within a band around the last price the company's
feed gave for it, x1.1 either way at once and 0.1 wider for every minute
since that price. So a feed error (1e300, 5e-324, another pair's price) is
refused before it reaches the market state or any arithmetic, while a real
market that jumps is followed within minutes at worst.
"""

from __future__ import annotations

import math
from typing import Final

from tradeflow.ml.v1 import prediction_pb2
from trading_engine.core.inputs import BatchInput, PredictionInput
from trading_engine.core.instruments import Instrument
from trading_engine.core.market import SymbolState
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

# The band around the last accepted price (decision 19): a factor either way, at once and
# per minute since that price was observed. Bid and ask must lie within the first of
# current_price.
PRICE_BAND_FACTOR: Final = 1.1
PRICE_BAND_WIDENING_PER_MINUTE: Final = 0.1
_WIDENING_PER_NS: Final = PRICE_BAND_WIDENING_PER_MINUTE / 60_000_000_000


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


class PriceProblem:
    """A price that cannot be believed: its field, its value, the bound it crossed, and why."""

    def __init__(self, field: str, observed: float, bound: float, why: str) -> None:
        self.field = field
        self.observed = observed
        self.bound = bound
        self.why = why


def price_problem(
    prediction: PredictionInput, instrument: Instrument, state: SymbolState
) -> PriceProblem | None:
    """Why a valid prediction's prices are implausible for the instrument, or None.

    `state` is the company's market state of the instrument: its last accepted
    price is the centre of the band. The prices are known positive and finite.
    """
    price = prediction.price
    if not instrument.plausible(price):
        return _outside_range("current_price", price, instrument)
    if state.last_ns:
        anchor = state.last_price
        elapsed_ns = abs(prediction.observed_ns - state.last_ns)
        factor = PRICE_BAND_FACTOR + elapsed_ns * _WIDENING_PER_NS
        if price > anchor * factor or price < anchor / factor:
            return _outside_band(price, anchor, factor, elapsed_ns, instrument.symbol)
    # Bid and ask (0: not quoted), written out: a loop would build tuples for every prediction.
    bid = prediction.bid
    if bid > 0.0 and _off_quote(bid, price):
        return _quote_problem("bid", bid, price)
    ask = prediction.ask
    if ask > 0.0 and _off_quote(ask, price):
        return _quote_problem("ask", ask, price)
    predicted = prediction.predicted_price
    if predicted > 0.0 and not instrument.plausible(predicted):
        return _outside_range("predicted_price", predicted, instrument)
    return None


def _off_quote(quote: float, price: float) -> bool:
    return quote > price * PRICE_BAND_FACTOR or quote < price / PRICE_BAND_FACTOR


def _quote_problem(field: str, quote: float, price: float) -> PriceProblem:
    bound = price * PRICE_BAND_FACTOR if quote > price else price / PRICE_BAND_FACTOR
    return PriceProblem(
        field,
        quote,
        bound,
        f"{quote:g} is more than x{PRICE_BAND_FACTOR:g} away from current_price {price:g}",
    )


def _outside_range(field: str, price: float, instrument: Instrument) -> PriceProblem:
    bound = instrument.max_price if price > instrument.max_price else instrument.min_price
    return PriceProblem(
        field,
        price,
        bound,
        f"{price:g} is outside the plausible {instrument.symbol} prices, "
        f"{instrument.min_price:g} to {instrument.max_price:g}",
    )


def _outside_band(
    price: float, anchor: float, factor: float, elapsed_ns: int, symbol: str
) -> PriceProblem:
    bound = anchor * factor if price > anchor else anchor / factor
    minutes = elapsed_ns / 60_000_000_000
    return PriceProblem(
        "current_price",
        price,
        bound,
        f"{price:g} is more than x{factor:.4g} away from {anchor:g}, the last {symbol} price "
        f"accepted, {minutes:.1f} min apart (x{PRICE_BAND_FACTOR:g}, "
        f"+{PRICE_BAND_WIDENING_PER_MINUTE:g} per minute)",
    )
