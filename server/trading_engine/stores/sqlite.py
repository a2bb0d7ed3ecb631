"""The embedded store: one SQLite file, reached from one dedicated worker thread.

sqlite3 calls block, so every one of them runs on the store's own thread and
the event loop only awaits it; a store's calls thus run one at a time, in
order. The file is in write-ahead-log mode: several engine processes may
share it, and one's readers never wait for another's writer. Every
write is a `BEGIN IMMEDIATE` transaction, which takes the file's write lock
up front (waiting up to `busy_timeout_s` for another writer): writers are
serialised across threads and processes, so a check-then-insert such as
append_revision cannot race. With synchronous=NORMAL a committed transaction
survives a crash of the process; a power cut may lose the last few, never
tear one.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import sqlite3
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Final, TypeVar

from trading_engine.stores._common import (
    AUDIT_COLUMNS,
    EXECUTION_COLUMNS,
    INSERT_SIGNAL_CONFLICT,
    MANUAL_SIGNAL_COLUMNS,
    NEW_REVISION_COLUMNS,
    NEWEST_SIGNALS_SQL,
    OPEN_OUTCOMES_SQL,
    OUTCOME_COLUMNS,
    RECORD_USER_CONFLICT,
    REVISION_COLUMNS,
    SIGNAL_COLUMNS,
    TRADING_STATES_SQL,
    SchemaStatus,
    append_prediction_batch_sql,
    arrived_batch_from_row,
    audit_from_row,
    audit_values,
    batches_decided_at_sql,
    check_limit,
    closed_executions_sql,
    company_executions_sql,
    execution_from_row,
    execution_values,
    layer_values,
    manual_signal_from_row,
    manual_signal_values,
    migrations,
    new_revision_values,
    next_migration,
    outcome_from_row,
    outcome_values,
    outcomes_sql,
    payload_sha256,
    prediction_batch_from_row,
    prediction_batch_values,
    prediction_batches_sql,
    prediction_batches_values,
    put_outcome_sql,
    put_trading_state_sql,
    record_execution_sql,
    revision_from_row,
    signal_from_row,
    signal_query_sql,
    signal_type_counts,
    signal_type_counts_sql,
    signal_values,
    store_errors,
    stored_revision,
    superseded_within,
    trading_state_changes_sql,
    trading_state_from_row,
    trading_state_values,
    versions_before,
)
from trading_engine.stores.base import (
    AppendedRevision,
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
    VersionConflict,
)

_log = logging.getLogger(__name__)

_T = TypeVar("_T")

_DRIVER_ERRORS: Final = (sqlite3.Error, OSError)
# Rows per INSERT statement when writing history. The driver gives the interpreter
# back at every statement; with one row per statement, a writer thread waits for the
# busy event loop once per row (4,000 rows/s measured under load); with 100, once per
# 100 rows (54,000). 100 rows are 800 variables, under SQLite's oldest limit of 999.
_SIGNALS_PER_INSERT: Final = 100
_LAYER_MATCH: Final = "company_id = ? AND user_id = ? AND layer = ?"


def _placeholder(_: int) -> str:
    """Parameters are positional: "?" whatever their number."""
    return "?"


_RECORD_EXECUTION: Final = record_execution_sql(_placeholder)
_PUT_OUTCOME: Final = put_outcome_sql(_placeholder)
_PUT_TRADING_STATE: Final = put_trading_state_sql(_placeholder)
_APPEND_PREDICTION_BATCH: Final = append_prediction_batch_sql(_placeholder)
_COMPANY_EXECUTIONS: Final = company_executions_sql(_placeholder)
_TRADING_STATE_CHANGES: Final = trading_state_changes_sql(_placeholder)
_PREDICTION_BATCHES: Final = prediction_batches_sql(_placeholder)
_BATCHES_DECIDED_AT: Final = batches_decided_at_sql(_placeholder)


class SqliteStore:
    """Store on a SQLite file, created with its parent folder when missing."""

    def __init__(self, path: Path, *, busy_timeout_s: float = 5.0) -> None:
        self.path = Path(path)
        # How long a write waits for another connection's write lock before failing.
        self._busy_timeout_s = busy_timeout_s
        self._executor: ThreadPoolExecutor | None = None
        # Created, used and closed on the executor's thread only.
        self._db: sqlite3.Connection | None = None

    @property
    def backend(self) -> str:
        return "sqlite"

    async def open(self) -> None:
        if self._executor is not None:
            return
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite-store")
        try:
            await self._on_thread("open", self._connect)
        except BaseException:
            await self.close()
            raise

    async def close(self) -> None:
        executor = self._executor
        if executor is None:
            return
        try:
            await self._on_thread("close", self._disconnect)
        finally:
            self._executor = None
            executor.shutdown(wait=False)

    async def schema_status(self) -> SchemaStatus:
        known = tuple(migrations("sqlite"))
        if not self.path.is_file():
            return SchemaStatus(str(self.path), False, {}, known)
        try:
            applied = await asyncio.to_thread(_applied_migrations, self.path)
        except sqlite3.Error as error:
            raise StoreError(
                f"sqlite store {self.path}: cannot read its schema: {error}"
            ) from error
        return SchemaStatus(str(self.path), applied is not None, applied or {}, known)

    # Strategy layers.

    async def current_revision(self, key: LayerKey) -> StrategyRevision | None:
        revisions = await self.list_revisions(key, None, 1)
        return revisions[0] if revisions else None

    async def append_revision(self, change: NewRevision) -> AppendedRevision:
        return await self._run(
            "append a strategy revision", lambda db: _append_revision(db, change)
        )

    async def revision(self, key: LayerKey, version: int) -> StrategyRevision | None:
        sql = (
            f"SELECT {REVISION_COLUMNS} FROM strategy_revisions "
            f"WHERE {_LAYER_MATCH} AND version = ?"
        )
        rows = await self._fetch("read a strategy revision", sql, (*layer_values(key), version))
        return revision_from_row(rows[0]) if rows else None

    async def list_revisions(
        self, key: LayerKey, before_version: int | None, limit: int
    ) -> list[StrategyRevision]:
        sql = (
            f"SELECT {REVISION_COLUMNS} FROM strategy_revisions "
            f"WHERE {_LAYER_MATCH} AND version < ? ORDER BY version DESC LIMIT ?"
        )
        parameters = (*layer_values(key), versions_before(before_version), check_limit(limit))
        rows = await self._fetch("list strategy revisions", sql, parameters)
        return [revision_from_row(row) for row in rows]

    async def revisions_since(self, version: int) -> list[StrategyRevision]:
        sql = (
            f"SELECT {REVISION_COLUMNS} FROM strategy_revisions WHERE version > ? ORDER BY version"
        )
        rows = await self._fetch("read new strategy revisions", sql, (version,))
        return [revision_from_row(row) for row in rows]

    async def latest_version(self) -> int:
        rows = await self._fetch(
            "read the latest strategy version",
            "SELECT coalesce(max(version), 0) FROM strategy_revisions",
            (),
        )
        return int(rows[0][0])

    # Users.

    async def record_user(self, company_id: str, user_id: str, tier: int, seen_at_ns: int) -> None:
        sql = (
            "INSERT INTO users (company_id, user_id, tier, seen_at_ns) VALUES (?, ?, ?, ?) "
            + RECORD_USER_CONFLICT
        )
        parameters = (company_id, user_id, tier, seen_at_ns)
        await self._run("record a user", lambda db: db.execute(sql, parameters))

    async def user_tier(self, company_id: str, user_id: str) -> int | None:
        rows = await self._fetch(
            "read a user's tier",
            "SELECT tier FROM users WHERE company_id = ? AND user_id = ?",
            (company_id, user_id),
        )
        return int(rows[0][0]) if rows else None

    # Signal history.

    async def append_signals(self, records: Sequence[SignalRecord]) -> None:
        if records:
            await self._run("append signals", lambda db: _append_signals(db, records))

    async def query_signals(self, query: SignalQuery) -> list[SignalRecord]:
        sql, parameters = signal_query_sql(query, _placeholder)
        rows = await self._fetch("query signals", sql, tuple(parameters))
        return [signal_from_row(row) for row in rows]

    async def signal(self, company_id: str, signal_id: str) -> SignalRecord | None:
        sql = f"SELECT {SIGNAL_COLUMNS} FROM signals WHERE company_id = ? AND signal_id = ?"
        rows = await self._fetch("read a signal", sql, (company_id, signal_id))
        return signal_from_row(rows[0]) if rows else None

    async def newest_signals(self, limit: int) -> list[SignalRecord]:
        sql = NEWEST_SIGNALS_SQL + "?"
        rows = await self._fetch("read the newest signals", sql, (check_limit(limit),))
        return [signal_from_row(row) for row in rows]

    async def delete_signals_before(self, before_ns: int) -> int:
        return await self._run(
            "delete old signals and prediction batches",
            lambda db: _delete_signals_before(db, before_ns),
        )

    # Execution results and signal outcomes.

    async def record_execution(self, record: ExecutionRecord) -> bool:
        values = execution_values(record)
        # A single statement is its own transaction; it still waits its turn to write.
        inserted = await self._run(
            "record an execution result", lambda db: db.execute(_RECORD_EXECUTION, values).rowcount
        )
        return inserted == 1

    async def executions_for_signal(self, company_id: str, signal_id: str) -> list[ExecutionRecord]:
        sql = (
            f"SELECT {EXECUTION_COLUMNS} FROM executions "
            "WHERE company_id = ? AND signal_id = ? ORDER BY id"
        )
        rows = await self._fetch("read a signal's execution results", sql, (company_id, signal_id))
        return [execution_from_row(row) for row in rows]

    async def put_outcome(self, record: OutcomeRecord) -> None:
        values = outcome_values(record)
        await self._run("store a signal outcome", lambda db: db.execute(_PUT_OUTCOME, values))

    async def outcome(self, company_id: str, signal_id: str) -> OutcomeRecord | None:
        sql = f"SELECT {OUTCOME_COLUMNS} FROM outcomes WHERE company_id = ? AND signal_id = ?"
        rows = await self._fetch("read a signal outcome", sql, (company_id, signal_id))
        return outcome_from_row(rows[0]) if rows else None

    async def outcomes(
        self, company_id: str, user_id: str, since_ns: int, symbol: str = ""
    ) -> list[OutcomeRecord]:
        sql, parameters = outcomes_sql(company_id, user_id, since_ns, symbol, _placeholder)
        rows = await self._fetch("read signal outcomes", sql, tuple(parameters))
        return [outcome_from_row(row) for row in rows]

    async def company_executions(self, company_id: str, until_ns: int) -> list[ExecutionRecord]:
        rows = await self._fetch(
            "read a company's results", _COMPANY_EXECUTIONS, (company_id, until_ns)
        )
        return [execution_from_row(row) for row in rows]

    async def trading_state_changes(self, company_id: str, until_ns: int) -> list[AuditRecord]:
        rows = await self._fetch(
            "read trading-state changes", _TRADING_STATE_CHANGES, (company_id, until_ns)
        )
        return [audit_from_row(row) for row in rows]

    async def closed_executions_since(self, since_ns: int) -> list[ExecutionRecord]:
        sql = closed_executions_sql(_placeholder)
        rows = await self._fetch("read closed execution results", sql, (since_ns,))
        return [execution_from_row(row) for row in rows]

    async def open_outcomes(self) -> list[OutcomeRecord]:
        rows = await self._fetch("read open signal outcomes", OPEN_OUTCOMES_SQL, ())
        return [outcome_from_row(row) for row in rows]

    async def count_signals_by_type(
        self, company_id: str, user_id: str, since_ns: int, symbol: str = ""
    ) -> dict[int, int]:
        sql, parameters = signal_type_counts_sql(
            company_id, user_id, since_ns, symbol, _placeholder
        )
        return signal_type_counts(await self._fetch("count signals", sql, tuple(parameters)))

    # Trading states.

    async def put_trading_state(self, record: TradingStateRecord) -> None:
        values = trading_state_values(record)
        # A single statement is its own transaction; it still waits its turn to write.
        await self._run("store a trading state", lambda db: db.execute(_PUT_TRADING_STATE, values))

    async def trading_states(self) -> list[TradingStateRecord]:
        rows = await self._fetch("read trading states", TRADING_STATES_SQL, ())
        return [trading_state_from_row(row) for row in rows]

    # Prediction batches.

    async def append_prediction_batches(self, records: Sequence[PredictionBatchRecord]) -> None:
        if records:
            await self._run(
                "append prediction batches", lambda db: _append_prediction_batches(db, records)
            )

    async def prediction_batches_decided_at(
        self, company_id: str, user_id: str, batch_id: str, received_at_ns: int
    ) -> list[PredictionBatchRecord]:
        rows = await self._fetch(
            "read a prediction batch",
            _BATCHES_DECIDED_AT,
            (company_id, user_id, batch_id, received_at_ns),
        )
        return [prediction_batch_from_row(row) for row in rows]

    async def prediction_batches(
        self, company_id: str, start_ns: int, end_ns: int, after: BatchPosition | None, limit: int
    ) -> list[ArrivedBatch]:
        rows = await self._fetch(
            "read prediction batches",
            _PREDICTION_BATCHES,
            prediction_batches_values(company_id, start_ns, end_ns, after, limit),
        )
        return [arrived_batch_from_row(row) for row in rows]

    # Manual signals and audit.

    async def record_manual_signal(self, signal: ManualSignal) -> ManualSignal:
        return await self._run(
            "record a manual signal", lambda db: _record_manual_signal(db, signal)
        )

    async def manual_signal(self, company_id: str, request_id: str) -> ManualSignal | None:
        sql = (
            f"SELECT {MANUAL_SIGNAL_COLUMNS} FROM manual_signals "
            "WHERE company_id = ? AND request_id = ?"
        )
        rows = await self._fetch("read a manual signal", sql, (company_id, request_id))
        return manual_signal_from_row(rows[0]) if rows else None

    async def append_audit(self, record: AuditRecord) -> None:
        await self._run("append an audit record", lambda db: _append_audit(db, record))

    async def list_audit(self, company_id: str, limit: int) -> list[AuditRecord]:
        sql = f"SELECT {AUDIT_COLUMNS} FROM audit_log WHERE company_id = ? ORDER BY id DESC LIMIT ?"
        rows = await self._fetch("list audit records", sql, (company_id, check_limit(limit)))
        return [audit_from_row(row) for row in rows]

    # The worker thread.

    async def _run(self, doing: str, operation: Callable[[sqlite3.Connection], _T]) -> _T:
        """Run `operation(connection)` on the store's thread."""
        return await self._on_thread(doing, functools.partial(self._with_connection, operation))

    async def _fetch(self, doing: str, sql: str, parameters: tuple[object, ...]) -> list[Any]:
        return await self._run(doing, lambda db: db.execute(sql, parameters).fetchall())

    async def _on_thread(self, doing: str, call: Callable[[], _T]) -> _T:
        if self._executor is None:
            raise StoreError(f"sqlite store {self.path} is not open")
        with store_errors(f"sqlite store {self.path}: cannot {doing}", _DRIVER_ERRORS):
            return await asyncio.get_running_loop().run_in_executor(self._executor, call)

    def _with_connection(self, operation: Callable[[sqlite3.Connection], _T]) -> _T:
        if self._db is None:
            raise StoreError(f"sqlite store {self.path} is not connected")
        return operation(self._db)

    def _connect(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # Autocommit (isolation_level None): transactions are begun explicitly below.
        db = sqlite3.connect(self.path, timeout=self._busy_timeout_s, isolation_level=None)
        try:
            # Signal rows are about 1.5 KB: larger pages hold more of them, and
            # writes run about 40% faster than with 4 KB ones. A no-op on an
            # existing file, whose page size is fixed.
            db.execute("PRAGMA page_size = 16384")
            _use_write_ahead_log(db, self.path, self._busy_timeout_s)
            db.execute("PRAGMA synchronous = NORMAL")
            db.execute("PRAGMA foreign_keys = ON")
            # PostgreSQL's sha256(bytea), which migrations use on both databases.
            db.create_function("sha256", 1, payload_sha256, deterministic=True)
            _migrate(db, self.path)
        except BaseException:
            db.close()
            raise
        self._db = db

    def _disconnect(self) -> None:
        db, self._db = self._db, None
        if db is not None:
            db.close()


# Operations, run on the store's thread with its connection.


@contextlib.contextmanager
def _write_transaction(db: sqlite3.Connection) -> Iterator[None]:
    """A transaction holding the write lock from its start: writers take turns."""
    db.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        # SQLite has already rolled back after some errors (disk full, I/O).
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


def _use_write_ahead_log(db: sqlite3.Connection, path: Path, timeout_s: float) -> None:
    # Switching a new file to WAL takes it whole, and when another connection
    # is switching it at the same moment SQLite answers "locked" at once
    # instead of waiting: retry until the busy timeout.
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            mode = db.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            break
        except sqlite3.OperationalError as error:
            if error.sqlite_errorcode != sqlite3.SQLITE_BUSY or time.monotonic() > deadline:
                raise
            time.sleep(0.005)
    if mode != "wal":
        raise StoreError(f"{path} cannot use write-ahead logging (journal mode {mode})")


def _migrate(db: sqlite3.Connection, path: Path) -> None:
    known = migrations("sqlite")
    while True:
        # One transaction per migration; another process migrating the same
        # file waits for the lock, then finds the migration applied.
        with _write_transaction(db):
            db.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations ("
                " version INTEGER PRIMARY KEY,"
                " applied_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')))"
            )
            applied = {row[0] for row in db.execute("SELECT version FROM schema_migrations")}
            migration = next_migration(known, applied)
            if migration is None:
                return
            for statement in _statements(migration.sql()):
                db.execute(statement)
            db.execute("INSERT INTO schema_migrations (version) VALUES (?)", (migration.version,))
        _log.info("sqlite store %s: applied migration %s", path, migration.path.name)


def _applied_migrations(path: Path) -> dict[int, str] | None:
    """Applied migration versions and when, read-only; None without a migrations table."""
    db = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
    try:
        table = db.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_migrations'"
        ).fetchone()
        if table is None:
            return None
        rows = db.execute("SELECT version, applied_at FROM schema_migrations").fetchall()
    finally:
        db.close()
    return {int(version): str(applied_at) for version, applied_at in rows}


