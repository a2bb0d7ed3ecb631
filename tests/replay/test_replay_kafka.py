"""Replay from the Kafka predictions topic: what ML-Processing published, decided again."""

from __future__ import annotations

import asyncio
import json
import subprocess
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaProducer

from tests.factories import NOW_NS
from tests.replay.test_compare import RECORDING
from tests.support import BIN
from tradeflow.ml.v1 import prediction_pb2
from trading_engine.bus.names import KAFKA_PREDICTIONS
from trading_engine.devstack.brokers import KafkaBroker
from trading_engine.engine import EngineLimits
from trading_engine.replay.runner import Replay
from trading_engine.replay.sources import RecordedBatch, delimited, from_file, from_kafka
from trading_engine.replay.strategies import ReplayStrategies
from trading_engine_client import PredictionPublisher
from trading_engine_client.envelopes import seal_predictions

MINUTE_NS = 60 * 10**9


async def _published(broker: KafkaBroker) -> None:
    await broker.create_topics([KAFKA_PREDICTIONS], partitions=3)
    async with PredictionPublisher(kafka_bootstrap=broker.bootstrap) as publisher:
        for batch in RECORDING:
            await publisher.publish(batch)


async def _raw(broker: KafkaBroker, *values: bytes) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=broker.bootstrap)
    await producer.start()
    try:
        for value in values:
            await producer.send_and_wait(KAFKA_PREDICTIONS, value)
    finally:
        await producer.stop()


def _signals(batches: Iterable[RecordedBatch]) -> list[bytes]:
    replay = Replay([ReplayStrategies()], EngineLimits())
    for recorded in batches:
        replay.decide(recorded)
    return [record.payload for record in replay.sides[0].records]


async def test_the_topic_replays_the_same_signals_as_the_recording(
    kafka_broker: KafkaBroker, tmp_path: Path
) -> None:
    await _published(kafka_broker)
    # Not a prediction envelope: skipped and named, the rest replayed.
    await _raw(kafka_broker, b"\xff not an envelope")

    read = await from_kafka(kafka_broker.bootstrap, NOW_NS - MINUTE_NS, NOW_NS + 2 * MINUTE_NS)

    binary = tmp_path / "session.binpb"
    binary.write_bytes(b"".join(delimited(iter(RECORDING))))
    assert [b.batch_id for b in read.batches] == ["b1", "b2"]
    assert _signals(read.batches) == _signals(from_file(binary))
    assert len(read.skipped) == 1
    assert "not a TradingProcessingEnvelope" in read.skipped[0][1]


async def test_a_time_range_and_a_redelivered_message_keep_each_batch_once(
    kafka_broker: KafkaBroker,
) -> None:
    await _published(kafka_broker)
    # A producer's retry: the same envelope, message id and all, a second time.
    sealed = seal_predictions(
        RECORDING[0], producer_id="ml-1", sequence=1, service_source="ml-processing",
        traceparent="", tracestate="", token=None, now_ns=NOW_NS,
    )  # fmt: skip
    await _raw(kafka_broker, sealed.data, sealed.data)

    everything = await from_kafka(kafka_broker.bootstrap, 0, NOW_NS + 2 * MINUTE_NS)
    second_only = await from_kafka(kafka_broker.bootstrap, NOW_NS + 1, NOW_NS + 2 * MINUTE_NS)

    # b1 as published, then once more under the retried message id; b2 a minute later.
    assert [b.batch_id for b in everything.batches] == ["b1", "b1", "b2"]
    assert [b.batch_id for b in second_only.batches] == ["b2"]
    first = prediction_pb2.MLPredictionBatch.FromString(everything.batches[0].data)
    assert first == RECORDING[0]


async def test_the_command_reads_kafka(kafka_broker: KafkaBroker, tmp_path: Path) -> None:
    await _published(kafka_broker)
    strict = tmp_path / "strict.json"
    strict.write_text('{"minConfidenceThreshold": 0.75, "stopLossPips": 25}')
    shown = await asyncio.to_thread(
        subprocess.run,
        [
            str(BIN / "trading-engine"), "replay", "--from-kafka", kafka_broker.bootstrap,
            "--since", "2027-01-01", "--until", "2027-02-01", "--compare", str(strict), "--json",
        ],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert shown.returncode == 0, shown.stderr
    document: dict[str, Any] = json.loads(shown.stdout)
    assert document["batches"] == 2
    assert [len(document["comparison"][kind]) for kind in ("added", "removed", "changed")] == [
        1, 2, 1,
    ]  # fmt: skip
