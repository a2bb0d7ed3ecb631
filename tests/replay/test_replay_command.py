"""`trading-engine replay` as a user runs it: a recording, a comparison, a report, and last
week's stored signals at a stricter threshold."""

from __future__ import annotations

import asyncio
import datetime
import json
import re
import subprocess
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

from google.protobuf import json_format

from tests.api.test_model_attribution import OUTCOMES, voted_prediction
from tests.api.trading import ManualClock
from tests.factories import NOW_NS, batch
from tests.replay.sessions import live_session
from tests.replay.test_compare import RECORDING
from tests.support import BIN, ROOT, Tokens
from trading_engine.app import Application


async def _replay(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return await asyncio.to_thread(
        subprocess.run,
        [str(BIN / "trading-engine"), "replay", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _files(folder: Path) -> tuple[Path, Path]:
    recording = folder / "session.jsonl"
    recording.write_text(
        "".join(json_format.MessageToJson(b, indent=None) + "\n" for b in RECORDING)
    )
    strict = folder / "strict.json"
    strict.write_text('{"minConfidenceThreshold": 0.75, "stopLossPips": 25}')
    return recording, strict


async def test_a_comparison_lists_each_difference_with_its_rule_and_writes_a_report(
    tmp_path: Path,
) -> None:
    recording, strict = _files(tmp_path)
    report = tmp_path / "week.html"
    shown = await _replay(recording, "--compare", strict, "--report", report)

    assert shown.returncode == 0, shown.stderr
    out = shown.stdout
    assert "replayed 2 batches (5 predictions) under tier defaults and strict.json" in out
    assert "over 5 predictions: 1 added, 2 removed, 1 changed" in out
    assert (
        "confidence: PASS 0.72 (threshold 0.7): at or above the minimum -> "
        "FAIL 0.72 (threshold 0.75): below the minimum"
    ) in out
    assert "stop_loss: PASS 20" in out
    # One user, so the figures of both strategies, side by side.
    assert ["tier", "defaults", "strict.json"] in [line.split() for line in out.splitlines()]
    charts = _Charts()
    charts.feed(report.read_text())
    assert charts.found == [
        ("equity-chart", "960", "360"), ("drawdown-chart", "960", "360"),
    ]  # fmt: skip


class _Charts(HTMLParser):
    """(id, width, height) of each svg element of a page."""

    def __init__(self) -> None:
        super().__init__()
        self.found: list[tuple[str | None, str | None, str | None]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "svg":
            named = dict(attrs)
            self.found.append((named.get("id"), named.get("width"), named.get("height")))


async def test_json_output_carries_the_differences_and_the_figures(tmp_path: Path) -> None:
    recording, strict = _files(tmp_path)
    shown = await _replay(recording, "--compare", strict, "--json")
    assert shown.returncode == 0, shown.stderr
    document: dict[str, Any] = json.loads(shown.stdout)
    comparison = document["comparison"]
    assert [d["before"]["predictionId"] for d in comparison["removed"]] == ["gbp-72", "eur-72"]
    assert [d["after"]["predictionId"] for d in comparison["added"]] == ["eur-80"]
    assert [s["performance"]["stats"]["signals_total"] for s in document["sides"]] == [5, 5]


async def test_bad_input_is_named_with_what_to_do(tmp_path: Path) -> None:
    recording, _ = _files(tmp_path)
    (tmp_path / "bad.json").write_text('{"minConfidenceThreshold": 2}')
    (tmp_path / "session.txt").write_text("")
    # A frame announcing 200 bytes, holding 3.
    (tmp_path / "cut.binpb").write_bytes(b"\xc8\x01abc")
    cases = {
        (): "give one of a RECORDING file, --from-history or --from-kafka",
        (recording, "--from-history"): "give one of",
        ("--from-history",): "--from-history needs --company",
        ("--from-history", "--company", "acme", "--data-dir", tmp_path / "typo"): (
            "no engine database at"
        ),
        (recording, "--compare", tmp_path / "bad.json"): "strategy.min_confidence_threshold",
        (tmp_path / "session.txt",): ".binpb",
        (tmp_path / "cut.binpb",): "batch 1: cut short (3 of 200)",
        (tmp_path / "missing.jsonl",): "missing.jsonl",
    }
    for args, said in cases.items():
        shown = await _replay(*args)
        assert shown.returncode == 2, (args, shown.stdout)
        assert said in shown.stderr, (args, shown.stderr)


async def test_last_weeks_stored_signals_replay_identically_and_at_a_stricter_threshold(
    live: Application, clock: ManualClock, tokens: Tokens, tmp_path: Path
) -> None:
    start = await live_session(live, clock, tokens)
    await live.stop()
    strict = tmp_path / "strict.json"
    strict.write_text('{"minConfidenceThreshold": 0.75}')

    shown = await _replay(
        "--from-history", "--company", "acme", "--user", "trader-1",
        "--data-dir", live.settings.data_dir,
        "--since", _iso(start), "--until", _iso(clock.now + 1),
        "--compare", strict, "--json",
    )  # fmt: skip

    assert shown.returncode == 0, shown.stderr
    document: dict[str, Any] = json.loads(shown.stdout)
    reproduced = document["reproduction"]
    assert reproduced["identical"] > 200
    assert (reproduced["different"], reproduced["missing"], reproduced["extra"]) == ([], [], [])
    assert [side["name"] for side in document["sides"]] == ["strategies in force", "strict.json"]
    assert document["comparison"]["removed"]
    assert all(side["performance"] is not None for side in document["sides"])


def _iso(ns: int) -> str:
    moment = datetime.datetime.fromtimestamp(ns // 10**9, datetime.UTC)
    return moment.isoformat()


async def test_bars_from_a_csv_give_the_hand_computed_figures(tmp_path: Path) -> None:
    recording, strict = _files(tmp_path)
    bars = tmp_path / "bars.csv"
    # Ten minutes after the decisions (08:00): GBPUSD reaches the take profit of gbp-72
    # (1.27448), EURUSD the stop of eur-72 (1.08316); USDJPY has no bars.
    bars.write_text(
        "symbol,time,open,high,low,close\n"
        "GBPUSD,2027-01-15T08:10:00Z,1.27050,1.27500,1.27000,1.27450\n"
        "EURUSD,2027-01-15T08:10:00Z,1.08510,1.08600,1.08300,1.08350\n"
    )
    shown = await _replay(recording, "--compare", strict, "--prices", bars)
    assert shown.returncode == 0, shown.stderr
    rows = {" ".join(line.split()[:-2]): line.split()[-2:] for line in shown.stdout.splitlines()}
    # Tier defaults: +40 pips x 10 USD x 1.25 lots = +500.00 and -20 x 10 x 1.25 = -250.00,
    # both closing at 08:10: netted, the equity steps once from 25,000 to 25,250, no drawdown
    # (the order of their ids, which name the user, must not decide one).
    # strict.json holds both (confidence 0.72 < 0.75); its eur-80 (stop 25 pips) and jpy-90
    # are still open.
    assert rows["closed"] == ["2", "0"]
    # Nothing closed for strict.json: no hit rate to show, rather than 0%.
    assert rows["hit rate"] == ["50.0%", "n/a"]
    assert rows["profit factor"] == ["2.00", "n/a"]
    assert rows["total P/L (pips)"] == ["20.0", "0.0"]
    assert rows["open at end"] == ["1", "2"]
    assert re.search(r"^total P/L +250\.00 USD +0\.00 USD$", shown.stdout, re.MULTILINE)
    assert re.search(r"^realised drawdown +0\.00 USD +0\.00 USD$", shown.stdout, re.MULTILINE)


async def test_the_bar_time_flag_both_ways_with_costs_as_the_user_sees_them(tmp_path: Path) -> None:
    recording, _ = _files(tmp_path)
    bars = tmp_path / "bars.csv"
    # Ten-minute GBPUSD bars. gbp-72 buys 1.25 lots at 1.27048 at 08:00, stop 1.26848, target
    # 1.27448. The bar labelled 08:00 reaches the stop, the one labelled 08:10 the target.
    bars.write_text(
        "symbol,time,open,high,low,close\n"
        "GBPUSD,2027-01-15T08:00:00Z,1.27050,1.27100,1.26800,1.26900\n"
        "GBPUSD,2027-01-15T08:10:00Z,1.26900,1.27500,1.26890,1.27450\n"
    )

    async def figures(*flags: str) -> dict[str, Any]:
        shown = await _replay(recording, "--prices", bars, "--json", *flags)
        assert shown.returncode == 0, shown.stderr
        document: dict[str, Any] = json.loads(shown.stdout)
        return document

    by_close = await figures()
    # By default a time is the bar's end: the 08:00 bar ended as gbp-72 was decided, so the
    # 08:10 bar decides it: +40 pips x 10 USD x 1.25 lots = +500.00.
    assert by_close["prices"] == "bars from bars.csv, each time the bar's end (--bar-time close)"
    assert by_close["sides"][0]["performance"]["stats"]["total_profit_loss"] == 500.0
    by_open = await figures("--bar-time", "open", "--slippage-pips", "GBPUSD=0.5",
                            "--commission", "3")  # fmt: skip
    # Labelled by its open, the 08:00 bar is the ten minutes after the decision: the stop. The
    # fill 0.5 pip worse (1.27053), the stop too (1.26843): -21 pips; with 1.25 x 3 USD of
    # commission, -21 x 10 x 1.25 - 3.75 = -266.25.
    assert by_open["prices"] == "bars from bars.csv, each time the bar's start (--bar-time open)"
    stats = by_open["sides"][0]["performance"]["stats"]
    assert (stats["total_profit_loss_pips"], stats["total_profit_loss"]) == (-21.0, -266.25)


async def test_a_cost_for_an_unknown_instrument_is_refused(tmp_path: Path) -> None:
    recording, _ = _files(tmp_path)
    shown = await _replay(recording, "--commission", "EURUSX=3")
    assert shown.returncode == 2
    assert "'EURUSX' is not an instrument the engine knows" in shown.stderr


async def test_the_replay_attributes_each_model_one_always_right_one_always_wrong(
    tmp_path: Path,
) -> None:
    # The desk of tests/api/test_model_attribution.py as a recording: EURUSD and GBPUSD buys
    # reach their targets in the bars, USDJPY and AUDUSD their stops.
    recording = tmp_path / "models.jsonl"
    desk = batch(
        "b-models", [voted_prediction(symbol, money > 0) for symbol, money in OUTCOMES.items()]
    )
    desk.produced_at.FromNanoseconds(NOW_NS)
    recording.write_text(json_format.MessageToJson(desk, indent=None) + "\n")
    bars = tmp_path / "bars.csv"
    bars.write_text(
        "symbol,time,high,low,close\n"
        "EURUSD,2027-01-15T08:10:00Z,1.09000,1.08500,1.08950\n"
        "GBPUSD,2027-01-15T08:10:00Z,1.27500,1.27000,1.27450\n"
        "USDJPY,2027-01-15T08:10:00Z,151.300,151.000,151.050\n"
        "AUDUSD,2027-01-15T08:10:00Z,0.65800,0.65500,0.65520\n"
    )
    shown = await _replay(recording, "--prices", bars, "--json")
    assert shown.returncode == 0, shown.stderr
    [side] = json.loads(shown.stdout)["sides"]
    models = {m["model_id"]: m["overall"] for m in side["performance"]["models"]}
    assert sorted(models) == ["contrarian", "ensemble", "oracle"]
    assert [(models[m]["calls"], models[m]["correct"]) for m in sorted(models)] == [
        (4, 0), (4, 2), (4, 4),
    ]  # fmt: skip
    text = await _replay(recording, "--prices", bars)
    rows = {line.split()[0]: line.split() for line in text.stdout.splitlines() if line}
    assert rows["oracle"][1:5] == ["4", "4", "4", "100.0%"]
    assert rows["contrarian"][1:5] == ["4", "4", "0", "0.0%"]


async def test_the_shipped_example_closes_trades_against_its_bars() -> None:
    examples = ROOT / "docs" / "examples"
    shown = await _replay(
        examples / "session.jsonl", "--compare", examples / "threshold-075.json",
        "--prices", examples / "bars.csv", "--json",
    )  # fmt: skip
    assert shown.returncode == 0, shown.stderr
    document = json.loads(shown.stdout)
    # The bars hold the recording's own prices: nothing to warn of.
    assert document["warnings"] == []
    closed = [side["performance"]["stats"]["closed"] for side in document["sides"]]
    assert min(closed) >= 10, closed
