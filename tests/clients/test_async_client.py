"""The typed async client against a live engine."""

from __future__ import annotations

import grpc
import pytest

from tradeflow.trading.v1 import trading_engine_service_pb2 as service_pb2
from trading_engine import __version__
from trading_engine.app import Application
from trading_engine.devstack.brokers import free_port
from trading_engine_client import AsyncTradingEngineClient, TradingEngineError, UnavailableError
from trading_engine_client.errors import NotFoundError, from_rpc_error


async def test_health_check_returns_the_typed_report(engine: Application) -> None:
    async with AsyncTradingEngineClient(engine.grpc_address) as client:
        report = await client.health_check()
    assert report.status == service_pb2.SERVING_STATUS_SERVING
    assert report.version == __version__


async def test_an_unreachable_engine_raises_unavailable() -> None:
    async with AsyncTradingEngineClient(f"127.0.0.1:{free_port()}") as client:
        with pytest.raises(UnavailableError) as raised:
            await client.health_check(timeout=2)
    assert raised.value.code == grpc.StatusCode.UNAVAILABLE


async def test_engine_errors_decode_to_typed_exceptions_with_reason(
    channel: grpc.aio.Channel,
) -> None:
    explain = channel.unary_unary(
        "/tradeflow.trading.v1.TradingEngineService/ExplainSignal",
        request_serializer=service_pb2.ExplainSignalRequest.SerializeToString,
        response_deserializer=service_pb2.ExplainSignalResponse.FromString,
    )
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await explain(service_pb2.ExplainSignalRequest(signal_id="s-1"), timeout=5)
    error: TradingEngineError = from_rpc_error(raised.value)
    assert isinstance(error, NotFoundError)
    assert error.reason == "SIGNAL_NOT_FOUND"
    assert "'s-1'" in error.message
