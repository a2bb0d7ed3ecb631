"""`trading-engine db status|migrate` on SQLite and PostgreSQL: what an operator checks and
runs before starting a new engine."""

from __future__ import annotations

import asyncio
import subprocess

from tests.stores.conftest import Backend
from tests.support import BIN
from trading_engine.stores._common import migrations


async def _db(*args: str) -> subprocess.CompletedProcess[str]:
    return await asyncio.to_thread(
        subprocess.run,
        [str(BIN / "trading-engine"), "db", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _newest() -> int:
    return migrations("sqlite")[-1].version


async def test_status_reads_without_creating_and_migrate_brings_the_schema_up_to_date(
    backend: Backend,
) -> None:
    fresh = await _db("status", "--store-url", backend.url)

    assert fresh.returncode == 3, fresh.stderr
    assert "no schema yet; the engine (or `db migrate`) creates it" in fresh.stdout
    assert fresh.stdout.count(" pending\n") == _newest()
    # Status only read: still nothing there for the engine or migrate to find.
    assert (await _db("status", "--store-url", backend.url)).returncode == 3

    migrated = await _db("migrate", "--store-url", backend.url)

    assert migrated.returncode == 0, migrated.stderr
    assert f"up to date, at migration {_newest()}" in migrated.stdout
    assert "applied migration 0001_initial.sql" in migrated.stderr
    status = await _db("status", "--store-url", backend.url)
    assert status.returncode == 0
    lines = status.stdout.splitlines()
    assert lines[1].split() == ["migration", "state"]
    assert all(line.split()[1] == "applied" for line in lines[2:])
    assert len(lines) == 2 + _newest()
    # An engine opening it finds nothing to do; migrating again neither.
    again = await _db("migrate", "--store-url", backend.url)
    assert again.returncode == 0
    assert "applied migration" not in again.stderr


async def test_a_database_a_newer_engine_migrated_is_named_and_left_alone(
    backend: Backend,
) -> None:
    await backend.opened()
    await backend.query("INSERT INTO schema_migrations (version) VALUES (99)")

    status = await _db("status", "--store-url", backend.url)
    migrate = await _db("migrate", "--store-url", backend.url)

    for refused in (status, migrate):
        assert refused.returncode == 1, refused.stdout + refused.stderr
        assert f"at migration 99, newer than this engine knows (up to {_newest()})" in (
            refused.stdout
        )


async def test_an_unreachable_database_is_said_in_one_line() -> None:
    unreachable = await _db("status", "--store-url", "postgresql://nobody@127.0.0.1:9/none")
    assert unreachable.returncode == 1
    assert unreachable.stderr.startswith("trading-engine db status: postgresql store ")
    assert "Traceback" not in unreachable.stderr
