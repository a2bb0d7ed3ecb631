"""Trading states and prediction batches: a state replaced per user and per company, loaded in
order and kept across restarts; a batch kept per user and decision, byte for byte, until
retention."""

from __future__ import annotations

import asyncio
import dataclasses

import pytest

from tests.stores.builders import EVERY_MIGRATION, NOW_NS, SECOND_NS, signal
from tests.stores.conftest import Backend
from tradeflow.trading.v1 import trading_engine_service_pb2
from trading_engine.stores import postgres, sqlite
from trading_engine.stores.base import PredictionBatchRecord, Store, StoreError, TradingStateRecord

S = trading_engine_service_pb2
ACTIVE: int = S.TRADING_STATE_ACTIVE
REDUCE_ONLY: int = S.TRADING_STATE_REDUCE_ONLY
HALTED: int = S.TRADING_STATE_HALTED
ADMIN: int = S.TRADING_STATE_CAUSE_ADMIN
DRAWDOWN_LIMIT: int = S.TRADING_STATE_CAUSE_DRAWDOWN_LIMIT
HOUR_NS = 3600 * SECOND_NS


def trading_state(
    user_id: str = "alice",
    state: int = HALTED,
    *,
    company_id: str = "acme",
    cause: int = ADMIN,
    reason: str = "suspicious fills",
    changed_by: str = "admin-1",
    at_ns: int = NOW_NS,
) -> TradingStateRecord:
    """A state an admin set; user_id "" sets the company's."""
    return TradingStateRecord(
        company_id=company_id,
        user_id=user_id,
        state=state,
        cause=cause,
        reason=reason,
        changed_by=changed_by,
        changed_at_ns=at_ns,
    )


def batch(
    batch_id: str = "batch-1",
    at_ns: int = NOW_NS,
    *,
    company_id: str = "acme",
    user_id: str = "alice",
    payload: bytes | None = None,
) -> PredictionBatchRecord:
    """A received batch; its payload names it, so a test can tell two apart."""
    return PredictionBatchRecord(
        company_id=company_id,
        batch_id=batch_id,
        user_id=user_id,
        received_at_ns=at_ns,
        payload=payload if payload is not None else f"batch {company_id}/{batch_id}".encode(),
    )


async def kept(
    store: Store,
    batch_id: str = "batch-1",
    at_ns: int = NOW_NS,
    *,
    company_id: str = "acme",
    user_id: str = "alice",
) -> list[PredictionBatchRecord]:
    """The user's batches kept under `batch_id` and decided at `at_ns`."""
    return await store.prediction_batches_decided_at(company_id, user_id, batch_id, at_ns)


# Trading states.


async def test_a_trading_state_is_stored_with_every_field(store: Store) -> None:
    halted = trading_state(
        "alice",
        HALTED,
        cause=DRAWDOWN_LIMIT,
        reason="daily drawdown 5.2% reached the 5% limit",
        changed_by="drawdown-limit",
    )

    await store.put_trading_state(halted)

    assert await store.trading_states() == [halted]


async def test_setting_a_state_again_replaces_it(store: Store) -> None:
    await store.put_trading_state(trading_state("alice", HALTED, cause=DRAWDOWN_LIMIT))
    resumed = trading_state(
        "alice",
        ACTIVE,
        cause=ADMIN,
        reason="drawdown reviewed",
        changed_by="admin-2",
        at_ns=NOW_NS + HOUR_NS,
    )

    await store.put_trading_state(resumed)

    assert await store.trading_states() == [resumed]


async def test_company_and_user_states_are_kept_apart_and_in_order(store: Store) -> None:
    # Set in an order that is not the one they are read in.
    bob = trading_state("bob", REDUCE_ONLY)
    company = trading_state("", HALTED, reason="exchange outage")
    alice = trading_state("alice", HALTED)
    # Byte order on both backends: upper case sorts before lower case.
    zoe = trading_state("Zoe", ACTIVE)
    for record in (bob, company, alice, zoe):
        await store.put_trading_state(record)

    # The company resumes: its users' own states stay as they were.
    company_resumed = trading_state("", ACTIVE, reason="exchange back", at_ns=NOW_NS + HOUR_NS)
    await store.put_trading_state(company_resumed)

    assert await store.trading_states() == [company_resumed, zoe, alice, bob]


