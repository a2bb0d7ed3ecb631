"""Parameter sweeps: the values a range names, one process per value, the figures side by
side as a user runs it."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest

from tests.replay.test_replay_command import _files, _replay
from trading_engine.replay.sweep import SweepSpec, candidates, in_processes, parse_sweep


def test_a_range_includes_both_ends_and_reads_as_decimals() -> None:
    assert parse_sweep("minConfidenceThreshold=0.6:0.8:0.05") == SweepSpec(
        "minConfidenceThreshold", (0.6, 0.65, 0.7, 0.75, 0.8)
    )
    # Whole numbers stay whole, for integer fields; a step past the end stops before it.
    assert parse_sweep("maxPositionCount=1:6:2").values == (1, 3, 5)
    assert candidates(parse_sweep("stopLossPips=20:25:5"), {"riskRewardRatio": 3}) == [
        ("stopLossPips=20", '{"riskRewardRatio": 3, "stopLossPips": 20}'),
        ("stopLossPips=25", '{"riskRewardRatio": 3, "stopLossPips": 25}'),
    ]


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("minConfidenceThreshold", "give FIELD=FROM:TO:STEP"),
        ("minConfidenceThreshold=0.6:0.8", "give FIELD=FROM:TO:STEP"),
        ("minConfidenceThreshold=a:0.8:0.1", "FROM, TO and STEP must be numbers"),
        ("minConfidenceThreshold=0.8:0.6:0.1", "TO at or above FROM"),
        ("minConfidenceThreshold=0.6:0.8:0", "STEP above 0"),
        ("minConfidenceThreshold=0:1:0.01", "101 values; at most 50"),
    ],
)
def test_a_malformed_sweep_says_what_is_wrong(text: str, problem: str) -> None:
    with pytest.raises(ValueError, match=re.escape(problem)):
        parse_sweep(text)


def test_each_job_runs_in_a_process_of_its_own_and_results_keep_their_order() -> None:
    results = in_processes(_pid_and, [1, 2])
    assert [value for _, value in results] == [1, 2]
    assert os.getpid() not in {pid for pid, _ in results}


def _pid_and(value: int) -> tuple[int, int]:
    return os.getpid(), value


async def test_a_sweep_of_the_threshold_shows_each_value_side_by_side(tmp_path: Path) -> None:
    recording, _ = _files(tmp_path)
    bars = tmp_path / "bars.csv"
    bars.write_text(
        "symbol,time,high,low,close\n"
        "GBPUSD,2027-01-15T08:10:00Z,1.27500,1.27000,1.27450\n"
        "EURUSD,2027-01-15T08:10:00Z,1.08600,1.08300,1.08350\n"
    )
    shown = await _replay(
        recording, "--prices", bars, "--sweep", "minConfidenceThreshold=0.7:0.75:0.05", "--json"
    )
    assert shown.returncode == 0, shown.stderr
    sides = json.loads(shown.stdout)
    assert [side["name"] for side in sides] == [
        "minConfidenceThreshold=0.7", "minConfidenceThreshold=0.75",
    ]  # fmt: skip
    # At 0.7 gbp-72 (+500.00) and eur-72 (-250.00) trade and close. At 0.75 neither does,
    # and eur-80 (0.80) is no longer eur-72's duplicate: a buy of 1.25 lots at 1.08516 at
    # 08:01 whose 20-pip stop the 08:10 bar reaches: -20 x 10 x 1.25 = -250.00.
    assert [side["stats"]["closed"] for side in sides] == [2, 1]
    assert [side["stats"]["total_profit_loss"] for side in sides] == [250.0, -250.0]


async def test_a_sweep_names_a_bad_field_before_starting_anything(tmp_path: Path) -> None:
    recording, _ = _files(tmp_path)
    shown = await _replay(recording, "--sweep", "minConfidenceTreshold=0.6:0.7:0.1")
    assert shown.returncode == 2
    assert "minConfidenceTreshold=0.6: not a StrategyConfig in JSON" in shown.stderr
    assert "backtesting" not in shown.stderr
