"""PredictionPublisher and SignalSubscriber against real brokers and an engine on both of them."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import nats
import pytest
from nats.aio.client import Client
from nats.aio.msg import Msg

from tests import factories
from tests.bus.busclient import BusClient, eventually
from tradeflow.common.v1 import envelope_pb2
from tradeflow.ml.v1 import prediction_pb2
from tradeflow.trading.v1 import signal_pb2
from trading_engine.app import Application
from trading_engine.bus import envelope as engine_envelope
from trading_engine.bus import names as engine_names
from trading_engine.devstack.brokers import KafkaBroker, NatsServer, free_port
from trading_engine_client import (
    PredictionPublisher,
    PublishError,
    SignalDelivery,
    SignalSubscriber,
    TransportError,
)
from trading_engine_client import bus_names as names
from trading_engine_client.message_ids import RecentIds
from trading_engine_client.transports import server_has_read

pytestmark = pytest.mark.timeout(90)

Envelope = envelope_pb2.TradingProcessingEnvelope
TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def test_subjects_topics_and_headers_are_the_engines() -> None:
    assert (names.NATS_PREDICTIONS, names.NATS_SIGNALS) == (
        engine_names.NATS_PREDICTIONS,
        engine_names.NATS_SIGNALS,
    )
    assert (names.KAFKA_PREDICTIONS, names.KAFKA_SIGNALS) == (
        engine_names.KAFKA_PREDICTIONS,
        engine_names.KAFKA_SIGNALS,
    )
    assert (names.NATS, names.KAFKA) == (engine_names.NATS, engine_names.KAFKA)
    headers = (
        names.MESSAGE_ID,
        names.MESSAGE_TYPE,
        names.CORRELATION_ID,
        names.TRACEPARENT,
        names.TRACESTATE,
    )
    assert headers == (
        engine_envelope.MESSAGE_ID,
        engine_envelope.MESSAGE_TYPE,
        engine_envelope.CORRELATION_ID,
        engine_envelope.TRACEPARENT,
        engine_envelope.TRACESTATE,
    )
    assert names.tenant_key("acme", "trader-1") == engine_envelope.tenant_key("acme", "trader-1")


def live_batch(batch_id: str, user_id: str = "trader-1") -> prediction_pb2.MLPredictionBatch:
    prediction = factories.prediction(f"{batch_id}-eur")
    return factories.live(factories.batch(batch_id, [prediction], user_id=user_id))


async def next_delivery(subscriber: SignalSubscriber, within: float = 15.0) -> SignalDelivery:
    return await asyncio.wait_for(anext(subscriber), within)


async def nothing_more(subscriber: SignalSubscriber) -> None:
    with pytest.raises(TimeoutError):
        await next_delivery(subscriber, within=0.5)


async def test_published_batches_are_decided_once_and_their_signals_arrive_once(
    bus_engine: Application, nats_server: NatsServer, kafka_broker: KafkaBroker
) -> None:
    nats_url, kafka_bootstrap = nats_server.url, kafka_broker.bootstrap
    async with (
        SignalSubscriber(nats_url=nats_url, kafka_bootstrap=kafka_bootstrap) as subscriber,
        PredictionPublisher(nats_url=nats_url, kafka_bootstrap=kafka_bootstrap) as publisher,
    ):
        first = await publisher.publish(live_batch("bus-1"), traceparent=TRACEPARENT)
        second = await publisher.publish(live_batch("bus-2"))

        deliveries = [await next_delivery(subscriber), await next_delivery(subscriber)]
        assert [d.message_id for d in deliveries] == [f"{first}:signals", f"{second}:signals"]
        assert [d.batch.batch_id for d in deliveries] == ["bus-1", "bus-2"]
        signal = deliveries[0].batch.signals[0]
        assert (signal.symbol, signal.signal_type) == ("EURUSD", signal_pb2.SIGNAL_TYPE_BUY)
        assert deliveries[0].trace_context.traceparent == TRACEPARENT
        assert {d.transport for d in deliveries} <= {names.NATS, names.KAFKA}

        # Each batch came on both transports, and each was handed on once.
        await eventually(lambda: subscriber.duplicates == 2, what="the second copy of each")
        await nothing_more(subscriber)
    counts = bus_engine.bus.bridge.counts
    assert (counts.batches_decided, counts.duplicates) == (2, 2)
    # The publisher's sequence had no gap.
    assert bus_engine.bus.bridge.sequences.gaps == 0


async def test_the_envelope_carries_what_the_engine_checks(nats_server: NatsServer) -> None:
    received: list[Msg] = []

    async def keep(msg: Msg) -> None:
        received.append(msg)

    listener = await nats.connect(nats_server.url)
    try:
        await listener.subscribe(names.NATS_PREDICTIONS, cb=keep)
        await server_has_read(listener)
        tokens = iter(["jwt-1", "jwt-2"])
        async with PredictionPublisher(
            nats_url=nats_server.url, token=lambda: next(tokens)
        ) as publisher:
            with pytest.raises(ValueError, match="user_context"):
                await publisher.publish(prediction_pb2.MLPredictionBatch(batch_id="nobody"))
            batches = [live_batch("env-1"), live_batch("env-2")]
            ids = [await publisher.publish(batch) for batch in batches]
        await eventually(lambda: len(received) == 2, what="both envelopes on NATS")
    finally:
        await listener.close()

    envelopes = [Envelope.FromString(msg.data) for msg in received]
    assert [e.message_id for e in envelopes] == ids
    assert len(set(ids)) == 2
    # The refused batch took no sequence number.
    assert [e.sequence for e in envelopes] == [1, 2]
    assert {e.producer_id for e in envelopes} == {publisher.producer_id}
    for envelope, batch, msg in zip(envelopes, batches, received, strict=True):
        assert envelope.message_type == envelope_pb2.MESSAGE_TYPE_ML_PREDICTION_BATCH
        assert (envelope.user_id, envelope.company_id) == ("trader-1", "acme")
        assert envelope.payload == batch.SerializeToString()
        assert envelope.correlation_id == batch.correlation_id
        assert envelope.service_source == "ml-processing"
        # The engine opens it as its own inbound envelope.
        assert engine_envelope.open_envelope(msg.data, engine_envelope.PREDICTIONS) == envelope
        headers = msg.headers or {}
        assert headers[names.MESSAGE_ID] == envelope.message_id
        assert headers[names.TRACEPARENT] == envelope.trace_context.traceparent
    assert [e.auth_token.jwt for e in envelopes] == ["jwt-1", "jwt-2"]


@contextlib.asynccontextmanager
async def signal_feed(nats_server: NatsServer) -> AsyncIterator[Client]:
    """A NATS connection that plays the engine's part on the signal subject."""
    feed = await nats.connect(nats_server.url)
    try:
        yield feed
    finally:
        await feed.close()


