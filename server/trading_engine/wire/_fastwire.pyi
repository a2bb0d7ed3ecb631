"""Typed interface of the C codec in _fastwire.c."""

from trading_engine.core.decision import Adjustment, Leg, TraceStep

class DecodeError(ValueError): ...

# Prediction field number -> wire type the decoder expects.
PREDICTION_WIRE_TYPES: dict[int, int]

# (direction, confidence, weight)
RawVote = tuple[int, float, float]
# (direction, probability)
RawPattern = tuple[int, float]
# prediction_id, symbol, direction, confidence, price, predicted_price, bid, ask,
# spread_pips (None if absent), volume (None if absent), horizon_ns,
# observed_ns (None if the prediction has no timestamp), votes, patterns
RawPrediction = tuple[
    str,
    str,
    int,
    float,
    float,
    float,
    float,
    float,
    float | None,
    float | None,
    int,
    int | None,
    list[RawVote],
    list[RawPattern],
]
# batch_id, has_tenant, user_id, company_id, tier, equity, currency, produced_ns,
# correlation_id, predictions
RawBatch = tuple[str, bool, str, str, int, float, str, int, str, list[RawPrediction]]

# signal_id, prediction_id, signal_type, strength, confidence, consensus, disposition,
# reason, cancellation_reason, risk_status, risk_level, pattern_score, volume
SignalHead = tuple[
    str, str, int, float, float, float, int, int, str, int, int, float | None, float | None
]
# order_type, urgency, reference_price, entry_price, limit_price, stop_loss, take_profit,
# stop_loss_pips, take_profit_pips, lots, risk_amount, legs, time_in_force,
# valid_until_ns, pip_value, risk_budget, size_factor
EntryFields = tuple[
    int,
    int,
    float,
    float,
    float,
    float,
    float,
    float,
    float,
    float,
    float,
    list[Leg],
    int,
    int,
    float,
    float,
    float,
]
# regime, volatility_bps, trend, trend_bps, spread_pips, price_age_ns, samples,
# last_price, favourability
MarketFields = tuple[int, float, int, float, float, int, int, float, float]

def decode_batch(data: bytes, /) -> RawBatch: ...
def encode_signal(
    head: SignalHead,
    entry: EntryFields | None,
    market: MarketFields | None,
    adjustments: list[Adjustment],
    trace: list[TraceStep],
    batch_id_field: bytes,
    symbol_field: bytes,
    tenant_fields: bytes,
    market_symbol_field: bytes,
    tail_fields: bytes,
    /,
) -> bytes: ...
