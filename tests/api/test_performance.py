"""Execution results through the API, and the performance figures they produce, on a real server."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import grpc
import pytest
from google.protobuf import duration_pb2, field_mask_pb2

from tests.api.trading import MS, PIP, ManualClock, decide, failure, record, result
from tests.factories import NOW_NS, batch, prediction
from tests.support import ADMIN, RIVAL_ADMIN, TRADER, Stubs, Tokens, http_json_async, rest_gateway
from tradeflow.trading.v1 import execution_pb2, performance_pb2, signal_pb2, strategy_pb2
from tradeflow.trading.v1 import trading_engine_service_pb2 as service_pb2
from trading_engine.app import Application
from trading_engine_client.errors import (
    FailedPreconditionError,
    InvalidArgumentError,
    NotFoundError,
    PermissionDeniedError,
)

E = execution_pb2
S = signal_pb2


async def test_a_fill_then_a_close_give_latency_slippage_and_profit_exact_to_the_pip(
    stubs_: Stubs,
) -> None:
    stub = stubs_.as_(TRADER)
    [eurusd] = await decide(stub, "b1", "EURUSD")
    entry = eurusd.entry
    lots = entry.position_size_lots

    # Filled 0.3 pips worse than asked for a buy (higher), 150 ms after the decision.
    filled = await record(
        stub, result(eurusd, "x1", E.EXECUTION_STATUS_FILLED, entry.entry_price + 3 * PIP / 10)
    )
    assert filled.outcome == E.SIGNAL_OUTCOME_OPEN
    assert filled.slippage_pips == pytest.approx(0.3)
    assert filled.execution_latency.ToNanoseconds() == 150 * MS
    assert filled.strategy_version == eurusd.strategy_version

    # Closed 25 pips above the fill, 4.50 commission: 25 x pip value x lots - 4.50.
    fill_price = entry.entry_price + 3 * PIP / 10
    close = result(
        eurusd, "x1", E.EXECUTION_STATUS_CLOSED, fill_price, fill_price + 25 * PIP, commission=4.5
    )
    closed = await record(stub, close)
    assert closed.outcome == E.SIGNAL_OUTCOME_WIN
    assert closed.profit_loss_pips == pytest.approx(25.0)
    assert closed.profit_loss == pytest.approx(round(25 * entry.pip_value * lots - 4.5, 2))
    assert closed.currency == "USD"
    assert closed.closed_at.ToNanoseconds() == NOW_NS + 3_600_000 * MS

    # The same close sent again changes nothing.
    again = await record(stub, close)
    assert again == closed


async def test_summary_and_analysis_match_hand_computed_figures(stubs_: Stubs) -> None:
    stub = stubs_.as_(TRADER)
    eurusd, gbpusd, usdjpy = await decide(stub, "b2", "EURUSD", "GBPUSD", "USDJPY")
    # EURUSD: +20 pips; GBPUSD: -10 pips; USDJPY: filled, still open. Broker reports money.
    for signal, move, money in ((eurusd, 20, 250.0), (gbpusd, -10, -125.0)):
        price = signal.entry.entry_price
        close = result(
            signal, f"x-{signal.symbol}", E.EXECUTION_STATUS_CLOSED, price, price + move * PIP
        )
        close.profit_loss, close.currency = money, "USD"
        await record(stub, close)
    await record(stub, result(usdjpy, "x-jpy", E.EXECUTION_STATUS_FILLED, usdjpy.entry.entry_price))

    response = await stub.GetPerformanceSummary(
        service_pb2.GetPerformanceSummaryRequest(window=performance_pb2.PERFORMANCE_WINDOW_ALL_TIME)
    )
    stats = response.summary.stats
    assert response.summary.user_id == TRADER.user_id
    assert (stats.signals_total, stats.executed, stats.closed) == (3, 3, 2)
    assert (stats.wins, stats.losses, stats.hit_rate) == (1, 1, 0.5)
    assert stats.profit_factor == pytest.approx(2.0)  # 250 / 125
    assert stats.total_profit_loss == pytest.approx(125.0)
    assert stats.expectancy == pytest.approx(62.5)
    assert stats.total_profit_loss_pips == pytest.approx(10.0)
    # Equity 25,000: +250 and -125 closing at one instant, netted: one step up, no drawdown.
    assert (stats.max_drawdown, stats.max_drawdown_fraction) == (0.0, 0.0)
    # One day returning 125 / 25,000: no Sharpe from one day, no Sortino or Calmar without a
    # loss; 0.5% a day compounds to 1.005^365 - 1 a year. Both trades lasted from their fill,
    # 150 ms after the decision, to the close an hour after it, the whole time in the market;
    # the loss counts before the win closed at the same instant: a losing streak of 1.
    risk = stats.risk_adjusted
    assert risk.days == 1
    assert not risk.HasField("sharpe_ratio")
    assert not risk.HasField("sortino_ratio")
    assert not risk.HasField("calmar_ratio")
    assert risk.annual_return == pytest.approx(1.005**365 - 1.0)
    assert risk.exposure == 1.0
    assert risk.average_trade_duration.ToNanoseconds() == 3_600_000 * MS - 150 * MS
    assert risk.longest_losing_streak == 1
    [bucket] = stats.calibration
    assert (bucket.confidence_lower, bucket.closed_signals, bucket.wins) == (0.8, 2, 1)

    analysis = await stub.AnalyzeSignalPerformance(
        service_pb2.AnalyzeSignalPerformanceRequest(
            dimensions=[performance_pb2.BREAKDOWN_DIMENSION_SYMBOL]
        )
    )
    by_symbol = {b.key: b.stats for b in analysis.breakdowns}
    assert sorted(by_symbol) == ["EURUSD", "GBPUSD", "USDJPY"]
    assert by_symbol["EURUSD"].wins == 1
    assert by_symbol["GBPUSD"].losses == 1
    assert by_symbol["USDJPY"].executed == 1
    assert by_symbol["USDJPY"].closed == 0

    windows = [
        performance_pb2.PERFORMANCE_WINDOW_TODAY,
        performance_pb2.PERFORMANCE_WINDOW_LAST_7_DAYS,
    ]
    streamed = [
        r.summary
        async for r in stub.GetStrategyPerformance(
            service_pb2.GetStrategyPerformanceRequest(windows=windows, symbol="EURUSD")
        )
    ]
    assert [s.window for s in streamed] == windows
    assert all(s.stats.closed == 1 and s.symbol == "EURUSD" for s in streamed)


async def test_an_open_loss_is_in_the_marked_to_market_drawdown_not_the_realised_one(
    stubs_: Stubs, clock: ManualClock
) -> None:
    stub = stubs_.as_(TRADER)
    [eurusd] = await decide(stub, "b-open", "EURUSD")
    entry = eurusd.entry  # a buy at the ask, 1.08516
    await record(stub, result(eurusd, "x-open", E.EXECUTION_STATUS_FILLED, entry.entry_price))
    # Ten minutes on, the feed prices EURUSD 30 pips lower (mid 1.08212): the engine's latest.
    clock.now = NOW_NS + 600_000 * MS
    lower = prediction("b-lower-EURUSD", "EURUSD", observed_ns=clock.now - 200 * MS)
    lower.current_price, lower.bid, lower.ask = 1.08212, 1.08208, 1.08216
    later = batch("b-lower", [lower])
    later.produced_at.FromNanoseconds(clock.now - 100 * MS)
    await stub.ProcessPredictionBatch(service_pb2.ProcessPredictionBatchRequest(batch=later))

    summary = (
        await stub.GetPerformanceSummary(service_pb2.GetPerformanceSummaryRequest())
    ).summary.stats
    analysis = (
        await stub.AnalyzeSignalPerformance(service_pb2.AnalyzeSignalPerformanceRequest())
    ).overall
    # 1.08212 - 1.08516 = -30.4 pips on the open buy; nothing closed, nothing realised.
    open_loss = 30.4 * entry.pip_value * entry.position_size_lots
    for stats in (summary, analysis):
        assert (stats.max_drawdown, stats.max_drawdown_fraction) == (0.0, 0.0)
        assert stats.max_drawdown_marked_to_market == pytest.approx(open_loss, abs=0.005)
        assert stats.max_drawdown_marked_to_market_fraction == pytest.approx(open_loss / 25_000.0)


async def test_open_positions_feed_the_position_limit(stubs_: Stubs) -> None:
    stub = stubs_.as_(TRADER)
    await stub.UpdateStrategy(
        service_pb2.UpdateStrategyRequest(
            layer=strategy_pb2.STRATEGY_LAYER_USER,
            strategy=strategy_pb2.StrategyConfig(max_position_count=1),
            update_mask=field_mask_pb2.FieldMask(paths=["max_position_count"]),
        )
    )
    [eurusd] = await decide(stub, "b3", "EURUSD")
    await record(stub, result(eurusd, "x3", E.EXECUTION_STATUS_FILLED, eurusd.entry.entry_price))
    [gbpusd] = await decide(stub, "b4", "GBPUSD")
    assert gbpusd.reason == S.DISPOSITION_REASON_POSITION_LIMIT_REACHED

    price = eurusd.entry.entry_price
    await record(stub, result(eurusd, "x3", E.EXECUTION_STATUS_CLOSED, price, price + 5 * PIP))
    [usdjpy] = await decide(stub, "b5", "USDJPY")
    assert usdjpy.disposition == S.SIGNAL_DISPOSITION_ACTIONABLE


async def test_bad_results_are_refused_with_the_reason(stubs_: Stubs) -> None:
    stub = stubs_.as_(TRADER)
    [eurusd, cad] = await decide(stub, "b6", "EURUSD", "GBPUSD")
    unknown = E.ExecutionResult(
        execution_id="x", signal_id="nope", status=E.EXECUTION_STATUS_REJECTED
    )
    assert isinstance(await failure(record(stub, unknown)), NotFoundError)

    missing = result(eurusd, "x6", E.EXECUTION_STATUS_CLOSED, eurusd.entry.entry_price)
    missing.ClearField("closed_at")
    error = await failure(record(stub, missing))
    assert isinstance(error, InvalidArgumentError)
    assert set(error.field_violations) == {"result.exit_price", "result.closed_at"}

    wrong_symbol = result(eurusd, "x7", E.EXECUTION_STATUS_REJECTED)
    wrong_symbol.symbol = "USDJPY"
    assert isinstance(await failure(record(stub, wrong_symbol)), FailedPreconditionError)

    other_company = result(eurusd, "x8", E.EXECUTION_STATUS_REJECTED)
    other_company.company_id = "rival"
    assert isinstance(await failure(record(stub, other_company)), PermissionDeniedError)
    # A rival company's admin sees no signal of ours, and no figures of ours.
    rival = stubs_.as_(RIVAL_ADMIN)
    assert isinstance(
        await failure(record(rival, result(eurusd, "x9", E.EXECUTION_STATUS_REJECTED))),
        NotFoundError,
    )
    rejected = await record(stub, result(cad, "x10", E.EXECUTION_STATUS_REJECTED))
    assert rejected.outcome == E.SIGNAL_OUTCOME_NOT_FILLED
    theirs = await rival.GetPerformanceSummary(service_pb2.GetPerformanceSummaryRequest())
    assert theirs.summary.stats.signals_total == 0
    # Our admin may read the trader's figures.
    ours = await stubs_.as_(ADMIN).GetPerformanceSummary(
        service_pb2.GetPerformanceSummaryRequest(user_id=TRADER.user_id)
    )
    assert ours.summary.stats.signals_total == 2


async def test_stream_analytics_sends_figures_then_an_update_after_eachresult(
    stubs_: Stubs,
) -> None:
    stub = stubs_.as_(TRADER)
    [eurusd] = await decide(stub, "b7", "EURUSD")
    requests: asyncio.Queue[service_pb2.StreamAnalyticsRequest | None] = asyncio.Queue()

    async def send() -> AsyncIterator[service_pb2.StreamAnalyticsRequest]:
        while (request := await requests.get()) is not None:
            yield request

    interval = duration_pb2.Duration(nanos=100 * MS)
    await requests.put(
        service_pb2.StreamAnalyticsRequest(
            subscription=service_pb2.AnalyticsSubscription(min_interval=interval)
        )
    )
    call = stub.StreamAnalytics(send())

    async def read() -> service_pb2.StreamAnalyticsResponse:
        response = await asyncio.wait_for(call.read(), 5)
        assert isinstance(response, service_pb2.StreamAnalyticsResponse)
        return response

    first = await read()
    assert first.summary.stats.executed == 0
    await record(stub, result(eurusd, "x11", E.EXECUTION_STATUS_FILLED, eurusd.entry.entry_price))
    update = await read()
    assert update.summary.stats.executed == 1

    # A new subscription mid-stream: one summary per symbol asked for.
    await requests.put(
        service_pb2.StreamAnalyticsRequest(
            subscription=service_pb2.AnalyticsSubscription(
                symbols=["EURUSD", "GBPUSD"], min_interval=interval
            )
        )
    )
    replaced = [await read() for _ in range(2)]
    assert [(r.summary.symbol, r.summary.stats.executed) for r in replaced] == [
        ("EURUSD", 1),
        ("GBPUSD", 0),
    ]
    await requests.put(
        service_pb2.StreamAnalyticsRequest(
            subscription=service_pb2.AnalyticsSubscription(windows=[99])  # type: ignore[list-item]
        )
    )
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await read()
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    await requests.put(None)


async def test_rest_summary_through_envoy(fixed_engine: Application, tokens: Tokens) -> None:
    async with rest_gateway(fixed_engine) as envoy:
        base = envoy.base_url
        status, body = await http_json_async(
            "GET",
            f"{base}/api/v1/performance/summary?window=PERFORMANCE_WINDOW_TODAY&symbol=EURUSD",
            headers=tokens.header(TRADER),
        )
        assert status == 200, body
        assert body["summary"]["window"] == "PERFORMANCE_WINDOW_TODAY"
        assert body["summary"]["symbol"] == "EURUSD"
        assert body["summary"]["userId"] == TRADER.user_id
        status, body = await http_json_async(
            "GET",
            f"{base}/api/v1/performance/summary?window=PERFORMANCE_WINDOW_TODAY&user_id=x",
            headers=tokens.header(TRADER),
        )
        assert status == 403, json.dumps(body)
