"""What the SQLite and PostgreSQL stores share: migrations on disk, columns, row conversion,
the signal, outcome, count, trading state and prediction batch statements, and how driver
errors become StoreError."""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
from collections.abc import Callable, Collection, Iterable, Iterator
from pathlib import Path
from typing import Any, Final, Protocol

from tradeflow.trading.v1 import execution_pb2, signal_pb2
from trading_engine.stores.base import (
    TRADING_STATE_SET,
    ArrivedBatch,
    AuditRecord,
    BatchPosition,
    ExecutionRecord,
    LayerKey,
    ManualSignal,
    NewRevision,
    OutcomeRecord,
    PredictionBatchRecord,
    SignalQuery,
    SignalRecord,
    StoreError,
    StrategyRevision,
    TradingStateRecord,
)

ACTIONABLE: Final[int] = signal_pb2.SIGNAL_DISPOSITION_ACTIONABLE
INVALID: Final[int] = signal_pb2.SIGNAL_DISPOSITION_INVALID
OPEN: Final[int] = execution_pb2.SIGNAL_OUTCOME_OPEN
CLOSED: Final[int] = execution_pb2.EXECUTION_STATUS_CLOSED

# Spells the driver's nth query parameter (1-based): "?" or "$n".
Placeholder = Callable[[int], str]

# Column lists in the order of the records' fields; row conversion relies on it.
REVISION_COLUMNS: Final = (
    "version, company_id, user_id, layer, changed_by, changed_at_ns, "
    "changed_fields, changes, layer_fields, layer_config, reason, request_id"
)
# The columns an insert sets: the version comes from the store's sequence.
NEW_REVISION_COLUMNS: Final = REVISION_COLUMNS.removeprefix("version, ")
SIGNAL_COLUMNS: Final = (
    "company_id, user_id, signal_id, generated_at_ns, symbol, signal_type, disposition, payload"
)
# A prediction delivered again yields a signal already stored: the first is kept, unless it was
# INVALID. A refused prediction may come back corrected under the same id, and the decision it
# then gets is the one to explain (the engine decides it again rather than replaying it).
INSERT_SIGNAL_CONFLICT: Final = (
    "ON CONFLICT (company_id, signal_id) DO UPDATE SET "
    "generated_at_ns = excluded.generated_at_ns, symbol = excluded.symbol, "
    "signal_type = excluded.signal_type, disposition = excluded.disposition, "
    f"payload = excluded.payload WHERE signals.disposition = {INVALID}"
)
# Every company's newest decisions first (the generated_at index), for the engine to give a
# prediction delivered again after a restart the signal it got before; LIMIT is the parameter.
NEWEST_SIGNALS_SQL: Final = (
    f"SELECT {SIGNAL_COLUMNS} FROM signals ORDER BY generated_at_ns DESC, signal_id DESC LIMIT "
)
MANUAL_SIGNAL_COLUMNS: Final = (
    "company_id, request_id, signal_id, user_id, injected_by, injected_at_ns, payload"
)
AUDIT_COLUMNS: Final = (
    "company_id, actor, action, subject_user_id, at_ns, detail, "
    "actor_roles, reason, old_values, new_values"
)
# Upsert of a user's tier; an older sighting (another instance, a late call) never wins.
RECORD_USER_CONFLICT: Final = (
    "ON CONFLICT (company_id, user_id) DO UPDATE "
    "SET tier = excluded.tier, seen_at_ns = excluded.seen_at_ns "
    "WHERE excluded.seen_at_ns >= users.seen_at_ns"
)
EXECUTION_COLUMNS: Final = (
    "company_id, user_id, execution_id, signal_id, status, recorded_at_ns, payload"
)
OUTCOME_COLUMNS: Final = (
    "company_id, user_id, signal_id, symbol, signal_type, strength, confidence, "
    "generated_at_ns, outcome, profit_loss_pips, profit_loss, slippage_pips, "
    "execution_latency_ns, closed_at_ns, strategy_version, updated_at_ns, payload"
)


def closed_executions_sql(placeholder: Callable[[int], str]) -> str:
    """Every company's CLOSED results recorded at or after a time, in recorded order."""
    return (
        f"SELECT {EXECUTION_COLUMNS} FROM executions "
        f"WHERE status = {CLOSED} AND recorded_at_ns >= {placeholder(1)} ORDER BY id"
    )


