"""A live session, decided by a running engine and kept in its store, replayed byte for byte."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from google.protobuf import field_mask_pb2

from tests.api.trading import ManualClock
from tests.support import ADMIN, Stubs, Tokens
from tradeflow.trading.v1 import signal_pb2, strategy_pb2
from tradeflow.trading.v1 import trading_engine_service_pb2 as service_pb2
from trading_engine.app import Application
from trading_engine.config import EngineSettings
from trading_engine.devstack.demo import TRADERS, DemoFeed
from trading_engine.engine import EngineLimits
from trading_engine.replay.runner import Replay, replay_stored, reproduction, stored_session
from trading_engine.replay.sources import from_history
from trading_engine.replay.strategies import Candidate, ReplayStrategies
from trading_engine.tenancy import Caller

if TYPE_CHECKING:
    from tests.api.trading import Stub

SECOND_NS = 10**9
USER, COMPANY = strategy_pb2.STRATEGY_LAYER_USER, strategy_pb2.STRATEGY_LAYER_COMPANY
BATCHES = 240


@pytest.fixture
async def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
async def live(engine_settings: EngineSettings, clock: ManualClock) -> AsyncIterator[Application]:
    application = Application(engine_settings, clock=clock)
    await application.start()
    yield application
    await application.stop()


async def _change(stub: Stub, layer: int, request_id: str, field: str, value: float) -> None:
    config = strategy_pb2.StrategyConfig()
    setattr(config, field, value)
    current = await stub.GetStrategy(service_pb2.GetStrategyRequest())
    version = (
        current.strategy.user_version
        if layer == strategy_pb2.STRATEGY_LAYER_USER
        else current.strategy.company_version
    )
    await stub.UpdateStrategy(
        service_pb2.UpdateStrategyRequest(
            layer=layer,  # type: ignore[arg-type]
            strategy=config,
            update_mask=field_mask_pb2.FieldMask(paths=[field]),
            expected_version=version,
            request_id=request_id,
        )
    )


async def _live_session(live: Application, clock: ManualClock, tokens: Tokens) -> int:
    """The demo feed for four traders over gRPC, strategies changed on the way; its start."""
    stubs = Stubs(live.grpc_address, tokens)
    as_trader = {t.user_id: stubs.as_(Caller(t.user_id, t.company_id, t.tier)) for t in TRADERS}
    trader_1, admin = as_trader["trader-1"], stubs.as_(ADMIN)
    start = clock.now
    feed = DemoFeed(seed=11, now_ns=clock.now_ns)
    try:
        for number in range(BATCHES):
            if number == 60:
                await _change(
                    trader_1,
                    strategy_pb2.STRATEGY_LAYER_USER,
                    "u1",
                    "min_confidence_threshold",
                    0.8,
                )
            if number == 120:
                await _change(admin, COMPANY, "c1", "min_consensus_score", 0.7)
            if number == 180:
                await _change(
                    trader_1,
                    strategy_pb2.STRATEGY_LAYER_USER,
                    "u2",
                    "min_confidence_threshold",
                    0.65,
                )
            batch = feed.next_batch()
            stub = as_trader[batch.user_context.user_id]
            await stub.ProcessPredictionBatch(
                service_pb2.ProcessPredictionBatchRequest(batch=batch)
            )
            if number % 50 == 7:
                # A batch delivered again: answered from the first decision, not decided anew.
                await stub.ProcessPredictionBatch(
                    service_pb2.ProcessPredictionBatchRequest(batch=batch)
                )
            clock.now += SECOND_NS // 2
    finally:
        await stubs.close()
    await live.history_writer.flush()
    return start


async def test_a_stored_session_replays_byte_for_byte_with_the_versions_in_force(
    live: Application, clock: ManualClock, tokens: Tokens
) -> None:
    start = await _live_session(live, clock, tokens)
    store = live.store
    session = await stored_session(
        store, "acme", start, clock.now, from_history(store, "acme", start, clock.now)
    )
    assert len(session.batches) == BATCHES
    # The session used several strategy versions: replaying with one would not match.
    assert len(set(session.versions.values())) >= 3, set(session.versions.values())

    replay = Replay([ReplayStrategies()], EngineLimits())
    await replay_stored(replay, store, session)

    reproduced = reproduction(replay, session)
    assert (reproduced.different, reproduced.missing, reproduced.extra) == ([], [], [])
    assert reproduced.identical == len(session.signals) > 1000
    assert replay.progress.batches == BATCHES
    assert not replay.progress.refused


async def test_one_users_replay_reproduces_that_user_and_only_that_user(
    live: Application, clock: ManualClock, tokens: Tokens
) -> None:
    start = await _live_session(live, clock, tokens)
    store = live.store
    session = await stored_session(
        store, "acme", start, clock.now, from_history(store, "acme", start, clock.now)
    )
    replay = Replay([ReplayStrategies()], EngineLimits(), users=["trader-1"])
    await replay_stored(replay, store, session)

    reproduced = reproduction(replay, session)
    assert (reproduced.different, reproduced.missing, reproduced.extra) == ([], [], [])
    assert {r.user_id for r in replay.sides[0].records} == {"trader-1"}


async def test_a_candidate_changes_only_what_its_field_decides(
    live: Application, clock: ManualClock, tokens: Tokens, tmp_path: Path
) -> None:
    start = await _live_session(live, clock, tokens)
    store = live.store
    session = await stored_session(
        store, "acme", start, clock.now, from_history(store, "acme", start, clock.now)
    )
    candidate_file = tmp_path / "strict.json"
    candidate_file.write_text('{"minConfidenceThreshold": 0.9}')
    replay = Replay(
        [ReplayStrategies(), ReplayStrategies(Candidate.from_file(candidate_file))],
        EngineLimits(),
    )
    await replay_stored(replay, store, session)
    in_force, strict = (side.signals() for side in replay.sides)
    assert [s.signal_id for s in in_force] == [s.signal_id for s in strict]
    actionable = signal_pb2.SIGNAL_DISPOSITION_ACTIONABLE
    below = signal_pb2.DISPOSITION_REASON_CONFIDENCE_BELOW_THRESHOLD
    held = [b for b, a in zip(in_force, strict, strict=True) if a.reason == below != b.reason]
    # What the stricter threshold held is exactly what it should: everything below it...
    assert held
    assert all(s.confidence < 0.9 for s in held)
    assert not [a for a in strict if a.disposition == actionable and a.confidence < 0.9]
    # ...and, with fewer signals sent, some views that repeated one now go out themselves.
    unsuppressed = [
        a for b, a in zip(in_force, strict, strict=True)
        if b.disposition == signal_pb2.SIGNAL_DISPOSITION_SUPPRESSED and a.disposition == actionable
    ]  # fmt: skip
    assert unsuppressed
