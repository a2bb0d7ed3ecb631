"""ReplaySignals: a user's stored predictions decided again inside the running engine.

The replay shares the engine's event loop, so it runs in slices (a few
milliseconds each) with the live work in between, and one at a time per
engine: a second request while one runs is refused with RESOURCE_EXHAUSTED.
It replays every batch of the user's company in the window, because the
market state is per company, and reports only the user's signals. A long
backtest belongs in `trading-engine replay --from-history` on another machine.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from typing import Final

from trading_engine import errors
from trading_engine.engine import EngineLimits
from trading_engine.replay.backtest import Backtest, BacktestPlan, stored_backtest
from trading_engine.replay.runner import Replay, replay_stored, stored_session
from trading_engine.replay.sources import RecordedBatch, from_history
from trading_engine.replay.strategies import Candidate, ReplayStrategies
from trading_engine.stores.base import Store

MAX_WINDOW_NS: Final = 31 * 86_400 * 1_000_000_000
# About half a minute of the engine's loop; beyond it, the command on another machine.
MAX_BATCHES: Final = 100_000
# Batches decided between two turns of the event loop (~20 µs each), and between progress reports.
_SLICE: Final = 16
_PROGRESS_EVERY: Final = 512


@dataclasses.dataclass(frozen=True)
class ReplayQuery:
    company_id: str
    user_id: str
    start_ns: int
    end_ns: int
    candidate: Candidate | None


@dataclasses.dataclass(frozen=True)
class ReplayProgressed:
    batches_done: int
    batches_total: int


class ReplayService:
    def __init__(self, store: Store, limits: EngineLimits, max_batches: int = MAX_BATCHES) -> None:
        self._store = store
        self._limits = limits
        self._max_batches = max_batches
        self._running = asyncio.Lock()

    async def replay(self, query: ReplayQuery) -> AsyncIterator[ReplayProgressed | Backtest]:
        """Progress while the replay runs, then its backtest."""
        if self._running.locked():
            raise errors.ResourceExhausted(
                "a replay is already running on this engine; retry when it has ended",
                reason="REPLAY_RUNNING",
            )
        async with self._running:
            store = self._store
            batches = _at_most(
                self._max_batches,
                from_history(store, query.company_id, query.start_ns, query.end_ns),
            )
            session = await stored_session(
                store, query.company_id, query.start_ns, query.end_ns, batches
            )
            sides = [ReplayStrategies(base="strategies in force")]
            if query.candidate is not None:
                sides.append(ReplayStrategies(query.candidate))
            plan = BacktestPlan(sides, self._limits, users=[query.user_id])
            replay = Replay(plan.sides, plan.limits, plan.users)
            total = len(session.batches)
            yield ReplayProgressed(0, total)
            async for done in replay_stored(replay, store, session):
                if done % _SLICE == 0:
                    # Let the live batches waiting on the loop go first.
                    await asyncio.sleep(0)
                if done % _PROGRESS_EVERY == 0 or done == total:
                    yield ReplayProgressed(done, total)
            yield stored_backtest(plan, replay, session)


async def _at_most(
    limit: int, batches: AsyncIterator[RecordedBatch]
) -> AsyncIterator[RecordedBatch]:
    count = 0
    async for batch in batches:
        count += 1
        if count > limit:
            raise errors.FailedPrecondition(
                f"the range holds more than {limit} of the company's batches: replay a shorter "
                "one, or run `trading-engine replay --from-history` away from the engine",
                reason="REPLAY_TOO_LARGE",
            )
        yield batch
