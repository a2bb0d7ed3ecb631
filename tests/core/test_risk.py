"""Risk adjustments: an assessment or a fallback only ever makes a signal smaller or tighter."""

from __future__ import annotations

import pytest

from tests.core.builders import DOWN, PRO, UP, context, prediction, run, strategy
from tradeflow.common.v1 import risk_level_pb2
from tradeflow.risk.v1 import risk_service_pb2
from tradeflow.trading.v1 import signal_pb2
from trading_engine.core import instruments
from trading_engine.core.decision import ACTIONABLE, ADJUST, FAIL, HELD, HOLD, PASS, Decision
from trading_engine.core.instruments import Instrument
from trading_engine.core.risk import CONSERVATIVE, FallbackLimits, apply_assessment, apply_fallback

S = signal_pb2
RULE = S.DECISION_RULE_RISK_ASSESSMENT
REDUCED = S.RISK_ADJUSTMENT_KIND_POSITION_SIZE_REDUCED
TIGHTENED = S.RISK_ADJUSTMENT_KIND_STOP_LOSS_TIGHTENED
CANCELLED = S.RISK_ADJUSTMENT_KIND_SIGNAL_CANCELLED
LOW: int = risk_level_pb2.RISK_LEVEL_LOW
HIGH: int = risk_level_pb2.RISK_LEVEL_HIGH
VERY_HIGH: int = risk_level_pb2.RISK_LEVEL_VERY_HIGH
EXTREME: int = risk_level_pb2.RISK_LEVEL_EXTREME


def _eurusd() -> Instrument:
    instrument = instruments.lookup("EURUSD")
    assert instrument is not None
    return instrument


def _actionable(direction: int = UP, equity: float = 10_000.0, legs: bool = False) -> Decision:
    """An actionable EURUSD signal: 0.5 lots at 10,000 equity, 20-pip stop, 10 USD/pip."""
    chosen = strategy(PRO, features={"multi_leg_entries_enabled": legs})
    decision = run(prediction(direction=direction), context(chosen, equity=equity))
    assert decision.disposition == ACTIONABLE
    return decision


def _assessment(
    level: int,
    lots: float = 0.0,
    stop: float = 0.0,
    tighter: bool = False,
    reasons: tuple[str, ...] = ("near the exposure limit",),
) -> risk_service_pb2.RiskAssessment:
    return risk_service_pb2.RiskAssessment(
        signal_id="s-1",
        risk_level=risk_level_pb2.RiskLevel.ValueType(level),
        recommended_position_size_lots=lots,
        recommended_stop_loss=stop,
        recommended_stop_loss_tighter=tighter,
        reasons=list(reasons),
    )


def _fails(decision: Decision) -> int:
    return sum(1 for line in decision.trace if line[1] == FAIL)


def test_extreme_risk_cancels_the_signal() -> None:
    decision = _actionable()
    why = "risk management judged the risk EXTREME: exposure above the daily limit"

    apply_assessment(
        decision, _assessment(EXTREME, reasons=("exposure above the daily limit",)), _eurusd()
    )

    assert decision.disposition == HELD
    assert decision.reason == S.DISPOSITION_REASON_RISK_EXTREME
    assert decision.signal_type == HOLD
    assert decision.entry is None
    assert decision.cancellation_reason == why
    assert decision.risk_status == S.RISK_STATUS_ASSESSED
    assert decision.risk_level == EXTREME
    # The contract's values for a cancellation: 0 before and after.
    assert [adjustment[:3] for adjustment in decision.risk_adjustments] == [(CANCELLED, 0.0, 0.0)]
    assert decision.risk_adjustments[0][3] == why
    assert decision.trace[-1] == (RULE, FAIL, float(EXTREME), float(EXTREME), why)
    assert _fails(decision) == 1


