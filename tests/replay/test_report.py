"""The backtest report: the figures as a user reads them, the charts as a browser draws them."""

from __future__ import annotations

import dataclasses
import html
import itertools
import re
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from html.parser import HTMLParser

import pytest

from tradeflow.trading.v1 import execution_pb2, signal_pb2
from trading_engine.core.performance import SignalResult, summarize
from trading_engine.replay.report import (
    ParameterChange,
    ReportDetails,
    ReportSide,
    figures_table,
    html_report,
)
from trading_engine.replay.simulate import Trade

WIN: int = execution_pb2.SIGNAL_OUTCOME_WIN
LOSS: int = execution_pb2.SIGNAL_OUTCOME_LOSS
OPEN: int = execution_pb2.SIGNAL_OUTCOME_OPEN
NOT_FILLED: int = execution_pb2.SIGNAL_OUTCOME_NOT_FILLED
STARTING_EQUITY = 10_000.0
HOSTILE = "<script>alert(1)</script>"


def _at(hour: int, minute: int = 0) -> int:
    """An instant of 15 March 2024 in UTC, in ns since the epoch."""
    return int(datetime(2024, 3, 15, hour, minute, tzinfo=UTC).timestamp()) * 1_000_000_000


RUN_START_NS = _at(8)


def _result(
    signal_id: str, outcome: int, profit_loss: float = 0.0, closed_ns: int = 0
) -> SignalResult:
    filled = outcome != NOT_FILLED
    return SignalResult(
        signal_id=signal_id,
        symbol="EURUSD",
        signal_type=signal_pb2.SIGNAL_TYPE_BUY,
        strength=0.8,
        confidence=0.7,
        generated_ns=RUN_START_NS,
        outcome=outcome,
        # 10 USD a pip.
        profit_loss_pips=profit_loss / 10.0,
        profit_loss=profit_loss,
        slippage_pips=0.0 if filled else None,
        execution_latency_ns=1_000_000 if filled else None,
        closed_ns=closed_ns,
    )


def _closes(first_hour: int, minute: int, *profit_losses: float) -> list[SignalResult]:
    """Closed signals an hour apart, won or lost as their sign says."""
    return [
        _result(f"c{index}", WIN if value > 0 else LOSS, value, _at(first_hour + index, minute))
        for index, value in enumerate(profit_losses)
    ]


def _side(
    name: str, results: Iterable[SignalResult], open_at_end: int = 0, never_filled: int = 0
) -> ReportSide:
    """A side as the replay builds it: the figures by `summarize`, the equity after each close."""
    rows = list(results)
    closed = sorted((row for row in rows if row.outcome in (WIN, LOSS)), key=lambda r: r.closed_ns)
    equities = itertools.accumulate((row.profit_loss for row in closed), initial=STARTING_EQUITY)
    times = (RUN_START_NS, *(row.closed_ns for row in closed))
    return ReportSide(
        name=name,
        stats=summarize(rows, STARTING_EQUITY),
        curve=tuple(zip(times, equities, strict=True)),
        starting_equity=STARTING_EQUITY,
        open_at_end=open_at_end,
        never_filled=never_filled,
    )


# Equity 10,000 -> 10,200 -> 10,100 -> 10,250 -> 9,950 (the deepest fall: 300 below the
# 10,250 peak, 2.9%) -> 10,050 -> 10,300 -> 10,250 -> 10,300, closing 09:00 to 16:00.
LIVE = _side(
    "live strategy v12",
    [
        *_closes(9, 0, 200, -100, 150, -300, 100, 250, -50, 50),
        _result("open", OPEN),
        _result("expired", NOT_FILLED),
    ],
    open_at_end=1,
    never_filled=1,
)
# Three wins closing 09:30 to 11:30: nothing lost, no drawdown.
CANDIDATE = _side("candidate.json", _closes(9, 30, 100, 50, 25))
# Nothing closed: the curve is its start alone.
IDLE = _side(HOSTILE, [])


