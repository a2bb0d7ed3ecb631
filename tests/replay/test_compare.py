"""A strategy change on a crafted recording: exactly the signals added, removed and changed,
each with the decision-trace steps that explain it."""

from __future__ import annotations

from pathlib import Path

import pytest
from google.protobuf import json_format

from tests.factories import NOW_NS, batch, prediction
from tradeflow.ml.v1 import prediction_pb2
from tradeflow.trading.v1 import signal_pb2
from trading_engine.engine import EngineLimits
from trading_engine.replay.compare import Change, UnmatchedSignals, compare
from trading_engine.replay.runner import Replay
from trading_engine.replay.sources import delimited, from_file
from trading_engine.replay.strategies import Candidate, CandidateError, ReplayStrategies

R = signal_pb2
MINUTE_NS = 60 * 10**9


def _at(message: prediction_pb2.MLPredictionBatch, at_ns: int) -> prediction_pb2.MLPredictionBatch:
    message.produced_at.FromNanoseconds(at_ns)
    for each in message.predictions:
        each.timestamp.FromNanoseconds(at_ns - 200_000_000)
    return message


# trader-1 (PRO: confidence threshold 0.7, fixed 20-pip stops) over two minutes.
RECORDING = [
    _at(batch("b1", [
        prediction("gbp-72", "GBPUSD", confidence=0.72),
        prediction("eur-72", "EURUSD", confidence=0.72),
        prediction("jpy-90", "USDJPY", confidence=0.90),
        prediction("aud-60", "AUDUSD", confidence=0.60),
    ]), NOW_NS),
    # The same EURUSD view a minute later, at the same price: a duplicate of eur-72 if that went.
    _at(batch("b2", [prediction("eur-80", "EURUSD", confidence=0.80)]), NOW_NS + MINUTE_NS),
]  # fmt: skip


def _recording(path: Path) -> Path:
    path.write_text("".join(json_format.MessageToJson(b, indent=None) + "\n" for b in RECORDING))
    return path


def _candidate(path: Path, text: str) -> Candidate:
    path.write_text(text)
    return Candidate.from_file(path)


def _replayed(recording: Path, *sides: ReplayStrategies) -> list[list[R.TradingSignal]]:
    replay = Replay(sides, EngineLimits())
    for recorded in from_file(recording):
        replay.decide(recorded)
    return [side.signals() for side in replay.sides]


def _prediction_ids(signals: list[R.TradingSignal]) -> list[str]:
    return [s.prediction_id for s in signals]


def test_a_stricter_threshold_and_wider_stop_add_remove_and_change_exactly(
    tmp_path: Path,
) -> None:
    candidate = _candidate(
        tmp_path / "strict.json", '{"minConfidenceThreshold": 0.75, "stopLossPips": 25}'
    )
    live, strict = _replayed(
        _recording(tmp_path / "session.jsonl"), ReplayStrategies(), ReplayStrategies(candidate)
    )
    comparison = compare(live, strict)

    assert comparison.compared == 5
    removed = comparison.of(Change.REMOVED)
    added = comparison.of(Change.ADDED)
    changed = comparison.of(Change.CHANGED)
    assert [d.before.prediction_id for d in removed] == ["gbp-72", "eur-72"]
    assert [d.after.prediction_id for d in added] == ["eur-80"]
    assert [d.after.prediction_id for d in changed] == ["jpy-90"]

    # Removed: the confidence rule, 0.72 against 0.70 then 0.75.
    confidence = next(s for s in removed[0].steps if s.rule == R.DECISION_RULE_CONFIDENCE)
    assert confidence.before is not None
    assert confidence.after is not None
    assert (confidence.before.outcome, confidence.after.outcome) == (
        R.RULE_OUTCOME_PASS, R.RULE_OUTCOME_FAIL,
    )  # fmt: skip
    assert (confidence.before.threshold, confidence.after.threshold) == (0.7, 0.75)
    # Added: with eur-72 held, eur-80 is no longer its duplicate.
    assert added[0].before.disposition == R.SIGNAL_DISPOSITION_SUPPRESSED
    assert R.DECISION_RULE_DUPLICATE in {s.rule for s in added[0].steps}
    # Changed: the same trade with a 25-pip stop instead of 20, and so a smaller size.
    before, after = changed[0].before.entry, changed[0].after.entry
    assert (before.stop_loss_pips, after.stop_loss_pips) == (20, 25)
    assert after.position_size_lots < before.position_size_lots
    assert {R.DECISION_RULE_STOP_LOSS, R.DECISION_RULE_POSITION_SIZE} <= {
        s.rule for s in changed[0].steps
    }


def test_the_same_strategy_twice_differs_nowhere(tmp_path: Path) -> None:
    first, second = _replayed(
        _recording(tmp_path / "session.jsonl"), ReplayStrategies(), ReplayStrategies()
    )
    assert [s.SerializeToString() for s in first] == [s.SerializeToString() for s in second]
    assert compare(first, second).differences == ()


def test_a_binary_recording_replays_the_same_as_its_json_lines(tmp_path: Path) -> None:
    binary = tmp_path / "session.binpb"
    binary.write_bytes(b"".join(delimited(iter(RECORDING))))
    (from_json,) = _replayed(_recording(tmp_path / "session.jsonl"), ReplayStrategies())
    (from_binary,) = _replayed(binary, ReplayStrategies())
    assert [s.SerializeToString() for s in from_binary] == [
        s.SerializeToString() for s in from_json
    ]
    assert _prediction_ids(from_binary) == ["gbp-72", "eur-72", "jpy-90", "aud-60", "eur-80"]


def test_signals_of_different_predictions_cannot_be_compared(tmp_path: Path) -> None:
    (signals,) = _replayed(_recording(tmp_path / "session.jsonl"), ReplayStrategies())
    with pytest.raises(UnmatchedSignals):
        compare(signals, signals[:-1])


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("{}", "names no field to change"),
        ('{"minConfidenceThreshold": null}', "names no field to change"),
        ('{"minConfidenceThreshold": 1.5}', "strategy.min_confidence_threshold"),
        ('{"minConfidenceTreshold": 0.7}', "not a StrategyConfig"),
        ("0.75", "not a StrategyConfig"),
    ],
)
def test_a_bad_candidate_says_which_field_and_why(tmp_path: Path, text: str, problem: str) -> None:
    with pytest.raises(CandidateError, match=problem):
        _candidate(tmp_path / "bad.json", text)
