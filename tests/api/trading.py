"""Deciding signals and reporting their executions on a live engine, as the API tests need."""

from __future__ import annotations

from typing import TYPE_CHECKING

import grpc

from tests.factories import NOW_NS, batch, prediction
from tradeflow.trading.v1 import execution_pb2, signal_pb2
from tradeflow.trading.v1 import trading_engine_service_pb2 as service_pb2
from trading_engine_client.errors import from_rpc_error

if TYPE_CHECKING:
    from tradeflow.trading.v1 import trading_engine_service_pb2_grpc as service_grpc

    Stub = service_grpc.TradingEngineServiceAsyncStub

E = execution_pb2
MS = 1_000_000
PIP = 0.0001
# When `result` closes positions: an hour after NOW_NS.
CLOSED_NS = NOW_NS + 3_600_000 * MS


class ManualClock:
    """The engine's clock, at NOW_NS until a test moves it."""

    def __init__(self) -> None:
        self.now = NOW_NS

    def now_ns(self) -> int:
        return self.now


async def decide(stub: Stub, batch_id: str, *symbols: str) -> list[signal_pb2.TradingSignal]:
    """One signal per symbol, from an UP prediction each."""
    predictions = [prediction(f"{batch_id}-{s}", s) for s in symbols]
    response = await stub.ProcessPredictionBatch(
        service_pb2.ProcessPredictionBatchRequest(batch=batch(batch_id, predictions))
    )
    return list(response.signal_batch.signals)


def result(
    signal: signal_pb2.TradingSignal,
    execution_id: str,
    status: int,
    price: float = 0.0,
    exit_price: float = 0.0,
    after_ms: int = 150,
    commission: float = 0.0,
    close_reason: int = E.CLOSE_REASON_UNSPECIFIED,
) -> execution_pb2.ExecutionResult:
    outcome = E.ExecutionResult(
        execution_id=execution_id,
        signal_id=signal.signal_id,
        symbol=signal.symbol,
        status=status,  # type: ignore[arg-type]
        executed_price=price,
        executed_size_lots=signal.entry.position_size_lots if price else 0.0,
        exit_price=exit_price,
        commission=commission,
        close_reason=close_reason,  # type: ignore[arg-type]
    )
    if price:
        outcome.executed_at.FromNanoseconds(NOW_NS + after_ms * MS)
    if exit_price:
        outcome.closed_at.FromNanoseconds(CLOSED_NS)
    return outcome


async def record(
    stub: Stub, outcome: execution_pb2.ExecutionResult
) -> execution_pb2.SignalPerformance:
    response = await stub.RecordExecutionResult(
        service_pb2.RecordExecutionResultRequest(result=outcome)
    )
    return response.performance


async def failure(call: object) -> Exception:
    """The typed client error a call fails with; fails the test if it succeeds."""
    try:
        await call  # type: ignore[misc]
    except grpc.aio.AioRpcError as error:
        return from_rpc_error(error)
    raise AssertionError("the call succeeded")
