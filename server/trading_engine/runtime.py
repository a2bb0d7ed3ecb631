"""Process-wide runtime settings the composition root applies once at start-up."""

from __future__ import annotations

import gc

# A decision allocates a few dozen short-lived objects. With CPython's default
# first-generation threshold (700) the collector runs every few predictions;
# these values keep collections rare and short without letting garbage pile up.
_GC_THRESHOLDS = (50_000, 20, 100)


def tune_garbage_collector() -> None:
    """Freeze start-up objects out of collection and raise the collection thresholds."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*_GC_THRESHOLDS)