def _cells(table: str, label: str) -> list[str]:
    """The values in the row of `label`; cells are two or more spaces apart."""
    line = next(line for line in table.splitlines() if line.startswith(f"{label}  "))
    return re.split(r" {2,}", line)[1:]


def test_the_table_has_a_column_per_side_with_the_figures_formatted() -> None:
    table = figures_table([LIVE, CANDIDATE])
    lines = table.splitlines()

    assert re.split(r" {2,}", lines[0].strip()) == ["live strategy v12", "candidate.json"]
    assert set(lines[1]) == {"-"}
    # Right-aligned: every column ends where its header ends.
    assert len({len(line) for line in lines}) == 1
    assert all(len(line) <= 100 for line in lines)
    assert _cells(table, "signals") == ["10", "3"]
    assert _cells(table, "executed") == ["9", "3"]
    assert _cells(table, "closed") == ["8", "3"]
    assert _cells(table, "wins") == ["5", "3"]
    assert _cells(table, "losses") == ["3", "0"]
    assert _cells(table, "breakevens") == ["0", "0"]
    assert _cells(table, "hit rate") == ["62.5%", "100.0%"]
    assert _cells(table, "profit factor") == ["1.67", "n/a"]
    assert _cells(table, "expectancy") == ["37.50 USD", "58.33 USD"]
    assert _cells(table, "total P/L (pips)") == ["30.0", "17.5"]
    assert _cells(table, "total P/L") == ["300.00 USD", "175.00 USD"]
    assert _cells(table, "realised drawdown") == ["300.00 USD", "0.00 USD"]
    assert _cells(table, "realised drawdown %") == ["2.9%", "0.0%"]
    # Not marked to market: the figures were summarized without prices.
    assert _cells(table, "marked-to-market drawdown") == ["n/a", "n/a"]
    # Each closed on one day, and ended it up: no Sharpe (it needs two days), no Sortino (it
    # needs a losing day).
    assert _cells(table, "Sharpe (daily, x sqrt 365)") == ["n/a", "n/a"]
    assert _cells(table, "Sortino (daily, x sqrt 365)") == ["n/a", "n/a"]
    assert _cells(table, "longest losing streak") == ["1", "0"]
    assert _cells(table, "open at end") == ["1", "0"]
    assert _cells(table, "never filled") == ["1", "0"]


def test_money_has_thousands_separators_and_no_negative_zero() -> None:
    stats = dataclasses.replace(LIVE.stats, total_profit_loss=1_234_567.891, expectancy=-0.001)
    table = figures_table([dataclasses.replace(LIVE, stats=stats, currency="EUR")])

    assert _cells(table, "total P/L") == ["1,234,567.89 EUR"]
    assert _cells(table, "expectancy") == ["0.00 EUR"]


def test_long_names_keep_both_ends_and_two_sides_fit_in_100_columns() -> None:
    first = dataclasses.replace(LIVE, name="strategies/momentum/" + "x" * 60 + "-v12.json")
    second = dataclasses.replace(LIVE, name="strategies/momentum/" + "x" * 60 + "-v13.json")
    lines = figures_table([first, second]).splitlines()

    assert max(len(line) for line in lines) <= 100
    assert re.findall(r"strat\S*…\S*-v1[23]\.json", lines[0]) == [
        "strategies/mome…xxxxxxx-v12.json",
        "strategies/mome…xxxxxxx-v13.json",
    ]


@dataclasses.dataclass
class _Element:
    tag: str
    attrs: dict[str, str]
    # The id of the svg it sits in; "" outside any.
    chart: str
    text: str = ""
    # The id of the section it sits in; "" outside any.
    section: str = ""


