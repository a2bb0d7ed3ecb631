"""Performance statistics: every figure checked against numbers worked out by hand."""

from __future__ import annotations

import dataclasses
import math
import random
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tradeflow.trading.v1 import execution_pb2, performance_pb2, signal_pb2
from trading_engine.core.performance import (
    ALL_TIME,
    BY_HOUR_OF_DAY,
    BY_SIGNAL_TYPE,
    BY_STRENGTH_BUCKET,
    BY_SYMBOL,
    LAST_7_DAYS,
    LAST_30_DAYS,
    TODAY,
    CalibrationBucket,
    Mark,
    PerformanceStats,
    SignalResult,
    breakdown,
    marked_drawdowns,
    realised_steps,
    summarize,
    window_start_ns,
)

SECOND_NS = 1_000_000_000
MS_NS = 1_000_000

BUY: int = signal_pb2.SIGNAL_TYPE_BUY
WEAK_BUY: int = signal_pb2.SIGNAL_TYPE_WEAK_BUY
HOLD: int = signal_pb2.SIGNAL_TYPE_HOLD
WEAK_SELL: int = signal_pb2.SIGNAL_TYPE_WEAK_SELL
SELL: int = signal_pb2.SIGNAL_TYPE_SELL

UNKNOWN: int = execution_pb2.SIGNAL_OUTCOME_UNSPECIFIED
WIN: int = execution_pb2.SIGNAL_OUTCOME_WIN
LOSS: int = execution_pb2.SIGNAL_OUTCOME_LOSS
BREAKEVEN: int = execution_pb2.SIGNAL_OUTCOME_BREAKEVEN
OPEN: int = execution_pb2.SIGNAL_OUTCOME_OPEN
NOT_FILLED: int = execution_pb2.SIGNAL_OUTCOME_NOT_FILLED
CLOSED_OUTCOMES = (WIN, LOSS, BREAKEVEN)


def _at(month: int, day: int, hour: int, minute: int = 0, second: int = 0) -> int:
    """An instant of 2024 in UTC, in ns since the epoch."""
    return int(datetime(2024, month, day, hour, minute, second, tzinfo=UTC).timestamp()) * SECOND_NS


def _result(
    signal_id: str,
    outcome: int,
    *,
    symbol: str = "EURUSD",
    signal_type: int = BUY,
    strength: float = 0.5,
    confidence: float = 0.5,
    generated_ns: int = 0,
    profit_loss_pips: float = 0.0,
    profit_loss: float = 0.0,
    slippage_pips: float | None = None,
    execution_latency_ns: int | None = None,
    closed_ns: int = 0,
) -> SignalResult:
    return SignalResult(
        signal_id=signal_id,
        symbol=symbol,
        signal_type=signal_type,
        strength=strength,
        confidence=confidence,
        generated_ns=generated_ns,
        outcome=outcome,
        profit_loss_pips=profit_loss_pips,
        profit_loss=profit_loss,
        slippage_pips=slippage_pips,
        execution_latency_ns=execution_latency_ns,
        closed_ns=closed_ns,
    )


def _closes(*profit_losses: float) -> list[SignalResult]:
    """Winning or losing closes in the order given (closed_ns 1, 2, ...), listed backwards."""
    rows = [
        _result(
            f"c{index}",
            WIN if profit_loss > 0 else LOSS,
            profit_loss=profit_loss,
            slippage_pips=0.0,
            execution_latency_ns=MS_NS,
            closed_ns=index,
        )
        for index, profit_loss in enumerate(profit_losses, start=1)
    ]
    # Backwards, so only the sort on closed_ns can put them in order.
    return rows[::-1]


