"""Simulated fills for backtests: what would have become of each signal, given the prices.

`simulate_signal` plays one actionable signal against recorded price bars and
answers with the `ExecutionResult` messages a broker would have sent;
`simulate_run` feeds them through the live engine's own `outcome_of` and
`summarize`, so a backtest reports the same figures, computed the same way, as
the live engine. Nothing here computes profit, pips or drawdown.

A bar is the high, low and close of the prices up to and including its end
instant; a single price is a bar whose three prices are equal. Prices are
compared in the instrument's ticks, as `outcome_of` compares them. The rules:

- Only ACTIONABLE signals with an entry are simulated; any other gives no results.
- Only bars ending strictly after the signal's `generated_at` count: a decision
  cannot trade on prices it had already seen.
- A MARKET order fills at `entry_price` at `generated_at`: no slippage, no latency.
- A LIMIT order fills at `limit_price` (`entry_price` when that is 0) at the end
  of the first bar that trades through it (a buy: low <= limit; a sell: high >=
  limit), provided that bar ends no later than `valid_until` when it is set.
  When the prices reach `valid_until` without such a fill, the order expires:
  one EXPIRED result at `valid_until` (outcome NOT_FILLED). When they end before
  the order filled or expired, there is no result (outcome UNSPECIFIED).
- After the fill, each bar ending after the fill instant is checked (the fill
  bar's own prices may come before the fill, so it is not): a buy stops out
  when the low reaches `stop_loss` and takes profit when the high reaches
  `take_profit`, a sell the mirror. A bar reaching both counts as the stop: a
  bar does not say which came first, and assuming the worst keeps a backtest
  from flattering the strategy. The position closes at exactly the stop or
  take-profit price at the bar's end. Still open when the prices end: no CLOSED
  result (outcome OPEN).
- Results carry no commission and no currency, so `outcome_of` values a close
  at pips x the signal's pip value x lots, in the account currency.
- Known simplification: a multi-leg entry (`entry.legs`, staggered take
  profits) is simulated as its single combined order: the total size, the main
  stop loss and the main take profit.
"""

from __future__ import annotations

import bisect
import csv
import dataclasses
import itertools
import math
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Final

from tradeflow.ml.v1 import prediction_pb2
from tradeflow.trading.v1 import execution_pb2, signal_pb2
from trading_engine.core import instruments
from trading_engine.core.decision import SIDE
from trading_engine.core.instruments import DEFAULT_CURRENCY, Instrument
from trading_engine.core.outcomes import facts_of, outcome_of
from trading_engine.core.performance import (
    PerformanceStats,
    SignalResult,
    closed_in_curve_order,
    summarize,
)

E = execution_pb2
_NEVER_FILLED_OUTCOMES: Final = frozenset(
    {E.SIGNAL_OUTCOME_NOT_FILLED, E.SIGNAL_OUTCOME_UNSPECIFIED}
)
_CSV_COLUMNS: Final = ("symbol", "time", "high", "low", "close")
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_NANOS_PER_SECOND: Final = 1_000_000_000


@dataclasses.dataclass(frozen=True, slots=True)
class Bar:
    """The prices of one instrument over a span of time."""

    # The instant the bar ends, ns since the Unix epoch; its prices are up to and including it.
    time_ns: int
    high: float
    low: float
    close: float


def _end_ns(bar: Bar) -> int:
    return bar.time_ns


class PriceSeries:
    """Price bars per symbol, each symbol's in time order."""

    def __init__(self, bars: Mapping[str, Iterable[Bar]]) -> None:
        """Of two bars of a symbol ending at the same instant, the later one given is kept."""
        self._bars: dict[str, tuple[Bar, ...]] = {
            symbol: tuple(sorted({bar.time_ns: bar for bar in series}.values(), key=_end_ns))
            for symbol, series in bars.items()
        }

    @classmethod
    def from_predictions(cls, batches: Iterable[prediction_pb2.MLPredictionBatch]) -> PriceSeries:
        """One price per prediction: its `current_price` at its `timestamp`.

        A prediction without a timestamp is priced at its batch's `produced_at`;
        one with neither, or with a price that is not a positive number, is skipped.
        """
        bars: defaultdict[str, list[Bar]] = defaultdict(list)
        for batch in batches:
            for prediction in batch.predictions:
                price = prediction.current_price
                if prediction.HasField("timestamp"):
                    time_ns = prediction.timestamp.ToNanoseconds()
                elif batch.HasField("produced_at"):
                    time_ns = batch.produced_at.ToNanoseconds()
                else:
                    continue
                if math.isfinite(price) and price > 0.0:
                    bars[prediction.symbol].append(Bar(time_ns, price, price, price))
        return cls(bars)

    @classmethod
    def from_csv(cls, path: Path) -> PriceSeries:
        """Bars from a CSV file with a header naming at least symbol, time, high, low and close.

        Columns may come in any order and others (open, volume) are ignored. A
        time is ISO-8601 with a zone (2026-11-20T10:00:00Z) or whole seconds
        since the Unix epoch. Raises ValueError naming the line and the problem
        for a header without those columns or a row that is not a valid bar.
        """
        bars: defaultdict[str, list[Bar]] = defaultdict(list)
        with path.open(newline="") as file:
            reader = csv.DictReader(file)
            missing = [column for column in _CSV_COLUMNS if column not in (reader.fieldnames or ())]
            if missing:
                raise ValueError(f"{path}, line 1: the header lacks {', '.join(missing)}")
            for row in reader:
                try:
                    symbol, bar = _csv_bar(row)
                except ValueError as problem:
                    raise ValueError(f"{path}, line {reader.line_num}: {problem}") from None
                bars[symbol].append(bar)
        return cls(bars)

    def bars(self, symbol: str) -> Sequence[Bar]:
        """The symbol's bars in time order; none for a symbol without prices."""
        return self._bars.get(symbol, ())


