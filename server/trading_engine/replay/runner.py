"""Recorded batches through the engine itself, once per strategy, at the recorded clock.

Each side is its own `DecisionEngine` (the one the server runs: the same
decoding, rules, memory of duplicates and market state, encoding), fed the
batches in their recorded order, each at the instant it was decided. What
the engine would have kept in history is what a side collects, byte for
byte, so a replay with the strategies in force can be checked against the
signals stored at the time.

Risk management is not called: a batch from history carries the verdict it
got live, and each side applies it to the signals it was about (a signal
only a candidate made actionable stays NOT_ASSESSED); batches kept before
verdicts were, or from a file, replay NOT_ASSESSED. From history, trading
states, open positions and stop-outs stand at each batch as they did live
(`replay.protections`); from a file or Kafka every user is ACTIVE with
nothing open.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Iterable, Sequence

from tradeflow.trading.v1 import signal_pb2
from trading_engine.engine import DecidedBatch, DecisionEngine, EngineLimits
from trading_engine.errors import EngineError
from trading_engine.replay.protections import RecordedProtections
from trading_engine.replay.sources import RecordedBatch
from trading_engine.replay.strategies import (
    NO_LAYERS,
    LayersInForce,
    ReplayStrategies,
    StoredVersions,
)
from trading_engine.risk.verdicts import RiskVerdict, apply_verdict
from trading_engine.stores.base import PredictionBatchRecord, SignalQuery, SignalRecord, Store
from trading_engine.tenancy import Caller

_PAGE = 1000


class _Kept:
    """The history sink of a side: the signal records the engine hands over, nothing stored."""

    def __init__(self, users: frozenset[str]) -> None:
        self._users = users
        self.records: list[SignalRecord] = []

    def submit(self, records: Sequence[SignalRecord]) -> None:
        if not self._users or records[0].user_id in self._users:
            self.records.extend(records)

    def keep_batch(self, record: PredictionBatchRecord) -> None:
        """The batch is the replay's input: nothing to keep."""


@dataclasses.dataclass
class ReplaySide:
    name: str
    strategies: ReplayStrategies
    engine: DecisionEngine
    kept: _Kept

    @property
    def records(self) -> list[SignalRecord]:
        """Every decision of the side for the users replayed, in decision order."""
        return self.kept.records

    def signals(self) -> list[signal_pb2.TradingSignal]:
        return [signal_pb2.TradingSignal.FromString(r.payload) for r in self.kept.records]


@dataclasses.dataclass
class ReplayProgress:
    batches: int = 0
    predictions: int = 0
    # (origin, why) of each batch the engine refused as a whole, as it did live.
    refused: list[tuple[str, str]] = dataclasses.field(default_factory=list)


class Replay:
    """One engine per strategy; `users` limits what is collected (empty: everyone)."""

    def __init__(
        self,
        strategies: Iterable[ReplayStrategies],
        limits: EngineLimits,
        users: Iterable[str] = (),
    ) -> None:
        wanted = self.users = frozenset(users)
        self.sides = []
        for side_strategies in strategies:
            kept = _Kept(wanted)
            engine = DecisionEngine(strategies=side_strategies, limits=limits, history=kept)
            name = side_strategies.name
            self.sides.append(ReplaySide(name, side_strategies, engine, kept))
        self.progress = ReplayProgress()

    def decide(self, recorded: RecordedBatch, layers: LayersInForce = NO_LAYERS) -> None:
        """Decide one batch on every side, as its tenant, at its recorded instant."""
        caller = Caller(recorded.user_id, recorded.company_id, recorded.tier)
        verdict = RiskVerdict.from_json(recorded.risk_verdict) if recorded.risk_verdict else None
        progress = self.progress
        for side in self.sides:
            side.strategies.layers = layers
            try:
                decided = _decide(side.engine, recorded, caller, verdict)
            except EngineError as error:
                if side is self.sides[0]:
                    progress.refused.append((recorded.origin, str(error)))
                continue
            if side is self.sides[0]:
                progress.batches += 1
                progress.predictions += sum(decided.counts)


