"""Decision-path benchmarks (DESIGN.md §4). Run with `make bench` or `python -m bench`.

Each result is one JSON line: name, unit, value (the p99, which the budget
limits), p50, the budget and value / budget, and where one exists a reference
measured in the same run:

- core_decision: one prediction through the rules (decoded input to Decision),
  budget 20 µs p99.
- batch_10: a serialized batch of 10 predictions decoded, decided and encoded
  to signal-batch bytes, budget 250 µs p99. Its reference is a null relay
  that decodes the same bytes with the protobuf runtime and serialises them
  again: what moving the batch costs without deciding anything. The two take
  turns on each batch, so both see the same machine.
- machine_stalls: how often, and for how long, the machine takes the CPU away
  from a loop that only reads the clock. On this VM a 12-20 µs stall arrives
  every millisecond (the timer tick), so any step longer than about 10 µs has
  a 1% chance of carrying one: it sets a floor under every p99 above.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections import Counter

from bench import workload
from tradeflow.ml.v1 import prediction_pb2
from tradeflow.trading.v1 import signal_pb2
from trading_engine.core.decide import decide_input
from trading_engine.engine import DecisionEngine
from trading_engine.runtime import tune_runtime
from trading_engine.wire.predictions import decode_batch

CORE_BUDGET_US = 20.0
BATCH_BUDGET_US = 250.0


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--batches", type=int, default=6000, help="batches of 10 to run")
    args = parser.parse_args()
    data = workload.batches(args.batches)
    tune_runtime()
    for result in (core_decision(data), batch_10(data), machine_stalls()):
        print(json.dumps(result), flush=True)


def core_decision(data: list[bytes]) -> dict[str, object]:
    engine = DecisionEngine()
    samples: list[int] = []
    dispositions: Counter[int] = Counter()
    clock = time.perf_counter_ns
    for index, encoded in enumerate(data):
        batch = decode_batch(encoded)
        context = workload.decision_context(engine, batch, index)
        book, memory, ids = engine.book, engine.memory, context.ids
        for prediction in batch.predictions:
            started = clock()
            decision = decide_input(
                prediction, context, book, memory, ids.of(prediction.prediction_id)
            )
            samples.append(clock() - started)
            dispositions[decision.disposition] += 1
    return _result("core_decision", samples, CORE_BUDGET_US, extra={"mix": _mix(dispositions)})


def batch_10(data: list[bytes]) -> dict[str, object]:
    engine = DecisionEngine()
    relay_batch = prediction_pb2.MLPredictionBatch.FromString
    clock = time.perf_counter_ns
    samples: list[int] = []
    relay: list[int] = []
    callers = workload.callers(data)
    # The relay and the engine take turns on each batch, so a noisy stretch of
    # the machine slows both alike and the ratio between them stays honest.
    for index, encoded in enumerate(data):
        started = clock()
        relay_batch(encoded).SerializeToString()
        relayed = clock()
        engine.decide(encoded, workload.START_NS + index * workload.STEP_NS, callers[index])
        samples.append(clock() - relayed)
        relay.append(relayed - started)
    reference = _percentiles(relay)
    return _result(
        "batch_10",
        samples,
        BATCH_BUDGET_US,
        extra={
            "reference": {"name": "null_relay_batch_10", "unit": "us", **reference},
            "ratio_to_reference_p50": round(_percentiles(samples)["p50"] / reference["p50"], 2),
        },
    )


def machine_stalls(seconds: float = 1.0, threshold_ns: int = 2_000) -> dict[str, object]:
    clock = time.perf_counter_ns
    started = last = clock()
    ends = started + int(seconds * 1e9)
    stalls: list[int] = []
    while last < ends:
        now = clock()
        if now - last > threshold_ns:
            stalls.append(now - last)
        last = now
    stalls.sort()
    if not stalls:
        return {"name": "machine_stalls", "unit": "us", "per_second": 0}
    return {
        "name": "machine_stalls",
        "unit": "us",
        "per_second": round(len(stalls) / seconds),
        "p50": round(stalls[len(stalls) // 2] / 1000, 2),
        "p90": round(stalls[int(len(stalls) * 0.90)] / 1000, 2),
        "max": round(stalls[-1] / 1000, 2),
        "stalled_share": round(sum(stalls) / (seconds * 1e9), 4),
    }


def _percentiles(samples: list[int]) -> dict[str, float]:
    # The first 5% warm caches and the allocator; they are not the steady state.
    steady = sorted(samples[len(samples) // 20 :])
    return {
        "p50": round(steady[len(steady) // 2] / 1000, 2),
        "p90": round(steady[int(len(steady) * 0.90)] / 1000, 2),
        "p99": round(steady[int(len(steady) * 0.99)] / 1000, 2),
        "mean": round(statistics.fmean(steady) / 1000, 2),
    }


def _result(
    name: str, samples: list[int], budget_us: float, extra: dict[str, object]
) -> dict[str, object]:
    figures = _percentiles(samples)
    return {
        "name": name,
        "unit": "us",
        "value": figures["p99"],
        **figures,
        "budget": budget_us,
        "ratio_to_budget": round(figures["p99"] / budget_us, 3),
        "samples": len(samples),
        **extra,
    }


def _mix(dispositions: Counter[int]) -> dict[str, int]:
    return {
        signal_pb2.SignalDisposition.Name(key)[len("SIGNAL_DISPOSITION_") :].lower(): count  # type: ignore[arg-type]
        for key, count in sorted(dispositions.items())
    }


if __name__ == "__main__":
    main()
