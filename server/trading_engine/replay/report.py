"""The backtest report: strategies' figures and curves side by side.

`figures_table` lays the figures out for a terminal; `html_report` makes one
self-contained page (inline CSS and SVG, no script, nothing fetched) with the
same figures, an equity chart and a drawdown chart, because people would
rather look at a curve than read one. Both are pure: they return strings and
the caller writes them where it likes.
"""

from __future__ import annotations

import html
import itertools
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Final

from trading_engine.core.attribution import ModelBreakdown, ModelFigures
from trading_engine.core.performance import PerformanceStats

# (ns since the Unix epoch UTC, a value in the account currency).
_Point = tuple[int, float]

_NOT_APPLICABLE: Final = "n/a"
# Longer names lose their middle in the text table and the legends: two sides fit in 100 columns.
_NAME_WIDTH: Final = 32

_WIDTH: Final = 960
_HEIGHT: Final = 360
_PLOT_LEFT: Final = 96
# Room on the right for half of the last time label.
_PLOT_RIGHT: Final = 896
_PLOT_BOTTOM: Final = 312
_DASHES: Final = ' stroke-dasharray="6 4"'
_LEGEND_COLUMNS: Final = 3
_LEGEND_SLOT: Final = 264
# The baseline of the legend's first row; each row is one `_LEGEND_ROW` lower.
_LEGEND_TOP: Final = 18
_LEGEND_ROW: Final = 18
# Okabe-Ito: told apart with the common kinds of colour blindness too. Sides beyond six reuse them.
_PALETTE: Final = ("#0072b2", "#d55e00", "#009e73", "#cc79a7", "#e69f00", "#56b4e9")

_MINUTE_NS: Final = 60 * 1_000_000_000
_HOUR_NS: Final = 60 * _MINUTE_NS
_DAY_NS: Final = 24 * _HOUR_NS
# Each step at most doubles the one before; past a week they keep doubling.
_TIME_STEPS_NS: Final = (
    *(minutes * _MINUTE_NS for minutes in (1, 2, 3, 5, 10, 15, 30)),
    *(hours * _HOUR_NS for hours in (1, 2, 3, 6, 12)),
    *(days * _DAY_NS for days in (1, 2, 4, 7)),
)
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)

_STYLE: Final = """
body { font-family: system-ui, sans-serif; margin: 2rem; color: #222; }
table.figures { border-collapse: collapse; font-variant-numeric: tabular-nums; }
table.figures th, table.figures td { padding: 0.2rem 0.8rem; border-bottom: 1px solid #ddd; }
table.figures td, table.figures th[scope=col] { text-align: right; }
table.figures th[scope=row] { text-align: left; font-weight: normal; }
.swatch { display: inline-block; width: 0.8em; height: 0.8em; margin-right: 0.4em; }
svg { max-width: 100%; height: auto; }
svg text { font: 11px system-ui, sans-serif; fill: #444; }
"""


@dataclass(frozen=True)
class ReportSide:
    """One strategy's run in a report: its figures and its equity curve.

    `curve` holds (ns since the Unix epoch UTC, equity) oldest first: the start
    of the run at `starting_equity`, then the equity after each closed trade.
    Raises ValueError for a curve that does not start so or goes back in time.
    """

    # Shown as given, e.g. "live strategy v12" or "candidate.json".
    name: str
    stats: PerformanceStats
    curve: Sequence[tuple[int, float]]
    starting_equity: float
    # The account currency of the money figures and of `curve`.
    currency: str = "USD"
    # Filled positions still open when the run ended; the money figures leave them out.
    open_at_end: int = 0
    # Orders that expired or were still waiting when the run ended.
    never_filled: int = 0
    # Per model id in the votes, ascending.
    models: Sequence[ModelBreakdown] = ()

    def __post_init__(self) -> None:
        if not self.curve or self.curve[0][1] != self.starting_equity:
            raise ValueError(
                f"side {self.name!r}: the curve must start at the starting equity "
                f"{self.starting_equity}"
            )
        if any(later[0] < earlier[0] for earlier, later in itertools.pairwise(self.curve)):
            raise ValueError(f"side {self.name!r}: the curve goes back in time")


def _fixed(value: float, decimals: int) -> str:
    # Adding 0.0 turns -0.0 into 0.0: a loss that rounds to nothing reads 0.00, not -0.00.
    return f"{round(value, decimals) + 0.0:,.{decimals}f}"


def _count(value: int) -> str:
    return f"{value:,}"


