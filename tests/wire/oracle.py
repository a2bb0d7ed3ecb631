"""The slow, obviously-correct way: build the protobuf messages through the runtime.

The hand-written codecs in trading_engine.wire must agree with these byte for byte.
"""

from __future__ import annotations

from typing import Any

from tradeflow.ml.v1 import prediction_pb2
from tradeflow.trading.v1 import signal_pb2
from trading_engine.core.decision import Decision
from trading_engine.core.inputs import BatchInput, read_prediction
from trading_engine.wire.signals import SignalContext


def _enum(value: int) -> Any:
    """The core keeps enum values as plain ints; the typed stubs want the enum's value type."""
    return value


def batch_input(message: prediction_pb2.MLPredictionBatch) -> BatchInput:
    # As read_prediction reads a timestamp: the fields as they are, even out of range.
    produced = message.produced_at
    produced_ns = produced.seconds * 1_000_000_000 + produced.nanos
    tenant = message.user_context
    return BatchInput(
        message.batch_id,
        message.HasField("user_context"),
        tenant.user_id,
        tenant.company_id,
        tenant.tier,
        tenant.account_equity,
        tenant.account_currency,
        produced_ns,
        message.correlation_id,
        [read_prediction(p, produced_ns) for p in message.predictions],
    )


def signal_message(context: SignalContext, decision: Decision) -> signal_pb2.TradingSignal:
    signal = signal_pb2.TradingSignal(
        signal_id=decision.signal_id,
        prediction_id=decision.prediction_id,
        batch_id=context.batch_id,
        symbol=decision.symbol,
        user_id=context.user_id,
        company_id=context.company_id,
        correlation_id=context.correlation_id,
        signal_type=_enum(decision.signal_type),
        strength=decision.strength,
        confidence=decision.confidence,
        consensus_score=decision.consensus,
        disposition=_enum(decision.disposition),
        reason=_enum(decision.reason),
        cancellation_reason=decision.cancellation_reason,
        risk_status=_enum(decision.risk_status),
        risk_level=_enum(decision.risk_level),
        strategy_version=context.strategy_version,
        source=_enum(context.source),
        injected_by=context.injected_by,
    )
    signal.generated_at.FromNanoseconds(context.decided_at_ns)
    if decision.pattern_score is not None:
        signal.pattern_score = decision.pattern_score
    if decision.volume is not None:
        signal.volume_confirmation = decision.volume
    entry = decision.entry
    if entry is not None:
        message = signal.entry
        message.SetInParent()
        message.order_type = _enum(entry.order_type)
        message.urgency = _enum(entry.urgency)
        message.reference_price = entry.reference_price
        message.entry_price = entry.entry_price
        message.limit_price = entry.limit_price
        message.stop_loss = entry.stop_loss
        message.take_profit = entry.take_profit
        message.stop_loss_pips = entry.stop_loss_pips
        message.take_profit_pips = entry.take_profit_pips
        message.position_size_lots = entry.lots
        message.risk_amount = entry.risk_amount
        for lots, take_profit, pips in entry.legs:
            message.legs.add(
                position_size_lots=lots, take_profit=take_profit, take_profit_pips=pips
            )
        message.time_in_force = _enum(entry.time_in_force)
        message.valid_until.FromNanoseconds(entry.valid_until_ns)
        message.pip_value = entry.pip_value
        message.risk_budget = entry.risk_budget
        message.size_factor = entry.size_factor
    for kind, before, after, detail in decision.risk_adjustments:
        signal.risk_adjustments.add(kind=_enum(kind), before=before, after=after, detail=detail)
    for rule, outcome, observed, threshold, detail in decision.trace:
        signal.decision_trace.add(
            rule=_enum(rule),
            outcome=_enum(outcome),
            observed=observed,
            threshold=threshold,
            detail=detail,
        )
    market = decision.market
    if market is not None:
        view = signal.market
        view.SetInParent()
        view.symbol = decision.symbol
        view.volatility_regime = _enum(market.regime)
        view.realized_volatility_bps = market.volatility_bps
        view.trend = _enum(market.trend)
        view.trend_strength_bps = market.trend_bps
        view.spread_pips = max(0.0, market.spread_pips)
        view.price_age.SetInParent()
        view.price_age.FromNanoseconds(market.price_age_ns)
        view.samples = market.samples
        view.last_price = market.last_price
        view.favourability = market.favourability
    return signal


def batch_message(
    context: SignalContext, decisions: list[Decision], counts: tuple[int, int, int, int, int]
) -> signal_pb2.TradingSignalBatch:
    batch = signal_pb2.TradingSignalBatch(
        batch_id=context.batch_id,
        user_id=context.user_id,
        company_id=context.company_id,
        correlation_id=context.correlation_id,
        signals=[signal_message(context, decision) for decision in decisions],
        strategy_version=context.strategy_version,
        actionable_count=counts[0],
        hold_count=counts[1],
        rejected_count=counts[2],
        suppressed_count=counts[3],
        invalid_count=counts[4],
    )
    batch.decided_at.FromNanoseconds(context.decided_at_ns)
    return batch