def signal_envelope(message_id: str, user_id: str, company_id: str = "acme") -> bytes:
    batch = signal_pb2.TradingSignalBatch(batch_id=message_id, user_id=user_id)
    return Envelope(
        message_type=envelope_pb2.MESSAGE_TYPE_TRADING_SIGNAL_BATCH,
        user_id=user_id,
        company_id=company_id,
        message_id=message_id,
        payload=batch.SerializeToString(),
    ).SerializeToString()


async def test_filters_keep_only_the_named_tenants(nats_server: NatsServer) -> None:
    async with (
        signal_feed(nats_server) as feed,
        SignalSubscriber(nats_url=nats_server.url, user_ids=["trader-2"]) as one_user,
        SignalSubscriber(nats_url=nats_server.url, company_ids=["rival"]) as one_company,
    ):
        await feed.publish(names.NATS_SIGNALS, signal_envelope("m-1", "trader-1"))
        await feed.publish(names.NATS_SIGNALS, signal_envelope("m-2", "trader-2"))
        await feed.publish(names.NATS_SIGNALS, signal_envelope("m-3", "boss-1", "rival"))
        assert (await next_delivery(one_user)).batch.user_id == "trader-2"
        assert (await next_delivery(one_company)).batch.user_id == "boss-1"
        await nothing_more(one_user)
        await nothing_more(one_company)


async def test_malformed_messages_are_counted_and_skipped(nats_server: NatsServer) -> None:
    async with (
        signal_feed(nats_server) as feed,
        SignalSubscriber(nats_url=nats_server.url) as subscriber,
    ):
        await feed.publish(names.NATS_SIGNALS, b"\xff not protobuf")
        wrong_type = Envelope(
            message_type=envelope_pb2.MESSAGE_TYPE_ML_PREDICTION_BATCH, message_id="p-1"
        )
        await feed.publish(names.NATS_SIGNALS, wrong_type.SerializeToString())
        # A type no version knows (a forged or newer producer's) is malformed too.
        unknown_type = Envelope(message_type=99, message_id="p-2")  # type: ignore[arg-type]
        await feed.publish(names.NATS_SIGNALS, unknown_type.SerializeToString())
        await feed.publish(names.NATS_SIGNALS, signal_envelope("m-1", "trader-1"))
        assert (await next_delivery(subscriber)).message_id == "m-1"
        assert subscriber.malformed == 3


async def test_a_batch_sent_in_parts_is_delivered_part_by_part_with_its_position(
    nats_server: NatsServer,
) -> None:
    async with (
        signal_feed(nats_server) as feed,
        SignalSubscriber(nats_url=nats_server.url) as subscriber,
    ):
        for part in (1, 2):
            envelope = Envelope.FromString(signal_envelope(f"in-1:signals:{part}/2", "trader-1"))
            envelope.part, envelope.part_count = part, 2
            await feed.publish(names.NATS_SIGNALS, envelope.SerializeToString())
        await feed.publish(names.NATS_SIGNALS, signal_envelope("in-2:signals", "trader-1"))
        deliveries = [await next_delivery(subscriber) for _ in range(3)]
    assert [(d.message_id, d.part, d.part_count) for d in deliveries] == [
        ("in-1:signals:1/2", 1, 2),
        ("in-1:signals:2/2", 2, 2),
        ("in-2:signals", 0, 0),
    ]