class _Page(HTMLParser):
    """Every start tag of a page, with the text inside and the chart it belongs to."""

    def __init__(self, document: str) -> None:
        super().__init__(convert_charrefs=True)
        self.elements: list[_Element] = []
        self._chart = ""
        self._section = ""
        self._open: list[_Element] = []
        self.feed(document)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        element = _Element(
            tag, {name: value or "" for name, value in attrs}, self._chart, section=self._section
        )
        if tag == "svg":
            self._chart = element.attrs["id"]
        if tag == "section":
            self._section = element.attrs["id"]
        self.elements.append(element)
        self._open.append(element)

    def handle_endtag(self, tag: str) -> None:
        if tag == "svg":
            self._chart = ""
        if tag == "section":
            self._section = ""
        while self._open and self._open.pop().tag != tag:
            pass

    def handle_data(self, data: str) -> None:
        # As a browser's textContent: the text of an element and of everything inside it.
        for element in self._open:
            element.text += data

    def find(
        self, tag: str, chart: str = "", css_class: str = "", section: str = ""
    ) -> list[_Element]:
        return [
            element
            for element in self.elements
            if element.tag == tag
            and (not chart or element.chart == chart)
            and (not css_class or element.attrs.get("class") == css_class)
            and (not section or element.section == section)
        ]

    def polyline(self, chart: str, side: str) -> list[tuple[float, float]]:
        """The vertices of a side's line, in pixels."""
        (line,) = [e for e in self.find("polyline", chart) if e.attrs["data-side"] == side]
        return [
            (float(x), float(y)) for x, y in (p.split(",") for p in line.attrs["points"].split())
        ]

    def value_to_y(self, chart: str) -> Callable[[float], float]:
        """Where a value lands on the chart's y axis, read off its first and last tick labels."""
        ticks = [
            (float(tick.text.replace(",", "")), float(tick.attrs["y"]))
            for tick in self.find("text", chart, "y-tick")
        ]
        (low, low_y), (high, high_y) = ticks[0], ticks[-1]
        return lambda value: low_y + (value - low) * (high_y - low_y) / (high - low)


def _report(*sides: ReportSide) -> tuple[str, _Page]:
    document = html_report(sides, "Backtest: v12 & candidate", _at(18))
    return document, _Page(document)


def test_the_page_is_self_contained_with_the_title_time_and_figures() -> None:
    document, page = _report(LIVE, CANDIDATE)

    assert document.startswith("<!DOCTYPE html>")
    for outside in ("<script", "<link", " src=", " href=", "url(", "@import"):
        assert outside not in document
    assert "Backtest: v12 &amp; candidate" in document
    assert "2024-03-15T18:00:00Z" in document
    figures = page.find("th", section="figures")
    rows = [th.text for th in figures if th.attrs.get("scope") == "row"]
    text_rows = [line.split("  ")[0] for line in figures_table([LIVE]).splitlines()[2:]]
    assert rows == text_rows
    assert [th.text for th in figures if th.attrs.get("scope") == "col"] == [
        "live strategy v12",
        "candidate.json",
    ]
    assert "62.5%" in [td.text for td in page.find("td")]


def test_two_charts_of_fixed_size_with_ticks_and_a_legend() -> None:
    _, page = _report(LIVE, CANDIDATE)

    charts = page.find("svg")
    assert [svg.attrs["id"] for svg in charts] == ["equity-chart", "drawdown-chart"]
    for svg in charts:
        assert (svg.attrs["width"], svg.attrs["height"]) == ("960", "360")
        assert svg.attrs["viewbox"] == "0 0 960 360"
        assert 4 <= len(page.find("text", svg.attrs["id"], "y-tick")) <= 6
        # 08:00 to 16:00 UTC, every two hours.
        assert [tick.text for tick in page.find("text", svg.attrs["id"], "x-tick")] == [
            f"2024-03-15 {hour:02d}:00" for hour in (8, 10, 12, 14, 16)
        ]
        assert [e.text for e in page.find("text", svg.attrs["id"], "y-unit")] == ["USD"]
        legend = [g.text for g in page.find("g", svg.attrs["id"], "legend")]
        assert legend == ["live strategy v12", "candidate.json"]
        colours = [line.attrs["stroke"] for line in page.find("polyline", svg.attrs["id"])]
        assert len(set(colours)) == 2


