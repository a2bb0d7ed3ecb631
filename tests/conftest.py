"""Fixtures: a real engine on a loopback port, channels to it, a real Envoy in front, and private
brokers (nats-server, Tansu) for the tests that use the bus."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import grpc
import pytest

from tests.support import BIN, Stubs, Tokens, rest_gateway
from tradeflow.trading.v1 import trading_engine_service_pb2_grpc as service_grpc
from trading_engine.app import Application
from trading_engine.config import EngineSettings
from trading_engine.devstack.brokers import KafkaBroker, NatsServer
from trading_engine.gateway.envoy import EnvoyGateway

# Tools the tests spawn (buf, grpcurl, trading-engine) come from the venv that runs pytest.
os.environ["PATH"] = f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"


@pytest.fixture
def engine_settings(tmp_path: Path) -> EngineSettings:
    """An engine on a free port whose data (database, development secret) lives in tmp_path."""
    return EngineSettings(
        grpc_port=0,
        shutdown_grace_seconds=2.0,
        data_dir=str(tmp_path),
        # Tests read history soon after deciding.
        history_flush_seconds=0.05,
    )


@pytest.fixture
async def engine(engine_settings: EngineSettings) -> AsyncIterator[Application]:
    application = Application(engine_settings)
    await application.start()
    yield application
    await application.stop()


@pytest.fixture
def tokens(engine_settings: EngineSettings) -> Tokens:
    return Tokens(engine_settings)


@pytest.fixture
async def stubs(engine: Application, tokens: Tokens) -> AsyncIterator[Stubs]:
    """Stubs to the engine that call as any user: `stubs.as_(ADMIN)`."""
    opened = Stubs(engine.grpc_address, tokens)
    yield opened
    await opened.close()


@pytest.fixture
async def channel(engine: Application, tokens: Tokens) -> AsyncIterator[grpc.aio.Channel]:
    """A channel to the engine that calls as TRADER (tests/support.py)."""
    async with tokens.channel(engine.grpc_address) as opened:
        yield opened


@pytest.fixture
def stub(channel: grpc.aio.Channel) -> service_grpc.TradingEngineServiceAsyncStub:
    return service_grpc.TradingEngineServiceStub(channel)


@pytest.fixture
async def gateway(engine: Application) -> AsyncIterator[EnvoyGateway]:
    async with rest_gateway(engine) as envoy:
        yield envoy


@pytest.fixture
def nats_server(tmp_path: Path) -> Iterator[NatsServer]:
    """A nats-server with JetStream, stopped after the test whatever its outcome."""
    server = NatsServer(tmp_path / "nats")
    server.start()
    yield server
    server.stop()


@pytest.fixture
def kafka_broker(tmp_path: Path) -> Iterator[KafkaBroker]:
    """A Tansu broker (memory storage; starts in ~20 ms, so one per test is cheap)."""
    broker = KafkaBroker(tmp_path / "kafka")
    broker.start()
    yield broker
    broker.stop()
