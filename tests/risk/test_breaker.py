"""The circuit breaker's states, with a clock the test moves."""

from __future__ import annotations

import pytest

from trading_engine.risk.breaker import BreakerState, CircuitBreaker


class _Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _state(breaker: CircuitBreaker) -> BreakerState:
    # Read through a call: the state changes between reads, which mypy cannot know of a property.
    return breaker.state


def _breaker(clock: _Clock, failures: int = 3, reset_s: float = 10.0) -> CircuitBreaker:
    return CircuitBreaker(failures, reset_s, clock)


def test_opens_after_the_threshold_of_failures_in_a_row_and_refuses_calls() -> None:
    clock = _Clock()
    breaker = _breaker(clock)
    for _ in range(2):
        assert breaker.admit()
        breaker.failed("UNAVAILABLE: down")
    assert _state(breaker) is BreakerState.CLOSED
    assert breaker.admit()
    breaker.failed("DEADLINE_EXCEEDED: slow")
    assert _state(breaker) is BreakerState.OPEN
    assert breaker.times_opened == 1
    assert breaker.last_failure == "DEADLINE_EXCEEDED: slow"
    assert not breaker.admit()
    assert breaker.seconds_until_trial() == pytest.approx(10.0)


def test_a_success_resets_the_count_of_failures() -> None:
    breaker = _breaker(_Clock())
    for _ in range(5):
        assert breaker.admit()
        breaker.failed("UNAVAILABLE")
        assert breaker.admit()
        breaker.succeeded()
    assert _state(breaker) is BreakerState.CLOSED
    assert breaker.times_opened == 0


def test_half_open_lets_exactly_one_trial_through_however_many_ask() -> None:
    clock = _Clock()
    breaker = _breaker(clock, failures=1)
    breaker.admit()
    breaker.failed("UNAVAILABLE")
    clock.now += 9.9
    assert not breaker.admit()
    clock.now += 0.1
    assert _state(breaker) is BreakerState.HALF_OPEN
    admitted = [breaker.admit() for _ in range(10)]
    assert admitted == [True] + [False] * 9
    breaker.succeeded()
    assert _state(breaker) is BreakerState.CLOSED
    assert all(breaker.admit() for _ in range(3))


def test_a_failed_trial_opens_the_breaker_for_another_full_timeout() -> None:
    clock = _Clock()
    breaker = _breaker(clock, failures=3, reset_s=5.0)
    for _ in range(3):
        breaker.admit()
        breaker.failed("UNAVAILABLE")
    clock.now += 5.0
    assert breaker.admit()
    breaker.failed("UNAVAILABLE: still down")
    assert _state(breaker) is BreakerState.OPEN
    assert breaker.times_opened == 2
    clock.now += 4.9
    assert not breaker.admit()
    clock.now += 0.1
    assert breaker.admit()


@pytest.mark.parametrize(("failures", "reset_s"), [(0, 1.0), (1, 0.0)])
def test_refuses_settings_that_would_never_close_or_never_open(
    failures: int, reset_s: float
) -> None:
    with pytest.raises(ValueError, match="must be"):
        CircuitBreaker(failures, reset_s)
