"""Execution results and signal outcomes: stored once per status, read back in order, upserted,
filtered by user, window and symbol, kept apart per company, and kept across restarts."""

from __future__ import annotations

import dataclasses

import pytest

from tests.stores.builders import (
    BUY,
    EVERY_MIGRATION,
    HOLD,
    NOW_NS,
    REJECTED,
    SECOND_NS,
    SELL,
    SUPPRESSED,
    change,
    signal,
    user_layer,
)
from tests.stores.conftest import Backend
from tradeflow.trading.v1 import execution_pb2
from trading_engine.stores import postgres, sqlite
from trading_engine.stores.base import ExecutionRecord, OutcomeRecord, Store

E = execution_pb2
FILLED: int = E.EXECUTION_STATUS_FILLED
PARTIALLY_FILLED: int = E.EXECUTION_STATUS_PARTIALLY_FILLED
CLOSED: int = E.EXECUTION_STATUS_CLOSED
OPEN: int = E.SIGNAL_OUTCOME_OPEN
WIN: int = E.SIGNAL_OUTCOME_WIN
LOSS: int = E.SIGNAL_OUTCOME_LOSS
NOT_FILLED: int = E.SIGNAL_OUTCOME_NOT_FILLED


def execution(
    execution_id: str = "exec-1",
    status: int = FILLED,
    *,
    signal_id: str = "s1",
    company_id: str = "acme",
    user_id: str = "alice",
    at_ns: int = NOW_NS,
    payload: bytes | None = None,
) -> ExecutionRecord:
    """A result as the tracker records it; its payload names it, so a test can tell two apart."""
    return ExecutionRecord(
        company_id=company_id,
        user_id=user_id,
        execution_id=execution_id,
        signal_id=signal_id,
        status=status,
        recorded_at_ns=at_ns,
        payload=payload if payload is not None else f"{execution_id}/{status}".encode(),
    )


def outcome(
    signal_id: str = "s1",
    at_ns: int = NOW_NS,
    *,
    company_id: str = "acme",
    user_id: str = "alice",
    symbol: str = "EURUSD",
    result: int = OPEN,
) -> OutcomeRecord:
    """A filled, still open position: every optional field set."""
    return OutcomeRecord(
        company_id=company_id,
        user_id=user_id,
        signal_id=signal_id,
        symbol=symbol,
        signal_type=BUY,
        strength=0.8125,
        confidence=0.7734375,
        generated_at_ns=at_ns,
        outcome=result,
        profit_loss_pips=0.0,
        profit_loss=0.0,
        slippage_pips=-0.4,
        execution_latency_ns=183_000_000,
        closed_at_ns=0,
        strategy_version=7,
        updated_at_ns=at_ns + SECOND_NS,
        payload=f"performance {company_id}/{signal_id}".encode(),
    )


def _ids(records: list[OutcomeRecord]) -> list[str]:
    return [record.signal_id for record in records]


async def test_a_result_is_stored_with_every_field(store: Store) -> None:
    record = execution("exec-1", FILLED, payload=b"\x08\x01\x12\x02s1\x00\xff")

    assert await store.record_execution(record)

    assert await store.executions_for_signal("acme", "s1") == [record]
    assert await store.executions_for_signal("acme", "s2") == []


async def test_a_resent_result_changes_nothing(store: Store) -> None:
    first = execution("exec-1", FILLED, at_ns=NOW_NS)
    await store.record_execution(first)

    resent = await store.record_execution(
        execution("exec-1", FILLED, at_ns=NOW_NS + SECOND_NS, payload=b"sent again")
    )

    assert resent is False
    assert await store.executions_for_signal("acme", "s1") == [first]


async def test_each_status_of_an_execution_is_kept_in_recorded_order(store: Store) -> None:
    # Recorded at the same instant, in an order that is neither by id nor by status.
    recorded = [
        execution("exec-b", PARTIALLY_FILLED),
        execution("exec-a", FILLED),
        execution("exec-b", CLOSED),
        execution("exec-a", CLOSED),
    ]
    for record in recorded:
        assert await store.record_execution(record)
    await store.record_execution(execution("exec-c", FILLED, signal_id="s2"))

    assert await store.executions_for_signal("acme", "s1") == recorded