def _statements(script: str) -> Iterator[str]:
    """The statements of an SQL script, one at a time.

    executescript() would run them, but it commits first, outside the
    migration's transaction.
    """
    statement = ""
    for line in script.splitlines(keepends=True):
        statement += line
        if sqlite3.complete_statement(statement):
            yield statement
            statement = ""
    if statement.strip():
        yield statement


def _append_revision(db: sqlite3.Connection, change: NewRevision) -> AppendedRevision:
    key = change.key
    with _write_transaction(db):
        if change.request_id:
            earlier = db.execute(
                f"SELECT {REVISION_COLUMNS} FROM strategy_revisions "
                "WHERE company_id = ? AND request_id = ?",
                (key.company_id, change.request_id),
            ).fetchone()
            if earlier is not None:
                return AppendedRevision(revision_from_row(earlier), replayed=True)
        current = db.execute(
            f"SELECT coalesce(max(version), 0) FROM strategy_revisions WHERE {_LAYER_MATCH}",
            layer_values(key),
        ).fetchone()[0]
        if current != change.expected_version:
            raise VersionConflict(change.expected_version, current)
        version = db.execute(
            f"INSERT INTO strategy_revisions ({NEW_REVISION_COLUMNS}) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING version",
            new_revision_values(change),
        ).fetchone()[0]
    return AppendedRevision(stored_revision(version, change), replayed=False)


