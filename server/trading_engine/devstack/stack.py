"""The developer stack: everything around the engine on loopback, started and stopped together.

A private nats-server and Tansu broker (unless the settings name external
ones), the reference risk service, the engine on SQLite with both buses,
Prometheus metrics, the Envoy REST gateway and, on request, the demo feed.
Every port is checked before anything starts (ports.py): one the user chose
that is in use refuses the start, a default one is replaced by a free one;
ports left at 0 are chosen free. Envoy logs to a file beside the data, and if
it dies the stack says so in health and stops. Everything it started is
stopped, in reverse order, whatever happened.
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
from trading_engine.devstack.brokers import KafkaBroker, NatsServer
from trading_engine.devstack.demo import DemoFeed, set_up_demo_strategies
from trading_engine.devstack.ports import Moved, Port, gateway_ports, plan_ports
from trading_engine.gateway.envoy import EnvoyGateway
from trading_engine.health import ComponentReport, ComponentState
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


# How long start() waits for both buses to take input before the banner says so anyway.
_BUS_READY_TIMEOUT_S = 20.0


@dataclasses.dataclass(frozen=True)
class Endpoints:
    grpc: str
    rest: str
    envoy_admin: str
    nats: str
    kafka: str
    risk: str
    metrics: str
    # Where Envoy writes its log.
    envoy_log: Path
    # The default ports that were in use, and the free ones used instead.
    moved: tuple[Moved, ...] = ()


class DevStack:
    def __init__(
        self,
        engine: EngineSettings,
        gateway: GatewaySettings,
        stack: DevStackSettings,
        named: frozenset[str] = frozenset(),
    ) -> None:
        """`named`: the settings the user gave (config.named_settings); their ports are
        never moved."""
        self._engine_settings = engine
        self._gateway_settings = gateway
        self._stack = stack
        self._named = named
        self.workdir = Path(engine.data_dir).resolve() / "dev"
        # What start() started, stopped in reverse order by stop().
        self._stops: list[Callable[[], Awaitable[None]]] = []
        self._stopping = False
        self._gateway: EnvoyGateway | None = None
        self.failure = ""
        self._failed = asyncio.Event()
        self.application: Application | None = None
        self.endpoints: Endpoints | None = None

    def _ports(self) -> list[Port]:
        """Every port the stack will listen on, in the order they are reported."""
        engine, gateway, stack = self._engine_settings, self._gateway_settings, self._stack
        named = self._named
        ports = [
            Port("gRPC", "--grpc-port", engine.grpc_host, engine.grpc_port, "grpc_port" in named),
            *gateway_ports(gateway, named),
        ]
        if engine.metrics_address:
            host, _, port = engine.metrics_address.rpartition(":")
            ports.append(Port("metrics", "--metrics-address", host, int(port), True))
        else:
            ports.append(Port("metrics", "--metrics-port", "127.0.0.1", stack.metrics_port, True))
        # Brokers and the risk service on ports of their own choosing need no check.
        for what, flag, number, external in (
            ("NATS", "--nats-port", stack.nats_port, engine.bus_nats_url),
            ("Kafka", "--kafka-port", stack.kafka_port, engine.bus_kafka_bootstrap),
            ("risk service", "--risk-port", stack.risk_port, engine.risk_service_address),
        ):
            if number and not external:
                ports.append(Port(what, flag, "127.0.0.1", number, True))
        return ports

    async def start(self) -> None:
        # Before anything else: a port in use refuses the start with nothing to undo.
        plan = plan_ports(self._ports())
        for moved in plan.moved:
            _log.warning("%s", moved)
        ports = plan.numbers
        settings = dataclasses.replace(self._engine_settings, grpc_port=ports["--grpc-port"])
        nats_url = settings.bus_nats_url or await self._start_nats(ports.get("--nats-port"))
        kafka = settings.bus_kafka_bootstrap or await self._start_kafka(ports.get("--kafka-port"))
        risk = settings.risk_service_address or await self._start_risk(ports.get("--risk-port", 0))
        metrics_port = ports.get("--metrics-port") or ports["--metrics-address"]
        metrics_host = settings.metrics_address.rpartition(":")[0] or "127.0.0.1"
        application = self.application = Application(
            dataclasses.replace(
                settings,
                bus_nats_url=nats_url,
                bus_kafka_bootstrap=kafka,
                # Tansu has no idempotent producer; an external Kafka keeps the setting.
                bus_kafka_idempotence=settings.bus_kafka_idempotence
                and bool(settings.bus_kafka_bootstrap),
                risk_service_address=risk,
                metrics_address=f"{metrics_host}:{metrics_port}",
            )
        )
        await application.start()
        self._stops.append(application.stop)
        gateway = self._gateway = EnvoyGateway(
            dataclasses.replace(
                self._gateway_settings,
                http_port=ports["--http-port"],
                envoy_admin_port=ports["--envoy-admin-port"],
                upstream_host=settings.grpc_host,
                upstream_port=application.grpc_port,
            ),
            log_path=self.workdir / "envoy.log",
        )
        await gateway.start()
        self._stops.append(gateway.stop)
        application.health.register(self._gateway_probe)
        watching = asyncio.create_task(self._watch_gateway(gateway), name="gateway-watch")
        self._stops.append(_cancelling(watching))
        self.endpoints = Endpoints(
            application.grpc_address,
            gateway.base_url,
            gateway.admin_url,
            nats_url,
            kafka,
            risk,
            f"http://{metrics_host}:{application.metrics.port}/metrics",
            self.workdir / "envoy.log",
            plan.moved,
        )
        if self._stack.demo:
            await self._start_demo(nats_url)
        await self._wait_for_the_bus(application)

    async def wait_for_failure(self) -> str:
        """Until a part of the stack fails for good (Envoy exits); what failed."""
        await self._failed.wait()
        return self.failure

    async def _watch_gateway(self, gateway: EnvoyGateway) -> None:
        status = await gateway.wait()
        if self._stopping:
            return
        self.failure = (
            f"the REST gateway (Envoy) exited with status {status}; stopping the stack"
            + gateway.log_tail()
        )
        _log.error("%s", self.failure)
        self._failed.set()

    def _gateway_probe(self) -> ComponentReport:
        gateway = self._gateway
        if gateway is None or gateway.exit_status is not None:
            status = gateway.exit_status if gateway is not None else None
            return ComponentReport(
                "gateway", ComponentState.DOWN, f"Envoy exited with status {status}", False
            )
        return ComponentReport(
            "gateway",
            ComponentState.UP,
            f"REST on {gateway.base_url}, Envoy admin on {gateway.admin_url}",
            False,
        )

    async def _wait_for_the_bus(self, application: Application) -> None:
        """Until NATS and Kafka take input (joining Kafka's group takes seconds), so what
        the bus logs while connecting comes before what `dev` prints next."""
        bus = application.bus

        def ready() -> bool:
            nats = bus.nats is None or bus.nats.connected
            kafka = bus.kafka is None or (bus.kafka.producer_ready and bus.kafka.consumer_ready)
            return nats and kafka

        try:
            async with asyncio.timeout(_BUS_READY_TIMEOUT_S):
                # Connection states of the bus's own tasks: polled, as nothing signals them.
                while not ready():  # noqa: ASYNC110
                    await asyncio.sleep(0.05)
        except TimeoutError:
            _log.warning("the bus is not connected yet: %s", bus.probe().detail)

    async def stop(self) -> None:
        """Stop what was started, newest first; a failing stop does not keep the rest running."""
        self._stopping = True
        while self._stops:
            stop = self._stops.pop()
            try:
                await stop()
            except Exception:
                _log.exception("stopping part of the developer stack failed")

    async def _start_nats(self, port: int | None) -> str:
        server = NatsServer(self.workdir / "nats", port)
        server.start()
        self._stops.append(_async(server.stop))
        return server.url

    async def _start_kafka(self, port: int | None) -> str:
        broker = KafkaBroker(self.workdir / "kafka", port)
        broker.start()
        self._stops.append(_async(broker.stop))
        await broker.create_topics(_KAFKA_TOPICS)
        return broker.bootstrap

    async def _start_risk(self, port: int) -> str:
        server, port = await start_server(ReferenceRiskServicer(RiskBehaviour()), port=port)

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


def _cancelling(task: asyncio.Task[None]) -> Callable[[], Awaitable[None]]:
    async def cancel() -> None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    return cancel
