"""A backtest from end to end: replay the batches under each strategy, compare, simulate.

What `trading-engine replay` runs. With one strategy it answers "what did
(or would) the engine decide, and what would that have made?"; with two, it
adds the signals they disagree on and both sets of figures side by side.
Performance is a trader's: it is simulated for one user, from the equity
their first batch reported.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

from google.protobuf import json_format

from tradeflow.ml.v1 import prediction_pb2
from tradeflow.trading.v1 import execution_pb2, signal_pb2, strategy_pb2
from trading_engine.core import tiers
from trading_engine.core.attribution import votes_of
from trading_engine.core.instruments import DEFAULT_CURRENCY
from trading_engine.core.performance import Vote
from trading_engine.core.strategy_layers import EMPTY_LAYER, merge
from trading_engine.engine import EngineLimits
from trading_engine.replay.compare import Comparison, compare, same_trade
from trading_engine.replay.report import ParameterChange, ReportDetails, ReportSide
from trading_engine.replay.runner import (
    Replay,
    ReplayProgress,
    Reproduction,
    StoredSession,
    replay_stored,
    reproduction,
)
from trading_engine.replay.simulate import (
    NO_COST_TABLE,
    BarTime,
    CostTable,
    PriceSeries,
    SimulatedRun,
    bar_time_warning,
    labelled,
    read_bars_csv,
    simulate_run,
)
from trading_engine.replay.sources import RecordedBatch
from trading_engine.replay.strategies import ReplayStrategies
from trading_engine.stores.base import Store


@dataclasses.dataclass(frozen=True)
class BacktestSide:
    name: str
    signals: list[signal_pb2.TradingSignal]
    # None when there is no performance to simulate (see Backtest.without_performance).
    performance: SimulatedRun | None
    currency: str


@dataclasses.dataclass(frozen=True)
class Backtest:
    sides: list[BacktestSide]
    progress: ReplayProgress
    # With two strategies.
    comparison: Comparison | None
    # From stored history with the strategies in force: the replay against what was stored.
    reproduction: Reproduction | None
    # Why no performance was simulated; empty when it was.
    without_performance: str
    # Where the simulation's prices came from, for a reader ("" without a simulation).
    prices: str = ""
    # What a reader of the figures should know about the prices, one sentence each.
    warnings: tuple[str, ...] = ()
    # The strategy parameters a side sets differently, a value per side.
    parameters: tuple[ParameterChange, ...] = ()


@dataclasses.dataclass(frozen=True)
class BacktestPlan:
    sides: Sequence[ReplayStrategies]
    limits: EngineLimits
    users: Sequence[str] = ()
    # Bars to simulate against; None: the prices the predictions carry.
    prices_csv: Path | None = None
    # The account's equity at the start; None: what the user's first batch reported.
    starting_equity: float | None = None
    # Slippage and commission per instrument, whatever the strategy.
    costs: CostTable = NO_COST_TABLE
    # What the times in `prices_csv` name.
    bar_time: BarTime = BarTime.CLOSE


Progress = Callable[[ReplayProgress], None]


def backtest_batches(
    plan: BacktestPlan, batches: Iterable[RecordedBatch], progress: Progress
) -> Backtest:
    """Replay a recording's batches (each at its recorded clock) and simulate the result."""
    replay = Replay(plan.sides, plan.limits, plan.users)
    decided: list[RecordedBatch] = []
    for recorded in batches:
        replay.decide(recorded)
        decided.append(recorded)
        progress(replay.progress)
    return _finish(plan, replay, decided, None, reproduce=False, defaults_known=True)


async def backtest_stored(
    plan: BacktestPlan, store: Store, session: StoredSession, progress: Progress
) -> Backtest:
    """Replay a stored session with the versions in force (and any candidates over them)."""
    replay = Replay(plan.sides, plan.limits, plan.users)
    async for _ in replay_stored(replay, store, session):
        progress(replay.progress)
    return stored_backtest(plan, replay, session)


