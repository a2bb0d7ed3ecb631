"""Fixtures: a real engine on a loopback port, channels to it, and a real Envoy in front."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator

import grpc
import pytest

from tests.support import BIN, free_port
from tradeflow.trading.v1 import trading_engine_service_pb2_grpc as service_grpc
from trading_engine.app import Application
from trading_engine.config import EngineSettings, GatewaySettings
from trading_engine.gateway.envoy import EnvoyGateway

# Tools the tests spawn (buf, grpcurl, trading-engine) come from the venv that runs pytest.
os.environ["PATH"] = f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"


@pytest.fixture
async def engine() -> AsyncIterator[Application]:
    application = Application(EngineSettings(grpc_port=0, shutdown_grace_seconds=2.0))
    await application.start()
    yield application
    await application.stop()


@pytest.fixture
async def channel(engine: Application) -> AsyncIterator[grpc.aio.Channel]:
    async with grpc.aio.insecure_channel(engine.grpc_address) as opened:
        yield opened


@pytest.fixture
def stub(channel: grpc.aio.Channel) -> service_grpc.TradingEngineServiceAsyncStub:
    return service_grpc.TradingEngineServiceStub(channel)


@pytest.fixture
async def gateway(engine: Application) -> AsyncIterator[EnvoyGateway]:
    envoy = EnvoyGateway(
        GatewaySettings(
            http_port=free_port(), envoy_admin_port=free_port(), upstream_port=engine.grpc_port
        )
    )
    await envoy.start()
    yield envoy
    await envoy.stop()
