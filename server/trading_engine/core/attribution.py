"""Per-model attribution: how each ML model's votes turned out on the signals they fed.

A closed signal that won moved the market its own way, one that lost the other
way; a model's vote with a direction on it is a call, right when it named that
move. Pure: the rows (`SignalResult` with their prediction's `votes`) in,
figures out, for `AnalyzeSignalPerformance` (dimension MODEL), the replay and
the engine's metrics.
"""

from __future__ import annotations

import dataclasses
import math
from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import Final

from tradeflow.ml.v1 import prediction_pb2
from tradeflow.trading.v1 import execution_pb2
from trading_engine.core.decision import SIDE
from trading_engine.core.performance import (
    CalibrationBucket,
    Mark,
    PerformanceStats,
    SignalResult,
    Vote,
    calibration,
    summarize,
)

_WIN: Final[int] = execution_pb2.SIGNAL_OUTCOME_WIN
_LOSS: Final[int] = execution_pb2.SIGNAL_OUTCOME_LOSS
_DIRECTION: Final[dict[int, int]] = {
    prediction_pb2.DIRECTION_UP: 1,
    prediction_pb2.DIRECTION_WEAK_UP: 1,
    prediction_pb2.DIRECTION_WEAK_DOWN: -1,
    prediction_pb2.DIRECTION_DOWN: -1,
}
_CLOSED: Final = frozenset({_WIN, _LOSS, execution_pb2.SIGNAL_OUTCOME_BREAKEVEN})


def votes_of(prediction: prediction_pb2.Prediction) -> tuple[Vote, ...]:
    """The prediction's votes as attribution reads them."""
    return tuple(
        Vote(vote.model_id, _DIRECTION.get(vote.direction, 0), vote.confidence, vote.weight)
        for vote in prediction.votes
    )


@dataclasses.dataclass(frozen=True)
class ModelFigures:
    """The figures of tradeflow.trading.v1.ModelAttribution."""

    model_id: str
    # "" for every symbol.
    symbol: str
    signals: int
    calls: int
    correct: int
    hit_rate: float
    mean_confidence: float
    # Account currency: >= 0 and <= 0.
    profit_backed: float
    loss_backed: float
    calibration: tuple[CalibrationBucket, ...]


@dataclasses.dataclass(frozen=True)
class ModelBreakdown:
    """One model: the performance figures of the signals it voted on, and its attribution."""

    model_id: str
    stats: PerformanceStats
    overall: ModelFigures
    # One per symbol it voted on a closed signal of, ascending.
    by_symbol: tuple[ModelFigures, ...]


def call(vote: Vote, result: SignalResult) -> bool | None:
    """Whether `vote` named the move of the closed `result`; None when it is no call (a
    neutral vote, or a signal that broke even or has not closed)."""
    if vote.direction == 0 or result.outcome not in (_WIN, _LOSS):
        return None
    moved = SIDE[result.signal_type] * (1 if result.outcome == _WIN else -1)
    return vote.direction == moved


def attribute(model_id: str, symbol: str, results: Iterable[SignalResult]) -> ModelFigures:
    """How `model_id`'s votes did on the closed `results` it voted on.

    A vote's weight share is its weight over the sum of its prediction's vote weights (0
    when that sum is 0). Profit backed: the sum over won signals the model voted for (the
    signal's side) of its share times the profit; loss backed: the same over lost ones.
    """
    signals = 0
    calls: list[tuple[float, bool]] = []
    backed_profit: list[float] = []
    backed_loss: list[float] = []
    for result in results:
        if result.outcome not in _CLOSED:
            continue
        total_weight = math.fsum(vote.weight for vote in result.votes)
        for vote in result.votes:
            if vote.model_id != model_id:
                continue
            signals += 1
            right = call(vote, result)
            if right is not None:
                calls.append((vote.confidence, right))
            if vote.direction == SIDE[result.signal_type] and total_weight > 0.0:
                share = vote.weight / total_weight * result.profit_loss
                if result.outcome == _WIN:
                    backed_profit.append(share)
                elif result.outcome == _LOSS:
                    backed_loss.append(share)
    correct = sum(1 for _, right in calls if right)
    return ModelFigures(
        model_id=model_id,
        symbol=symbol,
        signals=signals,
        calls=len(calls),
        correct=correct,
        hit_rate=correct / len(calls) if calls else 0.0,
        mean_confidence=math.fsum(stated for stated, _ in calls) / len(calls) if calls else 0.0,
        profit_backed=math.fsum(backed_profit),
        loss_backed=math.fsum(backed_loss),
        calibration=calibration(calls),
    )


def by_model(
    results: Sequence[SignalResult],
    starting_equity: float,
    marks: Sequence[Mark] | None = None,
    end_ns: int = 0,
) -> list[ModelBreakdown]:
    """One breakdown per model id in the votes, ascending: the figures of every signal it
    voted on (`summarize`, from `starting_equity` as if they traded alone), its attribution
    over every symbol and per symbol it voted on a closed signal of."""
    voted: defaultdict[str, list[SignalResult]] = defaultdict(list)
    for result in results:
        for model_id in dict.fromkeys(vote.model_id for vote in result.votes):
            voted[model_id].append(result)
    breakdowns = []
    for model_id in sorted(voted):
        rows = voted[model_id]
        symbols = sorted({row.symbol for row in rows if row.outcome in _CLOSED})
        breakdowns.append(
            ModelBreakdown(
                model_id=model_id,
                stats=summarize(rows, starting_equity, marks, end_ns),
                overall=attribute(model_id, "", rows),
                by_symbol=tuple(
                    attribute(model_id, symbol, [row for row in rows if row.symbol == symbol])
                    for symbol in symbols
                ),
            )
        )
    return breakdowns


class ModelTally:
    """Calls and correct calls per model since start, for the metrics; at most `limit` model
    ids are told apart (the ids come from producers), the rest count under `OTHER`."""

    OTHER: Final = "other"

    def __init__(self, limit: int = 100) -> None:
        self._limit = limit
        # model id -> [calls, correct]
        self.counts: dict[str, list[int]] = {}

    def add(self, result: SignalResult) -> None:
        """Count the calls of a signal that has just closed."""
        for vote in result.votes:
            right = call(vote, result)
            if right is None:
                continue
            model_id = vote.model_id
            if model_id not in self.counts and len(self.counts) >= self._limit:
                model_id = self.OTHER
            tally = self.counts.setdefault(model_id, [0, 0])
            tally[0] += 1
            tally[1] += right
