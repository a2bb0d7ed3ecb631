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
# Prefix of a child's command line so the kernel SIGKILLs it when its owner ends, however it
# ends (brokers, Envoy). setpriv (util-linux) sets this and execs the child, so no Python runs
# in the forked child: with gRPC's threads in the owner, a preexec_fn could die there before
# exec. Linux ties the signal to the thread that spawned the child: start children from a
# thread that outlives them (the main thread, as test fixtures, `dev` and `gateway` do).
DIE_WITH_PARENT = ("setpriv", "--pdeathsig", "KILL", "--")


def tune_runtime() -> None:
    """Freeze start-up objects out of collection, raise the collection thresholds, and
    let the event loop take the interpreter back from worker threads sooner."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*_GC_THRESHOLDS)
    sys.setswitchinterval(_SWITCH_INTERVAL_S)
