"""Replay throughput (issue 8): recorded predictions from a file through the engine, on one core.

`python -m bench.replay` writes a binary recording of the demo feed (four
traders, ten pairs, realistic votes and patterns, one batch every 425 ms of
recorded time) and replays it along `trading-engine replay`'s own path: the
file read and framed (`replay.sources.from_file`), each batch decided by a
`DecisionEngine` at its recorded clock, every decision kept as history would
keep it. The reference, measured in the same run on the same file, reads and
frames the recording and parses and serialises each batch with the protobuf
runtime: what moving the batches costs without deciding anything. Each is
run `--rounds` times and the fastest kept. One JSON line; the budget is
50,000 predictions/s.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from tradeflow.ml.v1 import prediction_pb2
from trading_engine.devstack.demo import DemoFeed
from trading_engine.engine import EngineLimits
from trading_engine.replay.runner import Replay
from trading_engine.replay.sources import delimited, from_file
from trading_engine.replay.strategies import ReplayStrategies
from trading_engine.runtime import tune_runtime

BUDGET_PER_SECOND = 50_000
START_NS = 1_800_000_000_000_000_000
BATCH_INTERVAL_NS = 425_000_000


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.replay", description=__doc__)
    parser.add_argument("--batches", type=int, default=40_000, help="batches in the recording")
    parser.add_argument("--rounds", type=int, default=3, help="runs of each; the fastest is kept")
    args = parser.parse_args()
    tune_runtime()
    with tempfile.TemporaryDirectory() as folder:
        recording = Path(folder) / "session.binpb"
        recording.write_bytes(b"".join(delimited(_demo_session(args.batches))))
        predictions = sum(1 for _ in _predictions(recording))
        reference = min(_null_replay(recording) for _ in range(args.rounds))
        replay = min(_replay(recording) for _ in range(args.rounds))
    rate = predictions / replay
    print(json.dumps({
        "name": "replay_from_file", "unit": "predictions/s", "value": round(rate),
        "budget": BUDGET_PER_SECOND, "value/budget": round(rate / BUDGET_PER_SECOND, 2),
        "predictions": predictions, "seconds": round(replay, 3),
        "reference": {"name": "null_replay", "predictions/s": round(predictions / reference)},
    }))  # fmt: skip


def _demo_session(batches: int) -> Iterator[prediction_pb2.MLPredictionBatch]:
    now = [START_NS]
    feed = DemoFeed(seed=1, now_ns=lambda: now[0])
    for _ in range(batches):
        yield feed.next_batch()
        now[0] += BATCH_INTERVAL_NS


def _predictions(path: Path) -> Iterator[prediction_pb2.Prediction]:
    for recorded in from_file(path):
        yield from prediction_pb2.MLPredictionBatch.FromString(recorded.data).predictions


def _null_replay(path: Path) -> float:
    """Seconds to read and frame the recording and parse and serialise every batch again."""
    started = time.perf_counter()
    for recorded in from_file(path):
        prediction_pb2.MLPredictionBatch.FromString(recorded.data).SerializeToString()
    return time.perf_counter() - started


def _replay(path: Path) -> float:
    """Seconds for the replay: read and frame, decide every batch, keep every decision."""
    replay = Replay([ReplayStrategies()], EngineLimits())
    started = time.perf_counter()
    for recorded in from_file(path):
        replay.decide(recorded)
    return time.perf_counter() - started


if __name__ == "__main__":
    main()
