"""Signals assessed by a real reference risk service, and when it is slow, failing or gone."""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import math
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING

import grpc
import pytest
from google.protobuf import field_mask_pb2

from tests.factories import NOW_NS, batch, prediction
from tests.support import Tokens, http_text
from tradeflow.common.v1 import risk_level_pb2, tier_pb2
from tradeflow.ml.v1 import prediction_pb2
from tradeflow.trading.v1 import signal_pb2, strategy_pb2
from tradeflow.trading.v1 import trading_engine_service_pb2 as service_pb2
from tradeflow.trading.v1 import trading_engine_service_pb2_grpc as service_grpc
from trading_engine.app import Application
from trading_engine.config import EngineSettings
from trading_engine.risk.breaker import BreakerState
from trading_engine.risk.gate import RiskGate
from trading_engine.risk.reference import ReferenceRiskServicer, RiskBehaviour, start_server
from trading_engine.tenancy import Caller

if TYPE_CHECKING:  # the async stub type exists only in the generated .pyi
    Stub = service_grpc.TradingEngineServiceAsyncStub

S = signal_pb2
UP = prediction_pb2.DIRECTION_UP
DOWN = prediction_pb2.DIRECTION_DOWN
RESET_S = 0.6
_users = itertools.count()


class FixedClock:
    def now_ns(self) -> int:
        return NOW_NS


@dataclasses.dataclass
class RiskService:
    servicer: ReferenceRiskServicer
    server: grpc.aio.Server
    port: int

    @property
    def behaviour(self) -> RiskBehaviour:
        return self.servicer.behaviour

    async def stop(self) -> None:
        await self.server.stop(None)

    async def restart(self) -> None:
        self.server, _ = await start_server(self.servicer, port=self.port)


@pytest.fixture
async def risk_service() -> AsyncIterator[RiskService]:
    servicer = ReferenceRiskServicer(RiskBehaviour())
    server, port = await start_server(servicer)
    service = RiskService(servicer, server, port)
    yield service
    await service.stop()


@pytest.fixture
async def engine_with_risk(
    engine_settings: EngineSettings, risk_service: RiskService
) -> AsyncIterator[Application]:
    application = Application(
        dataclasses.replace(
            engine_settings,
            risk_service_address=f"127.0.0.1:{risk_service.port}",
            risk_deadline_ms=100.0,
            risk_breaker_failures=2,
            risk_breaker_reset_seconds=RESET_S,
            metrics_address="127.0.0.1:0",
        ),
        clock=FixedClock(),
    )
    await application.start()
    yield application
    await application.stop()


NewTrader = Callable[[], tuple["Stub", Caller]]


@pytest.fixture
async def new_trader(engine_with_risk: Application, tokens: Tokens) -> AsyncIterator[NewTrader]:
    """Stubs calling as users of their own, so no earlier signal makes a new one a duplicate."""
    channels: list[grpc.aio.Channel] = []

    def trader() -> tuple[Stub, Caller]:
        caller = Caller(f"trader-{next(_users)}", "acme", tier_pb2.SUBSCRIPTION_TIER_PRO)
        channels.append(tokens.channel(engine_with_risk.grpc_address, caller))
        return service_grpc.TradingEngineServiceStub(channels[-1]), caller

    yield trader
    for channel in channels:
        await channel.close()


@pytest.fixture
def as_trader(new_trader: NewTrader) -> tuple[Stub, Caller]:
    return new_trader()


_batches = itertools.count()


async def _signals(
    stub: Stub, caller: Caller, *symbols: str, direction: int = UP
) -> list[signal_pb2.TradingSignal]:
    """Signals for one batch of the given symbols (EURUSD: 1.25 lots at 25,000 equity)."""
    number = next(_batches)
    predictions = [
        prediction(f"p{number}-{index}", symbol, direction=direction)
        for index, symbol in enumerate(symbols)
    ]
    response = await stub.ProcessPredictionBatch(
        service_pb2.ProcessPredictionBatchRequest(
            batch=batch(f"b{number}", predictions, user_id=caller.user_id)
        )
    )
    return list(response.signal_batch.signals)


def _state(risk: RiskGate) -> BreakerState:
    # Read through a call: the state changes between reads, which mypy cannot know of a property.
    return risk.breaker.state