async def test_trading_states_belong_to_their_company(store: Store) -> None:
    # The same user id in two companies is two users.
    globex_alice = trading_state("alice", REDUCE_ONLY, company_id="globex", reason="globex's")
    acme_alice = trading_state("alice", HALTED, company_id="acme", reason="acme's")
    globex_company = trading_state("", HALTED, company_id="globex")
    for record in (globex_alice, acme_alice, globex_company):
        await store.put_trading_state(record)

    acme_resumed = trading_state("alice", ACTIVE, company_id="acme", at_ns=NOW_NS + HOUR_NS)
    await store.put_trading_state(acme_resumed)

    assert await store.trading_states() == [acme_resumed, globex_company, globex_alice]


async def test_states_and_batches_survive_a_restart(backend: Backend) -> None:
    before = await backend.opened()
    company = trading_state("", REDUCE_ONLY, reason="month-end")
    alice = trading_state("alice", HALTED, cause=DRAWDOWN_LIMIT, changed_by="drawdown-limit")
    await before.put_trading_state(alice)
    await before.put_trading_state(company)
    stored = batch("batch-1")
    await before.append_prediction_batches([stored])
    await before.close()

    after = await backend.opened()

    assert await after.trading_states() == [company, alice]
    assert await kept(after) == [stored]
    # Still the same rows: a change replaces them, the same batch written again adds nothing.
    resumed = trading_state("alice", ACTIVE, at_ns=NOW_NS + HOUR_NS)
    await after.put_trading_state(resumed)
    await after.append_prediction_batches([batch("batch-1")])
    assert await after.trading_states() == [company, resumed]
    assert await kept(after) == [stored]


# Prediction batches.


async def test_a_prediction_batch_is_kept_byte_for_byte(store: Store) -> None:
    # Every byte value, NULs and invalid UTF-8 included, several times over.
    stored = batch("batch-1", user_id="bob", payload=bytes(range(256)) * 64 + b"\x00")

    await store.append_prediction_batches([stored])

    assert await kept(store, user_id="bob") == [stored]


async def test_a_batch_is_found_only_by_its_tenant_id_and_decision_instant(store: Store) -> None:
    await store.append_prediction_batches([batch("batch-1", company_id="acme")])

    assert await kept(store, "batch-2") == []
    assert await kept(store, company_id="globex") == []
    assert await kept(store, user_id="bob") == []
    assert await kept(store, at_ns=NOW_NS + 1) == []
    assert await kept(store, at_ns=NOW_NS - 1) == []


async def test_another_users_batch_under_the_same_id_is_kept_apart(store: Store) -> None:
    # trader-2 reuses trader-1's batch id, in the same flush and in a later one.
    alice = batch("batch-1", NOW_NS, user_id="alice", payload=b"alice's predictions")
    bob = batch("batch-1", NOW_NS, user_id="bob", payload=b"bob's predictions")
    carol = batch("batch-1", NOW_NS + SECOND_NS, user_id="carol", payload=b"carol's")

    await store.append_prediction_batches([alice, bob])
    await store.append_prediction_batches([carol])

    assert await kept(store, user_id="alice") == [alice]
    assert await kept(store, user_id="bob") == [bob]
    assert await kept(store, at_ns=NOW_NS + SECOND_NS, user_id="carol") == [carol]


async def test_a_batch_id_sent_again_with_other_content_is_kept_too(store: Store) -> None:
    first = batch("batch-1", NOW_NS, payload=b"p1 on EURUSD")
    # A second later: its signals carry that instant, and so does the row.
    later = batch("batch-1", NOW_NS + SECOND_NS, payload=b"p1 corrected, p2 on GBPUSD")
    # Decided in the same nanosecond as the first: kept after it.
    same_instant = batch("batch-1", NOW_NS, payload=b"p3 on USDJPY")

    await store.append_prediction_batches([first, later])
    await store.append_prediction_batches([same_instant])

    assert await kept(store) == [first, same_instant]
    assert await kept(store, at_ns=NOW_NS + SECOND_NS) == [later]


