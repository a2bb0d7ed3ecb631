"""Trading states, open positions and stop-outs as they stood at each decision of a replay.

Built from what the store recorded for the company: every execution result
in the order it was recorded, and every audited trading-state change. Before
a batch is decided, the events recorded up to its decision time are applied
(from the company's first, since positions opened before the window still
count), through the same bookkeeping the live engine uses
(`executions.follow_position`, `protections.state_in_force`).
"""

from __future__ import annotations

import dataclasses
import heapq

from tradeflow.trading.v1 import execution_pb2, signal_pb2
from trading_engine.core import instruments
from trading_engine.core.instruments import DEFAULT_CURRENCY
from trading_engine.core.outcomes import facts_of, outcome_of
from trading_engine.core.protections import Protection
from trading_engine.executions import follow_position
from trading_engine.protections import setting_from_audit, state_in_force
from trading_engine.stores.base import ExecutionRecord, Store, TradingStateRecord

_COMPANY = ""


@dataclasses.dataclass(frozen=True)
class _Result:
    record: ExecutionRecord
    signal: signal_pb2.TradingSignal


class RecordedProtections:
    """The engine's ProtectionSource for a replay of one company's stored session."""

    def __init__(self, results: list[_Result], settings: list[TradingStateRecord]) -> None:
        # (time, kind, order recorded, event): at one instant, results before state changes.
        events: list[tuple[int, int, int, _Result | TradingStateRecord]] = [
            (result.record.recorded_at_ns, 0, index, result) for index, result in enumerate(results)
        ] + [(setting.changed_at_ns, 1, index, setting) for index, setting in enumerate(settings)]
        heapq.heapify(events)
        self._events = events
        self._all = tuple(results)
        self._users: dict[tuple[str, str], Protection] = {}
        self._settings: dict[tuple[str, str], TradingStateRecord] = {}
        self._open: set[str] = set()
        # signal id -> its results so far, as the live tracker reads them from the store.
        self._results: dict[str, list[execution_pb2.ExecutionResult]] = {}

    @classmethod
    async def load(cls, store: Store, company_id: str, until_ns: int) -> RecordedProtections:
        results = []
        signals: dict[str, signal_pb2.TradingSignal | None] = {}
        for record in await store.company_executions(company_id, until_ns):
            if record.signal_id not in signals:
                stored = await store.signal(company_id, record.signal_id)
                signals[record.signal_id] = (
                    signal_pb2.TradingSignal.FromString(stored.payload) if stored else None
                )
            signal = signals[record.signal_id]
            if signal is not None:
                results.append(_Result(record, signal))
        changes = await store.trading_state_changes(company_id, until_ns)
        return cls(results, [setting_from_audit(change) for change in changes])

    def results_by_signal(self) -> dict[str, list[execution_pb2.ExecutionResult]]:
        """Every result recorded for each signal, in recorded order, whatever the replay's
        progress."""
        found: dict[str, list[execution_pb2.ExecutionResult]] = {}
        for result in sorted(self._all, key=lambda each: each.record.recorded_at_ns):
            found.setdefault(result.record.signal_id, []).append(
                execution_pb2.ExecutionResult.FromString(result.record.payload)
            )
        return found

    def protection(self, company_id: str, user_id: str) -> Protection:
        key = (company_id, user_id)
        protection = self._users.get(key)
        if protection is None:
            protection = self._users[key] = Protection()
            self._refresh(company_id, user_id)
        return protection

    def advance_to(self, now_ns: int) -> None:
        """Apply every event recorded at or before `now_ns`, oldest first."""
        events = self._events
        while events and events[0][0] <= now_ns:
            _, _, _, event = heapq.heappop(events)
            if isinstance(event, TradingStateRecord):
                self._settings[(event.company_id, event.user_id)] = event
                for company_id, user_id in list(self._users):
                    if company_id == event.company_id and event.user_id in (_COMPANY, user_id):
                        self._refresh(company_id, user_id)
            else:
                self._follow(event)

    def _follow(self, event: _Result) -> None:
        record, signal = event.record, event.signal
        result = execution_pb2.ExecutionResult.FromString(record.payload)
        results = self._results.setdefault(record.signal_id, [])
        results.append(result)
        instrument = instruments.lookup(signal.symbol)
        if instrument is None:
            return
        outcome = outcome_of(facts_of(signal), results, instrument, DEFAULT_CURRENCY)
        protection = self.protection(record.company_id, record.user_id)
        follow_position(protection, self._open, signal, outcome.result.outcome, result)

    def _refresh(self, company_id: str, user_id: str) -> None:
        protection = self._users[(company_id, user_id)]
        user = self._settings.get((company_id, user_id))
        company = self._settings.get((company_id, _COMPANY))
        protection.state, protection.why = state_in_force(user, company)
