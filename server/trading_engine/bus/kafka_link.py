"""Kafka: a consumer group in, an ordered producer out, offsets committed after hand-off.

aiokafka's defaults are wrong for this path: acks=1 loses a message when the
leader dies before replicating it, auto-commit commits what was only fetched,
and idempotence is off. Here acks is "all", offsets are committed only once a
message's outputs are handed off (sent, or kept in the outbox), and idempotent
production is on unless the broker lacks it.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Final, TypeVar

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import (
    CorruptRecordException,
    InvalidTopicError,
    KafkaError,
    MessageSizeTooLargeError,
    RecordListTooLargeError,
    RecordTooLargeError,
)
from aiokafka.structs import OffsetAndMetadata

from trading_engine.bus.envelope import Inbound, Outbound
from trading_engine.bus.names import KAFKA
from trading_engine.bus.outbox import KafkaOutput

_log = logging.getLogger(__name__)

Handler = Callable[[Inbound], Awaitable[None]]
_Client = TypeVar("_Client", AIOKafkaProducer, AIOKafkaConsumer)
_STOP_S: Final = 5.0
_LAG_EVERY_S: Final = 1.0
# Errors about the message itself, not the broker's state: sending it again cannot succeed.
_REFUSED_FOR_GOOD: Final = (
    MessageSizeTooLargeError,
    RecordTooLargeError,
    RecordListTooLargeError,
    CorruptRecordException,
    InvalidTopicError,
)


@dataclasses.dataclass(frozen=True, slots=True)
class KafkaOptions:
    bootstrap: str
    group_id: str
    idempotence: bool
    request_timeout_ms: int
    session_timeout_ms: int
    commit_interval_seconds: float
    max_poll_records: int
    # The largest message the producer sends; larger ones are refused before sending.
    max_message_bytes: int


class OffsetTracker:
    """Per partition: the offsets handed to the engine, and how far all are handed off."""

    def __init__(self) -> None:
        self._started: dict[TopicPartition, collections.deque[int]] = {}
        self._done: dict[TopicPartition, set[int]] = {}
        self._committable: dict[TopicPartition, int] = {}

    def started(self, partition: TopicPartition, offset: int) -> Callable[[], None]:
        """Note the offset as being processed; the returned receipt marks it handed off."""
        self._started.setdefault(partition, collections.deque()).append(offset)
        self._done.setdefault(partition, set())
        return lambda: self._handed_off(partition, offset)

    def committable(self) -> dict[TopicPartition, int]:
        """Next offset to consume per partition, for partitions that advanced; then forgotten."""
        ready, self._committable = self._committable, {}
        return ready

    def keep_only(self, assigned: set[TopicPartition]) -> None:
        """Forget partitions a rebalance took away: their new owner starts at the last commit."""
        for partition in set(self._started) - assigned:
            self._started.pop(partition, None)
            self._done.pop(partition, None)
            self._committable.pop(partition, None)

    def _handed_off(self, partition: TopicPartition, offset: int) -> None:
        started = self._started.get(partition)
        done = self._done.get(partition)
        if started is None or done is None:
            return
        done.add(offset)
        while started and started[0] in done:
            done.discard(first := started.popleft())
            self._committable[partition] = first + 1


class KafkaLink:
    def __init__(
        self,
        options: KafkaOptions,
        subscriptions: dict[str, Handler],
        output: KafkaOutput,
    ) -> None:
        self._options = options
        self._subscriptions = subscriptions
        self._output = output
        self._offsets = OffsetTracker()
        self._producer: AIOKafkaProducer | None = None
        self._consumer: AIOKafkaConsumer | None = None
        self._stopping = asyncio.Event()
        self.producer_ready = False
        self.consumer_ready = False
        self.last_error = ""
        # Records waiting per assigned partition, measured at most once a second.
        self._lag: dict[tuple[str, int], int] = {}
        self._lag_measured_at = 0.0

    async def run_producer(self) -> None:
        """Start the producer, retrying until Kafka answers; it reconnects by itself after."""
        options = self._options
        producer = await self._start(
            lambda: AIOKafkaProducer(
                bootstrap_servers=options.bootstrap,
                client_id="trading-engine",
                acks="all",
                enable_idempotence=options.idempotence,
                request_timeout_ms=options.request_timeout_ms,
                retry_backoff_ms=100,
                linger_ms=1,
                max_request_size=options.max_message_bytes,
            ),
            "producer",
        )
        self._producer = producer
        self.producer_ready = True
        self._output.attach(_Sender(producer))

    async def run_consumer(self) -> None:
        """Consume the subscribed topics in the consumer group until cancelled."""
        options = self._options
        consumer = await self._start(
            lambda: AIOKafkaConsumer(
                *self._subscriptions,
                bootstrap_servers=options.bootstrap,
                client_id="trading-engine",
                group_id=options.group_id,
                enable_auto_commit=False,
                auto_offset_reset="earliest",
                fetch_max_wait_ms=50,
                request_timeout_ms=max(options.request_timeout_ms, 10_000),
                max_poll_records=options.max_poll_records,
                session_timeout_ms=options.session_timeout_ms,
                heartbeat_interval_ms=max(options.session_timeout_ms // 4, 100),
                retry_backoff_ms=100,
            ),
            "consumer",
        )
        self._consumer = consumer
        self.consumer_ready = True
        committing = asyncio.create_task(self._commit_periodically(consumer))
        try:
            while not self._stopping.is_set():
                try:
                    fetched = await consumer.getmany(timeout_ms=100)
                except KafkaError as error:
                    self._note_error(f"Kafka fetch: {error}")
                    await asyncio.sleep(0.5)
                    continue
                await self._handle(fetched)
                await self._measure_lag(consumer)
        except Exception:
            # Ended by a failure, not a stop: keep what was handed off, leave the group, and
            # let the next run join afresh from the committed offsets.
            self.consumer_ready = False
            self._consumer = None
            await self._commit(consumer)
            self._offsets = OffsetTracker()
            await stop_client(consumer)
            raise
        finally:
            committing.cancel()
            await asyncio.gather(committing, return_exceptions=True)

    @property
    def lag(self) -> dict[tuple[str, int], int]:
        """(topic, partition) of each partition this instance consumes -> records after the
        next one it takes (the partition's end offset minus its position); a copy."""
        return dict(self._lag)

    async def _measure_lag(self, consumer: AIOKafkaConsumer) -> None:
        now = time.monotonic()
        if now - self._lag_measured_at < _LAG_EVERY_S:
            return
        self._lag_measured_at = now
        lag = {}
        for partition in consumer.assignment():
            end = consumer.highwater(partition)
            if end is None:
                # Nothing fetched from it yet: its end is not known.
                continue
            position = await consumer.position(partition)
            lag[partition.topic, partition.partition] = max(end - position, 0)
        self._lag = lag

    @property
    def stopping(self) -> bool:
        """Whether intake was asked to stop (so its end is expected)."""
        return self._stopping.is_set()

    def stop_consuming(self) -> None:
        """Finish the message in hand, then stop taking Kafka input."""
        self._stopping.set()

    async def close(self) -> None:
        """Commit what was handed off and leave; unacknowledged output is in the outbox by now."""
        if self._consumer is not None:
            await self._commit(self._consumer)
        for client in (self._consumer, self._producer):
            if client is not None:
                await stop_client(client)

    async def _handle(self, fetched: dict[TopicPartition, list[object]]) -> None:
        if self._consumer is not None:
            self._offsets.keep_only(self._consumer.assignment())
        for partition, records in fetched.items():
            handler = self._subscriptions[partition.topic]
            for record in records:
                # Let NATS messages (and a stop) in between: a fetch holds up to 500 records.
                await asyncio.sleep(0)
                if self._stopping.is_set():
                    # Not started, so not committed: the group delivers it again.
                    return
                offset: int = record.offset  # type: ignore[attr-defined]
                headers = {
                    name: value.decode(errors="replace")
                    for name, value in record.headers or ()  # type: ignore[attr-defined]
                }
                receipt = self._offsets.started(partition, offset)
                await handler(
                    Inbound(KAFKA, partition.topic, record.value, headers, receipt)  # type: ignore[attr-defined]
                )

    async def _commit_periodically(self, consumer: AIOKafkaConsumer) -> None:
        while True:
            await asyncio.sleep(self._options.commit_interval_seconds)
            await self._commit(consumer)

    async def _commit(self, consumer: AIOKafkaConsumer) -> None:
        ready = self._offsets.committable()
        if not ready:
            return
        try:
            await consumer.commit(
                {tp: OffsetAndMetadata(offset, "") for tp, offset in ready.items()}
            )
        except KafkaError as error:
            # Not committed: on restart or rebalance these messages come again and are
            # recognised by message id if this instance still remembers them.
            self._note_error(f"Kafka commit: {error}")

    async def _start(self, build: Callable[[], _Client], role: str) -> _Client:
        """A started client; a client whose start failed is not reused."""
        delay = 0.1
        while True:
            client = build()
            try:
                await client.start()
            except KafkaError as error:
                self._note_error(f"Kafka {role} cannot start: {error}")
                await client.stop()
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)
            except asyncio.CancelledError:
                # The engine stops while the client is still joining.
                await client.stop()
                raise
            else:
                _log.info("Kafka %s connected to %s", role, self._options.bootstrap)
                return client

    def _note_error(self, message: str) -> None:
        if message != self.last_error:
            _log.warning("%s", message)
        self.last_error = message


async def stop_client(client: AIOKafkaProducer | AIOKafkaConsumer) -> None:
    """Stop an aiokafka client, also when Kafka is away.

    aiokafka's stop() re-raises its fetcher's last error (or a cancellation)
    when Kafka went away, and then skips closing its connections.
    """
    try:
        await asyncio.wait_for(client.stop(), _STOP_S)
    except (KafkaError, TimeoutError, asyncio.CancelledError) as error:
        task = asyncio.current_task()
        if task is not None and task.cancelling():
            raise
        _log.info("Kafka client stopped uncleanly: %r", error)
        await client._client.close()


class _Sender:
    """The outbox's view of the producer."""

    def __init__(self, producer: AIOKafkaProducer) -> None:
        self._producer = producer

    async def send(self, topic: str, message: Outbound) -> asyncio.Future[object]:
        future: asyncio.Future[object] = await self._producer.send(
            topic,
            message.data,
            key=message.key,
            headers=[(name, value.encode()) for name, value in message.headers],
        )
        return future

    def refuses_for_good(self, error: Exception) -> bool:
        return isinstance(error, _REFUSED_FOR_GOOD)
