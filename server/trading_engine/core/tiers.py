"""What each subscription tier may trade and switch on, its default strategy, and its bounds.

A tier's template is also a bound on the numbers that set what a trader is
exposed to: how sure a signal must be (the confidence and consensus floors),
how many signals and positions there may be, and how much each may risk. A
layer may tighten them, never loosen them, unless the tier includes custom
strategies and the strategy has them switched on (decision 31). Every other
number is the trader's own choice within its range: the duplicate window and
price tolerance (the position count and signal rate already bound how often
a repeated idea can trade), entry, stop and take-profit distances (the size
is risk-based, so a wider stop trades fewer lots for the same risk), and the
market-data guards (stale prices, spreads, volatility bands), which every
tier shares at the same default.
"""

from __future__ import annotations

import dataclasses
from typing import Final

from google.protobuf import duration_pb2
from google.protobuf.message import Message

from tradeflow.common.v1 import tier_pb2
from tradeflow.trading.v1 import strategy_pb2
from trading_engine.core import instruments


@dataclasses.dataclass(frozen=True)
class TierPolicy:
    tier: int
    # Instruments the tier may trade; a strategy may narrow them, never widen.
    instruments: frozenset[str]
    # Feature flags the tier may switch on; a strategy flag beyond these has no effect.
    allowed: strategy_pb2.TierFeatures
    # The tier's default strategy, complete in every field.
    defaults: strategy_pb2.StrategyConfig

    def bound(self, path: str) -> float:
        """The tier's bound on a number of NUMBER_BOUNDS: its template value."""
        value: float = getattr(self.defaults, path)
        return value

    def bounds_lifted(self, config: strategy_pb2.StrategyConfig) -> bool:
        """Whether the number bounds are lifted for `config`: the tier includes custom
        strategies and `config` has them switched on."""
        return bool(
            self.allowed.custom_strategies_enabled and config.features.custom_strategies_enabled
        )


@dataclasses.dataclass(frozen=True)
class NumberBound:
    """A StrategyConfig number the tier's template bounds, and which way is looser."""

    path: str
    # True: the template is the lowest value allowed (a floor, lower is looser);
    # False: the highest (a ceiling, higher is looser).
    floor: bool

    def looser(self, value: float, bound: float) -> bool:
        """Whether `value` is past `bound` on the looser side."""
        return value < bound if self.floor else value > bound

    def describe(self, value: float, bound: float, tier: str) -> str:
        side, kind = ("below", "floor") if self.floor else ("above", "ceiling")
        return f"{self.path} {value:g} is {side} the {tier} tier's {kind} {bound:g}"


NUMBER_BOUNDS: Final[tuple[NumberBound, ...]] = (
    NumberBound("min_confidence_threshold", floor=True),
    NumberBound("min_consensus_score", floor=True),
    NumberBound("max_position_count", floor=False),
    NumberBound("max_signals_per_minute", floor=False),
    NumberBound("risk_per_trade_percent", floor=False),
    NumberBound("max_position_size_lots", floor=False),
)


def _minutes(n: int) -> duration_pb2.Duration:
    return duration_pb2.Duration(seconds=60 * n)


