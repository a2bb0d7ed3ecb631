"""Risk adjustments to an actionable decision: only ever smaller, only ever tighter.

`apply_assessment` applies the risk-management service's judgement;
`apply_fallback` applies limits the engine chooses itself when no judgement
is available. Both record every change in the decision's risk adjustments and
trace, and set its risk status.
"""

from __future__ import annotations

import dataclasses

from tradeflow.common.v1 import risk_level_pb2
from tradeflow.risk.v1 import risk_service_pb2
from tradeflow.trading.v1 import signal_pb2
from trading_engine.core.decision import ADJUST, FAIL, HELD, PASS, Decision, Entry, Leg
from trading_engine.core.entry import round_money
from trading_engine.core.instruments import Instrument

R = signal_pb2
_RULE = R.DECISION_RULE_RISK_ASSESSMENT


@dataclasses.dataclass(frozen=True, slots=True)
class FallbackLimits:
    """Limits applied without an assessment: the size is multiplied by `size_factor` and capped."""

    size_factor: float
    max_lots: float


# When the assessment call fails: half size, at most one lot.
CONSERVATIVE = FallbackLimits(size_factor=0.5, max_lots=1.0)


def apply_assessment(
    decision: Decision, assessment: risk_service_pb2.RiskAssessment, instrument: Instrument
) -> None:
    """Apply an assessment to an actionable decision (RISK_STATUS_ASSESSED)."""
    decision.risk_status = R.RISK_STATUS_ASSESSED
    decision.risk_level = assessment.risk_level
    entry = decision.entry
    if entry is None:
        return
    reasons = "; ".join(assessment.reasons) or "no reason given"
    level_name = risk_level_pb2.RiskLevel.Name(assessment.risk_level)[11:]
    if assessment.risk_level >= risk_level_pb2.RISK_LEVEL_EXTREME:
        _cancel(decision, entry, f"risk management judged the risk EXTREME: {reasons}")
        return
    changed = False
    recommended = assessment.recommended_position_size_lots
    if 0.0 < recommended < entry.lots:
        changed = True
        if not _resize(
            decision, entry, recommended, instrument, f"recommended by risk management ({reasons})"
        ):
            return
    if assessment.recommended_stop_loss_tighter:
        changed |= _tighten_stop(decision, entry, assessment.recommended_stop_loss, instrument)
    decision.trace.append(
        (
            _RULE,
            ADJUST if changed else PASS,
            float(assessment.risk_level),
            0.0,
            f"assessed {level_name}: {reasons}",
        )
    )


def apply_fallback(
    decision: Decision, limits: FallbackLimits, status: int, instrument: Instrument, why: str
) -> None:
    """Apply the engine's own limits to an actionable decision, with the status saying why."""
    decision.risk_status = status
    entry = decision.entry
    if entry is None:
        return
    target = min(entry.lots * limits.size_factor, limits.max_lots)
    if target < entry.lots and not _resize(decision, entry, target, instrument, why):
        return
    decision.trace.append(
        (
            _RULE,
            ADJUST,
            limits.size_factor,
            limits.max_lots,
            why + "; observed: size factor, threshold: max lots",
        )
    )


def _cancel(decision: Decision, entry: Entry, why: str) -> None:
    decision.risk_adjustments.append(
        (R.RISK_ADJUSTMENT_KIND_SIGNAL_CANCELLED, entry.lots, 0.0, why)
    )
    decision.trace.append(
        (_RULE, FAIL, float(decision.risk_level), float(risk_level_pb2.RISK_LEVEL_EXTREME), why)
    )
    decision.stop(HELD, R.DISPOSITION_REASON_RISK_EXTREME, why)


def _resize(
    decision: Decision, entry: Entry, lots: float, instrument: Instrument, why: str
) -> bool:
    """Reduce the size (and legs); False when it falls below the minimum and the signal is held."""
    reduced = instrument.lots(instrument.lot_steps(lots))
    if reduced < instrument.min_lot:
        _cancel(decision, entry, f"size reduced below the minimum lot: {why}")
        return False
    decision.risk_adjustments.append(
        (R.RISK_ADJUSTMENT_KIND_POSITION_SIZE_REDUCED, entry.lots, reduced, why)
    )
    if entry.legs:
        scale = reduced / entry.lots
        entry.legs = _rescaled_legs(entry.legs, scale, reduced, instrument)
    entry.lots = reduced
    entry.risk_amount = round_money(reduced * entry.stop_loss_pips * entry.pip_value)
    return True


def _rescaled_legs(
    legs: list[Leg], scale: float, total: float, instrument: Instrument
) -> list[Leg]:
    """Legs scaled down in whole lot steps; the rounding remainder goes to the first leg."""
    steps = [instrument.lot_steps(leg[0] * scale) for leg in legs]
    steps[0] += instrument.lot_steps(total) - sum(steps)
    return [
        (instrument.lots(count), price, pips)
        for count, (_, price, pips) in zip(steps, legs, strict=True)
        if count > 0
    ]


def _tighten_stop(decision: Decision, entry: Entry, stop: float, instrument: Instrument) -> bool:
    """Move the stop to `stop` if that is strictly closer to the entry on the losing side."""
    side = 1 if entry.stop_loss < entry.entry_price else -1
    stop = instrument.round_price(stop)
    current = abs(entry.entry_price - entry.stop_loss)
    proposed = (entry.entry_price - stop) * side
    if not 0.0 < proposed < current:
        decision.trace.append(
            (
                _RULE,
                PASS,
                stop,
                entry.stop_loss,
                "recommended stop ignored: not tighter on the losing side",
            )
        )
        return False
    decision.risk_adjustments.append(
        (
            R.RISK_ADJUSTMENT_KIND_STOP_LOSS_TIGHTENED,
            entry.stop_loss,
            stop,
            "tighter stop recommended by risk management",
        )
    )
    entry.stop_loss = stop
    entry.stop_loss_pips = instrument.pips(proposed)
    entry.risk_amount = round_money(entry.lots * entry.stop_loss_pips * entry.pip_value)
    return True
