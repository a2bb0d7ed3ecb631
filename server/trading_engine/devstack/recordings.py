"""Recorded prediction batches, one JSON object per line, published on the bus like ML-Processing.

A line is an `MLPredictionBatch` in its JSON form (as `json_format` or
`grpcurl` write it). A line that is not one is reported with its number and
skipped; the others are still published. With `restamp`, each batch and its
predictions are stamped with the time it is sent, so an old recording is not
refused as stale.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from google.protobuf import json_format

from tradeflow.ml.v1 import prediction_pb2
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


def read_batches(path: Path) -> Iterator[tuple[int, prediction_pb2.MLPredictionBatch | str]]:
    """(line number, batch) for each line, or (line number, why it is not one)."""
    with path.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            batch = prediction_pb2.MLPredictionBatch()
            try:
                json_format.Parse(line, batch)
            except json_format.ParseError as error:
                yield number, f"not an MLPredictionBatch: {error}"
                continue
            if not (batch.user_context.user_id and batch.user_context.company_id):
                yield number, "the batch names no user_context.user_id and company_id"
                continue
            yield number, batch


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
