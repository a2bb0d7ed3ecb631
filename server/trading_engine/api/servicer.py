"""TradingEngineService over gRPC: translate, delegate, translate back."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import grpc
from google.protobuf import duration_pb2, timestamp_pb2

from tradeflow.trading.v1 import signal_pb2
from tradeflow.trading.v1 import trading_engine_service_pb2 as service_pb2
from tradeflow.trading.v1 import trading_engine_service_pb2_grpc as service_grpc
from trading_engine import errors, field_limits, timestamps
from trading_engine.analytics import PerformanceAnalytics, Subscription, live_summaries
from trading_engine.api.auth import current_caller
from trading_engine.api.performance_messages import (
    analysis_to_proto,
    subscription_from_proto,
    summary_to_proto,
)
from trading_engine.api.replay_messages import progress_to_proto, replay_query, result_to_proto
from trading_engine.api.status import to_status_proto
from trading_engine.api.strategy_messages import effective_strategy, strategy_version
from trading_engine.core import performance, tiers
from trading_engine.core.manual import ManualOrder
from trading_engine.executions import ExecutionTracker
from trading_engine.explain import SignalAudit
from trading_engine.health import ComponentState, HealthMonitor, HealthReport, ServingState
from trading_engine.history import HistoryRequest, SignalHistory
from trading_engine.live import LiveSignals, filter_violations, filtered_signals
from trading_engine.manual_signals import ManualSignals
from trading_engine.protections import Protections
from trading_engine.replay.service import ReplayProgressed, ReplayService
from trading_engine.stores.base import TradingStateRecord
from trading_engine.strategies import StrategyService
from trading_engine.tenancy import subject_user

Context = grpc.aio.ServicerContext[Any, Any]

_SERVING_STATUS = {
    ServingState.SERVING: service_pb2.SERVING_STATUS_SERVING,
    ServingState.DEGRADED: service_pb2.SERVING_STATUS_DEGRADED,
    ServingState.NOT_SERVING: service_pb2.SERVING_STATUS_NOT_SERVING,
}
_COMPONENT_STATE = {
    ComponentState.UP: service_pb2.COMPONENT_STATE_UP,
    ComponentState.DEGRADED: service_pb2.COMPONENT_STATE_DEGRADED,
    ComponentState.DOWN: service_pb2.COMPONENT_STATE_DOWN,
    ComponentState.DISABLED: service_pb2.COMPONENT_STATE_DISABLED,
}


class TradingEngineServicer(service_grpc.TradingEngineServiceServicer):
    """Thin gRPC adapter over the engine's components.

    ProcessPredictions and ProcessPredictionBatch are not here: they take and give bytes
    (api/predictions.py), registered in their place by api/server.py.
    """

    def __init__(
        self,
        health: HealthMonitor,
        strategies: StrategyService,
        history: SignalHistory,
        manual_signals: ManualSignals,
        executions: ExecutionTracker,
        analytics: PerformanceAnalytics,
        protections: Protections,
        audit: SignalAudit,
        live: LiveSignals,
        replays: ReplayService,
    ) -> None:
        self._live = live
        self._replays = replays
        self._health = health
        self._strategies = strategies
        self._history = history
        self._manual_signals = manual_signals
        self._executions = executions
        self._analytics = analytics
        self._protections = protections
        self._audit = audit

    async def HealthCheck(
        self, request: service_pb2.HealthCheckRequest, context: Context
    ) -> service_pb2.HealthCheckResponse:
        return health_report_to_proto(self._health.report())

    async def StreamSignals(
        self, request_iterator: AsyncIterator[service_pb2.StreamSignalsRequest], context: Context
    ) -> AsyncIterator[service_pb2.StreamSignalsResponse]:
        caller = current_caller()
        filters: asyncio.Queue[service_pb2.SignalFilter | BaseException | None] = asyncio.Queue()

        async def read_filters() -> None:
            async for request in request_iterator:
                violations = filter_violations(request.filter)
                if violations:
                    filters.put_nowait(errors.invalid("the signal filter is invalid", violations))
                    return
                filters.put_nowait(request.filter)
            filters.put_nowait(None)

        # Watching starts before the first filter is read: no signal falls between the two.
        with self._live.watch(caller.company_id, caller.user_id) as watcher:
            reader = asyncio.create_task(read_filters())
            try:
                async for event in filtered_signals(watcher, filters):
                    if isinstance(event, service_pb2.SignalFilter):
                        yield service_pb2.StreamSignalsResponse(filter_applied=event)
                    else:
                        yield service_pb2.StreamSignalsResponse(signal=event)
            finally:
                reader.cancel()

    async def ManageStrategies(
        self, request_iterator: AsyncIterator[service_pb2.ManageStrategiesRequest], context: Context
    ) -> AsyncIterator[service_pb2.ManageStrategiesResponse]:
        # Each operation answers in turn; a failed one reports its status and the stream goes on.
        async for request in request_iterator:
            response = service_pb2.ManageStrategiesResponse(operation_id=request.operation_id)
            try:
                await self._manage(request, response, context)
            except errors.EngineError as error:
                response.error.CopyFrom(to_status_proto(error))
            yield response

    async def _manage(
        self,
        request: service_pb2.ManageStrategiesRequest,
        response: service_pb2.ManageStrategiesResponse,
        context: Context,
    ) -> None:
        # The size limits the interceptor checks for the unary twins (api/limits.py).
        field_limits.check(request)
        operation = request.WhichOneof("operation")
        if operation == "get":
            response.get.CopyFrom(await self.GetStrategy(request.get, context))
        elif operation == "update":
            response.update.CopyFrom(await self.UpdateStrategy(request.update, context))
        elif operation == "list_versions":
            response.list_versions.CopyFrom(
                await self.ListStrategyVersions(request.list_versions, context)
            )
        elif operation == "reset":
            response.reset.CopyFrom(await self.ResetStrategy(request.reset, context))
        else:
            raise errors.InvalidArgument(
                "the request names no operation",
                (
                    errors.FieldViolation(
                        "operation", "set one of get, update, list_versions, reset"
                    ),
                ),
            )

    async def StreamAnalytics(
        self, request_iterator: AsyncIterator[service_pb2.StreamAnalyticsRequest], context: Context
    ) -> AsyncIterator[service_pb2.StreamAnalyticsResponse]:
        caller = current_caller()
        subscriptions: asyncio.Queue[Subscription | BaseException | None] = asyncio.Queue()

        async def read_subscriptions() -> None:
            try:
                async for request in request_iterator:
                    subscriptions.put_nowait(subscription_from_proto(caller, request.subscription))
            except errors.EngineError as error:
                subscriptions.put_nowait(error)
            else:
                subscriptions.put_nowait(None)

        reader = asyncio.create_task(read_subscriptions())
        try:
            async for summaries in live_summaries(
                self._analytics, self._executions.changes, caller.company_id, subscriptions
            ):
                for summary in summaries:
                    yield service_pb2.StreamAnalyticsResponse(summary=summary_to_proto(summary))
        finally:
            reader.cancel()

    async def GetSignalHistory(
        self, request: service_pb2.GetSignalHistoryRequest, context: Context
    ) -> AsyncIterator[service_pb2.GetSignalHistoryResponse]:
        violations: list[errors.FieldViolation] = []
        start_ns = end_ns = None
        if request.HasField("start_time"):
            start_ns = timestamps.nanoseconds(request.start_time, "start_time", violations)
        if request.HasField("end_time"):
            end_ns = timestamps.nanoseconds(request.end_time, "end_time", violations)
        if violations:
            raise errors.invalid("the history request is invalid", violations)
        selection = HistoryRequest(
            user_id=request.user_id,
            symbols=list(request.symbols),
            signal_types=list(request.signal_types),
            start_ns=start_ns,
            end_ns=end_ns,
            include_non_actionable=request.include_non_actionable,
            page_size=request.page_size,
            page_token=request.page_token,
            max_signals=request.max_signals,
        )
        async for page in self._history.pages(current_caller(), selection):
            yield service_pb2.GetSignalHistoryResponse(
                signals=[signal_pb2.TradingSignal.FromString(r.payload) for r in page.records],
                next_page_token=page.next_page_token,
            )

    async def GetStrategyPerformance(
        self, request: service_pb2.GetStrategyPerformanceRequest, context: Context
    ) -> AsyncIterator[service_pb2.GetStrategyPerformanceResponse]:
        caller = current_caller()
        user_id = subject_user(caller, request.user_id)
        for window in request.windows or [performance.ALL_TIME]:
            summary = await self._analytics.summary(
                caller.company_id, user_id, window, request.symbol
            )
            yield service_pb2.GetStrategyPerformanceResponse(summary=summary_to_proto(summary))

    async def UpdateStrategy(
        self, request: service_pb2.UpdateStrategyRequest, context: Context
    ) -> service_pb2.UpdateStrategyResponse:
        change = await self._strategies.update(
            current_caller(),
            request.layer,
            request.user_id,
            request.strategy,
            list(request.update_mask.paths),
            request.expected_version if request.HasField("expected_version") else None,
            request.request_id,
            request.reason,
        )
        return service_pb2.UpdateStrategyResponse(
            strategy=effective_strategy(change.strategy), version=strategy_version(change.revision)
        )

    async def GetStrategy(
        self, request: service_pb2.GetStrategyRequest, context: Context
    ) -> service_pb2.GetStrategyResponse:
        effective = await self._strategies.get(current_caller(), request.user_id)
        return service_pb2.GetStrategyResponse(strategy=effective_strategy(effective))

    async def ListStrategyVersions(
        self, request: service_pb2.ListStrategyVersionsRequest, context: Context
    ) -> service_pb2.ListStrategyVersionsResponse:
        page = await self._strategies.list_versions(
            current_caller(), request.layer, request.user_id, request.page_size, request.page_token
        )
        return service_pb2.ListStrategyVersionsResponse(
            versions=[strategy_version(revision) for revision in page.revisions],
            next_page_token=page.next_page_token,
        )

    async def ResetStrategy(
        self, request: service_pb2.ResetStrategyRequest, context: Context
    ) -> service_pb2.ResetStrategyResponse:
        change = await self._strategies.reset(
            current_caller(),
            request.layer,
            request.user_id,
            request.to_version if request.HasField("to_version") else None,
            request.expected_version if request.HasField("expected_version") else None,
            request.request_id,
            request.reason,
        )
        return service_pb2.ResetStrategyResponse(
            strategy=effective_strategy(change.strategy), version=strategy_version(change.revision)
        )

    async def InjectManualSignal(
        self, request: service_pb2.InjectManualSignalRequest, context: Context
    ) -> service_pb2.InjectManualSignalResponse:
        order = ManualOrder(
            symbol=request.symbol,
            signal_type=request.signal_type,
            order_type=request.order_type,
            limit_price=request.limit_price,
            reference_price=request.reference_price,
            stop_loss=request.stop_loss,
            take_profit=request.take_profit,
            lots=request.position_size_lots,
            note=request.note,
            validity_ns=request.validity.ToNanoseconds() if request.HasField("validity") else 0,
        )
        signal = await self._manual_signals.inject(
            current_caller(), request.request_id, request.user_id, order
        )
        return service_pb2.InjectManualSignalResponse(
            signal=signal_pb2.TradingSignal.FromString(signal)
        )

    async def RecordExecutionResult(
        self, request: service_pb2.RecordExecutionResultRequest, context: Context
    ) -> service_pb2.RecordExecutionResultResponse:
        performance = await self._executions.record(current_caller(), request.result)
        return service_pb2.RecordExecutionResultResponse(performance=performance)

    async def ExplainSignal(
        self, request: service_pb2.ExplainSignalRequest, context: Context
    ) -> service_pb2.ExplainSignalResponse:
        explanation = await self._audit.explain(current_caller(), request.signal_id)
        response = service_pb2.ExplainSignalResponse(
            signal=explanation.signal, executions=explanation.executions
        )
        if explanation.prediction is not None:
            response.prediction.CopyFrom(explanation.prediction)
        if explanation.performance is not None:
            response.performance.CopyFrom(explanation.performance)
        return response

    async def ReplaySignals(
        self, request: service_pb2.ReplaySignalsRequest, context: Context
    ) -> AsyncIterator[service_pb2.ReplaySignalsResponse]:
        caller = current_caller()
        user_id = subject_user(caller, request.user_id)
        policy = tiers.policy_for(await self._strategies.tier_of(caller, user_id))
        query = replay_query(request, caller.company_id, user_id, policy)
        async for event in self._replays.replay(query):
            if isinstance(event, ReplayProgressed):
                yield progress_to_proto(event)
            else:
                yield result_to_proto(event, request.max_differences)

    async def SetTradingState(
        self, request: service_pb2.SetTradingStateRequest, context: Context
    ) -> service_pb2.SetTradingStateResponse:
        record = await self._protections.set_state(
            current_caller(), request.scope, request.user_id, request.state, request.reason
        )
        return service_pb2.SetTradingStateResponse(setting=trading_state_setting(record))

    async def GetTradingState(
        self, request: service_pb2.GetTradingStateRequest, context: Context
    ) -> service_pb2.GetTradingStateResponse:
        state, user, company = self._protections.read(current_caller(), request.user_id)
        response = service_pb2.GetTradingStateResponse(effective_state=state)  # type: ignore[arg-type]
        if user is not None:
            response.user_setting.CopyFrom(trading_state_setting(user))
        if company is not None:
            response.company_setting.CopyFrom(trading_state_setting(company))
        return response

    async def AnalyzeSignalPerformance(
        self, request: service_pb2.AnalyzeSignalPerformanceRequest, context: Context
    ) -> service_pb2.AnalyzeSignalPerformanceResponse:
        caller = current_caller()
        analysis = await self._analytics.analysis(
            caller.company_id,
            subject_user(caller, request.user_id),
            request.window,
            list(request.dimensions),
            list(request.symbols),
        )
        return analysis_to_proto(analysis)

    async def GetPerformanceSummary(
        self, request: service_pb2.GetPerformanceSummaryRequest, context: Context
    ) -> service_pb2.GetPerformanceSummaryResponse:
        caller = current_caller()
        summary = await self._analytics.summary(
            caller.company_id, subject_user(caller, request.user_id), request.window, request.symbol
        )
        return service_pb2.GetPerformanceSummaryResponse(summary=summary_to_proto(summary))


# Field 1 of ProcessPredictionsResponse and ProcessPredictionBatchResponse.


def trading_state_setting(record: TradingStateRecord) -> service_pb2.TradingStateSetting:
    changed_at = timestamp_pb2.Timestamp()
    changed_at.FromNanoseconds(record.changed_at_ns)
    return service_pb2.TradingStateSetting(
        company_id=record.company_id,
        user_id=record.user_id,
        state=record.state,  # type: ignore[arg-type]
        cause=record.cause,  # type: ignore[arg-type]
        reason=record.reason,
        changed_by=record.changed_by,
        changed_at=changed_at,
    )


def health_report_to_proto(report: HealthReport) -> service_pb2.HealthCheckResponse:
    uptime = duration_pb2.Duration()
    uptime.FromNanoseconds(report.uptime_ns)
    started_at = timestamp_pb2.Timestamp()
    started_at.FromNanoseconds(report.started_at_ns)
    checked_at = timestamp_pb2.Timestamp()
    checked_at.FromNanoseconds(report.checked_at_ns)
    return service_pb2.HealthCheckResponse(
        status=_SERVING_STATUS[report.status],
        version=report.version,
        uptime=uptime,
        started_at=started_at,
        checked_at=checked_at,
        components=[
            service_pb2.ComponentHealth(
                name=component.name,
                state=_COMPONENT_STATE[component.state],
                detail=component.detail,
            )
            for component in report.components
        ],
        average_decision_time_us=report.decisions.average_decision_time_us,
        decision_rate_per_second=report.decisions.decisions_per_second,
        predictions_decided=report.decisions.predictions_decided,
        signals_today=report.decisions.signals_today,
        active_users=report.decisions.active_users,
        active_strategies=report.active_strategies,
        signals_closed=report.signals_closed,
        strategy_accuracy=report.wins / report.signals_closed if report.signals_closed else 0.0,
        average_serialization_time_us=report.decisions.average_serialization_time_us,
    )