# Nine signals over two days (15 and 16 March 2024, UTC), starting equity 10,000.
#
# id symbol type      str  conf generated  outcome     pips   P/L  slip latency    closed
# s1 EURUSD BUY       0.85 0.72 15th 09:00 WIN         +10   +100  0.5  120 ms     15th 10:00
# s2 EURUSD SELL      0.65 0.70 15th 23:30 LOSS         -5    -50  1.0   80 ms     16th 00:30
# s3 USDJPY WEAK_BUY  0.45 0.55 16th 00:15 LOSS        -15   -150  0.0  200 ms     16th 02:00
# s4 GBPUSD WEAK_SELL 0.30 0.95 16th 01:00 BREAKEVEN     0      0  0.25  50 ms     16th 03:00
# s5 EURUSD BUY       1.0  1.0  16th 02:30 WIN          +3    +30 -0.5   41 ms+3ns 16th 04:00
# s6 USDJPY SELL      0.2  0.75 16th 03:00 WIN         +20   +200  2.0  300 ms     16th 05:00
# s7 EURUSD BUY       0.6  0.8  16th 09:45 OPEN          0      0  1.5  100 ms     -
# s8 GBPUSD WEAK_SELL 0.0  0.65 16th 10:00 NOT_FILLED    0      0  -    -          -
# s9 EURUSD HOLD      0.1  0.4  16th 23:59 UNSPECIFIED   0      0  -    -          -
FIXTURE: tuple[SignalResult, ...] = (
    _result(
        "s1",
        WIN,
        signal_type=BUY,
        strength=0.85,
        confidence=0.72,
        generated_ns=_at(3, 15, 9),
        profit_loss_pips=10.0,
        profit_loss=100.0,
        slippage_pips=0.5,
        execution_latency_ns=120 * MS_NS,
        closed_ns=_at(3, 15, 10),
    ),
    _result(
        "s2",
        LOSS,
        signal_type=SELL,
        strength=0.65,
        confidence=0.70,
        generated_ns=_at(3, 15, 23, 30),
        profit_loss_pips=-5.0,
        profit_loss=-50.0,
        slippage_pips=1.0,
        execution_latency_ns=80 * MS_NS,
        closed_ns=_at(3, 16, 0, 30),
    ),
    _result(
        "s3",
        LOSS,
        symbol="USDJPY",
        signal_type=WEAK_BUY,
        strength=0.45,
        confidence=0.55,
        generated_ns=_at(3, 16, 0, 15),
        profit_loss_pips=-15.0,
        profit_loss=-150.0,
        slippage_pips=0.0,
        execution_latency_ns=200 * MS_NS,
        closed_ns=_at(3, 16, 2),
    ),
    _result(
        "s4",
        BREAKEVEN,
        symbol="GBPUSD",
        signal_type=WEAK_SELL,
        strength=0.30,
        confidence=0.95,
        generated_ns=_at(3, 16, 1),
        slippage_pips=0.25,
        execution_latency_ns=50 * MS_NS,
        closed_ns=_at(3, 16, 3),
    ),
    _result(
        "s5",
        WIN,
        signal_type=BUY,
        strength=1.0,
        confidence=1.0,
        generated_ns=_at(3, 16, 2, 30),
        profit_loss_pips=3.0,
        profit_loss=30.0,
        slippage_pips=-0.5,
        execution_latency_ns=41 * MS_NS + 3,
        closed_ns=_at(3, 16, 4),
    ),
    _result(
        "s6",
        WIN,
        symbol="USDJPY",
        signal_type=SELL,
        strength=0.2,
        confidence=0.75,
        generated_ns=_at(3, 16, 3),
        profit_loss_pips=20.0,
        profit_loss=200.0,
        slippage_pips=2.0,
        execution_latency_ns=300 * MS_NS,
        closed_ns=_at(3, 16, 5),
    ),
    _result(
        "s7",
        OPEN,
        signal_type=BUY,
        strength=0.6,
        confidence=0.8,
        generated_ns=_at(3, 16, 9, 45),
        slippage_pips=1.5,
        execution_latency_ns=100 * MS_NS,
    ),
    _result(
        "s8",
        NOT_FILLED,
        symbol="GBPUSD",
        signal_type=WEAK_SELL,
        strength=0.0,
        confidence=0.65,
        generated_ns=_at(3, 16, 10),
    ),
    _result(
        "s9",
        UNKNOWN,
        signal_type=HOLD,
        strength=0.1,
        confidence=0.4,
        generated_ns=_at(3, 16, 23, 59),
    ),
)


