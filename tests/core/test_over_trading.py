"""Over-trading rules: the open-position limit, duplicate suppression and the rate limit."""

from __future__ import annotations

import pytest

from tests.core.builders import (
    DOWN,
    FREE,
    MINUTE_NS,
    NOW_NS,
    PRO,
    SECOND_NS,
    UP,
    WEAK_UP,
    context,
    prediction,
    run,
    step,
    strategy,
)
from tradeflow.trading.v1 import signal_pb2
from trading_engine.core.decision import ACTIONABLE, FAIL, HELD, HOLD, PASS, SUPPRESSED, Decision
from trading_engine.core.market import MarketBook
from trading_engine.core.memory import SignalMemory
from trading_engine.core.strategy import Strategy

S = signal_pb2

# --- Position limit --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("tier", "overrides", "open_positions", "cap", "held"),
    [
        pytest.param(FREE, {}, 2, 3, False, id="free-one-below"),
        pytest.param(FREE, {}, 3, 3, True, id="free-at-limit"),
        pytest.param(FREE, {}, 4, 3, True, id="free-above-limit"),
        pytest.param(PRO, {}, 9, 10, False, id="pro-one-below"),
        pytest.param(PRO, {}, 10, 10, True, id="pro-at-limit"),
        pytest.param(PRO, {"max_position_count": 0}, 0, 0, True, id="no-positions-allowed"),
    ],
)
def test_position_limit(
    tier: int, overrides: dict[str, int], open_positions: int, cap: int, held: bool
) -> None:
    decision = run(
        prediction(), context(strategy(tier, **overrides), open_positions=open_positions)
    )

    line = step(decision, S.DECISION_RULE_POSITION_LIMIT)
    assert line[2:4] == (float(open_positions), float(cap))
    if held:
        assert line[1] == FAIL
        assert decision.disposition == HELD
        assert decision.reason == S.DISPOSITION_REASON_POSITION_LIMIT_REACHED
        assert decision.signal_type == HOLD
        assert decision.entry is None
        assert decision.trace[-1] is line
        assert f"max_position_count {cap}" in decision.cancellation_reason
    else:
        assert line[1] == PASS
        assert decision.disposition == ACTIONABLE


# --- Duplicates ------------------------------------------------------------------------------


def _second_after_first(
    *,
    symbol: str = "EURUSD",
    first_price: float,
    second_price: float,
    second_direction: int = UP,
    second_symbol: str | None = None,
    after_ns: int = 10 * SECOND_NS,
    chosen: Strategy | None = None,
    second_user: str = "user-1",
    second_company: str = "company-1",
) -> tuple[Decision, Decision]:
    """Two signals for one user, the second `after_ns` later; both decided on shared memory."""
    book, memory = MarketBook(), SignalMemory()
    first = run(
        prediction(prediction_id="p-1", symbol=symbol, price=first_price),
        context(chosen, tier=PRO),
        book,
        memory,
    )
    assert first.disposition == ACTIONABLE
    at = NOW_NS + after_ns
    second = run(
        prediction(
            prediction_id="p-2",
            symbol=second_symbol or symbol,
            price=second_price,
            direction=second_direction,
            at_ns=at,
        ),
        context(
            chosen,
            tier=PRO,
            now_ns=at,
            produced_ns=at,
            user_id=second_user,
            company_id=second_company,
        ),
        book,
        memory,
    )
    return first, second


@pytest.mark.parametrize(
    ("symbol", "first_price", "second_price", "distance"),
    [
        pytest.param("EURUSD", 1.1, 1.1, 0.0, id="EURUSD-same-price"),
        pytest.param("EURUSD", 1.1, 1.1005, 5.0, id="EURUSD-5-pips-higher"),
        pytest.param("EURUSD", 1.1, 1.0995, 5.0, id="EURUSD-5-pips-lower"),
        # Five yen pips are 0.05 JPY: the tolerance is in the instrument's pips.
        pytest.param("USDJPY", 150.0, 150.05, 5.0, id="USDJPY-5-yen-pips"),
        pytest.param("USDJPY", 150.0, 149.97, 3.0, id="USDJPY-3-yen-pips-lower"),
    ],
)
def test_duplicate_within_tolerance_is_suppressed(
    symbol: str, first_price: float, second_price: float, distance: float
) -> None:
    first, second = _second_after_first(
        symbol=symbol, first_price=first_price, second_price=second_price
    )

    assert second.disposition == SUPPRESSED
    assert second.reason == S.DISPOSITION_REASON_DUPLICATE_SIGNAL
    assert second.signal_type == HOLD
    assert second.entry is None
    assert second.trace[-1] == (
        S.DECISION_RULE_DUPLICATE,
        FAIL,
        distance,
        5.0,
        f"of {first.signal_id}",
    )
    assert second.cancellation_reason == (
        f"signal {first.signal_id} on the same side was issued 10.0 s ago {distance:.1f} pips away"
    )


