"""NATS: subscriptions in a queue group, publishing, and the claims bucket.

nats-py's defaults are wrong for this path: a ping every 2 minutes leaves a
dead connection unnoticed for minutes, and it sheds messages past its
slow-consumer limits with no more than a callback. Both are set here, and what
is shed is counted.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections.abc import Awaitable, Callable
from typing import Final

import nats
import nats.errors
import nats.js.errors
from nats.aio.client import Client
from nats.aio.msg import Msg

from trading_engine.bus.claims import SharedClaims
from trading_engine.bus.envelope import Inbound, Outbound
from trading_engine.bus.names import NATS
from trading_engine_client.transports import server_has_read

_log = logging.getLogger(__name__)

# What nats-server takes by default, assumed until the server says otherwise.
DEFAULT_MAX_PAYLOAD: Final = 1024 * 1024

Handler = Callable[[Inbound], Awaitable[None]]


@dataclasses.dataclass(frozen=True, slots=True)
class NatsOptions:
    url: str
    queue_group: str
    ping_interval_seconds: int
    # Messages and bytes a subscription may hold before NATS sheds (and we count).
    pending_messages: int
    pending_bytes: int
    # Output buffered while disconnected, sent on reconnection; beyond it, shed.
    reconnect_buffer_bytes: int
    claim_ttl_seconds: float


class NatsLink:
    def __init__(
        self,
        options: NatsOptions,
        claims: SharedClaims | None,
    ) -> None:
        self._options = options
        self._subscriptions: dict[str, Handler] = {}
        self._claims = claims
        self._client: Client | None = None
        self.connected = False
        self._closing = False
        self.shed_inbound = 0
        self.shed_outbound = 0
        self.last_error = ""

    def route(self, subject: str, handler: Handler) -> None:
        """Hand the subject's messages to `handler`; before `run`."""
        self._subscriptions[subject] = handler

    async def run(self) -> None:
        """Connect (retrying until NATS answers), subscribe, and stay connected."""
        delay = 0.1
        while self._client is None:
            try:
                await self._connect()
            except (OSError, nats.errors.Error) as error:
                self._note_error(f"cannot connect to {self._options.url}: {error}")
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)

    @property
    def max_payload(self) -> int:
        """The largest message the server takes (headers included), as it announced."""
        client = self._client
        return client.max_payload if client is not None else DEFAULT_MAX_PAYLOAD

    async def publish(self, subject: str, message: Outbound) -> None:
        """Publish, or count the message as shed (Kafka still carries it); never raises."""
        client = self._client
        if client is None:
            # Never connected yet: Kafka carries this output (the outbox keeps it).
            self.shed_outbound += 1
            return
        try:
            await client.publish(subject, message.data, headers=dict(message.headers))
        except nats.errors.Error as error:
            # Disconnected with a full buffer, closing, or too large for this server.
            self.shed_outbound += 1
            self._note_error(f"NATS output shed: {type(error).__name__}: {error}")

    async def close(self) -> None:
        self._closing = True
        client, self._client = self._client, None
        if client is not None and not client.is_closed:
            # Drain: stop taking messages, finish the ones being handled, flush output.
            try:
                await client.drain()
            except (nats.errors.Error, TimeoutError) as error:
                _log.warning("NATS drain: %s", error)
                await client.close()

    async def _connect(self) -> None:
        options = self._options
        client = await nats.connect(
            options.url,
            name="trading-engine",
            allow_reconnect=True,
            max_reconnect_attempts=-1,
            reconnect_time_wait=1,
            connect_timeout=2,
            ping_interval=options.ping_interval_seconds,
            max_outstanding_pings=2,
            pending_size=options.reconnect_buffer_bytes,
            error_cb=self._on_error,
            disconnected_cb=self._on_disconnected,
            reconnected_cb=self._on_reconnected,
        )
        for subject, handler in self._subscriptions.items():
            await client.subscribe(
                subject,
                queue=options.queue_group,
                cb=self._receiver(subject, handler),
                pending_msgs_limit=options.pending_messages,
                pending_bytes_limit=options.pending_bytes,
            )
        # Ready means subscribed: a batch published the moment after is not missed.
        await server_has_read(client)
        self._client = client
        await self._on_reconnected()
        _log.info("NATS connected to %s (queue group %s)", options.url, options.queue_group)

    def _receiver(self, subject: str, handler: Handler) -> Callable[[Msg], Awaitable[None]]:
        async def receive(msg: Msg) -> None:
            await handler(Inbound(NATS, subject, msg.data, msg.headers or {}))

        return receive

    async def _on_error(self, error: Exception) -> None:
        if isinstance(error, nats.errors.SlowConsumerError):
            self.shed_inbound += 1
        self._note_error(f"NATS: {type(error).__name__}: {error}")

    async def _on_disconnected(self) -> None:
        self.connected = False
        if self._claims is not None:
            self._claims.attach(None)
        if not self._closing:
            _log.warning("NATS disconnected; reconnecting (Kafka carries on)")

    async def _on_reconnected(self) -> None:
        client = self._client
        if client is None:
            return
        self.connected = True
        if self._claims is not None:
            try:
                kv = await client.jetstream().create_key_value(
                    bucket=self._claims.bucket, ttl=self._options.claim_ttl_seconds, history=1
                )
            except (nats.errors.Error, TimeoutError) as error:
                self._note_error(f"no claims bucket {self._claims.bucket!r}: {error}")
            else:
                self._claims.attach(kv)

    def _note_error(self, message: str) -> None:
        if message != self.last_error:
            _log.warning("%s", message)
        self.last_error = message
