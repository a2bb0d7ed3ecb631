"""A backtest in the terminal: what was replayed, the signals two strategies disagree on
with the rules that explain each, and the figures side by side; or all of it as JSON."""

from __future__ import annotations

import dataclasses
from typing import Any, Final

from google.protobuf import json_format

from tradeflow.trading.v1 import signal_pb2
from trading_engine.enum_names import short_name
from trading_engine.replay.backtest import Backtest, report_sides
from trading_engine.replay.compare import (
    Change,
    SignalDifference,
    deciding_steps,
    describe_decision,
    describe_step,
)
from trading_engine.replay.report import ReportSide, figures_table, models_table

_RULES: Final = signal_pb2.DecisionRule.DESCRIPTOR


def render(backtest: Backtest, listed: int) -> str:
    """The backtest for a reader; at most `listed` differences of each kind spelled out."""
    progress = backtest.progress
    lines = [
        f"replayed {progress.batches} batches ({progress.predictions} predictions) under "
        + " and ".join(side.name for side in backtest.sides)
    ]
    if not progress.batches and not progress.refused:
        lines.append(
            "  no prediction batches in the range: from history, they are kept while the "
            "engine runs with --history-keep-predictions (on by default) and until retention"
        )
    lines += [f"  refused as a whole, as live: {origin}: {why}" for origin, why in progress.refused]
    for side in backtest.sides:
        actionable = sum(
            s.disposition == signal_pb2.SIGNAL_DISPOSITION_ACTIONABLE for s in side.signals
        )
        lines.append(f"  {side.name}: {len(side.signals)} decisions, {actionable} actionable")
    if backtest.reproduction is not None:
        reproduced = backtest.reproduction
        lines.append(
            f"against the signals stored live: {reproduced.identical} identical byte for byte, "
            f"{len(reproduced.different)} different, {len(reproduced.missing)} not replayed, "
            f"{len(reproduced.extra)} not stored"
        )
        if reproduced.risk_answered:
            lines.append(
                f"  and {len(reproduced.risk_answered)} that risk management answered for live in "
                "batches kept without its verdict: they replay NOT_ASSESSED"
            )
    if backtest.comparison is not None:
        lines.append("")
        lines += _comparison(backtest, listed)
    lines.append("")
    if backtest.prices:
        lines.append(f"simulated against {backtest.prices}")
    lines += [f"warning: {warning}" for warning in backtest.warnings]
    sides = report_sides(backtest)
    if sides:
        lines.append(figures_table(sides))
        for shown in sides:
            if shown.models:
                lines += ["", f"models under {shown.name}:", models_table(shown)]
    else:
        lines.append(f"no performance simulated: {backtest.without_performance}")
    return "\n".join(lines) + "\n"


def _comparison(backtest: Backtest, listed: int) -> list[str]:
    comparison = backtest.comparison
    assert comparison is not None
    first, second = (side.name for side in backtest.sides)
    counts = {change: len(comparison.of(change)) for change in Change}
    lines = [
        f"{second} against {first}, over {comparison.compared} predictions: "
        + ", ".join(f"{count} {change.value}" for change, count in counts.items())
    ]
    for change in Change:
        differences = comparison.of(change)
        for difference in differences[:listed]:
            lines += _difference(difference)
        if len(differences) > listed:
            lines.append(f"  ... and {len(differences) - listed} more {change.value} (--list N)")
    return lines


def _difference(difference: SignalDifference) -> list[str]:
    before, after = difference.before, difference.after
    when = after.generated_at.ToDatetime().strftime("%Y-%m-%d %H:%M:%S")
    lines = [
        f"  {difference.change.value:<8} {when} {after.symbol} {after.prediction_id}: "
        f"{describe_decision(before)} -> {describe_decision(after)}"
    ]
    both = deciding_steps(difference)
    lines += [f"           {describe_step(step)}" for step in both]
    one_sided = len(difference.steps) - len(both)
    if one_sided:
        lines.append(f"           and {one_sided} later rules that only one side ran")
    return lines


def as_json(backtest: Backtest) -> dict[str, Any]:
    """The backtest as JSON-ready data; signals and trace steps in their protobuf JSON form."""
    progress = backtest.progress
    document: dict[str, Any] = {
        "batches": progress.batches,
        "predictions": progress.predictions,
        "refused": [{"origin": origin, "why": why} for origin, why in progress.refused],
        "sides": [
            {
                "name": side.name,
                "decisions": len(side.signals),
                "performance": None
                if side.performance is None
                else {
                    "stats": _plain(side.performance.stats),
                    "curve": [list(point) for point in side.performance.curve],
                    "open_at_end": side.performance.open_at_end,
                    "never_filled": side.performance.never_filled,
                    "models": [_plain(model) for model in side.performance.models],
                },
            }
            for side in backtest.sides
        ],
        "without_performance": backtest.without_performance,
        "prices": backtest.prices,
        "warnings": list(backtest.warnings),
    }
    if backtest.reproduction is not None:
        document["reproduction"] = _plain(backtest.reproduction)
    if backtest.comparison is not None:
        document["comparison"] = {
            change.value: [_json_difference(d) for d in backtest.comparison.of(change)]
            for change in Change
        }
    return document


def side_json(side: ReportSide) -> dict[str, Any]:
    """A side as a report draws it, as JSON-ready data (a sweep's values)."""
    return {
        "name": side.name,
        "stats": _plain(side.stats),
        "curve": [list(point) for point in side.curve],
        "open_at_end": side.open_at_end,
        "never_filled": side.never_filled,
    }


def _json_difference(difference: SignalDifference) -> dict[str, Any]:
    def message(step: signal_pb2.DecisionStep | None) -> dict[str, Any] | None:
        return None if step is None else json_format.MessageToDict(step)

    return {
        "signal_id": difference.after.signal_id,
        "before": json_format.MessageToDict(difference.before),
        "after": json_format.MessageToDict(difference.after),
        "steps": [
            {
                "rule": short_name(_RULES, s.rule),
                "before": message(s.before),
                "after": message(s.after),
            }
            for s in difference.steps
        ],
    }


def _plain(value: Any) -> Any:
    """A dataclass as nested dicts and lists."""
    return dataclasses.asdict(value)
