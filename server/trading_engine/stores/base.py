"""What the engine persists, and the interface every store backend implements.

Every row belongs to one company, and every query names the company: a
backend cannot be asked for another tenant's rows by accident. Strategy
layers are versioned (each change appends a revision; nothing is updated in
place), signal history and execution results are append-only, each signal's
outcome is kept current as its results arrive, and audit records say who did
what. Each user's and each company's trading state is kept current, and the
prediction batches signals were decided from are kept, per user, as long as signals are.

Backends: `stores.sqlite` (a file, the embedded default) and
`stores.postgres` (selected by a postgresql:// URL). Both run the same
versioned migrations on open and pass the same tests (tests/stores).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import TYPE_CHECKING, Final, Protocol

from tradeflow.trading.v1 import strategy_pb2

if TYPE_CHECKING:
    # _common builds on this module.
    from trading_engine.stores._common import SchemaStatus

# The strategy layers a store keeps; tier defaults live in code (core/tiers.py).
USER_LAYER: int = strategy_pb2.STRATEGY_LAYER_USER
COMPANY_LAYER: int = strategy_pb2.STRATEGY_LAYER_COMPANY


class StoreError(Exception):
    """A backend failed (connection lost, disk full); the operation may be retried."""


class VersionConflict(Exception):
    """The layer's current revision is not the one the caller expected."""

    def __init__(self, expected: int, current: int) -> None:
        super().__init__(f"expected revision {expected}, the layer is at {current}")
        self.expected = expected
        self.current = current


@dataclasses.dataclass(frozen=True, slots=True)
class LayerKey:
    """One strategy layer: a user's (USER) or a company's (COMPANY, user_id "")."""

    company_id: str
    user_id: str
    layer: int


@dataclasses.dataclass(frozen=True, slots=True)
class NewRevision:
    """A change to one layer, as the caller asks for it."""

    key: LayerKey
    # The layer's revision the change was based on; 0 means the layer has none yet.
    expected_version: int
    changed_by: str
    changed_at_ns: int
    # Field paths this change sets, and a StrategyConfig holding their new values.
    changed_fields: tuple[str, ...]
    changes: bytes
    # The whole layer after the change: the field paths it defines and their
    # values (a serialized StrategyConfig). A cleared layer defines none.
    layer_fields: tuple[str, ...]
    layer_config: bytes
    reason: str
    # Idempotency key, unique per company when not empty.
    request_id: str


@dataclasses.dataclass(frozen=True, slots=True)
class StrategyRevision:
    """A stored change: NewRevision plus the version the store gave it."""

    # Unique and increasing across every layer of every company.
    version: int
    key: LayerKey
    changed_by: str
    changed_at_ns: int
    changed_fields: tuple[str, ...]
    changes: bytes
    layer_fields: tuple[str, ...]
    layer_config: bytes
    reason: str
    request_id: str


@dataclasses.dataclass(frozen=True, slots=True)
class AppendedRevision:
    revision: StrategyRevision
    # True when `request_id` matched an earlier revision, which is returned unchanged.
    replayed: bool


@dataclasses.dataclass(frozen=True, slots=True)
class SignalRecord:
    """One decision as signal history keeps it."""

    company_id: str
    user_id: str
    signal_id: str
    generated_at_ns: int
    symbol: str
    # tradeflow.trading.v1.SignalType and SignalDisposition values.
    signal_type: int
    disposition: int
    # The serialized TradingSignal, trace included.
    payload: bytes


@dataclasses.dataclass(frozen=True, slots=True)
class SignalQuery:
    """Which of one user's signals to read, oldest first."""

    company_id: str
    user_id: str
    # Empty: all symbols / all types.
    symbols: tuple[str, ...] = ()
    signal_types: tuple[int, ...] = ()
    # Inclusive lower and exclusive upper bound on generated_at_ns; None: unbounded.
    start_ns: int | None = None
    end_ns: int | None = None
    # False: ACTIONABLE decisions only.
    include_non_actionable: bool = False
    # Resume strictly after this (generated_at_ns, signal_id); None: from the start.
    after: tuple[int, str] | None = None
    limit: int = 100


@dataclasses.dataclass(frozen=True, slots=True)
class ManualSignal:
    """A signal an admin injected, kept for idempotency and audit."""

    company_id: str
    request_id: str
    signal_id: str
    user_id: str
    injected_by: str
    injected_at_ns: int
    # The serialized TradingSignal as published.
    payload: bytes


# The audit action of a trading-state change: its detail names the state and the reason.
TRADING_STATE_SET: Final = "trading_state.set"


