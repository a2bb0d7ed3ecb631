"""Prometheus metrics on HTTP `/metrics`, read from the components when scraped.

Nothing is counted on the decision path for this: the collector reads the
figures the components keep anyway (decision statistics, the history
writer's queue, the risk gate's counts and breaker) at scrape time.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from wsgiref.simple_server import WSGIServer

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from trading_engine.clock import Clock
from trading_engine.risk.breaker import BreakerState
from trading_engine.risk.gate import RiskGate
from trading_engine.stats import DecisionStats
from trading_engine.stores.history import HistoryWriter


class EngineCollector(Collector):
    def __init__(
        self, stats: DecisionStats, history: HistoryWriter, risk: RiskGate | None, clock: Clock
    ) -> None:
        self._stats = stats
        self._history = history
        self._risk = risk
        self._clock = clock

    def collect(self) -> Iterable[Metric]:
        figures = self._stats.figures(self._clock.now_ns())
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
        if self._risk is not None:
            yield from _risk_metrics(self._risk)


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
    """`/metrics` on its own thread, so a scrape never waits for the event loop."""

    def __init__(self, collector: Collector) -> None:
        self._registry = CollectorRegistry()
        self._registry.register(collector)
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
