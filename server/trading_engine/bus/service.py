"""The bus as one component: built from the settings, started and stopped by the app."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
import uuid
from pathlib import Path
from typing import Final

from trading_engine.bus.bridge import BusBridge, ExecutionSink
from trading_engine.bus.claims import Claims, LocalClaims, SharedClaims
from trading_engine.bus.deliveries import DeliveryLog
from trading_engine.bus.kafka_link import KafkaLink, KafkaOptions
from trading_engine.bus.names import (
    KAFKA_EXECUTIONS,
    KAFKA_PREDICTIONS,
    NATS_EXECUTIONS,
    NATS_PREDICTIONS,
)
from trading_engine.bus.nats_link import NatsLink, NatsOptions
from trading_engine.bus.outbox import DurableOutbox, KafkaOutput
from trading_engine.bus.supervision import SupervisedTask
from trading_engine.clock import Clock
from trading_engine.config import EngineSettings
from trading_engine.health import ComponentReport, ComponentState
from trading_engine.pipeline import SignalPipeline
from trading_engine.strategies import StrategyService
from trading_engine.tracing import Tracing

_log = logging.getLogger(__name__)

CLAIMS_BUCKET: Final = "trading-engine-claims"
# Long enough for a batch's slower copy (Kafka after an outage) to find the claim.
_CLAIM_TTL_S: Final = 3600.0
_OUTPUT_QUEUE: Final = 20_000
_OUTPUT_WINDOW: Final = 500
_STOP_DRAIN_S: Final = 5.0


class Bus:
    def __init__(
        self,
        settings: EngineSettings,
        pipeline: SignalPipeline,
        strategies: StrategyService,
        clock: Clock,
        executions: ExecutionSink,
        tracing: Tracing | None = None,
    ) -> None:
        self.enabled = bool(settings.bus_nats_url or settings.bus_kafka_bootstrap)
        shared = (
            SharedClaims(CLAIMS_BUCKET, f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex}")
            if settings.bus_claims == "nats"
            else None
        )
        self.claims: Claims = shared or LocalClaims()
        self._kafka_max_bytes = settings.bus_kafka_max_message_bytes
        self.output: KafkaOutput | None = None
        self.nats: NatsLink | None = None
        self.kafka: KafkaLink | None = None
        if settings.bus_kafka_bootstrap:
            outbox = DurableOutbox(Path(settings.data_dir) / "kafka-outbox.db")
            self.output = KafkaOutput(
                outbox,
                capacity=_OUTPUT_QUEUE,
                window=_OUTPUT_WINDOW,
                retry_seconds=0.5,
            )
        if settings.bus_nats_url:
            self.nats = NatsLink(
                NatsOptions(
                    url=settings.bus_nats_url,
                    queue_group=settings.bus_group,
                    ping_interval_seconds=2,
                    pending_messages=100_000,
                    pending_bytes=256 * 1024 * 1024,
                    reconnect_buffer_bytes=64 * 1024 * 1024,
                    claim_ttl_seconds=_CLAIM_TTL_S,
                ),
                shared,
            )
        self.bridge = BusBridge(
            pipeline,
            strategies,
            clock,
            self.claims,
            self.nats,
            self.output,
            DeliveryLog(settings.bus_dedupe_window),
            executions,
            tracing or Tracing(),
            self.max_message_bytes,
        )
        if self.nats is not None:
            self.nats.route(NATS_PREDICTIONS, self.bridge.on_predictions)
            self.nats.route(NATS_EXECUTIONS, self.bridge.on_execution)
        if self.output is not None:
            self.kafka = KafkaLink(
                KafkaOptions(
                    bootstrap=settings.bus_kafka_bootstrap,
                    group_id=settings.bus_group,
                    idempotence=settings.bus_kafka_idempotence,
                    request_timeout_ms=settings.bus_kafka_request_timeout_ms,
                    session_timeout_ms=settings.bus_kafka_session_timeout_ms,
                    commit_interval_seconds=0.2,
                    max_poll_records=500,
                    max_message_bytes=settings.bus_kafka_max_message_bytes,
                ),
                {
                    KAFKA_PREDICTIONS: self.bridge.on_predictions,
                    KAFKA_EXECUTIONS: self.bridge.on_execution,
                },
                self.output,
            )
        self._inputs: list[asyncio.Task[None]] = []
        # Restarted when they end unexpectedly, and reported in health meanwhile.
        self.sender: SupervisedTask | None = None
        self.consumer: SupervisedTask | None = None
        if self.output is not None:
            self.sender = SupervisedTask("Kafka output", self.output.run, lambda: False, clock)
        if self.kafka is not None:
            kafka = self.kafka
            self.consumer = SupervisedTask(
                "Kafka intake", kafka.run_consumer, lambda: kafka.stopping, clock
            )

    def max_message_bytes(self) -> int:
        """The largest message both transports take: output is sealed to fit it."""
        limits = []
        if self.nats is not None:
            limits.append(self.nats.max_payload)
        if self.kafka is not None:
            limits.append(self._kafka_max_bytes)
        return min(limits, default=self._kafka_max_bytes)

    async def start(self) -> None:
        """Connect in the background: the engine serves while a broker is still away."""
        if self.sender is not None:
            self.sender.start()
        if self.nats is not None:
            self._inputs.append(asyncio.create_task(self.nats.run()))
        if self.kafka is not None:
            self._inputs.append(asyncio.create_task(self.kafka.run_producer()))
        if self.consumer is not None:
            self.consumer.start()

    async def stop(self) -> None:
        """Stop taking messages, finish the ones in hand, and keep unsent output in the outbox."""
        if self.kafka is not None:
            self.kafka.stop_consuming()
        if self.nats is not None:
            await self.nats.close()
        # The Kafka consumer finishes the message in hand; connecting tasks just stop.
        consuming = self.consumer.task if self.consumer is not None else None
        if consuming is not None and self.kafka is not None and self.kafka.consumer_ready:
            await asyncio.wait({consuming}, timeout=_STOP_DRAIN_S)
        if self.consumer is not None:
            await self.consumer.stop()
        for task in self._inputs:
            task.cancel()
        await asyncio.gather(*self._inputs, return_exceptions=True)
        if self.output is not None:
            await self.output.drain(_STOP_DRAIN_S)
            if self.sender is not None:
                await self.sender.stop()
            self.output.close()
        if self.kafka is not None:
            await self.kafka.close()

    def probe(self) -> ComponentReport:
        problems: list[str] = []
        if self.nats is not None and not self.nats.connected:
            problems.append(f"NATS disconnected ({self.nats.last_error or 'connecting'})")
        if self.kafka is not None and self.output is not None:
            if not self.kafka.producer_ready:
                problems.append(f"Kafka not connected ({self.kafka.last_error or 'connecting'})")
            elif self.output.pending and self.output.last_error:
                problems.append(
                    f"Kafka output waiting: {self.output.pending} messages "
                    f"({self.output.last_error})"
                )
        kafka_consuming = self.kafka is not None and self.kafka.consumer_ready
        for task, up in ((self.consumer, kafka_consuming), (self.sender, True)):
            if task is not None and task.failure and not (task.running and up):
                problems.append(
                    f"{task.name} not running since {_clock_time(task.failed_at_ns)} "
                    f"({task.failure}); restarting"
                )
        summary = self._summary()
        if problems:
            return ComponentReport(
                "bus", ComponentState.DEGRADED, "; ".join(problems) + "; " + summary, False
            )
        return ComponentReport("bus", ComponentState.UP, summary, False)

    def _summary(self) -> str:
        counts = self.bridge.counts
        received = ", ".join(f"{n} on {t}" for t, n in sorted(counts.received.items()))
        dead = ", ".join(f"{n} {r.lower()}" for r, n in sorted(counts.dead_letters.items()))
        summary = (
            f"{sum(counts.received.values())} messages received ({received or 'none'}): "
            f"{counts.batches_decided} batches decided, {counts.executions} execution results, "
            f"{counts.duplicates} duplicate copies, {sum(counts.dead_letters.values())} dead "
            f"letters{f' ({dead})' if dead else ''}, {counts.in_hand} in hand; "
            f"{self.bridge.sequences.gaps} sequence gaps"
        )
        if counts.split_batches:
            summary += f"; {counts.split_batches} signal batches sent in parts"
        if isinstance(self.claims, SharedClaims) and self.claims.unchecked:
            summary += f"; {self.claims.unchecked} decided without a shared claim (NATS away)"
        if self.nats is not None and (self.nats.shed_inbound or self.nats.shed_outbound):
            summary += (
                f"; NATS shed {self.nats.shed_inbound} inbound (slow consumer), "
                f"{self.nats.shed_outbound} outbound"
            )
        if self.output is not None and self.output.quarantined:
            summary += (
                f"; {self.output.quarantined} Kafka messages refused for good, kept in the "
                f"outbox's quarantine ({self.output.last_refusal or 'before this start'})"
            )
        for task in (self.consumer, self.sender):
            if task is not None and task.restarts:
                summary += f"; {task.name} restarted {task.restarts} times (last: {task.failure})"
        return summary


def _clock_time(at_ns: int) -> str:
    return time.strftime("%H:%M:%S", time.gmtime(at_ns / 1e9)) + " UTC"
