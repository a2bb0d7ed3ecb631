"""A bus task that ends unexpectedly runs again, and says why it ended."""

from __future__ import annotations

import asyncio

from trading_engine.bus.supervision import SupervisedTask
from trading_engine.clock import SystemClock


async def test_a_task_that_returns_early_or_raises_is_run_again_until_it_is_done() -> None:
    runs: list[int] = []
    finished = asyncio.Event()

    async def run() -> None:
        runs.append(len(runs))
        if len(runs) == 1:
            return  # ended on its own while it should still run
        if len(runs) == 2:
            raise OSError("the disk is full")
        finished.set()

    task = SupervisedTask("Kafka output", run, finished.is_set, SystemClock())
    task.start()
    await asyncio.wait_for(finished.wait(), 5)
    assert task.task is not None
    await asyncio.wait_for(task.task, 5)
    assert len(runs) == 3
    assert task.restarts == 2
    assert task.failure == "OSError: the disk is full"
    assert task.failed_at_ns > 0


async def test_stopping_a_task_cancels_it_without_counting_a_restart() -> None:
    started = asyncio.Event()

    async def run_forever() -> None:
        started.set()
        await asyncio.Event().wait()

    task = SupervisedTask("Kafka intake", run_forever, lambda: False, SystemClock())
    task.start()
    await asyncio.wait_for(started.wait(), 5)
    assert task.running
    await task.stop()
    assert task.restarts == 0
    assert task.task is not None
    assert task.task.cancelled()