def _append_signals(db: sqlite3.Connection, records: Sequence[SignalRecord]) -> None:
    records = superseded_within(records)
    with _write_transaction(db):
        for start in range(0, len(records), _SIGNALS_PER_INSERT):
            chunk = records[start : start + _SIGNALS_PER_INSERT]
            db.execute(
                _insert_signals_sql(len(chunk)),
                [value for record in chunk for value in signal_values(record)],
            )


@functools.cache
def _insert_signals_sql(rows: int) -> str:
    return (
        f"INSERT INTO signals ({SIGNAL_COLUMNS}) VALUES "
        + ", ".join(["(?, ?, ?, ?, ?, ?, ?, ?)"] * rows)
        + f" {INSERT_SIGNAL_CONFLICT}"
    )


def _delete_signals_before(db: sqlite3.Connection, before_ns: int) -> int:
    with _write_transaction(db):
        deleted = db.execute("DELETE FROM signals WHERE generated_at_ns < ?", (before_ns,)).rowcount
        # Batches received before the cutoff go too; only signals are counted.
        db.execute("DELETE FROM prediction_batches WHERE received_at_ns < ?", (before_ns,))
    return deleted


def _append_prediction_batches(
    db: sqlite3.Connection, records: Sequence[PredictionBatchRecord]
) -> None:
    # A row per batch, not per signal: too few to need _append_signals' multi-row INSERTs.
    with _write_transaction(db):
        db.executemany(_APPEND_PREDICTION_BATCH, map(prediction_batch_values, records))


def _record_manual_signal(db: sqlite3.Connection, signal: ManualSignal) -> ManualSignal:
    values = manual_signal_values(signal)
    with _write_transaction(db):
        inserted = db.execute(
            f"INSERT INTO manual_signals ({MANUAL_SIGNAL_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (company_id, request_id) DO NOTHING",
            values,
        ).rowcount
        if inserted:
            return signal
        earlier = db.execute(
            f"SELECT {MANUAL_SIGNAL_COLUMNS} FROM manual_signals "
            "WHERE company_id = ? AND request_id = ?",
            (signal.company_id, signal.request_id),
        ).fetchone()
    return manual_signal_from_row(earlier)


def _append_audit(db: sqlite3.Connection, record: AuditRecord) -> None:
    # A single statement is its own transaction; it still waits its turn to write.
    db.execute(
        f"INSERT INTO audit_log ({AUDIT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        audit_values(record),
    )