def test_summarize_computes_every_figure_of_the_fixture() -> None:
    stats = summarize(FIXTURE, 10_000.0)

    assert stats.signals_total == 9
    # BUY s1 s5 s7, WEAK_BUY s3, HOLD s9, WEAK_SELL s4 s8, SELL s2 s6.
    assert stats.signals_by_type == ((BUY, 3), (WEAK_BUY, 1), (HOLD, 1), (WEAK_SELL, 2), (SELL, 2))
    assert stats.executed == 7  # s1-s7
    assert stats.closed == 6  # s1-s6
    assert (stats.wins, stats.losses, stats.breakevens) == (3, 2, 1)
    assert stats.hit_rate == 0.5  # 3 / 6
    # Gross profit 100 + 30 + 200 = 330; gross loss 50 + 150 = 200.
    assert stats.profit_factor == 1.65
    # Pips 10 - 5 - 15 + 0 + 3 + 20 = 13; money 100 - 50 - 150 + 0 + 30 + 200 = 130.
    assert stats.total_profit_loss_pips == 13.0
    assert stats.total_profit_loss == 130.0
    assert stats.expectancy_pips == 13 / 6
    assert stats.expectancy == 130 / 6
    # Equity in closing order: 10,100 (peak), 10,050, 9,900 (trough), 9,900, 9,930, 10,130.
    assert stats.max_drawdown == 200.0
    assert stats.max_drawdown_fraction == 200 / 10_100
    # 0.5 + 1.0 + 0.0 + 0.25 - 0.5 + 2.0 + 1.5 = 4.75 over 7 fills.
    assert stats.average_slippage_pips == 4.75 / 7
    # 120 + 80 + 200 + 50 + 41 + 300 + 100 ms + 3 ns = 891,000,003 ns; / 7 = 127,285,714.71: floor.
    assert stats.average_execution_latency_ns == 127_285_714
    # Closed only: s3 0.55 in [0.5, 0.6); s1 0.72, s2 0.70, s6 0.75 in [0.7, 0.8);
    # s4 0.95 and s5 1.0 in [0.9, 1.0]. s7 (open, 0.8), s8 and s9 are not closed.
    assert [
        (bucket.confidence_lower, bucket.confidence_upper, bucket.closed_signals, bucket.wins)
        for bucket in stats.calibration
    ] == [(0.5, 0.6, 1, 0), (0.7, 0.8, 3, 2), (0.9, 1.0, 2, 1)]
    assert [bucket.hit_rate for bucket in stats.calibration] == [0.0, 2 / 3, 0.5]
    assert [bucket.mean_confidence for bucket in stats.calibration] == pytest.approx(
        [0.55, (0.72 + 0.70 + 0.75) / 3, (0.95 + 1.0) / 2]
    )


def test_summarize_of_nothing_is_all_zero() -> None:
    assert summarize([], 10_000.0) == PerformanceStats(
        signals_total=0,
        signals_by_type=(),
        executed=0,
        closed=0,
        wins=0,
        losses=0,
        breakevens=0,
        hit_rate=0.0,
        profit_factor=None,
        expectancy_pips=0.0,
        expectancy=0.0,
        total_profit_loss_pips=0.0,
        total_profit_loss=0.0,
        max_drawdown=0.0,
        max_drawdown_fraction=0.0,
        average_slippage_pips=0.0,
        average_execution_latency_ns=0,
        calibration=(),
    )


def test_signals_never_filled_count_only_in_totals() -> None:
    stats = summarize(
        [_result("a", NOT_FILLED, signal_type=SELL), _result("b", UNKNOWN, signal_type=SELL)],
        10_000.0,
    )

    assert (stats.signals_total, stats.signals_by_type) == (2, ((SELL, 2),))
    assert (stats.executed, stats.closed, stats.hit_rate) == (0, 0, 0.0)
    assert (stats.average_slippage_pips, stats.average_execution_latency_ns) == (0.0, 0)


