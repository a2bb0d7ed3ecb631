"""A progress line for long commands, redrawn in place on stderr."""

from __future__ import annotations

import sys

_WIDTH = 30


def show(done: int, total: int, what: str) -> None:
    """Redraw `[####....] done/total what` on stderr (no newline: the next draw replaces it)."""
    filled = _WIDTH * done // max(total, 1)
    print(
        f"\r[{'#' * filled}{'.' * (_WIDTH - filled)}] {done}/{total} {what}",
        end="",
        file=sys.stderr,
    )
