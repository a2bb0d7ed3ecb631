"""Performance statistics over signals and what became of them.

`summarize` turns a set of `SignalResult` rows into the figures of
`PerformanceStats`: counts, hit rate, profit factor, expectancy, realised and
marked-to-market drawdown, slippage, latency, confidence calibration and the
risk-adjusted figures (`risk_adjusted`: Sharpe, Sortino, Calmar, exposure,
trade duration, losing streak), so live figures and a replay's are one
definition.
`breakdown` computes the same figures per symbol, signal type, strength bucket or UTC hour, and
`window_start_ns` says where a performance window begins. Everything is pure:
the rows and the current time are arguments, and the API layer translates the
dataclasses here into their protobuf twins.
"""

from __future__ import annotations

import bisect
import dataclasses
import itertools
import math
import operator
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from typing import Final

from google.protobuf.descriptor import EnumDescriptor

from tradeflow.trading.v1 import execution_pb2, performance_pb2, signal_pb2
from trading_engine.core import instruments
from trading_engine.core.decision import SIDE

WIN: Final[int] = execution_pb2.SIGNAL_OUTCOME_WIN
LOSS: Final[int] = execution_pb2.SIGNAL_OUTCOME_LOSS
BREAKEVEN: Final[int] = execution_pb2.SIGNAL_OUTCOME_BREAKEVEN
_CLOSED: Final = frozenset({WIN, LOSS, BREAKEVEN})
_OPEN: Final[int] = execution_pb2.SIGNAL_OUTCOME_OPEN

BY_SYMBOL: Final[int] = performance_pb2.BREAKDOWN_DIMENSION_SYMBOL
BY_SIGNAL_TYPE: Final[int] = performance_pb2.BREAKDOWN_DIMENSION_SIGNAL_TYPE
BY_STRENGTH_BUCKET: Final[int] = performance_pb2.BREAKDOWN_DIMENSION_STRENGTH_BUCKET
BY_HOUR_OF_DAY: Final[int] = performance_pb2.BREAKDOWN_DIMENSION_HOUR_OF_DAY

TODAY: Final[int] = performance_pb2.PERFORMANCE_WINDOW_TODAY
LAST_7_DAYS: Final[int] = performance_pb2.PERFORMANCE_WINDOW_LAST_7_DAYS
LAST_30_DAYS: Final[int] = performance_pb2.PERFORMANCE_WINDOW_LAST_30_DAYS
ALL_TIME: Final[int] = performance_pb2.PERFORMANCE_WINDOW_ALL_TIME

_NANOS_PER_HOUR: Final = 3_600_000_000_000
_NANOS_PER_DAY: Final = 24 * _NANOS_PER_HOUR
_WINDOW_LENGTH_NS: Final[dict[int, int]] = {
    LAST_7_DAYS: 7 * _NANOS_PER_DAY,
    LAST_30_DAYS: 30 * _NANOS_PER_DAY,
}

# Bucket edges as i / n, so a bound reads 0.7 and not 0.7000000000000001, and
# a value exactly on an edge lands in the bucket that edge opens.
_CONFIDENCE_EDGES: Final = tuple(i / 10 for i in range(11))
_STRENGTH_EDGES: Final = tuple(i / 5 for i in range(6))
_STRENGTH_KEYS: Final = tuple(
    f"{lower:.1f}-{upper:.1f}" for lower, upper in itertools.pairwise(_STRENGTH_EDGES)
)


@dataclasses.dataclass(frozen=True, slots=True)
class Vote:
    """One ensemble member's vote in the prediction a signal was decided from."""

    model_id: str
    # +1 up, -1 down, 0 neutral (no call).
    direction: int
    # In [0, 1].
    confidence: float
    # >= 0; relative to the other votes of the prediction.
    weight: float