@dataclasses.dataclass(frozen=True, slots=True)
class AuditRecord:
    """Who did what to which tenant's data, when and why, and the values before and after.

    Records stored before migration 7 have no roles, reason or values: they read
    back as the defaults (their reason, where there was one, is in `detail`).
    """

    company_id: str
    actor: str
    # A short verb: "strategy.update", "strategy.reset", "signal.inject", ...
    action: str
    # The user the action concerned; "" for company-wide actions.
    subject_user_id: str
    at_ns: int
    # A JSON object with the action's particulars.
    detail: str
    # The actor's roles when they acted, sorted; none for the engine's own actions.
    actor_roles: tuple[str, ...] = ()
    # Why, as the actor said.
    reason: str = ""
    # JSON objects: what the action changed, by name, as it was and as it became; a name
    # absent from one side was unset on that side.
    old_values: str = "{}"
    new_values: str = "{}"


@dataclasses.dataclass(frozen=True, slots=True)
class ExecutionRecord:
    """One ExecutionResult as the engine received it."""

    company_id: str
    user_id: str
    execution_id: str
    signal_id: str
    # tradeflow.trading.v1.ExecutionStatus value; one execution reports each status once.
    status: int
    # When the engine received the result.
    recorded_at_ns: int
    # The serialized ExecutionResult.
    payload: bytes


@dataclasses.dataclass(frozen=True, slots=True)
class OutcomeRecord:
    """What became of one signal (a SignalPerformance), replaced as its results arrive."""

    company_id: str
    user_id: str
    signal_id: str
    symbol: str
    # tradeflow.trading.v1.SignalType value.
    signal_type: int
    strength: float
    confidence: float
    # The signal's decision instant.
    generated_at_ns: int
    # tradeflow.trading.v1.SignalOutcome value.
    outcome: int
    profit_loss_pips: float
    # In the account currency the payload names.
    profit_loss: float
    # None until the order is filled.
    slippage_pips: float | None
    execution_latency_ns: int | None
    # 0 until the position is closed.
    closed_at_ns: int
    strategy_version: int
    updated_at_ns: int
    # The serialized SignalPerformance.
    payload: bytes


@dataclasses.dataclass(frozen=True, slots=True)
class TradingStateRecord:
    """The trading state in force for a user or a whole company, replaced on each change."""

    company_id: str
    # "" for the company.
    user_id: str
    # tradeflow.trading.v1.TradingState and TradingStateCause values.
    state: int
    cause: int
    reason: str
    changed_by: str
    changed_at_ns: int


@dataclasses.dataclass(frozen=True, slots=True)
class PredictionBatchRecord:
    """A prediction batch as received, kept so its signals can be explained and replayed with it.

    It is the tenant's (company and user): another user's batch under the same id is another
    batch. Kept once per decision that made fresh signals from it, at the decision instant,
    which its signals carry as their generation time (decision 21).
    """

    company_id: str
    batch_id: str
    user_id: str
    # The instant the batch was decided: its signals' generated_at_ns.
    received_at_ns: int
    # The serialized batch.
    payload: bytes
    # Risk management's verdict on its signals (risk.verdicts, as JSON); empty without one.
    risk_verdict: str = ""


@dataclasses.dataclass(frozen=True, slots=True)
class BatchPosition:
    """Where a batch stands in a company's decision order: its decision time, then arrival."""

    received_at_ns: int
    arrival: int


@dataclasses.dataclass(frozen=True, slots=True)
class ArrivedBatch:
    record: PredictionBatchRecord
    position: BatchPosition


