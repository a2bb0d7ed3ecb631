"""Performance figures of one user over a window, read from the stored outcomes.

The arithmetic is in `core.performance`; this module chooses the rows (the
tenant, the window, the symbols) and adds the count of every signal decided,
executed or not, from signal history. Open positions are marked to market at
the latest price this engine has seen for their symbol in the company.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

from tradeflow.trading.v1 import execution_pb2, performance_pb2, signal_pb2
from trading_engine import errors
from trading_engine.clock import Clock
from trading_engine.core import instruments, performance
from trading_engine.core.attribution import ModelBreakdown, by_model, votes_of
from trading_engine.core.instruments import DEFAULT_CURRENCY
from trading_engine.core.outcomes import facts_of, outcome_of
from trading_engine.core.performance import Mark, PerformanceStats, SignalResult
from trading_engine.executions import UserChanges
from trading_engine.explain import prediction_of
from trading_engine.stores.base import OutcomeRecord, Store

# (company, user) -> (equity, currency) of the account the user's newest batch reported.
Account = Callable[[str, str], tuple[float, str] | None]
# (company, symbol) -> the latest price seen for the symbol in the company; 0 when none.
LastPrice = Callable[[str, str], float]
ALL_DIMENSIONS = (
    performance.BY_SYMBOL,
    performance.BY_SIGNAL_TYPE,
    performance.BY_STRENGTH_BUCKET,
    performance.BY_HOUR_OF_DAY,
)
# Named only: it reads the prediction of every signal.
BY_MODEL = performance_pb2.BREAKDOWN_DIMENSION_MODEL


@dataclasses.dataclass(frozen=True)
class Summary:
    company_id: str
    user_id: str
    window: int
    start_ns: int
    end_ns: int
    # "" for all symbols.
    symbol: str
    stats: PerformanceStats
    currency: str


@dataclasses.dataclass(frozen=True)
class Breakdown:
    # BreakdownDimension value.
    dimension: int
    key: str
    # The figures of the signals with that key.
    stats: PerformanceStats
    # With BY_MODEL: the model's attribution.
    model: ModelBreakdown | None = None


@dataclasses.dataclass(frozen=True)
class Analysis:
    overall: PerformanceStats
    # Grouped by dimension in the order asked, keys ascending.
    breakdowns: list[Breakdown]


class PerformanceAnalytics:
    def __init__(
        self, store: Store, clock: Clock, account: Account, last_price: LastPrice | None = None
    ) -> None:
        self._store = store
        self._clock = clock
        self._account = account
        self._last_price = last_price

    def _equity_and_currency(self, company_id: str, user_id: str) -> tuple[float, str]:
        # Without a known account, drawdown fractions are 0 and money is in the default currency.
        return self._account(company_id, user_id) or (0.0, DEFAULT_CURRENCY)

    async def summary(self, company_id: str, user_id: str, window: int, symbol: str) -> Summary:
        """Figures over `window` (UNSPECIFIED: all time); InvalidArgument for an unknown one."""
        window = window or performance.ALL_TIME
        now_ns = self._clock.now_ns()
        start_ns = _window_start(window, now_ns)
        outcomes = await self._store.outcomes(company_id, user_id, start_ns, symbol)
        equity, currency = self._equity_and_currency(company_id, user_id)
        results = await self._with_positions(company_id, _results(outcomes), currency)
        marks = self._marks(company_id, results, now_ns)
        stats = performance.summarize(results, equity, marks, now_ns)
        counts = await self._store.count_signals_by_type(company_id, user_id, start_ns, symbol)
        stats = dataclasses.replace(
            stats,
            signals_total=sum(counts.values()),
            signals_by_type=tuple(sorted(counts.items())),
        )
        return Summary(company_id, user_id, window, start_ns, now_ns, symbol, stats, currency)

    async def figures_since(self, company_id: str, user_id: str, since_ns: int) -> PerformanceStats:
        """Figures of the user's signals decided at or after `since_ns` that have results."""
        outcomes = await self._store.outcomes(company_id, user_id, since_ns)
        equity, _ = self._equity_and_currency(company_id, user_id)
        return performance.summarize(_results(outcomes), equity)

    async def analysis(
        self,
        company_id: str,
        user_id: str,
        window: int,
        dimensions: Sequence[int],
        symbols: Sequence[str],
    ) -> Analysis:
        """Overall figures and their breakdowns (no dimension named: all four but MODEL).

        Breakdown figures count the signals that have execution results. MODEL reads the
        prediction each signal was decided from; a signal whose batch was not kept counts
        under no model.
        """
        window = window or performance.ALL_TIME
        now_ns = self._clock.now_ns()
        start_ns = _window_start(window, now_ns)
        unknown = [d for d in dimensions if d not in (*ALL_DIMENSIONS, BY_MODEL)]
        if unknown:
            raise errors.invalid(
                "unknown breakdown dimension",
                [
                    errors.FieldViolation(
                        "dimensions",
                        f"{d} is not SYMBOL, SIGNAL_TYPE, STRENGTH_BUCKET, HOUR_OF_DAY or MODEL",
                    )
                    for d in unknown
                ],
            )
        wanted = set(symbols)
        outcomes = await self._store.outcomes(company_id, user_id, start_ns)
        equity, currency = self._equity_and_currency(company_id, user_id)
        results = await self._with_positions(
            company_id,
            [r for r in _results(outcomes) if not wanted or r.symbol in wanted],
            currency,
        )
        marks = self._marks(company_id, results, now_ns)
        counts: dict[int, int] = {}
        for symbol in sorted(wanted) or [""]:
            for signal_type, count in (
                await self._store.count_signals_by_type(company_id, user_id, start_ns, symbol)
            ).items():
                counts[signal_type] = counts.get(signal_type, 0) + count
        overall = dataclasses.replace(
            performance.summarize(results, equity, marks, now_ns),
            signals_total=sum(counts.values()),
            signals_by_type=tuple(sorted(counts.items())),
        )
        breakdowns = []
        for dimension in dict.fromkeys(dimensions or ALL_DIMENSIONS):
            if dimension == BY_MODEL:
                voted = await self._with_votes(company_id, results)
                breakdowns += [
                    Breakdown(dimension, model.model_id, model.stats, model)
                    for model in by_model(voted, equity, marks, now_ns)
                ]
            else:
                breakdowns += [
                    Breakdown(dimension, key, stats)
                    for key, stats in performance.breakdown(
                        results, dimension, equity, marks, now_ns
                    )
                ]
        return Analysis(overall, breakdowns)

    async def _with_votes(self, company_id: str, results: list[SignalResult]) -> list[SignalResult]:
        """`results` with the votes of the prediction each was decided from."""
        voted = []
        for result in results:
            record = await self._store.signal(company_id, result.signal_id)
            prediction = (
                None
                if record is None
                else await prediction_of(
                    self._store, record, signal_pb2.TradingSignal.FromString(record.payload)
                )
            )
            votes = () if prediction is None else votes_of(prediction)
            voted.append(dataclasses.replace(result, votes=votes))
        return voted

    async def _with_positions(
        self, company_id: str, results: list[SignalResult], currency: str
    ) -> list[SignalResult]:
        """`results` with each open position's fill price, size and pip value, which marking
        it to market needs and the stored outcome does not keep: from its signal and results."""
        if self._last_price is None:
            return results
        return [
            await self._position(company_id, result, currency)
            if result.outcome == execution_pb2.SIGNAL_OUTCOME_OPEN
            else result
            for result in results
        ]

    async def _position(self, company_id: str, result: SignalResult, currency: str) -> SignalResult:
        record = await self._store.signal(company_id, result.signal_id)
        instrument = instruments.lookup(result.symbol)
        if record is None or instrument is None:
            return result
        signal = signal_pb2.TradingSignal.FromString(record.payload)
        executions = [
            execution_pb2.ExecutionResult.FromString(row.payload)
            for row in await self._store.executions_for_signal(company_id, result.signal_id)
        ]
        return outcome_of(facts_of(signal), executions, instrument, currency).result

    def _marks(
        self, company_id: str, results: Sequence[SignalResult], now_ns: int
    ) -> list[Mark] | None:
        """The latest price of each symbol with an open position, as of now; None when the
        engine knows no prices (then there is no marked-to-market figure)."""
        if self._last_price is None:
            return None
        open_symbols = {r.symbol for r in results if r.outcome == execution_pb2.SIGNAL_OUTCOME_OPEN}
        return [
            Mark(now_ns, symbol, price)
            for symbol in sorted(open_symbols)
            if (price := self._last_price(company_id, symbol)) > 0.0
        ]


