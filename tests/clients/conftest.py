"""The typed clients against a live engine: both flavours, and an engine on both buses.

A scenario is written once against `Session` and runs with the asyncio
client and with the blocking one (in a thread, since the engine serves from
the test's event loop).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from pathlib import Path
from typing import Any, Protocol

import pytest

from tests.bus.busclient import ALL_TOPICS, bus_ready, bus_settings, running_engine
from tests.support import ADMIN, TRADER, Tokens
from tradeflow.common.v1 import tier_pb2
from trading_engine.app import Application
from trading_engine.devstack.brokers import KafkaBroker, NatsServer
from trading_engine.tenancy import Caller
from trading_engine_client import (
    AsyncTradingEngineClient,
    ResponseStream,
    Token,
    TradingEngineClient,
)

# Calls without a token.
ANONYMOUS = Caller("", "", tier_pb2.SUBSCRIPTION_TIER_UNSPECIFIED)
FLAVOURS = ("asyncio", "blocking")


class Session(Protocol):
    async def call(self, method: str, caller: Caller, request: Any, **options: Any) -> Any:
        """Unary method `method` of `caller`'s client, with `request` (and e.g. `timeout`)."""
        ...

    def stream(
        self, method: str, caller: Caller, argument: Any, **options: Any
    ) -> AsyncGenerator[Any, None]:
        """Stream helper `method` of `caller`'s client, with `argument` (and e.g. `timeout`)."""
        ...


@pytest.fixture(params=FLAVOURS)
def flavour(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
async def session(engine: Application, tokens: Tokens, flavour: str) -> AsyncIterator[Session]:
    async with connected(engine.grpc_address, flavour, signed_by(tokens)) as opened:
        yield opened


def signed_by(tokens: Tokens) -> Callable[[Caller], Token | None]:
    """A fresh token for each caller but ANONYMOUS."""
    return lambda caller: tokens.token(caller) if caller.user_id else None


@contextlib.asynccontextmanager
async def connected(
    address: str, flavour: str, token: Callable[[Caller], Token | None], **options: Any
) -> AsyncIterator[Session]:
    """Clients of `flavour` for TRADER, ADMIN and ANONYMOUS; `options` go to each client."""
    callers = (TRADER, ADMIN, ANONYMOUS)
    if flavour == "asyncio":
        clients = {
            c.user_id: AsyncTradingEngineClient(address, token=token(c), **options) for c in callers
        }
        try:
            yield _AsyncSession(clients)
        finally:
            for client in clients.values():
                await client.close()
    else:
        blocking = {
            c.user_id: TradingEngineClient(address, token=token(c), **options) for c in callers
        }
        try:
            yield _BlockingSession(blocking)
        finally:
            for each in blocking.values():
                each.close()


class _AsyncSession:
    def __init__(self, clients: dict[str, AsyncTradingEngineClient]) -> None:
        self._clients = clients

    async def call(self, method: str, caller: Caller, request: Any, **options: Any) -> Any:
        return await getattr(self._clients[caller.user_id], method)(request, **options)

    def stream(
        self, method: str, caller: Caller, argument: Any, **options: Any
    ) -> AsyncGenerator[Any, None]:
        bound = getattr(self._clients[caller.user_id], method)
        opened: AsyncGenerator[Any, None] = bound(argument, **options)
        return opened


class _BlockingSession:
    def __init__(self, clients: dict[str, TradingEngineClient]) -> None:
        self._clients = clients

    async def call(self, method: str, caller: Caller, request: Any, **options: Any) -> Any:
        bound = getattr(self._clients[caller.user_id], method)
        return await asyncio.to_thread(bound, request, **options)

    def stream(
        self, method: str, caller: Caller, argument: Any, **options: Any
    ) -> AsyncGenerator[Any, None]:
        return _in_thread(getattr(self._clients[caller.user_id], method)(argument, **options))


_END = object()


async def _in_thread(results: ResponseStream[Any]) -> AsyncGenerator[Any, None]:
    """A blocking stream read item by item in a thread, its call cancelled at the end."""
    try:
        while (item := await asyncio.to_thread(next, results, _END)) is not _END:
            yield item
    finally:
        results.cancel()


@pytest.fixture
async def kafka_broker(kafka_broker: KafkaBroker) -> KafkaBroker:
    """The test's Tansu broker with the engine's topics, three partitions each, as the bus tests."""
    await kafka_broker.create_topics(ALL_TOPICS, partitions=3)
    return kafka_broker


@pytest.fixture
async def bus_engine(
    tmp_path: Path, nats_server: NatsServer, kafka_broker: KafkaBroker
) -> AsyncIterator[Application]:
    """An engine taking predictions from, and publishing signals to, both brokers."""
    settings = bus_settings(str(tmp_path / "engine"), nats_server.url, kafka_broker.bootstrap)
    async with running_engine(settings) as application:
        await bus_ready(application)
        yield application