async def test_the_same_batch_written_again_adds_nothing(store: Store) -> None:
    # A flush retried after a lost answer, or the batch twice in one flush: one row.
    stored = batch("batch-1", NOW_NS, payload=b"the same bytes")
    await store.append_prediction_batches([stored, stored])

    await store.append_prediction_batches([stored])

    assert await kept(store) == [stored]
    page = await store.prediction_batches("acme", NOW_NS, NOW_NS + 1, None, 10)
    assert [arrived.record for arrived in page] == [stored]


async def test_retention_drops_old_batches_and_keeps_new_ones(store: Store) -> None:
    await store.append_signals([signal("s-old", NOW_NS - SECOND_NS), signal("s-new", NOW_NS)])
    at_cutoff = batch("at-cutoff", NOW_NS)
    newer = batch("newer", NOW_NS + SECOND_NS, company_id="globex")
    await store.append_prediction_batches(
        [
            batch("old", NOW_NS - SECOND_NS),
            batch("older", NOW_NS - HOUR_NS, company_id="globex"),
            at_cutoff,
            newer,
        ]
    )

    deleted = await store.delete_signals_before(NOW_NS)

    # The count is of signals; the two batches deleted are not in it.
    assert deleted == 1
    assert await store.signal("acme", "s-old") is None
    assert await store.signal("acme", "s-new") is not None
    assert await kept(store, "old", NOW_NS - SECOND_NS) == []
    assert await kept(store, "older", NOW_NS - HOUR_NS, company_id="globex") == []
    assert await kept(store, "at-cutoff") == [at_cutoff]
    assert await kept(store, "newer", NOW_NS + SECOND_NS, company_id="globex") == [newer]


async def test_an_empty_append_is_a_no_op(backend: Backend) -> None:
    store = await backend.opened()
    stored = batch("batch-1")
    await store.append_prediction_batches([stored])

    # Nothing to write: it does not even wait for another writer to finish.
    async with backend.hold_write_lock():
        await asyncio.wait_for(store.append_prediction_batches([]), timeout=2)

    assert await backend.query("SELECT count(*) FROM prediction_batches") == [(1,)]
    assert await kept(store) == [stored]


# Failures and upgrades.


async def test_a_failing_database_is_a_store_error_saying_what_failed(backend: Backend) -> None:
    store = await backend.opened()
    await store.append_signals([signal("s-old", NOW_NS - SECOND_NS)])
    await backend.query("DROP TABLE trading_states")
    await backend.query("DROP TABLE prediction_batches")

    with pytest.raises(StoreError, match="cannot store a trading state"):
        await store.put_trading_state(trading_state())
    with pytest.raises(StoreError, match="cannot read trading states"):
        await store.trading_states()
    with pytest.raises(StoreError, match="cannot append prediction batches"):
        await store.append_prediction_batches([batch()])
    with pytest.raises(StoreError, match="cannot read a prediction batch"):
        await kept(store)
    with pytest.raises(StoreError, match="cannot delete old signals and prediction batches"):
        await store.delete_signals_before(NOW_NS)
    # Retention is all or nothing: the signal it could have deleted is still there.
    assert await store.signal("acme", "s-old") == signal("s-old", NOW_NS - SECOND_NS)


