"""The demo feed `dev --demo` runs: what a newcomer watching it sees, minute after minute."""

from __future__ import annotations

import collections
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

import pytest
from google.protobuf import field_mask_pb2

from tests.api.trading import ManualClock
from tests.support import TRADER, Tokens
from tradeflow.trading.v1 import signal_pb2, strategy_pb2
from tradeflow.trading.v1 import trading_engine_service_pb2 as service_pb2
from tradeflow.trading.v1 import trading_engine_service_pb2_grpc as service_grpc
from trading_engine.app import Application
from trading_engine.config import EngineSettings
from trading_engine.core import instruments
from trading_engine.devstack.demo import TRADERS, DemoFeed, set_up_demo_strategies

if TYPE_CHECKING:
    from tests.api.trading import Stub

MINUTE_NS = 60 * 10**9
# The default rate, 20 predictions/s, over 8.5 predictions per batch on average.
BATCH_INTERVAL_NS = 425 * 10**6
D = signal_pb2


@pytest.fixture
async def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
async def demo_engine(
    engine_settings: EngineSettings, clock: ManualClock
) -> AsyncIterator[Application]:
    application = Application(engine_settings, clock=clock)
    await application.start()
    yield application
    await application.stop()


async def _trader_1_minutes(
    engine: Application, tokens: Tokens, clock: ManualClock, minutes: int
) -> list[collections.Counter[int]]:
    """trader-1's decisions per simulated minute, by disposition, the feed at its default rate."""
    feed = DemoFeed(seed=7, now_ns=clock.now_ns)
    start, counts = clock.now, [collections.Counter[int]() for _ in range(minutes)]
    async with tokens.channel(engine.grpc_address) as channel:
        stub = service_grpc.TradingEngineServiceStub(channel)
        while (elapsed := clock.now - start) < minutes * MINUTE_NS:
            batch = feed.next_batch()
            if batch.user_context.user_id == TRADER.user_id:
                response = await stub.ProcessPredictionBatch(
                    service_pb2.ProcessPredictionBatchRequest(batch=batch)
                )
                decided = (s.disposition for s in response.signal_batch.signals)
                counts[elapsed // MINUTE_NS].update(decided)
            clock.now += BATCH_INTERVAL_NS
    return counts


async def test_a_watcher_keeps_seeing_signals_after_the_first_minute(
    demo_engine: Application, tokens: Tokens, clock: ManualClock
) -> None:
    await set_up_demo_strategies(demo_engine.strategies)
    minutes = await _trader_1_minutes(demo_engine, tokens, clock, minutes=6)
    # Every minute: new signals, and the engine visibly saying no to some views.
    assert all(m[D.SIGNAL_DISPOSITION_ACTIONABLE] >= 10 for m in minutes), minutes
    assert all(m[D.SIGNAL_DISPOSITION_HOLD] + m[D.SIGNAL_DISPOSITION_REJECTED] for m in minutes)
    # The feed only sends what the engine takes: nothing invalid, nothing not entitled.
    assert not sum(m[D.SIGNAL_DISPOSITION_INVALID] for m in minutes), minutes


async def test_with_the_default_window_the_stream_dries_up(
    demo_engine: Application, tokens: Tokens, clock: ManualClock
) -> None:
    """Why the demo traders get a shorter duplicate window: without it, after the first
    minute nearly every view repeats one already signalled."""
    minutes = await _trader_1_minutes(demo_engine, tokens, clock, minutes=4)
    later = sum(m[D.SIGNAL_DISPOSITION_ACTIONABLE] for m in minutes[1:])
    assert later < minutes[0][D.SIGNAL_DISPOSITION_ACTIONABLE], minutes


async def test_the_demo_strategy_is_set_once_and_a_traders_own_change_is_kept(
    demo_engine: Application, tokens: Tokens
) -> None:
    async def window_and_version(stub: Stub) -> tuple[int, int]:
        effective = (await stub.GetStrategy(service_pb2.GetStrategyRequest())).strategy
        return effective.config.duplicate_window.seconds, effective.user_version

    await set_up_demo_strategies(demo_engine.strategies)
    async with tokens.channel(demo_engine.grpc_address) as channel:
        stub = service_grpc.TradingEngineServiceStub(channel)
        assert await window_and_version(stub) == (20, 1)

        own = strategy_pb2.StrategyConfig()
        own.duplicate_window.FromSeconds(90)
        changed = await stub.UpdateStrategy(
            service_pb2.UpdateStrategyRequest(
                layer=strategy_pb2.STRATEGY_LAYER_USER,
                strategy=own,
                update_mask=field_mask_pb2.FieldMask(paths=["duplicate_window"]),
                expected_version=1,
                request_id="mine",
            )
        )
        # A restart of the stack on the same data sets the demo strategy up again.
        await set_up_demo_strategies(demo_engine.strategies)
        assert await window_and_version(stub) == (90, changed.version.version)


def test_each_demo_trader_is_fed_only_the_pairs_of_its_tier() -> None:
    feed = DemoFeed(seed=3)
    for _ in range(2 * len(TRADERS)):
        batch = feed.next_batch()
        trader = next(t for t in TRADERS if t.user_id == batch.user_context.user_id)
        symbols = {p.symbol for p in batch.predictions}
        assert symbols == set(trader.pairs)
        assert all(instruments.lookup(s) is not None for s in symbols)
