"""Composition root: builds every component from one settings object and owns
start-up and graceful shutdown."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Awaitable, Callable, Coroutine

import grpc
from grpc_health.v1._async import HealthServicer

from trading_engine import __version__
from trading_engine.adaptation import Adaptation
from trading_engine.analytics import PerformanceAnalytics
from trading_engine.api.predictions import PredictionHandlers
from trading_engine.api.server import build_server, mark_serving
from trading_engine.api.servicer import TradingEngineServicer
from trading_engine.auth.configured import token_verifier
from trading_engine.bus.service import Bus
from trading_engine.clock import NANOS_PER_SECOND, Clock, SystemClock
from trading_engine.config import EngineSettings
from trading_engine.core.adaptive import AdaptiveRules
from trading_engine.engine import DecisionEngine, EngineLimits
from trading_engine.executions import ExecutionTracker
from trading_engine.explain import SignalAudit
from trading_engine.health import ComponentReport, ComponentState, HealthMonitor
from trading_engine.history import SignalHistory
from trading_engine.live import LiveSignals
from trading_engine.manual_signals import ManualSignals
from trading_engine.metrics import EngineCollector, MetricsServer
from trading_engine.pipeline import SignalPipeline
from trading_engine.protections import Protections
from trading_engine.replay.service import ReplayService
from trading_engine.risk.gate import RiskGate, RiskSettings
from trading_engine.runtime import tune_runtime
from trading_engine.stores.base import StoreError
from trading_engine.stores.history import HistoryWriter
from trading_engine.stores.urls import open_store
from trading_engine.strategies import StrategyService
from trading_engine.tracing import Tracing

_log = logging.getLogger(__name__)
_RETENTION_CHECK_S = 3600.0


class Application:
    """The engine process: its components, started and stopped together."""

    def __init__(
        self, settings: EngineSettings, clock: Clock | None = None, tracing: Tracing | None = None
    ) -> None:
        self.settings = settings
        self.clock = clock or SystemClock()
        self.verifier = token_verifier(settings)
        self.store = open_store(settings.resolved_store_url)
        self.strategies = StrategyService(self.store, self.clock, settings.strategy_poll_seconds)
        self.history_writer = HistoryWriter(
            self.store,
            settings.history_flush_seconds,
            keep_batches=settings.history_keep_predictions,
        )
        # Trading states, open positions and stop-outs, which the decision core reads.
        self.protections = Protections(self.store, self.clock)
        self.engine = DecisionEngine(
            strategies=self.strategies,
            protections=self.protections,
            limits=EngineLimits(max_batch_size=settings.max_batch_size),
            history=self.history_writer,
        )
        self.analytics = PerformanceAnalytics(
            self.store, self.clock, self.engine.account, self.engine.book.last_price
        )
        self.adaptation = Adaptation(
            self.strategies,
            self.protections,
            self.analytics,
            AdaptiveRules(
                min_closed_signals=settings.adaptive_min_closed_signals,
                cooldown_ns=int(settings.adaptive_cooldown_minutes * 60 * NANOS_PER_SECOND),
            ),
            self.clock,
        )
        self.executions = ExecutionTracker(
            self.store, self.history_writer, self.clock, self.engine.account, self.protections,
            after_close=self.adaptation.review,
        )  # fmt: skip
        self.health = HealthMonitor(
            __version__,
            self.clock,
            self.engine.stats,
            self.strategies.in_force,
            lambda: (self.executions.closed, self.executions.wins),
        )
        self.risk = (
            RiskGate(
                RiskSettings(
                    settings.risk_service_address,
                    settings.risk_deadline_ms / 1000.0,
                    settings.risk_breaker_failures,
                    settings.risk_breaker_reset_seconds,
                ),
            )
            if settings.risk_service_address
            else None
        )
        self.tracing = tracing or Tracing.configured(
            settings.tracing_exporter, settings.tracing_otlp_endpoint
        )
        self.live = LiveSignals()
        self.pipeline = SignalPipeline(
            self.engine, self.strategies, self.risk, self.live, self.tracing
        )
        self.bus = Bus(
            settings, self.pipeline, self.strategies, self.clock, self.executions, self.tracing
        )
        self._grpc_health = HealthServicer()
        manual_signals = ManualSignals(
            self.engine, self.strategies, self.store, self.history_writer, self.live, self.clock
        )
        # Abstract for the two prediction RPCs only, which api/predictions.py serves as bytes.
        self._servicer = TradingEngineServicer(  # type: ignore[abstract]
            self.health,
            self.strategies,
            SignalHistory(self.store),
            manual_signals,
            self.executions,
            self.analytics,
            self.protections,
            SignalAudit(self.store, self.history_writer),
            self.live,
            ReplayService(self.store, EngineLimits(max_batch_size=settings.max_batch_size)),
        )
        self.metrics = MetricsServer(
            EngineCollector(
                self.engine.stats, self.history_writer, self.risk, self.bus, self.clock,
                self.executions.models,
            )
        )  # fmt: skip
        # Built in start(): a grpc.aio server belongs to the loop that creates it.
        self._server: grpc.aio.Server | None = None
        self._background: list[asyncio.Task[None]] = []
        self.grpc_port = 0
        self._store_open = False
        self._stopped = False
        self.health.register(self._grpc_probe)
        self.health.register(self._store_probe)
        if self.bus.enabled:
            self.health.register(self.bus.probe)
        if self.risk is not None:
            self.health.register(self.risk.probe)

    @property
    def grpc_address(self) -> str:
        return f"{self.settings.grpc_host}:{self.grpc_port}"

    async def start(self) -> None:
        await self.store.open()
        self._store_open = True
        await self.strategies.start()
        await self.history_writer.start()
        await self.protections.start()
        await self.executions.start()
        # A prediction delivered again after a restart gets the signal history kept for it, and
        # the signals just given count for duplicate suppression and the rate limit.
        newest = await self.store.newest_signals(self.engine.limits.replay_cache_size)
        if remembered := self.engine.remember_signals(newest):
            _log.info(
                "%d signals decided before this start are answered again as they were", remembered
            )
        self._background += [
            asyncio.create_task(self.strategies.follow_changes()),
            asyncio.create_task(self._retain_history()),
        ]
        self._server = build_server(
            self._servicer,
            PredictionHandlers(self.pipeline, self.clock),
            self._grpc_health,
            self.verifier,
            self.tracing.provider,
            self.metrics.rpc if self.settings.metrics_address else None,
        )
        try:
            self.grpc_port = self._server.add_insecure_port(self.settings.grpc_address)
        except RuntimeError as error:
            raise OSError(
                f"cannot listen on {self.settings.grpc_address}: {error}; "
                "is another process using the port? Pick another with --grpc-port."
            ) from error
        if self.risk is not None:
            await self.risk.start()
        await self._server.start()
        if self.settings.metrics_address:
            host, _, port = self.settings.metrics_address.rpartition(":")
            self.metrics.start(host, int(port))
        await self.bus.start()
        # Everything built at start-up is long-lived: keep it out of every collection.
        tune_runtime()
        await mark_serving(self._grpc_health)
        _log.info("trading engine %s serving gRPC on %s", __version__, self.grpc_address)

    async def stop(self) -> None:
        """Stop taking work, let in-flight calls finish within the grace period, then stop."""
        if self._stopped:
            return
        self._stopped = True
        self.health.mark_shutting_down()
        await self._grpc_health.enter_graceful_shutdown()
        # The bus first: it stops taking messages at once and finishes the ones in hand.
        await self.bus.stop()
        if self._server is not None:
            await self._server.stop(self.settings.shutdown_grace_seconds)
        for task in self._background:
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)
        if self.risk is not None:
            await self.risk.close()
        self.metrics.stop()
        self.tracing.shutdown()
        if self._store_open:
            # Decisions made until the server stopped are written before the store closes.
            await self.history_writer.close()
            await self.store.close()
        _log.info("trading engine stopped")

    async def _retain_history(self) -> None:
        retention_ns = int(self.settings.history_retention_days * 86_400 * NANOS_PER_SECOND)
        while True:
            try:
                deleted = await self.store.delete_signals_before(self.clock.now_ns() - retention_ns)
            except StoreError as error:
                _log.warning("history retention: %s", error)
            else:
                if deleted:
                    _log.info("history retention: deleted %d signals", deleted)
            await asyncio.sleep(_RETENTION_CHECK_S)

    def _store_probe(self) -> ComponentReport:
        if not self._store_open:
            return ComponentReport("store", ComponentState.DOWN, "not open")
        writer = self.history_writer
        if writer.last_error is not None:
            # Decisions go on; their history waits in memory until the store is back.
            return ComponentReport(
                "store",
                ComponentState.DEGRADED,
                f"history writes failing, {writer.pending} signals waiting: {writer.last_error}",
            )
        detail = f"{self.store.backend} open; {writer.written} signals written"
        if writer.dropped:
            detail += f", {writer.dropped} dropped (history queue full)"
        if writer.dropped_batches:
            detail += f", {writer.dropped_batches} prediction batches dropped (queue full)"
        return ComponentReport("store", ComponentState.UP, detail)

    def _grpc_probe(self) -> ComponentReport:
        if self.grpc_port:
            return ComponentReport("grpc", ComponentState.UP, f"listening on {self.grpc_address}")
        return ComponentReport("grpc", ComponentState.DOWN, "not listening yet")


async def run_until_signalled(
    start: Callable[[], Awaitable[None]],
    stop: Callable[[], Awaitable[None]],
    failed: Callable[[], Coroutine[object, None, str]] | None = None,
) -> str:
    """Start, run until SIGTERM or SIGINT (or until `failed` returns why something failed
    for good), then stop gracefully (also when start fails); '' or the failure."""
    stop_requested = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop_requested.set)
    try:
        await start()
        waits: list[asyncio.Task[object]] = [asyncio.create_task(stop_requested.wait())]
        if failed is not None:
            waits.append(asyncio.create_task(failed()))
        done, pending = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)
        failure = next((str(task.result()) for task in done if task is not waits[0]), "")
        if not failure:
            _log.info("shutdown requested; draining in-flight calls")
        return failure
    finally:
        await stop()