def _csv_bar(row: Mapping[str, str | None]) -> tuple[str, Bar]:
    """(symbol, bar) from one CSV row; ValueError saying what is wrong with it."""
    text = {column: (row.get(column) or "").strip() for column in _CSV_COLUMNS}
    empty = [column for column, value in text.items() if not value]
    if empty:
        raise ValueError(f"no value for {', '.join(empty)}")
    high, low, close = (_price(column, text[column]) for column in ("high", "low", "close"))
    if not low <= close <= high:
        raise ValueError(f"need low <= close <= high, got low {low}, close {close}, high {high}")
    return text["symbol"], Bar(_instant_ns(text["time"]), high, low, close)


def _price(column: str, text: str) -> float:
    try:
        price = float(text)
    except ValueError:
        raise ValueError(f"{column} {text!r} is not a number") from None
    if not (math.isfinite(price) and price > 0.0):
        raise ValueError(f"{column} {text!r} is not a positive price")
    return price


def _instant_ns(text: str) -> int:
    """ns since the Unix epoch of ISO-8601 with a zone, or of whole epoch seconds."""
    if text.isascii() and text.isdigit():
        return int(text) * _NANOS_PER_SECOND
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(
            f"time {text!r} is neither ISO-8601 nor whole seconds since the epoch"
        ) from None
    if moment.tzinfo is None:
        raise ValueError(f"time {text!r} has no zone (end it with Z or an offset such as +01:00)")
    # Whole microseconds, exact, then ns: a float of seconds would lose the last digits.
    return (moment - _EPOCH) // timedelta(microseconds=1) * 1_000


@dataclasses.dataclass(frozen=True, slots=True)
class _Side:
    """Prices as a position on one side sees them: ticks signed so that larger is better."""

    # +1 for a buy, -1 for a sell.
    sign: int
    instrument: Instrument

    def ticks(self, price: float) -> int:
        return self.sign * self.instrument.to_ticks(price)

    def adverse(self, bar: Bar) -> int:
        """The bar's worst price for the position: a buy's low, a sell's high."""
        return min(self.ticks(bar.low), self.ticks(bar.high))

    def favourable(self, bar: Bar) -> int:
        """The bar's best price for the position: a buy's high, a sell's low."""
        return max(self.ticks(bar.low), self.ticks(bar.high))


def _actionable(signal: signal_pb2.TradingSignal) -> bool:
    actionable = signal.disposition == signal_pb2.SIGNAL_DISPOSITION_ACTIONABLE
    return actionable and signal.HasField("entry")


