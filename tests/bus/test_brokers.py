"""The private brokers work as the bus needs them to, and survive the crashes the tests cause."""

from __future__ import annotations

import asyncio
import time

import nats
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import NodeNotReadyError
from nats.js.errors import KeyWrongLastSequenceError

from trading_engine.devstack.brokers import KafkaBroker, NatsServer


async def test_nats_delivers_bytes_with_headers(nats_server: NatsServer) -> None:
    client = await nats.connect(nats_server.url)
    try:
        subscription = await client.subscribe("signals.acme")
        await client.publish("signals.acme", b"\x00\xffbatch", headers={"Tenant": "acme"})
        message = await subscription.next_msg(timeout=2)
    finally:
        await client.close()
    assert message.data == b"\x00\xffbatch"
    assert message.headers == {"Tenant": "acme"}


async def test_nats_key_value_create_succeeds_once(nats_server: NatsServer) -> None:
    """`kv.create` is the engine's create-once guard: a second one raises."""
    client = await nats.connect(nats_server.url)
    try:
        bucket = await client.jetstream().create_key_value(bucket="decided-batches")
        assert await bucket.create("batch-1", b"first") == 1
        with pytest.raises(KeyWrongLastSequenceError):
            await bucket.create("batch-1", b"second")
        entry = await bucket.get("batch-1")
    finally:
        await client.close()
    assert entry.value == b"first"


async def test_nats_client_reconnects_after_a_crash(nats_server: NatsServer) -> None:
    """A killed server restarted on the same port and store: the client reconnects by itself.

    While it is disconnected, `publish` buffers (up to `pending_size`) instead of raising, and the
    buffer goes out after the subscriptions are replayed. Published between the crash and the
    client noticing it, a message is lost, so this test waits for `disconnected_cb`.
    """
    disconnected, reconnected = asyncio.Event(), asyncio.Event()

    async def on_disconnect() -> None:
        disconnected.set()

    async def on_reconnect() -> None:
        reconnected.set()

    async def on_error(error: Exception) -> None:
        """Reconnect attempts are refused until the restart; nats-py would log each one."""

    client = await nats.connect(
        nats_server.url,
        max_reconnect_attempts=-1,
        reconnect_time_wait=0.1,
        disconnected_cb=on_disconnect,
        reconnected_cb=on_reconnect,
        error_cb=on_error,
    )
    try:
        bucket = await client.jetstream().create_key_value(bucket="decided-batches")
        await bucket.create("batch-1", b"first")
        subscription = await client.subscribe("signals.acme")

        nats_server.kill()
        await asyncio.wait_for(disconnected.wait(), 5)
        await client.publish("signals.acme", b"while down")
        nats_server.restart()
        await asyncio.wait_for(reconnected.wait(), 5)
        await client.publish("signals.acme", b"after")

        received = [(await subscription.next_msg(timeout=2)).data for _ in range(2)]
        entry = await bucket.get("batch-1")
    finally:
        await client.close()
    assert received == [b"while down", b"after"]
    assert entry.value == b"first", "JetStream state is on disk and survives the crash"


def _producer(
    broker: KafkaBroker, request_timeout_ms: int = 5000
) -> AIOKafkaProducer[bytes, bytes]:
    """Tansu refuses InitProducerId, so no idempotence; acks=all is still honoured."""
    return AIOKafkaProducer(
        bootstrap_servers=broker.bootstrap,
        acks="all",
        enable_idempotence=False,
        request_timeout_ms=request_timeout_ms,
    )


def _consumer(broker: KafkaBroker, topic: str, group: str) -> AIOKafkaConsumer[bytes, bytes]:
    """A group member that commits by hand.

    Tansu answers JoinGroup only after about half the session timeout (rounded up to whole
    seconds, at least 1 s): `start()` blocks 5 s at aiokafka's default 10 s, 1 s at 2 s.
    On SIGTERM Tansu first finishes a pending long-poll fetch: a short one stops it sooner.
    """
    return AIOKafkaConsumer(
        topic,
        bootstrap_servers=broker.bootstrap,
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        session_timeout_ms=2000,
        heartbeat_interval_ms=500,
        fetch_max_wait_ms=100,
    )


