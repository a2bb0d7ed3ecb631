"""The report as a reader sees it: a real headless Chromium renders the page a replay wrote,
and its screenshot shows the warning, the tables and both strategies' lines in the charts."""

from __future__ import annotations

import asyncio
from pathlib import Path

from tests.browser import chromium, rendered_dom, screenshot
from tests.replay.test_replay_command import _files, _replay
from tests.replay.test_report import _Page

BLUE = (0x00, 0x72, 0xB2)  # the first strategy's line
ORANGE = (0xD5, 0x5E, 0x00)  # the second's
WARNING = (0xFF, 0xF3, 0xCD)  # the background of a warning


async def test_chromium_renders_every_section_and_both_lines(tmp_path: Path) -> None:
    chromium()  # before the replay: without a browser there is nothing to look with
    recording, strict = _files(tmp_path)
    bars = tmp_path / "bars.csv"
    bars.write_text(
        "symbol,time,open,high,low,close\n"
        "GBPUSD,2027-01-15T08:10:00Z,1.27050,1.27500,1.27000,1.27450\n"
        "EURUSD,2027-01-15T08:10:00Z,1.08510,1.08600,1.08300,1.08350\n"
    )
    report = tmp_path / "week.html"
    shown = await _replay(recording, "--compare", strict, "--prices", bars, "--report", report)
    assert shown.returncode == 0, shown.stderr

    # Chromium's own parse of the page holds every section, the two charts, the trade list.
    page = _Page(await asyncio.to_thread(rendered_dom, report, tmp_path / "dom-profile"))
    assert [s.attrs["id"] for s in page.find("section")] == [
        "about", "parameters", "figures", "equity", "drawdown", "signals", "trades", "symbols",
        "models",
    ]  # fmt: skip
    assert [svg.attrs["id"] for svg in page.find("svg")] == ["equity-chart", "drawdown-chart"]
    assert "take profit" in [td.text for td in page.find("td", section="trades")]

    image = await asyncio.to_thread(screenshot, report, tmp_path, 1100, 2600)
    assert (image.width, image.height) == (1100, 2600)
    # strict.json closed nothing: a warning in its colour near the top of the page.
    warning_rows = image.rows_with(WARNING)
    assert warning_rows
    assert min(warning_rows) < 200
    # Both lines are drawn, below the warning: tier defaults' equity steps up at 08:10 (so its
    # blue spans rows at two levels), strict.json's orange stays flat.
    blue, orange = image.rows_with(BLUE), image.rows_with(ORANGE)
    assert blue
    assert orange
    assert min(blue) > max(warning_rows)
    assert max(blue) - min(blue) > 50