def _defaults(**tier_specific: object) -> strategy_pb2.StrategyConfig:
    config = strategy_pb2.StrategyConfig(
        counter_trend_confidence_threshold=0.85,
        volatility_mode=strategy_pb2.VOLATILITY_MODE_CONSERVATIVE,
        trend_following_enabled=True,
        prefer_market_orders=True,
        limit_order_discount_pips=2.0,
        limit_order_premium_pips=2.0,
        max_limit_deviation_pips=10.0,
        stop_loss_mode=strategy_pb2.STOP_LOSS_MODE_FIXED_PIPS,
        stop_loss_pips=20.0,
        stop_loss_volatility_multiplier=2.0,
        min_stop_loss_pips=5.0,
        max_stop_loss_pips=100.0,
        take_profit_mode=strategy_pb2.TAKE_PROFIT_MODE_RISK_REWARD,
        take_profit_pips=40.0,
        risk_reward_ratio=2.0,
        risk_per_trade_percent=1.0,
        max_position_size_lots=10.0,
        position_size_multiplier=1.0,
        weak_signal_size_factor=0.5,
        duplicate_window=_minutes(5),
        duplicate_price_tolerance_pips=5.0,
        volatility_low_bps=5.0,
        volatility_high_bps=25.0,
        volatility_extreme_bps=60.0,
        trend_threshold_bps=3.0,
        max_price_age=duration_pb2.Duration(seconds=30),
        max_spread_pips=3.0,
        min_pattern_probability=0.6,
        multi_leg_count=3,
        signal_validity=_minutes(15),
        adaptive_enabled=True,
        require_risk_assessment=False,
        stop_loss_cooldown=_minutes(30),
        halt_drawdown_percent=0.0,
    )
    for name, value in tier_specific.items():
        if isinstance(value, strategy_pb2.TierFeatures):
            config.features.CopyFrom(value)
        else:
            setattr(config, name, value)
    _mark_present(config)
    _mark_present(config.features)
    return config


def _mark_present(message: Message) -> None:
    """Give every scalar with explicit presence its value explicitly, zeros included, so
    a config merged over the defaults is complete: every field present, and shown."""
    for field in message.DESCRIPTOR.fields:
        if field.has_presence and field.message_type is None:
            setattr(message, field.name, getattr(message, field.name))


_NO_FEATURES = strategy_pb2.TierFeatures()
_PRO_FEATURES = strategy_pb2.TierFeatures(
    advanced_features_enabled=True,
    pattern_trading_enabled=True,
    multi_leg_entries_enabled=True,
    advanced_timing_enabled=True,
)
_ENTERPRISE_FEATURES = strategy_pb2.TierFeatures(
    advanced_features_enabled=True,
    pattern_trading_enabled=True,
    multi_leg_entries_enabled=True,
    advanced_timing_enabled=True,
    custom_strategies_enabled=True,
    algorithmic_execution_enabled=True,
)

FREE = TierPolicy(
    tier=tier_pb2.SUBSCRIPTION_TIER_FREE,
    instruments=frozenset({"EURUSD", "GBPUSD"}),
    allowed=_NO_FEATURES,
    defaults=_defaults(
        min_confidence_threshold=0.8,
        min_consensus_score=0.7,
        max_position_count=3,
        max_signals_per_minute=10,
        features=_NO_FEATURES,
    ),
)
PRO = TierPolicy(
    tier=tier_pb2.SUBSCRIPTION_TIER_PRO,
    instruments=frozenset(instruments.MAJORS),
    allowed=_PRO_FEATURES,
    defaults=_defaults(
        min_confidence_threshold=0.7,
        min_consensus_score=0.6,
        max_position_count=10,
        max_signals_per_minute=60,
        # Multi-leg entries are allowed but opt-in.
        features=strategy_pb2.TierFeatures(
            advanced_features_enabled=True,
            pattern_trading_enabled=True,
            advanced_timing_enabled=True,
        ),
    ),
)
ENTERPRISE = TierPolicy(
    tier=tier_pb2.SUBSCRIPTION_TIER_ENTERPRISE,
    instruments=instruments.all_symbols(),
    allowed=_ENTERPRISE_FEATURES,
    defaults=_defaults(
        min_confidence_threshold=0.6,
        min_consensus_score=0.5,
        max_position_count=50,
        max_signals_per_minute=600,
        features=strategy_pb2.TierFeatures(
            advanced_features_enabled=True,
            pattern_trading_enabled=True,
            advanced_timing_enabled=True,
            custom_strategies_enabled=True,
            algorithmic_execution_enabled=True,
        ),
    ),
)

POLICIES = (FREE, PRO, ENTERPRISE)
_BY_TIER = {policy.tier: policy for policy in POLICIES}


def policy_for(tier: int) -> TierPolicy:
    """The policy of a tier; an unknown or unspecified tier gets FREE, the most restricted."""
    return _BY_TIER.get(tier, FREE)
