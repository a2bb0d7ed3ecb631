"""ReplaySignals' messages: the request checked into a ReplayQuery, the result into protobuf."""

from __future__ import annotations

from typing import Final

from tradeflow.trading.v1 import trading_engine_service_pb2 as service_pb2
from trading_engine import errors, timestamps
from trading_engine.api.performance_messages import stats_to_proto
from trading_engine.core.tiers import TierPolicy
from trading_engine.replay.backtest import Backtest
from trading_engine.replay.compare import Change
from trading_engine.replay.service import MAX_WINDOW_NS, ReplayProgressed, ReplayQuery
from trading_engine.replay.strategies import Candidate

S = service_pb2
DEFAULT_DIFFERENCES: Final = 100
MAX_DIFFERENCES: Final = 1000
_CHANGES: Final = {
    Change.ADDED: S.SIGNAL_CHANGE_ADDED,
    Change.REMOVED: S.SIGNAL_CHANGE_REMOVED,
    Change.CHANGED: S.SIGNAL_CHANGE_CHANGED,
}


def replay_query(
    request: S.ReplaySignalsRequest, company_id: str, user_id: str, policy: TierPolicy
) -> ReplayQuery:
    """The request as a query for `user_id`; InvalidArgument naming every bad field."""
    violations = [
        errors.FieldViolation(name, "required")
        for name in ("start_time", "end_time")
        if not request.HasField(name)
    ]
    start_ns = timestamps.nanoseconds(request.start_time, "start_time", violations)
    end_ns = timestamps.nanoseconds(request.end_time, "end_time", violations)
    if not violations and not 0 < end_ns - start_ns <= MAX_WINDOW_NS:
        violations.append(
            errors.FieldViolation("end_time", "must be after start_time, by at most 31 days")
        )
    if not 0 <= request.max_differences <= MAX_DIFFERENCES:
        violations.append(
            errors.FieldViolation("max_differences", f"must be 0 to {MAX_DIFFERENCES}")
        )
    candidate = None
    if request.HasField("candidate") or request.candidate_mask.paths:
        candidate, problems = Candidate.checked(
            "candidate", request.candidate, request.candidate_mask.paths, policy
        )
        violations += [
            errors.FieldViolation(_candidate_field(problem.field), problem.description)
            for problem in problems
        ]
    if violations:
        raise errors.invalid("the replay request is invalid", violations)
    return ReplayQuery(company_id, user_id, start_ns, end_ns, candidate)


def _candidate_field(update_field: str) -> str:
    """The request field an update's violation is about: its strategy is the candidate."""
    if update_field == "update_mask":
        return "candidate_mask"
    return "candidate" + update_field.removeprefix("strategy")


def progress_to_proto(progress: ReplayProgressed) -> S.ReplaySignalsResponse:
    return S.ReplaySignalsResponse(
        progress=S.ReplayProgress(
            batches_done=progress.batches_done, batches_total=progress.batches_total
        )
    )


def result_to_proto(backtest: Backtest, max_differences: int) -> S.ReplaySignalsResponse:
    in_force = backtest.sides[0]
    result = S.ReplayResult(decisions=len(in_force.signals))
    reproduced = backtest.reproduction
    if reproduced is not None:
        result.identical = reproduced.identical
        result.risk_answered = len(reproduced.risk_answered)
        result.different = (
            len(reproduced.different) + len(reproduced.missing) + len(reproduced.extra)
        )
    comparison = backtest.comparison
    if comparison is not None:
        result.added = len(comparison.of(Change.ADDED))
        result.removed = len(comparison.of(Change.REMOVED))
        result.changed = len(comparison.of(Change.CHANGED))
        for difference in comparison.differences[: max_differences or DEFAULT_DIFFERENCES]:
            listed = result.differences.add(
                change=_CHANGES[difference.change],
                before=difference.before,
                after=difference.after,
            )
            for step in difference.steps:
                shown = listed.steps.add(rule=step.rule)
                if step.before is not None:
                    shown.before.CopyFrom(step.before)
                if step.after is not None:
                    shown.after.CopyFrom(step.after)
    if in_force.performance is not None:
        result.performance.CopyFrom(stats_to_proto(in_force.performance.stats))
    if len(backtest.sides) == 2 and backtest.sides[1].performance is not None:
        result.candidate_performance.CopyFrom(stats_to_proto(backtest.sides[1].performance.stats))
    return S.ReplaySignalsResponse(result=result)
