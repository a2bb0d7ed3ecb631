"""Live signals as table rows: one line per signal, columns fixed so they line up as they come."""

from __future__ import annotations

from typing import Final

from tradeflow.trading.v1 import signal_pb2
from trading_engine.enum_names import short_name

_COLUMNS: Final = (
    ("time", 12),
    ("symbol", 7),
    ("type", 10),
    ("strength", 8),
    ("entry", 11),
    ("stop", 11),
    ("take profit", 11),
    ("risk", 14),
)


def header() -> str:
    cells = [name.ljust(width) for name, width in _COLUMNS]
    return " ".join([*cells, "why"])


def row(signal: signal_pb2.TradingSignal) -> str:
    entry = signal.entry if signal.HasField("entry") else None
    values = (
        signal.generated_at.ToDatetime().strftime("%H:%M:%S.%f")[:12],
        signal.symbol,
        short_name(signal_pb2.SignalType.DESCRIPTOR, signal.signal_type),
        f"{signal.strength:.2f}",
        f"{entry.entry_price:g}" if entry else "-",
        f"{entry.stop_loss:g}" if entry else "-",
        f"{entry.take_profit:g}" if entry else "-",
        short_name(signal_pb2.RiskStatus.DESCRIPTOR, signal.risk_status),
    )
    cells = [value.ljust(width) for value, (_, width) in zip(values, _COLUMNS, strict=True)]
    return " ".join([*cells, _why(signal, entry)])


def _why(signal: signal_pb2.TradingSignal, entry: signal_pb2.EntryStrategy | None) -> str:
    """For an actionable signal its size and what risk changed; otherwise the rule that said no."""
    if entry is None:
        reason = short_name(signal_pb2.DispositionReason.DESCRIPTOR, signal.reason)
        return f"{reason}: {signal.cancellation_reason}"
    adjusted = ", ".join(adjustment.detail for adjustment in signal.risk_adjustments)
    return f"{entry.position_size_lots:g} lots" + (f"; {adjusted}" if adjusted else "")