def company_executions_sql(placeholder: Callable[[int], str]) -> str:
    """A company's results recorded up to a time (inclusive), in recorded order."""
    return (
        f"SELECT {EXECUTION_COLUMNS} FROM executions "
        f"WHERE company_id = {placeholder(1)} AND recorded_at_ns <= {placeholder(2)} ORDER BY id"
    )


def trading_state_changes_sql(placeholder: Callable[[int], str]) -> str:
    """A company's audited trading-state changes up to a time (inclusive), oldest first."""
    return (
        f"SELECT {AUDIT_COLUMNS} FROM audit_log WHERE company_id = {placeholder(1)} "
        f"AND action = '{TRADING_STATE_SET}' AND at_ns <= {placeholder(2)} ORDER BY id"
    )


# The literal OPEN lets both databases use the partial index outcomes_open.
OPEN_OUTCOMES_SQL: Final = (
    f"SELECT {OUTCOME_COLUMNS} FROM outcomes WHERE outcome = {OPEN} "
    "ORDER BY company_id, user_id, signal_id"
)
TRADING_STATE_COLUMNS: Final = (
    "company_id, user_id, state, cause, reason, changed_by, changed_at_ns"
)
# Byte order on both databases (PostgreSQL's columns are COLLATE "C"): a
# company's own state, user_id "", comes first.
TRADING_STATES_SQL: Final = (
    f"SELECT {TRADING_STATE_COLUMNS} FROM trading_states ORDER BY company_id, user_id"
)
PREDICTION_BATCH_COLUMNS: Final = (
    "company_id, batch_id, user_id, received_at_ns, payload, risk_verdict"
)
# What an insert sets: the columns above and the SHA-256 of the payload, which tells apart two
# batches a tenant sent under one id and that were decided at the same instant.
NEW_PREDICTION_BATCH_COLUMNS: Final = f"{PREDICTION_BATCH_COLUMNS}, payload_sha256"

_MIGRATIONS_ROOT: Final = Path(__file__).parent / "migrations"


class Row(Protocol):
    """A result row of either driver: sqlite3's tuple or asyncpg's Record."""

    def __getitem__(self, index: int, /) -> Any: ...


# Migrations.


@dataclasses.dataclass(frozen=True, slots=True)
class Migration:
    """One file of migrations/<backend>/, named `<version>_<name>.sql`."""

    version: int
    path: Path

    def sql(self) -> str:
        return self.path.read_text(encoding="utf-8")


def migrations(backend_folder: str) -> list[Migration]:
    """The backend's migrations, oldest first."""
    folder = _MIGRATIONS_ROOT / backend_folder
    found: dict[int, Migration] = {}
    for path in folder.glob("*.sql"):
        number = path.stem.split("_", 1)[0]
        if not number.isdigit():
            raise StoreError(f"migration {path} is not named <version>_<name>.sql")
        if int(number) in found:
            raise StoreError(f"migrations {found[int(number)].path} and {path} share a version")
        found[int(number)] = Migration(int(number), path)
    if not found:
        raise StoreError(f"no migrations in {folder}: the installation is incomplete")
    return [found[version] for version in sorted(found)]


@dataclasses.dataclass(frozen=True, slots=True)
class SchemaStatus:
    """Which migrations a database has, read without changing it (`trading-engine db status`)."""

    # The database as logs name it (a PostgreSQL URL without its password).
    database: str
    # False when the store was never opened there (no file, or no migrations table yet).
    created: bool
    # Applied migration versions, with when each was applied (UTC, ISO 8601).
    applied: dict[int, str]
    # The migrations this engine knows, oldest first.
    known: tuple[Migration, ...]

    @property
    def pending(self) -> tuple[Migration, ...]:
        """What opening the store (or `db migrate`) would apply, in order."""
        return tuple(migration for migration in self.known if migration.version not in self.applied)

    @property
    def newer_than_engine(self) -> bool:
        """A newer engine migrated the database: this one refuses to open it."""
        return max(self.applied, default=0) > self.known[-1].version


