"""Protections in the decision core: trading states and the stop-loss cooldown."""

from __future__ import annotations

import pytest

from tests.core.builders import (
    DOWN,
    MINUTE_NS,
    NOW_NS,
    SECOND_NS,
    UP,
    context,
    prediction,
    rules,
    run,
    step,
    strategy,
)
from tradeflow.trading.v1 import signal_pb2
from trading_engine.core.decision import ACTIONABLE, FAIL, HELD, HOLD, PASS
from trading_engine.core.protections import (
    ACTIVE,
    HALTED,
    REDUCE_ONLY,
    Protection,
    stricter,
)

S = signal_pb2
LONG, SHORT = 1, -1


def protection(
    state: int = ACTIVE,
    why: str = "",
    open_positions: dict[tuple[str, int], int] | None = None,
    stop_outs: dict[tuple[str, int], int] | None = None,
) -> Protection:
    result = Protection()
    result.state = state
    result.why = why
    for (symbol, side), count in (open_positions or {}).items():
        for _ in range(count):
            result.opened(symbol, side)
    for (symbol, side), at_ns in (stop_outs or {}).items():
        result.stopped_out(symbol, side, at_ns)
    return result


def test_an_active_user_without_stop_outs_gets_no_protection_lines() -> None:
    decision = run(prediction(), context(protection=protection()))

    assert decision.disposition == ACTIONABLE
    assert S.DECISION_RULE_TRADING_STATE not in rules(decision)
    assert S.DECISION_RULE_COOLDOWN not in rules(decision)


def test_halted_holds_every_signal_and_says_who_halted_it() -> None:
    why = "trading is halted for company company-1 (set by ops-1: broker outage)"
    decision = run(prediction(direction=UP), context(protection=protection(HALTED, why)))

    assert decision.disposition == HELD
    assert decision.signal_type == HOLD
    assert decision.entry is None
    assert decision.reason == S.DISPOSITION_REASON_TRADING_HALTED
    assert decision.cancellation_reason == why
    assert step(decision, S.DECISION_RULE_TRADING_STATE)[1] == FAIL
    # The rules before it still ran and explain the signal that was held.
    assert step(decision, S.DECISION_RULE_STRENGTH)[1] == PASS


@pytest.mark.parametrize(
    ("direction", "open_positions", "actionable"),
    [
        pytest.param(UP, {}, False, id="nothing-open"),
        pytest.param(UP, {("EURUSD", LONG): 1}, False, id="adds-to-a-long"),
        pytest.param(UP, {("GBPUSD", SHORT): 1}, False, id="short-on-another-symbol"),
        pytest.param(UP, {("EURUSD", SHORT): 2}, True, id="buy-reduces-a-short"),
        pytest.param(DOWN, {("EURUSD", LONG): 1}, True, id="sell-reduces-a-long"),
    ],
)
def test_reduce_only_lets_through_only_signals_against_an_open_position(
    direction: int, open_positions: dict[tuple[str, int], int], actionable: bool
) -> None:
    guard = protection(REDUCE_ONLY, "trading is reduce-only for user user-1", open_positions)
    decision = run(prediction(symbol="EURUSD", direction=direction), context(protection=guard))

    line = step(decision, S.DECISION_RULE_TRADING_STATE)
    if actionable:
        assert decision.disposition == ACTIONABLE
        assert line[1] == PASS
        assert line[2] == float(sum(open_positions.values()))
    else:
        assert decision.disposition == HELD
        assert decision.reason == S.DISPOSITION_REASON_REDUCE_ONLY
        assert line[1] == FAIL
        assert "no open position on EURUSD on the other side" in decision.cancellation_reason


@pytest.mark.parametrize(
    ("stopped_ago_ns", "held"),
    [
        pytest.param(1 * SECOND_NS, True, id="just-stopped"),
        pytest.param(30 * MINUTE_NS - 1, True, id="one-ns-before-the-end"),
        pytest.param(30 * MINUTE_NS, False, id="exactly-over"),
        pytest.param(45 * MINUTE_NS, False, id="long-over"),
    ],
)
def test_the_cooldown_holds_the_same_side_for_stop_loss_cooldown(
    stopped_ago_ns: int, held: bool
) -> None:
    guard = protection(stop_outs={("EURUSD", LONG): NOW_NS - stopped_ago_ns})
    decision = run(prediction(symbol="EURUSD", direction=UP), context(protection=guard))

    line = step(decision, S.DECISION_RULE_COOLDOWN)
    # Seconds since the stop loss, against the 30-minute default.
    assert line[2:4] == (stopped_ago_ns / SECOND_NS, 1800.0)
    if held:
        assert decision.disposition == HELD
        assert decision.reason == S.DISPOSITION_REASON_STOP_LOSS_COOLDOWN
        assert line[1] == FAIL
        assert "long EURUSD position" in decision.cancellation_reason
        assert "stop_loss_cooldown is 1800 s" in decision.cancellation_reason
    else:
        assert decision.disposition == ACTIONABLE
        assert line[1] == PASS


def test_the_cooldown_leaves_the_other_side_and_other_symbols_alone() -> None:
    guard = protection(stop_outs={("EURUSD", LONG): NOW_NS - SECOND_NS})

    sell = run(prediction(symbol="EURUSD", direction=DOWN), context(protection=guard))
    other = run(prediction(symbol="GBPUSD", direction=UP), context(protection=guard))

    assert sell.disposition == ACTIONABLE
    assert other.disposition == ACTIONABLE
    assert S.DECISION_RULE_COOLDOWN not in rules(sell) + rules(other)


def test_a_zero_cooldown_switches_it_off() -> None:
    guard = protection(stop_outs={("EURUSD", LONG): NOW_NS - SECOND_NS})
    decision = run(
        prediction(symbol="EURUSD", direction=UP),
        context(strategy(stop_loss_cooldown_ns=0), protection=guard),
    )

    assert decision.disposition == ACTIONABLE
    assert step(decision, S.DECISION_RULE_COOLDOWN)[1] == PASS


def test_an_older_stop_out_report_never_moves_the_cooldown_back() -> None:
    guard = protection()
    guard.stopped_out("EURUSD", LONG, NOW_NS - SECOND_NS)
    guard.stopped_out("EURUSD", LONG, NOW_NS - 40 * MINUTE_NS)

    decision = run(prediction(symbol="EURUSD", direction=UP), context(protection=guard))

    assert decision.reason == S.DISPOSITION_REASON_STOP_LOSS_COOLDOWN


def test_open_positions_count_up_and_down_per_symbol_and_side() -> None:
    guard = protection(open_positions={("EURUSD", LONG): 2, ("EURUSD", SHORT): 1})
    guard.closed("EURUSD", LONG)
    guard.closed("GBPUSD", SHORT)  # not open: nothing to close

    assert guard.open_positions == 2
    assert guard.open_by_side == {("EURUSD", LONG): 1, ("EURUSD", SHORT): 1}


@pytest.mark.parametrize(
    ("first", "second", "expected"),
    [
        (ACTIVE, ACTIVE, ACTIVE),
        (0, 0, ACTIVE),
        (ACTIVE, REDUCE_ONLY, REDUCE_ONLY),
        (HALTED, REDUCE_ONLY, HALTED),
        (REDUCE_ONLY, HALTED, HALTED),
        (0, HALTED, HALTED),
    ],
)
def test_the_stricter_state_wins(first: int, second: int, expected: int) -> None:
    assert stricter(first, second) == expected
