"""Signal history written in batches, off the decision path.

The pipeline hands each decided batch to `HistoryWriter.submit`, and the
prediction batch it came from to `keep_batch`, which only append to in-memory
queues; a background task writes the queue to the
store every `flush_interval_s` (sooner once `max_batch` records wait), at
most `max_batch` records per transaction. A decision never waits for the
database.

The price is durability: records live only in memory until their flush, so
a crash (or SIGKILL) loses at most the records of the last flush interval,
plus whatever piled up while the store was failing. A batch the store took
is complete: none is ever half-written. When the store fails, the records
stay queued and are retried at the next interval; beyond `max_pending`
queued records new ones are dropped and counted in `dropped` (prediction
batches in `dropped_batches`): never silently.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import itertools
import logging
from collections.abc import Sequence

from trading_engine.stores.base import PredictionBatchRecord, SignalRecord, Store, StoreError

_log = logging.getLogger(__name__)


class HistoryWriter:
    """Batches SignalRecords into Store.append_signals calls in the background."""

    def __init__(
        self,
        store: Store,
        flush_interval_s: float = 0.2,
        max_batch: int = 5_000,
        max_pending: int = 1_000_000,
        keep_batches: bool = True,
    ) -> None:
        if flush_interval_s <= 0 or max_batch < 1 or max_pending < 1:
            raise ValueError("flush_interval_s, max_batch and max_pending must be positive")
        self._store = store
        self._interval = flush_interval_s
        self._max_batch = max_batch
        self._max_pending = max_pending
        # Off, prediction batches are not kept: ExplainSignal then shows no prediction.
        self._keep_batches = keep_batches
        self._pending: collections.deque[SignalRecord] = collections.deque()
        # Written before the signals decided from them, so a stored signal finds its prediction.
        self._batches: collections.deque[PredictionBatchRecord] = collections.deque()
        self._written = 0
        self._dropped = 0
        self._dropped_batches = 0
        self._last_error: str | None = None
        # Set when a full batch waits (or on close): the task flushes before its interval ends.
        self._wake = asyncio.Event()
        # One writer at a time, so no record is taken twice.
        self._writing = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self._closed = False

    @property
    def pending(self) -> int:
        """Signal records submitted and not written yet."""
        return len(self._pending)

    @property
    def written(self) -> int:
        """Records the store has taken (replayed duplicates included)."""
        return self._written

    @property
    def dropped(self) -> int:
        """Records refused because `max_pending` were queued, or submitted after close."""
        return self._dropped

    @property
    def dropped_batches(self) -> int:
        """Prediction batches refused because `max_pending` were queued, or kept after close:
        their signals cannot be explained with their prediction, nor replayed from history."""
        return self._dropped_batches

    @property
    def last_error(self) -> str | None:
        """Why the store failed, while it keeps failing; None once a write succeeds."""
        return self._last_error

    def submit(self, records: Sequence[SignalRecord]) -> None:
        """Queue records for writing; returns at once, never raises for a full queue."""
        if self._closed:
            self._dropped += len(records)
            return
        room = self._max_pending - len(self._pending)
        if len(records) > room:
            self._dropped += len(records) - max(room, 0)
            records = records[: max(room, 0)]
        self._pending.extend(records)
        # While the store fails, retries keep to the interval instead.
        if len(self._pending) >= self._max_batch and self._last_error is None:
            self._wake.set()

    def keep_batch(self, record: PredictionBatchRecord) -> None:
        """Queue a prediction batch for writing; dropped and counted when the queue is full."""
        if not self._keep_batches:
            return
        if self._closed or len(self._batches) >= self._max_pending:
            self._dropped_batches += 1
            return
        self._batches.append(record)

    async def start(self) -> None:
        if self._task is None and not self._closed:
            self._task = asyncio.create_task(self._run(), name="history-writer")

    async def close(self) -> None:
        """Stop the background task, then write what is queued (best effort)."""
        if self._closed:
            return
        self._closed = True
        self._wake.set()
        if self._task is not None:
            await self._task
            self._task = None
        try:
            await self.flush()
        except StoreError as error:
            _log.error("history: %d signals not written at close: %s", self.pending, error)

    async def flush(self) -> None:
        """Write every record queued now; raises StoreError (keeping them queued) on failure."""
        async with self._writing:
            try:
                await self._write_batches()
            except StoreError as error:
                self._failing(error)
                raise
            remaining = len(self._pending)
            while remaining > 0:
                count = min(remaining, self._max_batch)
                batch = list(itertools.islice(self._pending, count))
                try:
                    await self._store.append_signals(batch)
                except StoreError as error:
                    self._failing(error)
                    raise
                # Records submitted meanwhile were appended behind the batch.
                for _ in range(count):
                    self._pending.popleft()
                self._written += count
                remaining -= count
                if self._last_error is not None:
                    _log.warning("history: writes recovered")
                    self._last_error = None

    def _failing(self, error: StoreError) -> None:
        if self._last_error is None:
            _log.warning(
                "history: writes failing, %d signals kept for retry: %s", len(self._pending), error
            )
        self._last_error = str(error)

    async def _write_batches(self) -> None:
        remaining = len(self._batches)
        while remaining > 0:
            count = min(remaining, self._max_batch)
            await self._store.append_prediction_batches(
                list(itertools.islice(self._batches, count))
            )
            for _ in range(count):
                self._batches.popleft()
            remaining -= count

    async def _run(self) -> None:
        while not self._closed:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._interval):
                    await self._wake.wait()
            self._wake.clear()
            # A failure was logged (once per streak) and the records stay queued.
            with contextlib.suppress(StoreError):
                await self.flush()
