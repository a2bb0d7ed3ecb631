"""Write docs/examples/bars.csv: five-minute bars for the example recording's pairs.

The recording (docs/examples/session.jsonl) holds five minutes of one trader's predictions
and the prices they carry, too little for a stop or a target to be reached. The bars hold
the recording's prices where they cover it, and go on from each pair's last one for eight
hours, a seeded random walk at the demo feed's volatility, so the replay of the example
closes trades. Each bar's time is
its end (the replay's default, --bar-time close), and it carries its open. Run it again
only to change the bars on purpose: the user guide's figures come from them.
"""

from __future__ import annotations

import csv
import math
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

from trading_engine.core import instruments
from trading_engine.recordings import read_batches

EXAMPLES = Path(__file__).resolve().parent.parent / "docs" / "examples"
BAR = timedelta(minutes=5)
BARS = 96
# Per square root of an hour, as the demo feed walks; ticks within a bar are one minute apart.
VOLATILITY = 20.0 / 10_000
TICKS_PER_BAR = 5


def main() -> None:
    # symbol -> (ns since the epoch, price) of each prediction, in recorded order.
    seen: dict[str, list[tuple[int, float]]] = {}
    for _, read in read_batches(EXAMPLES / "session.jsonl"):
        if isinstance(read, str):
            raise SystemExit(f"session.jsonl: {read}")
        for prediction in read.predictions:
            seen.setdefault(prediction.symbol, []).append(
                (prediction.timestamp.ToNanoseconds(), prediction.current_price)
            )
    first_ns = min(time_ns for prices in seen.values() for time_ns, _ in prices)
    start = datetime.fromtimestamp(first_ns // 1_000_000_000, UTC).replace(second=0)
    start -= timedelta(minutes=start.minute % 5)
    rng = random.Random(20)
    step = VOLATILITY * math.sqrt(BAR / timedelta(hours=1) / TICKS_PER_BAR)
    rows = []
    for symbol in sorted(seen):
        instrument = instruments.lookup(symbol)
        assert instrument is not None
        price = seen[symbol][0][1]
        for number in range(1, BARS + 1):
            end_ns = int((start + number * BAR).timestamp()) * 1_000_000_000
            start_ns = end_ns - int(BAR.total_seconds()) * 1_000_000_000
            ticks = [price]
            recorded = [p for time_ns, p in seen[symbol] if start_ns < time_ns <= end_ns]
            ticks += recorded
            price = ticks[-1]
            for _ in range(TICKS_PER_BAR - len(recorded) if not recorded else 0):
                price *= math.exp(rng.gauss(0.0, step))
                ticks.append(price)
            end = (start + number * BAR).strftime("%Y-%m-%dT%H:%M:%SZ")
            digits = instrument.price_decimals
            rows.append(
                [symbol, end]
                + [f"{value:.{digits}f}" for value in (ticks[0], max(ticks), min(ticks), price)]
            )
    with (EXAMPLES / "bars.csv").open("w", newline="") as file:
        writer = csv.writer(file, lineterminator="\n")
        writer.writerow(["symbol", "time", "open", "high", "low", "close"])
        writer.writerows(rows)


if __name__ == "__main__":
    main()
