"""Fuzz the bus: hostile and careless inputs through a real engine on real brokers.

`fuzz_bus` starts a private nats-server and Tansu, an engine on both (in
this process, on the same loop), and sends the inputs of
`bench/fuzz/bus_inputs.py` (mostly mangled envelopes, payloads and numbers, with
valid batches and repeated copies among them) on NATS and Kafka. It listens
on the signal and dead-letter subjects like a consumer would, and prints one
JSON object: what was sent, by kind; what the engine counted, by outcome;
and every input that vanished (no signal, no dead letter, not a copy of an
earlier message), named by kind and seed so it can be rebuilt.

The contract checked: sent = decided + execution results + dead letters +
duplicate copies, nothing in hand at the end, nothing shed, and every dead
letter and signal message seen on NATS also on Kafka.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import hashlib
import random
import time
from pathlib import Path

import nats
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from nats.aio.msg import Msg

from bench.fuzz.bus_inputs import KINDS, BusInput, Envelope, bus_input
from tradeflow.common.v1 import dead_letter_pb2
from trading_engine.app import Application
from trading_engine.bus import names
from trading_engine.bus.kafka_link import stop_client
from trading_engine.config import EngineSettings
from trading_engine.devstack.brokers import KafkaBroker, NatsServer
from trading_engine_client.transports import server_has_read

_TOPICS = (
    names.KAFKA_PREDICTIONS,
    names.KAFKA_EXECUTIONS,
    names.KAFKA_SIGNALS,
    names.KAFKA_DEAD_LETTER,
)
# Messages sent ahead of what the engine has taken in, at most.
_AHEAD: int = 500


@dataclasses.dataclass
class BusFuzzReport:
    sent: int
    by_kind: dict[str, int]
    received: int
    decided: int
    executions: int
    duplicates: int
    dead_letters: dict[str, int]
    in_hand: int
    shed_inbound: int
    # Inputs with no signal, no dead letter, and no earlier copy: (kind, seed).
    vanished: list[tuple[str, int]]
    # Signal and dead-letter messages seen on NATS and on Kafka.
    outputs_on_nats: int
    outputs_on_kafka: int
    # Whether both transports carried the same messages (by message id, as often).
    transports_alike: bool
    # Outputs Kafka refused for good (kept in the outbox's quarantine).
    kafka_quarantined: int
    seconds: float

    @property
    def accounted(self) -> bool:
        outcomes = (
            self.decided + self.executions + self.duplicates + sum(self.dead_letters.values())
        )
        return self.sent == self.received == outcomes and self.in_hand == 0

    @property
    def holds(self) -> bool:
        """Every input accounted for, none vanished or shed, both transports alike."""
        return (
            self.accounted
            and not self.vanished
            and self.shed_inbound == 0
            and self.transports_alike
            and self.kafka_quarantined == 0
        )


def draw_inputs(count: int, seed: int, shares: dict[str, int] | None = None) -> list[BusInput]:
    """`count` inputs whose kinds follow `shares` (KINDS' by default), reproducibly from `seed`."""
    rng = random.Random(seed)
    shares = shares or KINDS
    kinds = rng.choices(list(shares), weights=list(shares.values()), k=count)
    inputs: list[BusInput] = []
    for index, kind in enumerate(kinds):
        inputs.append(bus_input(kind, seed * 10_000_000 + index, inputs))
    return inputs


class _Observer:
    """The signal and dead-letter subjects, as a consumer sees them."""

    def __init__(self) -> None:
        self.signal_ids: set[str] = set()
        self.letters: set[bytes] = set()
        self.letter_messages = 0
        # Every signal and dead-letter message, by message id.
        self.message_ids: collections.Counter[str] = collections.Counter()

    async def on_signals(self, msg: Msg) -> None:
        envelope = Envelope.FromString(msg.data)
        self.message_ids[envelope.message_id] += 1
        # Parts of one batch count once: "<input id>:signals" or "<input id>:signals:k/n".
        self.signal_ids.add(envelope.message_id.split(":signals", 1)[0])

    async def on_dead_letter(self, msg: Msg) -> None:
        envelope = Envelope.FromString(msg.data)
        self.message_ids[envelope.message_id] += 1
        letter = dead_letter_pb2.DeadLetter.FromString(envelope.payload)
        self.letters.add(letter.original_sha256)
        self.letter_messages += 1


async def fuzz_bus(inputs: list[BusInput], workdir: Path, within_s: float = 120.0) -> BusFuzzReport:
    """Send `inputs` to a fresh engine on fresh brokers; what became of them."""
    nats_server = NatsServer(workdir / "nats")
    kafka_broker = KafkaBroker(workdir / "kafka")
    nats_server.start()
    kafka_broker.start()
    try:
        await kafka_broker.create_topics(_TOPICS, partitions=3)
        settings = EngineSettings(
            grpc_port=0,
            data_dir=str(workdir / "engine"),
            bus_nats_url=nats_server.url,
            bus_kafka_bootstrap=kafka_broker.bootstrap,
            bus_kafka_idempotence=False,
            bus_kafka_session_timeout_ms=2000,
            history_flush_seconds=0.05,
            log_level="ERROR",
        )
        engine = Application(settings)
        await engine.start()
        try:
            return await _send_and_account(engine, inputs, nats_server, kafka_broker, within_s)
        finally:
            await engine.stop()
    finally:
        nats_server.stop()
        kafka_broker.stop()


async def _send_and_account(
    engine: Application,
    inputs: list[BusInput],
    nats_server: NatsServer,
    kafka_broker: KafkaBroker,
    within_s: float,
) -> BusFuzzReport:
    bus = engine.bus
    counts = bus.bridge.counts
    deadline = time.monotonic() + within_s
    while not (bus.nats and bus.nats.connected and bus.kafka and bus.kafka.consumer_ready):
        await _before(deadline, "the engine joins both brokers")
    observer = _Observer()
    client = await nats.connect(nats_server.url)
    await client.subscribe(names.NATS_SIGNALS, cb=observer.on_signals)
    await client.subscribe(names.NATS_DEAD_LETTER, cb=observer.on_dead_letter)
    await server_has_read(client)
    producer = AIOKafkaProducer(
        bootstrap_servers=kafka_broker.bootstrap, acks="all", enable_idempotence=False
    )
    await producer.start()
    started = time.monotonic()
    try:
        for sent, message in enumerate(inputs, start=1):
            if message.transport == "nats":
                await client.publish(message.destination, message.data)
            else:
                await producer.send(message.destination, message.data, key=b"fuzz")
            # Never far ahead of the engine: a fuzz run is not a load test.
            while sent - sum(counts.received.values()) > _AHEAD:
                await client.flush()
                await producer.flush()
                await _before(deadline, "the engine takes the inputs in")
        await client.flush()
        await producer.flush()

        def settled() -> bool:
            return (
                sum(counts.received.values()) == len(inputs)
                and counts.in_hand == 0
                and len(observer.signal_ids) == counts.batches_decided
                and observer.letter_messages == sum(counts.dead_letters.values())
            )

        while not settled():
            await _before(
                deadline,
                f"every input accounted for ({len(inputs)} sent; engine: {counts}; seen: "
                f"{len(observer.signal_ids)} decided, {observer.letter_messages} dead letters)",
            )
        seconds = time.monotonic() - started
    finally:
        await stop_client(producer)
        await client.close()
    output = bus.output
    while output is not None and output.unacknowledged:
        await _before(deadline, "Kafka output sent")
    on_kafka = await _messages_in(kafka_broker, (names.KAFKA_SIGNALS, names.KAFKA_DEAD_LETTER))
    return BusFuzzReport(
        sent=len(inputs),
        by_kind=dict(collections.Counter(message.kind for message in inputs)),
        received=sum(counts.received.values()),
        decided=counts.batches_decided,
        executions=counts.executions,
        duplicates=counts.duplicates,
        dead_letters=dict(counts.dead_letters),
        in_hand=counts.in_hand,
        shed_inbound=bus.nats.shed_inbound if bus.nats else 0,
        vanished=_vanished(inputs, observer),
        outputs_on_nats=sum(observer.message_ids.values()),
        outputs_on_kafka=sum(on_kafka.values()),
        transports_alike=on_kafka == observer.message_ids,
        kafka_quarantined=output.quarantined if output is not None else 0,
        seconds=seconds,
    )


def _vanished(inputs: list[BusInput], observer: _Observer) -> list[tuple[str, int]]:
    """Inputs that left no trace: no dead letter of their bytes, no signals for their id, and
    no earlier input with the same id (whose copy they would be)."""
    seen_ids: set[str] = set()
    vanished = []
    for message in inputs:
        message_id = _message_id(message.data)
        traced = (
            hashlib.sha256(message.data).digest() in observer.letters
            or (message_id and message_id in observer.signal_ids)
            or (message_id and message_id in seen_ids)
        )
        if not traced:
            vanished.append((message.kind, message.seed))
        if message_id:
            seen_ids.add(message_id)
    return vanished


def _message_id(data: bytes) -> str:
    try:
        return Envelope.FromString(data).message_id
    except Exception:
        return ""


async def _messages_in(broker: KafkaBroker, topics: tuple[str, ...]) -> collections.Counter[str]:
    """The message ids of every record in `topics`, read from the start until a second passes
    with none new (Tansu's end offsets can lag what it holds)."""
    consumer = AIOKafkaConsumer(
        *topics,
        bootstrap_servers=broker.bootstrap,
        group_id=None,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    ids: collections.Counter[str] = collections.Counter()
    try:
        while fetched := await consumer.getmany(timeout_ms=1000):
            for records in fetched.values():
                ids.update(Envelope.FromString(record.value).message_id for record in records)
    finally:
        await stop_client(consumer)
    return ids


async def _before(deadline: float, what: str) -> None:
    if time.monotonic() > deadline:
        raise TimeoutError(f"fuzz: not in time: {what}")
    await asyncio.sleep(0.02)