async def test_a_database_from_before_protections_is_migrated(
    backend: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    # An engine that knew the first two migrations only.
    with monkeypatch.context() as older:
        for module in (sqlite, postgres):
            known = module.migrations
            older.setattr(module, "migrations", lambda folder, known=known: known(folder)[:2])
        old = await backend.opened()
        await old.append_signals([signal("s1")])
        await old.close()
    assert await backend.query("SELECT version FROM schema_migrations ORDER BY version") == [
        (1,),
        (2,),
    ]

    new = await backend.opened()

    assert await backend.query("SELECT version FROM schema_migrations ORDER BY version") == [
        (version,) for version in EVERY_MIGRATION
    ]
    assert await new.signal("acme", "s1") == signal("s1")
    assert await new.trading_states() == []
    await new.put_trading_state(trading_state())
    await new.append_prediction_batches([batch()])
    assert await new.trading_states() == [trading_state()]
    assert await kept(new) == [batch()]


async def test_a_companys_batches_are_read_in_decision_order_page_by_page(store: Store) -> None:
    # Stored in the order decided; two share an instant, as batches of one tick do.
    decided = [
        # With the risk verdict it got, kept as given.
        dataclasses.replace(batch("b-1", NOW_NS), risk_verdict='{"asked":["s-1"]}'),
        batch("b-3", NOW_NS + SECOND_NS),
        batch("b-2", NOW_NS + SECOND_NS, user_id="bob"),
        batch("b-4", NOW_NS + 2 * SECOND_NS),
        batch("rival-1", NOW_NS + SECOND_NS, company_id="rival"),
    ]
    for record in decided:
        await store.append_prediction_batches([record])

    async def read(start_ns: int, end_ns: int, limit: int = 10) -> list[str]:
        read_ids, after = [], None
        while page := await store.prediction_batches("acme", start_ns, end_ns, after, limit):
            read_ids += [arrived.record.batch_id for arrived in page]
            after = page[-1].position
        return read_ids

    # Ties keep the order they were decided in (b-3 before b-2), whatever their ids.
    assert await read(NOW_NS, NOW_NS + 3 * SECOND_NS) == ["b-1", "b-3", "b-2", "b-4"]
    assert await read(NOW_NS, NOW_NS + 3 * SECOND_NS, limit=1) == ["b-1", "b-3", "b-2", "b-4"]
    # The end is exclusive, the start inclusive; another company's batches are never read.
    assert await read(NOW_NS + SECOND_NS, NOW_NS + 2 * SECOND_NS) == ["b-3", "b-2"]
    arrived = (await store.prediction_batches("acme", NOW_NS, NOW_NS + 1, None, 10))[0]
    assert arrived.record == decided[0]


async def test_batches_kept_per_company_are_migrated_to_per_user_in_their_order(
    backend: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    # An engine from before batches were kept per user: migrations 1 to 5.
    decided = [
        dataclasses.replace(batch("b-1", NOW_NS), risk_verdict='{"asked":["s-1"]}'),
        batch("b-2", NOW_NS + SECOND_NS, user_id="bob"),
        # Decided at the same instant as b-1, after it.
        batch("b-3", NOW_NS),
    ]
    with monkeypatch.context() as older:
        for module in (sqlite, postgres):
            known = module.migrations
            older.setattr(module, "migrations", lambda folder, known=known: known(folder)[:5])
        old = await backend.opened()
        await old.close()
    for record in decided:
        # As that engine wrote them (today's code writes the digest too).
        blob = (
            f"X'{record.payload.hex()}'"
            if backend.name == "sqlite"
            else f"'\\x{record.payload.hex()}'::bytea"
        )
        await backend.query(
            "INSERT INTO prediction_batches "
            "(company_id, batch_id, user_id, received_at_ns, payload, risk_verdict) VALUES "
            f"('{record.company_id}', '{record.batch_id}', '{record.user_id}', "
            f"{record.received_at_ns}, {blob}, '{record.risk_verdict}')"
        )

    new = await backend.opened()

    assert [row[0] for row in await backend.query("SELECT version FROM schema_migrations")] == (
        EVERY_MIGRATION
    )
    assert await kept(new, "b-1") == [decided[0]]
    assert await kept(new, "b-2", NOW_NS + SECOND_NS, user_id="bob") == [decided[1]]
    page = await new.prediction_batches("acme", NOW_NS, NOW_NS + 2 * SECOND_NS, None, 10)
    assert [arrived.record for arrived in page] == [decided[0], decided[2], decided[1]]
    # Bob may now use alice's batch id, and it comes after what was there.
    bobs = batch("b-1", NOW_NS, user_id="bob", payload=b"bob's b-1")
    await new.append_prediction_batches([bobs])
    assert await kept(new, "b-1", user_id="bob") == [bobs]
    page = await new.prediction_batches("acme", NOW_NS, NOW_NS + 1, None, 10)
    assert [arrived.record for arrived in page] == [decided[0], decided[2], bobs]
