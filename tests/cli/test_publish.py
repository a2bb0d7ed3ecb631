"""`trading-engine publish` sends recorded batches to a running engine over NATS."""

from __future__ import annotations

import asyncio
import dataclasses
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from google.protobuf import json_format

from tests import factories
from tests.bus.busclient import eventually
from tests.support import BIN
from tradeflow.trading.v1 import signal_pb2
from trading_engine.app import Application
from trading_engine.config import EngineSettings
from trading_engine.devstack.brokers import NatsServer
from trading_engine.stores.base import SignalQuery


@pytest.fixture
async def bus_engine(
    engine_settings: EngineSettings, nats_server: NatsServer
) -> AsyncIterator[Application]:
    application = Application(dataclasses.replace(engine_settings, bus_nats_url=nats_server.url))
    await application.start()
    yield application
    await application.stop()


def _line(batch_id: str, *symbols: str) -> str:
    """A recorded batch as one JSON line; its times are NOW_NS's, long past for a live engine."""
    predictions = [factories.prediction(f"{batch_id}-{symbol}", symbol) for symbol in symbols]
    return json_format.MessageToJson(factories.batch(batch_id, predictions), indent=None)


async def _publish(*args: str) -> subprocess.CompletedProcess[str]:
    return await asyncio.to_thread(
        subprocess.run,
        [str(BIN / "trading-engine"), "publish", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


async def test_recorded_batches_are_published_restamped_and_a_bad_line_is_named(
    bus_engine: Application, nats_server: NatsServer, tmp_path: Path
) -> None:
    recording = tmp_path / "batches.jsonl"
    recording.write_text(
        "\n".join([_line("r1", "EURUSD"), "{not json", _line("r2", "GBPUSD", "USDJPY")]) + "\n"
    )

    done = await _publish(str(recording), "--bus-nats-url", nats_server.url, "--restamp")

    assert done.returncode == 1, done.stderr
    # Read from a pipe, progress is plain lines: no carriage returns redrawing a line.
    assert "\r" not in done.stderr
    assert "[##############################] 3/3 lines" in done.stderr
    assert "published 2 batches (3 predictions)" in done.stderr
    assert "1 lines skipped" in done.stderr
    assert "line 2: not an MLPredictionBatch" in done.stderr
    await eventually(lambda: bus_engine.bus.bridge.counts.batches_decided == 2, what="decided")
    await bus_engine.history_writer.flush()
    stored = await bus_engine.store.query_signals(
        SignalQuery("acme", "trader-1", include_non_actionable=True)
    )
    # Restamped, the recording's prices are fresh: every prediction made a signal to act on.
    assert sorted(record.symbol for record in stored) == ["EURUSD", "GBPUSD", "USDJPY"]
    assert {record.disposition for record in stored} == {signal_pb2.SIGNAL_DISPOSITION_ACTIONABLE}


async def test_publish_says_where_to_publish(tmp_path: Path) -> None:
    recording = tmp_path / "batches.jsonl"
    recording.write_text(_line("r1", "EURUSD") + "\n")
    done = await _publish(str(recording))
    assert done.returncode == 2
    assert "--bus-nats-url, --bus-kafka-bootstrap or both" in done.stderr
