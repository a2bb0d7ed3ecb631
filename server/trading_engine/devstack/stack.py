"""The developer stack: everything around the engine on loopback, started and stopped together.

A private nats-server and Tansu broker (unless the settings name external
ones), the reference risk service, the engine on SQLite with both buses,
Prometheus metrics, the Envoy REST gateway and, on request, the demo feed.
Ports left at 0 are chosen free, so the stack clashes with nothing already
running; everything it started is stopped, in reverse order, whatever
happened.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from tradeflow.common.v1 import trace_pb2
from trading_engine.app import Application
from trading_engine.bus import names
from trading_engine.config import DevStackSettings, EngineSettings, GatewaySettings
from trading_engine.devstack.broker import DEFAULT_HOLD_SECONDS, BrokerLink, DemoBroker
from trading_engine.devstack.brokers import KafkaBroker, NatsServer, free_port
from trading_engine.devstack.demo import DemoFeed, set_up_demo_strategies
from trading_engine.gateway.envoy import EnvoyGateway
from trading_engine.risk.reference import ReferenceRiskServicer, RiskBehaviour, start_server
from trading_engine.tracing import PRODUCER, Tracing
from trading_engine_client import PredictionPublisher

_log = logging.getLogger(__name__)
_KAFKA_TOPICS = (
    names.KAFKA_PREDICTIONS,
    names.KAFKA_SIGNALS,
    names.KAFKA_EXECUTIONS,
    names.KAFKA_DEAD_LETTER,
)


@dataclasses.dataclass(frozen=True)
class Endpoints:
    grpc: str
    rest: str
    nats: str
    kafka: str
    risk: str
    metrics: str


class DevStack:
    def __init__(
        self, engine: EngineSettings, gateway: GatewaySettings, stack: DevStackSettings
    ) -> None:
        self._engine_settings = engine
        self._gateway_settings = gateway
        self._stack = stack
        self._workdir = Path(engine.data_dir) / "dev"
        # What start() started, stopped in reverse order by stop().
        self._stops: list[Callable[[], Awaitable[None]]] = []
        self.application: Application | None = None
        self.endpoints: Endpoints | None = None

    async def start(self) -> None:
        settings = self._engine_settings
        nats_url = settings.bus_nats_url or await self._start_nats()
        kafka = settings.bus_kafka_bootstrap or await self._start_kafka()
        risk = settings.risk_service_address or await self._start_risk()
        metrics = settings.metrics_address or f"127.0.0.1:{self._stack.metrics_port or free_port()}"
        application = self.application = Application(
            dataclasses.replace(
                settings,
                bus_nats_url=nats_url,
                bus_kafka_bootstrap=kafka,
                # Tansu has no idempotent producer; an external Kafka keeps the setting.
                bus_kafka_idempotence=settings.bus_kafka_idempotence
                and bool(settings.bus_kafka_bootstrap),
                risk_service_address=risk,
                metrics_address=metrics,
            )
        )
        await application.start()
        self._stops.append(application.stop)
        gateway = EnvoyGateway(
            dataclasses.replace(
                self._gateway_settings,
                upstream_host=settings.grpc_host,
                upstream_port=application.grpc_port,
            )
        )
        await gateway.start()
        self._stops.append(gateway.stop)
        self.endpoints = Endpoints(
            application.grpc_address,
            gateway.base_url,
            nats_url,
            kafka,
            risk,
            f"http://127.0.0.1:{application.metrics.port}/metrics",
        )
        if self._stack.demo:
            await self._start_demo(nats_url)

    async def stop(self) -> None:
        """Stop what was started, newest first; a failing stop does not keep the rest running."""
        while self._stops:
            stop = self._stops.pop()
            try:
                await stop()
            except Exception:
                _log.exception("stopping part of the developer stack failed")

    async def _start_nats(self) -> str:
        server = NatsServer(self._workdir / "nats", self._stack.nats_port or None)
        server.start()
        self._stops.append(_async(server.stop))
        return server.url

    async def _start_kafka(self) -> str:
        broker = KafkaBroker(self._workdir / "kafka", self._stack.kafka_port or None)
        broker.start()
        self._stops.append(_async(broker.stop))
        await broker.create_topics(_KAFKA_TOPICS)
        return broker.bootstrap

    async def _start_risk(self) -> str:
        server, port = await start_server(
            ReferenceRiskServicer(RiskBehaviour()), port=self._stack.risk_port
        )

        async def stop() -> None:
            await server.stop(grace=1.0)

        self._stops.append(stop)
        return f"127.0.0.1:{port}"

    async def _start_demo(self, nats_url: str) -> None:
        assert self.application is not None  # the feed starts after the engine
        await set_up_demo_strategies(self.application.strategies)
        task = asyncio.create_task(
            run_demo(
                nats_url,
                self._stack.demo_rate,
                self.application.tracing,
                self._stack.demo_hold_seconds,
            ),
            name="demo-feed",
        )

        async def stop() -> None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

        self._stops.append(stop)


async def run_demo(
    nats_url: str,
    predictions_per_second: float,
    tracing: Tracing,
    hold_seconds: float = DEFAULT_HOLD_SECONDS,
) -> None:
    """Publish the demo feed's batches on NATS until cancelled, at about the given rate, and
    fill the signals that come back with the demo broker.

    Through the client package's PredictionPublisher, as ML-Processing publishes;
    with tracing on, each batch starts a trace with a producer span of its own. The broker
    fills and closes from the feed's own prices, and reports on the execution-results
    subject, as an execution gateway would.
    """
    feed = DemoFeed()
    link = BrokerLink(DemoBroker(feed.quote, hold_seconds), nats_url, time.time_ns)
    broker = asyncio.create_task(link.run(), name="demo-broker")
    try:
        async with PredictionPublisher(nats_url=nats_url, service_source="demo-feed") as publisher:
            loop = asyncio.get_running_loop()
            due = loop.time()
            for batch in feed.batches():
                with tracing.span(f"{names.NATS_PREDICTIONS} publish", PRODUCER):
                    trace = tracing.carried(trace_pb2.TraceContext())
                    await publisher.publish(
                        batch, traceparent=trace.traceparent, tracestate=trace.tracestate
                    )
                await link.tick()
                due += len(batch.predictions) / predictions_per_second
                await asyncio.sleep(max(0.0, due - loop.time()))
    finally:
        broker.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await broker


def _async(stop: Callable[[], None]) -> Callable[[], Awaitable[None]]:
    async def call() -> None:
        stop()

    return call
