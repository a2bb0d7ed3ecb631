"""What is stored stays stored: across a clean restart, and across a SIGKILL mid-write."""

from __future__ import annotations

import asyncio
import sys

from tests.stores import killable_writer
from tests.stores.builders import change, signal, user_layer
from tests.stores.conftest import Backend
from tests.support import ROOT
from trading_engine.stores.base import AuditRecord, ManualSignal, SignalQuery


async def test_everything_survives_a_restart(backend: Backend) -> None:
    before = await backend.opened()
    revision = (await before.append_revision(change(user_layer(), 0, request_id="r1"))).revision
    await before.append_signals([signal("s1"), signal("s2")])
    manual = await before.record_manual_signal(
        ManualSignal("acme", "req-1", "m1", "alice", "admin-1", 1, b"manual")
    )
    await before.append_audit(AuditRecord("acme", "admin-1", "strategy.update", "alice", 1, "{}"))
    await before.close()

    after = await backend.opened()

    assert await after.current_revision(user_layer()) == revision
    assert (await after.append_revision(change(user_layer(), 0, request_id="r1"))).replayed
    assert len(await after.query_signals(SignalQuery("acme", "alice"))) == 2
    assert (
        await after.record_manual_signal(
            ManualSignal("acme", "req-1", "m2", "alice", "admin-1", 2, b"retry")
        )
        == manual
    )
    assert [record.action for record in await after.list_audit("acme", 10)] == ["strategy.update"]


async def test_a_killed_writer_leaves_only_whole_batches(backend: Backend) -> None:
    await (await backend.opened()).close()  # migrated, so the writer starts writing at once
    writer = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.stores.killable_writer", *backend.target,
        cwd=ROOT, stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    assert writer.stdout is not None
    committed = -1
    try:
        while True:
            line = await asyncio.wait_for(writer.stdout.readline(), timeout=20)
            assert line, f"the writer exited early with status {await writer.wait()}"
            step, batch = line.split()
            if step == b"committed":
                committed = int(batch)
            elif int(batch) >= 5:
                break
        # A few milliseconds into the transaction of batch 5 (or later).
        await asyncio.sleep(0.003)
    finally:
        writer.kill()
        await writer.wait()

    store = await backend.opened()

    size = killable_writer.BATCH_SIZE
    counts = [
        len(
            await store.query_signals(
                SignalQuery(killable_writer.COMPANY, f"batch-{batch}", limit=size + 1)
            )
        )
        for batch in range(committed + 20)
    ]
    assert counts[: committed + 1] == [size] * (committed + 1), "a committed batch was lost"
    assert set(counts) <= {0, size}, f"a batch was torn: {counts}"
    # The store still takes writes.
    await store.append_signals([signal("after-the-crash", company_id=killable_writer.COMPANY)])
    assert await store.signal(killable_writer.COMPANY, "after-the-crash") is not None