def _window_start(window: int, now_ns: int) -> int:
    try:
        return performance.window_start_ns(window, now_ns)
    except ValueError as error:
        raise errors.invalid(
            "unknown performance window", [errors.FieldViolation("window", str(error))]
        ) from None


def _results(outcomes: Sequence[OutcomeRecord]) -> list[SignalResult]:
    return [
        SignalResult(
            signal_id=o.signal_id,
            symbol=o.symbol,
            signal_type=o.signal_type,
            strength=o.strength,
            confidence=o.confidence,
            generated_ns=o.generated_at_ns,
            outcome=o.outcome,
            profit_loss_pips=o.profit_loss_pips,
            profit_loss=o.profit_loss,
            slippage_pips=o.slippage_pips,
            execution_latency_ns=o.execution_latency_ns,
            closed_ns=o.closed_at_ns,
            opened_ns=_opened_ns(o),
        )
        for o in outcomes
    ]


def _opened_ns(outcome: OutcomeRecord) -> int:
    performance_message = execution_pb2.SignalPerformance.FromString(outcome.payload)
    opened = performance_message.opened_at
    return opened.ToNanoseconds() if performance_message.HasField("opened_at") else 0


@dataclasses.dataclass(frozen=True)
class Subscription:
    """Live figures of one user: each window, for each symbol (none: all symbols together)."""

    user_id: str
    windows: tuple[int, ...]
    symbols: tuple[str, ...]
    min_interval_s: float