async def _consume(
    consumer: AIOKafkaConsumer[bytes, bytes], count: int
) -> list[ConsumerRecord[bytes, bytes]]:
    """Exactly `count` records, waiting at most 10 s for them."""
    records: list[ConsumerRecord[bytes, bytes]] = []
    async with asyncio.timeout(10):
        while len(records) < count:
            for batch in (await consumer.getmany(timeout_ms=200)).values():
                records.extend(batch)
    assert len(records) == count
    return records


async def test_kafka_round_trip_through_a_consumer_group(kafka_broker: KafkaBroker) -> None:
    await kafka_broker.create_topics(["signals"], partitions=3)
    # The default partitioner (murmur2) spreads user-0 .. user-8 over all three partitions.
    sent = {
        f"user-{n}".encode(): (f"signal-{n}".encode(), [("tenant", b"acme"), ("n", b"%d" % n)])
        for n in range(9)
    }
    producer = _producer(kafka_broker)
    await producer.start()
    try:
        partitions = {
            key: (
                await producer.send_and_wait("signals", value, key=key, headers=headers)
            ).partition
            for key, (value, headers) in sent.items()
        }
    finally:
        await producer.stop()
    assert set(partitions.values()) == {0, 1, 2}

    consumer = _consumer(kafka_broker, "signals", "engine")
    await consumer.start()
    try:
        records = await _consume(consumer, len(sent))
        await consumer.commit()
        committed = {tp.partition: await consumer.committed(tp) for tp in consumer.assignment()}
    finally:
        await consumer.stop()
    assert {r.key: (r.value, list(r.headers), r.partition) for r in records} == {
        key: (value, headers, partitions[key]) for key, (value, headers) in sent.items()
    }
    assert committed == {p: list(partitions.values()).count(p) for p in (0, 1, 2)}


async def test_kafka_clients_recover_from_a_crash(kafka_broker: KafkaBroker) -> None:
    """A killed broker restarted on the same port: the same producer and consumer carry on.

    With the broker down, `send_and_wait` fails with NodeNotReadyError once
    `request_timeout_ms` has passed (2.0 s here). The restart creates the topic again with its
    3 partitions. The producer then sends at once; the consumer's group is gone, so it rejoins
    (~2 s) and, its committed offsets gone too, reads from the earliest offset. Memory storage
    starts the logs over: offset 0 again, and the failed send is not in them.
    """
    await kafka_broker.create_topics(["signals"], partitions=3)
    producer = _producer(kafka_broker, request_timeout_ms=2000)
    consumer = _consumer(kafka_broker, "signals", "engine")
    await producer.start()
    await consumer.start()
    try:
        await producer.send_and_wait("signals", b"before", key=b"user-1")
        assert [r.value for r in await _consume(consumer, 1)] == [b"before"]
        await consumer.commit()

        kafka_broker.kill()
        started = time.monotonic()
        with pytest.raises(NodeNotReadyError):
            await producer.send_and_wait("signals", b"lost", key=b"user-1")
        assert time.monotonic() - started < 4

        kafka_broker.restart()
        assert await _partitions(kafka_broker, "signals") == 3
        after = await producer.send_and_wait("signals", b"after", key=b"user-1")
        assert after.offset == 0
        assert [r.value for r in await _consume(consumer, 1)] == [b"after"]
    finally:
        await consumer.stop()
        await producer.stop()


async def _partitions(broker: KafkaBroker, topic: str) -> int:
    admin = AIOKafkaAdminClient(bootstrap_servers=broker.bootstrap)
    await admin.start()
    try:
        (described,) = await admin.describe_topics([topic])
    finally:
        await admin.close()
    return len(described["partitions"])
