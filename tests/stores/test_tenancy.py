"""Nothing one company stores is ever returned to another."""

from __future__ import annotations

from tests.stores.builders import change, company_layer, signal, user_layer
from trading_engine.stores.base import AuditRecord, ManualSignal, SignalQuery, Store


async def test_strategy_layers_belong_to_their_company(store: Store) -> None:
    acme_user = (await store.append_revision(change(user_layer("acme", "alice"), 0))).revision
    acme_company = (await store.append_revision(change(company_layer("acme"), 0))).revision

    # The same user id in another company is another user.
    assert await store.current_revision(user_layer("globex", "alice")) is None
    assert await store.current_revision(company_layer("globex")) is None
    assert await store.revision(user_layer("globex", "alice"), acme_user.version) is None
    assert await store.revision(company_layer("globex"), acme_company.version) is None
    assert await store.list_revisions(user_layer("globex", "alice"), None, 10) == []


async def test_signal_history_belongs_to_its_company(store: Store) -> None:
    await store.append_signals([signal("shared-id", company_id="acme", payload=b"acme's")])
    # The same signal id in another company is another signal, not a replay.
    await store.append_signals([signal("shared-id", company_id="globex", payload=b"globex's")])

    acme = await store.query_signals(SignalQuery("acme", "alice"))
    globex = await store.query_signals(SignalQuery("globex", "alice"))
    stranger = await store.query_signals(SignalQuery("initech", "alice"))

    assert [record.payload for record in acme] == [b"acme's"]
    assert [record.payload for record in globex] == [b"globex's"]
    assert stranger == []
    found = await store.signal("globex", "shared-id")
    assert found is not None
    assert found.payload == b"globex's"
    assert await store.signal("initech", "shared-id") is None


async def test_manual_signals_and_audit_belong_to_their_company(store: Store) -> None:
    stored = ManualSignal("acme", "req-1", "acme-signal", "alice", "admin-1", 1, b"acme's")
    await store.record_manual_signal(stored)
    await store.append_audit(AuditRecord("acme", "admin-1", "signal.inject", "alice", 1, "{}"))

    globex = await store.record_manual_signal(
        ManualSignal("globex", "req-1", "globex-signal", "alice", "admin-2", 2, b"globex's")
    )

    assert globex.payload == b"globex's"
    assert await store.list_audit("globex", 10) == []
    assert [record.action for record in await store.list_audit("acme", 10)] == ["signal.inject"]
