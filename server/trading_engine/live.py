"""Live signals: each decided signal handed to the `StreamSignals` streams open for its user.

Publishing costs one dictionary lookup per batch while nobody watches the
user; the batch is parsed only for a user someone watches. A watcher that
falls `max_backlog` signals behind is ended with RESOURCE_EXHAUSTED rather
than buffered without bound or silently skipped: the engine never waits for
a slow reader, and a reader never believes it saw everything when it did not.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from typing import Any, Final

from tradeflow.trading.v1 import signal_pb2
from tradeflow.trading.v1 import trading_engine_service_pb2 as service_pb2
from trading_engine import errors
from trading_engine.core import instruments
from trading_engine.engine import DecidedBatch

DEFAULT_MAX_BACKLOG: Final = 10_000


class Watcher:
    """One open stream's queue of signals."""

    def __init__(self, max_backlog: int) -> None:
        self._queue: asyncio.Queue[signal_pb2.TradingSignal] = asyncio.Queue(max_backlog)
        self.overrun = False

    def offer(self, signals: list[signal_pb2.TradingSignal]) -> None:
        for signal in signals:
            try:
                self._queue.put_nowait(signal)
            except asyncio.QueueFull:
                # The reader learns of it once it has read what the queue holds.
                self.overrun = True
                return

    async def next(self) -> signal_pb2.TradingSignal:
        """The next signal; raises ResourceExhausted once the watcher fell too far behind."""
        if self.overrun and self._queue.empty():
            raise errors.ResourceExhausted(
                "this stream fell too far behind the signals and missed some; "
                "reconnect, and read GetSignalHistory for what was missed",
                reason="STREAM_OVERRUN",
            )
        return await self._queue.get()


class LiveSignals:
    def __init__(self, max_backlog: int = DEFAULT_MAX_BACKLOG) -> None:
        self._max_backlog = max_backlog
        # (company, user) -> the watchers of that user's signals.
        self._watchers: dict[tuple[str, str], set[Watcher]] = {}

    def publish(self, decided: DecidedBatch) -> None:
        """Hand a batch's signals decided now to the user's watchers, if any.

        Signals replayed for a prediction delivered again were shown the first time.
        """
        watchers = self._watchers.get((decided.company_id, decided.user_id))
        if watchers:
            fresh = {decision.signal_id for decision in decided.decisions}
            signals = [
                signal
                for signal in signal_pb2.TradingSignalBatch.FromString(decided.payload).signals
                if signal.signal_id in fresh
            ]
            for watcher in watchers:
                watcher.offer(signals)

    def publish_signal(self, company_id: str, user_id: str, signal: bytes) -> None:
        """Hand one serialized TradingSignal to the user's watchers, if any."""
        watchers = self._watchers.get((company_id, user_id))
        if watchers:
            parsed = [signal_pb2.TradingSignal.FromString(signal)]
            for watcher in watchers:
                watcher.offer(parsed)

    @contextlib.contextmanager
    def watch(self, company_id: str, user_id: str) -> Iterator[Watcher]:
        """A watcher of the user's signals decided from now on, until the block ends."""
        key = (company_id, user_id)
        watcher = Watcher(self._max_backlog)
        self._watchers.setdefault(key, set()).add(watcher)
        try:
            yield watcher
        finally:
            watchers = self._watchers[key]
            watchers.discard(watcher)
            if not watchers:
                del self._watchers[key]


# What a signal stream sends: the filter now in force (an acknowledgement), or a signal.
Event = service_pb2.SignalFilter | signal_pb2.TradingSignal


def filter_violations(signal_filter: service_pb2.SignalFilter) -> list[errors.FieldViolation]:
    violations = [
        errors.FieldViolation(f"filter.symbols[{index}]", f"unknown instrument {symbol!r}")
        for index, symbol in enumerate(signal_filter.symbols)
        if instruments.lookup(symbol) is None
    ]
    violations += [
        errors.FieldViolation(f"filter.signal_types[{index}]", f"unknown signal type {value}")
        for index, value in enumerate(signal_filter.signal_types)
        if value == 0 or value not in signal_pb2.SignalType.values()
    ]
    return violations


def matches(signal_filter: service_pb2.SignalFilter, signal: signal_pb2.TradingSignal) -> bool:
    if not signal_filter.include_non_actionable and (
        signal.disposition != signal_pb2.SIGNAL_DISPOSITION_ACTIONABLE
    ):
        return False
    if signal_filter.symbols and signal.symbol not in signal_filter.symbols:
        return False
    return not signal_filter.signal_types or signal.signal_type in signal_filter.signal_types


async def filtered_signals(
    watcher: Watcher,
    filters: asyncio.Queue[service_pb2.SignalFilter | BaseException | None],
) -> AsyncIterator[Event]:
    """Signals matching the current filter; each new filter is acknowledged, then applies.

    Nothing is sent before the first filter. An exception put in `filters` ends
    the stream with it; None means no more filters will come (the current one
    goes on).
    """
    current = await filters.get()
    if isinstance(current, BaseException):
        raise current
    if current is None:
        return
    yield current
    more_filters = True
    while True:
        arriving = asyncio.create_task(watcher.next())
        waits: set[asyncio.Task[Any]] = {arriving}
        replacing = asyncio.create_task(filters.get()) if more_filters else None
        if replacing is not None:
            waits.add(replacing)
        try:
            done, _ = await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            # A get cancelled before it took an item leaves the item in its queue.
            for task in waits:
                task.cancel()
        if arriving in done:
            signal = arriving.result()
            if matches(current, signal):
                yield signal
        if replacing is not None and replacing in done:
            replaced = replacing.result()
            if isinstance(replaced, BaseException):
                raise replaced
            if replaced is None:
                more_filters = False
            else:
                current = replaced
                yield current
