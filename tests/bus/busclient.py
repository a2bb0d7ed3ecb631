"""The other side of the bus for tests: an ML producer and a signal consumer on both transports."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

import nats
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from nats.aio.client import Client
from nats.aio.msg import Msg

from tests import factories
from tradeflow.common.v1 import dead_letter_pb2, envelope_pb2
from tradeflow.ml.v1 import prediction_pb2
from tradeflow.trading.v1 import signal_pb2
from trading_engine.app import Application
from trading_engine.bus import names
from trading_engine.bus.kafka_link import stop_client
from trading_engine.config import EngineSettings
from trading_engine.tracing import Tracing
from trading_engine_client.transports import server_has_read

Envelope = envelope_pb2.TradingProcessingEnvelope
ALL_TOPICS = (
    names.KAFKA_PREDICTIONS,
    names.KAFKA_SIGNALS,
    names.KAFKA_EXECUTIONS,
    names.KAFKA_DEAD_LETTER,
)


def prediction_envelope(
    message_id: str,
    batch: prediction_pb2.MLPredictionBatch | None = None,
    sequence: int = 0,
    producer_id: str = "ml-test",
    user_id: str = "trader-1",
    company_id: str = "acme",
) -> bytes:
    """A live one-prediction batch for trader-1 (or `batch`) in an ML-Processing envelope."""
    if batch is None:
        batch = factories.batch(message_id, [factories.prediction(f"{message_id}-p")])
    envelope = Envelope(
        message_type=envelope_pb2.MESSAGE_TYPE_ML_PREDICTION_BATCH,
        user_id=user_id,
        company_id=company_id,
        payload=factories.live(batch).SerializeToString(),
        service_source="ml-processing",
        message_id=message_id,
        producer_id=producer_id,
        sequence=sequence,
    )
    envelope.trace_context.traceparent = f"00-{uuid.uuid4().hex}-{uuid.uuid4().hex[:16]}-01"
    return envelope.SerializeToString()


class Received:
    """Envelopes that arrived on one subject or topic, in arrival order."""

    def __init__(self) -> None:
        self.envelopes: list[Envelope] = []
        self.headers: list[dict[str, str]] = []
        self.keys: list[bytes | None] = []

    def add(self, data: bytes, headers: dict[str, str], key: bytes | None = None) -> None:
        self.envelopes.append(Envelope.FromString(data))
        self.headers.append(headers)
        self.keys.append(key)

    @property
    def message_ids(self) -> list[str]:
        return [envelope.message_id for envelope in self.envelopes]

    def signal_batches(self) -> list[signal_pb2.TradingSignalBatch]:
        return [signal_pb2.TradingSignalBatch.FromString(e.payload) for e in self.envelopes]

    def dead_letters(self) -> list[dead_letter_pb2.DeadLetter]:
        return [dead_letter_pb2.DeadLetter.FromString(e.payload) for e in self.envelopes]


class BusClient:
    """Publishes like ML-Processing and listens like Risk-Management, on both transports."""

    def __init__(self, nats_url: str, kafka_bootstrap: str) -> None:
        self._nats_url = nats_url
        self._bootstrap = kafka_bootstrap
        self.nats: dict[str, Received] = collections.defaultdict(Received)
        self.kafka: dict[str, Received] = collections.defaultdict(Received)
        self._client: Client | None = None
        self._producer: AIOKafkaProducer | None = None
        self._consumer: AIOKafkaConsumer | None = None
        self._consuming: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._client = await nats.connect(
            self._nats_url, max_reconnect_attempts=-1, reconnect_time_wait=0.2
        )
        for subject in (names.NATS_SIGNALS, names.NATS_DEAD_LETTER):
            await self._client.subscribe(subject, cb=self._on_nats)
        await server_has_read(self._client)
        self._producer = AIOKafkaProducer(
            bootstrap_servers=self._bootstrap, acks="all", enable_idempotence=False
        )
        await self._producer.start()
        self._consumer = AIOKafkaConsumer(
            names.KAFKA_SIGNALS,
            names.KAFKA_DEAD_LETTER,
            bootstrap_servers=self._bootstrap,
            # No group: every partition at once, without waiting for a group to form.
            group_id=None,
            auto_offset_reset="earliest",
            fetch_max_wait_ms=50,
        )
        await self._consumer.start()
        self._consuming = asyncio.create_task(self._consume(self._consumer))

    async def close(self) -> None:
        if self._consuming is not None:
            self._consuming.cancel()
            await asyncio.gather(self._consuming, return_exceptions=True)
        for closing in (self._consumer, self._producer):
            if closing is not None:
                await stop_client(closing)
        if self._client is not None:
            await self._client.close()

    async def to_nats(self, data: bytes, subject: str = names.NATS_PREDICTIONS) -> None:
        assert self._client is not None
        await self._client.publish(subject, data)
        await server_has_read(self._client)

    async def to_kafka(self, data: bytes, topic: str = names.KAFKA_PREDICTIONS) -> None:
        assert self._producer is not None
        await self._producer.send_and_wait(topic, data, key=b"acme/trader-1")

    async def read_topic(self, topic: str) -> Received:
        """Everything the topic holds now, from its first offset, ordered per partition."""
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self._bootstrap, enable_auto_commit=False, group_id=None
        )
        await consumer.start()
        received = Received()
        try:
            await consumer.topics()  # fetches the metadata partitions_for_topic reads
            numbers = consumer.partitions_for_topic(topic) or set()
            partitions = [TopicPartition(topic, number) for number in sorted(numbers)]
            consumer.assign(partitions)
            await consumer.seek_to_beginning(*partitions)
            end = await consumer.end_offsets(partitions)
            for partition in partitions:
                while await consumer.position(partition) < end[partition]:
                    fetched = await consumer.getmany(partition, timeout_ms=500)
                    for record in fetched.get(partition, []):
                        received.add(record.value, _headers(record.headers), record.key)
        finally:
            await consumer.stop()
        return received

    async def _on_nats(self, msg: Msg) -> None:
        self.nats[msg.subject].add(msg.data, dict(msg.headers or {}))

    async def _consume(self, consumer: AIOKafkaConsumer) -> None:
        while True:
            fetched = await consumer.getmany(timeout_ms=100)
            for partition, records in fetched.items():
                for record in records:
                    self.kafka[partition.topic].add(
                        record.value, _headers(record.headers), record.key
                    )


def _headers(headers: Sequence[tuple[str, bytes]]) -> dict[str, str]:
    return {name: value.decode() for name, value in headers}


def signal_outputs(client: BusClient) -> tuple[list[str], list[str]]:
    """The signal message ids received on NATS and on Kafka, in arrival order."""
    return (
        client.nats[names.NATS_SIGNALS].message_ids,
        client.kafka[names.KAFKA_SIGNALS].message_ids,
    )


async def eventually(check: Callable[[], bool], within: float = 15.0, what: str = "") -> None:
    """Wait until `check()` holds; fail saying `what` did not happen."""
    deadline = time.monotonic() + within
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {within} s: {what}")
        await asyncio.sleep(0.02)


def bus_settings(
    data_dir: str, nats_url: str, kafka_bootstrap: str, **overrides: Any
) -> EngineSettings:
    """An engine on both transports; Tansu has no idempotent producer."""
    values: dict[str, Any] = {
        "grpc_port": 0,
        "shutdown_grace_seconds": 1.0,
        "data_dir": data_dir,
        "history_flush_seconds": 0.05,
        "bus_nats_url": nats_url,
        "bus_kafka_bootstrap": kafka_bootstrap,
        "bus_kafka_idempotence": False,
        "bus_kafka_request_timeout_ms": 1500,
        # Tansu lets a consumer join after half the session timeout.
        "bus_kafka_session_timeout_ms": 2000,
    }
    values.update(overrides)
    return EngineSettings(**values)


@contextlib.asynccontextmanager
async def running_engine(
    settings: EngineSettings, tracing: Tracing | None = None
) -> AsyncIterator[Application]:
    application = Application(settings, tracing=tracing)
    await application.start()
    try:
        yield application
    finally:
        await application.stop()


async def bus_ready(application: Application) -> None:
    """Wait until the engine has joined both transports."""
    bus = application.bus
    await eventually(
        lambda: (
            (bus.nats is None or bus.nats.connected)
            and (bus.kafka is None or (bus.kafka.producer_ready and bus.kafka.consumer_ready))
        ),
        what="the engine joins NATS and Kafka",
    )
