"""Process-wide runtime settings the composition root applies once at start-up."""

from __future__ import annotations

import gc
import sys

# A decision allocates a few dozen short-lived objects. With CPython's default
# first-generation threshold (700) the collector runs every few predictions;
# these values keep collections rare and short without letting garbage pile up.
_GC_THRESHOLDS = (50_000, 20, 100)
# The SQLite history writer runs Python in a worker thread; with the default 5 ms a
# batch arriving meanwhile waits up to 5 ms for the interpreter (bus latency p99).
_SWITCH_INTERVAL_S = 0.0005


def tune_runtime() -> None:
    """Freeze start-up objects out of collection, raise the collection thresholds, and
    let the event loop take the interpreter back from worker threads sooner."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*_GC_THRESHOLDS)
    sys.setswitchinterval(_SWITCH_INTERVAL_S)