def test_drawdown_follows_the_equity_curve_in_closing_order() -> None:
    # 10,000 -> 10,100 (peak) -> 10,050 -> 9,900 (trough) -> 9,930 -> 10,130.
    stats = summarize(_closes(100.0, -50.0, -150.0, 30.0, 200.0), 10_000.0)

    assert stats.max_drawdown == 200.0
    assert stats.max_drawdown_fraction == 200 / 10_100
    assert stats.total_profit_loss == 130.0


def test_largest_absolute_and_relative_drawdowns_may_come_from_different_points() -> None:
    # 100 -> 50: fall 50 from peak 100 = 0.5. Then 1,050 (peak) -> 950: fall 100 = 100 / 1,050.
    stats = summarize(_closes(-50.0, 1_000.0, -100.0), 100.0)

    assert stats.max_drawdown == 100.0
    assert stats.max_drawdown_fraction == 0.5


@pytest.mark.parametrize(
    ("winner", "loser"), [("trader-1:p1", "trader-1:p2"), ("trader-2:p2", "trader-2:p1")]
)
def test_closes_at_the_same_instant_are_netted_whatever_the_signal_ids(
    winner: str, loser: str
) -> None:
    # Signal ids derive from company, user and prediction: the same two closes at t=7 must give
    # the same drawdown whoever's they are. Netted: 10,000 -> 10,000 + 500 - 1,000 = 9,500 at t=7,
    # then 9,800 at t=8. (Ordered by id they gave 1,000 when the loss came first, and
    # 1,000 / 10,500 of the peak when the win did.)
    rows = [
        _result(winner, WIN, profit_loss=500.0, closed_ns=7),
        _result(loser, LOSS, profit_loss=-1_000.0, closed_ns=7),
        _result("later", WIN, profit_loss=300.0, closed_ns=8),
    ]

    stats = summarize(rows, 10_000.0)

    assert (stats.max_drawdown, stats.max_drawdown_fraction) == (500.0, 0.05)
    assert realised_steps(rows) == [(7, -500.0), (8, 300.0)]


def _position(
    signal_id: str, outcome: int, symbol: str, signal_type: int, fill_price: float,
    pip_value: float, opened_ns: int, closed_ns: int = 0, profit_loss: float = 0.0,
) -> SignalResult:  # fmt: skip
    return SignalResult(
        signal_id=signal_id, symbol=symbol, signal_type=signal_type, strength=0.5,
        confidence=0.5, generated_ns=opened_ns, outcome=outcome, profit_loss_pips=0.0,
        profit_loss=profit_loss, slippage_pips=0.0, execution_latency_ns=0, closed_ns=closed_ns,
        opened_ns=opened_ns, fill_price=fill_price, lots=1.0, pip_value=pip_value,
    )  # fmt: skip


# A buys EURUSD at 1.10000 at t=1 and stops out at t=4 for -200; B sells USDJPY at 151.200 at
# t=3 and is still open. 1 lot each, a pip 10 USD for EURUSD, 6.61 USD for USDJPY.
MARKED = [
    _position("A", LOSS, "EURUSD", BUY, 1.1, 10.0, opened_ns=1, closed_ns=4, profit_loss=-200.0),
    _position("B", OPEN, "USDJPY", SELL, 151.2, 6.61, opened_ns=3),
]
MARKS = [
    Mark(2, "EURUSD", 1.095),  # A 50 pips down: 9,500
    Mark(2, "USDJPY", 151.0),  # before B opened: does not value it
    Mark(3, "EURUSD", 1.09),  # A 100 pips down: 9,000, the trough
    Mark(5, "USDJPY", 151.5),  # B 30 pips against it: 9,800 - 198.30 = 9,601.70
]


def test_the_marked_to_market_drawdown_sees_open_losses_the_realised_one_does_not() -> None:
    stats = summarize(MARKED, 10_000.0, MARKS)

    # Realised: 10,000 -> 9,800 when A closes.
    assert (stats.max_drawdown, stats.max_drawdown_fraction) == (200.0, 0.02)
    # Marked: 10,000 -> 9,500 -> 9,000 -> 9,800 -> 9,601.70: 1,000 below the start.
    assert stats.max_drawdown_marked_to_market == 1_000.0
    assert stats.max_drawdown_marked_to_market_fraction == 0.1
    assert summarize(MARKED, 10_000.0).max_drawdown_marked_to_market is None


