"""Appends batches of signals to a store until it is killed (tests/stores/test_persistence.py).

    python -m tests.stores.killable_writer sqlite PATH
    python -m tests.stores.killable_writer postgresql URL SCHEMA

Batch n holds BATCH_SIZE signals of user "batch-<n>". The writer prints
"writing <n>" as it hands the batch to the store and "committed <n>" once the
store has it, so the test can kill it in the middle of a write and knows which
batches must be complete.
"""

from __future__ import annotations

import asyncio
import itertools
import sys
from pathlib import Path

from tests.stores.builders import NOW_NS, signal
from trading_engine.stores.base import Store
from trading_engine.stores.postgres import PostgresStore
from trading_engine.stores.sqlite import SqliteStore

COMPANY = "kill-test"
BATCH_SIZE = 400
# About a serialized TradingSignal with its trace.
PAYLOAD = bytes(range(256)) * 6


def store_for(arguments: list[str]) -> Store:
    if arguments[0] == "sqlite":
        return SqliteStore(Path(arguments[1]))
    return PostgresStore(arguments[1], arguments[2])


async def main(arguments: list[str]) -> None:
    store = store_for(arguments)
    await store.open()
    for batch in itertools.count():
        records = [
            signal(f"{batch}-{n}", NOW_NS + n, company_id=COMPANY, user_id=f"batch-{batch}",
                   payload=PAYLOAD)
            for n in range(BATCH_SIZE)
        ]  # fmt: skip
        print("writing", batch, flush=True)
        await store.append_signals(records)
        print("committed", batch, flush=True)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1:]))