def next_migration(known: list[Migration], applied: Collection[int]) -> Migration | None:
    """The oldest known migration not applied yet; None when the database is up to date.

    Refuses a database that a newer engine has migrated: this code would
    misread its tables.
    """
    newest = max(applied, default=0)
    if newest > known[-1].version:
        raise StoreError(
            f"the database schema is at migration {newest}, newer than this engine "
            f"knows (up to {known[-1].version}): upgrade the engine, or use another database"
        )
    return next((migration for migration in known if migration.version not in applied), None)


# Records to rows and back.


def layer_values(key: LayerKey) -> tuple[str, str, int]:
    """The (company_id, user_id, layer) values that select a layer's revisions."""
    return (key.company_id, key.user_id, key.layer)


def new_revision_values(change: NewRevision) -> tuple[Any, ...]:
    """The NEW_REVISION_COLUMNS values of a change."""
    key = change.key
    return (
        key.company_id,
        key.user_id,
        key.layer,
        change.changed_by,
        change.changed_at_ns,
        json.dumps(change.changed_fields),
        change.changes,
        json.dumps(change.layer_fields),
        change.layer_config,
        change.reason,
        change.request_id,
    )


def stored_revision(version: int, change: NewRevision) -> StrategyRevision:
    """The revision a change became once the store numbered it."""
    return StrategyRevision(
        version,
        change.key,
        change.changed_by,
        change.changed_at_ns,
        change.changed_fields,
        change.changes,
        change.layer_fields,
        change.layer_config,
        change.reason,
        change.request_id,
    )


def revision_from_row(row: Row) -> StrategyRevision:
    """A StrategyRevision from a row of REVISION_COLUMNS."""
    return StrategyRevision(
        row[0],
        LayerKey(row[1], row[2], row[3]),
        row[4],
        row[5],
        tuple(json.loads(row[6])),
        bytes(row[7]),
        tuple(json.loads(row[8])),
        bytes(row[9]),
        row[10],
        row[11],
    )


def signal_values(record: SignalRecord) -> tuple[str, str, str, int, str, int, int, bytes]:
    """The SIGNAL_COLUMNS values of a record."""
    return (
        record.company_id,
        record.user_id,
        record.signal_id,
        record.generated_at_ns,
        record.symbol,
        record.signal_type,
        record.disposition,
        record.payload,
    )


def superseded_within(records: Iterable[SignalRecord]) -> list[SignalRecord]:
    """`records` with INSERT_SIGNAL_CONFLICT applied among themselves: one per signal id.

    One statement may not update a row twice (PostgreSQL), and a flush can hold a refused
    prediction's signal and its correction's.
    """
    kept: dict[tuple[str, str], SignalRecord] = {}
    for record in records:
        key = (record.company_id, record.signal_id)
        earlier = kept.get(key)
        if earlier is None or earlier.disposition == INVALID:
            kept[key] = record
    return list(kept.values())


def signal_from_row(row: Row) -> SignalRecord:
    """A SignalRecord from a row of SIGNAL_COLUMNS."""
    return SignalRecord(row[0], row[1], row[2], row[3], row[4], row[5], row[6], bytes(row[7]))


def manual_signal_values(signal: ManualSignal) -> tuple[Any, ...]:
    """The MANUAL_SIGNAL_COLUMNS values of a manual signal."""
    if not signal.request_id:
        # The request id is the idempotency key: without one, every injection
        # would be answered with the first one ever stored.
        raise ValueError("a manual signal needs a request_id")
    return (
        signal.company_id,
        signal.request_id,
        signal.signal_id,
        signal.user_id,
        signal.injected_by,
        signal.injected_at_ns,
        signal.payload,
    )


def manual_signal_from_row(row: Row) -> ManualSignal:
    """A ManualSignal from a row of MANUAL_SIGNAL_COLUMNS."""
    return ManualSignal(row[0], row[1], row[2], row[3], row[4], row[5], bytes(row[6]))


def audit_values(record: AuditRecord) -> tuple[Any, ...]:
    """The AUDIT_COLUMNS values of an audit record."""
    return (
        record.company_id,
        record.actor,
        record.action,
        record.subject_user_id,
        record.at_ns,
        record.detail,
        json.dumps(list(record.actor_roles)),
        record.reason,
        record.old_values,
        record.new_values,
    )