def _percent(fraction: float) -> str:
    return f"{_fixed(fraction * 100.0, 1)}%"


def _money(value: float, currency: str) -> str:
    return f"{_fixed(value, 2)} {currency}"


def _optional(value: float | None, currency: str) -> str:
    return _NOT_APPLICABLE if value is None else _money(value, currency)


def _optional_percent(value: float | None) -> str:
    return _NOT_APPLICABLE if value is None else _percent(value)


def _ratio(value: float | None) -> str:
    return _NOT_APPLICABLE if value is None else _fixed(value, 2)


def _duration(duration_ns: int, closed: int) -> str:
    """A duration as "2h 05m" (or "3d 4h", "45s"); n/a when nothing closed."""
    if not closed:
        return _NOT_APPLICABLE
    seconds = duration_ns // 1_000_000_000
    days, hours, minutes = seconds // 86_400, seconds // 3_600 % 24, seconds // 60 % 60
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes:02d}m"
    return f"{minutes}m {seconds % 60:02d}s" if minutes else f"{seconds}s"


def _profit_factor(value: float | None) -> str:
    # None: nothing lost, so the ratio has no denominator.
    return _NOT_APPLICABLE if value is None else _fixed(value, 2)


# (label, the side's value as shown), in the order both reports show them.
_FIGURES: Final[tuple[tuple[str, Callable[[ReportSide], str]], ...]] = (
    ("signals", lambda side: _count(side.stats.signals_total)),
    ("executed", lambda side: _count(side.stats.executed)),
    ("closed", lambda side: _count(side.stats.closed)),
    ("wins", lambda side: _count(side.stats.wins)),
    ("losses", lambda side: _count(side.stats.losses)),
    ("breakevens", lambda side: _count(side.stats.breakevens)),
    ("hit rate", lambda side: _percent(side.stats.hit_rate)),
    ("profit factor", lambda side: _profit_factor(side.stats.profit_factor)),
    ("expectancy (pips)", lambda side: _fixed(side.stats.expectancy_pips, 1)),
    ("expectancy", lambda side: _money(side.stats.expectancy, side.currency)),
    ("total P/L (pips)", lambda side: _fixed(side.stats.total_profit_loss_pips, 1)),
    ("total P/L", lambda side: _money(side.stats.total_profit_loss, side.currency)),
    # Drawdowns: the largest fall below a peak, and the largest as a % of its peak.
    ("realised drawdown", lambda side: _money(side.stats.max_drawdown, side.currency)),
    ("realised drawdown %", lambda side: _percent(side.stats.max_drawdown_fraction)),
    (
        "marked-to-market drawdown",
        lambda side: _optional(side.stats.max_drawdown_marked_to_market, side.currency),
    ),
    (
        "marked-to-market drawdown %",
        lambda side: _optional_percent(side.stats.max_drawdown_marked_to_market_fraction),
    ),
    # Daily returns over UTC days, annualised over 365 (RiskAdjustedStats).
    ("Sharpe (daily, x sqrt 365)", lambda side: _ratio(side.stats.risk_adjusted.sharpe_ratio)),
    ("Sortino (daily, x sqrt 365)", lambda side: _ratio(side.stats.risk_adjusted.sortino_ratio)),
    ("Calmar", lambda side: _ratio(side.stats.risk_adjusted.calmar_ratio)),
    ("annual return", lambda side: _optional_percent(side.stats.risk_adjusted.annual_return)),
    ("exposure", lambda side: _percent(side.stats.risk_adjusted.exposure)),
    (
        "average trade",
        lambda side: _duration(
            side.stats.risk_adjusted.average_trade_duration_ns, side.stats.closed
        ),
    ),
    ("longest losing streak", lambda side: _count(side.stats.risk_adjusted.longest_losing_streak)),
    ("open at end", lambda side: _count(side.open_at_end)),
    ("never filled", lambda side: _count(side.never_filled)),
)


# (header, a model's value as shown): the per-model table, its attribution over every symbol.
_MODEL_COLUMNS: Final[tuple[tuple[str, Callable[[ModelFigures, str], str]], ...]] = (
    ("model", lambda model, _: model.model_id),
    ("signals", lambda model, _: _count(model.signals)),
    ("calls", lambda model, _: _count(model.calls)),
    ("right", lambda model, _: _count(model.correct)),
    ("hit rate", lambda model, _: _percent(model.hit_rate) if model.calls else _NOT_APPLICABLE),
    (
        "stated confidence",
        lambda model, _: _percent(model.mean_confidence) if model.calls else _NOT_APPLICABLE,
    ),
    ("profit backed", lambda model, currency: _money(model.profit_backed, currency)),
    ("loss backed", lambda model, currency: _money(model.loss_backed, currency)),
)


