"""A live session, decided by a running engine and kept in its store, replayed byte for byte."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import grpc

from tests.api.trading import ManualClock
from tests.replay.sessions import BATCHES, live_session
from tests.support import ADMIN, TRADER, Stubs, Tokens
from tradeflow.trading.v1 import execution_pb2, signal_pb2
from tradeflow.trading.v1 import trading_engine_service_pb2 as service_pb2
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
from trading_engine.stores.base import SignalQuery, Store

ASSESSED = signal_pb2.RISK_STATUS_ASSESSED
NOT_ASSESSED = signal_pb2.RISK_STATUS_NOT_ASSESSED
E = execution_pb2
S = service_pb2


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


async def test_with_risk_management_live_the_kept_verdicts_replay_byte_for_byte(
    engine_settings: EngineSettings, clock: ManualClock, tokens: Tokens
) -> None:
    risk = RiskService(ReferenceRiskServicer(RiskBehaviour(max_lots=1.0)))
    await risk.start()
    with_risk = dataclasses.replace(
        engine_settings,
        risk_service_address=f"127.0.0.1:{risk.port}",
        risk_deadline_ms=100.0,
        risk_breaker_failures=2,
    )
    live = Application(with_risk, clock=clock)
    await live.start()
    try:
        # The service goes away for a while: calls fail, then the breaker opens.
        events = {100: risk.stop, 160: risk.start}
        start = await live_session(live, clock, tokens, events)
        store = live.store
        session = await _stored(store, start, clock.now)
        replay = Replay([ReplayStrategies()], EngineLimits())
        await _replayed(replay, store, session)
        unkept = dataclasses.replace(
            session, batches=[dataclasses.replace(b, risk_verdict="") for b in session.batches]
        )
        without_verdicts = Replay([ReplayStrategies()], EngineLimits())
        await _replayed(without_verdicts, store, unkept)
    finally:
        await live.stop()
        await risk.stop()

    stored = [signal_pb2.TradingSignal.FromString(r.payload) for r in session.signals.values()]
    statuses = {s.risk_status for s in stored}
    assert {ASSESSED, signal_pb2.RISK_STATUS_ERROR_FALLBACK} <= statuses, statuses
    assert signal_pb2.RISK_STATUS_FALLBACK_USED in statuses, statuses
    assert any(s.risk_adjustments for s in stored)
    # Sizes cut, fallbacks and all: the verdicts kept with the batches make the replay exact.
    reproduced = reproduction(replay, session)
    assert reproduced.identical == len(stored) > 1000
    assert reproduced.risk_answered == reproduced.different == reproduced.missing == []
    # Batches kept before verdicts were: the signals risk management answered for are told
    # apart, not called a failed replay.
    answered = {s.signal_id for s in stored if s.risk_status != NOT_ASSESSED} - {
        s.signal_id for s in stored if s.risk_status == signal_pb2.RISK_STATUS_NOT_REQUIRED
    }
    told_apart = reproduction(without_verdicts, unkept)
    assert set(told_apart.risk_answered) == answered
    assert told_apart.different == []


class RiskService:
    """The reference risk service on one port, stopped and started again by the test."""

    def __init__(self, servicer: ReferenceRiskServicer) -> None:
        self._servicer = servicer
        self._server: grpc.aio.Server | None = None
        self.port = 0

    async def start(self) -> None:
        self._server, self.port = await start_server(self._servicer, port=self.port)

    async def stop(self) -> None:
        if self._server is not None:
            await self._server.stop(None)
            self._server = None


async def _stored(store: Store, start_ns: int, end_ns: int) -> StoredSession:
    """acme's session as the store kept it."""
    batches = from_history(store, "acme", start_ns, end_ns)
    return await stored_session(store, "acme", start_ns, end_ns, batches)


async def _replayed(replay: Replay, store: Store, session: StoredSession) -> None:
    async for _ in replay_stored(replay, store, session):
        pass


