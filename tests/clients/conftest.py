"""The typed clients against a live engine: both flavours, and an engine on both buses."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.brokers import KafkaBroker, NatsServer
from tests.bus.busclient import ALL_TOPICS, bus_ready, bus_settings, running_engine
from tests.support import ADMIN, TRADER, Tokens
from trading_engine.app import Application
from trading_engine.tenancy import Caller
from trading_engine_client import AsyncTradingEngineClient, ResponseStream, TradingEngineClient

# Calls `method` of the client of `caller` with `request`; the flavour under test decides how.
Call = Callable[[str, Caller, Any], Awaitable[Any]]
# Opens stream helper `method` of the client of `caller` with `argument`, as an async iterator.
OpenStream = Callable[[str, Caller, Any], AsyncGenerator[Any, None]]


@pytest.fixture(params=["asyncio", "blocking"])
def flavour(request: pytest.FixtureRequest) -> str:
    """Every scenario runs with AsyncTradingEngineClient and with TradingEngineClient."""
    return str(request.param)


@pytest.fixture
async def call(engine: Application, tokens: Tokens, flavour: str) -> AsyncIterator[Call]:
    if flavour == "asyncio":
        async with _async_clients(engine, tokens) as clients:

            async def call_async(method: str, caller: Caller, request: Any) -> Any:
                return await getattr(clients[caller.user_id], method)(request)

            yield call_async
    else:
        with _blocking_clients(engine, tokens) as blocking:

            async def call_blocking(method: str, caller: Caller, request: Any) -> Any:
                # The engine runs in this event loop: a blocking call waits in a thread.
                return await asyncio.to_thread(getattr(blocking[caller.user_id], method), request)

            yield call_blocking


@pytest.fixture
async def open_stream(
    engine: Application, tokens: Tokens, flavour: str
) -> AsyncIterator[OpenStream]:
    if flavour == "asyncio":
        async with _async_clients(engine, tokens) as clients:

            def open_async(method: str, caller: Caller, argument: Any) -> AsyncGenerator[Any, None]:
                stream: AsyncGenerator[Any, None] = getattr(clients[caller.user_id], method)(
                    argument
                )
                return stream

            yield open_async
    else:
        with _blocking_clients(engine, tokens) as blocking:

            def open_blocking(
                method: str, caller: Caller, argument: Any
            ) -> AsyncGenerator[Any, None]:
                return _in_thread(getattr(blocking[caller.user_id], method)(argument))

            yield open_blocking


@contextlib.asynccontextmanager
async def _async_clients(
    engine: Application, tokens: Tokens
) -> AsyncIterator[dict[str, AsyncTradingEngineClient]]:
    clients = {
        caller.user_id: AsyncTradingEngineClient(engine.grpc_address, token=tokens.token(caller))
        for caller in (TRADER, ADMIN)
    }
    try:
        yield clients
    finally:
        for client in clients.values():
            await client.close()


@contextlib.contextmanager
def _blocking_clients(
    engine: Application, tokens: Tokens
) -> Iterator[dict[str, TradingEngineClient]]:
    clients = {
        caller.user_id: TradingEngineClient(engine.grpc_address, token=tokens.token(caller))
        for caller in (TRADER, ADMIN)
    }
    try:
        yield clients
    finally:
        for client in clients.values():
            client.close()


_END = object()


async def _in_thread(results: ResponseStream[Any]) -> AsyncGenerator[Any, None]:
    """A blocking stream read item by item in a thread, its call cancelled at the end."""
    try:
        while (item := await asyncio.to_thread(next, results, _END)) is not _END:
            yield item
    finally:
        results.cancel()


@pytest.fixture
def nats_server(tmp_path: Path) -> Iterator[NatsServer]:
    server = NatsServer(tmp_path / "nats")
    server.start()
    yield server
    server.stop()


@pytest.fixture
async def kafka_broker(tmp_path: Path) -> AsyncIterator[KafkaBroker]:
    """A Tansu broker with the engine's topics, three partitions each, as in the bus tests."""
    broker = KafkaBroker(tmp_path / "kafka")
    broker.start()
    await broker.create_topics(ALL_TOPICS, partitions=3)
    yield broker
    broker.stop()


@pytest.fixture
async def bus_engine(
    tmp_path: Path, nats_server: NatsServer, kafka_broker: KafkaBroker
) -> AsyncIterator[Application]:
    """An engine taking predictions from, and publishing signals to, both brokers."""
    settings = bus_settings(str(tmp_path / "engine"), nats_server.url, kafka_broker.bootstrap)
    async with running_engine(settings) as application:
        await bus_ready(application)
        yield application