def models_table(side: ReportSide) -> str:
    """The side's per-model attribution as plain text, one row per model; no trailing newline.

    A call is a vote with a direction on a signal that won or lost; it is right when it named
    the move. Profit and loss backed are the model's weight share of the signals it voted for.
    """
    rows = [
        [header for header, _ in _MODEL_COLUMNS],
        *(
            [value(model.overall, side.currency) for _, value in _MODEL_COLUMNS]
            for model in side.models
        ),
    ]
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]))]
    return "\n".join(
        "  ".join(
            [row[0].ljust(widths[0])]
            + [cell.rjust(width) for cell, width in zip(row[1:], widths[1:], strict=True)]
        )
        for row in rows
    )


def _require_sides(sides: Sequence[ReportSide]) -> None:
    if not sides:
        raise ValueError("a report needs at least one side")


def _shorten(name: str) -> str:
    """`name`, or its start and end around an ellipsis when longer than `_NAME_WIDTH`.

    Both ends stay: names tend to differ at the end (v12, v13) and to mean something at the start.
    """
    if len(name) <= _NAME_WIDTH:
        return name
    head = (_NAME_WIDTH - 1) // 2
    return f"{name[:head]}…{name[len(name) - (_NAME_WIDTH - 1 - head) :]}"


def figures_table(sides: Sequence[ReportSide]) -> str:
    """The figures as plain text: a header of side names, then one row per figure.

    One right-aligned column per side; a name longer than `_NAME_WIDTH` loses its
    middle. No trailing newline. Raises ValueError when `sides` is empty.
    """
    _require_sides(sides)
    rows = [
        ["", *(_shorten(side.name) for side in sides)],
        *([label, *(value(side) for side in sides)] for label, value in _FIGURES),
    ]
    widths = [max(len(row[column]) for row in rows) for column in range(len(rows[0]))]
    lines = [
        "  ".join(
            [
                row[0].ljust(widths[0]),
                *(cell.rjust(width) for cell, width in zip(row[1:], widths[1:], strict=True)),
            ]
        )
        for row in rows
    ]
    lines.insert(1, "-" * len(lines[0]))
    return "\n".join(lines)


def html_report(sides: Sequence[ReportSide], title: str, generated_at_ns: int) -> str:
    """One self-contained HTML5 page: the figures, an equity chart and a drawdown chart.

    The charts share a UTC time axis. It spans the sides' curves that have
    closes (all of them when none has), and at least an hour; a side with
    nothing closed is a flat line across it. Raises ValueError when `sides` is empty.
    """
    _require_sides(sides)
    colours = [_PALETTE[index % len(_PALETTE)] for index in range(len(sides))]
    # A curve without closes has only its start, which says nothing about when the run was
    # (a run without signals starts at 0, in 1970).
    timed = [side.curve for side in sides if len(side.curve) > 1] or [side.curve for side in sides]
    start_ns = min(curve[0][0] for curve in timed)
    end_ns = max(*(curve[-1][0] for curve in timed), start_ns + _HOUR_NS)

    def series(curve_of: Callable[[ReportSide], Sequence[_Point]]) -> list[_Series]:
        return [
            _Series(side.name, colour, _steps(curve_of(side), start_ns, end_ns))
            for side, colour in zip(sides, colours, strict=True)
        ]

    equity = series(lambda side: side.curve)
    drawdown = series(lambda side: _below_peak(side.curve))
    equity_values = [value for line in equity for _, value in line.vertices]
    low, high = min(equity_values), max(equity_values)
    # Room above and below so no line runs along the frame; a flat line gets 1% of its level.
    margin = (high - low) * 0.05 if high > low else _flat_margin(high)
    deepest = min(value for line in drawdown for _, value in line.vertices)
    # Zero stays on the top edge; below it, room so the deepest fall clears the frame.
    drawdown_low = deepest * 1.05 if deepest < 0.0 else -_flat_margin(high)
    unit = " / ".join(sorted({side.currency for side in sides}))
    generated = _utc(generated_at_ns).strftime("%Y-%m-%dT%H:%M:%SZ")
    return "\n".join(
        [
            "<!DOCTYPE html>",
            '<html lang="en">',
            "<head>",
            '<meta charset="utf-8">',
            f"<title>{html.escape(title)}</title>",
            f"<style>{_STYLE}</style>",
            "</head>",
            "<body>",
            f"<h1>{html.escape(title)}</h1>",
            f'<p>Generated <time datetime="{generated}">{generated}</time></p>',
            "<h2>Figures</h2>",
            _figures_html(sides, colours),
            "<h2>Equity</h2>",
            _chart(
                "equity-chart",
                "Equity",
                unit,
                equity,
                (start_ns, end_ns),
                (low - margin, high + margin),
            ),
            "<h2>Drawdown</h2>",
            _chart(
                "drawdown-chart",
                "Drawdown",
                unit,
                drawdown,
                (start_ns, end_ns),
                (drawdown_low, 0.0),
            ),
            "</body>",
            "</html>",
            "",
        ]
    )


