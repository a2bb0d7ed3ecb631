"""Schema migrations run on open: once each, safely when engines start together, and never
against a database a newer engine has migrated."""

from __future__ import annotations

import asyncio

import pytest

from tests.stores.builders import EVERY_MIGRATION, change, user_layer
from tests.stores.conftest import Backend
from trading_engine.stores.base import StoreError


async def _applied(backend: Backend) -> list[int]:
    return [row[0] for row in await backend.query("SELECT version FROM schema_migrations")]


async def test_opening_again_applies_nothing_and_keeps_the_data(backend: Backend) -> None:
    first = await backend.opened()
    stored = (await first.append_revision(change(user_layer(), 0))).revision
    await first.close()
    applied = await _applied(backend)

    second = await backend.opened()

    assert applied == EVERY_MIGRATION
    assert await _applied(backend) == applied
    assert await second.current_revision(user_layer()) == stored


async def test_engines_opening_a_new_database_together_both_succeed(backend: Backend) -> None:
    stores = [backend.make() for _ in range(3)]

    await asyncio.gather(*(store.open() for store in stores))

    assert await _applied(backend) == EVERY_MIGRATION
    # Each of them works on the one schema.
    appended = await stores[0].append_revision(change(user_layer(), 0))
    assert await stores[2].current_revision(user_layer()) == appended.revision


async def test_a_database_migrated_by_a_newer_engine_is_refused(backend: Backend) -> None:
    await backend.opened()
    await backend.query("INSERT INTO schema_migrations (version) VALUES (9999)")

    with pytest.raises(StoreError, match="migration 9999, newer than this engine"):
        await backend.opened()