def _risk_steps(signal: signal_pb2.TradingSignal) -> list[signal_pb2.DecisionStep]:
    return [s for s in signal.decision_trace if s.rule == S.DECISION_RULE_RISK_ASSESSMENT]


def _lots_floor(lots: float) -> float:
    return math.floor(lots * 100 + 1e-9) / 100


async def test_every_actionable_signal_of_a_batch_is_assessed_in_one_call(
    as_trader: tuple[Stub, Caller], risk_service: RiskService
) -> None:
    stub, caller = as_trader
    signals = await _signals(stub, caller, "EURUSD", "GBPUSD", "USDJPY")

    assert risk_service.servicer.calls == 1
    for signal in signals:
        assert signal.disposition == S.SIGNAL_DISPOSITION_ACTIONABLE
        assert signal.risk_status == S.RISK_STATUS_ASSESSED
        # 1.25 lots against a 2-lot limit: more than half of it.
        assert signal.risk_level == risk_level_pb2.RISK_LEVEL_MEDIUM
        [step] = _risk_steps(signal)
        assert step.outcome == S.RULE_OUTCOME_PASS
        assert step.detail.startswith("assessed MEDIUM")
        assert not signal.risk_adjustments


async def test_a_smaller_size_and_a_tighter_stop_are_applied_and_explained(
    as_trader: tuple[Stub, Caller], risk_service: RiskService
) -> None:
    risk_service.behaviour.max_lots = 0.5
    risk_service.behaviour.max_stop_loss_pips = 10.0
    stub, caller = as_trader
    [signal] = await _signals(stub, caller, "EURUSD")

    assert signal.risk_status == S.RISK_STATUS_ASSESSED
    assert signal.risk_level == risk_level_pb2.RISK_LEVEL_HIGH
    size, stop = signal.risk_adjustments
    assert size.kind == S.RISK_ADJUSTMENT_KIND_POSITION_SIZE_REDUCED
    assert (size.before, size.after) == (1.25, 0.5)
    assert signal.entry.position_size_lots == 0.5
    assert stop.kind == S.RISK_ADJUSTMENT_KIND_STOP_LOSS_TIGHTENED
    # A buy: the stop moves up to 10 pips below the entry.
    assert stop.after == pytest.approx(signal.entry.entry_price - 0.0010, abs=1e-9)
    assert stop.before < stop.after
    assert signal.entry.stop_loss == stop.after
    assert signal.entry.stop_loss_pips == pytest.approx(10.0)
    [step] = _risk_steps(signal)
    assert step.outcome == S.RULE_OUTCOME_ADJUST


async def test_extreme_risk_turns_the_signal_into_hold_with_the_reason(
    as_trader: tuple[Stub, Caller], risk_service: RiskService
) -> None:
    risk_service.behaviour.extreme_symbols = frozenset({"GBPUSD"})
    stub, caller = as_trader
    eurusd, gbpusd = await _signals(stub, caller, "EURUSD", "GBPUSD")

    assert eurusd.disposition == S.SIGNAL_DISPOSITION_ACTIONABLE
    assert gbpusd.signal_type == S.SIGNAL_TYPE_HOLD
    assert gbpusd.disposition == S.SIGNAL_DISPOSITION_HOLD
    assert gbpusd.reason == S.DISPOSITION_REASON_RISK_EXTREME
    assert gbpusd.risk_status == S.RISK_STATUS_ASSESSED
    assert gbpusd.risk_level == risk_level_pb2.RISK_LEVEL_EXTREME
    assert "EXTREME" in gbpusd.cancellation_reason
    assert "GBPUSD" in gbpusd.cancellation_reason
    assert not gbpusd.HasField("entry")
    [cancelled] = gbpusd.risk_adjustments
    assert cancelled.kind == S.RISK_ADJUSTMENT_KIND_SIGNAL_CANCELLED


