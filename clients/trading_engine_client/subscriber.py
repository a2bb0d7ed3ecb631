"""SignalSubscriber: the engine's signal batches for Risk-Management and analytics.

The engine publishes every signal batch on NATS and on Kafka under the same
message id. Listening to both keeps signals coming while either broker is
away; the subscriber hands each message on once, whichever copy arrives first.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Iterable
from types import TracebackType
from typing import Final, Self

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError
from nats.aio.client import Client
from nats.aio.msg import Msg

from tradeflow.common.v1 import trace_pb2
from tradeflow.trading.v1 import signal_pb2
from trading_engine_client.bus_names import KAFKA, KAFKA_SIGNALS, NATS, NATS_SIGNALS
from trading_engine_client.envelopes import MalformedMessage, open_signals, signal_batch
from trading_engine_client.errors import TransportError
from trading_engine_client.message_ids import RecentIds
from trading_engine_client.transports import (
    close_nats,
    connect_nats,
    server_has_read,
    start_kafka,
    stop_kafka,
)

_log = logging.getLogger(__name__)

_WAKE: Final = object()


@dataclasses.dataclass(frozen=True, slots=True)
class SignalDelivery:
    """One signal batch, from the first copy of its message to arrive."""

    message_id: str
    # "nats" or "kafka": the transport whose copy came first.
    transport: str
    batch: signal_pb2.TradingSignalBatch
    # The trace the batch belongs to, to continue it in the consumer's own work.
    trace_context: trace_pb2.TraceContext
    # A batch too large for one bus message comes in parts (message ids
    # `<input id>:signals:1/3` ...): this delivery's part, from 1, of `part_count`, each
    # holding the next signals in input order; both 0 for a whole batch.
    part: int = 0
    part_count: int = 0


class SignalSubscriber:
    """Signal batches from NATS, Kafka, or both, each message once.

    Use as `async with SignalSubscriber(nats_url=..., kafka_bootstrap=...) as
    signals: async for delivery in signals: ...`. It receives the batches
    published after `start` returns (Kafka reads from the end of each
    partition the topic has then); it keeps no position of its own, and has
    no consumer group: de-duplicating across transports needs both copies of
    a message in the same process.

    `user_ids` and `company_ids` keep only those tenants' batches (empty:
    everyone's). `remembered_ids` bounds the memory of message ids: a copy
    arriving after that many newer messages would be handed on again.
    `buffer` bounds the deliveries waiting for the reader; beyond it the
    transports wait too.

    `close()` (or leaving the `async with`) ends the iteration at once,
    dropping what the reader has not taken. Both transports ride out a
    broker that goes away and comes back; a Kafka error that retrying cannot
    cure ends the iteration with TransportError. Messages that are not signal
    batch envelopes are logged, counted in `malformed` and skipped.
    """

    def __init__(
        self,
        *,
        nats_url: str | None = None,
        kafka_bootstrap: str | None = None,
        user_ids: Iterable[str] = (),
        company_ids: Iterable[str] = (),
        remembered_ids: int = 100_000,
        buffer: int = 1_000,
        connect_timeout: float = 5.0,
    ) -> None:
        if not nats_url and not kafka_bootstrap:
            raise ValueError("configure nats_url, kafka_bootstrap, or both")
        self._nats_url = nats_url
        self._kafka_bootstrap = kafka_bootstrap
        self._user_ids = frozenset(user_ids)
        self._company_ids = frozenset(company_ids)
        self._seen = RecentIds(remembered_ids)
        self._connect_timeout = connect_timeout
        self._queue: asyncio.Queue[SignalDelivery | object] = asyncio.Queue(buffer)
        self._nats: Client | None = None
        self._kafka: AIOKafkaConsumer | None = None
        self._consuming: asyncio.Task[None] | None = None
        self._closed = False
        self._failure: TransportError | None = None
        self.duplicates = 0
        self.malformed = 0

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    async def start(self) -> None:
        """Subscribe on every configured transport; TransportError if one cannot be reached."""
        try:
            if self._nats_url:
                self._nats = await connect_nats(
                    self._nats_url, "signal-subscriber", self._connect_timeout
                )
                await self._nats.subscribe(NATS_SIGNALS, cb=self._on_nats)
                await server_has_read(self._nats)
            if self._kafka_bootstrap:
                self._kafka = await self._kafka_from_the_end(self._kafka_bootstrap)
                self._consuming = asyncio.create_task(self._consume(self._kafka))
        except BaseException:
            await self.close()
            raise

    async def close(self) -> None:
        """Stop both transports and end the iteration."""
        self._closed = True
        if self._consuming is not None:
            self._consuming.cancel()
            await asyncio.gather(self._consuming, return_exceptions=True)
        if self._kafka is not None:
            await stop_kafka(self._kafka)
        if self._nats is not None:
            await close_nats(self._nats)
        self._wake_reader()

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> SignalDelivery:
        if not self._closed and self._failure is None:
            item = await self._queue.get()
            if isinstance(item, SignalDelivery):
                return item
        if self._failure is not None:
            raise self._failure
        raise StopAsyncIteration

    async def _kafka_from_the_end(self, bootstrap: str) -> AIOKafkaConsumer:
        consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap,
            client_id="signal-subscriber",
            group_id=None,
            enable_auto_commit=False,
            auto_offset_reset="latest",
            fetch_max_wait_ms=50,
        )
        await start_kafka(consumer, bootstrap)
        try:
            # Metadata first: partitions_for_topic reads what it fetched.
            await consumer.topics()
            numbers = consumer.partitions_for_topic(KAFKA_SIGNALS)
            if not numbers:
                raise TransportError(KAFKA, f"topic {KAFKA_SIGNALS} does not exist")
            partitions = [TopicPartition(KAFKA_SIGNALS, number) for number in sorted(numbers)]
            consumer.assign(partitions)
            if not await consumer.seek_to_end(*partitions):
                raise TransportError(KAFKA, f"the end of {KAFKA_SIGNALS} was not found in time")
        except BaseException:
            await stop_kafka(consumer)
            raise
        return consumer

    async def _on_nats(self, msg: Msg) -> None:
        await self._offer(msg.data, NATS)

    async def _consume(self, consumer: AIOKafkaConsumer) -> None:
        # Without a consumer group, aiokafka rides out a broker that goes away and comes back
        # inside getmany(); what it raises, retrying would not cure.
        try:
            while True:
                fetched = await consumer.getmany(timeout_ms=200)
                for records in fetched.values():
                    for record in records:
                        await self._offer(record.value, KAFKA)
        except KafkaError as error:
            failure = TransportError(KAFKA, f"consuming {KAFKA_SIGNALS} failed: {error!r}")
            failure.__cause__ = error
            self._failure = failure
            self._wake_reader()

    async def _offer(self, data: bytes, transport: str) -> None:
        """Queue the message for the reader if it is the first copy of a wanted batch."""
        if self._closed:
            return
        try:
            envelope = open_signals(data)
            if (self._user_ids and envelope.user_id not in self._user_ids) or (
                self._company_ids and envelope.company_id not in self._company_ids
            ):
                return
            if not self._seen.first_time(envelope.message_id):
                self.duplicates += 1
                return
            batch = signal_batch(envelope)
        except MalformedMessage as error:
            self.malformed += 1
            _log.warning("skipped a message on %s %s: %s", transport, _SOURCES[transport], error)
            return
        await self._queue.put(
            SignalDelivery(
                envelope.message_id,
                transport,
                batch,
                envelope.trace_context,
                envelope.part,
                envelope.part_count,
            )
        )

    def _wake_reader(self) -> None:
        """A reader waits only on an empty queue: give it something to wake up to."""
        if self._queue.empty():
            self._queue.put_nowait(_WAKE)


_SOURCES: Final = {NATS: NATS_SIGNALS, KAFKA: KAFKA_SIGNALS}