@dataclasses.dataclass(frozen=True)
class SignalResult:
    """One signal as performance sees it.

    `slippage_pips` and `execution_latency_ns` are set together, on the first
    fill; `profit_loss_pips`, `profit_loss` and `closed_ns` are 0 until closed.
    """

    signal_id: str
    symbol: str
    # tradeflow.trading.v1.SignalType value.
    signal_type: int
    # In [0, 1].
    strength: float
    # In [0, 1] for any signal that could be executed.
    confidence: float
    # The decision instant, ns since the Unix epoch (UTC).
    generated_ns: int
    # tradeflow.trading.v1.SignalOutcome value; UNSPECIFIED while no execution is known.
    outcome: int
    profit_loss_pips: float
    # In the account currency, net of commission.
    profit_loss: float
    slippage_pips: float | None
    execution_latency_ns: int | None
    closed_ns: int
    # The first fill's instant, ns since the epoch; 0 when never filled or not known.
    opened_ns: int = 0
    # What marking the position to market needs: its fill price (0 when not known), its
    # size in lots and the account-currency value of one pip on one lot.
    fill_price: float = 0.0
    lots: float = 0.0
    pip_value: float = 0.0
    # The votes of its prediction; none when they are not known.
    votes: tuple[Vote, ...] = ()

    def __post_init__(self) -> None:
        # The averages over executed signals count one and divide by the other.
        if (self.slippage_pips is None) != (self.execution_latency_ns is None):
            raise ValueError(
                f"signal {self.signal_id}: slippage_pips and execution_latency_ns "
                "must both be set (filled) or both be None (never filled)"
            )


@dataclasses.dataclass(frozen=True)
class CalibrationBucket:
    """Stated confidence against realised hit rate for closed signals in one confidence range."""

    # Inclusive.
    confidence_lower: float
    # Exclusive, except 1.0 for the last bucket.
    confidence_upper: float
    closed_signals: int
    wins: int
    hit_rate: float
    mean_confidence: float


# Risk-adjusted returns are daily (UTC days) and annualised over calendar days.
DAYS_PER_YEAR: Final = 365


@dataclasses.dataclass(frozen=True)
class RiskAdjusted:
    """The figures of tradeflow.trading.v1.RiskAdjustedStats; None where undefined."""

    # Daily returns the ratios come from: one per UTC day, first signal's to last close's.
    days: int = 0
    sharpe_ratio: float | None = None
    sortino_ratio: float | None = None
    # Compound annual growth rate, as a fraction.
    annual_return: float | None = None
    calmar_ratio: float | None = None
    # In [0, 1].
    exposure: float = 0.0
    # Floor of the mean, ns; 0 when nothing closed.
    average_trade_duration_ns: int = 0
    longest_losing_streak: int = 0


@dataclasses.dataclass(frozen=True)
class PerformanceStats:
    """The figures of tradeflow.trading.v1.PerformanceStats, money in the account currency."""

    signals_total: int
    # (SignalType value, count), ascending by type, only types that occur.
    signals_by_type: tuple[tuple[int, int], ...]
    executed: int
    closed: int
    wins: int
    losses: int
    breakevens: int
    # wins / closed; 0.0 when nothing is closed.
    hit_rate: float
    # Gross profit / gross loss; None when no closed signal lost money.
    profit_factor: float | None
    expectancy_pips: float
    expectancy: float
    total_profit_loss_pips: float
    total_profit_loss: float
    # >= 0; see `summarize` for the equity curve.
    max_drawdown: float
    # In [0, 1]; may come from a different point of the curve than `max_drawdown`.
    max_drawdown_fraction: float
    average_slippage_pips: float
    # Floor of the mean.
    average_execution_latency_ns: int
    calibration: tuple[CalibrationBucket, ...]
    # As `max_drawdown` and its fraction, with open positions valued at the marks given to
    # `summarize`; None without marks, or when a position open at the end has no mark.
    max_drawdown_marked_to_market: float | None = None
    max_drawdown_marked_to_market_fraction: float | None = None
    risk_adjusted: RiskAdjusted = RiskAdjusted()


@dataclasses.dataclass(frozen=True, slots=True)
class Mark:
    """A price of an instrument at an instant: what its open positions are worth then."""

    time_ns: int
    symbol: str
    price: float


