"""`python -m bench.fuzz`: hostile and careless input to a real engine, counted.

- `--bus N`: N inputs on NATS and Kafka (bench/fuzz/bus.py): every one must
  end decided, dead-lettered or a duplicate copy, none shed or vanished.
- `--api N`: N requests over gRPC and through Envoy's REST gateway
  (bench/fuzz/api.py), a fifth of them REST: none may end UNKNOWN, INTERNAL,
  UNAVAILABLE or DEADLINE_EXCEEDED, or get a 5xx.

Prints one JSON object per part, with the seed that rebuilds every input.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import logging
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.fuzz.api import fuzz_api
from bench.fuzz.bus import draw_inputs, fuzz_bus


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.fuzz", description=__doc__)
    parser.add_argument("--bus", type=int, default=100_000, help="bus inputs to send (0: none)")
    parser.add_argument("--api", type=int, default=100_000, help="API requests to send (0: none)")
    parser.add_argument("--seed", type=int, default=int(time.time()), help="the run's seed")
    args = parser.parse_args()
    # The engine on the bus runs in this process; its per-message warnings would drown the
    # result, and every dead letter is counted anyway.
    logging.basicConfig(level=logging.ERROR)
    if args.bus:
        inputs = draw_inputs(args.bus, args.seed)
        with tempfile.TemporaryDirectory(prefix="fuzz-bus-") as workdir:
            bus = asyncio.run(fuzz_bus(inputs, Path(workdir), within_s=max(120.0, args.bus / 200)))
        _print(
            "fuzz_bus",
            args.seed,
            bus.holds,
            {
                **dataclasses.asdict(bus),
                "vanished": bus.vanished[:50],
                "vanished_count": len(bus.vanished),
                "inputs_per_second": round(bus.sent / bus.seconds),
            },
        )
    if args.api:
        rest = args.api // 5
        with tempfile.TemporaryDirectory(prefix="fuzz-api-") as workdir:
            api = asyncio.run(fuzz_api(args.api - rest, rest, args.seed, Path(workdir)))
        _print("fuzz_api", args.seed, api.holds, api.figures())


def _print(name: str, seed: int, holds: bool, figures: dict[str, Any]) -> None:
    print(json.dumps({"name": name, "seed": seed, "holds": holds, **figures}), flush=True)


if __name__ == "__main__":
    main()
