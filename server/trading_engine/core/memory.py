"""What each user was recently signalled: for duplicate suppression and the rate limit.

Both checks are on the hot path, so neither scans a user's whole history:
the rate limit keeps one timestamp per actionable signal of the last minute
(its length is the count), and duplicates are looked up among the user's
recent signals for the same instrument and side only.
"""

from __future__ import annotations

from collections import deque
from typing import Final

RATE_WINDOW_NS: Final = 60_000_000_000


class RecentSignal:
    """An actionable signal, as duplicate suppression remembers it."""

    __slots__ = ("at_ns", "entry_ticks", "signal_id")

    def __init__(self, at_ns: int, entry_ticks: int, signal_id: str) -> None:
        self.at_ns = at_ns
        # Entry price in the instrument's ticks.
        self.entry_ticks = entry_ticks
        self.signal_id = signal_id


class UserMemory:
    """One user's recent actionable signals."""

    __slots__ = ("_by_instrument", "_issued", "last_ns")

    def __init__(self) -> None:
        # Times of actionable signals in the last minute, oldest first.
        self._issued: deque[int] = deque()
        # Recent signals per (symbol, side), oldest first.
        self._by_instrument: dict[tuple[str, int], deque[RecentSignal]] = {}
        self.last_ns = 0

    def issued_last_minute(self, now_ns: int) -> int:
        """Actionable signals in the minute before `now_ns`; one exactly a minute old is out."""
        issued = self._issued
        horizon = now_ns - RATE_WINDOW_NS
        while issued and issued[0] <= horizon:
            issued.popleft()
        return len(issued)

    def find_duplicate(
        self, symbol: str, side: int, entry_ticks: int, since_ns: int, tolerance_ticks: int
    ) -> RecentSignal | None:
        """The newest same-symbol, same-side signal after `since_ns` within the tolerance."""
        signals = self._by_instrument.get((symbol, side))
        if not signals:
            return None
        while signals and signals[0].at_ns <= since_ns:
            signals.popleft()
        for signal in reversed(signals):
            if abs(signal.entry_ticks - entry_ticks) <= tolerance_ticks:
                return signal
        return None

    def remember(self, symbol: str, side: int, signal: RecentSignal) -> None:
        self._issued.append(signal.at_ns)
        key = (symbol, side)
        signals = self._by_instrument.get(key)
        if signals is None:
            signals = self._by_instrument[key] = deque()
        signals.append(signal)
        self.last_ns = signal.at_ns


class SignalMemory:
    """Every user's recent signals; users idle for longer than the longest window are forgotten.

    Keyed by company, then user: user ids are only unique within a company, and two
    lookups by string cost less than hashing a (company, user) tuple per prediction.
    """

    def __init__(self) -> None:
        self._companies: dict[str, dict[str, UserMemory]] = {}

    def user(self, company_id: str, user_id: str) -> UserMemory:
        users = self._companies.get(company_id)
        if users is None:
            users = self._companies[company_id] = {}
        memory = users.get(user_id)
        if memory is None:
            memory = users[user_id] = UserMemory()
        return memory

    def forget_idle(self, now_ns: int, keep_ns: int) -> None:
        horizon = now_ns - keep_ns
        for company_id, users in list(self._companies.items()):
            for user_id in [user for user, memory in users.items() if memory.last_ns < horizon]:
                del users[user_id]
            if not users:
                del self._companies[company_id]

    @property
    def users(self) -> int:
        return sum(len(users) for users in self._companies.values())
