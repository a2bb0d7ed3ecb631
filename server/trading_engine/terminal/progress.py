"""A progress line for long commands on stderr: redrawn in place on a terminal, and written
as a plain line now and then (and at the end) when stderr is a file or a pipe, whose reader
would otherwise get carriage returns and a line per batch."""

from __future__ import annotations

import sys
import time

_WIDTH = 30
# Seconds between two plain lines, when stderr is not a terminal.
PLAIN_EVERY_S = 5.0


class _State:
    drawn = False
    last_plain = 0.0


_state = _State()


def show(done: int, total: int, what: str) -> None:
    """`[####....] done/total what`: redrawn in place, or a plain line every few seconds."""
    filled = _WIDTH * done // max(total, 1)
    line = f"[{'#' * filled}{'.' * (_WIDTH - filled)}] {done}/{total} {what}"
    if sys.stderr.isatty():
        print(f"\r{line}", end="", file=sys.stderr)
        _state.drawn = True
        return
    now = time.monotonic()
    if done >= total or now - _state.last_plain >= PLAIN_EVERY_S:
        _state.last_plain = now
        print(line, file=sys.stderr)


def finish() -> None:
    """End a redrawn line, so what follows starts on a line of its own."""
    if _state.drawn:
        print(file=sys.stderr)
        _state.drawn = False
