"""Fixtures: each store test runs on SQLite (a file in tmp_path) and on a real PostgreSQL
(a fresh schema per test, dropped afterwards).

PostgreSQL is found at TRADING_ENGINE_TEST_POSTGRES_URL (default: user postgres,
database test on 127.0.0.1:5432). When it cannot be reached the PostgreSQL
tests fail and say so: they are never skipped.
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
import secrets
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from tests.support import POSTGRES_URL, connect_postgres
from trading_engine.stores.base import Store
from trading_engine.stores.postgres import PostgresStore
from trading_engine.stores.sqlite import SqliteStore


class Backend(abc.ABC):
    """One test database: makes stores on it and reaches it behind their back."""

    name: str

    def __init__(self) -> None:
        self._stores: list[Store] = []

    def make(self) -> Store:
        """A new, unopened store on this database; closed when the test ends."""
        store = self._new_store()
        self._stores.append(store)
        return store

    async def opened(self) -> Store:
        store = self.make()
        await store.open()
        return store

    async def close_stores(self) -> None:
        for store in self._stores:
            await store.close()

    @property
    @abc.abstractmethod
    def target(self) -> list[str]:
        """Arguments naming this database to tests/stores/killable_writer.py."""

    @property
    @abc.abstractmethod
    def url(self) -> str:
        """The store URL naming this database, as the engine's --store-url takes it."""

    @abc.abstractmethod
    def _new_store(self) -> Store: ...

    @abc.abstractmethod
    async def query(self, sql: str) -> list[tuple[Any, ...]]:
        """Run SQL on a connection of its own (DDL included); its rows, if any."""

    @abc.abstractmethod
    def hold_write_lock(self) -> contextlib.AbstractAsyncContextManager[None]:
        """Keep the stores from writing signals (they wait) until the block ends."""


class SqliteBackend(Backend):
    name = "sqlite"

    def __init__(self, path: Path) -> None:
        super().__init__()
        self.path = path

    @property
    def target(self) -> list[str]:
        return ["sqlite", str(self.path)]

    @property
    def url(self) -> str:
        return f"sqlite:///{self.path}"

    def _new_store(self) -> Store:
        return SqliteStore(self.path)

    async def query(self, sql: str) -> list[tuple[Any, ...]]:
        return await asyncio.to_thread(self._query, sql)

    def _query(self, sql: str) -> list[tuple[Any, ...]]:
        with contextlib.closing(sqlite3.connect(self.path, isolation_level=None)) as db:
            return db.execute(sql).fetchall()

    @contextlib.asynccontextmanager
    async def hold_write_lock(self) -> AsyncIterator[None]:
        with contextlib.closing(sqlite3.connect(self.path, isolation_level=None)) as db:
            db.execute("BEGIN IMMEDIATE")
            yield
            db.execute("ROLLBACK")


class PostgresBackend(Backend):
    name = "postgresql"

    def __init__(self, admin: asyncpg.Connection, schema: str) -> None:
        super().__init__()
        self.admin = admin
        self.schema = schema

    @property
    def target(self) -> list[str]:
        return ["postgresql", POSTGRES_URL, self.schema]

    @property
    def url(self) -> str:
        return f"{POSTGRES_URL}?schema={self.schema}"

    def _new_store(self) -> Store:
        return PostgresStore(POSTGRES_URL, self.schema)

    async def query(self, sql: str) -> list[tuple[Any, ...]]:
        return [tuple(row) for row in await self.admin.fetch(sql)]

    @contextlib.asynccontextmanager
    async def hold_write_lock(self) -> AsyncIterator[None]:
        async with self.admin.transaction():
            await self.admin.execute("LOCK TABLE signals IN EXCLUSIVE MODE")
            yield


@pytest.fixture(params=["sqlite", "postgresql"])
async def backend(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Backend]:
    if request.param == "sqlite":
        sqlite = SqliteBackend(tmp_path / "data" / "engine.db")
        yield sqlite
        await sqlite.close_stores()
        return
    schema = f"test_stores_{secrets.token_hex(6)}"
    admin = await connect_postgres(search_path=schema)
    postgres = PostgresBackend(admin, schema)
    try:
        yield postgres
    finally:
        await postgres.close_stores()
        await admin.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        await admin.close()


@pytest.fixture
async def store(backend: Backend) -> Store:
    return await backend.opened()