def summarize(
    results: Iterable[SignalResult],
    starting_equity: float,
    marks: Iterable[Mark] | None = None,
    end_ns: int = 0,
) -> PerformanceStats:
    """The figures over `results`; money figures count closed signals only.

    Drawdown follows the realised equity curve (`realised_steps`): it starts at
    `starting_equity` and adds, for each instant a signal closed at, the net
    profit or loss of every signal closed at that instant. Closes at one
    instant are one step, so the figures do not depend on the signal ids, which
    name the tenant. `max_drawdown` is the largest fall below the running peak and
    `max_drawdown_fraction` the largest fall as a fraction of its peak (only
    while the peak is positive; a fall below zero counts as 1). The two maxima
    are taken separately and may come from different points: a small fall from
    a low peak can be the larger fraction. With `marks`, the same figures of the
    equity marked to market (`marked_drawdowns`). `end_ns` is when the figures are
    read: a position still open counts as in the market until then (see `risk_adjusted`).

    Sums use `math.fsum`, which rounds the exact sum once, so the figures do
    not depend on the order the rows arrive in.
    """
    rows = tuple(results)
    closed = [result for result in rows if result.outcome in _CLOSED]
    outcomes = Counter(result.outcome for result in closed)
    slippages = [result.slippage_pips for result in rows if result.slippage_pips is not None]
    latencies = [
        result.execution_latency_ns for result in rows if result.execution_latency_ns is not None
    ]
    profit_losses = [result.profit_loss for result in closed]
    total_profit_loss_pips = math.fsum(result.profit_loss_pips for result in closed)
    total_profit_loss = math.fsum(profit_losses)
    gross_loss = -math.fsum(value for value in profit_losses if value < 0.0)
    gross_profit = math.fsum(value for value in profit_losses if value > 0.0)
    max_drawdown, max_drawdown_fraction = _drawdowns(
        itertools.accumulate((step for _, step in realised_steps(closed)), initial=starting_equity)
    )
    marked = None if marks is None else marked_drawdowns(rows, marks, starting_equity)
    return PerformanceStats(
        signals_total=len(rows),
        signals_by_type=tuple(sorted(Counter(result.signal_type for result in rows).items())),
        executed=len(slippages),
        closed=len(closed),
        wins=outcomes[WIN],
        losses=outcomes[LOSS],
        breakevens=outcomes[BREAKEVEN],
        hit_rate=_ratio(outcomes[WIN], len(closed)),
        profit_factor=gross_profit / gross_loss if gross_loss > 0.0 else None,
        expectancy_pips=_ratio(total_profit_loss_pips, len(closed)),
        expectancy=_ratio(total_profit_loss, len(closed)),
        total_profit_loss_pips=total_profit_loss_pips,
        total_profit_loss=total_profit_loss,
        max_drawdown=max_drawdown,
        max_drawdown_fraction=max_drawdown_fraction,
        average_slippage_pips=_ratio(math.fsum(slippages), len(slippages)),
        average_execution_latency_ns=sum(latencies) // len(latencies) if latencies else 0,
        calibration=_calibration(closed),
        max_drawdown_marked_to_market=None if marked is None else marked[0],
        max_drawdown_marked_to_market_fraction=None if marked is None else marked[1],
        risk_adjusted=risk_adjusted(rows, starting_equity, end_ns),
    )


def risk_adjusted(
    results: Sequence[SignalResult], starting_equity: float, end_ns: int = 0
) -> RiskAdjusted:
    """Return per risk of the realised equity curve, and how long and how often it was exposed.

    Daily returns: one per UTC day from the day of the earliest signal to the day of the
    last close, each the day's net realised profit or loss over the equity at the day's
    start (0 for a day without a close). Without a positive equity at every day's start
    they are undefined, and so are the ratios. With D days, mean m, sample standard
    deviation sd and root mean square of the negative returns dr (the positive ones count
    as 0), and the daily equity's largest fall as a fraction of its peak dd:
    Sharpe = m / sd x sqrt(365), Sortino = m / dr x sqrt(365), annual return =
    (end / start equity) ^ (365 / D) - 1 (None beyond a float, or below nothing),
    Calmar = annual return / dd; each None when its denominator is 0 or undefined, Sharpe
    and Sortino also with a single day.

    Exposure: the share of the time from the first fill to the last close (or `end_ns`,
    when later and a position is still open) with a position open. A trade lasts from its
    fill to its close. The losing streak counts losses in closing order, losses first
    among closes at one instant (so that no id decides it).
    """
    closed = [result for result in results if result.outcome in _CLOSED]
    timed = [result for result in closed if result.opened_ns]
    returns = _daily_returns(results, closed, starting_equity)
    return dataclasses.replace(
        _ratios(returns),
        exposure=_exposure(results, end_ns),
        average_trade_duration_ns=(
            sum(r.closed_ns - r.opened_ns for r in timed) // len(timed) if timed else 0
        ),
        longest_losing_streak=_longest_losing_streak(closed),
    )