async def test_slow_service_falls_back_then_opens_the_breaker_then_recovers(
    as_trader: tuple[Stub, Caller],
    risk_service: RiskService,
    engine_with_risk: Application,
) -> None:
    stub, caller = as_trader
    [assessed] = await _signals(stub, caller, "EURUSD")
    assert assessed.risk_status == S.RISK_STATUS_ASSESSED
    proposed = assessed.entry.position_size_lots
    risk_service.behaviour.latency_s = 0.5

    # Two calls past the deadline: conservative limits (half size, at most one lot).
    for symbol in ("GBPUSD", "USDJPY"):
        [signal] = await _signals(stub, caller, symbol)
        assert signal.risk_status == S.RISK_STATUS_ERROR_FALLBACK
        [reduced] = signal.risk_adjustments
        assert reduced.kind == S.RISK_ADJUSTMENT_KIND_POSITION_SIZE_REDUCED
        assert reduced.after == _lots_floor(min(reduced.before * 0.5, 1.0))
        assert "DEADLINE_EXCEEDED" in reduced.detail
    risk = engine_with_risk.risk
    assert risk is not None
    assert _state(risk) is BreakerState.OPEN
    calls = risk_service.servicer.calls

    # Open: no call is made; the user's last known limits (the assessment let 1.25 lots through).
    [signal] = await _signals(stub, caller, "EURUSD", direction=DOWN)
    assert risk_service.servicer.calls == calls
    assert signal.risk_status == S.RISK_STATUS_FALLBACK_USED
    # The assessment let 1.25 lots through unchanged, so the same size passes (conservative
    # limits would have halved it).
    assert signal.entry.position_size_lots == proposed
    assert not signal.risk_adjustments
    [step] = _risk_steps(signal)
    assert step.outcome == S.RULE_OUTCOME_PASS
    assert "circuit open" in step.detail
    assert "last known risk limits" in step.detail
    health = await stub.HealthCheck(service_pb2.HealthCheckRequest())
    [component] = [c for c in health.components if c.name == "risk"]
    assert component.state == service_pb2.COMPONENT_STATE_DEGRADED
    assert "breaker open" in component.detail
    assert health.status == service_pb2.SERVING_STATUS_DEGRADED

    # Back to speed: after the reset timeout one trial call closes the breaker.
    risk_service.behaviour.latency_s = 0.0
    await asyncio.sleep(RESET_S)
    [signal] = await _signals(stub, caller, "GBPUSD", direction=DOWN)
    assert signal.risk_status == S.RISK_STATUS_ASSESSED
    assert _state(risk) is BreakerState.CLOSED
    health = await stub.HealthCheck(service_pb2.HealthCheckRequest())
    [component] = [c for c in health.components if c.name == "risk"]
    assert component.state == service_pb2.COMPONENT_STATE_UP


async def test_with_the_service_stopped_signals_keep_coming_conservatively_and_recover(
    new_trader: NewTrader, risk_service: RiskService
) -> None:
    stub, caller = new_trader()
    await risk_service.stop()
    statuses = []
    for symbol, direction in [("EURUSD", UP), ("GBPUSD", UP), ("USDJPY", UP), ("EURUSD", DOWN)]:
        [signal] = await _signals(stub, caller, symbol, direction=direction)
        assert signal.disposition == S.SIGNAL_DISPOSITION_ACTIONABLE
        # No earlier assessment of this user: conservative limits either way.
        assert signal.entry.position_size_lots <= 1.0
        statuses.append(signal.risk_status)
    assert statuses == [S.RISK_STATUS_ERROR_FALLBACK] * 2 + [S.RISK_STATUS_FALLBACK_USED] * 2

    await risk_service.restart()
    # Recovered within the reset timeout plus the channel's reconnection backoff (at most 1 s).
    started = asyncio.get_running_loop().time()
    for _ in range(8):
        await asyncio.sleep(RESET_S / 2)
        stub, caller = new_trader()
        [signal] = await _signals(stub, caller, "EURUSD")
        if signal.risk_status == S.RISK_STATUS_ASSESSED:
            break
    assert signal.risk_status == S.RISK_STATUS_ASSESSED
    assert asyncio.get_running_loop().time() - started < RESET_S + 2.0


def _metrics(engine: Application) -> dict[str, float]:
    """The engine's /metrics samples by name and labels, e.g. 'x_total{how="assessed"}'."""
    text = http_text(f"http://127.0.0.1:{engine.metrics.port}/metrics")
    return {
        name: float(value)
        for name, _, value in (line.rpartition(" ") for line in text.splitlines())
        if name and not name.startswith("#")
    }


