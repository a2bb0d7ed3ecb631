"""PredictionPublisher: ML-Processing's way of handing prediction batches to the engine.

Each batch goes to NATS (the fast path) and Kafka (the durable one) at once,
in the envelope the engine's bus expects. The engine decides whichever copy
comes first and drops the other by its message id, so sending both costs no
second decision, and a batch still arrives when one broker is away.
"""

from __future__ import annotations

import asyncio
import functools
import os
import socket
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from types import TracebackType
from typing import Protocol, Self

from aiokafka import AIOKafkaProducer
from nats.aio.client import Client

from tradeflow.ml.v1 import prediction_pb2
from trading_engine_client.auth import Token
from trading_engine_client.bus_names import KAFKA, KAFKA_PREDICTIONS, NATS, NATS_PREDICTIONS
from trading_engine_client.envelopes import Sealed, seal_predictions
from trading_engine_client.errors import PublishError
from trading_engine_client.transports import (
    FAILURES,
    close_nats,
    connect_nats,
    server_has_read,
    start_kafka,
    stop_kafka,
)

Confirmation = Callable[[], Awaitable[None]]


class _Sender(Protocol):
    name: str

    async def start(self) -> None: ...

    async def hand_over(self, sealed: Sealed) -> Confirmation:
        """Queue the message for sending; the returned callable waits until the broker has it."""
        ...

    async def close(self) -> None: ...


class PredictionPublisher:
    """Publishes `MLPredictionBatch` messages on NATS, Kafka, or both.

    Use as `async with PredictionPublisher(nats_url=..., kafka_bootstrap=...)`
    (configure either or both). `publish(batch)` returns once every
    configured broker has the batch (a NATS round trip; Kafka's `acks=all`),
    or raises `PublishError` naming the transports that failed.

    Every envelope gets a fresh message id and the next number of this
    publisher's sequence (1, 2, ...), which the engine follows per
    `producer_id` to report batches that never arrived; batches leave in
    sequence order. `producer_id` defaults to one unique to this publisher:
    a sequence restarts at 1 with each publisher, so two publishers must
    never share an id. `token` (a JWT, or a callable returning a fresh one)
    goes in each envelope for engines that authenticate bus traffic.

    Kafka production is not idempotent: a copy that Kafka's retry duplicates
    carries the same message id, which the engine decides once, and brokers
    without idempotent production (Tansu) work too.
    """

    def __init__(
        self,
        *,
        nats_url: str | None = None,
        kafka_bootstrap: str | None = None,
        producer_id: str | None = None,
        service_source: str = "ml-processing",
        token: Token | None = None,
        send_timeout: float = 5.0,
    ) -> None:
        if not nats_url and not kafka_bootstrap:
            raise ValueError("configure nats_url, kafka_bootstrap, or both")
        self.producer_id = producer_id or _unique_producer_id(service_source)
        self.service_source = service_source
        self.send_timeout = send_timeout
        self._token = token
        self._sequence = 0
        # Sealing and handing over happen in turn, so messages leave in sequence order.
        self._turn = asyncio.Lock()
        self._senders: list[_Sender] = []
        if nats_url:
            self._senders.append(_NatsSender(nats_url, self.producer_id, send_timeout))
        if kafka_bootstrap:
            self._senders.append(_KafkaSender(kafka_bootstrap, self.producer_id, send_timeout))

    @property
    def transports(self) -> tuple[str, ...]:
        return tuple(sender.name for sender in self._senders)

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
        """Connect to every configured broker; TransportError names one that cannot be reached."""
        started: list[_Sender] = []
        try:
            for sender in self._senders:
                await sender.start()
                started.append(sender)
        except BaseException:
            for sender in started:
                await sender.close()
            raise

    async def close(self) -> None:
        """Send what is queued, then disconnect; a broker that is away gets nothing more."""
        for sender in self._senders:
            await sender.close()

    async def publish(
        self,
        batch: prediction_pb2.MLPredictionBatch,
        *,
        traceparent: str = "",
        tracestate: str = "",
    ) -> str:
        """Publish one batch on every configured transport; its message id.

        `traceparent` and `tracestate` (W3C Trace Context) continue the
        caller's trace; without them the batch starts a trace of its own.
        Raises ValueError for a batch without a tenant, PublishError when a
        transport failed (the batch may have reached the others).
        """
        async with self._turn:
            sealed = seal_predictions(
                batch,
                producer_id=self.producer_id,
                sequence=self._sequence + 1,
                service_source=self.service_source,
                traceparent=traceparent,
                tracestate=tracestate,
                token=self._token,
                now_ns=time.time_ns(),
            )
            self._sequence = sealed.sequence
            confirmations = await self._hand_over(sealed, self._senders)
        await self._confirm(sealed, confirmations, delivered=())
        return sealed.message_id

    async def resend(self, error: PublishError) -> None:
        """Send a batch that failed again, unchanged, on the transports that failed.

        The message id and sequence number stay the batch's own, so the
        engine decides it once even if a failed copy arrived after all.
        Raises PublishError again if a transport still fails.
        """
        senders = [sender for sender in self._senders if sender.name in error.failures]
        async with self._turn:
            confirmations = await self._hand_over(error.sealed, senders)
        await self._confirm(error.sealed, confirmations, delivered=error.delivered)

    async def _hand_over(
        self, sealed: Sealed, senders: Sequence[_Sender]
    ) -> dict[str, Confirmation | BaseException]:
        handed: dict[str, Confirmation | BaseException] = {}
        for sender in senders:
            try:
                async with asyncio.timeout(self.send_timeout):
                    handed[sender.name] = await sender.hand_over(sealed)
            except FAILURES as error:
                handed[sender.name] = error
        return handed

    async def _confirm(
        self,
        sealed: Sealed,
        confirmations: dict[str, Confirmation | BaseException],
        delivered: tuple[str, ...],
    ) -> None:
        async def outcome(handed: Confirmation | BaseException) -> BaseException | None:
            if isinstance(handed, BaseException):
                return handed
            try:
                async with asyncio.timeout(self.send_timeout):
                    await handed()
            except FAILURES as error:
                return error
            return None

        outcomes = await asyncio.gather(*(outcome(each) for each in confirmations.values()))
        failures = {
            name: error
            for name, error in zip(confirmations, outcomes, strict=True)
            if error is not None
        }
        if failures:
            delivered += tuple(name for name in confirmations if name not in failures)
            raise PublishError(sealed.message_id, failures, delivered, sealed)