def _figures_html(sides: Sequence[ReportSide], colours: Sequence[str]) -> str:
    head = "".join(
        f'<th scope="col"><span class="swatch" style="background:{colour}"></span>'
        f"{html.escape(side.name)}</th>"
        for side, colour in zip(sides, colours, strict=True)
    )
    body = "\n".join(
        f'<tr><th scope="row">{html.escape(label)}</th>'
        + "".join(f"<td>{html.escape(value(side))}</td>" for side in sides)
        + "</tr>"
        for label, value in _FIGURES
    )
    return (
        f'<table class="figures">\n<thead><tr><th></th>{head}</tr></thead>\n'
        f"<tbody>\n{body}\n</tbody>\n</table>"
    )


@dataclass(frozen=True)
class _Series:
    """One side's line in a chart."""

    name: str
    colour: str
    vertices: list[_Point]


@dataclass(frozen=True)
class _Scale:
    """A linear map of [low, high] onto [start, end] pixels; y runs backwards (end < start)."""

    low: float
    high: float
    start: float
    end: float

    def __call__(self, value: float) -> float:
        return self.start + (value - self.low) / (self.high - self.low) * (self.end - self.start)


def _flat_margin(level: float) -> float:
    return max(abs(level) * 0.01, 1.0)


def _below_peak(curve: Sequence[_Point]) -> list[_Point]:
    """Each point's fall below the highest value so far, as a value <= 0."""
    peak = -math.inf
    falls = []
    for time_ns, value in curve:
        peak = max(peak, value)
        falls.append((time_ns, value - peak))
    return falls


def _steps(curve: Sequence[_Point], start_ns: int, end_ns: int) -> list[_Point]:
    """The vertices of `curve` drawn as steps: a value holds until the next point, the last
    until `end_ns`. A lone point has no time worth showing and holds from `start_ns`."""
    vertices = [curve[0] if len(curve) > 1 else (start_ns, curve[0][1])]
    for time_ns, value in curve[1:]:
        vertices += [(time_ns, vertices[-1][1]), (time_ns, value)]
    if vertices[-1][0] < end_ns:
        vertices.append((end_ns, vertices[-1][1]))
    return vertices


def _value_ticks(low: float, high: float) -> list[tuple[float, str]]:
    """4 to 6 round (value, label) ticks, the first <= `low` and the last >= `high`.

    The steps run 1, 2, 2.5, 5 x 10^k from a hundredth of the span and never
    more than double, so the first step needing at most 5 intervals needs at
    least 3: the one before needed 6 or more, so `high - low` spans more than 4
    of it, and more than 2 of this one.
    """
    exponent = math.floor(math.log10(high - low)) - 2
    while True:
        for mantissa in (1.0, 2.0, 2.5, 5.0):
            step = mantissa * 10.0**exponent
            first, last = math.floor(low / step), math.ceil(high / step)
            if last - first <= 5:
                decimals = max(0, -exponent) + (1 if mantissa == 2.5 and exponent <= 0 else 0)
                return [
                    (index * step, _fixed(index * step, decimals))
                    for index in range(first, last + 1)
                ]
        exponent += 1