async def test_the_breaker_state_and_fallbacks_are_on_the_metrics_endpoint(
    new_trader: NewTrader, risk_service: RiskService, engine_with_risk: Application
) -> None:
    stub, caller = new_trader()
    await _signals(stub, caller, "EURUSD", "GBPUSD")
    before = _metrics(engine_with_risk)
    assert before['trading_engine_risk_breaker_state{state="closed"}'] == 1.0
    assert before['trading_engine_risk_breaker_state{state="open"}'] == 0.0
    assert before['trading_engine_risk_signals_total{how="assessed"}'] == 2.0
    assert before["trading_engine_predictions_decided_total"] == 2.0
    assert before["trading_engine_batch_decision_seconds_count"] == 1.0
    assert before['trading_engine_batch_decision_seconds_bucket{le="+Inf"}'] == 1.0
    # The fixed clock stands 0.1 s after the batch was produced: inside the 0.5 s bucket.
    assert before['trading_engine_batch_age_seconds_bucket{le="0.05"}'] == 0.0
    assert before['trading_engine_batch_age_seconds_bucket{le="0.1"}'] == 1.0
    actionable_buys = (
        'trading_engine_signals_total{disposition="actionable",reason="unspecified",type="buy"}'
    )
    assert before[actionable_buys] == 2.0

    await risk_service.stop()
    for symbol in ("USDJPY", "EURUSD"):  # two failed calls open the breaker
        await _signals(stub, caller, symbol, direction=DOWN)
    [_] = await _signals(stub, caller, "GBPUSD", direction=DOWN)
    after = _metrics(engine_with_risk)
    assert after['trading_engine_risk_breaker_state{state="open"}'] == 1.0
    assert after['trading_engine_risk_breaker_state{state="closed"}'] == 0.0
    assert after["trading_engine_risk_breaker_opened_total"] == 1.0
    assert after['trading_engine_risk_signals_total{how="conservative_after_error"}'] == 2.0
    assert after['trading_engine_risk_signals_total{how="last_known_limits"}'] == 1.0


async def test_a_fail_closed_strategy_holds_signals_it_cannot_have_assessed(
    as_trader: tuple[Stub, Caller], risk_service: RiskService
) -> None:
    stub, caller = as_trader
    await stub.UpdateStrategy(
        service_pb2.UpdateStrategyRequest(
            layer=strategy_pb2.STRATEGY_LAYER_USER,
            strategy=strategy_pb2.StrategyConfig(require_risk_assessment=True),
            update_mask=field_mask_pb2.FieldMask(paths=["require_risk_assessment"]),
            reason="no trade without risk management",
        )
    )
    risk_service.behaviour.error_rate = 1.0
    [signal] = await _signals(stub, caller, "EURUSD")

    assert signal.disposition == S.SIGNAL_DISPOSITION_HOLD
    assert signal.reason == S.DISPOSITION_REASON_RISK_UNAVAILABLE
    assert signal.risk_status == S.RISK_STATUS_ERROR_FALLBACK
    assert "requires a risk assessment" in signal.cancellation_reason
    assert "UNAVAILABLE" in signal.cancellation_reason

    risk_service.behaviour.error_rate = 0.0
    [signal] = await _signals(stub, caller, "GBPUSD")
    assert signal.disposition == S.SIGNAL_DISPOSITION_ACTIONABLE
    assert signal.risk_status == S.RISK_STATUS_ASSESSED


async def test_a_flapping_service_never_lets_a_signal_out_without_a_risk_status(
    new_trader: NewTrader, risk_service: RiskService
) -> None:
    risk_service.behaviour.error_rate = 0.5
    risk_service.behaviour.seed = 7
    seen: set[int] = set()
    for _ in range(8):
        stub, caller = new_trader()
        signals = await _signals(stub, caller, "EURUSD", "GBPUSD", "USDJPY", "XAUUSD")
        # Long enough for an open breaker to let a trial through at the next round.
        await asyncio.sleep(RESET_S / 2)
        for signal in signals:
            if signal.disposition == S.SIGNAL_DISPOSITION_ACTIONABLE:
                assert signal.risk_status in (
                    S.RISK_STATUS_ASSESSED,
                    S.RISK_STATUS_ERROR_FALLBACK,
                    S.RISK_STATUS_FALLBACK_USED,
                )
                assert _risk_steps(signal)
            else:
                assert signal.risk_status != S.RISK_STATUS_UNSPECIFIED
            seen.add(signal.risk_status)
    assert S.RISK_STATUS_ASSESSED in seen
    assert S.RISK_STATUS_ERROR_FALLBACK in seen
