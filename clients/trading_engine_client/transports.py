"""Connecting the publisher and the subscriber to NATS and Kafka, failing with TransportError.

NATS reconnects for ever once connected (the engine may restart its broker
under us); a broker that cannot be reached at start, though, is reported at
once, so a misconfigured service fails as it starts rather than later.
"""

from __future__ import annotations

import asyncio
import logging
import math
from typing import Final

import nats
import nats.errors
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.errors import KafkaError
from nats.aio.client import Client

from trading_engine_client.bus_names import KAFKA, NATS
from trading_engine_client.errors import TransportError

_log = logging.getLogger(__name__)

# What nats-py and aiokafka raise when a broker is away or too slow.
FAILURES: Final = (nats.errors.Error, KafkaError, OSError, TimeoutError)


async def connect_nats(url: str, name: str, timeout: float) -> Client:
    async def report(error: Exception) -> None:
        _log.warning("NATS %s: %s: %s", url, type(error).__name__, error)

    try:
        # nats-py retries a first connection as often as a lost one: for ever, without this.
        async with asyncio.timeout(timeout):
            return await nats.connect(
                url,
                name=name,
                connect_timeout=math.ceil(timeout),
                max_reconnect_attempts=-1,
                reconnect_time_wait=1,
                # Two missed pings two seconds apart drop a dead connection.
                ping_interval=2,
                max_outstanding_pings=2,
                error_cb=report,
            )
    except FAILURES as error:
        raise TransportError(NATS, f"cannot connect to {url}: {error!r}") from error


async def server_has_read(client: Client) -> None:
    """Return once the NATS server has read everything this client wrote before.

    nats-py 2.16's flush() writes its PING straight to the socket, ahead of the
    commands still queued for its flusher task, so the PONG can arrive before the
    server has read them: a SUB not yet in force, a PUB not yet received. The first
    flush also wakes the flusher, which writes the queue before that PONG can be
    read; the second PING follows everything queued.
    """
    await client.flush()
    await client.flush()


async def close_nats(client: Client) -> None:
    """Close a NATS connection, also one that is reconnecting.

    nats-py cancels its reconnection task once when closing; with nats-py 2.16
    on Python 3.11 that cancellation can be lost while the task is connecting,
    and the task then reconnects for ever. Cancel it until it ends.
    """
    await client.close()
    reconnecting = client._reconnection_task
    while reconnecting is not None and not reconnecting.done():
        reconnecting.cancel()
        await asyncio.wait({reconnecting}, timeout=0.1)


async def start_kafka(client: AIOKafkaProducer | AIOKafkaConsumer, bootstrap: str) -> None:
    try:
        await client.start()
    except FAILURES as error:
        await stop_kafka(client)
        raise TransportError(KAFKA, f"cannot connect to {bootstrap}: {error!r}") from error


async def stop_kafka(client: AIOKafkaProducer | AIOKafkaConsumer) -> None:
    """Stop an aiokafka client, also while Kafka is away.

    aiokafka's stop() then re-raises its fetcher's last error (or a
    cancellation) and skips closing its connections: close them here.
    """
    try:
        await client.stop()
    except (*FAILURES, asyncio.CancelledError):
        task = asyncio.current_task()
        if task is not None and task.cancelling():
            raise
        await client._client.close()
