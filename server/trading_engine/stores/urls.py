"""Choosing a store backend from a URL."""

from __future__ import annotations

import urllib.parse
from pathlib import Path

from trading_engine.stores.base import Store
from trading_engine.stores.postgres import PostgresStore
from trading_engine.stores.sqlite import SqliteStore

_SQLITE_PREFIX = "sqlite:///"
_POSTGRES_PREFIXES = ("postgresql://", "postgres://")
_ACCEPTED = (
    "sqlite:///relative/path.db, sqlite:////absolute/path.db, a bare file path, "
    "or postgresql://user@host:port/database[?schema=name] (also postgres://)"
)


def sqlite_file(url: str) -> Path | None:
    """The SQLite file `url` names; None for a PostgreSQL URL."""
    if url.startswith(_POSTGRES_PREFIXES):
        return None
    return Path(url.removeprefix(_SQLITE_PREFIX))


def open_store(url: str) -> Store:
    """The store `url` names, not opened yet.

    `sqlite:///data/engine.db` is relative to the working directory and
    `sqlite:////var/lib/engine.db` absolute (the path is what follows the
    third slash); a string without a scheme is a file path. A PostgreSQL URL
    may name the schema to use: `postgresql://host/db?schema=engine`.
    """
    if url.startswith(_POSTGRES_PREFIXES):
        parts = urllib.parse.urlsplit(url)
        query = urllib.parse.parse_qs(parts.query)
        schema = query.pop("schema", ["public"])[-1]
        rest = urllib.parse.urlencode(query, doseq=True)
        return PostgresStore(urllib.parse.urlunsplit(parts._replace(query=rest)), schema)
    if url.startswith(_SQLITE_PREFIX) and len(url) > len(_SQLITE_PREFIX):
        return SqliteStore(Path(url.removeprefix(_SQLITE_PREFIX)))
    if url and "://" not in url:
        return SqliteStore(Path(url))
    raise ValueError(f"unsupported store URL {url!r}: use {_ACCEPTED}")
