"""Simulated fills for backtests: what would have become of each signal, given the prices.

`simulate_signal` plays one actionable signal against recorded price bars and
answers with the `ExecutionResult` messages a broker would have sent;
`simulate_run` feeds them through the live engine's own `outcome_of` and
`summarize`, so a backtest reports the same figures, computed the same way, as
the live engine. Nothing here computes profit, pips or drawdown.

A bar is the open, high, low and close of the prices after its start and up to
and including its end instant; a single price is a bar whose four prices are
equal, starting and ending at its instant. Prices are compared in the
instrument's ticks, as `outcome_of` compares them. A fill is never booked at a
price outside the range of the bar it happens in. The rules:

- Only ACTIONABLE signals with an entry are simulated; any other gives no results.
- Only bars ending strictly after the signal's `generated_at` count: a decision
  cannot trade on prices it had already seen.
- A bar's open counts only when the bar is known to start at or after the
  order or position it is checked for (a bar that began before the decision
  opened before the order existed), and only when the bars carry an open. An
  open that does not count is unknown: then no gap can be seen, a level inside
  the bar fills at the level, and a level the whole bar lies beyond fills at
  the bar's nearest price to it.
- A MARKET order fills at `entry_price` at `generated_at`, worse by the
  instrument's slippage (default none); no latency.
- A LIMIT order fills at `limit_price` (`entry_price` when that is 0) at the end
  of the first bar that trades through it (a buy: low below the limit; a sell:
  high above it; merely touching it is not enough, the queue ahead may take all
  there is), or at the bar's open when the bar opens beyond it (a gap: better
  than the limit), provided that bar ends no later than `valid_until` when it
  is set. When the prices reach `valid_until` without such a fill, the order
  expires: one EXPIRED result at `valid_until` (outcome NOT_FILLED). When they
  end before the order filled or expired, there is no result (outcome UNSPECIFIED).
- After the fill, each bar ending after the fill instant is checked (the fill
  bar's own prices may come before the fill, so it is not): a buy stops out
  when the low reaches `stop_loss` and takes profit when the high reaches
  `take_profit`, a sell the mirror. A bar that opens beyond a level went through
  it before anything else: a stop fills at the open (worse than the stop), a
  target at the open (better). Otherwise a stop fills at the stop and a target
  at the target. A bar that opens between the levels and reaches both counts as
  the stop: a bar does not say which came first, and assuming the worst keeps a
  backtest from flattering the strategy. The position closes at the bar's end;
  a stop's price is worse by the instrument's slippage, within the bar's range.
  Still open when the prices end: no CLOSED result (outcome OPEN).
- Results carry no currency, so `outcome_of` values a close at pips x the
  signal's pip value x lots, in the account currency, less the instrument's
  commission per lot (default none), charged on the close for the round trip.
- Known simplification: a multi-leg entry (`entry.legs`, staggered take
  profits) is simulated as its single combined order: the total size, the main
  stop loss and the main take profit.
"""

from __future__ import annotations

