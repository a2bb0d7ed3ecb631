"""Decision figures the health report shows: totals, the last minute, and today."""

from __future__ import annotations

import collections
import dataclasses
from typing import Final

_NANOS_PER_SECOND: Final = 1_000_000_000
_NANOS_PER_DAY: Final = 86_400 * _NANOS_PER_SECOND
_WINDOW_SECONDS: Final = 60


@dataclasses.dataclass(frozen=True)
class DecisionFigures:
    predictions_decided: int
    # Over the last minute; 0 when nothing was decided in it.
    average_decision_time_us: float
    decisions_per_second: float
    # Actionable signals since midnight UTC.
    signals_today: int


class DecisionStats:
    """Counts decisions in one-second buckets; reads are O(60)."""

    def __init__(self) -> None:
        self.predictions_decided = 0
        # second -> [predictions, elapsed nanoseconds]
        self._seconds: collections.OrderedDict[int, list[int]] = collections.OrderedDict()
        self._day = 0
        self._signals_today = 0

    def record(self, predictions: int, actionable: int, elapsed_ns: int, now_ns: int) -> None:
        self.predictions_decided += predictions
        second = now_ns // _NANOS_PER_SECOND
        bucket = self._seconds.get(second)
        if bucket is None:
            bucket = self._seconds[second] = [0, 0]
            while len(self._seconds) > _WINDOW_SECONDS + 1:
                self._seconds.popitem(last=False)
        bucket[0] += predictions
        bucket[1] += elapsed_ns
        day = now_ns // _NANOS_PER_DAY
        if day != self._day:
            self._day, self._signals_today = day, 0
        self._signals_today += actionable

    def figures(self, now_ns: int) -> DecisionFigures:
        since = now_ns // _NANOS_PER_SECOND - _WINDOW_SECONDS
        predictions = elapsed = 0
        for second, (count, nanos) in self._seconds.items():
            if second > since:
                predictions += count
                elapsed += nanos
        return DecisionFigures(
            self.predictions_decided,
            elapsed / predictions / 1_000 if predictions else 0.0,
            predictions / _WINDOW_SECONDS,
            self._signals_today if now_ns // _NANOS_PER_DAY == self._day else 0,
        )