@pytest.mark.parametrize(
    ("level", "recommended", "lots", "risk_amount", "reasons", "detail"),
    [
        pytest.param(HIGH, 0.3, 0.3, 60.0, ("near the limit",), "assessed HIGH: near the limit",
                     id="reduced-to-0.3"),
        pytest.param(VERY_HIGH, 0.333, 0.33, 66.0, ("at the limit",),
                     "assessed VERY_HIGH: at the limit", id="reduced-floored-to-lot-step"),
        pytest.param(LOW, 0.8, 0.5, 100.0, ("fine",), "assessed LOW: fine",
                     id="larger-never-increases"),
        pytest.param(LOW, 0.5, 0.5, 100.0, ("fine",), "assessed LOW: fine", id="equal-unchanged"),
        pytest.param(HIGH, 0.0, 0.5, 100.0, (), "assessed HIGH: no reason given",
                     id="zero-means-no-recommendation"),
    ],
)  # fmt: skip
def test_recommended_size_only_ever_reduces(
    level: int,
    recommended: float,
    lots: float,
    risk_amount: float,
    reasons: tuple[str, ...],
    detail: str,
) -> None:
    decision = _actionable()

    apply_assessment(decision, _assessment(level, lots=recommended, reasons=reasons), _eurusd())

    entry = decision.entry
    assert entry is not None
    assert decision.disposition == ACTIONABLE
    assert decision.risk_status == S.RISK_STATUS_ASSESSED
    assert decision.risk_level == level
    assert entry.lots == lots
    assert entry.risk_amount == risk_amount
    changed = lots != 0.5
    if changed:
        assert decision.risk_adjustments == [
            (REDUCED, 0.5, lots, f"recommended by risk management ({'; '.join(reasons)})")
        ]
    else:
        assert decision.risk_adjustments == []
    assert decision.trace[-1] == (RULE, ADJUST if changed else PASS, float(level), 0.0, detail)


_IGNORED = "recommended stop ignored: not tighter on the losing side"


@pytest.mark.parametrize(
    ("direction", "recommended", "tighter", "stop_loss", "stop_pips", "ignored_line"),
    [
        # BUY at 1.10005 with its stop at 1.09805.
        pytest.param(UP, 1.09905, True, 1.09905, 10.0, False, id="buy-tighter-applied"),
        pytest.param(UP, 1.099054, True, 1.09905, 10.0, False, id="buy-tighter-rounded"),
        pytest.param(UP, 1.09705, True, 1.09805, 20.0, True, id="buy-wider-ignored"),
        pytest.param(UP, 1.10100, True, 1.09805, 20.0, True, id="buy-winning-side-ignored"),
        pytest.param(UP, 1.10005, True, 1.09805, 20.0, True, id="buy-at-entry-ignored"),
        pytest.param(UP, 1.09905, False, 1.09805, 20.0, False, id="buy-not-flagged-tighter"),
        # SELL at 1.09995 with its stop at 1.10195.
        pytest.param(DOWN, 1.10095, True, 1.10095, 10.0, False, id="sell-tighter-applied"),
        pytest.param(DOWN, 1.10295, True, 1.10195, 20.0, True, id="sell-wider-ignored"),
        pytest.param(DOWN, 1.09900, True, 1.10195, 20.0, True, id="sell-winning-side-ignored"),
    ],
)
def test_tighter_stop_applied_only_when_closer_on_the_losing_side(
    direction: int,
    recommended: float,
    tighter: bool,
    stop_loss: float,
    stop_pips: float,
    ignored_line: bool,
) -> None:
    decision = _actionable(direction)
    assert decision.entry is not None
    original = decision.entry.stop_loss

    apply_assessment(decision, _assessment(HIGH, stop=recommended, tighter=tighter), _eurusd())

    entry = decision.entry
    assert entry is not None
    assert entry.stop_loss == stop_loss
    assert entry.stop_loss_pips == stop_pips
    assert entry.risk_amount == 0.5 * stop_pips * 10.0
    applied = stop_loss != original
    if applied:
        assert decision.risk_adjustments == [
            (TIGHTENED, original, stop_loss, "tighter stop recommended by risk management")
        ]
    else:
        assert decision.risk_adjustments == []
    ignored = [line for line in decision.trace if line[0] == RULE and line[4] == _IGNORED]
    expected = [(RULE, PASS, round(recommended, 5), original, _IGNORED)] if ignored_line else []
    assert ignored == expected
    assert decision.trace[-1][:2] == (RULE, ADJUST if applied else PASS)


def test_size_and_stop_changes_are_recorded_in_order() -> None:
    decision = _actionable()

    apply_assessment(decision, _assessment(HIGH, lots=0.3, stop=1.09905, tighter=True), _eurusd())

    entry = decision.entry
    assert entry is not None
    assert [kind for kind, _, _, _ in decision.risk_adjustments] == [REDUCED, TIGHTENED]
    # 0.3 lots x 10 pips x 10 USD.
    assert (entry.lots, entry.stop_loss_pips, entry.risk_amount) == (0.3, 10.0, 30.0)
    assert decision.trace[-1][:2] == (RULE, ADJUST)