def test_equity_lines_are_steps_from_the_starting_equity() -> None:
    _, page = _report(LIVE, CANDIDATE)
    y_of = page.value_to_y("equity-chart")

    live = page.polyline("equity-chart", "live strategy v12")
    candidate = page.polyline("equity-chart", "candidate.json")
    # The start, then a vertical step at each close: live's last close ends the chart, the
    # candidate's equity holds from its last close (11:30) to the end.
    assert len(live) == 1 + 2 * 8
    assert len(candidate) == 1 + 2 * 3 + 1
    for vertices in (live, candidate):
        assert all(a[0] == b[0] or a[1] == b[1] for a, b in itertools.pairwise(vertices))
        assert vertices[0][1] == pytest.approx(y_of(STARTING_EQUITY), abs=0.2)
    assert live[-1][1] == pytest.approx(y_of(10_300.0), abs=0.2)
    assert candidate[-1][1] == pytest.approx(y_of(10_175.0), abs=0.2)
    assert live[-1][0] == candidate[-1][0]


def test_the_drawdown_line_reaches_down_to_the_max_drawdown() -> None:
    _, page = _report(LIVE, CANDIDATE)
    y_of = page.value_to_y("drawdown-chart")

    ticks = [tick.text for tick in page.find("text", "drawdown-chart", "y-tick")]
    assert ticks[-1] == "0"
    lowest = max(y for _, y in page.polyline("drawdown-chart", "live strategy v12"))
    assert lowest == pytest.approx(y_of(-LIVE.stats.max_drawdown), abs=0.2)
    never_fell = {y for _, y in page.polyline("drawdown-chart", "candidate.json")}
    assert all(y == pytest.approx(y_of(0.0), abs=0.2) for y in never_fell)


def test_a_hostile_name_appears_only_escaped() -> None:
    document, page = _report(LIVE, IDLE)

    assert HOSTILE not in document
    assert html.escape(HOSTILE) in document
    assert page.find("script") == []
    sides = [line.attrs["data-side"] for line in page.find("polyline")]
    assert sides == ["live strategy v12", HOSTILE] * 2


def test_a_side_with_nothing_closed_is_a_flat_line_across_the_chart() -> None:
    _, page = _report(LIVE, IDLE)

    live = page.polyline("equity-chart", "live strategy v12")
    idle = page.polyline("equity-chart", HOSTILE)
    assert [x for x, _ in idle] == [live[0][0], live[-1][0]]
    assert idle[0][1] == idle[1][1] == live[0][1]


def test_all_sides_flat_keep_the_line_off_the_frame() -> None:
    _, page = _report(IDLE)

    (first, last) = page.polyline("equity-chart", HOSTILE)
    assert first[1] == last[1]
    tick_ys = [float(tick.attrs["y"]) for tick in page.find("text", "equity-chart", "y-tick")]
    assert min(tick_ys) < first[1] < max(tick_ys)
    assert 3 <= len(page.find("text", "equity-chart", "x-tick")) <= 6
    drawdown = page.polyline("drawdown-chart", HOSTILE)
    zero_y = page.value_to_y("drawdown-chart")(0.0)
    assert all(y == pytest.approx(zero_y, abs=0.2) for _, y in drawdown)


def test_no_sides_is_an_error() -> None:
    with pytest.raises(ValueError, match="at least one side"):
        html_report([], "empty", 0)
    with pytest.raises(ValueError, match="at least one side"):
        figures_table([])


@pytest.mark.parametrize(
    ("curve", "problem"),
    [
        ((), "must start at the starting equity"),
        (((RUN_START_NS, 9_000.0),), "must start at the starting equity"),
        (((RUN_START_NS, STARTING_EQUITY), (RUN_START_NS - 1, 10_100.0)), "back in time"),
    ],
)
def test_a_curve_that_does_not_fit_its_side_is_refused(
    curve: tuple[tuple[int, float], ...], problem: str
) -> None:
    with pytest.raises(ValueError, match=problem):
        dataclasses.replace(LIVE, curve=curve)


