"""The engine's RPCs as the clients call them, in one table both clients read.

Each entry says where the RPC lives, which messages it exchanges, what a
client method returns of a response and when a unary call may be retried,
so the blocking and the asyncio client cannot disagree on any of it.

What a method returns: a response that only wraps one message (for example
`GetStrategyResponse.strategy`) is unwrapped to that message; a response with
more to say (a page token, a version beside the strategy, a oneof of events)
is returned whole. Requests are the contract's own messages, so a field added
to the contract can be used without a new client.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Final, Generic, TypeVar

from google.protobuf.message import Message

from tradeflow.ml.v1 import prediction_pb2
from tradeflow.trading.v1 import trading_engine_service_pb2 as service_pb2

SERVICE: Final = service_pb2.DESCRIPTOR.services_by_name["TradingEngineService"].full_name

Request = TypeVar("Request", bound=Message)
Response = TypeVar("Response", bound=Message)
Result = TypeVar("Result")
Item = TypeVar("Item")


def serialize(message: Request) -> bytes:
    return message.SerializeToString()


@dataclasses.dataclass(frozen=True, slots=True)
class Unary(Generic[Request, Response, Result]):
    """A unary RPC; `retry_safe` says whether this request may reach the engine twice."""

    name: str
    request: type[Request]
    response: type[Response]
    result: Callable[[Response], Result]
    retry_safe: Callable[[Request], bool]

    @property
    def path(self) -> str:
        return f"/{SERVICE}/{self.name}"


@dataclasses.dataclass(frozen=True, slots=True)
class ServerStream(Generic[Request, Response, Result]):
    """An RPC answering one request with a stream; never retried, as a stream may be half read."""

    name: str
    request: type[Request]
    response: type[Response]
    result: Callable[[Response], Result]

    @property
    def path(self) -> str:
        return f"/{SERVICE}/{self.name}"


@dataclasses.dataclass(frozen=True, slots=True)
class BidiStream(Generic[Item, Request, Response, Result]):
    """A bidirectional RPC: `wrap` makes each item the caller sends a request message."""

    name: str
    wrap: Callable[[Item], Request]
    response: type[Response]
    result: Callable[[Response], Result]

    @property
    def path(self) -> str:
        return f"/{SERVICE}/{self.name}"


_Message = TypeVar("_Message", bound=Message)


def _whole(response: _Message) -> _Message:
    return response


def _always(request: Message) -> bool:
    """A read: receiving it twice changes nothing."""
    return True


def _never(request: Message) -> bool:
    """A change without an idempotency key: a second copy would be a second change."""
    return False


def _keyed(
    request: service_pb2.UpdateStrategyRequest
    | service_pb2.ResetStrategyRequest
    | service_pb2.InjectManualSignalRequest,
) -> bool:
    """Safe only with a `request_id`: the engine answers a repeated id with the first result."""
    return bool(request.request_id)


S = service_pb2

HEALTH_CHECK: Final = Unary(
    "HealthCheck", S.HealthCheckRequest, S.HealthCheckResponse, _whole, _always
)
PROCESS_PREDICTION_BATCH: Final = Unary(
    "ProcessPredictionBatch",
    S.ProcessPredictionBatchRequest,
    S.ProcessPredictionBatchResponse,
    lambda response: response.signal_batch,
    _never,
)
UPDATE_STRATEGY: Final = Unary(
    "UpdateStrategy", S.UpdateStrategyRequest, S.UpdateStrategyResponse, _whole, _keyed
)
GET_STRATEGY: Final = Unary(
    "GetStrategy",
    S.GetStrategyRequest,
    S.GetStrategyResponse,
    lambda response: response.strategy,
    _always,
)
LIST_STRATEGY_VERSIONS: Final = Unary(
    "ListStrategyVersions",
    S.ListStrategyVersionsRequest,
    S.ListStrategyVersionsResponse,
    _whole,
    _always,
)
RESET_STRATEGY: Final = Unary(
    "ResetStrategy", S.ResetStrategyRequest, S.ResetStrategyResponse, _whole, _keyed
)
INJECT_MANUAL_SIGNAL: Final = Unary(
    "InjectManualSignal",
    S.InjectManualSignalRequest,
    S.InjectManualSignalResponse,
    lambda response: response.signal,
    _keyed,
)
RECORD_EXECUTION_RESULT: Final = Unary(
    "RecordExecutionResult",
    S.RecordExecutionResultRequest,
    S.RecordExecutionResultResponse,
    lambda response: response.performance,
    # The contract applies a report once per execution_id, however often it arrives.
    lambda request: bool(request.result.execution_id),
)
EXPLAIN_SIGNAL: Final = Unary(
    "ExplainSignal", S.ExplainSignalRequest, S.ExplainSignalResponse, _whole, _always
)
ANALYZE_SIGNAL_PERFORMANCE: Final = Unary(
    "AnalyzeSignalPerformance",
    S.AnalyzeSignalPerformanceRequest,
    S.AnalyzeSignalPerformanceResponse,
    _whole,
    _always,
)
GET_PERFORMANCE_SUMMARY: Final = Unary(
    "GetPerformanceSummary",
    S.GetPerformanceSummaryRequest,
    S.GetPerformanceSummaryResponse,
    lambda response: response.summary,
    _always,
)
SET_TRADING_STATE: Final = Unary(
    "SetTradingState",
    S.SetTradingStateRequest,
    S.SetTradingStateResponse,
    lambda response: response.setting,
    _never,
)
GET_TRADING_STATE: Final = Unary(
    "GetTradingState", S.GetTradingStateRequest, S.GetTradingStateResponse, _whole, _always
)

GET_SIGNAL_HISTORY: Final = ServerStream(
    "GetSignalHistory", S.GetSignalHistoryRequest, S.GetSignalHistoryResponse, _whole
)
GET_STRATEGY_PERFORMANCE: Final = ServerStream(
    "GetStrategyPerformance",
    S.GetStrategyPerformanceRequest,
    S.GetStrategyPerformanceResponse,
    lambda response: response.summary,
)
REPLAY_SIGNALS: Final = ServerStream(
    "ReplaySignals", S.ReplaySignalsRequest, S.ReplaySignalsResponse, _whole
)


def _prediction_batch(batch: prediction_pb2.MLPredictionBatch) -> S.ProcessPredictionsRequest:
    return S.ProcessPredictionsRequest(batch=batch)


def _signal_filter(signal_filter: S.SignalFilter) -> S.StreamSignalsRequest:
    return S.StreamSignalsRequest(filter=signal_filter)


def _subscription(subscription: S.AnalyticsSubscription) -> S.StreamAnalyticsRequest:
    return S.StreamAnalyticsRequest(subscription=subscription)


PROCESS_PREDICTIONS: Final = BidiStream(
    "ProcessPredictions",
    _prediction_batch,
    S.ProcessPredictionsResponse,
    lambda response: response.signal_batch,
)
STREAM_SIGNALS: Final = BidiStream("StreamSignals", _signal_filter, S.StreamSignalsResponse, _whole)
MANAGE_STRATEGIES: Final[
    BidiStream[
        S.ManageStrategiesRequest,
        S.ManageStrategiesRequest,
        S.ManageStrategiesResponse,
        S.ManageStrategiesResponse,
    ]
] = BidiStream("ManageStrategies", _whole, S.ManageStrategiesResponse, _whole)
STREAM_ANALYTICS: Final = BidiStream(
    "StreamAnalytics",
    _subscription,
    S.StreamAnalyticsResponse,
    lambda response: response.summary,
)