def test_without_marks_between_closes_the_marked_drawdown_is_the_realised_one() -> None:
    rows = _closes(100.0, -50.0, -150.0, 30.0, 200.0)
    assert marked_drawdowns(rows, [], 10_000.0) == (200.0, 200 / 10_100)


def test_no_marked_drawdown_while_an_open_position_has_no_price_since_it_opened() -> None:
    assert marked_drawdowns(MARKED, MARKS[:3], 10_000.0) is None
    # Nor when its fill price is not known (a stored outcome read without its results).
    unknown_fill = [dataclasses.replace(MARKED[1], fill_price=0.0)]
    assert marked_drawdowns(unknown_fill, MARKS, 10_000.0) is None


def test_drawdown_fraction_needs_a_positive_peak_and_stops_at_one() -> None:
    # From 0 the peak never turns positive: a fall of 10 but no fraction.
    assert (summarize(_closes(-10.0), 0.0).max_drawdown_fraction) == 0.0
    # 100 -> -50: a fall of 150 from a peak of 100 loses more than the peak; counted as 1.
    stats = summarize(_closes(-150.0), 100.0)
    assert (stats.max_drawdown, stats.max_drawdown_fraction) == (150.0, 1.0)


def test_profit_factor_is_undefined_without_a_loss_and_zero_without_a_profit() -> None:
    assert summarize(_closes(100.0, 30.0), 10_000.0).profit_factor is None
    assert summarize(_closes(-100.0, -30.0), 10_000.0).profit_factor == 0.0


def test_calibration_buckets_take_their_lower_edge_and_one_in_the_last() -> None:
    just_below = math.nextafter(0.7, 0.0)
    rows = [
        _result("a", WIN, confidence=0.7, closed_ns=1),
        _result("b", LOSS, confidence=just_below, closed_ns=2),
        _result("c", WIN, confidence=1.0, closed_ns=3),
        _result("d", BREAKEVEN, confidence=0.0, closed_ns=4),
        # Open and unfilled signals are not calibrated, whatever their confidence.
        _result("e", OPEN, confidence=0.7, slippage_pips=0.0, execution_latency_ns=1),
        _result("f", NOT_FILLED, confidence=0.3),
    ]

    # (lower, upper, closed signals, wins, hit rate, mean confidence)
    assert summarize(rows, 10_000.0).calibration == (
        CalibrationBucket(0.0, 0.1, 1, 0, 0.0, 0.0),
        CalibrationBucket(0.6, 0.7, 1, 0, 0.0, just_below),
        CalibrationBucket(0.7, 0.8, 1, 1, 1.0, 0.7),
        CalibrationBucket(0.9, 1.0, 1, 1, 1.0, 1.0),
    )


def test_calibration_bounds_are_exact_decimals() -> None:
    rows = [
        _result(str(tenth), WIN, confidence=tenth / 10 + 0.01, closed_ns=tenth)
        for tenth in range(10)
    ]

    bounds = [
        (repr(bucket.confidence_lower), repr(bucket.confidence_upper))
        for bucket in summarize(rows, 10_000.0).calibration
    ]

    assert bounds == [(f"0.{tenth}", f"0.{tenth + 1}") for tenth in range(9)] + [("0.9", "1.0")]


def test_breakdown_by_symbol() -> None:
    by_symbol = dict(breakdown(FIXTURE, BY_SYMBOL, 10_000.0))

    # EURUSD s1 s2 s5 s7 s9; GBPUSD s4 s8; USDJPY s3 s6.
    assert list(by_symbol) == ["EURUSD", "GBPUSD", "USDJPY"]
    assert [stats.signals_total for stats in by_symbol.values()] == [5, 2, 2]
    assert [stats.closed for stats in by_symbol.values()] == [3, 1, 2]
    # EURUSD from 10,000: 10,100 (peak), 10,050, 10,080 -> drawdown 50, P/L +80.
    eurusd = by_symbol["EURUSD"]
    assert (eurusd.total_profit_loss, eurusd.max_drawdown) == (80.0, 50.0)
    # USDJPY: -150 then +200.
    assert by_symbol["USDJPY"].total_profit_loss == 50.0
    assert by_symbol["USDJPY"].max_drawdown_fraction == 150 / 10_000


