"""Kafka output in order, kept in a durable file while Kafka cannot take it.

Every message gets a sequence number when it is handed in. It is sent from
memory while Kafka acknowledges; when a send fails, or the queue is full, it
goes to the outbox file instead, keyed by that number, and the file is sent in
number order before anything newer once Kafka is back. A message counts as
handed off (its input's Kafka offset may be committed) once Kafka has
acknowledged it or it is in the file.

A send that timed out may still have reached Kafka; it is sent again from the
file, so a consumer can see it twice under the same message id. Idempotent
production, where the broker has it, removes that within one producer session.

A message Kafka refuses for good (too large for the broker, say) would block
everything behind it forever if it were kept in line: it is moved to the
file's quarantine table instead, counted, and reported in health, and what
follows it flows.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import json
import logging
import sqlite3
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Final, Protocol

from trading_engine.bus.envelope import Outbound

_log = logging.getLogger(__name__)

_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS outbox (
    sequence INTEGER PRIMARY KEY,
    topic TEXT NOT NULL,
    message_id TEXT NOT NULL,
    key BLOB NOT NULL,
    value BLOB NOT NULL,
    headers TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS quarantine (
    sequence INTEGER PRIMARY KEY,
    topic TEXT NOT NULL,
    message_id TEXT NOT NULL,
    key BLOB NOT NULL,
    value BLOB NOT NULL,
    headers TEXT NOT NULL,
    error TEXT NOT NULL
);
"""

Receipt = Callable[[], None]


class Producer(Protocol):
    """Sends one message; the returned future resolves when Kafka acknowledges it."""

    async def send(self, topic: str, message: Outbound) -> asyncio.Future[object]: ...

    def refuses_for_good(self, error: Exception) -> bool:
        """Whether `error` (from `send` or its future) means this message can never be sent."""
        ...


@dataclasses.dataclass(slots=True)
class _Item:
    sequence: int
    topic: str
    # None: nothing to send, only a receipt to fire in turn.
    message: Outbound | None
    receipt: Receipt | None


class DurableOutbox:
    """Messages waiting for Kafka, in a SQLite file that survives a crash of the process."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=0)
        # One engine per outbox: two would send and delete each other's messages.
        self._db.execute("PRAGMA locking_mode=EXCLUSIVE")
        try:
            # WAL with synchronous=NORMAL: a committed row survives the process dying.
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(_SCHEMA)
            with self._transaction():
                pass  # takes the exclusive lock now, not at the first outage
        except sqlite3.OperationalError as error:
            self._db.close()
            raise OSError(
                f"the Kafka outbox {path} is in use by another engine ({error}); "
                "give each engine a data directory of its own (they may share a store "
                "through --store-url)"
            ) from None
        count, last = self._db.execute(
            "SELECT count(*), coalesce(max(sequence), 0) FROM outbox"
        ).fetchone()
        self.pending: int = count
        self.last_sequence: int = max(last, self._quarantined_last())
        self.quarantined: int = self._db.execute("SELECT count(*) FROM quarantine").fetchone()[0]

    def _quarantined_last(self) -> int:
        return int(
            self._db.execute("SELECT coalesce(max(sequence), 0) FROM quarantine").fetchone()[0]
        )

    def append(self, items: Sequence[_Item]) -> None:
        rows = [
            (
                item.sequence,
                item.topic,
                item.message.message_id,
                item.message.key,
                item.message.data,
                json.dumps(item.message.headers),
            )
            for item in items
            if item.message is not None
        ]
        if rows:
            with self._transaction():
                self._db.executemany("INSERT INTO outbox VALUES (?, ?, ?, ?, ?, ?)", rows)
            self.pending += len(rows)

    def oldest(self, limit: int) -> list[_Item]:
        rows = self._db.execute(
            "SELECT sequence, topic, message_id, key, value, headers FROM outbox "
            "ORDER BY sequence LIMIT ?",
            (limit,),
        ).fetchall()
        return [
            _Item(
                sequence,
                topic,
                Outbound(
                    message_id,
                    key,
                    value,
                    tuple((name, text) for name, text in json.loads(headers)),
                ),
                None,
            )
            for sequence, topic, message_id, key, value, headers in rows
        ]

    def quarantine(self, refused: Sequence[tuple[_Item, str]]) -> None:
        """Keep messages Kafka refuses for good aside, with the error, out of the line."""
        rows = [
            (
                item.sequence,
                item.topic,
                item.message.message_id,
                item.message.key,
                item.message.data,
                json.dumps(item.message.headers),
                error,
            )
            for item, error in refused
            if item.message is not None
        ]
        with self._transaction():
            self._db.executemany("INSERT INTO quarantine VALUES (?, ?, ?, ?, ?, ?, ?)", rows)
            deleted = self._db.executemany(
                "DELETE FROM outbox WHERE sequence = ?", [(row[0],) for row in rows]
            ).rowcount
        self.pending -= deleted
        self.quarantined += len(rows)

    def remove(self, sequences: Sequence[int]) -> None:
        with self._transaction():
            deleted = self._db.executemany(
                "DELETE FROM outbox WHERE sequence = ?", [(s,) for s in sequences]
            ).rowcount
        self.pending -= deleted

    def recount(self) -> None:
        """Count the file's rows again; `pending` said there were some and there were none."""
        counted = self._db.execute("SELECT count(*) FROM outbox").fetchone()[0]
        _log.error("the Kafka outbox counted %d messages but holds %d", self.pending, counted)
        self.pending = counted

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[None]:
        """All rows or none, so `pending` always counts what the file holds."""
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def close(self) -> None:
        self._db.close()


