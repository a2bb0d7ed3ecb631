"""Choosing a backend from a URL, and what a store says when it cannot open."""

from __future__ import annotations

from pathlib import Path

import pytest

from trading_engine.devstack.brokers import free_port
from trading_engine.stores.base import StoreError
from trading_engine.stores.postgres import PostgresStore
from trading_engine.stores.sqlite import SqliteStore
from trading_engine.stores.urls import open_store


@pytest.mark.parametrize(
    ("url", "path"),
    [
        pytest.param("sqlite:///data/engine.db", Path("data/engine.db"), id="relative"),
        pytest.param("sqlite:////var/lib/engine.db", Path("/var/lib/engine.db"), id="absolute"),
        pytest.param("engine.db", Path("engine.db"), id="bare-relative-path"),
        pytest.param("/srv/engine.db", Path("/srv/engine.db"), id="bare-absolute-path"),
    ],
)
def test_sqlite_urls_and_paths_name_a_sqlite_file(url: str, path: Path) -> None:
    store = open_store(url)

    assert isinstance(store, SqliteStore)
    assert store.path == path
    assert store.backend == "sqlite"


@pytest.mark.parametrize("url", ["postgresql://engine@db:5432/trading", "postgres://db/trading"])
def test_postgresql_urls_name_a_postgresql_store(url: str) -> None:
    store = open_store(url)

    assert isinstance(store, PostgresStore)
    assert store.backend == "postgresql"
    assert store.schema == "public"


def test_a_postgresql_url_may_name_the_schema() -> None:
    store = open_store("postgresql://engine@db:5432/trading?schema=engine_a&sslmode=disable")

    assert isinstance(store, PostgresStore)
    assert store.schema == "engine_a"


@pytest.mark.parametrize("url", ["mysql://db/trading", "sqlite://", "sqlite:///", ""])
def test_other_urls_are_refused_with_the_accepted_forms(url: str) -> None:
    with pytest.raises(ValueError, match=r"sqlite:///relative/path\.db.*postgresql://"):
        open_store(url)


async def test_an_unreachable_postgresql_is_a_store_error_without_the_password() -> None:
    store = PostgresStore(f"postgresql://engine:s3cret@127.0.0.1:{free_port()}/trading")

    with pytest.raises(StoreError, match="cannot connect") as refused:
        await store.open()

    assert "s3cret" not in str(refused.value)
    assert "127.0.0.1" in str(refused.value)


async def test_an_unwritable_sqlite_path_is_a_store_error(tmp_path: Path) -> None:
    # A file where the store's folder should be.
    (tmp_path / "occupied").write_text("not a folder")
    store = SqliteStore(tmp_path / "occupied" / "engine.db")

    with pytest.raises(StoreError, match="cannot open"):
        await store.open()


def test_a_schema_name_that_is_not_a_plain_identifier_is_refused() -> None:
    with pytest.raises(ValueError, match="schema"):
        PostgresStore("postgresql://db/trading", 'x"; DROP TABLE signals; --')