def _decide(
    engine: DecisionEngine, recorded: RecordedBatch, caller: Caller, verdict: RiskVerdict | None
) -> DecidedBatch:
    if verdict is None:
        return engine.decide(recorded.data, recorded.decided_at_ns, caller)
    draft = engine.draft(recorded.data, recorded.decided_at_ns, caller)
    actionable = [decision for decision in draft.fresh if decision.actionable]
    apply_verdict(verdict, actionable, draft.strategy.require_risk_assessment)
    return engine.seal(draft)


@dataclasses.dataclass
class StoredSession:
    """What the engine kept of a company's session: its batches, the strategy version
    each was decided at, and the signals it stored."""

    batches: list[RecordedBatch]
    # The strategy version each batch was decided at, by (user, batch id, decision instant):
    # users may share batch ids, and a user's id may come back with other content later.
    versions: dict[tuple[str, str, int], int]
    signals: dict[str, SignalRecord]
    # The company's trading states, positions and stop-outs, as they stood at each batch.
    protections: RecordedProtections


async def stored_session(
    store: Store, company_id: str, start_ns: int, end_ns: int, batches: AsyncIterator[RecordedBatch]
) -> StoredSession:
    recorded = [batch async for batch in batches]
    versions: dict[tuple[str, str, int], int] = {}
    signals: dict[str, SignalRecord] = {}
    for user_id in sorted({batch.user_id for batch in recorded}):
        after: tuple[int, str] | None = None
        while page := await store.query_signals(
            SignalQuery(
                company_id, user_id, start_ns=start_ns, end_ns=end_ns,
                include_non_actionable=True, after=after, limit=_PAGE,
            )
        ):  # fmt: skip
            for record in page:
                signal = signal_pb2.TradingSignal.FromString(record.payload)
                batch_key = (record.user_id, signal.batch_id, record.generated_at_ns)
                versions[batch_key] = signal.strategy_version
                signals[record.signal_id] = record
            after = (page[-1].generated_at_ns, page[-1].signal_id)
    protections = await RecordedProtections.load(store, company_id, end_ns)
    return StoredSession(recorded, versions, signals, protections)


async def replay_stored(replay: Replay, store: Store, session: StoredSession) -> AsyncIterator[int]:
    """Replay a stored session with the strategy versions in force for each batch; yields the
    number of batches done after each, so the caller can report progress or let others run."""
    versions = StoredVersions(store)
    protections = session.protections
    for side in replay.sides:
        side.engine.protections = protections
    for done, recorded in enumerate(session.batches, start=1):
        batch_key = (recorded.user_id, recorded.batch_id, recorded.decided_at_ns)
        version = session.versions.get(batch_key, 0)
        layers = await versions.at(recorded.company_id, recorded.user_id, version)
        protections.advance_to(recorded.decided_at_ns)
        replay.decide(recorded, layers)
        yield done


@dataclasses.dataclass(frozen=True)
class Reproduction:
    """A replay's signals against the ones stored live, compared byte for byte."""

    identical: int
    # Signal ids that differ and that risk management answered for live (assessed, or a
    # fallback) in a batch kept without its verdict: these come out NOT_ASSESSED.
    risk_answered: list[str]
    # Signal ids whose bytes differ otherwise, stored but not replayed, replayed but not stored.
    different: list[str]
    missing: list[str]
    extra: list[str]


_NOT_ANSWERED = frozenset(
    {signal_pb2.RISK_STATUS_NOT_ASSESSED, signal_pb2.RISK_STATUS_NOT_REQUIRED}
)


def _risk_answered(record: SignalRecord) -> bool:
    return signal_pb2.TradingSignal.FromString(record.payload).risk_status not in _NOT_ANSWERED


def reproduction(replay: Replay, session: StoredSession) -> Reproduction:
    """The first side's signals against the stored ones of the users replayed."""
    replayed = {record.signal_id: record for record in replay.sides[0].records}
    stored = {
        signal_id: record
        for signal_id, record in session.signals.items()
        if not replay.users or record.user_id in replay.users
    }
    both = replayed.keys() & stored.keys()
    differing = sorted(i for i in both if replayed[i].payload != stored[i].payload)
    risk_answered = [i for i in differing if _risk_answered(stored[i])]
    answered = set(risk_answered)
    return Reproduction(
        identical=len(both) - len(differing),
        risk_answered=risk_answered,
        different=[i for i in differing if i not in answered],
        missing=sorted(stored.keys() - replayed.keys()),
        extra=sorted(replayed.keys() - stored.keys()),
    )
