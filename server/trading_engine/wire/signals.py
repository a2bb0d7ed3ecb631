"""Decisions -> TradingSignal and TradingSignalBatch bytes.

The fields every signal of a batch shares are encoded once here; each signal
is written by the C codec (_fastwire.c, decision 7). The output is byte for
byte what the protobuf runtime writes for the same message (tests/wire).
Field numbers are those of proto/tradeflow/trading/v1/signal.proto.
"""

from __future__ import annotations

from typing import Final

from trading_engine.core.decision import Decision
from trading_engine.wire import _fastwire
from trading_engine.wire.protowire import (
    length_delimited,
    string_field,
    timestamp_message,
    varint,
    varint_field,
)

# TradingSignal fields shared by a batch (the C codec writes the others).
_BATCH_ID: Final = b"\x1a"
_SYMBOL: Final = b"\x22"
_USER_ID: Final = b"\x2a"
_COMPANY_ID: Final = b"\x32"
_CORRELATION_ID: Final = b"\x3a"
_STRATEGY_VERSION: Final = b"\xa8\x01"
_GENERATED_AT: Final = b"\xb2\x01"
_SOURCE: Final = b"\xb8\x01"
_INJECTED_BY: Final = b"\xc2\x01"
# MarketCondition.symbol.
_MARKET_SYMBOL: Final = b"\x0a"

# TradingSignalBatch fields.
_BATCH_BATCH_ID: Final = b"\x0a"
_BATCH_USER_ID: Final = b"\x12"
_BATCH_COMPANY_ID: Final = b"\x1a"
_BATCH_CORRELATION_ID: Final = b"\x22"
_BATCH_SIGNAL: Final = b"\x2a"
_BATCH_DECIDED_AT: Final = b"\x32"
_BATCH_STRATEGY_VERSION: Final = b"\x38"
_BATCH_COUNTS: Final = (b"\x40", b"\x48", b"\x50", b"\x58", b"\x60")
_MAX_CACHED_SYMBOLS: Final = 4096
# Bound once: a lookup on the C module each call would cost more than the call.
_encode_signal: Final = _fastwire.encode_signal


class SignalContext:
    """What every signal of one batch shares."""

    def __init__(
        self,
        batch_id: str,
        user_id: str,
        company_id: str,
        correlation_id: str,
        strategy_version: int,
        decided_at_ns: int,
        source: int,
        injected_by: str = "",
    ) -> None:
        self.batch_id = batch_id
        self.user_id = user_id
        self.company_id = company_id
        self.correlation_id = correlation_id
        self.strategy_version = strategy_version
        self.decided_at_ns = decided_at_ns
        # Its Timestamp payload, written in every signal and in the batch: encoded once.
        self.decided_at = timestamp_message(decided_at_ns)
        self.source = source
        self.injected_by = injected_by


class SignalEncoder:
    """Writes signals and signal batches; encodes what signals share only once."""

    def __init__(self) -> None:
        # symbol -> (TradingSignal.symbol field, MarketCondition.symbol field)
        self._symbols: dict[str, tuple[bytes, bytes]] = {}
        self._shared: tuple[SignalContext, bytes, bytes, bytes] | None = None

    def encode_signal(self, context: SignalContext, decision: Decision) -> bytes:
        """One serialized tradeflow.trading.v1.TradingSignal."""
        batch_id, tenant, tail = self._shared_fields(context)
        symbol, market_symbol = self._symbol_fields(decision.symbol)
        entry = decision.entry
        market = decision.market
        return _encode_signal(
            (
                decision.signal_id,
                decision.prediction_id,
                decision.signal_type,
                decision.strength,
                decision.confidence,
                decision.consensus,
                decision.disposition,
                decision.reason,
                decision.cancellation_reason,
                decision.risk_status,
                decision.risk_level,
                decision.pattern_score,
                decision.volume,
            ),
            None
            if entry is None
            else (
                entry.order_type,
                entry.urgency,
                entry.reference_price,
                entry.entry_price,
                entry.limit_price,
                entry.stop_loss,
                entry.take_profit,
                entry.stop_loss_pips,
                entry.take_profit_pips,
                entry.lots,
                entry.risk_amount,
                entry.legs,
                entry.time_in_force,
                entry.valid_until_ns,
                entry.pip_value,
                entry.risk_budget,
                entry.size_factor,
            ),
            None
            if market is None
            else (
                market.regime,
                market.volatility_bps,
                market.trend,
                market.trend_bps,
                market.spread_pips,
                market.price_age_ns,
                market.samples,
                market.last_price,
                market.favourability,
            ),
            decision.risk_adjustments,
            decision.trace,
            batch_id,
            symbol,
            tenant,
            market_symbol,
            tail,
        )

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
        for signal in signals:
            # Key and length, then the signal itself: each payload is copied once, by join.
            parts.append(_BATCH_SIGNAL + varint(len(signal)))
            parts.append(signal)
        parts.append(length_delimited(_BATCH_DECIDED_AT, context.decided_at))
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
            + length_delimited(_GENERATED_AT, context.decided_at)
            + varint_field(_SOURCE, context.source)
            + string_field(_INJECTED_BY, context.injected_by)
        )
        self._shared = (context, batch_id, tenant, tail)
        return batch_id, tenant, tail

    def _symbol_fields(self, symbol: str) -> tuple[bytes, bytes]:
        encoded = self._symbols.get(symbol)
        if encoded is None:
            encoded = (string_field(_SYMBOL, symbol), string_field(_MARKET_SYMBOL, symbol))
            if len(self._symbols) < _MAX_CACHED_SYMBOLS:
                self._symbols[symbol] = encoded
        return encoded
