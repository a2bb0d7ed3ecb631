"""Strategy layers: versioned revisions, optimistic concurrency and idempotent changes."""

from __future__ import annotations

import asyncio

import pytest

from tests.stores.builders import change, company_layer, user_layer
from tests.stores.conftest import Backend
from trading_engine.stores.base import Store, VersionConflict


async def test_a_change_becomes_the_layers_current_revision(store: Store) -> None:
    key = user_layer()
    assert await store.current_revision(key) is None

    appended = await store.append_revision(change(key, 0, request_id="req-1"))

    assert not appended.replayed
    stored = appended.revision
    assert stored.version > 0
    assert stored.key == key
    assert stored.changed_fields == ("min_confidence",)
    assert stored.layer_fields == ("min_confidence", "max_positions")
    assert stored.changes == b"\x0d\x00\x00\x40\x3f"
    assert (stored.changed_by, stored.reason, stored.request_id) == (
        "admin-1",
        "tighten risk",
        "req-1",
    )
    assert await store.current_revision(key) == stored
    assert await store.revision(key, stored.version) == stored


async def test_each_change_builds_on_the_current_revision(store: Store) -> None:
    key = user_layer()
    first = (await store.append_revision(change(key, 0, reason="first"))).revision
    second = (await store.append_revision(change(key, first.version, reason="second"))).revision

    assert second.version > first.version
    current = await store.current_revision(key)
    assert current is not None
    assert current.reason == "second"
    # Earlier revisions stay readable: nothing is updated in place.
    assert await store.revision(key, first.version) == first


async def test_revisions_are_listed_newest_first_in_pages(store: Store) -> None:
    key = user_layer()
    versions: list[int] = []
    for number in range(5):
        expected = versions[-1] if versions else 0
        appended = await store.append_revision(change(key, expected, reason=f"change {number}"))
        versions.append(appended.revision.version)

    first_page = await store.list_revisions(key, None, 2)
    second_page = await store.list_revisions(key, first_page[-1].version, 2)
    last_page = await store.list_revisions(key, second_page[-1].version, 2)

    assert [r.version for r in first_page] == versions[:2:-1]
    assert [r.version for r in second_page] == versions[2:0:-1]
    assert [r.version for r in last_page] == versions[:1]
    assert await store.list_revisions(key, versions[0], 2) == []


async def test_versions_increase_across_companies_and_layers(store: Store) -> None:
    keys = [user_layer("acme", "alice"), company_layer("acme"), user_layer("globex", "bob")]
    appended = [(await store.append_revision(change(key, 0))).revision for key in keys]
    appended.append((await store.append_revision(change(keys[0], appended[0].version))).revision)

    versions = [revision.version for revision in appended]
    assert versions == sorted(set(versions))
    # Another engine instance catches up from the last version it saw, oldest first.
    assert await store.revisions_since(versions[0]) == appended[1:]
    assert await store.revisions_since(versions[-1]) == []


async def test_the_latest_version_covers_every_layer(store: Store) -> None:
    assert await store.latest_version() == 0

    await store.append_revision(change(user_layer("acme", "alice"), 0))
    newest = (await store.append_revision(change(company_layer("globex"), 0))).revision

    # An instance starting now follows changes from here on.
    assert await store.latest_version() == newest.version
    assert await store.revisions_since(await store.latest_version()) == []


async def test_company_and_user_layers_are_versioned_apart(store: Store) -> None:
    await store.append_revision(change(company_layer("acme"), 0, reason="company"))

    # The user's layer is still empty, so 0 is the right expectation there.
    user = await store.append_revision(change(user_layer("acme", "alice"), 0, reason="user"))

    company = await store.current_revision(company_layer("acme"))
    assert company is not None
    assert company.reason == "company"
    assert company.key.user_id == ""
    assert user.revision.reason == "user"


async def test_a_stale_expected_version_is_a_conflict(store: Store) -> None:
    key = user_layer()
    first = (await store.append_revision(change(key, 0))).revision
    second = (await store.append_revision(change(key, first.version))).revision

    with pytest.raises(VersionConflict) as stale:
        await store.append_revision(change(key, first.version, reason="lost update"))
    with pytest.raises(VersionConflict) as fresh:
        await store.append_revision(change(key, 0, reason="thinks the layer is new"))

    assert (stale.value.expected, stale.value.current) == (first.version, second.version)
    assert (fresh.value.expected, fresh.value.current) == (0, second.version)
    assert [r.version for r in await store.list_revisions(key, None, 10)] == [
        second.version,
        first.version,
    ]


async def test_a_repeated_request_id_returns_the_stored_revision(store: Store) -> None:
    key = user_layer()
    original = await store.append_revision(change(key, 0, request_id="req-7"))

    # The retry still says "expected 0", which is stale by now: replay wins.
    retried = await store.append_revision(change(key, 0, request_id="req-7", reason="retry"))

    assert retried.replayed
    assert retried.revision == original.revision
    assert len(await store.list_revisions(key, None, 10)) == 1


async def test_request_ids_are_scoped_to_one_company(store: Store) -> None:
    acme = await store.append_revision(change(user_layer("acme"), 0, request_id="req-1"))
    globex = await store.append_revision(change(user_layer("globex"), 0, request_id="req-1"))

    assert not globex.replayed
    assert globex.revision.key.company_id == "globex"
    assert globex.revision.version != acme.revision.version


async def test_changes_without_request_id_are_never_replayed(store: Store) -> None:
    first = await store.append_revision(change(user_layer("acme", "alice"), 0))
    second = await store.append_revision(change(user_layer("acme", "bob"), 0))

    assert not second.replayed
    assert second.revision.version != first.revision.version


async def test_concurrent_changes_from_one_version_only_one_wins(store: Store) -> None:
    key = user_layer()
    base = (await store.append_revision(change(key, 0))).revision.version

    outcomes = await asyncio.gather(
        *(store.append_revision(change(key, base, reason=f"editor {n}")) for n in range(10)),
        return_exceptions=True,
    )

    winners = [outcome for outcome in outcomes if not isinstance(outcome, BaseException)]
    conflicts = [outcome for outcome in outcomes if isinstance(outcome, VersionConflict)]
    assert len(winners) == 1
    assert len(conflicts) == 9
    assert {conflict.current for conflict in conflicts} == {winners[0].revision.version}
    assert await store.current_revision(key) == winners[0].revision


async def test_concurrent_changes_from_two_engine_instances_only_one_wins(
    backend: Backend,
) -> None:
    first_engine, second_engine = await backend.opened(), await backend.opened()
    key = user_layer()
    base = (await first_engine.append_revision(change(key, 0))).revision.version

    outcomes = await asyncio.gather(
        *(
            engine.append_revision(change(key, base, reason=f"editor {n}"))
            for n in range(5)
            for engine in (first_engine, second_engine)
        ),
        return_exceptions=True,
    )

    winners = [outcome for outcome in outcomes if not isinstance(outcome, BaseException)]
    conflicts = [outcome for outcome in outcomes if isinstance(outcome, VersionConflict)]
    assert (len(winners), len(conflicts)) == (1, 9)
    assert await second_engine.current_revision(key) == winners[0].revision
    assert len(await first_engine.list_revisions(key, None, 20)) == 2