async def test_closed_results_since_a_time_come_from_every_company_in_recorded_order(
    store: Store,
) -> None:
    old = execution("x-old", CLOSED, at_ns=NOW_NS - SECOND_NS)
    fill = execution("x-new", FILLED, at_ns=NOW_NS + SECOND_NS)
    first = execution("x-new", CLOSED, at_ns=NOW_NS + 3 * SECOND_NS)
    rival = execution(
        "x-rival", CLOSED, company_id="rival", user_id="bob", at_ns=NOW_NS + SECOND_NS
    )
    edge = execution("x-edge", CLOSED, signal_id="s2", at_ns=NOW_NS)
    for record in (old, fill, first, rival, edge):
        await store.record_execution(record)

    # Recorded order, not time order: the engine records results as they arrive.
    assert await store.closed_executions_since(NOW_NS) == [first, rival, edge]


async def test_an_outcome_is_stored_with_every_field(store: Store) -> None:
    filled = outcome("filled")
    # Never filled: no slippage or latency, and nothing closed.
    unfilled = dataclasses.replace(
        outcome("unfilled"),
        signal_type=SELL,
        outcome=NOT_FILLED,
        slippage_pips=None,
        execution_latency_ns=None,
    )

    await store.put_outcome(filled)
    await store.put_outcome(unfilled)

    assert await store.outcome("acme", "filled") == filled
    assert await store.outcome("acme", "unfilled") == unfilled
    assert await store.outcome("acme", "never-executed") is None


async def test_putting_an_outcome_again_replaces_it(store: Store) -> None:
    await store.put_outcome(outcome("s1"))
    closed = dataclasses.replace(
        outcome("s1"),
        outcome=LOSS,
        profit_loss_pips=-20.5,
        profit_loss=-51.25,
        closed_at_ns=NOW_NS + 3600 * SECOND_NS,
        updated_at_ns=NOW_NS + 3600 * SECOND_NS,
        payload=b"closed",
    )

    await store.put_outcome(closed)

    assert await store.outcome("acme", "s1") == closed
    assert await store.outcomes("acme", "alice", 0) == [closed]


async def test_a_users_outcomes_are_read_by_window_and_symbol(store: Store) -> None:
    for record in [
        outcome("s3", NOW_NS + 2 * SECOND_NS, symbol="USDJPY"),
        outcome("s1", NOW_NS, symbol="EURUSD"),
        # Same instant as s3: the id breaks the tie.
        outcome("s2", NOW_NS + 2 * SECOND_NS, symbol="EURUSD"),
        outcome("s0", NOW_NS - SECOND_NS, symbol="EURUSD"),
        outcome("b1", NOW_NS + SECOND_NS, user_id="bob"),
    ]:
        await store.put_outcome(record)

    assert _ids(await store.outcomes("acme", "alice", NOW_NS)) == ["s1", "s2", "s3"]
    assert _ids(await store.outcomes("acme", "alice", NOW_NS, "EURUSD")) == ["s1", "s2"]
    assert _ids(await store.outcomes("acme", "alice", NOW_NS + SECOND_NS, "USDJPY")) == ["s3"]
    assert _ids(await store.outcomes("acme", "alice", 0)) == ["s0", "s1", "s2", "s3"]
    assert await store.outcomes("acme", "alice", NOW_NS + 3 * SECOND_NS) == []
    assert await store.outcomes("acme", "alice", 0, "GBPUSD") == []
    assert _ids(await store.outcomes("acme", "bob", 0)) == ["b1"]


async def test_open_outcomes_span_every_company(store: Store) -> None:
    await store.put_outcome(outcome("s2", company_id="globex"))
    await store.put_outcome(outcome("s1", user_id="bob"))
    await store.put_outcome(outcome("s3", result=WIN))
    await store.put_outcome(outcome("s4", result=NOT_FILLED))
    await store.put_outcome(outcome("s5"))

    # The position of s5 closes.
    await store.put_outcome(outcome("s5", result=WIN))

    found = await store.open_outcomes()
    assert [(record.company_id, record.user_id, record.signal_id) for record in found] == [
        ("acme", "bob", "s1"),
        ("globex", "alice", "s2"),
    ]
    assert found[0] == outcome("s1", user_id="bob")


