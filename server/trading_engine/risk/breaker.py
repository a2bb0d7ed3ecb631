"""A circuit breaker that lets exactly one trial call through when half-open.

Written here rather than taken from a library (decision 13): the breaker is
asked before a call and told how it ended, so it works the same around any
coroutine, and half-open admits one trial however many calls arrive at once.
"""

from __future__ import annotations

import enum
import time
from collections.abc import Callable


class BreakerState(enum.Enum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half-open"


class CircuitBreaker:
    """Closed until `failure_threshold` calls fail in a row; open for `reset_timeout_s`;
    then half-open: one trial call decides between closed and open again."""

    def __init__(
        self,
        failure_threshold: int,
        reset_timeout_s: float,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        if failure_threshold < 1:
            raise ValueError("failure_threshold must be at least 1")
        if reset_timeout_s <= 0:
            raise ValueError("reset_timeout_s must be positive")
        self.failure_threshold = failure_threshold
        self.reset_timeout_s = reset_timeout_s
        self._monotonic = monotonic
        self._state = BreakerState.CLOSED
        self._consecutive_failures = 0
        self._opened_at = 0.0
        self._trial_in_flight = False
        # Times the breaker opened, and the failure that last opened it or kept it open.
        self.times_opened = 0
        self.last_failure = ""

    @property
    def state(self) -> BreakerState:
        """The state now; an open breaker whose timeout has passed reads as half-open."""
        if (
            self._state is BreakerState.OPEN
            and self._monotonic() - self._opened_at >= self.reset_timeout_s
        ):
            self._state = BreakerState.HALF_OPEN
        return self._state

    def admit(self) -> bool:
        """Whether a call may go ahead now; if so, report how it ended: `succeeded` or `failed`."""
        state = self.state
        if state is BreakerState.CLOSED:
            return True
        if state is BreakerState.HALF_OPEN and not self._trial_in_flight:
            self._trial_in_flight = True
            return True
        return False

    def succeeded(self) -> None:
        self._trial_in_flight = False
        self._consecutive_failures = 0
        self._state = BreakerState.CLOSED

    def failed(self, why: str) -> None:
        self.last_failure = why
        self._consecutive_failures += 1
        trial_failed = self._trial_in_flight
        self._trial_in_flight = False
        if trial_failed or (
            self._state is BreakerState.CLOSED
            and self._consecutive_failures >= self.failure_threshold
        ):
            self._open()

    def _open(self) -> None:
        self._state = BreakerState.OPEN
        self._opened_at = self._monotonic()
        self.times_opened += 1

    def seconds_until_trial(self) -> float:
        """How long an open breaker stays open; 0 when it is not open."""
        if self.state is not BreakerState.OPEN:
            return 0.0
        return max(0.0, self.reset_timeout_s - (self._monotonic() - self._opened_at))
