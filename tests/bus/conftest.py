"""Private brokers for the bus tests, each on its own free loopback port."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from trading_engine.devstack.brokers import KafkaBroker, NatsServer


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
