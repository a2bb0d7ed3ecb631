"""The backtest report: strategies' figures and curves side by side.

`figures_table` lays the figures out for a terminal; `html_report` makes one
self-contained page (inline CSS and SVG, no script, nothing fetched) with what
a quant reads a backtest for: what the prices were and what to beware of, the
parameters that differ, the figures, equity and drawdown charts (people would
rather look at a curve than read one), the signals the strategies disagree on
with the rules behind each, the trades, and the figures per symbol and per
model. Both are pure: they return strings and the caller writes them where it
likes.
"""

from __future__ import annotations

import html
import itertools
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Final

from tradeflow.trading.v1 import execution_pb2
from trading_engine.core.attribution import ModelBreakdown, ModelFigures
from trading_engine.core.performance import PerformanceStats
from trading_engine.replay.compare import (
    Change,
    Comparison,
    SignalDifference,
    deciding_steps,
    describe_decision,
    describe_step,
)
from trading_engine.replay.simulate import Trade

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
table { border-collapse: collapse; font-variant-numeric: tabular-nums; margin-bottom: 1rem; }
th, td { padding: 0.2rem 0.8rem; border-bottom: 1px solid #ddd; }
td, th[scope=col] { text-align: right; }
th[scope=row], td.text { text-align: left; font-weight: normal; }
.swatch { display: inline-block; width: 0.8em; height: 0.8em; margin-right: 0.4em; }
.warning { background: #fff3cd; border-left: 6px solid #e69f00; padding: 0.5rem 1rem; }
.note { color: #555; }
svg { max-width: 100%; height: auto; }
svg text { font: 11px system-ui, sans-serif; fill: #444; }
"""
# Rows a table lists before it says how many more there are.
_MAX_ROWS: Final = 500


@dataclass(frozen=True)
class ParameterChange:
    """A strategy parameter a side sets differently: its value on each side, as text."""

    # The StrategyConfig field path, e.g. "min_confidence_threshold".
    path: str
    values: tuple[str, ...]


@dataclass(frozen=True)
class ReportDetails:
    """What the page says around the figures and charts."""

    # Where the prices came from, in a sentence.
    prices: str = ""
    # What a reader should beware of, one sentence each.
    warnings: Sequence[str] = ()
    # One per parameter any side sets differently, a value per side.
    parameters: Sequence[ParameterChange] = ()
    # With two sides: the signals they disagree on.
    comparison: Comparison | None = None


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
    # Every filled signal, in the order of its fill.
    trades: Sequence[Trade] = ()
    # Signals valued by the results recorded live for them, not simulated.
    recorded: int = 0
    # (symbol, the figures of its signals), symbols ascending.
    by_symbol: Sequence[tuple[str, PerformanceStats]] = ()

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


def _if_closed(side: ReportSide, shown: str) -> str:
    return shown if side.stats.closed else _NOT_APPLICABLE


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
    # Undefined with nothing closed: n/a, not 0.
    ("hit rate", lambda side: _if_closed(side, _percent(side.stats.hit_rate))),
    ("profit factor", lambda side: _if_closed(side, _profit_factor(side.stats.profit_factor))),
    ("expectancy (pips)", lambda side: _if_closed(side, _fixed(side.stats.expectancy_pips, 1))),
    (
        "expectancy",
        lambda side: _if_closed(side, _money(side.stats.expectancy, side.currency)),
    ),
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
    ("days of returns", lambda side: _count(side.stats.risk_adjusted.days)),
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
    ("from live executions", lambda side: _count(side.recorded)),
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


def html_report(
    sides: Sequence[ReportSide],
    title: str,
    generated_at_ns: int,
    details: ReportDetails | None = None,
) -> str:
    """One self-contained HTML5 page: what was simulated and what to beware of, the
    parameters that differ, the figures, an equity chart and a drawdown chart, the signals
    the sides disagree on, the trades, and the figures per symbol and per model.

    The charts share a UTC time axis. It spans the sides' curves that have
    closes (all of them when none has), and at least an hour; a side with
    nothing closed is a flat line across it, and a warning says so. Sides with
    the same curve are named: their lines lie on each other. Raises ValueError
    when `sides` is empty.
    """
    _require_sides(sides)
    details = details or ReportDetails()
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
            _about_html(sides, details),
            _parameters_html(sides, details.parameters),
            '<section id="figures">',
            "<h2>Figures</h2>",
            _figures_html(sides, colours),
            '<p class="note">Sharpe and Sortino: daily (UTC) returns annualised with &#8730;365, '
            "risk-free rate 0. Drawdowns: the largest fall below a peak; realised counts closed "
            "trades only, marked to market also open positions at each bar's close.</p>",
            "</section>",
            '<section id="equity">',
            "<h2>Equity</h2>",
            *_identical_curves_html(sides),
            _chart(
                "equity-chart",
                "Equity",
                unit,
                equity,
                (start_ns, end_ns),
                (low - margin, high + margin),
            ),
            "</section>",
            '<section id="drawdown">',
            "<h2>Drawdown</h2>",
            _chart(
                "drawdown-chart",
                "Drawdown",
                unit,
                drawdown,
                (start_ns, end_ns),
                (drawdown_low, 0.0),
            ),
            "</section>",
            _signals_html(sides, details.comparison),
            _trades_html(sides),
            _symbols_html(sides),
            _models_html(sides),
            "</body>",
            "</html>",
            "",
        ]
    )


def _about_html(sides: Sequence[ReportSide], details: ReportDetails) -> str:
    """Where the prices came from, and a visible warning for anything that makes the figures
    say less than they seem to: a side with nothing closed, the bars' own warnings."""
    parts = ['<section id="about">']
    if details.prices:
        parts.append(f"<p>Simulated against {html.escape(details.prices)}.</p>")
    parts += [
        f"<p>{html.escape(side.name)}: {_count(side.recorded)} signals trade as they did live "
        "and are valued by the execution results recorded for them, not simulated.</p>"
        for side in sides
        if side.recorded
    ]
    warnings = [
        f"{side.name}: nothing closed, so there is no profit, loss, hit rate or drawdown to "
        f"show ({side.stats.executed} filled, {side.open_at_end} still open when the prices "
        "ended). Give later prices (--prices) or a longer range."
        for side in sides
        if not side.stats.closed
    ] + list(details.warnings)
    parts += [f'<p class="warning">{html.escape(warning)}</p>' for warning in warnings]
    parts.append("</section>")
    return "\n".join(parts)


def _parameters_html(sides: Sequence[ReportSide], changes: Sequence[ParameterChange]) -> str:
    if not changes:
        return ""
    head = "".join(f'<th scope="col">{html.escape(side.name)}</th>' for side in sides)
    rows = "\n".join(
        f'<tr><th scope="row"><code>{html.escape(change.path)}</code></th>'
        + "".join(f"<td>{html.escape(value)}</td>" for value in change.values)
        + "</tr>"
        for change in changes
    )
    return (
        '<section id="parameters">\n<h2>Parameters that differ</h2>\n'
        f'<table class="parameters">\n<thead><tr><th></th>{head}</tr></thead>\n'
        f"<tbody>\n{rows}\n</tbody>\n</table>\n</section>"
    )


def _identical_curves_html(sides: Sequence[ReportSide]) -> list[str]:
    """A note for each group of sides whose equity curves are the same."""
    groups: dict[tuple[tuple[int, float], ...], list[str]] = {}
    for side in sides:
        groups.setdefault(tuple(side.curve), []).append(side.name)
    return [
        f'<p class="note identical">{html.escape(" and ".join(names))} have the same equity '
        "curve: their lines lie on each other (the later dashed).</p>"
        for names in groups.values()
        if len(names) > 1
    ]


def _signals_html(sides: Sequence[ReportSide], comparison: Comparison | None) -> str:
    if comparison is None or len(sides) != 2:
        return ""
    counts = ", ".join(f"{len(comparison.of(change))} {change.value}" for change in Change)
    parts = [
        '<section id="signals">',
        "<h2>Signals that differ</h2>",
        f"<p>{html.escape(sides[1].name)} against {html.escape(sides[0].name)}, over "
        f"{_count(comparison.compared)} predictions: {counts}. Each with the rules both ran "
        "and judged differently.</p>",
    ]
    for change in Change:
        differences = comparison.of(change)
        if not differences:
            continue
        rows = "\n".join(_difference_html(difference) for difference in differences[:_MAX_ROWS])
        parts += [
            f"<h3>{change.value.capitalize()} ({_count(len(differences))})</h3>",
            '<table class="differences"><thead><tr><th scope="col">decided (UTC)</th>'
            '<th scope="col">symbol</th><th scope="col">prediction</th>'
            f'<th scope="col">{html.escape(sides[0].name)}</th>'
            f'<th scope="col">{html.escape(sides[1].name)}</th>'
            '<th scope="col">rules judged differently</th></tr></thead>',
            f"<tbody>\n{rows}\n</tbody></table>",
            *_more(len(differences)),
        ]
    parts.append("</section>")
    return "\n".join(parts)


def _difference_html(difference: SignalDifference) -> str:
    after = difference.after
    rules = "<br>".join(html.escape(describe_step(step)) for step in deciding_steps(difference))
    return (
        f'<tr><td class="text">{_when(after.generated_at.ToNanoseconds())}</td>'
        f'<td class="text">{html.escape(after.symbol)}</td>'
        f'<td class="text">{html.escape(after.prediction_id)}</td>'
        f'<td class="text">{html.escape(describe_decision(difference.before))}</td>'
        f'<td class="text">{html.escape(describe_decision(after))}</td>'
        f'<td class="text">{rules}</td></tr>'
    )


_REASONS: Final[dict[int, str]] = {
    execution_pb2.CLOSE_REASON_STOP_LOSS: "stop loss",
    execution_pb2.CLOSE_REASON_TAKE_PROFIT: "take profit",
    execution_pb2.CLOSE_REASON_MANUAL: "manual",
    execution_pb2.CLOSE_REASON_BROKER: "by the broker",
}


def _trades_html(sides: Sequence[ReportSide]) -> str:
    parts = ['<section id="trades">', "<h2>Trades</h2>"]
    headers = (
        "opened (UTC)", "symbol", "side", "lots", "fill", "closed (UTC)", "exit", "reason",
        "pips", "P/L",
    )  # fmt: skip
    for side in sides:
        rows = "\n".join(_trade_html(trade, side.currency) for trade in side.trades[:_MAX_ROWS])
        parts += [
            f"<h3>{html.escape(side.name)} ({_count(len(side.trades))} filled)</h3>",
            '<table class="trades"><thead><tr>'
            + "".join(f'<th scope="col">{header}</th>' for header in headers)
            + f"</tr></thead>\n<tbody>\n{rows}\n</tbody></table>",
            *_more(len(side.trades)),
        ]
    parts.append("</section>")
    return "\n".join(parts)


def _trade_html(trade: Trade, currency: str) -> str:
    closed = trade.outcome != execution_pb2.SIGNAL_OUTCOME_OPEN
    cells = [
        _when(trade.opened_ns),
        trade.symbol,
        "buy" if trade.side > 0 else "sell",
        f"{trade.lots:g}",
        f"{trade.fill_price:g}",
        _when(trade.closed_ns) if closed else "open",
        f"{trade.exit_price:g}" if closed else "",
        _REASONS.get(trade.close_reason, "closed") if closed else "",
        _fixed(trade.profit_loss_pips, 1) if closed else "",
        _money(trade.profit_loss, currency) if closed else "",
    ]
    return "<tr>" + "".join(f"<td>{html.escape(cell)}</td>" for cell in cells) + "</tr>"


def _symbols_html(sides: Sequence[ReportSide]) -> str:
    parts = ['<section id="symbols">', "<h2>Per symbol</h2>"]
    headers = ("symbol", "executed", "closed", "hit rate", "P/L (pips)", "P/L", "drawdown")
    for side in sides:
        rows = "\n".join(
            "<tr>"
            + "".join(
                f"<td>{html.escape(cell)}</td>"
                for cell in (
                    symbol,
                    _count(stats.executed),
                    _count(stats.closed),
                    _percent(stats.hit_rate) if stats.closed else _NOT_APPLICABLE,
                    _fixed(stats.total_profit_loss_pips, 1),
                    _money(stats.total_profit_loss, side.currency),
                    _money(stats.max_drawdown, side.currency),
                )
            )
            + "</tr>"
            for symbol, stats in side.by_symbol
        )
        parts += [
            f"<h3>{html.escape(side.name)}</h3>",
            '<table class="symbols"><thead><tr>'
            + "".join(f'<th scope="col">{header}</th>' for header in headers)
            + f"</tr></thead>\n<tbody>\n{rows}\n</tbody></table>",
        ]
    parts.append("</section>")
    return "\n".join(parts)


def _models_html(sides: Sequence[ReportSide]) -> str:
    if not any(side.models for side in sides):
        return ""
    parts = [
        '<section id="models">',
        "<h2>Per model</h2>",
        '<p class="note">A call is a model\'s vote with a direction on a signal that won or '
        "lost; it is right when it named the move. Profit and loss backed: the model's weight "
        "share of the signals it voted for.</p>",
    ]
    for side in sides:
        rows = "\n".join(
            "<tr>"
            + "".join(
                f"<td>{html.escape(value(model.overall, side.currency))}</td>"
                for _, value in _MODEL_COLUMNS
            )
            + "</tr>"
            for model in side.models
        )
        parts += [
            f"<h3>{html.escape(side.name)}</h3>",
            '<table class="models"><thead><tr>'
            + "".join(f'<th scope="col">{header}</th>' for header, _ in _MODEL_COLUMNS)
            + f"</tr></thead>\n<tbody>\n{rows}\n</tbody></table>",
        ]
    parts.append("</section>")
    return "\n".join(parts)


def _more(count: int) -> list[str]:
    if count <= _MAX_ROWS:
        return []
    return [f'<p class="note">and {_count(count - _MAX_ROWS)} more (--json has them all)</p>']


def _when(time_ns: int) -> str:
    return _utc(time_ns).strftime("%Y-%m-%d %H:%M:%S")


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
