"""Risk adjustments to an actionable decision: only ever smaller, only ever tighter.

`apply_assessment` applies the risk-management service's judgement;
`apply_fallback` applies limits the engine chooses itself when no judgement
is available, and `withhold` holds the signal instead for a strategy that
requires an assessment. Each records every change in the decision's risk adjustments and
trace, and set its risk status.
"""

from __future__ import annotations

import dataclasses
from typing import Final

from tradeflow.common.v1 import risk_level_pb2
from tradeflow.risk.v1 import risk_service_pb2
from tradeflow.trading.v1 import signal_pb2
from trading_engine.core.decision import (
    ADJUST,
    FAIL,
    HELD,
    PASS,
    REASON_RISK_EXTREME,
    REASON_RISK_UNAVAILABLE,
    REASON_SIZE_BELOW_MINIMUM,
    RULE_RISK_ASSESSMENT,
    Decision,
    Entry,
)
from trading_engine.core.entry import round_money, split_legs
from trading_engine.core.instruments import Instrument

_RULE: Final = RULE_RISK_ASSESSMENT


@dataclasses.dataclass(frozen=True)
class FallbackLimits:
    """Limits applied without an assessment: the size is multiplied by `size_factor` and capped."""

    size_factor: float
    max_lots: float


# When the assessment call fails: half size, at most one lot.
CONSERVATIVE: Final = FallbackLimits(size_factor=0.5, max_lots=1.0)


def apply_assessment(
    decision: Decision, assessment: risk_service_pb2.RiskAssessment, instrument: Instrument
) -> None:
    """Apply an assessment to an actionable decision (RISK_STATUS_ASSESSED)."""
    decision.risk_status = signal_pb2.RISK_STATUS_ASSESSED
    decision.risk_level = assessment.risk_level
    entry = decision.entry
    if entry is None:
        return
    reasons = "; ".join(assessment.reasons) or "no reason given"
    level_name = risk_level_pb2.RiskLevel.Name(assessment.risk_level)[11:]
    if assessment.risk_level >= risk_level_pb2.RISK_LEVEL_EXTREME:
        _cancel(
            decision,
            REASON_RISK_EXTREME,
            f"risk management judged the risk EXTREME: {reasons}",
            float(assessment.risk_level),
            float(risk_level_pb2.RISK_LEVEL_EXTREME),
        )
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
    reduce = target < entry.lots
    if reduce and not _resize(decision, entry, target, instrument, why):
        return
    decision.trace.append(
        (
            _RULE,
            ADJUST if reduce else PASS,
            limits.size_factor,
            limits.max_lots,
            why + "; observed: size factor, threshold: max lots",
        )
    )


def withhold(decision: Decision, status: int, why: str) -> None:
    """Hold an actionable decision that could not be assessed (fail-closed); status says why."""
    decision.risk_status = status
    if decision.entry is not None:
        _cancel(
            decision,
            REASON_RISK_UNAVAILABLE,
            f"the strategy requires a risk assessment and none is available: {why}",
            0.0,
            0.0,
        )


def _cancel(decision: Decision, reason: int, why: str, observed: float, threshold: float) -> None:
    """Turn the signal into HOLD; the adjustment's values are 0, as the contract says."""
    decision.risk_adjustments.append(
        (signal_pb2.RISK_ADJUSTMENT_KIND_SIGNAL_CANCELLED, 0.0, 0.0, why)
    )
    decision.trace.append((_RULE, FAIL, observed, threshold, why))
    decision.stop(HELD, reason, why)


def _resize(
    decision: Decision, entry: Entry, lots: float, instrument: Instrument, why: str
) -> bool:
    """Reduce the size (and legs); False when it falls below the minimum and the signal is held."""
    reduced = instrument.lots(instrument.lot_steps(lots))
    if reduced < instrument.min_lot:
        _cancel(
            decision,
            REASON_SIZE_BELOW_MINIMUM,
            f"size reduced below the minimum lot: {why}",
            reduced,
            instrument.min_lot,
        )
        return False
    decision.risk_adjustments.append(
        (signal_pb2.RISK_ADJUSTMENT_KIND_POSITION_SIZE_REDUCED, entry.lots, reduced, why)
    )
    if entry.legs:
        # The same split the rules make, for the smaller size; under two lot steps, one leg.
        start = instrument.to_ticks(entry.entry_price)
        target = instrument.to_ticks(entry.take_profit)
        side = 1 if target > start else -1
        entry.legs = split_legs(
            instrument, reduced, len(entry.legs), start, side, abs(target - start)
        )
    entry.lots = reduced
    entry.risk_amount = round_money(reduced * entry.stop_loss_pips * entry.pip_value)
    return True


def _tighten_stop(decision: Decision, entry: Entry, stop: float, instrument: Instrument) -> bool:
    """Move the stop to `stop` if that is strictly closer to the entry on the losing side."""
    start = instrument.to_ticks(entry.entry_price)
    current = instrument.to_ticks(entry.stop_loss)
    side = 1 if current < start else -1
    proposed = instrument.to_ticks(stop) if stop > 0.0 else 0
    distance = (start - proposed) * side
    if not 0 < distance < (start - current) * side:
        decision.trace.append(
            (
                _RULE,
                PASS,
                instrument.price(proposed),
                entry.stop_loss,
                "recommended stop ignored: not tighter on the losing side",
            )
        )
        return False
    tightened = instrument.price(proposed)
    decision.risk_adjustments.append(
        (
            signal_pb2.RISK_ADJUSTMENT_KIND_STOP_LOSS_TIGHTENED,
            entry.stop_loss,
            tightened,
            "tighter stop recommended by risk management",
        )
    )
    entry.stop_loss = tightened
    entry.stop_loss_pips = instrument.pips(distance)
    entry.risk_amount = round_money(entry.lots * entry.stop_loss_pips * entry.pip_value)
    return True
