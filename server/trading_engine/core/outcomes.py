"""What became of a signal, from the execution results reported for it.

Pure: the signal's facts and its results in, one `SignalResult` (the row the
performance figures are computed from) out. Prices are compared in the
instrument's ticks, so slippage and profit in pips are exact to the quote.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import Final

from tradeflow.trading.v1 import execution_pb2, signal_pb2
from trading_engine.core.instruments import Instrument
from trading_engine.core.performance import SignalResult

E = execution_pb2
_FILLS: Final = frozenset({E.EXECUTION_STATUS_FILLED, E.EXECUTION_STATUS_PARTIALLY_FILLED})
_LONG: Final = frozenset({signal_pb2.SIGNAL_TYPE_BUY, signal_pb2.SIGNAL_TYPE_WEAK_BUY})


@dataclasses.dataclass(frozen=True)
class SignalFacts:
    """What the outcome of an actionable signal depends on."""

    signal_id: str
    symbol: str
    signal_type: int
    strength: float
    confidence: float
    generated_ns: int
    # The entry the signal asked for, and the account-currency value of one pip on one lot.
    entry_price: float
    pip_value: float

    @property
    def side(self) -> int:
        """+1 for a buy, -1 for a sell."""
        return 1 if self.signal_type in _LONG else -1


def facts_of(signal: signal_pb2.TradingSignal) -> SignalFacts:
    """The facts of an actionable signal (one with an entry)."""
    return SignalFacts(
        signal_id=signal.signal_id,
        symbol=signal.symbol,
        signal_type=signal.signal_type,
        strength=signal.strength,
        confidence=signal.confidence,
        generated_ns=signal.generated_at.ToNanoseconds(),
        entry_price=signal.entry.entry_price,
        pip_value=signal.entry.pip_value,
    )


@dataclasses.dataclass(frozen=True)
class Outcome:
    result: SignalResult
    # The first fill's instant; 0 when never filled.
    opened_ns: int
    # Currency of `result.profit_loss`: the broker's if it reported the profit, else the account's.
    currency: str


def outcome_of(
    facts: SignalFacts,
    results: Sequence[execution_pb2.ExecutionResult],
    instrument: Instrument,
    account_currency: str,
) -> Outcome:
    """The signal's outcome after `results` (in the order received).

    - Filled: the first FILLED, PARTIALLY_FILLED or CLOSED result with a price;
      latency from the decision to its fill time, slippage in pips against the
      requested entry, positive when the fill was worse for the trader.
    - Closed: the newest CLOSED result; profit in pips from the fill to the exit.
      Profit in money is the broker's `profit_loss` when it names a currency,
      else pips x pip value x lots; commissions of every result are deducted.
      WIN, LOSS or BREAKEVEN by the sign of that net amount.
    - Never filled but REJECTED, CANCELLED or EXPIRED: NOT_FILLED; filled and
      not closed: OPEN; nothing conclusive yet: UNSPECIFIED.
    """
    fill = next(
        (
            r
            for r in results
            if (r.status in _FILLS or r.status == E.EXECUTION_STATUS_CLOSED)
            and r.executed_price > 0.0
        ),
        None,
    )
    close = next((r for r in reversed(results) if r.status == E.EXECUTION_STATUS_CLOSED), None)
    side = facts.side
    slippage: float | None = None
    latency: int | None = None
    opened_ns = 0
    if fill is not None:
        opened_ns = fill.executed_at.ToNanoseconds() if fill.HasField("executed_at") else 0
        latency = max(0, opened_ns - facts.generated_ns) if opened_ns else 0
        slippage = side * instrument.pips(
            instrument.to_ticks(fill.executed_price) - instrument.to_ticks(facts.entry_price)
        )
    outcome = E.SIGNAL_OUTCOME_UNSPECIFIED
    pips = money = 0.0
    closed_ns = 0
    currency = account_currency
    if fill is not None and close is not None and close.exit_price > 0.0:
        pips = side * instrument.pips(
            instrument.to_ticks(close.exit_price) - instrument.to_ticks(fill.executed_price)
        )
        commission = sum(r.commission for r in results)
        if close.currency:
            gross, currency = close.profit_loss, close.currency
        else:
            lots = close.executed_size_lots or fill.executed_size_lots
            gross = pips * facts.pip_value * lots
        money = _cents(gross - commission)
        outcome = (
            E.SIGNAL_OUTCOME_WIN
            if money > 0.0
            else E.SIGNAL_OUTCOME_LOSS
            if money < 0.0
            else E.SIGNAL_OUTCOME_BREAKEVEN
        )
        closed_ns = close.closed_at.ToNanoseconds() if close.HasField("closed_at") else 0
    elif fill is not None:
        outcome = E.SIGNAL_OUTCOME_OPEN
    elif any(r.status not in _FILLS for r in results):
        outcome = E.SIGNAL_OUTCOME_NOT_FILLED
    result = SignalResult(
        signal_id=facts.signal_id,
        symbol=facts.symbol,
        signal_type=facts.signal_type,
        strength=facts.strength,
        confidence=facts.confidence,
        generated_ns=facts.generated_ns,
        outcome=outcome,
        profit_loss_pips=pips,
        profit_loss=money,
        slippage_pips=slippage,
        execution_latency_ns=latency,
        closed_ns=closed_ns,
        opened_ns=opened_ns,
        fill_price=fill.executed_price if fill is not None else 0.0,
        lots=(close.executed_size_lots if close is not None else 0.0)
        or (fill.executed_size_lots if fill is not None else 0.0),
        pip_value=facts.pip_value,
    )
    return Outcome(result, opened_ns, currency)


def _cents(amount: float) -> float:
    """A signed amount to the nearest cent, halves away from zero."""
    return math.copysign(math.floor(abs(amount) * 100.0 + 0.5) / 100.0, amount)
