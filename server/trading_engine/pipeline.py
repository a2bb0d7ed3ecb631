"""Deciding a prediction batch from end to end: the user's strategy loaded -> decide ->
risk -> seal -> live watchers -> the tier remembered.

Both transports make this one call, `SignalPipeline.decide`, and only
translate around it. Without a risk service the engine's two halves run back
to back with no await in between; with one, a user's batches take turns, so
a prediction delivered twice while the first copy waits for its assessment is
answered from the first decision instead of being decided again.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from typing import Protocol

from trading_engine.engine import DecidedBatch, DecisionEngine, DraftBatch
from trading_engine.live import LiveSignals
from trading_engine.stores.base import StoreError
from trading_engine.stores.retry import with_store_retries
from trading_engine.tenancy import Caller
from trading_engine.tracing import CLIENT, Tracing

_log = logging.getLogger(__name__)


class RiskReview(Protocol):
    """Sets the risk status of a draft's actionable decisions before it is sealed."""

    async def review(self, draft: DraftBatch) -> None: ...


class StrategyLoader(Protocol):
    """Where a user's strategy layers come from, and who keeps the tier each user trades at."""

    async def prepare(self, company_id: str, user_id: str) -> None:
        """Load the user's layers so the engine can build their strategy without waiting."""
        ...

    async def remember(self, caller: Caller) -> None:
        """Keep the user's tier, for their company's admins; raises StoreError."""
        ...


class SignalPipeline:
    def __init__(
        self,
        engine: DecisionEngine,
        strategies: StrategyLoader,
        risk: RiskReview | None = None,
        live: LiveSignals | None = None,
        tracing: Tracing | None = None,
    ) -> None:
        self.engine = engine
        self._strategies = strategies
        self.risk = risk
        self.live = live or LiveSignals()
        self._tracing = tracing or Tracing()
        # A user's turn: kept only while some batch of the user holds or awaits it. A batch is
        # always the caller's own (tenancy.check_batch_tenant), so the caller names the user.
        self._turns: weakref.WeakValueDictionary[tuple[str, str], asyncio.Lock] = (
            weakref.WeakValueDictionary()
        )

    async def decide(self, data: bytes, now_ns: int, caller: Caller) -> DecidedBatch:
        """Decide a serialized MLPredictionBatch for `caller` (on the bus: the envelope's
        tenant, tier unstated, so the batch's applies).

        Raises as `DecisionEngine.draft` does, and Unavailable when the user's strategy
        cannot be loaded (after retries). The signals also go to the user's live watchers
        (`StreamSignals`).
        """
        await with_store_retries(
            lambda: self._strategies.prepare(caller.company_id, caller.user_id),
            f"the strategy of user {caller.user_id!r} cannot be loaded",
        )
        with self._tracing.span("decide batch"):
            decided = await self._decide(data, now_ns, caller)
        self.live.publish(decided)
        try:
            await self._strategies.remember(
                Caller(decided.user_id, decided.company_id, decided.tier)
            )
        except StoreError as error:
            # Only an admin listing is late; the decision stands.
            _log.warning("cannot record the tier of user %s: %s", decided.user_id, error)
        return decided

    async def _decide(self, data: bytes, now_ns: int, caller: Caller) -> DecidedBatch:
        engine, risk = self.engine, self.risk
        if risk is None:
            return engine.seal(engine.draft(data, now_ns, caller))
        key = (caller.company_id, caller.user_id)
        turn = self._turns.get(key)
        if turn is None:
            turn = self._turns[key] = asyncio.Lock()
        async with turn:
            draft = engine.draft(data, now_ns, caller)
            with self._tracing.span("assess risk", CLIENT):
                await risk.review(draft)
            return engine.seal(draft)
