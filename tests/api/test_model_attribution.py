"""Per-model attribution on a crafted desk: one model always right, one always wrong, one
that backs every trade. Served by AnalyzeSignalPerformance (dimension MODEL) over gRPC and
REST, and by /metrics."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator

import pytest

from tests.api.trading import ManualClock, failure, record, result
from tests.factories import batch, prediction
from tests.support import TRADER, Stubs, Tokens, http_json_async, http_text, rest_gateway
from tradeflow.ml.v1 import prediction_pb2
from tradeflow.trading.v1 import execution_pb2, performance_pb2, signal_pb2
from tradeflow.trading.v1 import trading_engine_service_pb2 as service_pb2
from trading_engine.app import Application
from trading_engine.config import EngineSettings
from trading_engine_client.errors import InvalidArgumentError

E = execution_pb2
UP, DOWN = prediction_pb2.DIRECTION_UP, prediction_pb2.DIRECTION_DOWN
MODEL = performance_pb2.BREAKDOWN_DIMENSION_MODEL
# Symbol -> what its buy made, as the broker reports it (USD).
OUTCOMES = {"EURUSD": 200.0, "GBPUSD": 100.0, "USDJPY": -100.0, "AUDUSD": -200.0}


@pytest.fixture
async def watched(engine_settings: EngineSettings) -> AsyncIterator[Application]:
    settings = dataclasses.replace(engine_settings, metrics_address="127.0.0.1:0")
    application = Application(settings, clock=ManualClock())
    await application.start()
    yield application
    await application.stop()


def voted_prediction(symbol: str, won: bool) -> prediction_pb2.Prediction:
    """An UP prediction whose ensemble (weight 3) backs it; the oracle (weight 1, 0.8 sure)
    names what the market will do, the contrarian (weight 1, 0.6 sure) the opposite."""
    message = prediction(f"p-{symbol}", symbol, votes=0)
    message.votes.add(model_id="ensemble", direction=UP, confidence=0.9, weight=3.0)
    message.votes.add(model_id="oracle", direction=UP if won else DOWN, confidence=0.8, weight=1.0)
    message.votes.add(
        model_id="contrarian", direction=DOWN if won else UP, confidence=0.6, weight=1.0
    )
    return message


async def _desk(stubs: Stubs) -> None:
    stub = stubs.as_(TRADER)
    predictions = [voted_prediction(symbol, money > 0) for symbol, money in OUTCOMES.items()]
    response = await stub.ProcessPredictionBatch(
        service_pb2.ProcessPredictionBatchRequest(batch=batch("b-models", predictions))
    )
    for signal in response.signal_batch.signals:
        assert signal.disposition == signal_pb2.SIGNAL_DISPOSITION_ACTIONABLE, signal
        price = signal.entry.entry_price
        close = result(signal, f"x-{signal.symbol}", E.EXECUTION_STATUS_CLOSED, price, price)
        close.profit_loss, close.currency = OUTCOMES[signal.symbol], "USD"
        await record(stub, close)


async def test_one_model_always_right_one_always_wrong_over_grpc_rest_and_metrics(
    watched: Application, tokens: Tokens
) -> None:
    stubs = Stubs(watched.grpc_address, tokens)
    try:
        await _desk(stubs)
        analysis = await stubs.as_(TRADER).AnalyzeSignalPerformance(
            service_pb2.AnalyzeSignalPerformanceRequest(dimensions=[MODEL])
        )
    finally:
        await stubs.close()
    models = {b.key: b for b in analysis.breakdowns}
    assert sorted(models) == ["contrarian", "ensemble", "oracle"]
    assert {b.dimension for b in analysis.breakdowns} == {MODEL}
    oracle, contrarian, ensemble = (models[k].model for k in ("oracle", "contrarian", "ensemble"))
    # Four closed signals each voted on, every vote a call.
    assert [(m.signals, m.calls) for m in (oracle, contrarian, ensemble)] == [(4, 4)] * 3
    assert (oracle.correct, oracle.hit_rate, oracle.mean_confidence) == (4, 1.0, 0.8)
    assert (contrarian.correct, contrarian.hit_rate, contrarian.mean_confidence) == (0, 0.0, 0.6)
    assert (ensemble.correct, ensemble.hit_rate) == (2, 0.5)
    # Weight shares of 1/5, 1/5 and 3/5. The oracle backed the two winners (+300) and none of
    # the losers; the contrarian the two losers (-300); the ensemble all four.
    backed = [x for m in (oracle, contrarian, ensemble) for x in (m.profit_backed, m.loss_backed)]
    assert backed == pytest.approx([60.0, 0.0, 0.0, -60.0, 180.0, -180.0])
    [bucket] = oracle.calibration
    assert (bucket.confidence_lower, bucket.closed_signals, bucket.wins, bucket.hit_rate) == (
        0.8, 4, 4, 1.0,
    )  # fmt: skip
    # Per symbol: one signal each, the oracle right on every one.
    assert [(m.symbol, m.correct) for m in models["oracle"].model_by_symbol] == [
        ("AUDUSD", 1), ("EURUSD", 1), ("GBPUSD", 1), ("USDJPY", 1),
    ]  # fmt: skip
    # The model's signals' own figures: two won, two lost, +0 net.
    assert (models["oracle"].stats.wins, models["oracle"].stats.losses) == (2, 2)

    async with rest_gateway(watched) as envoy:
        status, body = await http_json_async(
            "GET",
            f"{envoy.base_url}/api/v1/performance/analysis?dimensions=BREAKDOWN_DIMENSION_MODEL",
            headers=tokens.header(TRADER),
        )
    assert status == 200, body
    by_key = {entry["key"]: entry["model"] for entry in body["breakdowns"]}
    assert (by_key["oracle"]["hitRate"], by_key["oracle"]["correct"]) == (1.0, "4")
    assert by_key["contrarian"]["hitRate"] == 0
    assert by_key["contrarian"]["lossBacked"] == pytest.approx(-60.0)

    metrics = await asyncio.to_thread(http_text, f"http://127.0.0.1:{watched.metrics.port}/metrics")
    assert 'trading_engine_model_hit_rate{model="oracle"} 1.0' in metrics
    assert 'trading_engine_model_hit_rate{model="contrarian"} 0.0' in metrics
    assert 'trading_engine_model_calls_total{model="ensemble",result="wrong"} 2.0' in metrics


async def test_an_unknown_dimension_names_model_among_the_allowed(
    watched: Application, tokens: Tokens
) -> None:
    stubs = Stubs(watched.grpc_address, tokens)
    try:
        error = await failure(
            stubs.as_(TRADER).AnalyzeSignalPerformance(
                service_pb2.AnalyzeSignalPerformanceRequest(dimensions=[9])  # type: ignore[list-item]
            )
        )
    finally:
        await stubs.close()
    assert isinstance(error, InvalidArgumentError)
    assert error.field_violations["dimensions"] == (
        "9 is not SYMBOL, SIGNAL_TYPE, STRENGTH_BUCKET, HOUR_OF_DAY or MODEL"
    )
