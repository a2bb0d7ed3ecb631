"""GetSignalHistory on a real server: what was decided comes back, filtered, paged, per tenant."""

from __future__ import annotations

import asyncio
import dataclasses
from typing import TYPE_CHECKING, Any

import grpc
import pytest
from google.protobuf import timestamp_pb2

from tests.factories import batch, live, prediction
from tests.support import ADMIN, RIVAL_ADMIN, TRADER, Stubs, Tokens, http_json_async
from tradeflow.ml.v1 import prediction_pb2
from tradeflow.trading.v1 import signal_pb2
from tradeflow.trading.v1 import trading_engine_service_pb2 as service_pb2
from tradeflow.trading.v1 import trading_engine_service_pb2_grpc as service_grpc
from trading_engine.app import Application
from trading_engine.config import EngineSettings
from trading_engine.gateway.envoy import EnvoyGateway
from trading_engine.tenancy import Caller
from trading_engine_client.errors import (
    InvalidArgumentError,
    PermissionDeniedError,
    from_rpc_error,
)

if TYPE_CHECKING:
    Stub = service_grpc.TradingEngineServiceAsyncStub

ACTIONABLE = signal_pb2.SIGNAL_DISPOSITION_ACTIONABLE
# The factories' engines flush history every 50 ms (tests/conftest.py).
FLUSHED_S = 0.3


async def decide_mix(stub: Stub) -> list[signal_pb2.TradingSignal]:
    """Three batches: EURUSD buy and USDJPY sell, a too-unsure GBPUSD, a GBPUSD buy."""
    signals: list[signal_pb2.TradingSignal] = []
    for message in (
        batch("b1", [prediction("p1"), prediction("p2", "USDJPY", prediction_pb2.DIRECTION_DOWN)]),
        batch("b2", [prediction("p3", "GBPUSD", confidence=0.4)]),
        batch("b3", [prediction("p4", "GBPUSD")]),
    ):
        response = await stub.ProcessPredictionBatch(
            service_pb2.ProcessPredictionBatchRequest(batch=live(message))
        )
        signals.extend(response.signal_batch.signals)
    await asyncio.sleep(FLUSHED_S)
    # History's order: oldest first, and signals decided at one instant by signal id.
    return sorted(signals, key=lambda s: (s.generated_at.ToNanoseconds(), s.signal_id))


async def history(stub: Stub, **fields: Any) -> list[service_pb2.GetSignalHistoryResponse]:
    return [
        page async for page in stub.GetSignalHistory(service_pb2.GetSignalHistoryRequest(**fields))
    ]


def flat(pages: list[service_pb2.GetSignalHistoryResponse]) -> list[signal_pb2.TradingSignal]:
    return [signal for page in pages for signal in page.signals]


async def test_history_returns_what_was_decided_oldest_first(stubs: Stubs) -> None:
    trader = stubs.as_()
    decided = await decide_mix(trader)
    actionable = [s for s in decided if s.disposition == ACTIONABLE]
    assert len(actionable) == 3

    pages = await history(trader)
    assert len(pages) == 1
    assert pages[0].next_page_token == ""
    # The very signals that were answered, trace and all.
    assert flat(pages) == actionable

    everything = flat(await history(trader, include_non_actionable=True))
    assert everything == decided


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        pytest.param({"symbols": ["USDJPY", "GBPUSD"]}, ["p2", "p4"], id="symbols"),
        pytest.param({"signal_types": [signal_pb2.SIGNAL_TYPE_SELL]}, ["p2"], id="types"),
        pytest.param(
            {"signal_types": [signal_pb2.SIGNAL_TYPE_HOLD], "include_non_actionable": True},
            ["p3"],
            id="held",
        ),
        pytest.param({"max_signals": 2}, ["p1", "p2"], id="max-signals"),
    ],
)
async def test_history_filters(stubs: Stubs, fields: dict[str, Any], expected: list[str]) -> None:
    trader = stubs.as_()
    await decide_mix(trader)
    # p1 and p2 share a batch, so their order is their signal ids'.
    assert sorted(s.prediction_id for s in flat(await history(trader, **fields))) == expected


async def test_a_time_range_is_inclusive_at_the_start_and_exclusive_at_the_end(
    stubs: Stubs,
) -> None:
    trader = stubs.as_()
    signals = await decide_mix(trader)
    second_batch_at = signals[2].generated_at
    pages = await history(trader, start_time=second_batch_at, include_non_actionable=True)
    assert [s.prediction_id for s in flat(pages)] == ["p3", "p4"]
    pages = await history(trader, end_time=second_batch_at, include_non_actionable=True)
    assert sorted(s.prediction_id for s in flat(pages)) == ["p1", "p2"]


