"""Strategy domain objects as contract messages."""

from __future__ import annotations

from google.protobuf import timestamp_pb2

from tradeflow.trading.v1 import strategy_pb2
from trading_engine.core import tiers
from trading_engine.core.strategy_layers import tier_bounds
from trading_engine.stores.base import StrategyRevision
from trading_engine.strategies import EffectiveStrategy


def effective_strategy(effective: EffectiveStrategy) -> strategy_pb2.EffectiveStrategy:
    message = strategy_pb2.EffectiveStrategy(
        user_id=effective.user_id,
        company_id=effective.company_id,
        tier=effective.tier,  # type: ignore[arg-type]
        config=effective.merged.config,
        version=effective.version,
        user_version=effective.user.version,
        adaptive_version=effective.adaptive.version,
        company_version=effective.company.version,
        field_sources=dict(effective.merged.sources),  # type: ignore[arg-type]
        tier_bounds=tier_bounds(tiers.policy_for(effective.tier), effective.merged.config),
        clamped_fields=list(effective.merged.clamped),
    )
    if effective.updated_at_ns:
        message.updated_at.CopyFrom(_timestamp(effective.updated_at_ns))
    return message


def strategy_version(revision: StrategyRevision) -> strategy_pb2.StrategyVersion:
    return strategy_pb2.StrategyVersion(
        version=revision.version,
        layer=revision.key.layer,  # type: ignore[arg-type]
        user_id=revision.key.user_id,
        company_id=revision.key.company_id,
        changed_by=revision.changed_by,
        changed_at=_timestamp(revision.changed_at_ns),
        changed_fields=revision.changed_fields,
        changes=strategy_pb2.StrategyConfig.FromString(revision.changes),
        reason=revision.reason,
        request_id=revision.request_id,
    )


def _timestamp(ns: int) -> timestamp_pb2.Timestamp:
    stamp = timestamp_pb2.Timestamp()
    stamp.FromNanoseconds(ns)
    return stamp