# Shortest and default interval between two updates of a subscription.
MIN_INTERVAL_S = 0.1
DEFAULT_INTERVAL_S = 1.0


async def live_summaries(
    analytics: PerformanceAnalytics,
    changes: UserChanges,
    company_id: str,
    subscriptions: asyncio.Queue[Subscription | BaseException | None],
) -> AsyncIterator[list[Summary]]:
    """The figures of the current subscription at once, then after every change to them.

    Each item of `subscriptions` replaces the subscription; an exception put
    there ends the stream with it; None means no more changes will come (the
    current subscription goes on). Updates are at least `min_interval_s` apart.
    """
    loop = asyncio.get_running_loop()
    first = await subscriptions.get()
    if isinstance(first, BaseException):
        raise first
    if first is None:
        return
    subscription = first
    sent_version, sent_at = -1, 0.0
    more_subscriptions = True
    while True:
        key = (company_id, subscription.user_id)
        version = changes.version(key)
        if version != sent_version:
            await asyncio.sleep(max(0.0, sent_at + subscription.min_interval_s - loop.time()))
            version = changes.version(key)
            yield [
                await analytics.summary(company_id, subscription.user_id, window, symbol)
                for window in subscription.windows
                for symbol in subscription.symbols or ("",)
            ]
            sent_version, sent_at = version, loop.time()
        changed = asyncio.create_task(changes.wait_past(key, version))
        waits: set[asyncio.Task[Any]] = {changed}
        replacing = asyncio.create_task(subscriptions.get()) if more_subscriptions else None
        if replacing is not None:
            waits.add(replacing)
        try:
            done, _ = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            # A get cancelled before it took an item leaves the item in the queue.
            for task in waits:
                task.cancel()
        if replacing is not None and replacing in done:
            replaced = replacing.result()
            if isinstance(replaced, BaseException):
                raise replaced
            if replaced is None:
                more_subscriptions = False
            else:
                subscription, sent_version, sent_at = replaced, -1, 0.0