class Store(Protocol):
    """Persistence for strategies, signals and their batches, executions, states and audit.

    All methods are coroutines; a backend raises StoreError when it cannot
    reach its database, never a driver-specific exception.
    """

    @property
    def backend(self) -> str:
        """The backend's name, sqlite or postgresql, for health reports."""
        ...

    async def open(self) -> None:
        """Connect and apply pending migrations (several instances may open at once)."""
        ...

    async def close(self) -> None: ...

    async def schema_status(self) -> SchemaStatus:
        """Which migrations the database has and which `open` would apply, read without
        opening the store or changing anything."""
        ...

    # Strategy layers.

    async def current_revision(self, key: LayerKey) -> StrategyRevision | None:
        """The layer's newest revision; None when it was never changed."""
        ...

    async def append_revision(self, change: NewRevision) -> AppendedRevision:
        """Store a change atomically.

        A non-empty `request_id` already used in the company returns that
        revision with replayed=True. Otherwise raises VersionConflict unless the
        layer's current version equals `expected_version` (0: no revision yet).
        """
        ...

    async def revision(self, key: LayerKey, version: int) -> StrategyRevision | None: ...

    async def list_revisions(
        self, key: LayerKey, before_version: int | None, limit: int
    ) -> list[StrategyRevision]:
        """The layer's revisions newest first, older than `before_version` when given."""
        ...

    async def revisions_since(self, version: int) -> list[StrategyRevision]:
        """Every revision of every layer newer than `version`, oldest first.

        Lets each engine instance see changes other instances made.
        """
        ...

    async def latest_version(self) -> int:
        """The newest revision's version across all layers; 0 when there is none."""
        ...

    # Users: their tier as their latest token said, so admins can manage users' strategies.

    async def record_user(self, company_id: str, user_id: str, tier: int, seen_at_ns: int) -> None:
        """Remember (or update) the user's tier."""
        ...

    async def user_tier(self, company_id: str, user_id: str) -> int | None:
        """The tier last recorded for the user; None for a user never seen."""
        ...

    # Signal history.

    async def append_signals(self, records: Sequence[SignalRecord]) -> None:
        """Store decisions in one transaction: all of them or none.

        A signal id already stored keeps its first decision, unless that one was INVALID: a
        refused prediction corrected under the same id is decided again (decision 18).
        """
        ...

    async def query_signals(self, query: SignalQuery) -> list[SignalRecord]: ...

    async def signal(self, company_id: str, signal_id: str) -> SignalRecord | None: ...

    async def newest_signals(self, limit: int) -> list[SignalRecord]:
        """The `limit` most recently generated decisions of every company, newest first."""
        ...

    async def delete_signals_before(self, before_ns: int) -> int:
        """Retention: drop decisions generated before `before_ns`; returns how many.

        Prediction batches received before `before_ns` go too, and are not counted.
        """
        ...

    # Execution results and signal outcomes.

    async def record_execution(self, record: ExecutionRecord) -> bool:
        """Store a result; False when the company already has this (execution_id, status).

        A re-sent result changes nothing; the same execution with another
        status (FILLED, later CLOSED) is another result.
        """
        ...

    async def executions_for_signal(self, company_id: str, signal_id: str) -> list[ExecutionRecord]:
        """The signal's results in the order they were recorded."""
        ...

    async def put_outcome(self, record: OutcomeRecord) -> None:
        """Store the signal's outcome, replacing the one stored before."""
        ...

    async def outcome(self, company_id: str, signal_id: str) -> OutcomeRecord | None: ...

    async def outcomes(
        self, company_id: str, user_id: str, since_ns: int, symbol: str = ""
    ) -> list[OutcomeRecord]:
        """The user's outcomes of signals generated at or after `since_ns`, oldest first.

        Ordered by (generated_at_ns, signal_id); symbol "" means every symbol.
        """
        ...

    async def company_executions(self, company_id: str, until_ns: int) -> list[ExecutionRecord]:
        """The company's results recorded up to `until_ns` (inclusive), in recorded order."""
        ...

    async def trading_state_changes(self, company_id: str, until_ns: int) -> list[AuditRecord]:
        """The company's audited trading-state changes up to `until_ns` (inclusive), oldest
        first."""
        ...

    async def closed_executions_since(self, since_ns: int) -> list[ExecutionRecord]:
        """Every company's CLOSED results recorded at or after `since_ns`, in recorded order."""
        ...

    async def open_outcomes(self) -> list[OutcomeRecord]:
        """Every company's outcomes that are OPEN: the positions to rebuild at start-up."""
        ...

    async def count_signals_by_type(
        self, company_id: str, user_id: str, since_ns: int, symbol: str = ""
    ) -> dict[int, int]:
        """How many of the user's signals of each type were generated at or after `since_ns`.

        Counts every disposition in the signal history; symbol "" means every
        symbol. A type without signals is absent from the result.
        """
        ...

    # Trading states.

    async def put_trading_state(self, record: TradingStateRecord) -> None:
        """Store the user's or the company's state, replacing the one stored before."""
        ...

    async def trading_states(self) -> list[TradingStateRecord]:
        """Every company's stored states, by (company_id, user_id): the engine loads them at start.

        A company's own state (user_id "") comes before its users'.
        """
        ...

    # Prediction batches.

    async def append_prediction_batches(self, records: Sequence[PredictionBatchRecord]) -> None:
        """Store batches in one transaction: all of them or none.

        Every record is kept, none replaces another: another user's batch under the same id,
        the same id sent again with other content, the same batch decided again later. Only
        the record already stored (same tenant, id, decision instant and bytes: a write
        retried) adds nothing.
        """
        ...

    async def prediction_batches_decided_at(
        self, company_id: str, user_id: str, batch_id: str, received_at_ns: int
    ) -> list[PredictionBatchRecord]:
        """The user's batches kept under `batch_id` and decided at `received_at_ns`, in the
        order they were stored: the one a signal of that batch and instant was decided from.

        Several only when the user sent different batches under one id that were decided at
        the same nanosecond.
        """
        ...

    async def prediction_batches(
        self, company_id: str, start_ns: int, end_ns: int, after: BatchPosition | None, limit: int
    ) -> list[ArrivedBatch]:
        """The company's batches decided in [start_ns, end_ns), in the order they were decided
        (decision time, then arrival), strictly after `after` when given."""
        ...

    # Manual signals and audit.

    async def record_manual_signal(self, signal: ManualSignal) -> ManualSignal:
        """Store an injected signal, or return the one stored under the same request_id."""
        ...

    async def manual_signal(self, company_id: str, request_id: str) -> ManualSignal | None:
        """The signal injected under `request_id` in the company, if any."""
        ...

    async def append_audit(self, record: AuditRecord) -> None: ...

    async def list_audit(self, company_id: str, limit: int) -> list[AuditRecord]:
        """The company's newest audit records first."""
        ...