def _time_ticks(start_ns: int, end_ns: int) -> list[tuple[int, str]]:
    """3 to 6 round UTC (instant, label) ticks within [start_ns, end_ns], a span of an hour or more.

    The steps never more than double, so the first giving at most 6 ticks gives at
    least 3: the one before gave 7 or more, so the span covers 6 of it and 3 of this one.
    """
    step_ns = _TIME_STEPS_NS[0]
    while True:
        first, last = -(-start_ns // step_ns), end_ns // step_ns
        if last - first < 6:
            layout = "%Y-%m-%d" if step_ns >= _DAY_NS else "%Y-%m-%d %H:%M"
            return [
                (index * step_ns, _utc(index * step_ns).strftime(layout))
                for index in range(first, last + 1)
            ]
        step_ns = next((step for step in _TIME_STEPS_NS if step > step_ns), 2 * step_ns)


def _utc(time_ns: int) -> datetime:
    return _EPOCH + timedelta(microseconds=time_ns // 1_000)


def _chart(
    chart_id: str,
    title: str,
    unit: str,
    lines: Sequence[_Series],
    times_ns: tuple[int, int],
    values: tuple[float, float],
) -> str:
    """An SVG chart of `lines`, legend on top, over `times_ns` and at least `values` (low, high)."""
    start_ns, end_ns = times_ns
    value_ticks = _value_ticks(*values)
    legend_rows = -(-len(lines) // _LEGEND_COLUMNS)
    top = _LEGEND_TOP + legend_rows * _LEGEND_ROW
    x = _Scale(start_ns, end_ns, _PLOT_LEFT, _PLOT_RIGHT)
    y = _Scale(value_ticks[0][0], value_ticks[-1][0], _PLOT_BOTTOM, top)
    middle = (top + _PLOT_BOTTOM) / 2
    parts = [
        f'<svg id="{chart_id}" xmlns="http://www.w3.org/2000/svg" width="{_WIDTH}" '
        f'height="{_HEIGHT}" viewBox="0 0 {_WIDTH} {_HEIGHT}" role="img" aria-label="{title}">',
        f"<title>{title}</title>",
        f'<rect x="{_PLOT_LEFT}" y="{top}" width="{_PLOT_RIGHT - _PLOT_LEFT}" '
        f'height="{_PLOT_BOTTOM - top}" fill="none" stroke="#bbb"/>',
        f'<text class="y-unit" x="16" y="{middle:.1f}" text-anchor="middle" '
        f'transform="rotate(-90 16 {middle:.1f})">{html.escape(unit)}</text>',
        f'<text class="x-unit" x="{_PLOT_RIGHT}" y="{_HEIGHT - 8}" text-anchor="end">UTC</text>',
    ]
    for value, label in value_ticks:
        parts += [
            _line(_PLOT_LEFT, y(value), _PLOT_RIGHT, y(value), "#eee", 1),
            f'<text class="y-tick" x="{_PLOT_LEFT - 8}" y="{y(value):.1f}" text-anchor="end" '
            f'dominant-baseline="middle">{label}</text>',
        ]
    for time_ns, label in _time_ticks(start_ns, end_ns):
        parts += [
            _line(x(time_ns), top, x(time_ns), _PLOT_BOTTOM, "#eee", 1),
            f'<text class="x-tick" x="{x(time_ns):.1f}" y="{_PLOT_BOTTOM + 18}" '
            f'text-anchor="middle">{label}</text>',
        ]
    for index, line in enumerate(lines):
        row, column = divmod(index, _LEGEND_COLUMNS)
        left, baseline = _PLOT_LEFT + column * _LEGEND_SLOT, _LEGEND_TOP + row * _LEGEND_ROW
        swatch = _line(left, baseline - 4, left + 16, baseline - 4, line.colour, 3)
        parts.append(
            f'<g class="legend">{swatch}<text x="{left + 22}" y="{baseline}">'
            f"{html.escape(_shorten(line.name))}</text></g>"
        )
    parts += [
        f'<polyline data-side="{html.escape(line.name)}" points="{_points(line.vertices, x, y)}" '
        f'fill="none" stroke="{line.colour}" stroke-width="2" stroke-linejoin="round"'
        # Later sides dashed: where two strategies did the same, both lines still show.
        f"{_DASHES if index else ''}><title>{html.escape(line.name)}</title></polyline>"
        for index, line in enumerate(lines)
    ]
    parts.append("</svg>")
    return "\n".join(parts)


def _line(x1: float, y1: float, x2: float, y2: float, colour: str, width: int) -> str:
    return (
        f'<line x1="{x1:.1f}" y1="{y1:.1f}" x2="{x2:.1f}" y2="{y2:.1f}" '
        f'stroke="{colour}" stroke-width="{width}"/>'
    )


def _points(vertices: Iterable[_Point], x: _Scale, y: _Scale) -> str:
    return " ".join(f"{x(time_ns):.1f},{y(value):.1f}" for time_ns, value in vertices)
