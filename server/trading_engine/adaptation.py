"""What the engine learns when a user's signal closes: the drawdown halt and adaptive strategies.

After each close, for the user whose signal it was:
- past the strategy's `halt_drawdown_percent` for the day, their trading is halted;
- with `adaptive_enabled`, the rules of `core.adaptive` judge the signals closed
  since the last adjustment, and an adjustment becomes a new revision of the
  user's adaptive layer, with its reason, which `ResetStrategy` undoes.
"""

from __future__ import annotations

import asyncio
import logging

from tradeflow.trading.v1 import strategy_pb2
from trading_engine.analytics import PerformanceAnalytics
from trading_engine.clock import Clock
from trading_engine.core import adaptive, performance, tiers
from trading_engine.core.strategy_layers import COMPANY
from trading_engine.protections import Protections
from trading_engine.strategies import EffectiveStrategy, StrategyService

_log = logging.getLogger(__name__)
_THRESHOLD = "min_confidence_threshold"
_SIZE = "position_size_multiplier"


class Adaptation:
    def __init__(
        self,
        strategies: StrategyService,
        protections: Protections,
        analytics: PerformanceAnalytics,
        rules: adaptive.AdaptiveRules,
        clock: Clock,
    ) -> None:
        self._clock = clock
        self._strategies = strategies
        self._protections = protections
        self._analytics = analytics
        self._rules = rules
        # One review at a time: two closes of one user must not adjust twice on the same evidence.
        self._reviewing = asyncio.Lock()

    async def review(self, company_id: str, user_id: str) -> None:
        """Apply the drawdown limit and the adaptive rules to a user after a close."""
        async with self._reviewing:
            effective = await self._strategies.effective_for(company_id, user_id)
            if effective is None:
                return
            await self._check_drawdown(effective)
            if effective.merged.config.adaptive_enabled:
                await self._adapt(effective)

    async def _check_drawdown(self, effective: EffectiveStrategy) -> None:
        limit = effective.merged.config.halt_drawdown_percent
        if limit <= 0.0:
            return
        company_id, user_id = effective.company_id, effective.user_id
        today = await self._analytics.summary(company_id, user_id, performance.TODAY, "")
        drawdown = today.stats.max_drawdown_fraction * 100.0
        if drawdown < limit:
            return
        reason = f"the day's drawdown {drawdown:.1f}% reached halt_drawdown_percent {limit:g}%"
        if await self._protections.halt_for_drawdown(company_id, user_id, reason):
            _log.warning("halted user %s of company %s: %s", user_id, company_id, reason)

    async def _adapt(self, effective: EffectiveStrategy) -> None:
        config = effective.merged.config
        sources = effective.merged.sources
        since_ns = effective.adaptive.changed_at_ns
        figures = await self._analytics.figures_since(
            effective.company_id, effective.user_id, since_ns
        )
        adjustment = adaptive.adjust(
            adaptive.Evidence(figures.closed, figures.wins, figures.max_drawdown_fraction),
            adaptive.Current(
                config.min_confidence_threshold,
                config.position_size_multiplier,
                # The tier's floor: adjustments never loosen past it (decision 31).
                tiers.policy_for(effective.tier).bound(_THRESHOLD),
                threshold_adjustable=sources[_THRESHOLD] != COMPANY,
                size_adjustable=sources[_SIZE] != COMPANY,
            ),
            since_ns,
            self._clock.now_ns(),
            self._rules,
        )
        if adjustment is None:
            return
        values = strategy_pb2.StrategyConfig()
        paths = []
        if adjustment.min_confidence_threshold is not None:
            values.min_confidence_threshold = adjustment.min_confidence_threshold
            paths.append(_THRESHOLD)
        if adjustment.position_size_multiplier is not None:
            values.position_size_multiplier = adjustment.position_size_multiplier
            paths.append(_SIZE)
        # The revision is audited and logged with its old and new values (audit.py).
        await self._strategies.adapt(effective, values, paths, adjustment.reason)