def _ratios(returns: Sequence[float]) -> RiskAdjusted:
    """The days and the four ratios of `risk_adjusted` over daily `returns`; a ratio is None
    where undefined, or beyond a float (returns no account makes)."""
    if not returns:
        return RiskAdjusted()
    try:
        mean = math.fsum(returns) / len(returns)
        sharpe = sortino = None
        # One day's return says nothing about its spread: both need two.
        if len(returns) > 1:
            deviation = math.sqrt(
                math.fsum((value - mean) ** 2 for value in returns) / (len(returns) - 1)
            )
            sharpe = _annualised(mean, deviation)
            downside = math.sqrt(
                math.fsum(min(value, 0.0) ** 2 for value in returns) / len(returns)
            )
            sortino = _annualised(mean, downside)
        annual = _annual_growth(math.prod(1.0 + value for value in returns), len(returns))
        _, deepest = _drawdowns(
            itertools.accumulate((1.0 + r for r in returns), operator.mul, initial=1.0)
        )
    except OverflowError:
        return RiskAdjusted(days=len(returns))
    calmar = annual / deepest if annual is not None and deepest > 0.0 else None
    return RiskAdjusted(
        days=len(returns),
        sharpe_ratio=_finite(sharpe),
        sortino_ratio=_finite(sortino),
        annual_return=_finite(annual),
        calmar_ratio=_finite(calmar),
    )


def _finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def _annual_growth(growth: float, days: int) -> float | None:
    """The yearly rate compounding to `growth` over `days`; None when the account went below
    nothing (no real rate does that) or the rate is beyond a float."""
    if growth <= 0.0:
        return None
    try:
        return math.exp(math.log(growth) * DAYS_PER_YEAR / days) - 1.0
    except OverflowError:
        return None


def _annualised(mean: float, spread: float) -> float | None:
    return mean / spread * math.sqrt(DAYS_PER_YEAR) if spread > 0.0 else None


