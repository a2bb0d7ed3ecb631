"""Decisions on a recorded stream match the checked-in golden file.

A change of behaviour shows up in review as a diff of signals.jsonl. When a
change is intended, regenerate it with:

    UPDATE_GOLDEN=1 .venv/bin/pytest tests/golden
"""

from __future__ import annotations

import json
import os

from google.protobuf import json_format

from tests.golden.scenario import HERE, INPUT
from tradeflow.ml.v1 import prediction_pb2
from tradeflow.trading.v1 import signal_pb2
from trading_engine.engine import DecisionEngine
from trading_engine.tenancy import Caller

EXPECTED = HERE / "signals.jsonl"
# The engine decides each batch 80 ms after it was produced.
DECISION_DELAY_NS = 80_000_000


def _decide_recorded_stream() -> list[str]:
    engine = DecisionEngine()
    lines = []
    for line in INPUT.read_text().splitlines():
        batch = json_format.Parse(line, prediction_pb2.MLPredictionBatch())
        now_ns = batch.produced_at.ToNanoseconds() + DECISION_DELAY_NS
        tenant = batch.user_context
        caller = Caller(tenant.user_id, tenant.company_id, tenant.tier)
        decided = engine.decide(batch.SerializeToString(), now_ns, caller)
        signals = signal_pb2.TradingSignalBatch.FromString(decided.payload)
        lines.append(json_format.MessageToJson(signals, indent=None, sort_keys=True))
    return lines


def test_signals_match_the_golden_file() -> None:
    actual = _decide_recorded_stream()
    if os.environ.get("UPDATE_GOLDEN"):
        EXPECTED.write_text("\n".join(actual) + "\n")
    expected = EXPECTED.read_text().splitlines()
    assert len(actual) == len(expected)
    for index, (got, want) in enumerate(zip(actual, expected, strict=True)):
        assert json.loads(got) == json.loads(want), f"batch {index} differs"


def test_the_golden_stream_covers_every_disposition_and_many_reasons() -> None:
    signals = [
        signal
        for line in EXPECTED.read_text().splitlines()
        for signal in json.loads(line).get("signals", [])
    ]
    dispositions = {signal["disposition"] for signal in signals}
    reasons = {signal.get("reason", "DISPOSITION_REASON_UNSPECIFIED") for signal in signals}
    assert dispositions == {
        "SIGNAL_DISPOSITION_ACTIONABLE",
        "SIGNAL_DISPOSITION_HOLD",
        "SIGNAL_DISPOSITION_REJECTED",
        "SIGNAL_DISPOSITION_SUPPRESSED",
        "SIGNAL_DISPOSITION_INVALID",
    }
    assert {
        "DISPOSITION_REASON_INVALID_PREDICTION",
        "DISPOSITION_REASON_UNKNOWN_SYMBOL",
        "DISPOSITION_REASON_INSTRUMENT_NOT_ENTITLED",
        "DISPOSITION_REASON_CONFIDENCE_BELOW_THRESHOLD",
        "DISPOSITION_REASON_NEUTRAL_DIRECTION",
        "DISPOSITION_REASON_DUPLICATE_SIGNAL",
        "DISPOSITION_REASON_RATE_LIMITED",
        "DISPOSITION_REASON_COUNTER_TREND",
        "DISPOSITION_REASON_NO_CONVERSION_RATE",
        "DISPOSITION_REASON_STALE_PRICE",
        "DISPOSITION_REASON_SPREAD_TOO_WIDE",
        "DISPOSITION_REASON_EXTREME_VOLATILITY",
    } <= reasons