def test_breakdown_by_signal_type_uses_names_without_prefix() -> None:
    counts = [
        (key, stats.signals_total) for key, stats in breakdown(FIXTURE, BY_SIGNAL_TYPE, 10_000.0)
    ]

    assert counts == [
        ("SIGNAL_TYPE_BUY", 3),
        ("SIGNAL_TYPE_HOLD", 1),
        ("SIGNAL_TYPE_SELL", 2),
        ("SIGNAL_TYPE_WEAK_BUY", 1),
        ("SIGNAL_TYPE_WEAK_SELL", 2),
    ]


def test_breakdown_by_strength_bucket() -> None:
    counts = [
        (key, stats.signals_total)
        for key, stats in breakdown(FIXTURE, BY_STRENGTH_BUCKET, 10_000.0)
    ]

    # s8 0.0, s9 0.1 | s6 0.2 (on the edge), s4 0.3 | s3 0.45 | s7 0.6 (on the edge), s2 0.65
    # | s1 0.85, s5 1.0 (the top, in the last bucket).
    assert counts == [
        ("0.0-0.2", 2),
        ("0.2-0.4", 2),
        ("0.4-0.6", 1),
        ("0.6-0.8", 2),
        ("0.8-1.0", 2),
    ]


def test_breakdown_keeps_only_strength_buckets_that_occur() -> None:
    rows = [
        _result("a", UNKNOWN, strength=math.nextafter(0.2, 0.0)),
        _result("b", UNKNOWN, strength=0.8),
    ]

    assert [key for key, _ in breakdown(rows, BY_STRENGTH_BUCKET, 0.0)] == ["0.0-0.2", "0.8-1.0"]


def test_breakdown_by_hour_of_day() -> None:
    counts = [
        (key, stats.signals_total) for key, stats in breakdown(FIXTURE, BY_HOUR_OF_DAY, 10_000.0)
    ]

    # s3 00:15 | s4 01:00 | s5 02:30 | s6 03:00 | s1 09:00 (15th), s7 09:45 (16th) | s8 10:00
    # | s2 23:30 (15th), s9 23:59 (16th). Hours repeat across days; the date does not count.
    assert counts == [("00", 1), ("01", 1), ("02", 1), ("03", 1), ("09", 2), ("10", 1), ("23", 2)]


def test_hour_of_day_turns_over_at_midnight_utc() -> None:
    midnight = _at(3, 16, 0)
    rows = [
        _result("last", UNKNOWN, generated_ns=midnight - 1),
        _result("first", UNKNOWN, generated_ns=midnight),
        _result("hour", UNKNOWN, generated_ns=midnight + 3_600 * SECOND_NS - 1),
    ]

    assert [(key, stats.signals_total) for key, stats in breakdown(rows, BY_HOUR_OF_DAY, 0.0)] == [
        ("00", 2),
        ("23", 1),
    ]


@pytest.mark.parametrize("dimension", [performance_pb2.BREAKDOWN_DIMENSION_UNSPECIFIED, 99])
def test_breakdown_refuses_other_dimensions(dimension: int) -> None:
    with pytest.raises(ValueError, match=f"dimension {dimension} is not one of") as raised:
        breakdown(FIXTURE, dimension, 10_000.0)

    for name in ("SYMBOL", "SIGNAL_TYPE", "STRENGTH_BUCKET", "HOUR_OF_DAY"):
        assert f"BREAKDOWN_DIMENSION_{name}" in str(raised.value)


# 16 March 2024 14:30:15.123456789 UTC.
NOW_NS = _at(3, 16, 14, 30, 15) + 123_456_789