def stored_backtest(plan: BacktestPlan, replay: Replay, session: StoredSession) -> Backtest:
    """The backtest of a stored session once `replay` has decided it."""
    in_force = plan.sides[0].candidate is None
    return _finish(plan, replay, session.batches, session, reproduce=in_force, defaults_known=False)


def _finish(
    plan: BacktestPlan,
    replay: Replay,
    batches: list[RecordedBatch],
    session: StoredSession | None,
    *,
    reproduce: bool,
    defaults_known: bool,
) -> Backtest:
    """The backtest of `replay`: from a stored `session`, checked against what was stored when
    `reproduce`, and each signal that trades as it did live valued by the results recorded
    for it. `defaults_known` when it decided with tier defaults (a file), so a parameter no
    candidate sets has its tier's value, not the ones in force."""
    signal_sets = [side.signals() for side in replay.sides]
    users = sorted({signal.user_id for signals in signal_sets for signal in signals})
    performance: list[SimulatedRun | None] = [None] * len(signal_sets)
    currency = DEFAULT_CURRENCY
    why_not = _why_no_performance(users)
    source = ""
    warnings: tuple[str, ...] = ()
    if not why_not:
        first = _first_batch_of(users[0], batches)
        currency = first.user_context.account_currency or DEFAULT_CURRENCY
        equity = plan.starting_equity or first.user_context.account_equity
        prices, source, warnings = _prices(plan, batches)
        predictions = _votes_by_prediction(batches)
        performance = [
            simulate_run(
                signals, prices, equity, currency, plan.costs, _votes(signals, predictions),
                _recorded(signals, session),
            )
            for signals in signal_sets
        ]  # fmt: skip
    return Backtest(
        sides=[
            BacktestSide(side.name, signals, run, currency)
            for side, signals, run in zip(replay.sides, signal_sets, performance, strict=True)
        ],
        progress=replay.progress,
        comparison=compare(*signal_sets) if len(signal_sets) == 2 else None,
        reproduction=reproduction(replay, session) if session is not None and reproduce else None,
        without_performance=why_not,
        prices=source,
        warnings=warnings,
        parameters=_parameters(replay, batches, defaults_known),
    )


def _recorded(
    signals: Iterable[signal_pb2.TradingSignal], session: StoredSession | None
) -> dict[str, list[execution_pb2.ExecutionResult]]:
    """The results recorded live for each signal that trades as the stored one did (same
    type, strength and entry): what really became of it, rather than a simulation."""
    if session is None:
        return {}
    recorded = session.protections.results_by_signal()
    trades = {}
    for signal in signals:
        stored = session.signals.get(signal.signal_id)
        results = recorded.get(signal.signal_id)
        if stored is None or not results:
            continue
        if same_trade(signal_pb2.TradingSignal.FromString(stored.payload), signal):
            trades[signal.signal_id] = results
    return trades


def _parameters(
    replay: Replay, batches: list[RecordedBatch], defaults_known: bool
) -> tuple[ParameterChange, ...]:
    """Each parameter a candidate sets, with each side's value: the candidate's, else the tier
    default of the first batch's user when the replay used defaults, else "as in force"."""
    candidates = [side.strategies.candidate for side in replay.sides]
    paths = sorted({path for c in candidates if c is not None for path in c.change.fields})
    if not paths:
        return ()
    defaults = None
    if defaults_known and batches:
        policy = tiers.policy_for(batches[0].tier)
        defaults = merge(policy, EMPTY_LAYER, EMPTY_LAYER).config
    return tuple(
        ParameterChange(
            path,
            tuple(
                _value(candidate.change.config, path)
                if candidate is not None and path in candidate.change.fields
                else _value(defaults, path)
                if defaults is not None
                else "as in force"
                for candidate in candidates
            ),
        )
        for path in paths
    )