def audit_from_row(row: Row) -> AuditRecord:
    """An AuditRecord from a row of AUDIT_COLUMNS."""
    return AuditRecord(
        company_id=row[0],
        actor=row[1],
        action=row[2],
        subject_user_id=row[3],
        at_ns=row[4],
        detail=row[5],
        actor_roles=tuple(json.loads(row[6])),
        reason=row[7],
        old_values=row[8],
        new_values=row[9],
    )


def execution_values(record: ExecutionRecord) -> tuple[Any, ...]:
    """The EXECUTION_COLUMNS values of a result."""
    return (
        record.company_id,
        record.user_id,
        record.execution_id,
        record.signal_id,
        record.status,
        record.recorded_at_ns,
        record.payload,
    )


def execution_from_row(row: Row) -> ExecutionRecord:
    """An ExecutionRecord from a row of EXECUTION_COLUMNS."""
    return ExecutionRecord(row[0], row[1], row[2], row[3], row[4], row[5], bytes(row[6]))


def outcome_values(record: OutcomeRecord) -> tuple[Any, ...]:
    """The OUTCOME_COLUMNS values of an outcome."""
    return (
        record.company_id,
        record.user_id,
        record.signal_id,
        record.symbol,
        record.signal_type,
        record.strength,
        record.confidence,
        record.generated_at_ns,
        record.outcome,
        record.profit_loss_pips,
        record.profit_loss,
        record.slippage_pips,
        record.execution_latency_ns,
        record.closed_at_ns,
        record.strategy_version,
        record.updated_at_ns,
        record.payload,
    )


def outcome_from_row(row: Row) -> OutcomeRecord:
    """An OutcomeRecord from a row of OUTCOME_COLUMNS."""
    return OutcomeRecord(
        company_id=row[0],
        user_id=row[1],
        signal_id=row[2],
        symbol=row[3],
        signal_type=row[4],
        strength=row[5],
        confidence=row[6],
        generated_at_ns=row[7],
        outcome=row[8],
        profit_loss_pips=row[9],
        profit_loss=row[10],
        slippage_pips=row[11],
        execution_latency_ns=row[12],
        closed_at_ns=row[13],
        strategy_version=row[14],
        updated_at_ns=row[15],
        payload=bytes(row[16]),
    )


def trading_state_values(record: TradingStateRecord) -> tuple[Any, ...]:
    """The TRADING_STATE_COLUMNS values of a state."""
    return (
        record.company_id,
        record.user_id,
        record.state,
        record.cause,
        record.reason,
        record.changed_by,
        record.changed_at_ns,
    )


def trading_state_from_row(row: Row) -> TradingStateRecord:
    """A TradingStateRecord from a row of TRADING_STATE_COLUMNS."""
    return TradingStateRecord(row[0], row[1], row[2], row[3], row[4], row[5], row[6])


def prediction_batch_values(
    record: PredictionBatchRecord,
) -> tuple[str, str, str, int, bytes, str, bytes]:
    """The NEW_PREDICTION_BATCH_COLUMNS values of a batch."""
    return (
        record.company_id,
        record.batch_id,
        record.user_id,
        record.received_at_ns,
        record.payload,
        record.risk_verdict,
        payload_sha256(record.payload),
    )


def payload_sha256(payload: bytes) -> bytes:
    """The digest a batch row keeps of its payload (the SQL function sha256 of both databases)."""
    return hashlib.sha256(payload).digest()


def prediction_batch_from_row(row: Row) -> PredictionBatchRecord:
    """A PredictionBatchRecord from a row of PREDICTION_BATCH_COLUMNS."""
    return PredictionBatchRecord(row[0], row[1], row[2], row[3], bytes(row[4]), row[5])


def prediction_batches_sql(placeholder: Placeholder) -> str:
    """SELECT of a company's batches in decision order: company, start, end, after time,
    after arrival, limit."""
    p = placeholder
    return (
        f"SELECT {PREDICTION_BATCH_COLUMNS}, arrival FROM prediction_batches "
        f"WHERE company_id = {p(1)} AND received_at_ns >= {p(2)} AND received_at_ns < {p(3)} "
        f"AND (received_at_ns, arrival) > ({p(4)}, {p(5)}) "
        f"ORDER BY received_at_ns, arrival LIMIT {p(6)}"
    )


