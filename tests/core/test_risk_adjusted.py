"""Risk-adjusted figures: checked against empyrical (the maintained fork of Quantopian's
library) on a fixed curve, and by hand where a figure is about time or is undefined."""

from __future__ import annotations

import dataclasses
import itertools
from datetime import UTC, datetime

import empyrical
import numpy as np
import pytest

from tradeflow.trading.v1 import execution_pb2, signal_pb2
from trading_engine.core.performance import DAYS_PER_YEAR, SignalResult, risk_adjusted, summarize

WIN: int = execution_pb2.SIGNAL_OUTCOME_WIN
LOSS: int = execution_pb2.SIGNAL_OUTCOME_LOSS
OPEN: int = execution_pb2.SIGNAL_OUTCOME_OPEN
HOUR_NS = 3_600 * 1_000_000_000
DAY_NS = 24 * HOUR_NS
# 1 March 2024, 00:00 UTC.
DAY_0 = int(datetime(2024, 3, 1, tzinfo=UTC).timestamp()) * 1_000_000_000
STARTING_EQUITY = 10_000.0
# The realised profit or loss closed each day from 1 March; None: a day without a close.
DAILY = (
    120.0, -80.0, None, 200.0, -150.0, -60.0, 90.0, 300.0, -220.0, 40.0,
    None, 75.0, -30.0, 110.0, -95.0, 180.0, -40.0, 60.0, 25.0, -10.0,
)  # fmt: skip


def _closed(
    signal_id: str, profit_loss: float, opened_ns: int, closed_ns: int, generated_ns: int = 0
) -> SignalResult:
    return SignalResult(
        signal_id=signal_id,
        symbol="EURUSD",
        signal_type=signal_pb2.SIGNAL_TYPE_BUY,
        strength=0.5,
        confidence=0.5,
        generated_ns=generated_ns or opened_ns,
        outcome=WIN if profit_loss > 0 else LOSS,
        profit_loss_pips=profit_loss / 10.0,
        profit_loss=profit_loss,
        slippage_pips=0.0,
        execution_latency_ns=0,
        closed_ns=closed_ns,
        opened_ns=opened_ns,
    )


def _curve() -> list[SignalResult]:
    """Each day's profit or loss as two trades from 09:00 to noon (closes at one instant are
    one step of the curve); the first signal decided at 08:00 on 1 March."""
    rows = []
    for day, money in enumerate(DAILY):
        if money is None:
            continue
        noon = DAY_0 + day * DAY_NS + 12 * HOUR_NS
        opened = noon - 3 * HOUR_NS
        rows += [
            _closed(f"{day}a", money + 100.0, opened, noon, DAY_0 + 8 * HOUR_NS),
            _closed(f"{day}b", -100.0, opened, noon),
        ]
    return rows


def _daily_returns() -> np.ndarray:
    """The same returns worked out without the engine: each day's change over the equity at
    the day's start, a day without a close returning 0."""
    equities = list(
        itertools.accumulate((money or 0.0 for money in DAILY), initial=STARTING_EQUITY)
    )
    return np.array([later / earlier - 1.0 for earlier, later in itertools.pairwise(equities)])


def test_sharpe_sortino_annual_return_and_calmar_match_empyrical_on_a_fixed_curve() -> None:
    figures = risk_adjusted(_curve(), STARTING_EQUITY)
    returns = _daily_returns()
    # Daily returns over calendar days, annualised over 365 of them.
    reference = {
        "sharpe": empyrical.sharpe_ratio(returns, annualization=DAYS_PER_YEAR),
        "sortino": empyrical.sortino_ratio(returns, annualization=DAYS_PER_YEAR),
        "annual": empyrical.annual_return(returns, annualization=DAYS_PER_YEAR),
        "calmar": empyrical.calmar_ratio(returns, annualization=DAYS_PER_YEAR),
    }
    assert figures.days == len(DAILY) == 20
    assert {
        "sharpe": figures.sharpe_ratio,
        "sortino": figures.sortino_ratio,
        "annual": figures.annual_return,
        "calmar": figures.calmar_ratio,
    } == pytest.approx(reference, rel=1e-9, abs=1e-9)
    # The same figures reach the summary that the API and the replay serve.
    assert summarize(_curve(), STARTING_EQUITY).risk_adjusted == figures


def test_each_ratio_is_undefined_without_its_denominator() -> None:
    # Nothing closed: no days, nothing to compute.
    nothing = risk_adjusted([], STARTING_EQUITY)
    assert (nothing.days, nothing.sharpe_ratio, nothing.annual_return) == (0, None, None)
    # One day: no spread to speak of, no Sharpe nor Sortino; all won: no drawdown.
    one_day = risk_adjusted([_closed("w", 50.0, DAY_0, DAY_0 + HOUR_NS)], STARTING_EQUITY)
    assert (one_day.days, one_day.sharpe_ratio, one_day.sortino_ratio) == (1, None, None)
    assert one_day.calmar_ratio is None
    # 50 / 10,000 in one day, compounded over 365.
    assert one_day.annual_return == pytest.approx(1.005**365 - 1.0, rel=1e-12)
    # Without a known starting equity there are no returns at all (live, before any batch).
    assert risk_adjusted(_curve(), 0.0).days == 0


def test_exposure_is_the_share_of_time_with_a_position_open() -> None:
    rows = [
        _closed("a", 10.0, DAY_0 + 1 * HOUR_NS, DAY_0 + 3 * HOUR_NS),
        _closed("b", -5.0, DAY_0 + 2 * HOUR_NS, DAY_0 + 4 * HOUR_NS),
        _closed("c", 5.0, DAY_0 + 6 * HOUR_NS, DAY_0 + 7 * HOUR_NS),
    ]
    # From 01:00 to 07:00, positions open 01:00-04:00 and 06:00-07:00: 4 hours of 6.
    figures = risk_adjusted(rows, STARTING_EQUITY)
    assert figures.exposure == 4 / 6
    # Trades of 2, 2 and 1 hours.
    assert figures.average_trade_duration_ns == 5 * HOUR_NS // 3
    # A position still open from 08:00 counts until the figures are read, at 10:00: 6 of 9.
    still_open = dataclasses.replace(
        rows[0], signal_id="d", outcome=OPEN, opened_ns=DAY_0 + 8 * HOUR_NS, closed_ns=0
    )
    assert risk_adjusted([*rows, still_open], STARTING_EQUITY, DAY_0 + 10 * HOUR_NS).exposure == (
        6 / 9
    )


def test_the_longest_losing_streak_counts_losses_first_at_one_instant() -> None:
    def close(signal_id: str, money: float, hour: int) -> SignalResult:
        return _closed(signal_id, money, DAY_0, DAY_0 + hour * HOUR_NS)

    # L L W L {W L} L L: losses first at 05:00 make it L L W L L W L L, a longest run of 2,
    # whichever id sorts first (the win first would make a run of 3).
    for first, second in (("p", "q"), ("q", "p")):
        rows = [
            close("a", -1.0, 1), close("b", -1.0, 2), close("c", 1.0, 3), close("d", -1.0, 4),
            close(first, 1.0, 5), close(second, -1.0, 5), close("g", -1.0, 6),
            close("h", -1.0, 7),
        ]  # fmt: skip
        assert risk_adjusted(rows, STARTING_EQUITY).longest_losing_streak == 2
