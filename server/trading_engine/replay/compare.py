"""Which signals two strategies disagree on, and the rules that explain each difference.

Signals are matched by id (a signal id names the tenant and the prediction,
not the strategy), so the same prediction is compared with itself:

- added: actionable under the second strategy, not under the first;
- removed: actionable under the first, not under the second;
- changed: actionable under both, with a different type, strength or entry.

Each difference carries the decision-trace steps whose outcome, numbers or
sentence differ, rule by rule: the answer to "why did this signal change?".
A stricter rule can also let a signal through (a view held as a duplicate of
a signal the stricter rule stopped goes out itself); the trace says so.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Sequence
from typing import Final

from tradeflow.trading.v1 import signal_pb2
from trading_engine.enum_names import short_name

_RULES: Final = signal_pb2.DecisionRule.DESCRIPTOR
_OUTCOMES: Final = signal_pb2.RuleOutcome.DESCRIPTOR
_TYPES: Final = signal_pb2.SignalType.DESCRIPTOR
_REASONS: Final = signal_pb2.DispositionReason.DESCRIPTOR

_ACTIONABLE: Final = signal_pb2.SIGNAL_DISPOSITION_ACTIONABLE
# What a trader would act on differently: every entry field but the bookkeeping ones.
_COMPARED_ENTRY_FIELDS: Final = (
    "order_type", "entry_price", "limit_price", "stop_loss", "take_profit",
    "position_size_lots", "time_in_force", "valid_until", "legs",
)  # fmt: skip


class Change(enum.Enum):
    ADDED = "added"
    REMOVED = "removed"
    CHANGED = "changed"


@dataclasses.dataclass(frozen=True)
class StepDifference:
    rule: int
    # None when the rule did not run on that side.
    before: signal_pb2.DecisionStep | None
    after: signal_pb2.DecisionStep | None


@dataclasses.dataclass(frozen=True)
class SignalDifference:
    change: Change
    before: signal_pb2.TradingSignal
    after: signal_pb2.TradingSignal
    steps: tuple[StepDifference, ...]


@dataclasses.dataclass(frozen=True)
class Comparison:
    differences: tuple[SignalDifference, ...]
    # Signals compared (present on both sides).
    compared: int

    def of(self, change: Change) -> list[SignalDifference]:
        return [d for d in self.differences if d.change is change]


class UnmatchedSignals(ValueError):
    """The two sides did not decide the same predictions; they cannot be compared."""


def compare(
    first: Sequence[signal_pb2.TradingSignal], second: Sequence[signal_pb2.TradingSignal]
) -> Comparison:
    """The differences between two replays of the same batches, in the first's order."""
    by_id = {signal.signal_id: signal for signal in second}
    if len(by_id) != len(first) or any(s.signal_id not in by_id for s in first):
        raise UnmatchedSignals(
            f"the first side decided {len(first)} predictions, the second {len(by_id)}, "
            "not the same ones"
        )
    differences = []
    for before in first:
        after = by_id[before.signal_id]
        change = _change(before, after)
        if change is not None:
            differences.append(
                SignalDifference(change, before, after, _step_differences(before, after))
            )
    return Comparison(tuple(differences), len(first))


def same_trade(before: signal_pb2.TradingSignal, after: signal_pb2.TradingSignal) -> bool:
    """Both actionable with the same type, strength and entry: one trade, however decided."""
    both = before.disposition == _ACTIONABLE and after.disposition == _ACTIONABLE
    return both and _change(before, after) is None


def _change(before: signal_pb2.TradingSignal, after: signal_pb2.TradingSignal) -> Change | None:
    was, now = before.disposition == _ACTIONABLE, after.disposition == _ACTIONABLE
    if now and not was:
        return Change.ADDED
    if was and not now:
        return Change.REMOVED
    if was and (
        before.signal_type != after.signal_type
        or before.strength != after.strength
        or any(
            getattr(before.entry, name) != getattr(after.entry, name)
            for name in _COMPARED_ENTRY_FIELDS
        )
    ):
        return Change.CHANGED
    return None


def deciding_steps(difference: SignalDifference) -> list[StepDifference]:
    """The rules both sides ran and judged differently: they explain the change (the rules
    only one side went on to run follow from it)."""
    return [s for s in difference.steps if s.before is not None and s.after is not None]


def describe_decision(signal: signal_pb2.TradingSignal) -> str:
    """A decision in a line: "BUY 1.25 lots @ 1.08516 stop 1.08316 tp 1.08916", or
    "HOLD (CONFIDENCE_BELOW_THRESHOLD)"."""
    if signal.disposition != _ACTIONABLE:
        return f"{short_name(_TYPES, signal.signal_type)} ({short_name(_REASONS, signal.reason)})"
    entry = signal.entry
    return (
        f"{short_name(_TYPES, signal.signal_type)} {entry.position_size_lots:g} lots "
        f"@ {entry.entry_price:g} stop {entry.stop_loss:g} tp {entry.take_profit:g}"
    )


def describe_step(step: StepDifference) -> str:
    """A rule both sides ran, as each judged it: "confidence: PASS 0.72 ... -> FAIL ..."."""
    assert step.before is not None
    assert step.after is not None
    return f"{short_name(_RULES, step.rule).lower()}: {_said(step.before)} -> {_said(step.after)}"


def _said(decided: signal_pb2.DecisionStep) -> str:
    """The step's outcome with its numbers: "FAIL 0.78 (threshold 0.8): below the minimum"."""
    numbers = f" {decided.observed:g}" if decided.observed or decided.threshold else ""
    if decided.threshold:
        numbers += f" (threshold {decided.threshold:g})"
    return f"{short_name(_OUTCOMES, decided.outcome)}{numbers}: {decided.detail}"


def _step_differences(
    before: signal_pb2.TradingSignal, after: signal_pb2.TradingSignal
) -> tuple[StepDifference, ...]:
    old = {step.rule: step for step in before.decision_trace}
    new = {step.rule: step for step in after.decision_trace}
    # Rules in the order they ran: the first side's, then any only the second ran.
    rules = list(old) + [rule for rule in new if rule not in old]
    return tuple(
        StepDifference(rule, old.get(rule), new.get(rule))
        for rule in rules
        if old.get(rule) != new.get(rule)
    )