async def test_close_ends_an_iteration_that_waits(nats_server: NatsServer) -> None:
    subscriber = SignalSubscriber(nats_url=nats_server.url)
    await subscriber.start()
    received = [delivery async for delivery in _closed_soon(subscriber)]
    assert received == []


async def _closed_soon(subscriber: SignalSubscriber) -> AsyncIterator[SignalDelivery]:
    closing = asyncio.get_running_loop().call_later(
        0.2, lambda: asyncio.ensure_future(subscriber.close())
    )
    try:
        async with asyncio.timeout(5):
            async for delivery in subscriber:
                yield delivery
    finally:
        closing.cancel()


def test_the_memory_of_message_ids_is_bounded() -> None:
    seen = RecentIds(capacity=2)
    assert [seen.first_time(i) for i in ("a", "b", "a", "c")] == [True, True, False, True]
    # "a" was the oldest of three: forgotten, so a copy arriving this late counts as new.
    assert seen.first_time("a")
    assert not seen.first_time("c")


async def test_an_unreachable_broker_is_named_at_start() -> None:
    publisher = PredictionPublisher(nats_url=f"nats://127.0.0.1:{free_port()}", send_timeout=1)
    with pytest.raises(TransportError) as raised:
        await publisher.start()
    assert raised.value.transport == names.NATS


async def test_a_failed_transport_is_named_and_the_batch_resent_unchanged(
    bus_engine: Application, nats_server: NatsServer, kafka_broker: KafkaBroker
) -> None:
    async with PredictionPublisher(
        nats_url=nats_server.url, kafka_bootstrap=kafka_broker.bootstrap, send_timeout=1.0
    ) as publisher:
        kafka_broker.kill()
        with pytest.raises(PublishError) as raised:
            await publisher.publish(live_batch("outage-1"))
        failure = raised.value
        assert set(failure.failures) == {names.KAFKA}
        assert failure.delivered == (names.NATS,)
        counts = bus_engine.bus.bridge.counts
        # The NATS copy was enough for the engine to decide.
        await eventually(lambda: counts.batches_decided == 1, what="the NATS copy decided")

        # Tansu comes back empty (trading_engine/devstack/brokers.py).
        kafka_broker.start()
        await publisher.resend(failure)
    on_kafka = await BusClient(nats_server.url, kafka_broker.bootstrap).read_topic(
        names.KAFKA_PREDICTIONS
    )
    # Kafka may also have delivered the first copy once it was back: either way, every copy is
    # the same message, which the engine decides once.
    assert on_kafka.envelopes
    assert {(e.message_id, e.sequence) for e in on_kafka.envelopes} == {(failure.message_id, 1)}


async def test_both_shut_down_cleanly_while_the_brokers_are_away(
    nats_server: NatsServer, kafka_broker: KafkaBroker
) -> None:
    nats_url, kafka_bootstrap = nats_server.url, kafka_broker.bootstrap
    publisher = PredictionPublisher(
        nats_url=nats_url, kafka_bootstrap=kafka_bootstrap, send_timeout=1.0
    )
    subscriber = SignalSubscriber(nats_url=nats_url, kafka_bootstrap=kafka_bootstrap)
    await publisher.start()
    await subscriber.start()
    nats_server.kill()
    kafka_broker.kill()
    with pytest.raises(PublishError) as raised:
        await publisher.publish(live_batch("away-1"))
    assert set(raised.value.failures) == {names.NATS, names.KAFKA}
    assert raised.value.delivered == ()

    async with asyncio.timeout(10):
        await publisher.close()
        await subscriber.close()
    # Nothing keeps trying to reach a broker after close.
    reconnecting = [
        task
        for task in asyncio.all_tasks()
        if getattr(task.get_coro(), "__name__", "") == "_attempt_reconnect" and not task.done()
    ]
    assert reconnecting == []


async def test_the_subscriber_rides_out_a_kafka_restart(
    nats_server: NatsServer, kafka_broker: KafkaBroker
) -> None:
    engine_side = BusClient(nats_server.url, kafka_broker.bootstrap)
    async with SignalSubscriber(kafka_bootstrap=kafka_broker.bootstrap) as subscriber:
        kafka_broker.kill()
        await asyncio.sleep(1.0)
        # Tansu comes back empty, with the topics the fixture made (devstack/brokers.py).
        kafka_broker.start()
        await engine_side.start()
        try:
            await engine_side.to_kafka(signal_envelope("after", "trader-1"), names.KAFKA_SIGNALS)
            delivery = await next_delivery(subscriber)
        finally:
            await engine_side.close()
    assert (delivery.message_id, delivery.transport) == ("after", names.KAFKA)
