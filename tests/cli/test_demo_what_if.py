"""The README's what-if after `make run`: the demo records executions through its broker, so
last week at a stricter threshold has closed trades, curves, a trade list and the signals
the threshold changes, in a report a real browser renders."""

from __future__ import annotations

import asyncio
import datetime
import signal
import subprocess
from pathlib import Path

from tests.browser import chromium, rendered_dom, screenshot
from tests.cli.test_dev_stack import Banner
from tests.replay.test_report import _Page
from tests.support import BIN, http_json_async, running
from trading_engine.devstack.brokers import free_port

BLUE = (0x00, 0x72, 0xB2)
ORANGE = (0xD5, 0x5E, 0x00)


async def _closed_for_trader_1(rest: str, token: str) -> int:
    """trader-1's closed signals; 0 while the gateway does not answer with them yet."""
    try:
        status, body = await http_json_async(
            "GET",
            f"{rest}/api/v1/performance/summary",
            headers={"authorization": f"Bearer {token}"},
        )
    except (OSError, ValueError):  # not listening yet, or a gateway page that is not JSON
        return 0
    return int(body["summary"]["stats"].get("closed", 0)) if status == 200 else 0


async def _signalled_below(rest: str, token: str, threshold: float) -> bool:
    """Whether trader-1 got an actionable signal below `threshold` confidence: one the
    README's stricter strategy removes."""
    try:
        status, pages = await http_json_async(
            "GET",
            f"{rest}/api/v1/signals/history",
            headers={"authorization": f"Bearer {token}"},
        )
    except (OSError, ValueError):
        return False
    if status != 200:
        return False
    return any(
        signal.get("confidence", 0.0) < threshold
        for page in pages
        for signal in page.get("signals", [])
    )


async def test_the_readme_what_if_after_the_demo_has_closed_trades_curves_and_the_diff(
    tmp_path: Path,
) -> None:
    chromium()  # first: without a browser the report cannot be looked at
    http_port = free_port()
    rest = f"http://127.0.0.1:{http_port}"
    async with running(
        "dev", "--demo", "--demo-hold-seconds", "2", "--grpc-port", str(free_port()),
        "--http-port", str(http_port), "--envoy-admin-port", str(free_port()),
        "--data-dir", str(tmp_path),
    ) as dev:  # fmt: skip
        await dev.wait_for_line(r"Press Ctrl-C")
        token = Banner(dev.output).token
        # The broker fills trader-1's signals and closes each within two seconds; the engine
        # records them from the bus (another process: ask until it has enough).
        # And the demo's random confidences must have given the README's threshold (0.75)
        # something to remove, or the signal diff would rightly be empty.
        async with asyncio.timeout(90):
            while not (  # noqa: ASYNC110 - another process's state: ask until it holds
                await _closed_for_trader_1(rest, token) >= 6
                and await _signalled_below(rest, token, 0.75)
            ):
                await asyncio.sleep(0.5)
        assert await dev.signal_and_wait(signal.SIGINT) == 0

    # As the README pastes it, with this stack's data directory.
    strict = tmp_path / "strict.json"
    strict.write_text('{"minConfidenceThreshold": 0.75}')
    since = (datetime.datetime.now(datetime.UTC) - datetime.timedelta(days=7)).strftime("%F")
    report = tmp_path / "week.html"
    command = [
        str(BIN / "trading-engine"), "replay", "--from-history", "--company", "acme",
        "--user", "trader-1", "--since", since, "--compare", str(strict),
        "--report", str(report), "--data-dir", str(tmp_path),
    ]  # fmt: skip
    replay = await asyncio.to_thread(
        subprocess.run, command, capture_output=True, text=True, timeout=120, check=False
    )
    assert replay.returncode == 0, replay.stderr
    assert "0 different" in replay.stdout, replay.stdout

    page = _Page(await asyncio.to_thread(rendered_dom, report, tmp_path / "dom-profile"))
    sections = [s.attrs["id"] for s in page.find("section")]
    assert {"figures", "equity", "drawdown", "signals", "trades"} <= set(sections), sections
    # Closed trades in the trade list, by the demo broker's exits.
    reasons = {td.text for td in page.find("td", section="trades")}
    assert reasons & {"stop loss", "take profit", "manual"}, reasons
    # The stricter threshold removes some of the signals, each with its rule.
    assert "confidence: PASS" in " ".join(td.text for td in page.find("td", section="signals"))
    # The signals in force that traded live are valued by the demo broker's recorded closes.
    about = " ".join(p.text for p in page.find("p", section="about"))
    assert "trade as they did live and are valued by the execution results recorded" in about
    # The equity curve steps at the closes.
    [line] = [
        p
        for p in page.find("polyline", "equity-chart")
        if p.attrs["data-side"].startswith("strategies")
    ]
    assert len(line.attrs["points"].split()) > 3

    image = await asyncio.to_thread(screenshot, report, tmp_path, 1100, 2000)
    assert image.rows_with(BLUE)
    assert image.rows_with(ORANGE)
