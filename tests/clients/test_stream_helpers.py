"""Every stream helper of both clients against a live engine."""

from __future__ import annotations

import time

import pytest
from google.protobuf import duration_pb2, field_mask_pb2

from tests import factories
from tests.clients.conftest import Session
from tests.support import TRADER
from tradeflow.ml.v1 import prediction_pb2
from tradeflow.trading.v1 import execution_pb2, performance_pb2, signal_pb2, strategy_pb2
from tradeflow.trading.v1 import trading_engine_service_pb2 as service_pb2
from trading_engine.app import Application
from trading_engine_client import InvalidArgumentError, from_status

S = service_pb2
P = performance_pb2


def live_batch(batch_id: str, *symbols: str) -> prediction_pb2.MLPredictionBatch:
    predictions = [factories.prediction(f"{batch_id}-{symbol}", symbol) for symbol in symbols]
    return factories.live(factories.batch(batch_id, predictions))


async def decide(session: Session, batch_id: str, *symbols: str) -> signal_pb2.TradingSignalBatch:
    request = S.ProcessPredictionBatchRequest(batch=live_batch(batch_id, *symbols))
    decided: signal_pb2.TradingSignalBatch = await session.call(
        "process_prediction_batch", TRADER, request
    )
    return decided


async def test_process_predictions_answers_each_batch_in_order(session: Session) -> None:
    batches = [live_batch("s-1", "EURUSD"), live_batch("s-2", "USDJPY", "GBPUSD")]
    answers = [a async for a in session.stream("process_predictions", TRADER, batches)]
    assert [a.batch_id for a in answers] == ["s-1", "s-2"]
    assert [len(a.signals) for a in answers] == [1, 2]
    assert answers[1].signals[0].symbol == "USDJPY"


async def test_signal_history_pages_through_what_was_decided(
    engine: Application, session: Session
) -> None:
    first = await decide(session, "h-1", "EURUSD")
    second = await decide(session, "h-2", "USDJPY")
    # History is written in the background; make it now rather than wait for it.
    await engine.history_writer.flush()
    request = S.GetSignalHistoryRequest(page_size=1)
    pages = [page async for page in session.stream("signal_history", TRADER, request)]
    assert [[s.signal_id for s in page.signals] for page in pages] == [
        [first.signals[0].signal_id],
        [second.signals[0].signal_id],
    ]
    assert pages[0].next_page_token
    assert not pages[-1].next_page_token


async def test_strategy_performance_sends_one_summary_per_window(
    engine: Application, session: Session
) -> None:
    await decide(session, "p-1", "EURUSD")
    await engine.history_writer.flush()
    request = S.GetStrategyPerformanceRequest(
        windows=[P.PERFORMANCE_WINDOW_TODAY, P.PERFORMANCE_WINDOW_ALL_TIME]
    )
    summaries = [s async for s in session.stream("strategy_performance", TRADER, request)]
    assert [s.window for s in summaries] == [
        P.PERFORMANCE_WINDOW_TODAY,
        P.PERFORMANCE_WINDOW_ALL_TIME,
    ]
    assert all(s.stats.signals_total == 1 for s in summaries)


async def test_stream_analytics_sends_figures_at_once_and_again_when_they_change(
    session: Session,
) -> None:
    bought = (await decide(session, "a-1", "EURUSD")).signals[0]
    subscription = S.AnalyticsSubscription(
        windows=[P.PERFORMANCE_WINDOW_ALL_TIME],
        min_interval=duration_pb2.Duration(nanos=100_000_000),
    )
    updates = session.stream("stream_analytics", TRADER, [subscription])
    try:
        assert (await anext(updates)).stats.executed == 0
        fill = execution_pb2.ExecutionResult(
            execution_id="a-fill",
            signal_id=bought.signal_id,
            status=execution_pb2.EXECUTION_STATUS_FILLED,
            executed_price=bought.entry.entry_price,
            executed_size_lots=bought.entry.position_size_lots,
        )
        fill.executed_at.FromNanoseconds(time.time_ns())
        await session.call(
            "record_execution_result", TRADER, S.RecordExecutionResultRequest(result=fill)
        )
        assert (await anext(updates)).stats.executed == 1
    finally:
        await updates.aclose()


async def test_manage_strategies_answers_each_operation_and_reports_failures_in_stream(
    session: Session,
) -> None:
    operations = [
        S.ManageStrategiesRequest(operation_id="read", get=S.GetStrategyRequest()),
        S.ManageStrategiesRequest(
            operation_id="bad",
            update=S.UpdateStrategyRequest(
                layer=strategy_pb2.STRATEGY_LAYER_USER,
                strategy=strategy_pb2.StrategyConfig(min_confidence_threshold=1.5),
                update_mask=field_mask_pb2.FieldMask(paths=["min_confidence_threshold"]),
            ),
        ),
        S.ManageStrategiesRequest(
            operation_id="list",
            list_versions=S.ListStrategyVersionsRequest(layer=strategy_pb2.STRATEGY_LAYER_USER),
        ),
    ]
    answers = [a async for a in session.stream("manage_strategies", TRADER, operations)]
    assert [a.operation_id for a in answers] == ["read", "bad", "list"]
    assert answers[0].get.strategy.user_id == "trader-1"
    with pytest.raises(InvalidArgumentError) as raised:
        raise from_status(answers[1].error)
    assert "strategy.min_confidence_threshold" in raised.value.field_violations
    assert list(answers[2].list_versions.versions) == []


async def test_stream_signals_acknowledges_the_filter_then_sends_live_signals(
    session: Session,
) -> None:
    events = session.stream("stream_signals", TRADER, [S.SignalFilter(symbols=["EURUSD"])])
    try:
        acknowledged = await anext(events)
        assert acknowledged.filter_applied.symbols == ["EURUSD"]
        decided = await decide(session, "l-1", "GBPUSD", "EURUSD")
        received = await anext(events)
        assert received.signal == decided.signals[1]
    finally:
        await events.aclose()
