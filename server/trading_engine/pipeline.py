"""Deciding a prediction batch from end to end: decide -> risk -> seal.

Both transports call `SignalPipeline.decide`. Without a risk service the
engine's two halves run back to back with no await in between; with one,
a user's batches take turns, so a prediction delivered twice while the
first copy waits for its assessment is answered from the first decision
instead of being decided again.
"""

from __future__ import annotations

import asyncio
import weakref

from trading_engine.engine import DecidedBatch, DecisionEngine
from trading_engine.live import LiveSignals
from trading_engine.risk.gate import RiskGate
from trading_engine.tenancy import Caller
from trading_engine.tracing import CLIENT, Tracing


class SignalPipeline:
    def __init__(
        self,
        engine: DecisionEngine,
        risk: RiskGate | None = None,
        live: LiveSignals | None = None,
        tracing: Tracing | None = None,
    ) -> None:
        self.engine = engine
        self.risk = risk
        self.live = live or LiveSignals()
        self._tracing = tracing or Tracing()
        # A user's turn: kept only while some batch of the user holds or awaits it. A batch is
        # always the caller's own (tenancy.check_batch_tenant), so the caller names the user.
        self._turns: weakref.WeakValueDictionary[tuple[str, str], asyncio.Lock] = (
            weakref.WeakValueDictionary()
        )

    async def decide(self, data: bytes, now_ns: int, caller: Caller) -> DecidedBatch:
        """Decide a serialized MLPredictionBatch; raises as `DecisionEngine.draft` does.

        The signals also go to the user's live watchers (`StreamSignals`).
        """
        with self._tracing.span("decide batch"):
            decided = await self._decide(data, now_ns, caller)
        self.live.publish(decided)
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