def _unique_producer_id(service_source: str) -> str:
    """Host, process and a random part: unique to this publisher, and says where it runs."""
    return f"{service_source}@{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class _NotStarted(RuntimeError):
    def __init__(self) -> None:
        super().__init__("start the publisher first: async with PredictionPublisher(...)")


class _NatsSender:
    name = NATS

    def __init__(self, url: str, client_name: str, timeout: float) -> None:
        self._url = url
        self._client_name = client_name
        self._timeout = timeout
        self._client: Client | None = None

    async def start(self) -> None:
        self._client = await connect_nats(self._url, self._client_name, self._timeout)

    async def hand_over(self, sealed: Sealed) -> Confirmation:
        if self._client is None:
            raise _NotStarted
        await self._client.publish(NATS_PREDICTIONS, sealed.data, headers=dict(sealed.headers))
        return functools.partial(server_has_read, self._client)

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is None:
            return
        try:
            await client.drain()
        except FAILURES:
            # Reconnecting: what it buffered cannot go now, and publish reported it as failed.
            await close_nats(client)


class _KafkaSender:
    name = KAFKA

    def __init__(self, bootstrap: str, client_id: str, timeout: float) -> None:
        self._bootstrap = bootstrap
        self._client_id = client_id
        self._timeout = timeout
        self._producer: AIOKafkaProducer | None = None

    async def start(self) -> None:
        producer = AIOKafkaProducer(
            bootstrap_servers=self._bootstrap,
            client_id=self._client_id,
            acks="all",
            enable_idempotence=False,
            request_timeout_ms=round(self._timeout * 1000),
        )
        await start_kafka(producer, self._bootstrap)
        self._producer = producer

    async def hand_over(self, sealed: Sealed) -> Confirmation:
        if self._producer is None:
            raise _NotStarted
        acknowledged = await self._producer.send(
            KAFKA_PREDICTIONS,
            sealed.data,
            key=sealed.key,
            headers=[(name, value.encode()) for name, value in sealed.headers],
        )

        async def confirm() -> None:
            await acknowledged

        return confirm

    async def close(self) -> None:
        producer, self._producer = self._producer, None
        if producer is not None:
            await stop_kafka(producer)
