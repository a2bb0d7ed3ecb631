"""Decisions -> TradingSignal and TradingSignalBatch bytes, without building protobuf objects.

The output is byte-for-byte what the protobuf runtime writes for the same
message (tests/wire checks it), so consumers cannot tell the difference; it
is only faster to produce. Field numbers are those of
proto/tradeflow/trading/v1/signal.proto.
"""

from __future__ import annotations

import dataclasses
import struct
from typing import Final

from trading_engine.core.decision import Decision, Entry, MarketView
from trading_engine.wire.protowire import (
    double_field,
    duration_message,
    length_delimited,
    present_double_field,
    string_field,
    timestamp_message,
    varint,
    varint_field,
)

# TradingSignal fields.
_SIGNAL_ID: Final = b"\x0a"
_PREDICTION_ID: Final = b"\x12"
_BATCH_ID: Final = b"\x1a"
_SYMBOL: Final = b"\x22"
_USER_ID: Final = b"\x2a"
_COMPANY_ID: Final = b"\x32"
_CORRELATION_ID: Final = b"\x3a"
_SIGNAL_TYPE: Final = b"\x40"
_STRENGTH: Final = b"\x49"
_CONFIDENCE: Final = b"\x51"
_CONSENSUS: Final = b"\x59"
_DISPOSITION: Final = b"\x60"
_REASON: Final = b"\x68"
_CANCELLATION_REASON: Final = b"\x72"
_ENTRY: Final = b"\x7a"
_RISK_STATUS: Final = b"\x80\x01"
_RISK_LEVEL: Final = b"\x88\x01"
_RISK_ADJUSTMENT: Final = b"\x92\x01"
_TRACE_STEP: Final = b"\x9a\x01"
_MARKET: Final = b"\xa2\x01"
_STRATEGY_VERSION: Final = b"\xa8\x01"
_GENERATED_AT: Final = b"\xb2\x01"
_SOURCE: Final = b"\xb8\x01"
_INJECTED_BY: Final = b"\xc2\x01"
_PATTERN_SCORE: Final = b"\xc9\x01"
_VOLUME_CONFIRMATION: Final = b"\xd1\x01"

# TradingSignalBatch fields.
_BATCH_BATCH_ID: Final = b"\x0a"
_BATCH_USER_ID: Final = b"\x12"
_BATCH_COMPANY_ID: Final = b"\x1a"
_BATCH_CORRELATION_ID: Final = b"\x22"
_BATCH_SIGNAL: Final = b"\x2a"
_BATCH_DECIDED_AT: Final = b"\x32"
_BATCH_STRATEGY_VERSION: Final = b"\x38"
_BATCH_COUNTS: Final = (b"\x40", b"\x48", b"\x50", b"\x58", b"\x60")

_pack_step_numbers = struct.Struct("<BdBd").pack
_pack_double = struct.Struct("<d").pack
_OBSERVED: Final = b"\x19"
_THRESHOLD: Final = b"\x21"
# Trace frames are cached by (rule, outcome, detail); details on the hot path are
# constants, so the cache stays small. It stops growing at this size.
_MAX_CACHED_FRAMES: Final = 4096


@dataclasses.dataclass(frozen=True, slots=True)
class SignalContext:
    """What every signal of one batch shares."""

    batch_id: str
    user_id: str
    company_id: str
    correlation_id: str
    strategy_version: int
    decided_at_ns: int
    source: int
    injected_by: str = ""


