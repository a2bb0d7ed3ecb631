"""Long-running bus tasks that are restarted, counted and reported when they end unexpectedly.

The bridge answers every message itself (decided, dead-lettered or a
duplicate), so a task should never end on its own; if one does (a defect, a
client library in a state it cannot leave), intake must not stay dead while
health says all is well.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Final

from trading_engine.clock import Clock

_log = logging.getLogger(__name__)

_FIRST_DELAY_S: Final = 0.1
_MAX_DELAY_S: Final = 5.0


class SupervisedTask:
    """Runs `run` until it returns as asked (`done()`) or the task is stopped; if it raises or
    returns early, logs it, waits a little longer each time, and runs it again."""

    def __init__(
        self,
        name: str,
        run: Callable[[], Awaitable[None]],
        done: Callable[[], bool],
        clock: Clock,
    ) -> None:
        self.name = name
        self._run = run
        self._done = done
        self._clock = clock
        self._task: asyncio.Task[None] | None = None
        # False between an unexpected end and the next run.
        self.running = False
        self.restarts = 0
        # The last time it ended unexpectedly, and why; kept after the restart for reports.
        self.failed_at_ns = 0
        self.failure = ""

    def start(self) -> None:
        self._task = asyncio.create_task(self._supervise(), name=self.name)

    @property
    def task(self) -> asyncio.Task[None] | None:
        return self._task

    async def stop(self) -> None:
        """Cancel it wherever it is, and wait for it to end."""
        if self._task is None:
            return
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task

    async def _supervise(self) -> None:
        delay = _FIRST_DELAY_S
        while True:
            self.running = True
            try:
                await self._run()
            except Exception as error:  # whatever ended it, it runs again
                self._note(f"{type(error).__name__}: {error}", error)
            else:
                if self._done():
                    return
                self._note("returned while it should still run", None)
            await asyncio.sleep(delay)
            delay = min(delay * 2, _MAX_DELAY_S)

    def _note(self, failure: str, error: Exception | None) -> None:
        self.running = False
        self.restarts += 1
        self.failed_at_ns = self._clock.now_ns()
        self.failure = failure
        _log.error("%s stopped (%s); restarting it", self.name, failure, exc_info=error)
