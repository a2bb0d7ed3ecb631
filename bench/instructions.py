"""Instructions per prediction on the decision path, counted by valgrind (callgrind).

Wall-clock figures on a shared VM move with the machine; instruction counts do
not. Run with `.venv/bin/python -m bench.instructions` (needs `valgrind`; it
takes a minute or two). Each stage runs in its own process under callgrind;
a stage's cost is its count minus that of a process that builds and decodes
the same workload and decides nothing, divided by the predictions.

Prints one JSON line: instructions per prediction for decode, rules (signal id
included), encode, and the whole of DecisionEngine.decide.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys

from bench import workload
from trading_engine.core.decide import decide_input
from trading_engine.engine import DecisionEngine
from trading_engine.wire.predictions import decode_batch
from trading_engine.wire.signals import SignalContext, SignalEncoder

BATCHES = 400
STAGES = ("baseline", "decode", "rules", "rules_and_encode", "engine")


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.instructions", description=__doc__)
    parser.add_argument("--stage", choices=STAGES, help="run one stage (used under valgrind)")
    args = parser.parse_args()
    if args.stage:
        run_stage(args.stage)
        return
    if shutil.which("valgrind") is None:
        sys.exit("valgrind is not installed: apt-get install valgrind")
    counts = {stage: _count(stage) for stage in STAGES}
    predictions = BATCHES * 10
    per = {stage: (counts[stage] - counts["baseline"]) / predictions for stage in STAGES}
    result = {
        "name": "instructions_per_prediction",
        "decode": round(per["decode"]),
        "rules": round(per["rules"]),
        "encode": round(per["rules_and_encode"] - per["rules"]),
        "engine": round(per["engine"]),
        "predictions": predictions,
    }
    print(json.dumps(result), flush=True)


def run_stage(stage: str) -> None:
    data = workload.batches(BATCHES)
    decoded = [decode_batch(encoded) for encoded in data]
    engine = DecisionEngine()
    encoder = SignalEncoder()
    if stage == "decode":
        for encoded in data:
            decode_batch(encoded)
    elif stage in ("rules", "rules_and_encode"):
        encode = stage == "rules_and_encode"
        for index, batch in enumerate(decoded):
            context = workload.decision_context(engine, batch, index)
            signal_context = SignalContext(
                batch.batch_id, batch.user_id, batch.company_id, batch.correlation_id,
                context.strategy.version, context.now_ns, 1,
            )  # fmt: skip
            book, memory, ids = engine.book, engine.memory, context.ids
            for prediction in batch.predictions:
                decision = decide_input(
                    prediction, context, book, memory, ids.of(prediction.prediction_id)
                )
                if encode:
                    encoder.encode_signal(signal_context, decision)
    elif stage == "engine":
        # From the batches decoded for every stage: decoding again would count here.
        callers = [workload.caller_of(batch) for batch in decoded]
        for index, encoded in enumerate(data):
            engine.decide(encoded, workload.START_NS + index * workload.STEP_NS, callers[index])


def _count(stage: str) -> int:
    stage_command = [sys.executable, "-m", "bench.instructions", "--stage", stage]
    finished = subprocess.run(
        ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", *stage_command],
        capture_output=True,
        text=True,
        check=True,
    )
    refs = re.search(r"I\s+refs:\s+([\d,]+)", finished.stderr)
    if refs is None:
        raise RuntimeError(f"no instruction count from callgrind:\n{finished.stderr}")
    return int(refs.group(1).replace(",", ""))


if __name__ == "__main__":
    main()
