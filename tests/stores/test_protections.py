"""Trading states and prediction batches: a state replaced per user and per company, loaded in
order and kept across restarts; a batch kept once per company, byte for byte, until retention."""

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
    assert await after.prediction_batch("acme", "batch-1") == stored
    # Still the same rows: a change replaces them, a redelivery keeps the first.
    resumed = trading_state("alice", ACTIVE, at_ns=NOW_NS + HOUR_NS)
    await after.put_trading_state(resumed)
    await after.append_prediction_batches([batch("batch-1", payload=b"redelivered")])
    assert await after.trading_states() == [company, resumed]
    assert await after.prediction_batch("acme", "batch-1") == stored


# Prediction batches.


async def test_a_prediction_batch_is_kept_byte_for_byte(store: Store) -> None:
    # Every byte value, NULs and invalid UTF-8 included, several times over.
    stored = batch("batch-1", user_id="bob", payload=bytes(range(256)) * 64 + b"\x00")

    await store.append_prediction_batches([stored])

    assert await store.prediction_batch("acme", "batch-1") == stored


async def test_an_unknown_batch_is_none(store: Store) -> None:
    await store.append_prediction_batches([batch("batch-1", company_id="acme")])

    assert await store.prediction_batch("acme", "batch-2") is None
    assert await store.prediction_batch("globex", "batch-1") is None


async def test_a_batch_delivered_again_keeps_the_first(store: Store) -> None:
    first = batch("batch-1", NOW_NS, payload=b"first delivery")
    await store.append_prediction_batches([first])
    new = batch("batch-2", NOW_NS + 2 * SECOND_NS, payload=b"new")

    await store.append_prediction_batches(
        [batch("batch-1", NOW_NS + SECOND_NS, user_id="bob", payload=b"second delivery")]
    )
    # Along with a new batch, and that one twice in the same call.
    await store.append_prediction_batches(
        [
            batch("batch-1", NOW_NS + 2 * SECOND_NS, payload=b"third delivery"),
            new,
            batch("batch-2", NOW_NS + 3 * SECOND_NS, payload=b"new, again"),
        ]
    )

    assert await store.prediction_batch("acme", "batch-1") == first
    assert await store.prediction_batch("acme", "batch-2") == new


async def test_the_same_batch_id_in_another_company_is_another_batch(store: Store) -> None:
    acme = batch("batch-1", company_id="acme", payload=b"acme's")
    globex = batch(
        "batch-1", NOW_NS + SECOND_NS, company_id="globex", user_id="bob", payload=b"globex's"
    )

    await store.append_prediction_batches([acme])
    await store.append_prediction_batches([globex])

    assert await store.prediction_batch("acme", "batch-1") == acme
    assert await store.prediction_batch("globex", "batch-1") == globex


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
    assert await store.prediction_batch("acme", "old") is None
    assert await store.prediction_batch("globex", "older") is None
    assert await store.prediction_batch("acme", "at-cutoff") == at_cutoff
    assert await store.prediction_batch("globex", "newer") == newer


async def test_an_empty_append_is_a_no_op(backend: Backend) -> None:
    store = await backend.opened()
    stored = batch("batch-1")
    await store.append_prediction_batches([stored])

    # Nothing to write: it does not even wait for another writer to finish.
    async with backend.hold_write_lock():
        await asyncio.wait_for(store.append_prediction_batches([]), timeout=2)

    assert await backend.query("SELECT count(*) FROM prediction_batches") == [(1,)]
    assert await store.prediction_batch("acme", "batch-1") == stored


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
        await store.prediction_batch("acme", "batch-1")
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
    assert await new.prediction_batch("acme", "batch-1") == batch()


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
