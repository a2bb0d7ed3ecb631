"""Decision figures the health report and the metrics show: totals, the last minute, today,
what was decided, and how long it took."""

from __future__ import annotations

import collections
import dataclasses
from collections.abc import Sequence
from typing import Final

from trading_engine.core.decision import Decision

_NANOS_PER_SECOND: Final = 1_000_000_000
_NANOS_PER_DAY: Final = 86_400 * _NANOS_PER_SECOND
_WINDOW_SECONDS: Final = 60
# A user is active with a batch in the current minute or the 5 before it.
_NANOS_PER_MINUTE: Final = 60 * _NANOS_PER_SECOND
_ACTIVE_MINUTES: Final = 5
# Upper bounds, in seconds, of the time to decide one batch (decode to encode). Not Final:
# mypyc leaves a Final tuple of floats unset at run time.
BATCH_SECONDS_BOUNDS: tuple[float, ...] = (
    0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05,
)  # fmt: skip
# Upper bounds, in seconds, of a batch's age when decided: from when ML-Processing
# produced it, so it includes the bus.
AGE_SECONDS_BOUNDS: tuple[float, ...] = (0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0)


class Histogram:
    """Counts per bucket of fixed upper bounds (the last bucket is everything above)."""

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)
        self.total = 0.0

    def observe(self, value: float) -> None:
        index = 0
        for bound in self.bounds:
            if value <= bound:
                break
            index += 1
        self.counts[index] += 1
        self.total += value


@dataclasses.dataclass(frozen=True)
class DecisionFigures:
    predictions_decided: int
    # Over the last minute; 0 when nothing was decided in it.
    average_decision_time_us: float
    decisions_per_second: float
    # Actionable signals since midnight UTC.
    signals_today: int
    # Users with a batch decided in the current minute or the 5 before it.
    active_users: int
    # Mean time to encode one signal over the last minute; 0 when nothing was encoded.
    average_serialization_time_us: float


class DecisionStats:
    """Counts decisions in one-second buckets; reads are O(60)."""

    def __init__(self) -> None:
        self.predictions_decided = 0
        # second -> [predictions, elapsed nanoseconds, signals encoded, encoding nanoseconds]
        self._seconds: collections.OrderedDict[int, list[int]] = collections.OrderedDict()
        self._day = 0
        self._signals_today = 0
        self.batch_seconds = Histogram(BATCH_SECONDS_BOUNDS)
        self.age_seconds = Histogram(AGE_SECONDS_BOUNDS)
        # _outcome_code(disposition, signal type, reason) -> decisions: an int key costs far
        # less per decision than building and hashing a tuple.
        self._outcome_counts: dict[int, int] = {}
        # minute -> the users with a batch decided in it, for the last few minutes. Whole
        # minutes: forgetting the oldest is one drop a minute, not a scan over every user.
        self._users_by_minute: collections.OrderedDict[int, set[tuple[str, str]]] = (
            collections.OrderedDict()
        )

    def record(
        self,
        predictions: int,
        actionable: int,
        elapsed_ns: int,
        now_ns: int,
        produced_ns: int = 0,
        decisions: Sequence[Decision] = (),
        tenant: tuple[str, str] = ("", ""),
        encode_ns: int = 0,
    ) -> None:
        """One batch: `decisions` are those made now (and encoded in `encode_ns`), for `tenant`.

        `produced_ns` is 0 when the batch says nothing of when it was produced.
        """
        minute = now_ns // _NANOS_PER_MINUTE
        users = self._users_by_minute.get(minute)
        if users is None:
            users = self._users_by_minute[minute] = set()
            while len(self._users_by_minute) > _ACTIVE_MINUTES + 1:
                self._users_by_minute.popitem(last=False)
        users.add(tenant)
        self.batch_seconds.observe(elapsed_ns / _NANOS_PER_SECOND)
        if produced_ns:
            self.age_seconds.observe(max(now_ns - produced_ns, 0) / _NANOS_PER_SECOND)
        counts = self._outcome_counts
        for decision in decisions:
            code = _outcome_code(decision.disposition, decision.signal_type, decision.reason)
            counts[code] = counts.get(code, 0) + 1
        self.predictions_decided += predictions
        second = now_ns // _NANOS_PER_SECOND
        bucket = self._seconds.get(second)
        if bucket is None:
            bucket = self._seconds[second] = [0, 0, 0, 0]
            while len(self._seconds) > _WINDOW_SECONDS + 1:
                self._seconds.popitem(last=False)
        bucket[0] += predictions
        bucket[1] += elapsed_ns
        bucket[2] += len(decisions)
        bucket[3] += encode_ns
        day = now_ns // _NANOS_PER_DAY
        if day != self._day:
            self._day, self._signals_today = day, 0
        self._signals_today += actionable

    @property
    def outcomes(self) -> dict[tuple[int, int, int], int]:
        """(disposition, signal type, reason) -> decisions so far."""
        # A snapshot: /metrics reads it from its own thread while batches are recorded.
        return {
            (code >> 32, (code >> 16) & 0xFFFF, code & 0xFFFF): count
            for code, count in list(self._outcome_counts.items())
        }

    def figures(self, now_ns: int) -> DecisionFigures:
        since = now_ns // _NANOS_PER_SECOND - _WINDOW_SECONDS
        predictions = elapsed = encoded = encoding = 0
        # Snapshots: /metrics reads these from its own thread while batches are recorded.
        for second, bucket in list(self._seconds.items()):
            if second > since:
                predictions += bucket[0]
                elapsed += bucket[1]
                encoded += bucket[2]
                encoding += bucket[3]
        first_minute = now_ns // _NANOS_PER_MINUTE - _ACTIVE_MINUTES
        active: set[tuple[str, str]] = set()
        for minute, users in list(self._users_by_minute.items()):
            if minute >= first_minute:
                active |= users
        return DecisionFigures(
            self.predictions_decided,
            elapsed / predictions / 1_000 if predictions else 0.0,
            predictions / _WINDOW_SECONDS,
            self._signals_today if now_ns // _NANOS_PER_DAY == self._day else 0,
            len(active),
            encoding / encoded / 1_000 if encoded else 0.0,
        )


def _outcome_code(disposition: int, signal_type: int, reason: int) -> int:
    """The three enum values in one int, 16 bits each (proto enums here stay far below)."""
    return (disposition << 32) | (signal_type << 16) | reason
