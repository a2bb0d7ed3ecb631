"""The shared store: PostgreSQL through a small asyncpg pool.

All tables live in one schema (created when missing), reached through the
connections' search_path, so several engines, or several test runs, can keep
apart in one database. Migrations take an advisory lock per schema; strategy
appends take turns on the revisions table (readers are not blocked), so a
check-then-insert cannot race and versions become visible in the order they
were numbered. Signal batches are copied in (COPY) and inserted in one
transaction: all rows or none.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
import re
import urllib.parse
from collections.abc import Sequence
from typing import Final

import asyncpg

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

_DRIVER_ERRORS: Final = (asyncpg.PostgresError, asyncpg.InterfaceError, OSError)
# Plain identifiers only: the schema name is spliced into SQL and search_path.
_SCHEMA_NAME: Final = re.compile(r"[a-z_][a-z0-9_]{0,62}")
# First key of the migration lock (pg_advisory_xact_lock(int, int)); the second is the schema's.
_MIGRATION_LOCK: Final = 0x7E_5701
_LAYER_MATCH: Final = "company_id = $1 AND user_id = $2 AND layer = $3"
# How long close() lets running queries finish.
_CLOSE_GRACE_S: Final = 10.0


def _placeholder(number: int) -> str:
    return f"${number}"


# RETURNING yields a row only when the result was new.
_RECORD_EXECUTION: Final = record_execution_sql(_placeholder) + " RETURNING true"
_PUT_OUTCOME: Final = put_outcome_sql(_placeholder)
_PUT_TRADING_STATE: Final = put_trading_state_sql(_placeholder)
_APPEND_PREDICTION_BATCH: Final = append_prediction_batch_sql(_placeholder)
_COMPANY_EXECUTIONS: Final = company_executions_sql(_placeholder)
_TRADING_STATE_CHANGES: Final = trading_state_changes_sql(_placeholder)
_PREDICTION_BATCHES: Final = prediction_batches_sql(_placeholder)
_BATCHES_DECIDED_AT: Final = batches_decided_at_sql(_placeholder)


class PostgresStore:
    """Store in one schema of a PostgreSQL database, given by a postgresql:// URL."""

    def __init__(self, url: str, schema: str = "public") -> None:
        if not _SCHEMA_NAME.fullmatch(schema):
            raise ValueError(
                f"schema {schema!r} is not a plain lower-case identifier ([a-z_][a-z0-9_]*)"
            )
        self.schema = schema
        self._url = url
        self._pool: asyncpg.Pool | None = None
        self._name = f"postgresql store {_without_password(url)} (schema {schema})"

    @property
    def backend(self) -> str:
        return "postgresql"

    async def open(self) -> None:
        if self._pool is not None:
            return
        with store_errors(f"{self._name}: cannot connect", _DRIVER_ERRORS):
            self._pool = await asyncpg.create_pool(
                self._url,
                min_size=1,
                max_size=4,
                timeout=10,
                server_settings={"search_path": self.schema},
            )
        try:
            await self._migrate()
        except BaseException:
            await self.close()
            raise

    async def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is None:
            return
        try:
            async with asyncio.timeout(_CLOSE_GRACE_S):
                await pool.close()
        except TimeoutError:
            # A query still running after the grace period ends with its connection.
            pool.terminate()
        except _DRIVER_ERRORS as error:
            raise StoreError(f"{self._name}: cannot close: {error}") from error

    async def schema_status(self) -> SchemaStatus:
        known = tuple(migrations("postgres"))
        with store_errors(f"{self._name}: cannot read its schema", _DRIVER_ERRORS):
            # One connection of its own: the store need not be open, and nothing is created.
            connection = await asyncpg.connect(self._url, timeout=10)
            try:
                table = await connection.fetchval(
                    "SELECT to_regclass($1)::text", f"{self.schema}.schema_migrations"
                )
                rows = (
                    await connection.fetch(
                        f"SELECT version, applied_at FROM {self.schema}.schema_migrations"
                    )
                    if table is not None
                    else []
                )
            finally:
                await connection.close()
        applied = {int(row[0]): row[1].astimezone(datetime.UTC).isoformat() for row in rows}
        return SchemaStatus(self._name, table is not None, applied, known)

    # Strategy layers.

    async def current_revision(self, key: LayerKey) -> StrategyRevision | None:
        revisions = await self.list_revisions(key, None, 1)
        return revisions[0] if revisions else None

    async def append_revision(self, change: NewRevision) -> AppendedRevision:
        key = change.key
        pool = self._opened()
        with store_errors(f"{self._name}: cannot append a strategy revision", _DRIVER_ERRORS):
            async with pool.acquire() as connection, connection.transaction():
                # Appends take turns (reads go on): the checks below cannot race,
                # and a revision numbered later never becomes visible before an
                # earlier one, which revisions_since() relies on.
                await connection.execute(
                    "LOCK TABLE strategy_revisions IN SHARE ROW EXCLUSIVE MODE"
                )
                if change.request_id:
                    earlier = await connection.fetchrow(
                        f"SELECT {REVISION_COLUMNS} FROM strategy_revisions "
                        "WHERE company_id = $1 AND request_id = $2",
                        key.company_id,
                        change.request_id,
                    )
                    if earlier is not None:
                        return AppendedRevision(revision_from_row(earlier), replayed=True)
                current: int = await connection.fetchval(
                    "SELECT coalesce(max(version), 0) FROM strategy_revisions "
                    f"WHERE {_LAYER_MATCH}",
                    *layer_values(key),
                )
                if current != change.expected_version:
                    raise VersionConflict(change.expected_version, current)
                version: int = await connection.fetchval(
                    f"INSERT INTO strategy_revisions ({NEW_REVISION_COLUMNS}) "
                    "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) RETURNING version",
                    *new_revision_values(change),
                )
        return AppendedRevision(stored_revision(version, change), replayed=False)

    async def revision(self, key: LayerKey, version: int) -> StrategyRevision | None:
        rows = await self._fetch(
            "read a strategy revision",
            f"SELECT {REVISION_COLUMNS} FROM strategy_revisions "
            f"WHERE {_LAYER_MATCH} AND version = $4",
            *layer_values(key),
            version,
        )
        return revision_from_row(rows[0]) if rows else None

    async def list_revisions(
        self, key: LayerKey, before_version: int | None, limit: int
    ) -> list[StrategyRevision]:
        rows = await self._fetch(
            "list strategy revisions",
            f"SELECT {REVISION_COLUMNS} FROM strategy_revisions "
            f"WHERE {_LAYER_MATCH} AND version < $4 "
            "ORDER BY version DESC LIMIT $5",
            *layer_values(key),
            versions_before(before_version),
            check_limit(limit),
        )
        return [revision_from_row(row) for row in rows]

    async def revisions_since(self, version: int) -> list[StrategyRevision]:
        rows = await self._fetch(
            "read new strategy revisions",
            f"SELECT {REVISION_COLUMNS} FROM strategy_revisions WHERE version > $1 "
            "ORDER BY version",
            version,
        )
        return [revision_from_row(row) for row in rows]

    async def latest_version(self) -> int:
        rows = await self._fetch(
            "read the latest strategy version",
            "SELECT coalesce(max(version), 0) FROM strategy_revisions",
        )
        return int(rows[0][0])

    # Users.

    async def record_user(self, company_id: str, user_id: str, tier: int, seen_at_ns: int) -> None:
        pool = self._opened()
        with store_errors(f"{self._name}: cannot record a user", _DRIVER_ERRORS):
            await pool.execute(
                "INSERT INTO users (company_id, user_id, tier, seen_at_ns) "
                f"VALUES ($1, $2, $3, $4) {RECORD_USER_CONFLICT}",
                company_id,
                user_id,
                tier,
                seen_at_ns,
            )

    async def user_tier(self, company_id: str, user_id: str) -> int | None:
        rows = await self._fetch(
            "read a user's tier",
            "SELECT tier FROM users WHERE company_id = $1 AND user_id = $2",
            company_id,
            user_id,
        )
        return int(rows[0][0]) if rows else None

    # Signal history.

    async def append_signals(self, records: Sequence[SignalRecord]) -> None:
        if not records:
            return
        pool = self._opened()
        with store_errors(f"{self._name}: cannot append signals", _DRIVER_ERRORS):
            async with pool.acquire() as connection, connection.transaction():
                # COPY is the fastest way in, but it cannot skip conflicts: it
                # fills a per-session scratch table (emptied at commit) first.
                await connection.execute(
                    "CREATE TEMP TABLE IF NOT EXISTS signals_incoming "
                    "(LIKE signals) ON COMMIT DELETE ROWS"
                )
                await connection.copy_records_to_table(
                    "signals_incoming", records=map(signal_values, superseded_within(records))
                )
                await connection.execute(
                    f"INSERT INTO signals ({SIGNAL_COLUMNS}) "
                    f"SELECT {SIGNAL_COLUMNS} FROM signals_incoming {INSERT_SIGNAL_CONFLICT}"
                )

    async def query_signals(self, query: SignalQuery) -> list[SignalRecord]:
        sql, parameters = signal_query_sql(query, _placeholder)
        rows = await self._fetch("query signals", sql, *parameters)
        return [signal_from_row(row) for row in rows]

    async def signal(self, company_id: str, signal_id: str) -> SignalRecord | None:
        rows = await self._fetch(
            "read a signal",
            f"SELECT {SIGNAL_COLUMNS} FROM signals WHERE company_id = $1 AND signal_id = $2",
            company_id,
            signal_id,
        )
        return signal_from_row(rows[0]) if rows else None

    async def newest_signals(self, limit: int) -> list[SignalRecord]:
        sql = NEWEST_SIGNALS_SQL + "$1"
        rows = await self._fetch("read the newest signals", sql, check_limit(limit))
        return [signal_from_row(row) for row in rows]

    async def delete_signals_before(self, before_ns: int) -> int:
        pool = self._opened()
        doing = f"{self._name}: cannot delete old signals and prediction batches"
        with store_errors(doing, _DRIVER_ERRORS):
            async with pool.acquire() as connection, connection.transaction():
                status = await connection.execute(
                    "DELETE FROM signals WHERE generated_at_ns < $1", before_ns
                )
                # Batches received before the cutoff go too; only signals are counted.
                await connection.execute(
                    "DELETE FROM prediction_batches WHERE received_at_ns < $1", before_ns
                )
        # The command tag reads "DELETE <count>".
        return int(status.rsplit(" ", 1)[1])

    # Execution results and signal outcomes.

    async def record_execution(self, record: ExecutionRecord) -> bool:
        pool = self._opened()
        with store_errors(f"{self._name}: cannot record an execution result", _DRIVER_ERRORS):
            inserted = await pool.fetchval(_RECORD_EXECUTION, *execution_values(record))
        return inserted is not None

    async def executions_for_signal(self, company_id: str, signal_id: str) -> list[ExecutionRecord]:
        rows = await self._fetch(
            "read a signal's execution results",
            f"SELECT {EXECUTION_COLUMNS} FROM executions "
            "WHERE company_id = $1 AND signal_id = $2 ORDER BY id",
            company_id,
            signal_id,
        )
        return [execution_from_row(row) for row in rows]

    async def put_outcome(self, record: OutcomeRecord) -> None:
        pool = self._opened()
        with store_errors(f"{self._name}: cannot store a signal outcome", _DRIVER_ERRORS):
            await pool.execute(_PUT_OUTCOME, *outcome_values(record))

    async def outcome(self, company_id: str, signal_id: str) -> OutcomeRecord | None:
        rows = await self._fetch(
            "read a signal outcome",
            f"SELECT {OUTCOME_COLUMNS} FROM outcomes WHERE company_id = $1 AND signal_id = $2",
            company_id,
            signal_id,
        )
        return outcome_from_row(rows[0]) if rows else None

    async def outcomes(
        self, company_id: str, user_id: str, since_ns: int, symbol: str = ""
    ) -> list[OutcomeRecord]:
        sql, parameters = outcomes_sql(company_id, user_id, since_ns, symbol, _placeholder)
        rows = await self._fetch("read signal outcomes", sql, *parameters)
        return [outcome_from_row(row) for row in rows]

    async def company_executions(self, company_id: str, until_ns: int) -> list[ExecutionRecord]:
        rows = await self._fetch(
            "read a company's results", _COMPANY_EXECUTIONS, company_id, until_ns
        )
        return [execution_from_row(row) for row in rows]

    async def trading_state_changes(self, company_id: str, until_ns: int) -> list[AuditRecord]:
        rows = await self._fetch(
            "read trading-state changes", _TRADING_STATE_CHANGES, company_id, until_ns
        )
        return [audit_from_row(row) for row in rows]

    async def closed_executions_since(self, since_ns: int) -> list[ExecutionRecord]:
        sql = closed_executions_sql(_placeholder)
        rows = await self._fetch("read closed execution results", sql, since_ns)
        return [execution_from_row(row) for row in rows]

    async def open_outcomes(self) -> list[OutcomeRecord]:
        rows = await self._fetch("read open signal outcomes", OPEN_OUTCOMES_SQL)
        return [outcome_from_row(row) for row in rows]

    async def count_signals_by_type(
        self, company_id: str, user_id: str, since_ns: int, symbol: str = ""
    ) -> dict[int, int]:
        sql, parameters = signal_type_counts_sql(
            company_id, user_id, since_ns, symbol, _placeholder
        )
        return signal_type_counts(await self._fetch("count signals", sql, *parameters))

    # Trading states.

    async def put_trading_state(self, record: TradingStateRecord) -> None:
        pool = self._opened()
        with store_errors(f"{self._name}: cannot store a trading state", _DRIVER_ERRORS):
            await pool.execute(_PUT_TRADING_STATE, *trading_state_values(record))

    async def trading_states(self) -> list[TradingStateRecord]:
        rows = await self._fetch("read trading states", TRADING_STATES_SQL)
        return [trading_state_from_row(row) for row in rows]

    # Prediction batches.

    async def append_prediction_batches(self, records: Sequence[PredictionBatchRecord]) -> None:
        if not records:
            return
        pool = self._opened()
        with store_errors(f"{self._name}: cannot append prediction batches", _DRIVER_ERRORS):
            async with pool.acquire() as connection, connection.transaction():
                await connection.executemany(
                    _APPEND_PREDICTION_BATCH, map(prediction_batch_values, records)
                )

    async def prediction_batches_decided_at(
        self, company_id: str, user_id: str, batch_id: str, received_at_ns: int
    ) -> list[PredictionBatchRecord]:
        rows = await self._fetch(
            "read a prediction batch",
            _BATCHES_DECIDED_AT,
            company_id,
            user_id,
            batch_id,
            received_at_ns,
        )
        return [prediction_batch_from_row(row) for row in rows]

    async def prediction_batches(
        self, company_id: str, start_ns: int, end_ns: int, after: BatchPosition | None, limit: int
    ) -> list[ArrivedBatch]:
        rows = await self._fetch(
            "read prediction batches",
            _PREDICTION_BATCHES,
            *prediction_batches_values(company_id, start_ns, end_ns, after, limit),
        )
        return [arrived_batch_from_row(row) for row in rows]

    # Manual signals and audit.

    async def record_manual_signal(self, signal: ManualSignal) -> ManualSignal:
        values = manual_signal_values(signal)
        pool = self._opened()
        with store_errors(f"{self._name}: cannot record a manual signal", _DRIVER_ERRORS):
            async with pool.acquire() as connection:
                # On a conflict the INSERT waits for the other transaction, so
                # the SELECT that follows sees the signal it stored.
                inserted = await connection.fetchval(
                    f"INSERT INTO manual_signals ({MANUAL_SIGNAL_COLUMNS}) "
                    "VALUES ($1, $2, $3, $4, $5, $6, $7) "
                    "ON CONFLICT (company_id, request_id) DO NOTHING RETURNING true",
                    *values,
                )
                if inserted:
                    return signal
                earlier = await connection.fetchrow(
                    f"SELECT {MANUAL_SIGNAL_COLUMNS} FROM manual_signals "
                    "WHERE company_id = $1 AND request_id = $2",
                    signal.company_id,
                    signal.request_id,
                )
        if earlier is None:
            raise StoreError(f"{self._name}: manual signal {signal.request_id!r} vanished")
        return manual_signal_from_row(earlier)

    async def manual_signal(self, company_id: str, request_id: str) -> ManualSignal | None:
        rows = await self._fetch(
            "read a manual signal",
            f"SELECT {MANUAL_SIGNAL_COLUMNS} FROM manual_signals "
            "WHERE company_id = $1 AND request_id = $2",
            company_id,
            request_id,
        )
        return manual_signal_from_row(rows[0]) if rows else None

    async def append_audit(self, record: AuditRecord) -> None:
        pool = self._opened()
        with store_errors(f"{self._name}: cannot append an audit record", _DRIVER_ERRORS):
            await pool.execute(
                f"INSERT INTO audit_log ({AUDIT_COLUMNS}) "
                "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
                *audit_values(record),
            )

    async def list_audit(self, company_id: str, limit: int) -> list[AuditRecord]:
        rows = await self._fetch(
            "list audit records",
            f"SELECT {AUDIT_COLUMNS} FROM audit_log WHERE company_id = $1 "
            "ORDER BY id DESC LIMIT $2",
            company_id,
            check_limit(limit),
        )
        return [audit_from_row(row) for row in rows]

    # Plumbing.

    def _opened(self) -> asyncpg.Pool:
        if self._pool is None:
            raise StoreError(f"{self._name} is not open")
        return self._pool

    async def _fetch(self, doing: str, sql: str, *parameters: object) -> list[asyncpg.Record]:
        pool = self._opened()
        with store_errors(f"{self._name}: cannot {doing}", _DRIVER_ERRORS):
            return await pool.fetch(sql, *parameters)

    async def _migrate(self) -> None:
        known = migrations("postgres")
        pool = self._opened()
        with store_errors(f"{self._name}: cannot migrate", _DRIVER_ERRORS):
            async with pool.acquire() as connection:
                while True:
                    # One transaction per migration, under a lock per schema: an
                    # engine opening at the same time waits, then finds it applied.
                    async with connection.transaction():
                        await connection.execute(
                            "SELECT pg_advisory_xact_lock($1, hashtext($2))",
                            _MIGRATION_LOCK,
                            self.schema,
                        )
                        if not await connection.fetchval(
                            "SELECT true FROM pg_namespace WHERE nspname = $1", self.schema
                        ):
                            await connection.execute(f"CREATE SCHEMA {self.schema}")
                        await connection.execute(
                            "CREATE TABLE IF NOT EXISTS schema_migrations ("
                            " version integer PRIMARY KEY,"
                            " applied_at timestamptz NOT NULL DEFAULT now())"
                        )
                        applied = {
                            row[0]
                            for row in await connection.fetch(
                                "SELECT version FROM schema_migrations"
                            )
                        }
                        migration = next_migration(known, applied)
                        if migration is None:
                            return
                        await connection.execute(migration.sql())
                        await connection.execute(
                            "INSERT INTO schema_migrations (version) VALUES ($1)",
                            migration.version,
                        )
                    _log.info("%s: applied migration %s", self._name, migration.path.name)


def _without_password(url: str) -> str:
    """The URL as logs and errors may show it."""
    parts = urllib.parse.urlsplit(url)
    if parts.password is None:
        return url
    host = parts.netloc.rsplit("@", 1)[1]
    return parts._replace(netloc=f"{parts.username}:***@{host}").geturl()