@pytest.mark.parametrize(
    ("limits", "status", "equity", "lots", "changed"),
    [
        pytest.param(CONSERVATIVE, S.RISK_STATUS_ERROR_FALLBACK, 10_000.0, 0.25, True,
                     id="halved"),
        # 60,000 equity gives 3 lots: half is 1.5, capped at 1 lot.
        pytest.param(CONSERVATIVE, S.RISK_STATUS_ERROR_FALLBACK, 60_000.0, 1.0, True,
                     id="halved-and-capped"),
        pytest.param(FallbackLimits(size_factor=1.0, max_lots=0.4), S.RISK_STATUS_FALLBACK_USED,
                     10_000.0, 0.4, True, id="last-known-cap"),
        pytest.param(FallbackLimits(size_factor=1.0, max_lots=5.0), S.RISK_STATUS_FALLBACK_USED,
                     10_000.0, 0.5, False, id="within-limits"),
    ],
)  # fmt: skip
def test_fallback_limits(
    limits: FallbackLimits, status: int, equity: float, lots: float, changed: bool
) -> None:
    decision = _actionable(equity=equity)
    assert decision.entry is not None
    before = decision.entry.lots
    why = "risk service unavailable"

    apply_fallback(decision, limits, status, _eurusd(), why)

    entry = decision.entry
    assert entry is not None
    assert decision.disposition == ACTIONABLE
    assert decision.risk_status == status
    assert entry.lots == lots
    assert entry.risk_amount == round(lots * 20 * 10.0, 2)
    assert decision.risk_adjustments == ([(REDUCED, before, lots, why)] if changed else [])
    assert decision.trace[-1] == (
        RULE,
        ADJUST if changed else PASS,
        limits.size_factor,
        limits.max_lots,
        why + "; observed: size factor, threshold: max lots",
    )


def test_fallback_rescales_legs_to_the_new_size() -> None:
    decision = _actionable(legs=True)
    assert decision.entry is not None
    prices = [price for _, price, _ in decision.entry.legs]

    apply_fallback(decision, CONSERVATIVE, S.RISK_STATUS_ERROR_FALLBACK, _eurusd(), "timeout")

    entry = decision.entry
    assert entry is not None
    assert entry.lots == 0.25
    assert sum(round(lots * 100) for lots, _, _ in entry.legs) == 25
    assert [price for _, price, _ in entry.legs] == prices


def test_legs_reduced_to_one_lot_step_become_a_single_leg_entry() -> None:
    # "legs: empty for a single-leg entry"; a lone leg would take profit at a third of the way.
    decision = _actionable(legs=True)

    apply_assessment(decision, _assessment(HIGH, lots=0.01), _eurusd())

    entry = decision.entry
    assert entry is not None
    assert entry.lots == 0.01
    assert len(entry.legs) != 1
    assert entry.legs == [] or entry.legs[-1][1] == entry.take_profit


@pytest.mark.parametrize(
    "apply",
    [
        pytest.param("fallback", id="fallback-halves-0.01-lots"),
        pytest.param("assessment", id="assessment-recommends-0.005-lots"),
    ],
)
def test_size_reduced_below_the_minimum_lot_holds_for_size_not_extreme_risk(apply: str) -> None:
    # 200 equity: 0.01 lots, the minimum. Halving it (or a 0.005 recommendation) cannot trade.
    decision = _actionable(equity=200.0)
    if apply == "fallback":
        apply_fallback(decision, CONSERVATIVE, S.RISK_STATUS_ERROR_FALLBACK, _eurusd(), "timeout")
    else:
        apply_assessment(decision, _assessment(HIGH, lots=0.005), _eurusd())

    assert decision.disposition == HELD
    assert decision.signal_type == HOLD
    assert decision.entry is None
    assert [kind for kind, _, _, _ in decision.risk_adjustments] == [CANCELLED]
    assert _fails(decision) == 1
    # Nobody judged the risk EXTREME (risk_level is not EXTREME): the size is below the minimum.
    assert decision.risk_level != EXTREME
    assert decision.reason == S.DISPOSITION_REASON_SIZE_BELOW_MINIMUM


@pytest.mark.parametrize("apply", ["assessment", "fallback"])
def test_non_actionable_decisions_only_get_a_status(apply: str) -> None:
    decision = run(prediction(), context(tier=PRO, open_positions=10))
    trace = list(decision.trace)

    if apply == "assessment":
        apply_assessment(decision, _assessment(EXTREME, lots=0.1), _eurusd())
        assert decision.risk_status == S.RISK_STATUS_ASSESSED
    else:
        apply_fallback(decision, CONSERVATIVE, S.RISK_STATUS_ERROR_FALLBACK, _eurusd(), "down")
        assert decision.risk_status == S.RISK_STATUS_ERROR_FALLBACK

    assert decision.trace == trace
    assert decision.risk_adjustments == []
    assert decision.reason == S.DISPOSITION_REASON_POSITION_LIMIT_REACHED
