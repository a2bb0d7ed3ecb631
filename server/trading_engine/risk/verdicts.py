"""What risk management said about one batch, applied to its decisions, and kept for replay.

A verdict is either the risk service's answer or the fallback the gate
applied instead (with its limits and reason), plus the signal ids it was
about. The gate applies it to the live decisions; history keeps it with the
batch, so a replay applies the very same verdict to the same decisions and
comes out byte for byte as live, risk adjustments included. A signal the
verdict was not about (only a candidate strategy made it actionable) is left
NOT_ASSESSED by a replay: nobody asked risk management about it.
"""

from __future__ import annotations

import base64
import dataclasses
import json
from collections.abc import Sequence

from tradeflow.risk.v1 import risk_service_pb2
from tradeflow.trading.v1 import signal_pb2
from trading_engine.core import instruments
from trading_engine.core.decision import Decision
from trading_engine.core.risk import (
    CONSERVATIVE,
    FallbackLimits,
    apply_assessment,
    apply_fallback,
    withhold,
)

_NO_ASSESSMENT = (
    "the risk service answered without an assessment of this signal; conservative limits applied"
)


@dataclasses.dataclass(frozen=True)
class RiskVerdict:
    # The signals risk management was asked about.
    asked: tuple[str, ...]
    # The serialized AssessSignalResponse; empty when the gate fell back instead.
    answer: bytes = b""
    # Without an answer: FALLBACK_USED or ERROR_FALLBACK, the limits applied and why.
    status: int = 0
    limits: FallbackLimits = CONSERVATIVE
    why: str = ""

    def to_json(self) -> str:
        return json.dumps(
            {
                "asked": list(self.asked),
                "answer": base64.b64encode(self.answer).decode(),
                "status": self.status,
                "size_factor": self.limits.size_factor,
                "max_lots": self.limits.max_lots,
                "why": self.why,
            },
            separators=(",", ":"),
        )

    @classmethod
    def from_json(cls, text: str) -> RiskVerdict:
        kept = json.loads(text)
        return cls(
            asked=tuple(kept["asked"]),
            answer=base64.b64decode(kept["answer"]),
            status=kept["status"],
            limits=FallbackLimits(kept["size_factor"], kept["max_lots"]),
            why=kept["why"],
        )


@dataclasses.dataclass
class VerdictTally:
    """What applying a verdict did, for the gate's counts."""

    assessed: int = 0
    fallbacks: int = 0
    errors: int = 0
    withheld: int = 0
    # From the assessments: the limits the user's next open-circuit fallback uses.
    implied: FallbackLimits | None = None


def apply_verdict(
    verdict: RiskVerdict, actionable: Sequence[Decision], fail_closed: bool
) -> VerdictTally:
    """Set the risk status (and any adjustment) of the actionable decisions the verdict is about."""
    tally = VerdictTally()
    asked = set(verdict.asked)
    decisions = [decision for decision in actionable if decision.signal_id in asked]
    if not verdict.answer:
        _fall_back(decisions, verdict.limits, verdict.status, verdict.why, fail_closed, tally)
        return tally
    answer = risk_service_pb2.AssessSignalResponse.FromString(verdict.answer)
    by_signal = {assessment.signal_id: assessment for assessment in answer.assessments}
    factor, largest = 1.0, 0.0
    for decision in decisions:
        assessment = by_signal.get(decision.signal_id)
        entry = decision.entry
        instrument = instruments.lookup(decision.symbol)
        if assessment is None or entry is None or instrument is None:
            error = signal_pb2.RISK_STATUS_ERROR_FALLBACK
            _fall_back([decision], CONSERVATIVE, error, _NO_ASSESSMENT, fail_closed, tally)
            continue
        proposed = entry.lots
        apply_assessment(decision, assessment, instrument)
        tally.assessed += 1
        if decision.entry is not None:
            factor = min(factor, decision.entry.lots / proposed)
            largest = max(largest, decision.entry.lots)
    if largest > 0.0:
        tally.implied = FallbackLimits(size_factor=factor, max_lots=largest)
    return tally


def _fall_back(
    decisions: list[Decision],
    limits: FallbackLimits,
    status: int,
    why: str,
    fail_closed: bool,
    tally: VerdictTally,
) -> None:
    """Apply `limits` with `status` to decisions not assessed, or hold them (fail-closed)."""
    if status == signal_pb2.RISK_STATUS_FALLBACK_USED:
        tally.fallbacks += len(decisions)
    else:
        tally.errors += len(decisions)
    for decision in decisions:
        instrument = instruments.lookup(decision.symbol)
        if fail_closed or instrument is None:
            withhold(decision, status, why)
            tally.withheld += 1
        else:
            apply_fallback(decision, limits, status, instrument, why)