import bisect
import csv
import dataclasses
import enum
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
from trading_engine.core.attribution import ModelBreakdown, by_model
from trading_engine.core.decision import SIDE
from trading_engine.core.instruments import DEFAULT_CURRENCY, Instrument
from trading_engine.core.outcomes import facts_of, outcome_of
from trading_engine.core.performance import (
    BY_SYMBOL,
    Mark,
    PerformanceStats,
    SignalResult,
    Vote,
    breakdown,
    realised_steps,
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
    # Its first price; None when the bars do not say.
    open: float | None = None
    # The instant it starts (its prices are after it), ns since the epoch; None when unknown.
    start_ns: int | None = None


def _end_ns(bar: Bar) -> int:
    return bar.time_ns


@dataclasses.dataclass(frozen=True, slots=True)
class Costs:
    """What trading one instrument costs beyond the prices, in a simulation."""

    # Pips by which a market fill and a stop are worse than asked, >= 0.
    slippage_pips: float = 0.0
    # Account currency per lot for the round trip, charged on the close, >= 0.
    commission_per_lot: float = 0.0

    def __post_init__(self) -> None:
        for name in ("slippage_pips", "commission_per_lot"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0.0):
                raise ValueError(f"{name} must be a number >= 0, got {value}")


NO_COSTS: Final = Costs()


@dataclasses.dataclass(frozen=True)
class CostTable:
    """The costs of each instrument: its own when named, else the default."""

    default: Costs = NO_COSTS
    by_symbol: Mapping[str, Costs] = dataclasses.field(default_factory=dict)

    def of(self, symbol: str) -> Costs:
        return self.by_symbol.get(symbol, self.default)


NO_COST_TABLE: Final = CostTable()


class BarTime(enum.Enum):
    """What the time of a bar in a bars file names."""

    # The instant its first price may be, as most data vendors and backtesting libraries label.
    OPEN = "open"
    # The instant it ends: its prices are up to and including it.
    CLOSE = "close"


class PriceSeries:
    """Price bars per symbol, each symbol's in time order."""

    def __init__(self, bars: Mapping[str, Iterable[Bar]], warnings: Sequence[str] = ()) -> None:
        """Of two bars of a symbol ending at the same instant, the later one given is kept."""
        self._bars: dict[str, tuple[Bar, ...]] = {
            symbol: tuple(sorted({bar.time_ns: bar for bar in series}.values(), key=_end_ns))
            for symbol, series in bars.items()
        }
        # What a reader of the results should know about the bars, one sentence each.
        self.warnings = tuple(warnings)

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
                    bars[prediction.symbol].append(_tick(time_ns, price))
        return cls(bars)

    @classmethod
    def from_csv(cls, path: Path, bar_time: BarTime = BarTime.CLOSE) -> PriceSeries:
        """Bars from a CSV file (`read_bars_csv`), each time read as `bar_time` says."""
        return labelled(read_bars_csv(path), bar_time)

    def bars(self, symbol: str) -> Sequence[Bar]:
        """The symbol's bars in time order; none for a symbol without prices."""
        return self._bars.get(symbol, ())

    def symbols(self) -> list[str]:
        """The symbols with prices, ascending."""
        return sorted(self._bars)

    def marks(self, symbols: Iterable[str]) -> list[Mark]:
        """Each bar's close at its end, of `symbols`: what marking to market values them at."""
        return [
            Mark(bar.time_ns, symbol, bar.close)
            for symbol in sorted(set(symbols))
            for bar in self.bars(symbol)
        ]


def _tick(time_ns: int, price: float) -> Bar:
    """A single price: a bar of no length whose four prices are that price."""
    return Bar(time_ns, price, price, price, open=price, start_ns=time_ns)


def usual_spacing_ns(times_ns: Sequence[int]) -> int | None:
    """The most common gap between consecutive distinct instants (the shortest of equally common
    ones); None for fewer than two."""
    ordered = sorted(set(times_ns))
    gaps = Counter(later - earlier for earlier, later in itertools.pairwise(ordered))
    if not gaps:
        return None
    most = max(gaps.values())
    return min(gap for gap, count in gaps.items() if count == most)


def read_bars_csv(path: Path) -> dict[str, list[Bar]]:
    """Bars by symbol from a CSV file with a header naming at least symbol, time, high, low and
    close, each bar's `time_ns` the time as written (`labelled` says what it means).

    Columns may come in any order; `open` is read when there is such a column (a row may
    leave it empty: unknown), others (volume) are ignored. A time is ISO-8601 with a zone
    (2026-11-20T10:00:00Z) or whole seconds since the Unix epoch. Raises ValueError naming
    the line and the problem for a header without those columns or a row that is not a
    valid bar.
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
    return dict(bars)


def labelled(bars: Mapping[str, Sequence[Bar]], bar_time: BarTime) -> PriceSeries:
    """Bars whose `time_ns` is a label, as bars with their start and end.

    A symbol's bars last its usual spacing (the most common gap between two of them): a bar
    labelled by its close starts that long before it, one labelled by its open ends that
    long after. A symbol with one bar has no usual spacing: labelled by its close, its start
    is unknown; labelled by its open, ValueError. Gaps between bars that are not a whole
    number of the usual spacing are named in the series' warnings: bars of mixed lengths
    have wrong starts or ends.
    """
    placed: dict[str, list[Bar]] = {}
    warnings = []
    for symbol, series in sorted(bars.items()):
        labels = sorted({bar.time_ns for bar in series})
        length_ns = usual_spacing_ns(labels)
        if length_ns is None:
            if bar_time is BarTime.OPEN:
                raise ValueError(
                    f"{symbol} has a single bar: with --bar-time open its end cannot be known"
                )
            placed[symbol] = list(series)
            continue
        uneven = [
            later for earlier, later in itertools.pairwise(labels) if (later - earlier) % length_ns
        ]
        if uneven:
            warnings.append(
                f"{symbol}: {len(uneven)} of {len(labels) - 1} gaps between bars are not a "
                f"whole number of its usual {_duration(length_ns)} (the first before "
                f"{_iso(uneven[0])}): bars of other lengths get wrong "
                f"{'starts' if bar_time is BarTime.CLOSE else 'ends'}"
            )
        shift = length_ns if bar_time is BarTime.OPEN else 0
        placed[symbol] = [
            dataclasses.replace(
                bar, time_ns=bar.time_ns + shift, start_ns=bar.time_ns + shift - length_ns
            )
            for bar in series
        ]
    return PriceSeries(placed, warnings)


@dataclasses.dataclass(frozen=True)
class BarFit:
    """How well prices observed elsewhere (the predictions') sit in the bars covering them."""

    # Prices at an instant some bar covers (after its start, up to its end).
    covered: int
    # Of those, prices within the covering bar's low and high.
    inside: int

    @property
    def share(self) -> float:
        return self.inside / self.covered if self.covered else 0.0


# At least this many covered prices, and this much larger a share inside under the other
# labelling, before a bars file is said to disagree with --bar-time.
_FIT_MIN_PRICES: Final = 10
_FIT_MARGIN: Final = 0.1


def bar_fit(bars: PriceSeries, prices: PriceSeries) -> BarFit:
    """Where the single prices of `prices` fall in the bars of `bars`, symbol by symbol."""
    covered = inside = 0
    for symbol in prices.symbols():
        series = bars.bars(symbol)
        for tick in prices.bars(symbol):
            index = bisect.bisect_left(series, tick.time_ns, key=_end_ns)
            if index == len(series):
                continue
            bar = series[index]
            if bar.start_ns is None or bar.start_ns >= tick.time_ns:
                continue
            covered += 1
            inside += bar.low <= tick.close <= bar.high
    return BarFit(covered, inside)


def bar_time_warning(
    bars: Mapping[str, Sequence[Bar]], bar_time: BarTime, prices: PriceSeries
) -> str | None:
    """A sentence when the predictions' prices sit clearly better in the bars read the other
    way than as `bar_time` says; None when they do not, or too few are covered to tell."""
    other = BarTime.OPEN if bar_time is BarTime.CLOSE else BarTime.CLOSE
    try:
        chosen_fit, other_fit = (bar_fit(labelled(bars, way), prices) for way in (bar_time, other))
    except ValueError:
        return None
    if min(chosen_fit.covered, other_fit.covered) < _FIT_MIN_PRICES:
        return None
    if other_fit.share - chosen_fit.share < _FIT_MARGIN:
        return None
    return (
        f"the bars disagree with --bar-time {bar_time.value}: read as labelled by their "
        f"{other.value}, {other_fit.share:.0%} of the predictions' prices lie within the bar "
        f"covering them, against {chosen_fit.share:.0%} as given; check how the file labels "
        "its bars"
    )


def _duration(length_ns: int) -> str:
    seconds = length_ns // _NANOS_PER_SECOND
    for unit, size in (("d", 86_400), ("h", 3_600), ("min", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds // size} {unit}"
    return f"{length_ns / _NANOS_PER_SECOND:g} s"


def _iso(time_ns: int) -> str:
    return (_EPOCH + timedelta(microseconds=time_ns // 1_000)).strftime("%Y-%m-%dT%H:%M:%SZ")


def _csv_bar(row: Mapping[str, str | None]) -> tuple[str, Bar]:
    """(symbol, bar) from one CSV row; ValueError saying what is wrong with it."""
    text = {column: (row.get(column) or "").strip() for column in _CSV_COLUMNS}
    empty = [column for column, value in text.items() if not value]
    if empty:
        raise ValueError(f"no value for {', '.join(empty)}")
    high, low, close = (_price(column, text[column]) for column in ("high", "low", "close"))
    if not low <= close <= high:
        raise ValueError(f"need low <= close <= high, got low {low}, close {close}, high {high}")
    open_text = (row.get("open") or "").strip()
    opened = _price("open", open_text) if open_text else None
    if opened is not None and not low <= opened <= high:
        raise ValueError(f"need low <= open <= high, got low {low}, open {opened}, high {high}")
    return text["symbol"], Bar(_instant_ns(text["time"]), high, low, close, open=opened)


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
    """Prices as a position on one side sees them: ticks signed so that larger is better
    for the position (a buy's high, a sell's low)."""

    # +1 for a buy, -1 for a sell.
    sign: int
    instrument: Instrument

    def ticks(self, price: float) -> int:
        return self.sign * self.instrument.to_ticks(price)

    def price(self, signed_ticks: int) -> float:
        return self.instrument.price(self.sign * signed_ticks)

    def adverse(self, bar: Bar) -> int:
        """The bar's worst price for the position: a buy's low, a sell's high."""
        return min(self.ticks(bar.low), self.ticks(bar.high))

    def favourable(self, bar: Bar) -> int:
        """The bar's best price for the position: a buy's high, a sell's low."""
        return max(self.ticks(bar.low), self.ticks(bar.high))

    def opening(self, bar: Bar, since_ns: int) -> int | None:
        """The bar's open when it counts for something that began at `since_ns`, else None."""
        if bar.open is None or bar.start_ns is None or bar.start_ns < since_ns:
            return None
        return self.ticks(bar.open)

    def within(self, bar: Bar, signed_ticks: int) -> int:
        """`signed_ticks` moved into the bar's range when it lies beyond it."""
        return min(max(signed_ticks, self.adverse(bar)), self.favourable(bar))


def _actionable(signal: signal_pb2.TradingSignal) -> bool:
    actionable = signal.disposition == signal_pb2.SIGNAL_DISPOSITION_ACTIONABLE
    return actionable and signal.HasField("entry")


def simulate_signal(
    signal: signal_pb2.TradingSignal,
    bars: Sequence[Bar],
    instrument: Instrument,
    costs: Costs = NO_COSTS,
) -> list[execution_pb2.ExecutionResult]:
    """The execution results of `signal` against `bars` (time order), by the module's rules."""
    if not _actionable(signal):
        return []
    entry = signal.entry
    side = _Side(SIDE[signal.signal_type], instrument)
    slippage_ticks = instrument.pip_ticks(costs.slippage_pips)
    generated_ns = signal.generated_at.ToNanoseconds()
    later = bars[bisect.bisect_right(bars, generated_ns, key=_end_ns) :]
    if entry.order_type == signal_pb2.ORDER_TYPE_LIMIT:
        limit = entry.limit_price or entry.entry_price
        valid_until_ns = (
            entry.valid_until.ToNanoseconds() if entry.HasField("valid_until") else None
        )
        filled = next(
            (
                (bar, ticks)
                for bar in later
                if (ticks := _limit_fill(side, bar, side.ticks(limit), generated_ns)) is not None
            ),
            None,
        )
        if filled is None or (valid_until_ns is not None and filled[0].time_ns > valid_until_ns):
            if valid_until_ns is not None and later and later[-1].time_ns >= valid_until_ns:
                expired = _result(signal, "expired", E.EXECUTION_STATUS_EXPIRED)
                expired.executed_at.FromNanoseconds(valid_until_ns)
                return [expired]
            return []
        fill_ns, price = filled[0].time_ns, side.price(filled[1])
    else:
        # A buyer pays more, a seller gets less: more signed ticks either way.
        price = side.price(side.ticks(entry.entry_price) + slippage_ticks)
        fill_ns = generated_ns
    results = [_position_result(signal, "fill", E.EXECUTION_STATUS_FILLED, price, fill_ns)]
    stop, target = side.ticks(entry.stop_loss), side.ticks(entry.take_profit)
    for bar in later[bisect.bisect_right(later, fill_ns, key=_end_ns) :]:
        exit_ticks, reason = _exit(side, bar, stop, target, fill_ns)
        if reason == E.CLOSE_REASON_UNSPECIFIED:
            continue
        if reason == E.CLOSE_REASON_STOP_LOSS:
            exit_ticks = side.within(bar, exit_ticks - slippage_ticks)
        close = _position_result(signal, "close", E.EXECUTION_STATUS_CLOSED, price, fill_ns)
        close.exit_price = side.price(exit_ticks)
        close.closed_at.FromNanoseconds(bar.time_ns)
        close.close_reason = reason
        close.commission = costs.commission_per_lot * entry.position_size_lots
        results.append(close)
        break
    return results


def _limit_fill(side: _Side, bar: Bar, limit: int, placed_ns: int) -> int | None:
    """Where `bar` fills a limit order at `limit` placed at `placed_ns`, in the signed ticks of
    `side` (a buy's lower price is fewer ticks: better for the buyer); None when it does not."""
    opening = side.opening(bar, placed_ns)
    if opening is not None and opening < limit:
        return opening
    if side.adverse(bar) < limit:
        return side.within(bar, limit)
    return None


def _exit(
    side: _Side, bar: Bar, stop: int, target: int, opened_ns: int
) -> tuple[int, execution_pb2.CloseReason.ValueType]:
    """Where and why `bar` closes a position opened at `opened_ns` (signed ticks); the reason
    is UNSPECIFIED when it does not."""
    opening = side.opening(bar, opened_ns)
    if opening is not None and opening <= stop:
        return opening, E.CLOSE_REASON_STOP_LOSS
    if opening is not None and opening >= target:
        return opening, E.CLOSE_REASON_TAKE_PROFIT
    if side.adverse(bar) <= stop:
        return side.within(bar, stop), E.CLOSE_REASON_STOP_LOSS
    if side.favourable(bar) >= target:
        return side.within(bar, target), E.CLOSE_REASON_TAKE_PROFIT
    return 0, E.CLOSE_REASON_UNSPECIFIED


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
class Trade:
    """A filled signal of a simulation as a trade list shows it."""

    signal_id: str
    symbol: str
    # +1 for a buy, -1 for a sell.
    side: int
    lots: float
    opened_ns: int
    fill_price: float
    # tradeflow.trading.v1.SignalOutcome value: WIN, LOSS, BREAKEVEN or OPEN.
    outcome: int
    # 0 while open.
    closed_ns: int = 0
    exit_price: float = 0.0
    # tradeflow.trading.v1.CloseReason value; UNSPECIFIED while open.
    close_reason: int = 0
    profit_loss_pips: float = 0.0
    # In the account currency, net of commission.
    profit_loss: float = 0.0


@dataclasses.dataclass(frozen=True)
class SimulatedRun:
    """The outcome of every simulated signal and the figures over them."""

    # One per actionable signal of a known instrument, in the order given.
    results: tuple[SignalResult, ...]
    stats: PerformanceStats
    # (ns since the epoch, equity): the start (the first signal's decision, 0 without signals)
    # at `starting_equity`, then the equity after each instant something closed at (closes at
    # one instant netted), as `summarize` adds them.
    curve: tuple[tuple[int, float], ...]
    starting_equity: float
    # Filled and not closed when the prices ended.
    open_at_end: int
    # Not filled: expired, or still waiting when the prices ended.
    never_filled: int
    # Signals whose recorded results were taken rather than simulated.
    recorded: int = 0
    # Per model id in the votes, ascending (none without votes).
    models: tuple[ModelBreakdown, ...] = ()
    # Every filled signal, in the order of its fill.
    trades: tuple[Trade, ...] = ()
    # (symbol, the figures of its signals), symbols ascending.
    by_symbol: tuple[tuple[str, PerformanceStats], ...] = ()


def simulate_run(
    signals: Iterable[signal_pb2.TradingSignal],
    prices: PriceSeries,
    starting_equity: float,
    account_currency: str = DEFAULT_CURRENCY,
    costs: CostTable = NO_COST_TABLE,
    votes: Mapping[str, tuple[Vote, ...]] | None = None,
    recorded: Mapping[str, Sequence[execution_pb2.ExecutionResult]] | None = None,
) -> SimulatedRun:
    """Every signal simulated against `prices` and summarized as the live engine would.

    Signals of an instrument the engine does not know are skipped. `votes` holds the votes
    of the prediction each signal (by id) was decided from, for per-model attribution;
    `recorded` the results a broker reported for a signal (by id) that traded as it did
    live: those are what became of it, and it is not simulated.
    """
    decided = tuple(signals)
    rows: list[SignalResult] = []
    trades: list[Trade] = []
    for signal in decided:
        instrument = instruments.lookup(signal.symbol)
        if not _actionable(signal) or instrument is None:
            continue
        known = (recorded or {}).get(signal.signal_id)
        results = (
            list(known)
            if known
            else simulate_signal(
                signal, prices.bars(signal.symbol), instrument, costs.of(signal.symbol)
            )
        )
        row = outcome_of(facts_of(signal), results, instrument, account_currency).result
        rows.append(dataclasses.replace(row, votes=(votes or {}).get(signal.signal_id, ())))
        if row.fill_price > 0.0:
            close = next(
                (r for r in reversed(results) if r.status == E.EXECUTION_STATUS_CLOSED), None
            )
            trades.append(_trade(signal, row, close))
    # As the live summary (analytics.summary): rows are actionable; counts are every decision.
    # Open positions are marked to market at every bar's close.
    marks = prices.marks(row.symbol for row in rows)
    # The run ends with its prices: positions still open were in the market until then.
    end_ns = max((mark.time_ns for mark in marks), default=0)
    stats = dataclasses.replace(
        summarize(rows, starting_equity, marks, end_ns),
        signals_total=len(decided),
        signals_by_type=tuple(sorted(Counter(s.signal_type for s in decided).items())),
    )
    steps = realised_steps(rows)
    start_ns = min((signal.generated_at.ToNanoseconds() for signal in decided), default=0)
    equities = itertools.accumulate((step for _, step in steps), initial=starting_equity)
    times = (start_ns, *(instant for instant, _ in steps))
    return SimulatedRun(
        results=tuple(rows),
        stats=stats,
        curve=tuple(zip(times, equities, strict=True)),
        starting_equity=starting_equity,
        open_at_end=sum(1 for row in rows if row.outcome == E.SIGNAL_OUTCOME_OPEN),
        never_filled=sum(1 for row in rows if row.outcome in _NEVER_FILLED_OUTCOMES),
        recorded=sum(1 for row in rows if row.signal_id in (recorded or {})),
        models=tuple(by_model(rows, starting_equity, marks, end_ns)),
        trades=tuple(sorted(trades, key=lambda trade: (trade.opened_ns, trade.signal_id))),
        by_symbol=tuple(breakdown(rows, BY_SYMBOL, starting_equity, marks, end_ns)),
    )


def _trade(
    signal: signal_pb2.TradingSignal,
    row: SignalResult,
    close: execution_pb2.ExecutionResult | None,
) -> Trade:
    return Trade(
        signal_id=signal.signal_id,
        symbol=signal.symbol,
        side=SIDE[signal.signal_type],
        lots=row.lots,
        opened_ns=row.opened_ns,
        fill_price=row.fill_price,
        outcome=row.outcome,
        closed_ns=row.closed_ns,
        exit_price=close.exit_price if close is not None else 0.0,
        close_reason=close.close_reason if close is not None else E.CLOSE_REASON_UNSPECIFIED,
        profit_loss_pips=row.profit_loss_pips,
        profit_loss=row.profit_loss,
    )
