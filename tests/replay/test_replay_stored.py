"""A live session, decided by a running engine and kept in its store, replayed byte for byte."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from tests.api.trading import ManualClock
from tests.replay.sessions import BATCHES, live_session
from tests.support import Tokens
from tradeflow.trading.v1 import signal_pb2
from trading_engine.app import Application
from trading_engine.config import EngineSettings
from trading_engine.engine import EngineLimits
from trading_engine.replay.runner import (
    Replay,
    StoredSession,
    replay_stored,
    reproduction,
    stored_session,
)
from trading_engine.replay.sources import from_history
from trading_engine.replay.strategies import Candidate, ReplayStrategies
from trading_engine.risk.reference import ReferenceRiskServicer, RiskBehaviour, start_server
from trading_engine.stores.base import Store


async def test_a_stored_session_replays_byte_for_byte_with_the_versions_in_force(
    live: Application, clock: ManualClock, tokens: Tokens
) -> None:
    start = await live_session(live, clock, tokens)
    store = live.store
    session = await _stored(store, start, clock.now)
    assert len(session.batches) == BATCHES
    # The session used several strategy versions: replaying with one would not match.
    assert len(set(session.versions.values())) >= 3, set(session.versions.values())

    replay = Replay([ReplayStrategies()], EngineLimits())
    await _replayed(replay, store, session)

    reproduced = reproduction(replay, session)
    assert (reproduced.different, reproduced.missing, reproduced.extra) == ([], [], [])
    assert reproduced.identical == len(session.signals) > 1000
    assert replay.progress.batches == BATCHES
    assert not replay.progress.refused


async def test_one_users_replay_reproduces_that_user_and_only_that_user(
    live: Application, clock: ManualClock, tokens: Tokens
) -> None:
    start = await live_session(live, clock, tokens)
    store = live.store
    session = await _stored(store, start, clock.now)
    replay = Replay([ReplayStrategies()], EngineLimits(), users=["trader-1"])
    await _replayed(replay, store, session)

    reproduced = reproduction(replay, session)
    assert (reproduced.different, reproduced.missing, reproduced.extra) == ([], [], [])
    assert {r.user_id for r in replay.sides[0].records} == {"trader-1"}


async def test_a_candidate_changes_only_what_its_field_decides(
    live: Application, clock: ManualClock, tokens: Tokens, tmp_path: Path
) -> None:
    start = await live_session(live, clock, tokens)
    store = live.store
    session = await _stored(store, start, clock.now)
    candidate_file = tmp_path / "strict.json"
    candidate_file.write_text('{"minConfidenceThreshold": 0.9}')
    replay = Replay(
        [ReplayStrategies(), ReplayStrategies(Candidate.from_file(candidate_file))],
        EngineLimits(),
    )
    await _replayed(replay, store, session)
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


async def test_signals_risk_management_answered_live_are_told_apart_not_hidden(
    engine_settings: EngineSettings, clock: ManualClock, tokens: Tokens
) -> None:
    server, port = await start_server(ReferenceRiskServicer(RiskBehaviour(max_lots=1.0)))
    with_risk = dataclasses.replace(engine_settings, risk_service_address=f"127.0.0.1:{port}")
    live = Application(with_risk, clock=clock)
    await live.start()
    try:
        start = await live_session(live, clock, tokens)
        store = live.store
        session = await _stored(store, start, clock.now)
        replay = Replay([ReplayStrategies()], EngineLimits())
        await _replayed(replay, store, session)
    finally:
        await live.stop()
        await server.stop(None)

    reproduced = reproduction(replay, session)
    stored = [signal_pb2.TradingSignal.FromString(r.payload) for r in session.signals.values()]
    assessed = {s.signal_id for s in stored if s.risk_status == signal_pb2.RISK_STATUS_ASSESSED}
    # Sizes above 1 lot were cut live: the replay does not call risk management, so exactly the
    # signals it answered for differ, and they are reported as such, not as a failed replay.
    assert any(s.risk_adjustments for s in stored)
    assert set(reproduced.risk_answered) == assessed
    assert (reproduced.different, reproduced.missing, reproduced.extra) == ([], [], [])
    assert reproduced.identical == len(stored) - len(assessed) > 500


async def _stored(store: Store, start_ns: int, end_ns: int) -> StoredSession:
    """acme's session as the store kept it."""
    batches = from_history(store, "acme", start_ns, end_ns)
    return await stored_session(store, "acme", start_ns, end_ns, batches)


async def _replayed(replay: Replay, store: Store, session: StoredSession) -> None:
    async for _ in replay_stored(replay, store, session):
        pass