def batches_decided_at_sql(placeholder: Placeholder) -> str:
    """SELECT of a tenant's batches kept under one id and decided at one instant, in arrival
    order: company, user, batch id, decision instant (the primary key's leading columns)."""
    p = placeholder
    return (
        f"SELECT {PREDICTION_BATCH_COLUMNS} FROM prediction_batches "
        f"WHERE company_id = {p(1)} AND user_id = {p(2)} AND batch_id = {p(3)} "
        f"AND received_at_ns = {p(4)} ORDER BY arrival"
    )


def prediction_batches_values(
    company_id: str, start_ns: int, end_ns: int, after: BatchPosition | None, limit: int
) -> tuple[str, int, int, int, int, int]:
    """The parameters of prediction_batches_sql; without `after`, from before the start."""
    after = after or BatchPosition(start_ns - 1, 0)
    return company_id, start_ns, end_ns, after.received_at_ns, after.arrival, check_limit(limit)


def arrived_batch_from_row(row: Row) -> ArrivedBatch:
    """An ArrivedBatch from a row of prediction_batches_sql."""
    record = prediction_batch_from_row(row)
    return ArrivedBatch(record, BatchPosition(record.received_at_ns, int(row[6])))


def signal_type_counts(rows: Iterable[Row]) -> dict[int, int]:
    """The result of signal_type_counts_sql as {signal_type: count}."""
    return {int(row[0]): int(row[1]) for row in rows}


# Queries.


def versions_before(before_version: int | None) -> int:
    """The exclusive upper bound on versions a listing returns; None: every version."""
    return (1 << 63) - 1 if before_version is None else before_version


def check_limit(limit: int) -> int:
    # SQLite reads a negative LIMIT as "no limit": refuse it rather than return everything.
    if limit < 0:
        raise ValueError(f"limit must not be negative, got {limit}")
    return limit


def signal_query_sql(query: SignalQuery, placeholder: Placeholder) -> tuple[str, list[Any]]:
    """SELECT statement and parameters for a SignalQuery.

    `placeholder(n)` spells the driver's nth parameter (1-based): "?" or "$n".
    """
    parameters: list[Any] = []

    def bind(value: Any) -> str:
        parameters.append(value)
        return placeholder(len(parameters))

    # Tenancy first: every query is confined to one company's user.
    conditions = [f"company_id = {bind(query.company_id)}", f"user_id = {bind(query.user_id)}"]
    if query.symbols:
        conditions.append(f"symbol IN ({', '.join(bind(symbol) for symbol in query.symbols)})")
    if query.signal_types:
        kinds = ", ".join(bind(kind) for kind in query.signal_types)
        conditions.append(f"signal_type IN ({kinds})")
    if query.start_ns is not None:
        conditions.append(f"generated_at_ns >= {bind(query.start_ns)}")
    if query.end_ns is not None:
        conditions.append(f"generated_at_ns < {bind(query.end_ns)}")
    if not query.include_non_actionable:
        conditions.append(f"disposition = {bind(ACTIONABLE)}")
    if query.after is not None:
        after_ns, after_id = query.after
        conditions.append(f"(generated_at_ns, signal_id) > ({bind(after_ns)}, {bind(after_id)})")
    sql = (
        f"SELECT {SIGNAL_COLUMNS} FROM signals WHERE {' AND '.join(conditions)} "
        f"ORDER BY generated_at_ns, signal_id LIMIT {bind(check_limit(query.limit))}"
    )
    return sql, parameters


def record_execution_sql(placeholder: Placeholder) -> str:
    """INSERT of one result, EXECUTION_COLUMNS values; inserts nothing for a re-sent result."""
    return (
        f"INSERT INTO executions ({EXECUTION_COLUMNS}) "
        f"VALUES ({_parameters(EXECUTION_COLUMNS, placeholder)}) "
        "ON CONFLICT (company_id, execution_id, status) DO NOTHING"
    )