class KafkaOutput:
    """The single, ordered way out to Kafka."""

    def __init__(
        self, outbox: DurableOutbox, capacity: int, window: int, retry_seconds: float
    ) -> None:
        self._outbox = outbox
        self._capacity = capacity
        self._window = window
        self._retry_seconds = retry_seconds
        self._queue: collections.deque[_Item] = collections.deque()
        self._ready = asyncio.Event()
        # Set while nothing waits in memory (the file may still hold messages).
        self._idle = asyncio.Event()
        self._idle.set()
        self._sequence = outbox.last_sequence
        self._producer: Producer | None = None
        # Sent and not yet acknowledged; kept in the file if the process stops meanwhile.
        self._in_flight: list[_Item] = []
        self.spilled = 0
        self.last_error = ""
        self.last_refusal = ""

    def attach(self, producer: Producer | None) -> None:
        """The producer to send with; None while Kafka is unreachable."""
        self._producer = producer
        self._ready.set()

    @property
    def pending(self) -> int:
        """Messages waiting to be sent: in memory or in the file."""
        return len(self._queue) + self._outbox.pending

    @property
    def unacknowledged(self) -> int:
        """Messages handed in that Kafka has not acknowledged yet: waiting or being sent."""
        return len(self._in_flight) + self.pending

    def put(self, topic: str, message: Outbound, receipt: Receipt | None = None) -> None:
        """Hand a message in; `receipt` fires once it is handed off. Never waits."""
        self._hand_in(topic, message, receipt)

    def after_pending(self, receipt: Receipt) -> None:
        """Fire `receipt` once everything handed in before it is handed off."""
        self._hand_in("", None, receipt)

    def _hand_in(self, topic: str, message: Outbound | None, receipt: Receipt | None) -> None:
        self._sequence += 1
        item = _Item(self._sequence, topic, message, receipt)
        self._idle.clear()
        if self._outbox.pending or len(self._queue) >= self._capacity:
            # Kafka is behind: keep this message, and everything queued, in the file.
            spilled = [*self._queue, item]
            self._spill(spilled)
            self._queue.clear()
            self._fire(spilled)
        else:
            self._queue.append(item)
        self._ready.set()

    async def run(self) -> None:
        while True:
            if not self._queue:
                self._idle.set()
            if self._outbox.pending:
                await self._send_outbox()
                continue
            if not self._queue:
                self._ready.clear()
                await self._ready.wait()
                continue
            count = min(self._window, len(self._queue))
            self._in_flight = [self._queue.popleft() for _ in range(count)]
            failed = await self._send(self._in_flight)
            waiting: list[_Item] = []
            if failed:
                # Kafka is away: what waits behind the failures goes to the file with them.
                waiting = [*self._queue]
                self._spill([*failed, *waiting])
                self._queue.clear()
            window, self._in_flight = self._in_flight, []
            self._fire(window)
            self._fire(waiting)

    async def drain(self, seconds: float) -> None:
        """Wait up to `seconds` for what was handed in to be sent or in the file."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._idle.wait(), seconds)

    def close(self) -> None:
        """Keep whatever was not acknowledged in the file for the next start; `run` is stopped."""
        unsent = [*self._in_flight, *self._queue]
        self._in_flight, self._queue = [], collections.deque()
        self._spill(unsent)
        self._fire(unsent)
        self._outbox.close()

    async def _send_outbox(self) -> None:
        if self._producer is None:
            await asyncio.sleep(self._retry_seconds)
            return
        batch = self._outbox.oldest(self._window)
        if not batch:
            self._outbox.recount()
            return
        failed = {item.sequence for item in await self._send(batch)}
        # What Kafka acknowledged leaves the file; sending it again would duplicate it.
        self._outbox.remove([item.sequence for item in batch if item.sequence not in failed])
        if failed:
            await asyncio.sleep(self._retry_seconds)
        elif not self._outbox.pending:
            _log.info("Kafka outbox flushed; sending directly again")

    async def _send(self, items: Sequence[_Item]) -> list[_Item]:
        """Send in order; the items Kafka did not acknowledge, in order. Items Kafka refuses
        for good are quarantined instead (and count as handed off)."""
        producer = self._producer
        if producer is None:
            return [item for item in items if item.message is not None]
        pending: list[tuple[_Item, asyncio.Future[object] | None]] = []
        failed: list[_Item] = []
        refused: list[tuple[_Item, str]] = []
        away = False
        for item in items:
            if item.message is None:
                continue
            if away:
                # The producer refused one already (no metadata: the broker is away).
                pending.append((item, None))
                continue
            try:
                pending.append((item, await producer.send(item.topic, item.message)))
            except Exception as error:  # any failure keeps the message for later
                if producer.refuses_for_good(error):
                    refused.append((item, _describe(error)))
                    continue
                self._note_failure(error)
                pending.append((item, None))
                away = True
        for item, future in pending:
            if future is None:
                failed.append(item)
                continue
            try:
                await future
            except Exception as error:
                if producer.refuses_for_good(error):
                    refused.append((item, _describe(error)))
                    continue
                self._note_failure(error)
                failed.append(item)
        if refused:
            self._quarantine(refused)
        return failed

    def _quarantine(self, refused: list[tuple[_Item, str]]) -> None:
        self._outbox.quarantine(refused)
        for item, error in refused:
            assert item.message is not None
            _log.error(
                "Kafka refuses message %s for good (%s); it is kept in the outbox's quarantine "
                "table and what follows it is sent",
                item.message.message_id,
                error,
            )
        self.last_refusal = refused[-1][1]

    @property
    def quarantined(self) -> int:
        """Messages Kafka refused for good, kept aside in the outbox file."""
        return self._outbox.quarantined

    def _spill(self, items: Sequence[_Item]) -> None:
        self._outbox.append(items)
        self.spilled += sum(1 for item in items if item.message is not None)

    @staticmethod
    def _fire(items: Sequence[_Item]) -> None:
        for item in items:
            if item.receipt is not None:
                item.receipt()

    def _note_failure(self, error: Exception) -> None:
        message = _describe(error)
        if message != self.last_error:
            _log.warning("Kafka send failed, keeping output in the outbox: %s", message)
        self.last_error = message


def _describe(error: Exception) -> str:
    return f"{type(error).__name__}: {error}"
