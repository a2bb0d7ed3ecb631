"""The prediction batches behind the golden file: `python -m tests.golden.scenario --write`.

A few minutes of traffic for three traders of two companies that walks
through the rules: every tier, yen, gold and index pricing, a cross that needs
a conversion rate, invalid input, neutral and weak predictions, patterns,
duplicates, the FREE rate limit, a trend that makes a signal counter-trend,
a volatility spike, a stale price and a wide spread.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path

from google.protobuf import json_format

from tradeflow.common.v1 import tier_pb2
from tradeflow.ml.v1 import prediction_pb2

HERE = Path(__file__).parent
INPUT = HERE / "predictions.jsonl"
START_NS = 1_800_000_000_000_000_000
SECOND_NS = 1_000_000_000
UP, WEAK_UP, NEUTRAL, WEAK_DOWN, DOWN = 1, 2, 3, 4, 5
PIP = {"EURUSD": 1e-4, "GBPUSD": 1e-4, "USDJPY": 1e-2, "EURGBP": 1e-4, "XAUUSD": 0.1, "US30": 1.0}


class Scenario:
    def __init__(self) -> None:
        self.batches: list[prediction_pb2.MLPredictionBatch] = []
        self.clock_ns = START_NS
        self.counter = 0

    def batch(
        self,
        user: str,
        company: str,
        tier: int,
        predictions: list[tuple[prediction_pb2.Prediction, float]],
        equity: float = 20_000.0,
        step_s: float = 10.0,
    ) -> None:
        """A batch `step_s` after the last; each prediction priced `age` seconds before it."""
        self.clock_ns += int(step_s * SECOND_NS)
        for prediction, age_s in predictions:
            prediction.timestamp.FromNanoseconds(self.clock_ns - int(age_s * SECOND_NS))
        message = prediction_pb2.MLPredictionBatch(
            batch_id=f"golden-{len(self.batches):03d}",
            predictions=[prediction for prediction, _ in predictions],
            correlation_id=f"corr-{len(self.batches):03d}",
        )
        tenant = message.user_context
        tenant.user_id, tenant.company_id = user, company
        tenant.tier = tier  # type: ignore[assignment]
        tenant.account_equity, tenant.account_currency = equity, "USD"
        message.produced_at.FromNanoseconds(self.clock_ns)
        self.batches.append(message)

    def prediction(
        self,
        symbol: str,
        price: float,
        direction: int = UP,
        confidence: float = 0.9,
        votes: tuple[int, ...] = (UP, UP, UP, DOWN),
        patterns: tuple[tuple[int, float], ...] = (),
        spread_pips: float = 1.0,
        age_s: float = 0.2,
        volume: float | None = None,
    ) -> tuple[prediction_pb2.Prediction, float]:
        self.counter += 1
        half = spread_pips * PIP.get(symbol, 1e-4) / 2
        message = prediction_pb2.Prediction(
            prediction_id=f"p-{self.counter:04d}",
            symbol=symbol,
            primary_direction=direction,  # type: ignore[arg-type]
            confidence=confidence,
            current_price=price,
            bid=price - half,
            ask=price + half,
            predicted_price=price * (1.003 if direction <= WEAK_UP else 0.997),
        )
        message.horizon.FromSeconds(600)
        for index, vote in enumerate(votes):
            message.votes.add(
                model_id=f"m{index}",
                direction=vote,
                confidence=0.85,
                weight=1.0,
            )
        for pattern_direction, probability in patterns:
            message.patterns.add(
                name="flag",
                probability=probability,
                direction=pattern_direction,
            )
        if volume is not None:
            message.volume_confirmation = volume
        return message, age_s


def build() -> list[prediction_pb2.MLPredictionBatch]:
    s = Scenario()
    pro, free, enterprise = (
        tier_pb2.SUBSCRIPTION_TIER_PRO,
        tier_pb2.SUBSCRIPTION_TIER_FREE,
        tier_pb2.SUBSCRIPTION_TIER_ENTERPRISE,
    )
    # A history for acme's EURUSD and USDJPY: a price a minute for ten minutes,
    # EURUSD flat-ish, USDJPY rising two pips a minute (an UP trend).
    for minute in range(10):
        eurusd = 1.08000 + minute * 0.00003 * (-1) ** minute
        usdjpy = 151.000 + minute * 0.02
        s.batch(
            "ana",
            "acme",
            pro,
            [
                s.prediction("EURUSD", eurusd, confidence=0.5),
                s.prediction("USDJPY", usdjpy, confidence=0.5),
            ],
            step_s=60.0,
        )
    # PRO: actionable buy and sell, yen pips, a neutral view, a weak signal
    # strengthened by a pattern, invalid input, and an unknown symbol.
    s.batch(
        "ana",
        "acme",
        pro,
        [
            s.prediction("EURUSD", 1.08085, volume=0.7),
            s.prediction("USDJPY", 151.185, WEAK_UP, patterns=((UP, 0.8),)),
            s.prediction("GBPUSD", 1.27010, NEUTRAL, votes=(NEUTRAL, NEUTRAL, NEUTRAL)),
            s.prediction("EURUSD", math.nan),
            s.prediction("DOGEUSD", 0.1),
            s.prediction("XAUUSD", 2400.0),
        ],
    )
    # The same signal again a moment later: a duplicate; then a SELL against
    # the rising trend (held), and a confident one (taken).
    s.batch(
        "ana",
        "acme",
        pro,
        [
            s.prediction("EURUSD", 1.08087),
            s.prediction("USDJPY", 151.190, DOWN, confidence=0.8, votes=(DOWN, DOWN, DOWN)),
            s.prediction("USDJPY", 151.190, DOWN, confidence=0.9, votes=(DOWN, DOWN, DOWN)),
        ],
        step_s=5.0,
    )
    # FREE: two pairs only, stricter gates, ten signals a minute.
    s.batch(
        "ben",
        "acme",
        free,
        [s.prediction("EURUSD", 1.08090 + i * 0.0007, confidence=0.95) for i in range(12)]
        + [s.prediction("USDJPY", 151.19, confidence=0.95)],
    )
    # ENTERPRISE at another company: gold, an index, a cross with no GBPUSD
    # price seen yet (no conversion rate), then with one.
    s.batch(
        "cho",
        "globex",
        enterprise,
        [
            s.prediction("XAUUSD", 2401.30, DOWN, votes=(DOWN, DOWN, UP)),
            s.prediction("US30", 39120.0),
            s.prediction("EURGBP", 0.85210),
        ],
        equity=250_000.0,
    )
    s.batch(
        "cho",
        "globex",
        enterprise,
        [s.prediction("GBPUSD", 1.27000, confidence=0.55), s.prediction("EURGBP", 0.85260)],
        equity=250_000.0,
    )
    # Market gates: a stale price, a wide spread, then a volatility spike.
    s.batch(
        "cho",
        "globex",
        enterprise,
        [
            s.prediction("GBPUSD", 1.27010, age_s=45.0),
            s.prediction("GBPUSD", 1.27012, spread_pips=6.0),
        ],
        equity=250_000.0,
    )
    for jump in range(6):
        s.batch(
            "cho",
            "globex",
            enterprise,
            [s.prediction("XAUUSD", 2401.3 * (1.01 if jump % 2 else 0.99), confidence=0.55)],
            equity=250_000.0,
            step_s=1.0,
        )
    s.batch(
        "cho",
        "globex",
        enterprise,
        [s.prediction("XAUUSD", 2402.0)],
        equity=250_000.0,
        step_s=1.0,
    )
    return s.batches


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--write", action="store_true", help=f"rewrite {INPUT.name}")
    args = parser.parse_args()
    lines = [json_format.MessageToJson(batch, indent=None, sort_keys=True) for batch in build()]
    if args.write:
        INPUT.write_text("\n".join(lines) + "\n")
    else:
        print("\n".join(lines))


if __name__ == "__main__":
    main()
