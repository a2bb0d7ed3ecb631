"""Fixtures of the bus tests: topics, the other side of the bus, and an engine on both."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.bus.busclient import ALL_TOPICS, BusClient, bus_ready, bus_settings, running_engine
from trading_engine.app import Application
from trading_engine.devstack.brokers import KafkaBroker, NatsServer


@pytest.fixture
async def topics(kafka_broker: KafkaBroker) -> None:
    await kafka_broker.create_topics(ALL_TOPICS, partitions=3)


@pytest.fixture
async def client(
    nats_server: NatsServer, kafka_broker: KafkaBroker, topics: None
) -> AsyncIterator[BusClient]:
    opened = BusClient(nats_server.url, kafka_broker.bootstrap)
    await opened.start()
    yield opened
    await opened.close()


@pytest.fixture
async def engine(
    tmp_path: Path, nats_server: NatsServer, kafka_broker: KafkaBroker, topics: None
) -> AsyncIterator[Application]:
    settings = bus_settings(str(tmp_path / "engine"), nats_server.url, kafka_broker.bootstrap)
    async with running_engine(settings) as application:
        await bus_ready(application)
        yield application