def _value(config: strategy_pb2.StrategyConfig, path: str) -> str:
    """The field at `path` ("a" or "features.b") of `config`, as its JSON."""
    value: Any = json_format.MessageToDict(
        config, always_print_fields_with_no_presence=True, preserving_proto_field_name=True
    )
    for part in path.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return "unset" if value is None else json.dumps(value)


def _prices(
    plan: BacktestPlan, batches: list[RecordedBatch]
) -> tuple[PriceSeries, str, tuple[str, ...]]:
    """The prices to simulate against, where they came from in a sentence, and the warnings
    about them."""
    observed = PriceSeries.from_predictions(_parsed(batches))
    if plan.prices_csv is None:
        return observed, "the prices the predictions carry (each a bar of no length)", ()
    raw = read_bars_csv(plan.prices_csv)
    bars = labelled(raw, plan.bar_time)
    disagreement = bar_time_warning(raw, plan.bar_time, observed)
    named = "start" if plan.bar_time is BarTime.OPEN else "end"
    source = (
        f"bars from {plan.prices_csv.name}, each time the bar's {named} "
        f"(--bar-time {plan.bar_time.value})"
    )
    return bars, source, (*bars.warnings, *([disagreement] if disagreement else []))


# (user, batch id, prediction id) -> the prediction's votes.
_PredictionVotes = dict[tuple[str, str, str], tuple[Vote, ...]]


def _votes_by_prediction(batches: list[RecordedBatch]) -> _PredictionVotes:
    """The votes of every prediction replayed; of a batch id a user sent twice, the first."""
    found: _PredictionVotes = {}
    for recorded in batches:
        batch = prediction_pb2.MLPredictionBatch.FromString(recorded.data)
        for prediction in batch.predictions:
            key = (recorded.user_id, batch.batch_id, prediction.prediction_id)
            found.setdefault(key, votes_of(prediction))
    return found


def _votes(
    signals: Iterable[signal_pb2.TradingSignal], predictions: _PredictionVotes
) -> dict[str, tuple[Vote, ...]]:
    return {
        signal.signal_id: predictions.get(
            (signal.user_id, signal.batch_id, signal.prediction_id), ()
        )
        for signal in signals
    }


def _why_no_performance(users: list[str]) -> str:
    if not users:
        return "no signals were decided"
    if len(users) > 1:
        return f"the replay holds {len(users)} users' signals; name one with --user"
    return ""


def _first_batch_of(user_id: str, batches: list[RecordedBatch]) -> prediction_pb2.MLPredictionBatch:
    first = next(recorded for recorded in batches if recorded.user_id == user_id)
    return prediction_pb2.MLPredictionBatch.FromString(first.data)


def _parsed(batches: list[RecordedBatch]) -> Iterable[prediction_pb2.MLPredictionBatch]:
    # Every batch of the replay, whoever's: a price is the market's, not a user's.
    return (prediction_pb2.MLPredictionBatch.FromString(recorded.data) for recorded in batches)


def report_details(backtest: Backtest) -> ReportDetails:
    """What the report says around the figures of `backtest`."""
    return ReportDetails(
        prices=backtest.prices,
        warnings=backtest.warnings,
        parameters=backtest.parameters,
        comparison=backtest.comparison,
    )


def report_sides(backtest: Backtest) -> list[ReportSide]:
    """The sides with performance, as the report draws them."""
    return [
        ReportSide(
            name=side.name,
            stats=side.performance.stats,
            curve=side.performance.curve,
            starting_equity=side.performance.starting_equity,
            currency=side.currency,
            open_at_end=side.performance.open_at_end,
            never_filled=side.performance.never_filled,
            models=side.performance.models,
            trades=side.performance.trades,
            recorded=side.performance.recorded,
            by_symbol=side.performance.by_symbol,
        )
        for side in backtest.sides
        if side.performance is not None
    ]