def put_outcome_sql(placeholder: Placeholder) -> str:
    """Upsert of one outcome, OUTCOME_COLUMNS values.

    The caller recomputes an outcome from all of the signal's results, so
    the newest one replaces the stored one whole.
    """
    return _replace_sql("outcomes", OUTCOME_COLUMNS, ("company_id", "signal_id"), placeholder)


def put_trading_state_sql(placeholder: Placeholder) -> str:
    """Upsert of one trading state, TRADING_STATE_COLUMNS values.

    Each change sets the whole state (state, cause, reason, who, when), so the
    newest one replaces the stored one whole.
    """
    return _replace_sql(
        "trading_states", TRADING_STATE_COLUMNS, ("company_id", "user_id"), placeholder
    )


def append_prediction_batch_sql(placeholder: Placeholder) -> str:
    """INSERT of one batch, NEW_PREDICTION_BATCH_COLUMNS values.

    Inserts nothing only for the row already there: the tenant's batch with this id and these
    bytes, decided at this instant (a write retried). Anything else is kept as a row of its own.
    """
    return (
        f"INSERT INTO prediction_batches ({NEW_PREDICTION_BATCH_COLUMNS}) "
        f"VALUES ({_parameters(NEW_PREDICTION_BATCH_COLUMNS, placeholder)}) "
        "ON CONFLICT (company_id, user_id, batch_id, received_at_ns, payload_sha256) DO NOTHING"
    )


def outcomes_sql(
    company_id: str, user_id: str, since_ns: int, symbol: str, placeholder: Placeholder
) -> tuple[str, list[Any]]:
    """SELECT statement and parameters for Store.outcomes, in (time, id) order."""
    where, parameters = _user_since(company_id, user_id, since_ns, symbol, placeholder)
    sql = (
        f"SELECT {OUTCOME_COLUMNS} FROM outcomes WHERE {where} ORDER BY generated_at_ns, signal_id"
    )
    return sql, parameters


def signal_type_counts_sql(
    company_id: str, user_id: str, since_ns: int, symbol: str, placeholder: Placeholder
) -> tuple[str, list[Any]]:
    """SELECT statement and parameters counting a user's signals per type, every disposition."""
    where, parameters = _user_since(company_id, user_id, since_ns, symbol, placeholder)
    return (
        f"SELECT signal_type, count(*) FROM signals WHERE {where} GROUP BY signal_type",
        parameters,
    )


def _user_since(
    company_id: str, user_id: str, since_ns: int, symbol: str, placeholder: Placeholder
) -> tuple[str, list[Any]]:
    """WHERE clause and parameters for one user's rows generated since `since_ns`.

    Of one symbol, or of all when `symbol` is "". Its leading columns match
    the (company_id, user_id, generated_at_ns, ...) indexes.
    """
    conditions = [
        f"company_id = {placeholder(1)}",
        f"user_id = {placeholder(2)}",
        f"generated_at_ns >= {placeholder(3)}",
    ]
    parameters: list[Any] = [company_id, user_id, since_ns]
    if symbol:
        conditions.append(f"symbol = {placeholder(4)}")
        parameters.append(symbol)
    return " AND ".join(conditions), parameters


def _replace_sql(table: str, columns: str, key: tuple[str, ...], placeholder: Placeholder) -> str:
    """INSERT of one row of `columns` that replaces the row with the same `key` whole."""
    updates = ", ".join(
        f"{column} = excluded.{column}" for column in columns.split(", ") if column not in key
    )
    return (
        f"INSERT INTO {table} ({columns}) VALUES ({_parameters(columns, placeholder)}) "
        f"ON CONFLICT ({', '.join(key)}) DO UPDATE SET {updates}"
    )


def _parameters(columns: str, placeholder: Placeholder) -> str:
    """One parameter per column of `columns`, in the driver's spelling."""
    count = len(columns.split(", "))
    return ", ".join(placeholder(number) for number in range(1, count + 1))


@contextlib.contextmanager
def store_errors(doing: str, driver_errors: tuple[type[BaseException], ...]) -> Iterator[None]:
    """Re-raise the driver's errors as StoreError, saying what the store was doing."""
    try:
        yield
    except driver_errors as error:
        detail = str(error) or type(error).__name__
        raise StoreError(f"{doing}: {detail}") from error