class SignalEncoder:
    """Writes signals and signal batches; keeps small caches of constant encodings."""

    def __init__(self) -> None:
        # (rule, outcome, detail) -> (frame head up to the numbers, detail field)
        self._frames: dict[tuple[int, int, str], tuple[bytes, bytes]] = {}
        # symbol -> (TradingSignal.symbol field, MarketCondition.symbol field)
        self._symbols: dict[str, tuple[bytes, bytes]] = {}
        self._shared: tuple[SignalContext, bytes, bytes, bytes] | None = None

    def encode_signal(self, context: SignalContext, decision: Decision) -> bytes:
        """One serialized tradeflow.trading.v1.TradingSignal."""
        batch_id, tenant, tail = self._shared_fields(context)
        symbol, market_symbol = self._symbol_fields(decision.symbol)
        parts = [
            string_field(_SIGNAL_ID, decision.signal_id),
            string_field(_PREDICTION_ID, decision.prediction_id),
            batch_id,
            symbol,
            tenant,
            varint_field(_SIGNAL_TYPE, decision.signal_type),
            double_field(_STRENGTH, decision.strength),
            double_field(_CONFIDENCE, decision.confidence),
            double_field(_CONSENSUS, decision.consensus),
            varint_field(_DISPOSITION, decision.disposition),
            varint_field(_REASON, decision.reason),
            string_field(_CANCELLATION_REASON, decision.cancellation_reason),
        ]
        if decision.entry is not None:
            parts.append(length_delimited(_ENTRY, _entry(decision.entry)))
        parts.append(varint_field(_RISK_STATUS, decision.risk_status))
        parts.append(varint_field(_RISK_LEVEL, decision.risk_level))
        for kind, before, after, detail in decision.risk_adjustments:
            adjustment = (
                varint_field(b"\x08", kind)
                + double_field(b"\x11", before)
                + double_field(b"\x19", after)
                + string_field(b"\x22", detail)
            )
            parts.append(length_delimited(_RISK_ADJUSTMENT, adjustment))
        frames = self._frames
        for rule, outcome, observed, threshold, detail in decision.trace:
            frame = frames.get((rule, outcome, detail))
            if frame is None:
                frame = _frame(rule, outcome, detail)
                if len(frames) < _MAX_CACHED_FRAMES:
                    frames[rule, outcome, detail] = frame
            head, detail_field = frame
            if observed and threshold:
                numbers = _pack_step_numbers(0x19, observed, 0x21, threshold)
            else:
                numbers = double_field(_OBSERVED, observed) + double_field(_THRESHOLD, threshold)
            body_length = len(head) + len(numbers) + len(detail_field)
            parts.append(_TRACE_STEP + varint(body_length) + head + numbers + detail_field)
        if decision.market is not None:
            parts.append(length_delimited(_MARKET, _market(market_symbol, decision.market)))
        parts.append(tail)
        if decision.pattern_score is not None:
            parts.append(present_double_field(_PATTERN_SCORE, decision.pattern_score))
        if decision.volume is not None:
            parts.append(present_double_field(_VOLUME_CONFIRMATION, decision.volume))
        return b"".join(parts)

    def encode_batch(
        self, context: SignalContext, signals: list[bytes], counts: tuple[int, int, int, int, int]
    ) -> bytes:
        """A serialized TradingSignalBatch from encoded signals and the counts of
        (actionable, hold, rejected, suppressed, invalid) decisions."""
        parts = [
            string_field(_BATCH_BATCH_ID, context.batch_id),
            string_field(_BATCH_USER_ID, context.user_id),
            string_field(_BATCH_COMPANY_ID, context.company_id),
            string_field(_BATCH_CORRELATION_ID, context.correlation_id),
        ]
        parts.extend(length_delimited(_BATCH_SIGNAL, signal) for signal in signals)
        parts.append(length_delimited(_BATCH_DECIDED_AT, timestamp_message(context.decided_at_ns)))
        parts.append(varint_field(_BATCH_STRATEGY_VERSION, context.strategy_version))
        parts.extend(
            varint_field(tag, count) for tag, count in zip(_BATCH_COUNTS, counts, strict=True)
        )
        return b"".join(parts)

    def _shared_fields(self, context: SignalContext) -> tuple[bytes, bytes, bytes]:
        """Fields 3, 5-7 and 21-24, identical for every signal of a batch; encoded once."""
        shared = self._shared
        if shared is not None and shared[0] is context:
            return shared[1], shared[2], shared[3]
        batch_id = string_field(_BATCH_ID, context.batch_id)
        tenant = (
            string_field(_USER_ID, context.user_id)
            + string_field(_COMPANY_ID, context.company_id)
            + string_field(_CORRELATION_ID, context.correlation_id)
        )
        tail = (
            varint_field(_STRATEGY_VERSION, context.strategy_version)
            + length_delimited(_GENERATED_AT, timestamp_message(context.decided_at_ns))
            + varint_field(_SOURCE, context.source)
            + string_field(_INJECTED_BY, context.injected_by)
        )
        self._shared = (context, batch_id, tenant, tail)
        return batch_id, tenant, tail

    def _symbol_fields(self, symbol: str) -> tuple[bytes, bytes]:
        encoded = self._symbols.get(symbol)
        if encoded is None:
            encoded = (string_field(_SYMBOL, symbol), string_field(b"\x0a", symbol))
            if len(self._symbols) < _MAX_CACHED_FRAMES:
                self._symbols[symbol] = encoded
        return encoded


def _frame(rule: int, outcome: int, detail: str) -> tuple[bytes, bytes]:
    return (
        varint_field(b"\x08", rule) + varint_field(b"\x10", outcome),
        string_field(b"\x2a", detail),
    )


def _entry(entry: Entry) -> bytes:
    parts = [
        varint_field(b"\x08", entry.order_type),
        varint_field(b"\x10", entry.urgency),
        double_field(b"\x19", entry.reference_price),
        double_field(b"\x21", entry.entry_price),
        double_field(b"\x29", entry.limit_price),
        double_field(b"\x31", entry.stop_loss),
        double_field(b"\x39", entry.take_profit),
        double_field(b"\x41", entry.stop_loss_pips),
        double_field(b"\x49", entry.take_profit_pips),
        double_field(b"\x51", entry.lots),
        double_field(b"\x59", entry.risk_amount),
    ]
    for lots, take_profit, pips in entry.legs:
        leg = double_field(b"\x09", lots) + double_field(b"\x11", take_profit)
        parts.append(length_delimited(b"\x62", leg + double_field(b"\x19", pips)))
    parts.append(varint_field(b"\x68", entry.time_in_force))
    parts.append(length_delimited(b"\x72", timestamp_message(entry.valid_until_ns)))
    parts.append(double_field(b"\x79", entry.pip_value))
    parts.append(double_field(b"\x81\x01", entry.risk_budget))
    parts.append(double_field(b"\x89\x01", entry.size_factor))
    return b"".join(parts)


def _market(symbol_field: bytes, market: MarketView) -> bytes:
    return b"".join(
        (
            symbol_field,
            varint_field(b"\x10", market.regime),
            double_field(b"\x19", market.volatility_bps),
            varint_field(b"\x20", market.trend),
            double_field(b"\x29", market.trend_bps),
            double_field(b"\x31", max(0.0, market.spread_pips)),  # unknown spread: 0
            length_delimited(b"\x3a", duration_message(market.price_age_ns)),
            varint_field(b"\x40", market.samples),
            double_field(b"\x49", market.last_price),
            double_field(b"\x51", market.favourability),
        )
    )