def _trade(signal_id: str, hour: int, money: float | None) -> Trade:
    """A EURUSD buy of 1 lot filled at 1.10000 at `hour`, closed an hour later for `money`
    (10 USD a pip), or still open (None)."""
    if money is None:
        return Trade(signal_id, "EURUSD", 1, 1.0, _at(hour), 1.1, OPEN)
    return Trade(
        signal_id, "EURUSD", 1, 1.0, _at(hour), 1.1, WIN if money > 0 else LOSS,
        closed_ns=_at(hour + 1), exit_price=round(1.1 + money / 100_000, 5),
        close_reason=execution_pb2.CLOSE_REASON_TAKE_PROFIT if money > 0
        else execution_pb2.CLOSE_REASON_STOP_LOSS,
        profit_loss_pips=money / 10, profit_loss=money,
    )  # fmt: skip


def test_the_page_has_every_section_a_quant_reads_in_order() -> None:
    traded = dataclasses.replace(
        LIVE, trades=[_trade("t1", 9, 200.0), _trade("t2", 10, -100.0), _trade("t3", 11, None)],
        by_symbol=[("EURUSD", LIVE.stats)],
    )  # fmt: skip
    details = ReportDetails(
        prices="bars from week.csv, each time the bar's end (--bar-time close)",
        warnings=["EURUSD: 1 of 40 gaps between bars are not a whole number of its usual 1 h"],
        parameters=[ParameterChange("min_confidence_threshold", ("0.7", "0.75"))],
    )
    page = _Page(html_report([traded, CANDIDATE], "week", _at(18), details))

    assert [section.attrs["id"] for section in page.find("section")] == [
        "about", "parameters", "figures", "equity", "drawdown", "trades", "symbols",
    ]  # fmt: skip
    about = " ".join(p.text for p in page.find("p", section="about"))
    assert "Simulated against bars from week.csv, each time the bar's end" in about
    assert [p.text for p in page.find("p", css_class="warning")] == details.warnings
    assert [td.text for td in page.find("td", section="parameters")] == ["0.7", "0.75"]
    # The trade list: entry, exit, reason, pips and money; an open trade says so.
    rows = _rows(page, "trades")
    assert rows[0] == [
        "2024-03-15 09:00:00", "EURUSD", "buy", "1", "1.1", "2024-03-15 10:00:00", "1.102",
        "take profit", "20.0", "200.00 USD",
    ]  # fmt: skip
    assert rows[1][7:] == ["stop loss", "-10.0", "-100.00 USD"]
    assert rows[2][5:] == ["open", "", "", "", ""]


def _rows(page: _Page, section: str) -> list[list[str]]:
    """The cell texts of each body row of the section's tables (all of the same columns)."""
    headers = [th for th in page.find("th", section=section) if th.attrs.get("scope") == "col"]
    width = len(headers) // len(page.find("table", section=section))
    cells = [td.text for td in page.find("td", section=section)]
    return [cells[start : start + width] for start in range(0, len(cells), width)]


def test_nothing_closed_is_a_visible_warning_and_undefined_figures_read_n_a() -> None:
    page = _Page(html_report([IDLE], "idle", _at(18)))

    [warning] = page.find("p", css_class="warning")
    assert "nothing closed, so there is no profit, loss, hit rate or drawdown" in warning.text
    figures = dict(zip(
        [th.text for th in page.find("th", section="figures") if th.attrs.get("scope") == "row"],
        [td.text for td in page.find("td", section="figures")],
        strict=True,
    ))  # fmt: skip
    assert figures["hit rate"] == "n/a"
    assert figures["expectancy"] == "n/a"
    assert figures["average trade"] == "n/a"


def test_two_strategies_with_the_same_curve_are_named_not_hidden() -> None:
    twin = dataclasses.replace(LIVE, name="live strategy v13")
    page = _Page(html_report([LIVE, twin, CANDIDATE], "twins", _at(18)))

    [note] = page.find("p", css_class="note identical")
    assert note.text == (
        "live strategy v12 and live strategy v13 have the same equity curve: their lines lie "
        "on each other (the later dashed)."
    )