def simulate_signal(
    signal: signal_pb2.TradingSignal, bars: Sequence[Bar], instrument: Instrument
) -> list[execution_pb2.ExecutionResult]:
    """The execution results of `signal` against `bars` (time order), by the module's rules."""
    if not _actionable(signal):
        return []
    entry = signal.entry
    side = _Side(SIDE[signal.signal_type], instrument)
    generated_ns = signal.generated_at.ToNanoseconds()
    later = bars[bisect.bisect_right(bars, generated_ns, key=_end_ns) :]
    if entry.order_type == signal_pb2.ORDER_TYPE_LIMIT:
        price = entry.limit_price or entry.entry_price
        valid_until_ns = (
            entry.valid_until.ToNanoseconds() if entry.HasField("valid_until") else None
        )
        fill_bar = next((bar for bar in later if side.adverse(bar) <= side.ticks(price)), None)
        if fill_bar is None or (valid_until_ns is not None and fill_bar.time_ns > valid_until_ns):
            if valid_until_ns is not None and later and later[-1].time_ns >= valid_until_ns:
                expired = _result(signal, "expired", E.EXECUTION_STATUS_EXPIRED)
                expired.executed_at.FromNanoseconds(valid_until_ns)
                return [expired]
            return []
        fill_ns = fill_bar.time_ns
    else:
        price, fill_ns = entry.entry_price, generated_ns
    results = [_position_result(signal, "fill", E.EXECUTION_STATUS_FILLED, price, fill_ns)]
    for bar in later[bisect.bisect_right(later, fill_ns, key=_end_ns) :]:
        if side.adverse(bar) <= side.ticks(entry.stop_loss):
            exit_price, reason = entry.stop_loss, E.CLOSE_REASON_STOP_LOSS
        elif side.favourable(bar) >= side.ticks(entry.take_profit):
            exit_price, reason = entry.take_profit, E.CLOSE_REASON_TAKE_PROFIT
        else:
            continue
        close = _position_result(signal, "close", E.EXECUTION_STATUS_CLOSED, price, fill_ns)
        close.exit_price = exit_price
        close.closed_at.FromNanoseconds(bar.time_ns)
        close.close_reason = reason
        results.append(close)
        break
    return results


def _result(
    signal: signal_pb2.TradingSignal, event: str, status: execution_pb2.ExecutionStatus.ValueType
) -> execution_pb2.ExecutionResult:
    """A result for `signal` with what every simulated result carries; `event` names it."""
    return E.ExecutionResult(
        execution_id=f"sim:{signal.signal_id}:{event}",
        signal_id=signal.signal_id,
        user_id=signal.user_id,
        company_id=signal.company_id,
        symbol=signal.symbol,
        status=status,
        correlation_id=signal.correlation_id,
    )


def _position_result(
    signal: signal_pb2.TradingSignal,
    event: str,
    status: execution_pb2.ExecutionStatus.ValueType,
    fill_price: float,
    fill_ns: int,
) -> execution_pb2.ExecutionResult:
    """A result about the filled position: a close repeats the fill, as a broker's report does."""
    result = _result(signal, event, status)
    result.executed_price = fill_price
    result.executed_size_lots = signal.entry.position_size_lots
    result.executed_at.FromNanoseconds(fill_ns)
    return result


@dataclasses.dataclass(frozen=True)
class SimulatedRun:
    """The outcome of every simulated signal and the figures over them."""

    # One per actionable signal of a known instrument, in the order given.
    results: tuple[SignalResult, ...]
    stats: PerformanceStats
    # (ns since the epoch, equity): the start (the first signal's decision, 0 without signals)
    # at `starting_equity`, then the equity after each close, in the order `summarize` adds them.
    curve: tuple[tuple[int, float], ...]
    starting_equity: float
    # Filled and not closed when the prices ended.
    open_at_end: int
    # Not filled: expired, or still waiting when the prices ended.
    never_filled: int


def simulate_run(
    signals: Iterable[signal_pb2.TradingSignal],
    prices: PriceSeries,
    starting_equity: float,
    account_currency: str = DEFAULT_CURRENCY,
) -> SimulatedRun:
    """Every signal simulated against `prices` and summarized as the live engine would.

    Signals of an instrument the engine does not know are skipped.
    """
    decided = tuple(signals)
    rows: list[SignalResult] = []
    for signal in decided:
        instrument = instruments.lookup(signal.symbol)
        if not _actionable(signal) or instrument is None:
            continue
        results = simulate_signal(signal, prices.bars(signal.symbol), instrument)
        rows.append(outcome_of(facts_of(signal), results, instrument, account_currency).result)
    # As the live summary (analytics.summary): rows are actionable; counts are every decision.
    stats = dataclasses.replace(
        summarize(rows, starting_equity),
        signals_total=len(decided),
        signals_by_type=tuple(sorted(Counter(s.signal_type for s in decided).items())),
    )
    closed = closed_in_curve_order(rows)
    start_ns = min((signal.generated_at.ToNanoseconds() for signal in decided), default=0)
    equities = itertools.accumulate((row.profit_loss for row in closed), initial=starting_equity)
    times = (start_ns, *(row.closed_ns for row in closed))
    return SimulatedRun(
        results=tuple(rows),
        stats=stats,
        curve=tuple(zip(times, equities, strict=True)),
        starting_equity=starting_equity,
        open_at_end=sum(1 for row in rows if row.outcome == E.SIGNAL_OUTCOME_OPEN),
        never_filled=sum(1 for row in rows if row.outcome in _NEVER_FILLED_OUTCOMES),
    )
