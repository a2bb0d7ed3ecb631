"""HistoryWriter: decisions hand signals over without waiting; the writer gets them stored."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import pytest

from tests.stores.builders import NOW_NS, signal
from tests.stores.conftest import Backend
from trading_engine.stores.base import PredictionBatchRecord, SignalQuery, SignalRecord, Store
from trading_engine.stores.history import HistoryWriter


def _batches(count: int, size: int = 10, user_id: str = "alice") -> list[list[SignalRecord]]:
    """`count` decided batches of `size` signals each, one nanosecond apart."""
    return [
        [signal(f"{user_id}-{b}-{n}", NOW_NS + b * size + n, user_id=user_id) for n in range(size)]
        for b in range(count)
    ]


async def _until(condition: Callable[[], bool], what: str) -> None:
    """Give the writer's background task up to 10 s to make `condition` true."""
    for _ in range(1000):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"the writer never got to: {what}")


async def _stored(store: Store, user_id: str = "alice") -> int:
    return len(await store.query_signals(SignalQuery("acme", user_id, limit=100_000)))


async def test_submitted_signals_are_stored_by_flush_and_by_close(store: Store) -> None:
    writer = HistoryWriter(store, flush_interval_s=60)
    await writer.start()
    for batch in _batches(3):
        writer.submit(batch)
    assert writer.pending == 30

    await writer.flush()
    assert (writer.pending, writer.written, await _stored(store)) == (0, 30, 30)

    for batch in _batches(2, user_id="bob"):
        writer.submit(batch)
    await writer.close()
    assert (writer.pending, writer.written, await _stored(store, "bob")) == (0, 50, 20)


async def test_the_background_task_writes_without_being_asked(store: Store) -> None:
    writer = HistoryWriter(store, flush_interval_s=0.02, max_batch=25)
    await writer.start()
    try:
        for batch in _batches(10):
            writer.submit(batch)
        await _until(lambda: writer.written == 100, "100 written")
    finally:
        await writer.close()

    assert await _stored(store) == 100
    assert (writer.pending, writer.dropped, writer.last_error) == (0, 0, None)


async def test_submit_does_not_wait_for_a_slow_store(backend: Backend) -> None:
    store = await backend.opened()
    writer = HistoryWriter(store, flush_interval_s=60)
    writer.submit(_batches(1)[0])
    async with backend.hold_write_lock():
        # The write waits for the lock another connection holds.
        flushing = asyncio.create_task(writer.flush())
        await asyncio.sleep(0.2)
        started = time.perf_counter()
        for batch in _batches(100, user_id="bob"):
            writer.submit(batch)
        submitting = time.perf_counter() - started
        assert not flushing.done()
        assert writer.pending == 1010
    await flushing
    await writer.flush()

    # 1,000 records queued in a fraction of the time the store was stuck.
    assert submitting < 0.1
    assert (writer.written, await _stored(store), await _stored(store, "bob")) == (1010, 10, 1000)


async def test_signals_beyond_max_pending_are_dropped_and_counted(store: Store) -> None:
    writer = HistoryWriter(store, flush_interval_s=60, max_pending=25)

    for batch in _batches(3):
        writer.submit(batch)
    await writer.close()

    assert (writer.pending, writer.written, writer.dropped) == (0, 25, 5)
    assert await _stored(store) == 25
    writer.submit(_batches(1)[0])
    assert writer.dropped == 15, "signals submitted after close are counted as dropped"


async def test_prediction_batches_beyond_max_pending_are_dropped_and_counted(
    store: Store,
) -> None:
    writer = HistoryWriter(store, flush_interval_s=60, max_pending=2)
    kept = [
        PredictionBatchRecord("acme", f"batch-{n}", "alice", NOW_NS, b"batch") for n in range(3)
    ]

    for record in kept:
        writer.keep_batch(record)
    await writer.close()
    writer.keep_batch(kept[0])

    # Two written, one refused for room and one after close: each counted, none silently.
    assert writer.dropped_batches == 2
    found = [
        await store.prediction_batches_decided_at("acme", "alice", f"batch-{n}", NOW_NS)
        for n in range(3)
    ]
    assert found == [[kept[0]], [kept[1]], []]


async def test_signals_wait_out_a_store_failure_and_are_written_after_it(
    backend: Backend,
) -> None:
    store = await backend.opened()
    writer = HistoryWriter(store, flush_interval_s=0.02)
    await writer.start()
    try:
        # Someone renames the table away: every write fails.
        await backend.query("ALTER TABLE signals RENAME TO signals_away")
        writer.submit(_batches(1)[0])
        await _until(lambda: writer.last_error is not None, "a failed write")
        writer.submit(_batches(2, user_id="bob")[1])
        await asyncio.sleep(0.1)  # a few more failing intervals
        assert "signals" in (writer.last_error or "")
        assert (writer.pending, writer.written, writer.dropped) == (20, 0, 0)

        await backend.query("ALTER TABLE signals_away RENAME TO signals")
        await _until(lambda: writer.pending == 0, "nothing pending")
    finally:
        await writer.close()

    assert (writer.written, writer.last_error) == (20, None)
    assert (await _stored(store), await _stored(store, "bob")) == (10, 10)


@pytest.mark.parametrize("keep", [True, False])
async def test_prediction_batches_are_written_before_their_signals_unless_switched_off(
    backend: Backend, keep: bool
) -> None:
    store = await backend.opened()
    writer = HistoryWriter(store, flush_interval_s=60, keep_batches=keep)
    batch = PredictionBatchRecord("acme", "batch-1", "alice", NOW_NS, b"\x0a\x07batch-1")
    writer.keep_batch(batch)
    writer.submit(_batches(1)[0])

    await writer.flush()

    found = await store.prediction_batches_decided_at("acme", "alice", "batch-1", NOW_NS)
    assert found == ([batch] if keep else [])
    assert await _stored(store) == 10
