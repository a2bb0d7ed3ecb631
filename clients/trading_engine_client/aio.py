"""Asynchronous client for tradeflow.trading.v1.TradingEngineService."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator, AsyncIterable, AsyncIterator, Callable, Iterable
from types import TracebackType
from typing import Protocol, Self, TypeVar

import grpc

from tradeflow.ml.v1 import prediction_pb2
from tradeflow.trading.v1 import execution_pb2, performance_pb2, signal_pb2, strategy_pb2
from tradeflow.trading.v1 import trading_engine_service_pb2 as service_pb2
from trading_engine_client import rpcs
from trading_engine_client.auth import Token
from trading_engine_client.calls import CallSettings
from trading_engine_client.errors import from_rpc_error
from trading_engine_client.retry import DEFAULT_RETRY, RetryPolicy
from trading_engine_client.rpcs import Item, Request, Response, Result

S = service_pb2
_Response_co = TypeVar("_Response_co", covariant=True)


class AsyncTradingEngineClient:
    """One channel to the engine; use as `async with AsyncTradingEngineClient(target) as client`.

    `token` (a JWT, or a callable returning a fresh one, asked on every call)
    is sent with every call; only `health_check` works without one.

    Unary methods take the contract's request message (optional where an
    empty request means "the caller's own") and an optional `timeout` in
    seconds for each attempt (default `default_timeout`). Reads, and changes
    carrying an idempotency key, are retried under `retry` after UNAVAILABLE
    or DEADLINE_EXCEEDED; other changes never are (each method says which).
    Stream helpers have no deadline unless given a `timeout`, and are never
    retried. Every failure is raised as a `TradingEngineError` subclass
    chosen by the status code.

    A stream helper returns an async generator; leave it early inside
    `contextlib.aclosing(...)` so the call is cancelled at once rather than
    when the generator is collected.
    """

    def __init__(
        self,
        target: str,
        *,
        token: Token | None = None,
        default_timeout: float = 5.0,
        retry: RetryPolicy = DEFAULT_RETRY,
    ) -> None:
        self.target = target
        self._calls = CallSettings(token, default_timeout, retry)
        self._channel = grpc.aio.insecure_channel(target, options=retry.channel_options())

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the channel, cancelling calls still running."""
        await self._channel.close(grace=None)

    async def health_check(
        self, request: S.HealthCheckRequest | None = None, *, timeout: float | None = None
    ) -> S.HealthCheckResponse:
        """The engine's health report: status, version, uptime and components. Retried."""
        return await self._unary(rpcs.HEALTH_CHECK, request, timeout)

    async def process_prediction_batch(
        self, request: S.ProcessPredictionBatchRequest, *, timeout: float | None = None
    ) -> signal_pb2.TradingSignalBatch:
        """One signal per prediction, in input order. Not retried: it has no idempotency key."""
        return await self._unary(rpcs.PROCESS_PREDICTION_BATCH, request, timeout)

    async def update_strategy(
        self, request: S.UpdateStrategyRequest, *, timeout: float | None = None
    ) -> S.UpdateStrategyResponse:
        """The new revision and the strategy it makes. Retried only with a `request_id`."""
        return await self._unary(rpcs.UPDATE_STRATEGY, request, timeout)

    async def get_strategy(
        self, request: S.GetStrategyRequest | None = None, *, timeout: float | None = None
    ) -> strategy_pb2.EffectiveStrategy:
        """The caller's effective strategy (or `request.user_id`'s, for an admin). Retried."""
        return await self._unary(rpcs.GET_STRATEGY, request, timeout)

    async def list_strategy_versions(
        self, request: S.ListStrategyVersionsRequest, *, timeout: float | None = None
    ) -> S.ListStrategyVersionsResponse:
        """One page of a layer's revisions, newest first. Retried."""
        return await self._unary(rpcs.LIST_STRATEGY_VERSIONS, request, timeout)

    async def reset_strategy(
        self, request: S.ResetStrategyRequest, *, timeout: float | None = None
    ) -> S.ResetStrategyResponse:
        """The revision the reset made. Retried only with a `request_id`."""
        return await self._unary(rpcs.RESET_STRATEGY, request, timeout)

    async def inject_manual_signal(
        self, request: S.InjectManualSignalRequest, *, timeout: float | None = None
    ) -> signal_pb2.TradingSignal:
        """The injected signal (admins only). Retried: its `request_id` is required."""
        return await self._unary(rpcs.INJECT_MANUAL_SIGNAL, request, timeout)

    async def record_execution_result(
        self, request: S.RecordExecutionResultRequest, *, timeout: float | None = None
    ) -> execution_pb2.SignalPerformance:
        """The signal's performance with this result. Retried: the engine applies an
        `execution_id` once."""
        return await self._unary(rpcs.RECORD_EXECUTION_RESULT, request, timeout)

    async def explain_signal(
        self, request: S.ExplainSignalRequest, *, timeout: float | None = None
    ) -> S.ExplainSignalResponse:
        """A signal's audit chain: prediction, decision trace, executions. Retried."""
        return await self._unary(rpcs.EXPLAIN_SIGNAL, request, timeout)

    async def analyze_signal_performance(
        self,
        request: S.AnalyzeSignalPerformanceRequest | None = None,
        *,
        timeout: float | None = None,
    ) -> S.AnalyzeSignalPerformanceResponse:
        """Performance broken down by symbol, type, strength and hour. Retried."""
        return await self._unary(rpcs.ANALYZE_SIGNAL_PERFORMANCE, request, timeout)

    async def get_performance_summary(
        self,
        request: S.GetPerformanceSummaryRequest | None = None,
        *,
        timeout: float | None = None,
    ) -> performance_pb2.PerformanceSummary:
        """Performance figures over one window (default: all time). Retried."""
        return await self._unary(rpcs.GET_PERFORMANCE_SUMMARY, request, timeout)

    async def set_trading_state(
        self, request: S.SetTradingStateRequest, *, timeout: float | None = None
    ) -> S.TradingStateSetting:
        """The setting as stored (admins only). Not retried: it has no idempotency key."""
        return await self._unary(rpcs.SET_TRADING_STATE, request, timeout)

    async def get_trading_state(
        self, request: S.GetTradingStateRequest | None = None, *, timeout: float | None = None
    ) -> S.GetTradingStateResponse:
        """The trading state in force and the settings it comes from. Retried."""
        return await self._unary(rpcs.GET_TRADING_STATE, request, timeout)

    def process_predictions(
        self,
        batches: Iterable[prediction_pb2.MLPredictionBatch]
        | AsyncIterable[prediction_pb2.MLPredictionBatch],
        *,
        timeout: float | None = None,
    ) -> AsyncGenerator[signal_pb2.TradingSignalBatch, None]:
        """One signal batch per prediction batch, in order, as the batches are sent."""
        return self._bidi(rpcs.PROCESS_PREDICTIONS, batches, timeout)

    def stream_signals(
        self,
        filters: Iterable[S.SignalFilter] | AsyncIterable[S.SignalFilter],
        *,
        timeout: float | None = None,
    ) -> AsyncGenerator[S.StreamSignalsResponse, None]:
        """The caller's live signals: each filter sent is acknowledged, then applies.

        The stream goes on after the last filter, until cancelled. Engines
        built before the live signal feed answer UNIMPLEMENTED, raised as
        `UnimplementedError`.
        """
        return self._bidi(rpcs.STREAM_SIGNALS, filters, timeout)

    def manage_strategies(
        self,
        operations: Iterable[S.ManageStrategiesRequest] | AsyncIterable[S.ManageStrategiesRequest],
        *,
        timeout: float | None = None,
    ) -> AsyncGenerator[S.ManageStrategiesResponse, None]:
        """One response per operation, in order; a failed operation answers with `error`
        (`raise from_status(response.error)` makes it the typed exception)."""
        return self._bidi(rpcs.MANAGE_STRATEGIES, operations, timeout)

    def stream_analytics(
        self,
        subscriptions: Iterable[S.AnalyticsSubscription] | AsyncIterable[S.AnalyticsSubscription],
        *,
        timeout: float | None = None,
    ) -> AsyncGenerator[performance_pb2.PerformanceSummary, None]:
        """Live figures: at once, then whenever they change; each subscription replaces
        the last, and the stream goes on after the last one, until cancelled."""
        return self._bidi(rpcs.STREAM_ANALYTICS, subscriptions, timeout)

    def signal_history(
        self, request: S.GetSignalHistoryRequest | None = None, *, timeout: float | None = None
    ) -> AsyncGenerator[S.GetSignalHistoryResponse, None]:
        """Stored signals, oldest first, a page at a time; resume with `next_page_token`."""
        return self._server_stream(rpcs.GET_SIGNAL_HISTORY, request, timeout)

    def strategy_performance(
        self,
        request: S.GetStrategyPerformanceRequest | None = None,
        *,
        timeout: float | None = None,
    ) -> AsyncGenerator[performance_pb2.PerformanceSummary, None]:
        """One summary per requested window (default: all time)."""
        return self._server_stream(rpcs.GET_STRATEGY_PERFORMANCE, request, timeout)

    def replay_signals(
        self, request: S.ReplaySignalsRequest, *, timeout: float | None = None
    ) -> AsyncGenerator[S.ReplaySignalsResponse, None]:
        """Progress while the engine replays a time range of stored predictions, then the
        result: signals reproduced, or what a candidate strategy changes, and the figures."""
        return self._server_stream(rpcs.REPLAY_SIGNALS, request, timeout)

    async def _unary(
        self,
        rpc: rpcs.Unary[Request, Response, Result],
        request: Request | None,
        timeout: float | None,
    ) -> Result:
        message = request if request is not None else rpc.request()
        call: grpc.aio.UnaryUnaryMultiCallable[Request, Response] = self._channel.unary_unary(
            rpc.path, rpcs.serialize, rpc.response.FromString
        )
        attempt = 1
        while True:
            try:
                response = await call(
                    message, timeout=self._calls.deadline(timeout), metadata=self._calls.metadata()
                )
            except grpc.aio.AioRpcError as failure:
                error = from_rpc_error(failure)
            else:
                return rpc.result(response)
            delay = self._calls.backoff(rpc, message, attempt, error)
            if delay is None:
                raise error
            await asyncio.sleep(delay)
            attempt += 1

    def _server_stream(
        self,
        rpc: rpcs.ServerStream[Request, Response, Result],
        request: Request | None,
        timeout: float | None,
    ) -> AsyncGenerator[Result, None]:
        def start() -> grpc.aio.UnaryStreamCall[Request, Response]:
            call: grpc.aio.UnaryStreamMultiCallable[Request, Response] = self._channel.unary_stream(
                rpc.path, rpcs.serialize, rpc.response.FromString
            )
            return call(
                request if request is not None else rpc.request(),
                timeout=timeout,
                metadata=self._calls.metadata(),
            )

        return _results(start, rpc.result)

    def _bidi(
        self,
        rpc: rpcs.BidiStream[Item, Request, Response, Result],
        items: Iterable[Item] | AsyncIterable[Item],
        timeout: float | None,
    ) -> AsyncGenerator[Result, None]:
        def start() -> grpc.aio.StreamStreamCall[Request, Response]:
            call: grpc.aio.StreamStreamMultiCallable[Request, Response] = (
                self._channel.stream_stream(rpc.path, rpcs.serialize, rpc.response.FromString)
            )
            return call(_requests(rpc, items), timeout=timeout, metadata=self._calls.metadata())

        return _results(start, rpc.result)


class _StreamCall(Protocol[_Response_co]):
    """A call answering with a stream, either kind."""

    def __aiter__(self) -> AsyncIterator[_Response_co]: ...

    def cancel(self) -> bool: ...


async def _results(
    start: Callable[[], _StreamCall[Response]],
    result: Callable[[Response], Result],
) -> AsyncGenerator[Result, None]:
    """What a stream's responses carry; the call starts with the iteration, and ends with it."""
    call = start()
    try:
        async for response in call:
            yield result(response)
    except grpc.aio.AioRpcError as failure:
        raise from_rpc_error(failure) from None
    finally:
        call.cancel()


async def _requests(
    rpc: rpcs.BidiStream[Item, Request, Response, Result],
    items: Iterable[Item] | AsyncIterable[Item],
) -> AsyncIterator[Request]:
    if isinstance(items, AsyncIterable):
        async for item in items:
            yield rpc.wrap(item)
    else:
        for item in items:
            yield rpc.wrap(item)
