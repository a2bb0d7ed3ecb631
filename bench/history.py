"""Signal-history benchmarks (DESIGN.md §2: history writes never block a decision).
Run with `python -m bench.history`.

One JSON line per backend (SQLite in a temporary folder, PostgreSQL in a
temporary schema), holding:

- value: sustained history writes in signals per second. The engine's own
  signals (real TradingSignals, trace included, about 1.5 KB each) are
  submitted to a HistoryWriter in batches of ten, as the pipeline hands them
  over, and timed from the first submit until the store holds the last one.
  Budget 20,000 signals/s: the end-to-end throughput with risk checks on.
- decide_idle / decide_writing: DecisionEngine.decide per batch of ten (µs),
  in the same process and event loop, with the writer idle and while it
  drains a full backlog as fast as it can.
- loop_wait_idle / loop_wait_writing: how long a decision that is ready to
  run waits for the event loop (µs): the time the writer's own work (batching,
  encoding rows) holds the loop, which a decision arriving then pays on top.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import statistics
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import asyncpg

from bench import workload
from tradeflow.trading.v1 import signal_pb2
from trading_engine.engine import DecisionEngine
from trading_engine.runtime import tune_runtime
from trading_engine.stores.base import SignalRecord, Store, StoreError
from trading_engine.stores.history import HistoryWriter
from trading_engine.stores.postgres import PostgresStore
from trading_engine.stores.sqlite import SqliteStore
from trading_engine.tenancy import Caller

WRITES_BUDGET = 20_000  # signals/s
DEFAULT_POSTGRES_URL = os.environ.get(
    "TRADING_ENGINE_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)

# A SignalRecord without its company: user, id, time, symbol, type, disposition, payload.
_Signal = tuple[str, str, int, str, int, int, bytes]


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.history", description=__doc__)
    parser.add_argument("--signals", type=int, default=200_000, help="signals to write")
    parser.add_argument("--postgres-url", default=DEFAULT_POSTGRES_URL, help="database to use")
    parser.add_argument(
        "--decisions", type=int, default=6000, help="batches decided with the writer idle"
    )
    parser.add_argument(
        "--backends", nargs="+", default=["sqlite", "postgresql"], help="backends to measure"
    )
    args = parser.parse_args()
    data = workload.batches(args.signals // 10)
    callers = workload.callers(data)
    signals = decided_signals(data, callers)
    tune_runtime()
    for backend in args.backends:
        result = asyncio.run(
            measure(backend, args.postgres_url, signals, data, callers, args.decisions)
        )
        print(json.dumps(result), flush=True)


def decided_signals(data: list[bytes], callers: list[Caller]) -> list[list[_Signal]]:
    """What the engine decides for each batch, as the signals history would keep."""
    engine = DecisionEngine()
    batches = []
    for index, encoded in enumerate(data):
        decided = engine.decide(
            encoded, workload.START_NS + index * workload.STEP_NS, callers[index]
        )
        batch = signal_pb2.TradingSignalBatch.FromString(decided.payload)
        batches.append(
            [
                (
                    signal.user_id, signal.signal_id, signal.generated_at.ToNanoseconds(),
                    signal.symbol, int(signal.signal_type), int(signal.disposition),
                    signal.SerializeToString(),
                )
                for signal in batch.signals
            ]
        )  # fmt: skip
    return batches


def records(signals: list[list[_Signal]], company_id: str) -> list[list[SignalRecord]]:
    return [[SignalRecord(company_id, *signal) for signal in batch] for batch in signals]


async def measure(
    backend: str,
    postgres_url: str,
    signals: list[list[_Signal]],
    data: list[bytes],
    callers: list[Caller],
    idle_decisions: int,
) -> dict[str, object]:
    name = f"history_writes_{backend}"
    try:
        async with _store(backend, postgres_url) as store:
            writer = HistoryWriter(store)
            await writer.start()
            try:
                rate = await _sustained_writes(writer, records(signals, "bench-throughput"))
                idle = await _decisions(data[:idle_decisions], callers, writer, lambda: True)
                writer.submit([r for batch in records(signals, "bench-latency") for r in batch])
                writing = await _decisions(data, callers, writer, lambda: writer.pending > 0)
            finally:
                await writer.close()
    except (StoreError, OSError, asyncpg.PostgresError) as error:
        return {"name": name, "unit": "signals/s", "error": str(error)}
    payloads = [len(signal[-1]) for batch in signals for signal in batch]
    return {
        "name": name,
        "unit": "signals/s",
        "value": round(rate),
        "budget": WRITES_BUDGET,
        "ratio_to_budget": round(rate / WRITES_BUDGET, 2),
        "signals": len(payloads),
        "payload_bytes_mean": round(statistics.fmean(payloads)),
        "dropped": writer.dropped,
        "decide_idle": _percentiles(idle[0]),
        "decide_writing": _percentiles(writing[0]),
        "loop_wait_idle": _percentiles(idle[1]),
        "loop_wait_writing": _percentiles(writing[1]),
    }


async def _sustained_writes(writer: HistoryWriter, batches: list[list[SignalRecord]]) -> float:
    started = time.perf_counter()
    for index, batch in enumerate(batches):
        writer.submit(batch)
        if index % 100 == 0:
            # Batches arrive over time: the writer's task gets the loop in between.
            await asyncio.sleep(0)
    await writer.flush()
    return sum(map(len, batches)) / (time.perf_counter() - started)


async def _decisions(
    data: list[bytes], callers: list[Caller], writer: HistoryWriter, go_on: Callable[[], bool]
) -> tuple[list[int], list[int]]:
    """Decide batches one per loop turn while `go_on()`; each decide's and each wait's ns."""
    engine = DecisionEngine()
    clock = time.perf_counter_ns
    decide: list[int] = []
    waits: list[int] = []
    for index, encoded in enumerate(data):
        if not go_on():
            break
        yielded = clock()
        # As a transport would between two batches: other tasks (the writer) run now.
        await asyncio.sleep(0)
        started = clock()
        engine.decide(encoded, workload.START_NS + index * workload.STEP_NS, callers[index])
        decide.append(clock() - started)
        waits.append(started - yielded)
    # The backlog may outlast the decisions; it is no longer measured.
    await writer.flush()
    return decide, waits


@asynccontextmanager
async def _store(backend: str, postgres_url: str) -> AsyncIterator[Store]:
    if backend == "sqlite":
        with tempfile.TemporaryDirectory(prefix="bench-history-") as folder:
            sqlite = SqliteStore(Path(folder) / "history.db")
            await sqlite.open()
            try:
                yield sqlite
            finally:
                await sqlite.close()
        return
    schema = f"bench_history_{secrets.token_hex(4)}"
    postgres = PostgresStore(postgres_url, schema)
    await postgres.open()
    try:
        yield postgres
    finally:
        await postgres.close()
        admin = await asyncpg.connect(postgres_url)
        try:
            await admin.execute(f"DROP SCHEMA {schema} CASCADE")
        finally:
            await admin.close()


def _percentiles(samples: list[int]) -> dict[str, float]:
    # The first 5% warm caches and the allocator; they are not the steady state.
    steady = sorted(samples[len(samples) // 20 :])
    return {
        "p50": round(steady[len(steady) // 2] / 1000, 2),
        "p99": round(steady[int(len(steady) * 0.99)] / 1000, 2),
        "max": round(steady[-1] / 1000, 2),
        "samples": len(steady),
    }


if __name__ == "__main__":
    main()