async def test_trading_states_positions_and_cooldowns_replay_as_they_stood(
    live: Application, clock: ManualClock, tokens: Tokens
) -> None:
    stubs = Stubs(live.grpc_address, tokens)
    trader, admin = stubs.as_(TRADER), stubs.as_(ADMIN)
    filled: list[signal_pb2.TradingSignal] = []

    async def fill_all() -> None:
        """trader-1's broker fills every actionable signal not filled yet."""
        await live.history_writer.flush()
        stored = await live.store.query_signals(SignalQuery("acme", "trader-1", limit=1000))
        known = {s.signal_id for s in filled}
        for record in stored:
            signal = signal_pb2.TradingSignal.FromString(record.payload)
            if signal.signal_id not in known:
                fill = _result(signal, "fill", E.EXECUTION_STATUS_FILLED, clock.now)
                await trader.RecordExecutionResult(S.RecordExecutionResultRequest(result=fill))
                filled.append(signal)

    async def stop_out_first() -> None:
        signal = filled[0]
        close = _result(signal, "close", E.EXECUTION_STATUS_CLOSED, clock.now)
        close.exit_price = signal.entry.stop_loss
        close.close_reason = E.CLOSE_REASON_STOP_LOSS
        close.closed_at.FromNanoseconds(clock.now)
        await trader.RecordExecutionResult(S.RecordExecutionResultRequest(result=close))

    async def state(user_id: str, to: int, reason: str) -> None:
        scope = S.TRADING_STATE_SCOPE_USER if user_id else S.TRADING_STATE_SCOPE_COMPANY
        request = S.SetTradingStateRequest(user_id=user_id, state=to, reason=reason, scope=scope)  # type: ignore[arg-type]
        await admin.SetTradingState(request)

    events = {
        30: fill_all,
        50: stop_out_first,
        70: lambda: state("trader-2", S.TRADING_STATE_HALTED, "desk closed"),
        100: fill_all,
        130: lambda: state("trader-2", S.TRADING_STATE_ACTIVE, "desk open"),
        150: lambda: state("", S.TRADING_STATE_REDUCE_ONLY, "month end"),
        200: lambda: state("", S.TRADING_STATE_ACTIVE, "month done"),
    }
    try:
        start = await live_session(live, clock, tokens, events)
    finally:
        await stubs.close()
    store = live.store
    session = await _stored(store, start, clock.now)
    replay = Replay([ReplayStrategies()], EngineLimits())
    await _replayed(replay, store, session)

    stored = [signal_pb2.TradingSignal.FromString(r.payload) for r in session.signals.values()]
    reasons = {s.reason for s in stored}
    # Each protection decided some signals live...
    for reason in (
        signal_pb2.DISPOSITION_REASON_TRADING_HALTED,
        signal_pb2.DISPOSITION_REASON_REDUCE_ONLY,
        signal_pb2.DISPOSITION_REASON_STOP_LOSS_COOLDOWN,
        signal_pb2.DISPOSITION_REASON_POSITION_LIMIT_REACHED,
    ):
        assert reason in reasons, signal_pb2.DispositionReason.Name(reason)
    # ...and the replay decides them all again the same way, byte for byte.
    reproduced = reproduction(replay, session)
    assert reproduced.identical == len(stored)
    assert reproduced.different == reproduced.missing == reproduced.extra == []


def _result(
    signal: signal_pb2.TradingSignal, event: str, status: int, at_ns: int
) -> execution_pb2.ExecutionResult:
    result = execution_pb2.ExecutionResult(
        execution_id=f"broker-{signal.signal_id}-{event}",
        signal_id=signal.signal_id,
        symbol=signal.symbol,
        status=status,  # type: ignore[arg-type]
        executed_price=signal.entry.entry_price,
        executed_size_lots=signal.entry.position_size_lots,
    )
    result.executed_at.FromNanoseconds(at_ns)
    return result
