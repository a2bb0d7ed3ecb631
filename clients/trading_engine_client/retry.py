"""When and how soon a failed call is tried again; one policy for both clients."""

from __future__ import annotations

import dataclasses
import random

from trading_engine_client.errors import TradingEngineError


@dataclasses.dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Bounded retries with exponential backoff and jitter, for transient failures only.

    A client applies it only to calls the engine may receive twice without
    harm (each method's docstring says whether it is retried), and only after
    an error whose `retriable` flag is set: UNAVAILABLE and DEADLINE_EXCEEDED.
    The wait before retry n (n = 1, 2, ...) is
    `min(max_backoff, initial_backoff * multiplier ** (n - 1))`, shortened by
    a random share of up to `jitter`, so that clients failed by the same
    outage do not all come back at the same instant.

    Each attempt gets the call's full `timeout`: a call retried after
    DEADLINE_EXCEEDED gets a whole new deadline, so a call takes at most
    `max_attempts * timeout` plus the waits.
    """

    max_attempts: int = 5
    initial_backoff: float = 0.2
    max_backoff: float = 3.0
    multiplier: float = 2.0
    jitter: float = 0.5

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError(f"max_attempts must be at least 1, not {self.max_attempts}")
        if not 0 < self.initial_backoff <= self.max_backoff:
            raise ValueError("backoffs must satisfy 0 < initial_backoff <= max_backoff")
        if self.multiplier < 1:
            raise ValueError(f"multiplier must be at least 1, not {self.multiplier}")
        if not 0 <= self.jitter <= 1:
            raise ValueError(f"jitter must be in [0, 1], not {self.jitter}")

    def backoff(self, attempt: int, error: TradingEngineError) -> float | None:
        """Seconds to wait after attempt number `attempt` failed with `error`; None: give up."""
        if not error.retriable or attempt >= self.max_attempts:
            return None
        ceiling = min(self.max_backoff, self.initial_backoff * self.multiplier ** (attempt - 1))
        return ceiling * (1 - self.jitter * random.random())

    def channel_options(self) -> list[tuple[str, int]]:
        """Channel options that make gRPC reconnect on the same schedule as the retries.

        gRPC's own reconnect backoff starts at 1 s and grows to 2 minutes;
        while it waits, every call fails at once, so a retry after an engine
        restart would meet a channel that has not tried to reconnect yet.
        """
        return [
            ("grpc.initial_reconnect_backoff_ms", round(self.initial_backoff * 1000)),
            ("grpc.max_reconnect_backoff_ms", round(self.max_backoff * 1000)),
        ]


NO_RETRIES = RetryPolicy(max_attempts=1)
DEFAULT_RETRY = RetryPolicy()