@pytest.mark.parametrize(
    ("symbol", "first_price", "second_price"),
    [
        pytest.param("EURUSD", 1.1, 1.10051, id="EURUSD-5.1-pips"),
        pytest.param("EURUSD", 1.1, 1.09949, id="EURUSD-5.1-pips-lower"),
        pytest.param("USDJPY", 150.0, 150.051, id="USDJPY-5.1-yen-pips"),
    ],
)
def test_just_outside_the_tolerance_is_actionable(
    symbol: str, first_price: float, second_price: float
) -> None:
    _, second = _second_after_first(
        symbol=symbol, first_price=first_price, second_price=second_price
    )

    assert second.disposition == ACTIONABLE
    assert step(second, S.DECISION_RULE_DUPLICATE)[1:] == (
        PASS,
        0.0,
        5.0,
        "no similar recent signal",
    )


@pytest.mark.parametrize(
    ("after_ns", "suppressed"),
    [
        pytest.param(5 * MINUTE_NS - SECOND_NS, True, id="4m59s-inside-window"),
        pytest.param(5 * MINUTE_NS + SECOND_NS, False, id="5m01s-after-window"),
    ],
)
def test_duplicate_window(after_ns: int, suppressed: bool) -> None:
    _, second = _second_after_first(first_price=1.1, second_price=1.1, after_ns=after_ns)

    assert (second.disposition == SUPPRESSED) is suppressed
    assert (second.reason == S.DISPOSITION_REASON_DUPLICATE_SIGNAL) is suppressed


def test_duplicate_window_follows_the_strategy() -> None:
    short = strategy(PRO, duplicate_window_ns=MINUTE_NS)
    _, second = _second_after_first(
        first_price=1.1, second_price=1.1, after_ns=61 * SECOND_NS, chosen=short
    )

    assert second.disposition == ACTIONABLE


@pytest.mark.parametrize(
    ("second_direction", "second_symbol", "second_user", "suppressed"),
    [
        pytest.param(DOWN, None, "user-1", False, id="opposite-side"),
        pytest.param(WEAK_UP, None, "user-1", True, id="weak-same-side"),
        pytest.param(UP, "GBPUSD", "user-1", False, id="other-symbol"),
        pytest.param(UP, None, "user-2", False, id="other-user"),
    ],
)
def test_duplicates_are_per_user_symbol_and_side(
    second_direction: int, second_symbol: str | None, second_user: str, suppressed: bool
) -> None:
    _, second = _second_after_first(
        first_price=1.1,
        second_price=1.1,
        second_direction=second_direction,
        second_symbol=second_symbol,
        second_user=second_user,
    )

    assert (second.disposition == SUPPRESSED) is suppressed


def test_the_same_user_id_in_another_company_is_another_trader() -> None:
    # User ids are unique within a company only: rival's user-1 is not acme's.
    _, second = _second_after_first(first_price=1.1, second_price=1.1, second_company="company-2")

    assert second.disposition == ACTIONABLE


def test_zero_tolerance_suppresses_only_the_same_price() -> None:
    exact = strategy(PRO, duplicate_price_tolerance_pips=0.0)
    _, same = _second_after_first(first_price=1.1, second_price=1.1, chosen=exact)
    _, moved = _second_after_first(first_price=1.1, second_price=1.10001, chosen=exact)

    assert same.reason == S.DISPOSITION_REASON_DUPLICATE_SIGNAL
    assert moved.disposition == ACTIONABLE


def test_suppressed_and_held_signals_are_not_remembered() -> None:
    book, memory = MarketBook(), SignalMemory()

    def at(seconds: int, prediction_id: str, open_positions: int = 0) -> Decision:
        when = NOW_NS + seconds * SECOND_NS
        return run(
            prediction(prediction_id=prediction_id, at_ns=when),
            context(tier=PRO, now_ns=when, produced_ns=when, open_positions=open_positions),
            book,
            memory,
        )

    # Held at the position limit: not a signal, so not a duplicate source.
    assert at(0, "held", open_positions=10).disposition == HELD
    assert at(1, "first").disposition == ACTIONABLE
    assert at(100, "dup").reason == S.DISPOSITION_REASON_DUPLICATE_SIGNAL
    # 301 s after the first: the suppressed one at 100 s does not extend the window.
    assert at(302, "later").disposition == ACTIONABLE


# --- Rate limit ------------------------------------------------------------------------------


