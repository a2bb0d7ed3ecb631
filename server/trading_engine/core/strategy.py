"""The strategy as the rules read it: plain attributes, units resolved, tier bounds applied.

Built once per strategy revision from a `StrategyConfig`, so the hot path
reads slotted attributes instead of protobuf fields and converts no units.
"""

from __future__ import annotations

import dataclasses
from typing import Final

from tradeflow.trading.v1 import strategy_pb2
from trading_engine.core.tiers import TierPolicy

NANOS_PER_SECOND: Final = 1_000_000_000

# Strategy enum values as compile-time constants of the hot path.
VOLATILITY_CONSERVATIVE: Final[int] = strategy_pb2.VOLATILITY_MODE_CONSERVATIVE
VOLATILITY_BALANCED: Final[int] = strategy_pb2.VOLATILITY_MODE_BALANCED
VOLATILITY_AGGRESSIVE: Final[int] = strategy_pb2.VOLATILITY_MODE_AGGRESSIVE
STOP_FIXED_PIPS: Final[int] = strategy_pb2.STOP_LOSS_MODE_FIXED_PIPS
STOP_VOLATILITY_SCALED: Final[int] = strategy_pb2.STOP_LOSS_MODE_VOLATILITY_SCALED
TARGET_FIXED_PIPS: Final[int] = strategy_pb2.TAKE_PROFIT_MODE_FIXED_PIPS
TARGET_RISK_REWARD: Final[int] = strategy_pb2.TAKE_PROFIT_MODE_RISK_REWARD
TARGET_PREDICTED_PRICE: Final[int] = strategy_pb2.TAKE_PROFIT_MODE_PREDICTED_PRICE


@dataclasses.dataclass(frozen=True)
class Strategy:
    tier: int
    version: int
    min_confidence: float
    min_consensus: float
    counter_trend_confidence: float
    volatility_mode: int
    trend_following: bool
    prefer_market_orders: bool
    limit_discount_pips: float
    limit_premium_pips: float
    max_limit_deviation_pips: float
    stop_loss_mode: int
    stop_loss_pips: float
    stop_loss_volatility_multiplier: float
    min_stop_loss_pips: float
    max_stop_loss_pips: float
    take_profit_mode: int
    take_profit_pips: float
    risk_reward_ratio: float
    risk_fraction: float
    max_position_lots: float
    size_multiplier: float
    weak_size_factor: float
    max_positions: int
    instruments: frozenset[str]
    advanced_features: bool
    pattern_trading: bool
    multi_leg_entries: bool
    advanced_timing: bool
    duplicate_window_ns: int
    duplicate_tolerance_pips: float
    max_signals_per_minute: int
    volatility_low_bps: float
    volatility_high_bps: float
    volatility_extreme_bps: float
    trend_threshold_bps: float
    max_price_age_ns: int
    max_spread_pips: float
    min_pattern_probability: float
    multi_leg_count: int
    signal_validity_ns: int
    require_risk_assessment: bool
    stop_loss_cooldown_ns: int


def from_config(config: strategy_pb2.StrategyConfig, policy: TierPolicy, version: int) -> Strategy:
    """The rules' view of a complete configuration, clamped to what the tier allows."""
    allowed = policy.allowed
    features = config.features
    requested = frozenset(config.available_instruments)
    return Strategy(
        tier=policy.tier,
        version=version,
        min_confidence=config.min_confidence_threshold,
        min_consensus=config.min_consensus_score,
        counter_trend_confidence=config.counter_trend_confidence_threshold,
        volatility_mode=config.volatility_mode or strategy_pb2.VOLATILITY_MODE_BALANCED,
        trend_following=config.trend_following_enabled,
        prefer_market_orders=config.prefer_market_orders,
        limit_discount_pips=config.limit_order_discount_pips,
        limit_premium_pips=config.limit_order_premium_pips,
        max_limit_deviation_pips=config.max_limit_deviation_pips,
        stop_loss_mode=config.stop_loss_mode or strategy_pb2.STOP_LOSS_MODE_FIXED_PIPS,
        stop_loss_pips=config.stop_loss_pips,
        stop_loss_volatility_multiplier=config.stop_loss_volatility_multiplier,
        min_stop_loss_pips=config.min_stop_loss_pips,
        max_stop_loss_pips=config.max_stop_loss_pips,
        take_profit_mode=config.take_profit_mode or strategy_pb2.TAKE_PROFIT_MODE_RISK_REWARD,
        take_profit_pips=config.take_profit_pips,
        risk_reward_ratio=config.risk_reward_ratio,
        risk_fraction=config.risk_per_trade_percent / 100.0,
        max_position_lots=config.max_position_size_lots,
        size_multiplier=config.position_size_multiplier,
        weak_size_factor=config.weak_signal_size_factor,
        max_positions=config.max_position_count,
        instruments=(requested & policy.instruments) if requested else policy.instruments,
        advanced_features=features.advanced_features_enabled and allowed.advanced_features_enabled,
        pattern_trading=features.pattern_trading_enabled and allowed.pattern_trading_enabled,
        multi_leg_entries=features.multi_leg_entries_enabled and allowed.multi_leg_entries_enabled,
        advanced_timing=features.advanced_timing_enabled and allowed.advanced_timing_enabled,
        duplicate_window_ns=config.duplicate_window.ToNanoseconds(),
        duplicate_tolerance_pips=config.duplicate_price_tolerance_pips,
        max_signals_per_minute=config.max_signals_per_minute,
        volatility_low_bps=config.volatility_low_bps,
        volatility_high_bps=config.volatility_high_bps,
        volatility_extreme_bps=config.volatility_extreme_bps,
        trend_threshold_bps=config.trend_threshold_bps,
        max_price_age_ns=config.max_price_age.ToNanoseconds(),
        max_spread_pips=config.max_spread_pips,
        min_pattern_probability=config.min_pattern_probability,
        multi_leg_count=config.multi_leg_count,
        signal_validity_ns=config.signal_validity.ToNanoseconds(),
        require_risk_assessment=config.require_risk_assessment,
        stop_loss_cooldown_ns=config.stop_loss_cooldown.ToNanoseconds(),
    )
