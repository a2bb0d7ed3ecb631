"""An ExplainSignalResponse as text read top to bottom: prediction, rules, risk, results."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

from google.protobuf.timestamp_pb2 import Timestamp

from tradeflow.common.v1 import risk_level_pb2
from tradeflow.ml.v1 import prediction_pb2
from tradeflow.trading.v1 import execution_pb2, signal_pb2
from tradeflow.trading.v1 import trading_engine_service_pb2 as service_pb2
from trading_engine.enum_names import short_name

_OUTCOME_MARK: Final = {
    signal_pb2.RULE_OUTCOME_PASS: "pass",
    signal_pb2.RULE_OUTCOME_FAIL: "FAIL",
    signal_pb2.RULE_OUTCOME_ADJUST: "adjust",
    signal_pb2.RULE_OUTCOME_SKIP: "skip",
}


def render(response: service_pb2.ExplainSignalResponse) -> str:
    signal = response.signal
    signal_type = short_name(signal_pb2.SignalType.DESCRIPTOR, signal.signal_type)
    lines = [
        f"signal {signal.signal_id}  {signal.symbol}  {signal_type}"
        f"  {short_name(signal_pb2.SignalDisposition.DESCRIPTOR, signal.disposition)}",
        f"  user {signal.user_id} of {signal.company_id}, decided {_time(signal.generated_at)}"
        f" under strategy revision {signal.strategy_version}",
    ]
    if signal.reason:
        reason = short_name(signal_pb2.DispositionReason.DESCRIPTOR, signal.reason)
        lines.append(f"  why: {reason}: {signal.cancellation_reason}")
    lines += ["", "prediction"]
    lines += (
        _prediction(response.prediction)
        if response.HasField("prediction")
        else ["  none kept (a manual signal, or its batch is past retention)"]
    )
    lines += ["", "decision trace"]
    lines += [
        f"  {short_name(signal_pb2.DecisionRule.DESCRIPTOR, step.rule):<20} "
        f"{_OUTCOME_MARK.get(step.outcome, '?'):<6} observed {step.observed:<12.6g} "
        f"threshold {step.threshold:<12.6g} {step.detail}"
        for step in signal.decision_trace
    ]
    if signal.HasField("entry"):
        entry = signal.entry
        lines += [
            "",
            "entry",
            f"  {short_name(signal_pb2.OrderType.DESCRIPTOR, entry.order_type)} "
            f"at {entry.entry_price:g}, "
            f"stop loss {entry.stop_loss:g} ({entry.stop_loss_pips:g} pips), take profit "
            f"{entry.take_profit:g} ({entry.take_profit_pips:g} pips), "
            f"{entry.position_size_lots:g} lots",
        ]
    lines += [
        "",
        f"risk  {short_name(signal_pb2.RiskStatus.DESCRIPTOR, signal.risk_status)}"
        f"  level {short_name(risk_level_pb2.RiskLevel.DESCRIPTOR, signal.risk_level)}",
    ]
    lines += [
        f"  {short_name(signal_pb2.RiskAdjustmentKind.DESCRIPTOR, adjustment.kind)}: "
        f"{adjustment.before:g} -> "
        f"{adjustment.after:g}  {adjustment.detail}"
        for adjustment in signal.risk_adjustments
    ]
    lines += ["", "executions"]
    lines += list(_executions(response.executions)) or ["  none received"]
    if response.HasField("performance"):
        performance = response.performance
        lines += [
            "",
            f"outcome  {short_name(execution_pb2.SignalOutcome.DESCRIPTOR, performance.outcome)}  "
            f"{performance.profit_loss_pips:+.1f} pips  {performance.profit_loss:+.2f} "
            f"{performance.currency}  slippage {performance.slippage_pips:+.1f} pips",
        ]
    return "\n".join(lines) + "\n"


_DIRECTION = prediction_pb2.Direction.DESCRIPTOR


def _prediction(prediction: prediction_pb2.Prediction) -> list[str]:
    lines = [
        f"  {prediction.prediction_id}: {prediction.symbol} "
        f"{short_name(_DIRECTION, prediction.primary_direction)} confidence "
        f"{prediction.confidence:g} at {prediction.current_price:g}"
        f" (predicted {prediction.predicted_price:g})"
    ]
    lines += [
        f"  vote {vote.model_id}: {short_name(_DIRECTION, vote.direction)} "
        f"confidence {vote.confidence:g} weight {vote.weight:g}"
        for vote in prediction.votes
    ]
    return lines


def _executions(results: Iterable[execution_pb2.ExecutionResult]) -> Iterable[str]:
    for result in results:
        status = short_name(execution_pb2.ExecutionStatus.DESCRIPTOR, result.status)
        line = f"  {result.execution_id}: {status}"
        if result.executed_size_lots:
            line += f" {result.executed_size_lots:g} lots at {result.executed_price:g}"
        if result.exit_price:
            line += (
                f", closed at {result.exit_price:g} "
                f"({short_name(execution_pb2.CloseReason.DESCRIPTOR, result.close_reason)})"
            )
        yield line


def _time(stamp: Timestamp) -> str:
    return stamp.ToDatetime().strftime("%Y-%m-%d %H:%M:%S.%f UTC")
