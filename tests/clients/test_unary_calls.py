"""Every unary method of both clients against a live engine, with real answers."""

from __future__ import annotations

import inspect
import re
import time
from collections.abc import Awaitable, Callable
from typing import Any

from google.protobuf import field_mask_pb2

from tests import factories
from tests.clients.conftest import Session
from tests.support import ADMIN, TRADER
from tradeflow.common.v1 import tier_pb2
from tradeflow.trading.v1 import execution_pb2, performance_pb2, signal_pb2, strategy_pb2
from tradeflow.trading.v1 import trading_engine_service_pb2 as service_pb2
from trading_engine import __version__
from trading_engine.tenancy import Caller
from trading_engine_client import AsyncTradingEngineClient, TradingEngineClient

S = service_pb2
SERVICE = S.DESCRIPTOR.services_by_name["TradingEngineService"]
UNARY_RPCS = [m for m in SERVICE.methods if not m.client_streaming and not m.server_streaming]


Call = Callable[[str, Caller, Any], Awaitable[Any]]


def method_name(rpc_name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", rpc_name).lower()


async def test_every_unary_method_answers_with_its_typed_result(session: Session) -> None:
    called: list[str] = []

    async def recorded(method: str, caller: Caller, request: Any) -> Any:
        called.append(method)
        return await session.call(method, caller, request)

    await _every_unary_method(recorded)
    assert sorted(called) == sorted(method_name(rpc.name) for rpc in UNARY_RPCS)


async def _every_unary_method(call: Call) -> None:
    report = await call("health_check", TRADER, None)
    assert report.status == S.SERVING_STATUS_SERVING
    assert report.version == __version__

    batch = factories.live(factories.batch("client-1", [factories.prediction("client-1-eur")]))
    decided = await call(
        "process_prediction_batch", TRADER, S.ProcessPredictionBatchRequest(batch=batch)
    )
    assert isinstance(decided, signal_pb2.TradingSignalBatch)
    bought = decided.signals[0]
    assert (bought.symbol, bought.signal_type) == ("EURUSD", signal_pb2.SIGNAL_TYPE_BUY)
    assert bought.disposition == signal_pb2.SIGNAL_DISPOSITION_ACTIONABLE

    strategy = await call("get_strategy", TRADER, None)
    assert isinstance(strategy, strategy_pb2.EffectiveStrategy)
    assert (strategy.user_id, strategy.tier) == ("trader-1", tier_pb2.SUBSCRIPTION_TIER_PRO)
    assert strategy.config.min_confidence_threshold == 0.7  # PRO's default

    updated = await call(
        "update_strategy",
        TRADER,
        S.UpdateStrategyRequest(
            layer=strategy_pb2.STRATEGY_LAYER_USER,
            strategy=strategy_pb2.StrategyConfig(min_confidence_threshold=0.75),
            update_mask=field_mask_pb2.FieldMask(paths=["min_confidence_threshold"]),
            expected_version=strategy.user_version,
            request_id="client-update-1",
            reason="fewer, surer signals",
        ),
    )
    assert updated.strategy.config.min_confidence_threshold == 0.75
    assert updated.version.changed_fields == ["min_confidence_threshold"]

    versions = await call(
        "list_strategy_versions",
        TRADER,
        S.ListStrategyVersionsRequest(layer=strategy_pb2.STRATEGY_LAYER_USER),
    )
    assert [v.version for v in versions.versions] == [updated.version.version]
    assert versions.versions[0].reason == "fewer, surer signals"

    reset = await call(
        "reset_strategy",
        TRADER,
        S.ResetStrategyRequest(
            layer=strategy_pb2.STRATEGY_LAYER_USER,
            to_version=0,
            expected_version=updated.version.version,
            request_id="client-reset-1",
        ),
    )
    assert reset.strategy.config.min_confidence_threshold == 0.7
    assert reset.version.version > updated.version.version

    injected = await call(
        "inject_manual_signal",
        ADMIN,
        S.InjectManualSignalRequest(
            request_id="client-manual-1",
            user_id="trader-1",
            symbol="EURUSD",
            signal_type=signal_pb2.SIGNAL_TYPE_SELL,
            order_type=signal_pb2.ORDER_TYPE_MARKET,
            reference_price=1.085,
            stop_loss=1.087,
            take_profit=1.081,
            position_size_lots=1.0,
            note="desk call",
        ),
    )
    assert isinstance(injected, signal_pb2.TradingSignal)
    assert (injected.user_id, injected.signal_type) == ("trader-1", signal_pb2.SIGNAL_TYPE_SELL)

    fill = execution_pb2.ExecutionResult(
        execution_id="client-fill-1",
        signal_id=bought.signal_id,
        symbol="EURUSD",
        status=execution_pb2.EXECUTION_STATUS_FILLED,
        executed_price=bought.entry.entry_price,
        executed_size_lots=bought.entry.position_size_lots,
    )
    fill.executed_at.FromNanoseconds(time.time_ns())
    performance = await call(
        "record_execution_result", TRADER, S.RecordExecutionResultRequest(result=fill)
    )
    assert isinstance(performance, execution_pb2.SignalPerformance)
    assert performance.signal_id == bought.signal_id
    assert performance.outcome == execution_pb2.SIGNAL_OUTCOME_OPEN

    explained = await call(
        "explain_signal", TRADER, S.ExplainSignalRequest(signal_id=bought.signal_id)
    )
    assert explained.prediction.prediction_id == "client-1-eur"
    assert [e.execution_id for e in explained.executions] == ["client-fill-1"]

    summary = await call("get_performance_summary", TRADER, None)
    assert isinstance(summary, performance_pb2.PerformanceSummary)
    assert summary.user_id == "trader-1"
    assert summary.stats.executed == 1

    analysis = await call(
        "analyze_signal_performance",
        TRADER,
        S.AnalyzeSignalPerformanceRequest(dimensions=[performance_pb2.BREAKDOWN_DIMENSION_SYMBOL]),
    )
    assert [b.key for b in analysis.breakdowns] == ["EURUSD"]

    setting = await call(
        "set_trading_state",
        ADMIN,
        S.SetTradingStateRequest(user_id="trader-1", state=S.TRADING_STATE_HALTED, reason="drill"),
    )
    assert isinstance(setting, S.TradingStateSetting)
    assert (setting.state, setting.changed_by) == (S.TRADING_STATE_HALTED, "ops-1")

    state = await call("get_trading_state", TRADER, None)
    assert state.effective_state == S.TRADING_STATE_HALTED
    assert state.user_setting.reason == "drill"


def test_both_clients_cover_every_rpc_with_the_same_methods() -> None:
    def surface(client: type) -> dict[str, list[str]]:
        return {
            name: list(inspect.signature(member).parameters)
            for name, member in inspect.getmembers(client, inspect.isfunction)
            if not name.startswith("_")
        }

    blocking, asynchronous = surface(TradingEngineClient), surface(AsyncTradingEngineClient)
    assert blocking == asynchronous
    # Every RPC of the contract has its method: unary ones by name, streams as helpers.
    streams = {
        "ProcessPredictions": "process_predictions",
        "StreamSignals": "stream_signals",
        "ManageStrategies": "manage_strategies",
        "StreamAnalytics": "stream_analytics",
        "GetSignalHistory": "signal_history",
        "GetStrategyPerformance": "strategy_performance",
        "ReplaySignals": "replay_signals",
    }
    assert {rpc.name for rpc in SERVICE.methods} == {rpc.name for rpc in UNARY_RPCS} | set(streams)
    expected = {method_name(rpc.name) for rpc in UNARY_RPCS} | set(streams.values())
    assert expected <= set(blocking)
