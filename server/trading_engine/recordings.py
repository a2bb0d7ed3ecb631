"""Recorded prediction batches as JSON lines: one MLPredictionBatch per line.

A line holds a batch in its JSON form (as `json_format` or `grpcurl` write
it); `trading-engine publish` sends such a file on the bus and
`trading-engine replay` runs it through the engine.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from google.protobuf import json_format

from tradeflow.ml.v1 import prediction_pb2


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