async def test_signals_are_counted_by_type(store: Store) -> None:
    await store.append_signals(
        [
            signal("s0", NOW_NS - SECOND_NS, signal_type=BUY),
            signal("s1", NOW_NS, signal_type=BUY),
            signal("s2", NOW_NS + 1 * SECOND_NS, signal_type=BUY, symbol="USDJPY"),
            signal("s3", NOW_NS + 2 * SECOND_NS, signal_type=SELL),
            signal("s4", NOW_NS + 3 * SECOND_NS, signal_type=HOLD, disposition=REJECTED),
            signal("s5", NOW_NS + 4 * SECOND_NS, signal_type=HOLD, disposition=SUPPRESSED,
                   symbol="USDJPY"),
            # Another user of the same company.
            signal("b1", NOW_NS, user_id="bob", signal_type=SELL),
        ]
    )  # fmt: skip

    assert await store.count_signals_by_type("acme", "alice", NOW_NS) == {BUY: 2, SELL: 1, HOLD: 2}
    assert await store.count_signals_by_type("acme", "alice", NOW_NS, "EURUSD") == {
        BUY: 1,
        SELL: 1,
        HOLD: 1,
    }
    assert await store.count_signals_by_type("acme", "alice", 0) == {BUY: 3, SELL: 1, HOLD: 2}
    assert await store.count_signals_by_type("acme", "alice", NOW_NS + 5 * SECOND_NS) == {}
    assert await store.count_signals_by_type("acme", "alice", 0, "GBPUSD") == {}
    assert await store.count_signals_by_type("acme", "bob", 0) == {SELL: 1}


async def test_executions_and_outcomes_belong_to_their_company(store: Store) -> None:
    # The same user, signal and execution ids in two companies are different things.
    acme_result = execution("exec-1", FILLED, company_id="acme", payload=b"acme's")
    globex_result = execution("exec-1", FILLED, company_id="globex", payload=b"globex's")
    acme_outcome = outcome("s1", company_id="acme", symbol="EURUSD")
    globex_outcome = dataclasses.replace(
        outcome("s1", company_id="globex", symbol="USDJPY"), outcome=LOSS
    )
    await store.append_signals([signal("s1", company_id="acme", signal_type=BUY)])
    await store.append_signals([signal("s1", company_id="globex", signal_type=SELL)])

    assert await store.record_execution(acme_result)
    # Not a re-send: globex's result is new.
    assert await store.record_execution(globex_result)
    await store.put_outcome(acme_outcome)
    await store.put_outcome(globex_outcome)

    assert await store.executions_for_signal("acme", "s1") == [acme_result]
    assert await store.executions_for_signal("globex", "s1") == [globex_result]
    assert await store.executions_for_signal("initech", "s1") == []
    assert await store.outcome("acme", "s1") == acme_outcome
    assert await store.outcome("globex", "s1") == globex_outcome
    assert await store.outcome("initech", "s1") is None
    assert await store.outcomes("acme", "alice", 0) == [acme_outcome]
    assert await store.outcomes("globex", "alice", 0) == [globex_outcome]
    assert await store.outcomes("initech", "alice", 0) == []
    assert await store.count_signals_by_type("acme", "alice", 0) == {BUY: 1}
    assert await store.count_signals_by_type("globex", "alice", 0) == {SELL: 1}
    assert await store.count_signals_by_type("initech", "alice", 0) == {}


async def test_executions_and_outcomes_survive_a_restart(backend: Backend) -> None:
    before = await backend.opened()
    results = [execution("exec-1", FILLED), execution("exec-1", CLOSED)]
    for record in results:
        await before.record_execution(record)
    stored = outcome("s1")
    await before.put_outcome(stored)
    await before.close()

    after = await backend.opened()

    assert await after.executions_for_signal("acme", "s1") == results
    assert not await after.record_execution(execution("exec-1", CLOSED, payload=b"late copy"))
    assert await after.outcome("acme", "s1") == stored
    assert await after.open_outcomes() == [stored]


async def test_a_database_from_before_executions_is_migrated(
    backend: Backend, monkeypatch: pytest.MonkeyPatch
) -> None:
    # An engine that knew the first migration only.
    with monkeypatch.context() as older:
        for module in (sqlite, postgres):
            known = module.migrations
            older.setattr(module, "migrations", lambda folder, known=known: known(folder)[:1])
        old = await backend.opened()
        revision = (await old.append_revision(change(user_layer(), 0))).revision
        await old.append_signals([signal("s1")])
        await old.close()
    assert await backend.query("SELECT version FROM schema_migrations") == [(1,)]

    new = await backend.opened()

    assert await backend.query("SELECT version FROM schema_migrations ORDER BY version") == [
        (version,) for version in EVERY_MIGRATION
    ]
    assert await new.current_revision(user_layer()) == revision
    assert await new.count_signals_by_type("acme", "alice", 0) == {BUY: 1}
    assert await new.record_execution(execution("exec-1", FILLED))
    await new.put_outcome(outcome("s1"))
    assert await new.open_outcomes() == [outcome("s1")]
