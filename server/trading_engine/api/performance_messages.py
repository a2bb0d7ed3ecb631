"""Performance figures between their domain form (analytics, core.performance) and protobuf."""

from __future__ import annotations

from tradeflow.trading.v1 import performance_pb2
from tradeflow.trading.v1 import trading_engine_service_pb2 as service_pb2
from trading_engine import errors
from trading_engine.analytics import (
    DEFAULT_INTERVAL_S,
    MIN_INTERVAL_S,
    Analysis,
    Breakdown,
    Subscription,
    Summary,
)
from trading_engine.core import performance
from trading_engine.core.attribution import ModelFigures
from trading_engine.core.performance import CalibrationBucket, PerformanceStats, RiskAdjusted
from trading_engine.tenancy import Caller, subject_user

P = performance_pb2
_WINDOWS = (
    performance.TODAY,
    performance.LAST_7_DAYS,
    performance.LAST_30_DAYS,
    performance.ALL_TIME,
)


def stats_to_proto(stats: PerformanceStats) -> performance_pb2.PerformanceStats:
    message = P.PerformanceStats(
        signals_total=stats.signals_total,
        signals_by_type=[
            P.SignalTypeCount(signal_type=signal_type, count=count)  # type: ignore[arg-type]
            for signal_type, count in stats.signals_by_type
        ],
        executed=stats.executed,
        closed=stats.closed,
        wins=stats.wins,
        losses=stats.losses,
        breakevens=stats.breakevens,
        hit_rate=stats.hit_rate,
        expectancy_pips=stats.expectancy_pips,
        expectancy=stats.expectancy,
        total_profit_loss_pips=stats.total_profit_loss_pips,
        total_profit_loss=stats.total_profit_loss,
        max_drawdown=stats.max_drawdown,
        max_drawdown_fraction=stats.max_drawdown_fraction,
        average_slippage_pips=stats.average_slippage_pips,
        calibration=[_bucket_to_proto(bucket) for bucket in stats.calibration],
    )
    if stats.profit_factor is not None:
        message.profit_factor = stats.profit_factor
    if stats.max_drawdown_marked_to_market is not None:
        message.max_drawdown_marked_to_market = stats.max_drawdown_marked_to_market
    if stats.max_drawdown_marked_to_market_fraction is not None:
        message.max_drawdown_marked_to_market_fraction = (
            stats.max_drawdown_marked_to_market_fraction
        )
    message.average_execution_latency.FromNanoseconds(stats.average_execution_latency_ns)
    message.risk_adjusted.CopyFrom(_risk_adjusted_to_proto(stats.risk_adjusted))
    return message


def _risk_adjusted_to_proto(figures: RiskAdjusted) -> performance_pb2.RiskAdjustedStats:
    message = P.RiskAdjustedStats(
        days=figures.days,
        exposure=figures.exposure,
        longest_losing_streak=figures.longest_losing_streak,
    )
    for name in ("sharpe_ratio", "sortino_ratio", "annual_return", "calmar_ratio"):
        value = getattr(figures, name)
        if value is not None:
            setattr(message, name, value)
    message.average_trade_duration.FromNanoseconds(figures.average_trade_duration_ns)
    return message


def summary_to_proto(summary: Summary) -> performance_pb2.PerformanceSummary:
    message = P.PerformanceSummary(
        user_id=summary.user_id,
        company_id=summary.company_id,
        window=summary.window,  # type: ignore[arg-type]  # a PerformanceWindow value
        symbol=summary.symbol,
        stats=stats_to_proto(summary.stats),
        currency=summary.currency,
    )
    message.window_start.FromNanoseconds(summary.start_ns)
    message.window_end.FromNanoseconds(summary.end_ns)
    return message


def analysis_to_proto(analysis: Analysis) -> service_pb2.AnalyzeSignalPerformanceResponse:
    return service_pb2.AnalyzeSignalPerformanceResponse(
        overall=stats_to_proto(analysis.overall),
        breakdowns=[_breakdown_to_proto(breakdown) for breakdown in analysis.breakdowns],
    )


def _breakdown_to_proto(breakdown: Breakdown) -> performance_pb2.PerformanceBreakdown:
    message = P.PerformanceBreakdown(
        dimension=breakdown.dimension,  # type: ignore[arg-type]  # a BreakdownDimension value
        key=breakdown.key,
        stats=stats_to_proto(breakdown.stats),
    )
    if breakdown.model is not None:
        message.model.CopyFrom(model_to_proto(breakdown.model.overall))
        message.model_by_symbol.extend(model_to_proto(m) for m in breakdown.model.by_symbol)
    return message


def model_to_proto(figures: ModelFigures) -> performance_pb2.ModelAttribution:
    return P.ModelAttribution(
        model_id=figures.model_id,
        symbol=figures.symbol,
        signals=figures.signals,
        calls=figures.calls,
        correct=figures.correct,
        hit_rate=figures.hit_rate,
        mean_confidence=figures.mean_confidence,
        profit_backed=figures.profit_backed,
        loss_backed=figures.loss_backed,
        calibration=[_bucket_to_proto(bucket) for bucket in figures.calibration],
    )


def _bucket_to_proto(bucket: CalibrationBucket) -> performance_pb2.CalibrationBucket:
    return P.CalibrationBucket(
        confidence_lower=bucket.confidence_lower,
        confidence_upper=bucket.confidence_upper,
        closed_signals=bucket.closed_signals,
        wins=bucket.wins,
        hit_rate=bucket.hit_rate,
        mean_confidence=bucket.mean_confidence,
    )


def subscription_from_proto(
    caller: Caller, subscription: service_pb2.AnalyticsSubscription
) -> Subscription:
    """The subscription a StreamAnalytics request asks for; InvalidArgument naming what is wrong."""
    violations = [
        errors.FieldViolation(
            f"subscription.windows[{index}]", "must be TODAY, LAST_7_DAYS, LAST_30_DAYS or ALL_TIME"
        )
        for index, window in enumerate(subscription.windows)
        if window not in _WINDOWS
    ]
    interval_s = DEFAULT_INTERVAL_S
    if subscription.HasField("min_interval"):
        interval_s = subscription.min_interval.ToNanoseconds() / 1e9
        if interval_s < MIN_INTERVAL_S:
            violations.append(
                errors.FieldViolation(
                    "subscription.min_interval", f"must be at least {MIN_INTERVAL_S} seconds"
                )
            )
    if violations:
        raise errors.invalid("the analytics subscription is invalid", violations)
    return Subscription(
        user_id=subject_user(caller, subscription.user_id),
        windows=tuple(subscription.windows) or (performance.ALL_TIME,),
        symbols=tuple(subscription.symbols),
        min_interval_s=interval_s,
    )
