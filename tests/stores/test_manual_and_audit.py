"""Manual signals are stored once per request id; audit records come back newest first."""

from __future__ import annotations

import dataclasses
import json

import pytest

from tests.stores.builders import NOW_NS
from tests.stores.conftest import Backend
from trading_engine.stores.base import AuditRecord, ManualSignal, Store


def manual(request_id: str, signal_id: str, company_id: str = "acme") -> ManualSignal:
    return ManualSignal(
        company_id=company_id,
        request_id=request_id,
        signal_id=signal_id,
        user_id="alice",
        injected_by="admin-1",
        injected_at_ns=NOW_NS,
        payload=f"manual {signal_id}".encode(),
    )


def audit(action: str, company_id: str = "acme", at_ns: int = NOW_NS) -> AuditRecord:
    return AuditRecord(
        company_id=company_id,
        actor="admin-1",
        action=action,
        subject_user_id="alice",
        at_ns=at_ns,
        detail=json.dumps({"action": action}),
    )


async def test_a_manual_signal_is_stored_once_per_request_id(store: Store) -> None:
    first = await store.record_manual_signal(manual("req-1", "manual-a"))

    # A retry of the same request (the caller minted a new signal id) gets the stored one.
    retried = await store.record_manual_signal(manual("req-1", "manual-b"))
    another = await store.record_manual_signal(manual("req-2", "manual-c"))

    assert first == manual("req-1", "manual-a")
    assert retried == first
    assert another.signal_id == "manual-c"


async def test_manual_request_ids_are_scoped_to_one_company(store: Store) -> None:
    await store.record_manual_signal(manual("req-1", "acme-signal"))

    globex = await store.record_manual_signal(manual("req-1", "globex-signal", "globex"))

    assert globex.signal_id == "globex-signal"
    assert await store.manual_signal("acme", "req-1") == manual("req-1", "acme-signal")
    assert await store.manual_signal("globex", "req-1") == globex
    assert await store.manual_signal("initech", "req-1") is None


async def test_a_manual_signal_needs_a_request_id(store: Store) -> None:
    with pytest.raises(ValueError, match="request_id"):
        await store.record_manual_signal(manual("", "manual-a"))


async def test_audit_records_come_back_newest_first(store: Store) -> None:
    for number in range(5):
        await store.append_audit(audit(f"strategy.update.{number}", at_ns=NOW_NS + number))

    newest = await store.list_audit("acme", 3)

    assert [record.action for record in newest] == [
        "strategy.update.4",
        "strategy.update.3",
        "strategy.update.2",
    ]
    assert newest[0] == audit("strategy.update.4", at_ns=NOW_NS + 4)


async def test_an_audit_record_keeps_the_roles_the_reason_and_the_values_before_and_after(
    store: Store,
) -> None:
    record = dataclasses.replace(
        audit("strategy.update"),
        actor_roles=("admin", "risk"),
        reason="fewer, surer signals",
        old_values=json.dumps({"min_confidence_threshold": 0.7}),
        new_values=json.dumps({"min_confidence_threshold": 0.75, "duplicate_window": "600s"}),
    )

    await store.append_audit(record)

    assert await store.list_audit("acme", 1) == [record]


async def test_an_audit_record_stored_before_the_values_were_kept_reads_back_without_them(
    backend: Backend,
) -> None:
    store = await backend.opened()
    await backend.query(
        "INSERT INTO audit_log (company_id, actor, action, subject_user_id, at_ns, detail) "
        "VALUES ('acme', 'admin-1', 'trading_state.set', '', 1, "
        '\'{"state": "halted", "reason": "NFP"}\')'
    )

    (record,) = await store.list_audit("acme", 10)

    assert (record.actor_roles, record.reason) == ((), "")
    assert (record.old_values, record.new_values) == ("{}", "{}")
    assert json.loads(record.detail) == {"state": "halted", "reason": "NFP"}