def _daily_returns(
    results: Sequence[SignalResult], closed: Sequence[SignalResult], starting_equity: float
) -> list[float]:
    """The daily returns `risk_adjusted` describes; none when they are undefined."""
    if not closed or starting_equity <= 0.0:
        return []
    by_day: defaultdict[int, list[float]] = defaultdict(list)
    for result in closed:
        by_day[result.closed_ns // _NANOS_PER_DAY].append(result.profit_loss)
    first_day = min(min(result.generated_ns for result in results) // _NANOS_PER_DAY, *by_day)
    returns = []
    equity = starting_equity
    for day in range(first_day, max(by_day) + 1):
        if equity <= 0.0:
            return []
        change = math.fsum(by_day.get(day, ()))
        returns.append(change / equity)
        equity += change
    return returns


def _exposure(results: Iterable[SignalResult], end_ns: int) -> float:
    """The share of [first fill, last close or `end_ns`] with at least one position open."""
    spans = []
    for result in results:
        if not result.opened_ns:
            continue
        if result.outcome in _CLOSED:
            spans.append((result.opened_ns, max(result.closed_ns, result.opened_ns)))
        elif result.outcome == _OPEN and end_ns > result.opened_ns:
            spans.append((result.opened_ns, end_ns))
    if not spans:
        return 0.0
    spans.sort()
    start, stop = spans[0][0], max(later for _, later in spans)
    covered, reach = 0, start
    for opened, closed in spans:
        covered += max(0, closed - max(opened, reach))
        reach = max(reach, closed)
    return covered / (stop - start) if stop > start else 0.0


def _longest_losing_streak(closed: Iterable[SignalResult]) -> int:
    longest = current = 0
    for result in sorted(closed, key=lambda r: (r.closed_ns, r.outcome != LOSS)):
        current = current + 1 if result.outcome == LOSS else 0
        longest = max(longest, current)
    return longest


def realised_steps(results: Iterable[SignalResult]) -> list[tuple[int, float]]:
    """(instant, net profit or loss of the signals closed at it) for each instant a closed
    result closed at, oldest first: the steps of the realised equity curve.

    Closes at one instant are netted (with `math.fsum`): nothing tells which came first, and
    ordering them by id would make the drawdown depend on whose signals they are.
    """
    at: defaultdict[int, list[float]] = defaultdict(list)
    for result in results:
        if result.outcome in _CLOSED:
            at[result.closed_ns].append(result.profit_loss)
    return [(instant, math.fsum(at[instant])) for instant in sorted(at)]


def breakdown(
    results: Iterable[SignalResult],
    dimension: int,
    starting_equity: float,
    marks: Sequence[Mark] | None = None,
    end_ns: int = 0,
) -> list[tuple[str, PerformanceStats]]:
    """`summarize` per value of a BreakdownDimension, keys ascending, only keys that occur.

    Keys: the symbol; the SignalType name ("SIGNAL_TYPE_BUY"); the strength
    bucket ("0.0-0.2" to "0.8-1.0", 1.0 in the last); the UTC hour of
    `generated_ns` ("00" to "23"). Each group's drawdown starts from
    `starting_equity`, as if it had traded alone, and is marked to market at `marks`.
    Raises ValueError for any other dimension, UNSPECIFIED included.
    """
    key_of = _KEY_OF.get(dimension)
    if key_of is None:
        allowed = _names(performance_pb2.BreakdownDimension.DESCRIPTOR, _KEY_OF)
        raise ValueError(f"breakdown dimension {dimension} is not one of {allowed}")
    groups: defaultdict[str, list[SignalResult]] = defaultdict(list)
    for result in results:
        groups[key_of(result)].append(result)
    return [(key, summarize(groups[key], starting_equity, marks, end_ns)) for key in sorted(groups)]


def window_start_ns(window: int, now_ns: int) -> int:
    """Inclusive start of a PerformanceWindow ending at `now_ns`, ns since the Unix epoch.

    Raises ValueError for UNSPECIFIED or an unknown window: the caller chooses a default.
    """
    if window == TODAY:
        return now_ns - now_ns % _NANOS_PER_DAY
    if window == ALL_TIME:
        return 0
    length_ns = _WINDOW_LENGTH_NS.get(window)
    if length_ns is None:
        allowed = _names(
            performance_pb2.PerformanceWindow.DESCRIPTOR,
            (TODAY, LAST_7_DAYS, LAST_30_DAYS, ALL_TIME),
        )
        raise ValueError(f"performance window {window} is not one of {allowed}")
    return now_ns - length_ns


def _names(enum: EnumDescriptor, values: Iterable[int]) -> str:
    """The names of `values` in `enum`, for an error message."""
    return ", ".join(enum.values_by_number[value].name for value in values)


def _ratio(numerator: float, denominator: int) -> float:
    return numerator / denominator if denominator else 0.0


def marked_drawdowns(
    results: Iterable[SignalResult], marks: Iterable[Mark], starting_equity: float
) -> tuple[float, float] | None:
    """(largest fall, largest fall as a fraction of its peak) of the equity marked to market.

    The equity at each instant a mark, a fill or a close happens is the realised equity
    (closes at one instant netted, as `realised_steps`) plus every open position valued at
    its symbol's latest mark since it opened (at its fill, so 0, before any). Marks before a
    position opened do not value it. None when a filled signal still open at the end has no
    mark since it opened, or lacks its fill price.
    """
    marks_at: defaultdict[int, list[Mark]] = defaultdict(list)
    for mark in marks:
        marks_at[mark.time_ns].append(mark)
    positions = _opens_and_closes(results)
    if positions is None:
        return None
    opens_at, closes_at = positions
    latest: dict[str, Mark] = {}
    holding: defaultdict[str, dict[str, SignalResult]] = defaultdict(dict)
    worth: dict[str, float] = {}
    realised = starting_equity
    levels = [starting_equity]
    for instant in sorted(marks_at.keys() | opens_at.keys() | closes_at.keys()):
        touched = set()
        for mark in marks_at[instant]:
            latest[mark.symbol] = mark
            touched.add(mark.symbol)
        for result in opens_at[instant]:
            holding[result.symbol][result.signal_id] = result
            touched.add(result.symbol)
        closing = closes_at[instant]
        for result in closing:
            holding[result.symbol].pop(result.signal_id, None)
            touched.add(result.symbol)
        if closing:
            realised += math.fsum(result.profit_loss for result in closing)
        for symbol in touched:
            worth[symbol] = math.fsum(
                _unrealised(position, latest.get(symbol)) for position in holding[symbol].values()
            )
        levels.append(realised + math.fsum(worth.values()))
    if any(
        (last := latest.get(symbol)) is None or last.time_ns < position.opened_ns
        for symbol, positions in holding.items()
        for position in positions.values()
    ):
        return None
    return _drawdowns(levels)


def _opens_and_closes(
    results: Iterable[SignalResult],
) -> tuple[defaultdict[int, list[SignalResult]], defaultdict[int, list[SignalResult]]] | None:
    """The filled results by the instant they opened (those whose fill price is known) and the
    closed ones by the instant they closed; None when an open one's fill price is not known."""
    opens_at: defaultdict[int, list[SignalResult]] = defaultdict(list)
    closes_at: defaultdict[int, list[SignalResult]] = defaultdict(list)
    for result in results:
        if result.slippage_pips is None:
            continue
        if result.fill_price > 0.0 and result.opened_ns:
            opens_at[result.opened_ns].append(result)
        if result.outcome in _CLOSED:
            closes_at[result.closed_ns].append(result)
        elif result.fill_price <= 0.0:
            return None
    return opens_at, closes_at


def _unrealised(position: SignalResult, mark: Mark | None) -> float:
    """What an open position has made by `mark`, in the account currency; 0 before any mark
    since it opened, or for an instrument the engine does not know."""
    instrument = instruments.lookup(position.symbol)
    if mark is None or mark.time_ns < position.opened_ns or instrument is None:
        return 0.0
    pips = SIDE[position.signal_type] * instrument.pips(
        instrument.to_ticks(mark.price) - instrument.to_ticks(position.fill_price)
    )
    return pips * position.pip_value * position.lots


def _drawdowns(levels: Iterable[float]) -> tuple[float, float]:
    """(largest fall below the running peak, largest such fall as a fraction of its peak) of an
    equity curve given by its levels, the first being where it starts."""
    equity_levels = iter(levels)
    peak = next(equity_levels)
    largest = largest_fraction = 0.0
    for equity in equity_levels:
        peak = max(peak, equity)
        fall = peak - equity
        largest = max(largest, fall)
        if peak > 0.0:
            largest_fraction = max(largest_fraction, min(fall / peak, 1.0))
    return largest, largest_fraction


def _bucket(value: float, edges: Sequence[float]) -> int:
    """Index of the bucket between consecutive `edges` holding `value`; the last one holds its
    upper edge, and values outside the edges go to the nearest end bucket."""
    return bisect.bisect_right(edges, value, 1, len(edges) - 1) - 1


def _calibration(closed: Iterable[SignalResult]) -> tuple[CalibrationBucket, ...]:
    return calibration((result.confidence, result.outcome == WIN) for result in closed)


def calibration(calls: Iterable[tuple[float, bool]]) -> tuple[CalibrationBucket, ...]:
    """(stated confidence, came true) pairs in buckets of confidence 0.1 wide, only those
    that occur, ascending; a bucket's `wins` counts the ones that came true."""
    by_bucket: defaultdict[int, list[tuple[float, bool]]] = defaultdict(list)
    for call in calls:
        by_bucket[_bucket(call[0], _CONFIDENCE_EDGES)].append(call)
    buckets = []
    for index, members in sorted(by_bucket.items()):
        wins = sum(1 for _, right in members if right)
        buckets.append(
            CalibrationBucket(
                confidence_lower=_CONFIDENCE_EDGES[index],
                confidence_upper=_CONFIDENCE_EDGES[index + 1],
                closed_signals=len(members),
                wins=wins,
                hit_rate=wins / len(members),
                mean_confidence=math.fsum(stated for stated, _ in members) / len(members),
            )
        )
    return tuple(buckets)


def _signal_type_key(result: SignalResult) -> str:
    # The enum value's full name, as the contract's BREAKDOWN_DIMENSION_SIGNAL_TYPE says.
    return signal_pb2.SignalType.Name(signal_pb2.SignalType.ValueType(result.signal_type))


def _strength_key(result: SignalResult) -> str:
    return _STRENGTH_KEYS[_bucket(result.strength, _STRENGTH_EDGES)]


def _hour_key(result: SignalResult) -> str:
    return f"{result.generated_ns // _NANOS_PER_HOUR % 24:02d}"


_KEY_OF: Final[dict[int, Callable[[SignalResult], str]]] = {
    BY_SYMBOL: lambda result: result.symbol,
    BY_SIGNAL_TYPE: _signal_type_key,
    BY_STRENGTH_BUCKET: _strength_key,
    BY_HOUR_OF_DAY: _hour_key,
}
