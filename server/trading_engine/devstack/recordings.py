"""Recorded prediction batches (trading_engine.recordings) published on the bus like ML-Processing.

A line that is not a batch is reported with its number and skipped; the
others are still published. With `restamp`, each batch and its
predictions are stamped with the time it is sent, so an old recording is not
refused as stale.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from pathlib import Path

from tradeflow.ml.v1 import prediction_pb2
from trading_engine.recordings import read_batches
from trading_engine_client import PredictionPublisher, PublishError


@dataclasses.dataclass
class PublishSummary:
    # Non-empty lines in the file.
    lines: int = 0
    batches: int = 0
    predictions: int = 0
    # (line number, why) of each line not published.
    skipped: list[tuple[int, str]] = dataclasses.field(default_factory=list)
    seconds: float = 0.0


def restamp(batch: prediction_pb2.MLPredictionBatch, now_ns: int) -> None:
    batch.produced_at.FromNanoseconds(now_ns)
    for prediction in batch.predictions:
        prediction.timestamp.FromNanoseconds(now_ns)


async def publish_file(
    path: Path,
    publisher: PredictionPublisher,
    *,
    stamp_now: bool,
    progress: Callable[[PublishSummary], None],
) -> PublishSummary:
    """Publish every batch of the file in order; what was published and what was not."""
    with path.open(encoding="utf-8") as counted:
        summary = PublishSummary(lines=sum(1 for line in counted if line.strip()))
    started = time.monotonic()
    for number, read in read_batches(path):
        if isinstance(read, str):
            summary.skipped.append((number, read))
            continue
        if stamp_now:
            restamp(read, time.time_ns())
        try:
            await publisher.publish(read)
        except PublishError as error:
            summary.skipped.append((number, str(error)))
            continue
        summary.batches += 1
        summary.predictions += len(read.predictions)
        summary.seconds = time.monotonic() - started
        progress(summary)
    summary.seconds = time.monotonic() - started
    return summary
