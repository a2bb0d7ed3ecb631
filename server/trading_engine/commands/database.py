"""`trading-engine db status|migrate`: the store's schema, before and during an upgrade.

These talk to the database the engine is configured with (--store-url, or the
SQLite file in --data-dir; the same TRADING_ENGINE_* variables), not to a
running engine: the API has no call that changes the schema, and an operator
migrates before the new engine starts. `status` reads only; `migrate` applies
what the engine would apply when it opens the store, the same way.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import sys

from trading_engine.commands.parsing import Commands, show_help
from trading_engine.commands.strategy_values import table
from trading_engine.config import EngineSettings, add_arguments, from_arguments
from trading_engine.stores._common import SchemaStatus
from trading_engine.stores.base import StoreError
from trading_engine.stores.urls import open_store

_STORE_SETTINGS = ("data_dir", "store_url")
_EXAMPLES = """\
examples:
  trading-engine db status                                  # SQLite in var/
  trading-engine db status --store-url postgresql://engine@db.internal/trading?schema=engine
  trading-engine db migrate --store-url postgresql://...    # before starting a new engine

`status` exits 0 when the database is up to date, 3 when migrations are
pending (or it was never created), 1 when it cannot be read or a newer engine
migrated it.
"""
# `db status`: migrations wait (a check in a deploy script can tell it from a failure).
PENDING_STATUS = 3


def add_command(commands: Commands) -> None:
    summary = "the store's schema: which migrations it has, and applying the pending ones"
    database = commands.add_parser("db", help=summary, description=summary, epilog=_EXAMPLES)
    database.set_defaults(run=show_help(database))
    actions = database.add_subparsers(title="commands", dest="db_command", metavar="COMMAND")
    for name, summary, run in (
        ("status", "list applied and pending migrations; changes nothing", _status),
        ("migrate", "apply the pending migrations, as the engine does when it starts", _migrate),
    ):
        parser = actions.add_parser(name, help=summary, description=summary, epilog=_EXAMPLES)
        add_arguments(
            parser,
            EngineSettings,
            exclude=[
                f.name for f in dataclasses.fields(EngineSettings) if f.name not in _STORE_SETTINGS
            ],
        )
        parser.set_defaults(run=run, command=f"db {name}")


def _status(args: argparse.Namespace) -> int:
    try:
        status = asyncio.run(_read_status(args))
    except StoreError as error:
        print(f"trading-engine db status: {error}", file=sys.stderr)
        return 1
    print(_describe(status), end="")
    if status.newer_than_engine:
        return 1
    return PENDING_STATUS if status.pending or not status.created else 0


def _migrate(args: argparse.Namespace) -> int:
    settings = from_arguments(EngineSettings, args)
    store = open_store(settings.resolved_store_url)

    async def migrate() -> SchemaStatus:
        before = await store.schema_status()
        if before.newer_than_engine:
            return before
        # Opening applies what is pending, one migration per transaction, under the same
        # lock an engine starting at this moment would take.
        await store.open()
        await store.close()
        return await store.schema_status()

    try:
        status = asyncio.run(migrate())
    except StoreError as error:
        print(f"trading-engine db migrate: {error}", file=sys.stderr)
        return 1
    print(_describe(status), end="")
    return 1 if status.newer_than_engine else 0


async def _read_status(args: argparse.Namespace) -> SchemaStatus:
    settings = from_arguments(EngineSettings, args)
    return await open_store(settings.resolved_store_url).schema_status()


def _describe(status: SchemaStatus) -> str:
    newest = status.known[-1].version
    if not status.created:
        heading = f"{status.database}: no schema yet; the engine (or `db migrate`) creates it"
    elif status.newer_than_engine:
        heading = (
            f"{status.database}: at migration {max(status.applied)}, newer than this engine "
            f"knows (up to {newest}): upgrade the engine, or use another database"
        )
    elif status.pending:
        heading = f"{status.database}: {len(status.pending)} of {newest} migrations pending"
    else:
        heading = f"{status.database}: up to date, at migration {newest}"
    rows = [("migration", "state")]
    rows += [
        (
            migration.path.name,
            f"applied {status.applied[migration.version]}"
            if migration.version in status.applied
            else "pending",
        )
        for migration in status.known
    ]
    return f"{heading}\n{table(rows)}"
