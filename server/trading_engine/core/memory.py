"""What each user was recently signalled: for duplicate suppression and the rate limit.

Both checks are on the hot path, so neither scans a user's whole history:
the rate limit keeps one timestamp per actionable signal of the last minute
(its length is the count), and duplicates are looked up among the user's
recent signals for the same instrument and side only.
"""

from __future__ import annotations

import collections
import dataclasses

RATE_WINDOW_NS = 60_000_000_000


@dataclasses.dataclass(frozen=True, slots=True)
class RecentSignal:
    at_ns: int
    entry_price: float
    signal_id: str


class UserMemory:
    """One user's recent actionable signals."""

    __slots__ = ("_by_instrument", "_issued", "last_ns")

    def __init__(self) -> None:
        # Times of actionable signals in the last minute, oldest first.
        self._issued: collections.deque[int] = collections.deque()
        # Recent signals per (symbol, side), oldest first.
        self._by_instrument: dict[tuple[str, int], collections.deque[RecentSignal]] = {}
        self.last_ns = 0

    def issued_last_minute(self, now_ns: int) -> int:
        issued = self._issued
        horizon = now_ns - RATE_WINDOW_NS
        while issued and issued[0] < horizon:
            issued.popleft()
        return len(issued)

    def find_duplicate(
        self, symbol: str, side: int, entry_price: float, since_ns: int, tolerance: float
    ) -> RecentSignal | None:
        """The newest same-symbol, same-side signal since `since_ns` within `tolerance`."""
        signals = self._by_instrument.get((symbol, side))
        if not signals:
            return None
        while signals and signals[0].at_ns < since_ns:
            signals.popleft()
        for signal in reversed(signals):
            if abs(signal.entry_price - entry_price) <= tolerance:
                return signal
        return None

    def remember(self, symbol: str, side: int, signal: RecentSignal) -> None:
        self._issued.append(signal.at_ns)
        key = (symbol, side)
        signals = self._by_instrument.get(key)
        if signals is None:
            signals = self._by_instrument[key] = collections.deque()
        signals.append(signal)
        self.last_ns = signal.at_ns


class SignalMemory:
    """Every user's recent signals; users idle for longer than the longest window are forgotten."""

    def __init__(self) -> None:
        self._users: dict[str, UserMemory] = {}

    def user(self, user_id: str) -> UserMemory:
        memory = self._users.get(user_id)
        if memory is None:
            memory = self._users[user_id] = UserMemory()
        return memory

    def forget_idle(self, now_ns: int, keep_ns: int) -> None:
        horizon = now_ns - keep_ns
        for user_id in [u for u, memory in self._users.items() if memory.last_ns < horizon]:
            del self._users[user_id]

    @property
    def users(self) -> int:
        return len(self._users)