async def test_pages_carry_tokens_that_resume_after_them(stubs: Stubs) -> None:
    trader = stubs.as_()
    decided = await decide_mix(trader)
    pages = await history(trader, page_size=2, include_non_actionable=True)
    assert [len(page.signals) for page in pages] == [2, 2]
    assert pages[0].next_page_token
    assert pages[1].next_page_token == ""
    assert flat(pages) == decided

    resumed = await history(
        trader, page_size=2, include_non_actionable=True, page_token=pages[0].next_page_token
    )
    assert flat(resumed) == decided[2:]


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        pytest.param({"page_size": 5000}, "page_size", id="page-size"),
        pytest.param({"page_token": "garbage"}, "page_token", id="token"),
        pytest.param({"signal_types": [42]}, "signal_types[0]", id="type"),
        pytest.param(
            {
                "start_time": timestamp_pb2.Timestamp(seconds=200),
                "end_time": timestamp_pb2.Timestamp(seconds=100),
            },
            "end_time",
            id="range",
        ),
    ],
)
async def test_bad_history_requests_name_the_field(
    stubs: Stubs, fields: dict[str, Any], field: str
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await history(stubs.as_(), **fields)
    error = from_rpc_error(raised.value)
    assert isinstance(error, InvalidArgumentError)
    assert field in error.field_violations


async def test_history_is_per_tenant(stubs: Stubs) -> None:
    trader = stubs.as_()
    decided = await decide_mix(trader)
    # A colleague without the admin role may not read it.
    colleague = stubs.as_(Caller("trader-2", "acme", TRADER.tier))
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await history(colleague, user_id="trader-1")
    assert isinstance(from_rpc_error(raised.value), PermissionDeniedError)
    assert await history(colleague) == []
    # The company's admin may.
    assert flat(await history(stubs.as_(ADMIN), user_id="trader-1")) == [
        s for s in decided if s.disposition == ACTIONABLE
    ]
    # Another company's admin naming trader-1 reads trader-1 of their own company: nothing.
    assert await history(stubs.as_(RIVAL_ADMIN), user_id="trader-1") == []


async def test_history_survives_a_restart(engine_settings: EngineSettings, tokens: Tokens) -> None:
    first = Application(engine_settings)
    await first.start()
    async with tokens.channel(first.grpc_address) as channel:
        stub = service_grpc.TradingEngineServiceStub(channel)
        await stub.ProcessPredictionBatch(
            service_pb2.ProcessPredictionBatchRequest(batch=live(batch("b", [prediction("p")])))
        )
    # Stopping writes what is still queued, without waiting for the next flush.
    await first.stop()

    second = Application(engine_settings)
    await second.start()
    try:
        async with tokens.channel(second.grpc_address) as channel:
            stub = service_grpc.TradingEngineServiceStub(channel)
            pages = await history(stub)
    finally:
        await second.stop()
    assert [s.prediction_id for s in flat(pages)] == ["p"]


async def test_history_over_rest_is_a_json_array_of_pages(
    gateway: EnvoyGateway, stubs: Stubs, tokens: Tokens
) -> None:
    await decide_mix(stubs.as_())
    status, body = await http_json_async(
        "GET",
        f"{gateway.base_url}/api/v1/signals/history?symbols=USDJPY&symbols=GBPUSD&pageSize=1",
        headers=tokens.header(),
    )
    assert status == 200, body
    assert [page["signals"][0]["predictionId"] for page in body] == ["p2", "p4"]
    assert body[0]["nextPageToken"]


async def test_history_older_than_the_retention_is_deleted(
    engine_settings: EngineSettings, tokens: Tokens
) -> None:
    first = Application(engine_settings)
    await first.start()
    async with tokens.channel(first.grpc_address) as channel:
        stub = service_grpc.TradingEngineServiceStub(channel)
        await stub.ProcessPredictionBatch(
            service_pb2.ProcessPredictionBatchRequest(batch=live(batch("b", [prediction("p")])))
        )
        await asyncio.sleep(FLUSHED_S)
        assert len(flat(await history(stub))) == 1
    await first.stop()

    # Ten milliseconds of retention: the signal is old by the time the engine starts.
    short = dataclasses.replace(engine_settings, history_retention_days=0.01 / 86_400)
    second = Application(short)
    await second.start()
    await asyncio.sleep(0.2)
    try:
        async with tokens.channel(second.grpc_address) as channel:
            pages = await history(service_grpc.TradingEngineServiceStub(channel))
    finally:
        await second.stop()
    assert pages == []
