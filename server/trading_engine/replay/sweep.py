"""Parameter sweeps: one strategy parameter over a range, a backtest per value, in parallel.

`parse_sweep` reads `minConfidenceThreshold=0.6:0.8:0.05`; `candidates` turns it into
one candidate strategy (StrategyConfig JSON) per value, over a base candidate's fields;
`in_processes` runs a picklable function over them, one process per value up to the
cores there are, because a replay is CPU-bound Python and threads would share one core.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import json
import math
import multiprocessing
import os
from collections.abc import Callable, Sequence
from typing import Any, Final, TypeVar

# More values than a table and a chart can show side by side.
MAX_VALUES: Final = 50

_Job = TypeVar("_Job")
_Result = TypeVar("_Result")


@dataclasses.dataclass(frozen=True)
class SweepSpec:
    # As given: a StrategyConfig field's JSON or proto name.
    field: str
    values: tuple[float | int, ...]


def parse_sweep(text: str) -> SweepSpec:
    """FIELD=FROM:TO:STEP, both ends included; ValueError saying what is wrong.

    Values are FROM + i x STEP up to TO (allowing for binary rounding), rounded to 10
    decimals so 0.65 reads 0.65; whole numbers throughout give whole values (for integer
    fields such as maxPositionCount).
    """
    field, equals, bounds = text.partition("=")
    parts = bounds.split(":")
    if not equals or not field.strip() or len(parts) != 3:
        raise ValueError(
            f"--sweep {text!r}: give FIELD=FROM:TO:STEP, e.g. minConfidenceThreshold=0.6:0.8:0.05"
        )
    try:
        start, stop, step = (float(part) for part in parts)
    except ValueError:
        raise ValueError(f"--sweep {text!r}: FROM, TO and STEP must be numbers") from None
    if not all(math.isfinite(x) for x in (start, stop, step)) or step <= 0 or stop < start:
        raise ValueError(f"--sweep {text!r}: need a STEP above 0 and TO at or above FROM")
    count = math.floor((stop - start) / step + 1e-9) + 1
    if count > MAX_VALUES:
        raise ValueError(f"--sweep {text!r}: {count} values; at most {MAX_VALUES}")
    whole = all(float(part).is_integer() for part in parts)
    values = tuple(
        int(start + index * step) if whole else round(start + index * step, 10)
        for index in range(count)
    )
    return SweepSpec(field.strip(), values)


def candidates(spec: SweepSpec, base: dict[str, Any]) -> list[tuple[str, str]]:
    """(name, StrategyConfig JSON) per value: `base`'s fields with the swept one set."""
    return [
        (f"{spec.field}={value}", json.dumps({**base, spec.field: value})) for value in spec.values
    ]


def in_processes(
    work: Callable[[_Job], _Result],
    jobs: Sequence[_Job],
    done: Callable[[int], None] = lambda _: None,
) -> list[_Result]:
    """`work` over `jobs`, one process each up to the cores there are, results in job order.

    Processes are spawned, not forked: the parent may hold threads and sockets that a
    forked child would inherit half-way. `done` is told how many have finished, as they do.
    """
    workers = max(1, min(len(jobs), os.cpu_count() or 1))
    context = multiprocessing.get_context("spawn")
    with concurrent.futures.ProcessPoolExecutor(workers, mp_context=context) as pool:
        futures = [pool.submit(work, job) for job in jobs]
        for finished, _ in enumerate(concurrent.futures.as_completed(futures), start=1):
            done(finished)
        return [future.result() for future in futures]