@pytest.mark.parametrize(
    ("window", "start_ns"),
    [
        (TODAY, _at(3, 16, 0)),
        (LAST_7_DAYS, _at(3, 9, 14, 30, 15) + 123_456_789),
        # 2024 is a leap year: 16 March less 30 days is 15 February.
        (LAST_30_DAYS, _at(2, 15, 14, 30, 15) + 123_456_789),
        (ALL_TIME, 0),
    ],
)
def test_window_start(window: int, start_ns: int) -> None:
    assert window_start_ns(window, NOW_NS) == start_ns


def test_today_starts_at_now_when_now_is_midnight() -> None:
    assert window_start_ns(TODAY, _at(3, 16, 0)) == _at(3, 16, 0)


@pytest.mark.parametrize("window", [performance_pb2.PERFORMANCE_WINDOW_UNSPECIFIED, 99])
def test_window_start_refuses_other_windows(window: int) -> None:
    with pytest.raises(ValueError, match="PERFORMANCE_WINDOW_ALL_TIME"):
        window_start_ns(window, NOW_NS)


def test_a_fill_has_both_slippage_and_latency() -> None:
    with pytest.raises(ValueError, match="s-1: slippage_pips and execution_latency_ns"):
        _result("s-1", OPEN, slippage_pips=0.5)
    with pytest.raises(ValueError, match="s-2"):
        _result("s-2", OPEN, execution_latency_ns=MS_NS)


@st.composite
def _results(draw: st.DrawFn) -> SignalResult:
    outcome = draw(st.sampled_from([UNKNOWN, WIN, LOSS, BREAKEVEN, OPEN, NOT_FILLED]))
    filled = outcome not in (UNKNOWN, NOT_FILLED)
    closed = outcome in CLOSED_OUTCOMES
    money = st.floats(-1_000.0, 1_000.0) if closed else st.just(0.0)
    unit = st.floats(0.0, 1.0)
    return SignalResult(
        signal_id=draw(st.text("abc", min_size=1, max_size=3)),
        symbol=draw(st.sampled_from(["EURUSD", "USDJPY"])),
        signal_type=draw(st.sampled_from([BUY, WEAK_BUY, HOLD, WEAK_SELL, SELL])),
        strength=draw(unit),
        confidence=draw(unit),
        generated_ns=draw(st.integers(0, 2 * 86_400 * SECOND_NS)),
        outcome=outcome,
        profit_loss_pips=draw(money),
        profit_loss=draw(money),
        slippage_pips=draw(st.floats(-5.0, 5.0)) if filled else None,
        execution_latency_ns=draw(st.integers(0, 10 * SECOND_NS)) if filled else None,
        closed_ns=draw(st.integers(1, 100)) if closed else 0,
    )


@settings(max_examples=60, deadline=None, derandomize=True, database=None)
# Signal ids are unique, as in the store.
@given(
    st.lists(_results(), max_size=20, unique_by=lambda result: result.signal_id),
    st.floats(0.0, 100_000.0),
)
def test_figures_stay_in_range_and_ignore_input_order(
    rows: list[SignalResult], starting_equity: float
) -> None:
    stats = summarize(rows, starting_equity)

    assert 0.0 <= stats.hit_rate <= 1.0
    assert stats.max_drawdown >= 0.0
    assert 0.0 <= stats.max_drawdown_fraction <= 1.0
    assert stats.wins + stats.losses + stats.breakevens == stats.closed <= stats.executed
    assert sum(bucket.closed_signals for bucket in stats.calibration) == stats.closed
    shuffled = rows[:]
    random.Random(len(rows)).shuffle(shuffled)
    assert summarize(shuffled, starting_equity) == stats
    for dimension in (BY_SYMBOL, BY_SIGNAL_TYPE, BY_STRENGTH_BUCKET, BY_HOUR_OF_DAY):
        groups = breakdown(rows, dimension, starting_equity)
        assert sum(group.signals_total for _, group in groups) == stats.signals_total
        assert [key for key, _ in groups] == sorted(key for key, _ in groups)
