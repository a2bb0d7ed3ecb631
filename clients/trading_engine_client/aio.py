"""Asynchronous client for tradeflow.trading.v1.TradingEngineService."""

from __future__ import annotations

from types import TracebackType
from typing import Self

import grpc

from tradeflow.trading.v1 import trading_engine_service_pb2 as service_pb2
from tradeflow.trading.v1 import trading_engine_service_pb2_grpc as service_grpc
from trading_engine_client.auth import Token, bearer_token
from trading_engine_client.errors import from_rpc_error


class AsyncTradingEngineClient:
    """One channel to the engine; use as `async with AsyncTradingEngineClient(target) as client`.

    `token` (a JWT, or a callable returning a fresh one) is sent with every call
    that needs one.

    Every method takes an optional `timeout` in seconds (default `default_timeout`)
    and raises a `TradingEngineError` subclass chosen by the status code.
    """

    def __init__(
        self,
        target: str,
        *,
        token: Token | None = None,
        default_timeout: float = 5.0,
    ) -> None:
        self.target = target
        self.default_timeout = default_timeout
        self._channel = grpc.aio.insecure_channel(
            target, interceptors=bearer_token(token) if token is not None else None
        )
        self._stub = service_grpc.TradingEngineServiceStub(self._channel)

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
        await self._channel.close(grace=None)

    async def health_check(
        self, *, timeout: float | None = None
    ) -> service_pb2.HealthCheckResponse:
        """The engine's health report: status, version, uptime and component states."""
        try:
            return await self._stub.HealthCheck(
                service_pb2.HealthCheckRequest(), timeout=timeout or self.default_timeout
            )
        except grpc.aio.AioRpcError as error:
            raise from_rpc_error(error) from None