def _issue(
    memory: SignalMemory, index: int, at_ns: int, chosen: Strategy, symbol: str = "EURUSD"
) -> Decision:
    """One signal at its own price (10 pips apart, no duplicates), on a fresh market book."""
    price = (1.1 if symbol == "EURUSD" else 1.25) + index * 0.001
    message = prediction(prediction_id=f"r-{index}", symbol=symbol, price=price, at_ns=at_ns)
    return run(message, context(chosen, now_ns=at_ns, produced_ns=at_ns), MarketBook(), memory)


def test_rate_limit_suppresses_after_max_signals_per_minute() -> None:
    memory, free = SignalMemory(), strategy(FREE)
    for index in range(10):
        issued = _issue(memory, index, NOW_NS + index * SECOND_NS, free)
        assert issued.disposition == ACTIONABLE
        assert step(issued, S.DECISION_RULE_RATE_LIMIT)[1:4] == (PASS, float(index), 10.0)

    limited = _issue(memory, 10, NOW_NS + 10 * SECOND_NS, free)

    assert limited.disposition == SUPPRESSED
    assert limited.reason == S.DISPOSITION_REASON_RATE_LIMITED
    assert limited.signal_type == HOLD
    assert limited.entry is None
    assert limited.trace[-1][:4] == (S.DECISION_RULE_RATE_LIMIT, FAIL, 10.0, 10.0)
    assert "max_signals_per_minute 10" in limited.cancellation_reason


@pytest.mark.parametrize(
    ("later_ns", "allowed"),
    [
        pytest.param(59 * SECOND_NS, False, id="59s-later-still-limited"),
        pytest.param(60 * SECOND_NS, True, id="60s-later-allowed-again"),
    ],
)
def test_rate_limit_window_is_one_minute(later_ns: int, allowed: bool) -> None:
    # A burst of max_signals_per_minute at one instant, then one more signal later.
    memory, free = SignalMemory(), strategy(FREE)
    for index in range(10):
        assert _issue(memory, index, NOW_NS, free).disposition == ACTIONABLE

    later = _issue(memory, 10, NOW_NS + later_ns, free)

    assert (later.disposition == ACTIONABLE) is allowed
    if not allowed:
        assert later.reason == S.DISPOSITION_REASON_RATE_LIMITED


def test_rate_limit_counts_every_symbol_of_the_user() -> None:
    memory, limited = SignalMemory(), strategy(PRO, max_signals_per_minute=2)
    assert _issue(memory, 0, NOW_NS, limited).disposition == ACTIONABLE
    assert _issue(memory, 1, NOW_NS, limited, symbol="GBPUSD").disposition == ACTIONABLE

    third = _issue(memory, 2, NOW_NS + SECOND_NS, limited)

    assert third.reason == S.DISPOSITION_REASON_RATE_LIMITED
    assert third.trace[-1][:4] == (S.DECISION_RULE_RATE_LIMIT, FAIL, 2.0, 2.0)


def test_suppressed_signals_do_not_count_towards_the_rate_limit() -> None:
    memory, limited = SignalMemory(), strategy(PRO, max_signals_per_minute=2)
    assert _issue(memory, 0, NOW_NS, limited).disposition == ACTIONABLE
    assert _issue(memory, 1, NOW_NS, limited).disposition == ACTIONABLE
    for index in range(2, 5):
        assert _issue(memory, index, NOW_NS + 30 * SECOND_NS, limited).disposition == SUPPRESSED

    # The two actionable ones have aged out; the three suppressed ones never counted.
    assert _issue(memory, 5, NOW_NS + 61 * SECOND_NS, limited).disposition == ACTIONABLE


def test_idle_users_are_forgotten_and_active_ones_keep_their_signals() -> None:
    # The same user id in two companies is two users; only the one idle past the window goes.
    memory, free = SignalMemory(), strategy(FREE)
    for company, at_ns in (("acme", NOW_NS), ("globex", NOW_NS + 4 * MINUTE_NS)):
        message = prediction(prediction_id=f"{company}-1", price=1.1, at_ns=at_ns)
        chosen = context(free, company_id=company, now_ns=at_ns, produced_ns=at_ns)
        assert run(message, chosen, MarketBook(), memory).disposition == ACTIONABLE
    assert memory.users == 2

    memory.forget_idle(NOW_NS + 5 * MINUTE_NS, keep_ns=2 * MINUTE_NS)

    assert memory.users == 1
    # globex's user still has its signal: the same view a second later is a duplicate.
    at_ns = NOW_NS + 4 * MINUTE_NS + SECOND_NS
    again = prediction(prediction_id="globex-2", price=1.1, at_ns=at_ns)
    kept = context(free, company_id="globex", now_ns=at_ns, produced_ns=at_ns)
    assert run(again, kept, MarketBook(), memory).reason == S.DISPOSITION_REASON_DUPLICATE_SIGNAL

    memory.forget_idle(NOW_NS + 10 * MINUTE_NS, keep_ns=2 * MINUTE_NS)
    assert memory.users == 0
