"""Prometheus metrics on HTTP `/metrics`, read from the components when scraped.

Nothing is counted on the decision path for this: the collector reads the
figures the components keep anyway (decision statistics, the history
writer's queue, the risk gate's counts and breaker) at scrape time.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Iterable
from wsgiref.simple_server import WSGIServer

from google.protobuf.descriptor import EnumDescriptor
from prometheus_client import (
    CollectorRegistry,
    GCCollector,
    PlatformCollector,
    ProcessCollector,
    start_http_server,
)
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from tradeflow.trading.v1 import signal_pb2
from trading_engine.api.rpc_metrics import RpcMetrics
from trading_engine.bus.service import Bus
from trading_engine.clock import Clock
from trading_engine.core.attribution import ModelTally
from trading_engine.enum_names import short_name
from trading_engine.risk.breaker import BreakerState
from trading_engine.risk.gate import RiskGate
from trading_engine.stats import DecisionStats, Histogram
from trading_engine.stores.history import HistoryWriter


class EngineCollector(Collector):
    def __init__(
        self,
        stats: DecisionStats,
        history: HistoryWriter,
        risk: RiskGate | None,
        bus: Bus,
        clock: Clock,
        models: ModelTally | None = None,
    ) -> None:
        self._models = models
        self._stats = stats
        self._history = history
        self._risk = risk
        self._bus = bus
        self._clock = clock

    def collect(self) -> Iterable[Metric]:
        stats = self._stats
        figures = stats.figures(self._clock.now_ns())
        yield CounterMetricFamily(
            "trading_engine_predictions_decided",
            "Predictions decided since start.",
            value=figures.predictions_decided,
        )
        yield GaugeMetricFamily(
            "trading_engine_decision_time_average_microseconds",
            "Mean decision time per prediction over the last minute.",
            value=figures.average_decision_time_us,
        )
        yield _histogram(
            "trading_engine_batch_decision_seconds",
            "Time to decide one prediction batch, decode to encode.",
            stats.batch_seconds,
        )
        yield _histogram(
            "trading_engine_batch_age_seconds",
            "Age of a batch when decided, from when ML-Processing produced it (bus lag included).",
            stats.age_seconds,
        )
        decided = CounterMetricFamily(
            "trading_engine_signals",
            "Decisions by disposition, signal type and reason.",
            labels=["disposition", "type", "reason"],
        )
        for (disposition, signal_type, reason), count in sorted(stats.outcomes.items()):
            decided.add_metric(
                [
                    _label(signal_pb2.SignalDisposition.DESCRIPTOR, disposition),
                    _label(signal_pb2.SignalType.DESCRIPTOR, signal_type),
                    _label(signal_pb2.DispositionReason.DESCRIPTOR, reason),
                ],
                count,
            )
        yield decided
        yield GaugeMetricFamily(
            "trading_engine_history_pending_signals",
            "Decided signals waiting to be written to history.",
            value=self._history.pending,
        )
        yield CounterMetricFamily(
            "trading_engine_history_dropped_signals",
            "Signals history refused because its queue was full.",
            value=self._history.dropped,
        )
        yield CounterMetricFamily(
            "trading_engine_history_dropped_prediction_batches",
            "Prediction batches history refused because its queue was full: their signals "
            "cannot be explained with their prediction nor replayed from history.",
            value=self._history.dropped_batches,
        )
        if self._models is not None:
            yield from _model_metrics(self._models)
        if self._risk is not None:
            yield from _risk_metrics(self._risk)
        if self._bus.enabled:
            yield from _bus_metrics(self._bus)


def _model_metrics(models: ModelTally) -> Iterable[Metric]:
    calls = CounterMetricFamily(
        "trading_engine_model_calls",
        "Votes with a direction on signals closed through this instance since start, by ML "
        "model and whether they named the move (a won signal's side, a lost one's other side).",
        labels=["model", "result"],
    )
    hit_rate = GaugeMetricFamily(
        "trading_engine_model_hit_rate",
        "Share of each ML model's calls that named the move, since start (at most 100 models "
        "told apart; the rest under 'other').",
        labels=["model"],
    )
    for model_id, (made, correct) in sorted(models.counts.items()):
        calls.add_metric([model_id, "correct"], correct)
        calls.add_metric([model_id, "wrong"], made - correct)
        hit_rate.add_metric([model_id], correct / made)
    yield calls
    yield hit_rate


def _label(enum: EnumDescriptor, value: int) -> str:
    return short_name(enum, value).lower()


def _histogram(name: str, documentation: str, histogram: Histogram) -> Metric:
    cumulative = list(itertools.accumulate(histogram.counts))
    # The last count is everything above the last bound.
    bounds = [f"{bound:g}" for bound in histogram.bounds] + ["+Inf"]
    return HistogramMetricFamily(
        name,
        documentation,
        buckets=list(zip(bounds, cumulative, strict=True)),
        sum_value=histogram.total,
    )


def _bus_metrics(bus: Bus) -> Iterable[Metric]:
    bridge = bus.bridge
    counts = bridge.counts
    received = CounterMetricFamily(
        "trading_engine_bus_messages_received",
        "Bus messages handed to the engine, by transport; each ends as one of "
        "trading_engine_bus_messages, trading_engine_bus_dead_letters or in hand.",
        labels=["transport"],
    )
    for transport, count in sorted(counts.received.items()):
        received.add_metric([transport], count)
    yield received
    messages = CounterMetricFamily(
        "trading_engine_bus_messages",
        "Bus messages taken in, by what became of them.",
        labels=["outcome"],
    )
    messages.add_metric(["decided"], counts.batches_decided)
    messages.add_metric(["duplicate"], counts.duplicates)
    messages.add_metric(["execution_result"], counts.executions)
    yield messages
    dead = CounterMetricFamily(
        "trading_engine_bus_dead_letters", "Messages sent to the dead letters.", labels=["reason"]
    )
    for reason, count in sorted(counts.dead_letters.items()):
        dead.add_metric([reason.lower()], count)
    yield dead
    yield GaugeMetricFamily(
        "trading_engine_bus_messages_in_hand",
        "Bus messages received and not yet decided, dead-lettered or dropped as duplicates.",
        value=counts.in_hand,
    )
    yield CounterMetricFamily(
        "trading_engine_bus_split_batches",
        "Signal batches published in several parts, each too large for one bus message.",
        value=counts.split_batches,
    )
    yield CounterMetricFamily(
        "trading_engine_bus_sequence_gaps",
        "Producer sequence numbers seen missing.",
        value=bridge.sequences.gaps,
    )
    yield CounterMetricFamily(
        "trading_engine_bus_sequence_resets",
        "Producer sequence numbers too far from the last to be a gap: numbering restarted.",
        value=bridge.sequences.resets,
    )
    restarts = CounterMetricFamily(
        "trading_engine_bus_task_restarts",
        "Times a bus task (Kafka intake, Kafka output) ended unexpectedly and was restarted.",
        labels=["task"],
    )
    for task in (bus.consumer, bus.sender):
        if task is not None:
            restarts.add_metric([task.name.lower().replace(" ", "_")], task.restarts)
    yield restarts
    if bus.nats is not None:
        shed = CounterMetricFamily(
            "trading_engine_bus_nats_shed",
            "NATS messages dropped: inbound by the client's slow-consumer limits, outbound "
            "while NATS could not take them (Kafka still carries those).",
            labels=["direction"],
        )
        shed.add_metric(["inbound"], bus.nats.shed_inbound)
        shed.add_metric(["outbound"], bus.nats.shed_outbound)
        yield shed
    if bus.kafka is not None:
        lag = GaugeMetricFamily(
            "trading_engine_bus_kafka_lag",
            "Kafka records waiting in each partition this instance consumes: the partition's "
            "end offset minus the next offset the engine takes (measured each second).",
            labels=["topic", "partition"],
        )
        for (topic, partition), records in sorted(bus.kafka.lag.items()):
            lag.add_metric([topic, str(partition)], records)
        yield lag
    if bus.output is not None:
        yield GaugeMetricFamily(
            "trading_engine_bus_kafka_quarantined",
            "Kafka messages refused for good, kept aside in the outbox's quarantine table.",
            value=bus.output.quarantined,
        )


def _risk_metrics(risk: RiskGate) -> Iterable[Metric]:
    breaker = risk.breaker
    current = breaker.state
    state = GaugeMetricFamily(
        "trading_engine_risk_breaker_state",
        "1 for the risk service circuit breaker's current state, 0 for the others.",
        labels=["state"],
    )
    for candidate in BreakerState:
        state.add_metric([candidate.value], 1.0 if candidate is current else 0.0)
    yield state
    yield CounterMetricFamily(
        "trading_engine_risk_breaker_opened",
        "Times the risk service circuit breaker opened.",
        value=breaker.times_opened,
    )
    counts = risk.counts
    yield CounterMetricFamily(
        "trading_engine_risk_calls", "AssessSignal calls made.", value=counts.calls
    )
    settled = CounterMetricFamily(
        "trading_engine_risk_signals",
        "Actionable signals by how their risk was settled.",
        labels=["how"],
    )
    for how, value in (
        ("assessed", counts.assessed),
        ("last_known_limits", counts.fallbacks),
        ("conservative_after_error", counts.errors),
        ("withheld", counts.withheld),
    ):
        settled.add_metric([how], value)
    yield settled


class MetricsServer:
    """`/metrics` on its own thread, so a scrape never waits for the event loop: the
    engine's figures, per-RPC figures, and the process's (CPU, memory, open files, GC)."""

    def __init__(self, collector: Collector) -> None:
        self._registry = CollectorRegistry()
        self._registry.register(collector)
        self.rpc = RpcMetrics(self._registry)
        ProcessCollector(registry=self._registry)
        GCCollector(registry=self._registry)
        PlatformCollector(registry=self._registry)
        self._server: WSGIServer | None = None
        self._thread: threading.Thread | None = None
        self.port = 0

    def start(self, host: str, port: int) -> None:
        self._server, self._thread = start_http_server(port, host, self._registry)
        self.port = self._server.server_port

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join()
            self._thread = None
