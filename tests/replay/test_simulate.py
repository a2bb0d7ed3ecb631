"""Simulated fills: every rule of replay.simulate, with each figure worked out by hand.

EURUSD and the other USD-quoted pairs: a pip is 0.0001 (ten ticks of 0.00001)
and the signals here value it at 10 USD per lot. USDJPY: a pip is 0.01.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tradeflow.ml.v1 import prediction_pb2
from tradeflow.trading.v1 import execution_pb2, signal_pb2
from trading_engine.core import instruments
from trading_engine.core.outcomes import facts_of, outcome_of
from trading_engine.core.performance import SignalResult, summarize
from trading_engine.executions import result_violations
from trading_engine.replay.simulate import (
    NO_COSTS,
    Bar,
    BarTime,
    Costs,
    CostTable,
    PriceSeries,
    bar_time_warning,
    labelled,
    simulate_run,
    simulate_signal,
)

E = execution_pb2
S = signal_pb2
SECOND_NS = 1_000_000_000
MINUTE_NS = 60 * SECOND_NS
# 2026-11-20T10:00:00Z: every signal here is decided at or after it.
T0 = 1_795_168_800 * SECOND_NS

BUY = S.SIGNAL_TYPE_BUY
SELL = S.SIGNAL_TYPE_SELL
MARKET = S.ORDER_TYPE_MARKET
LIMIT = S.ORDER_TYPE_LIMIT


def _signal(
    signal_id: str,
    *,
    symbol: str = "EURUSD",
    signal_type: S.SignalType.ValueType = BUY,
    entry_price: float = 1.1,
    stop_loss: float = 1.098,
    take_profit: float = 1.104,
    lots: float = 1.0,
    pip_value: float = 10.0,
    order_type: S.OrderType.ValueType = MARKET,
    limit_price: float = 0.0,
    valid_until_ns: int | None = None,
    generated_ns: int = T0,
) -> S.TradingSignal:
    """An actionable signal with only what the simulation and the outcome read."""
    signal = S.TradingSignal(
        signal_id=signal_id,
        symbol=symbol,
        user_id="trader-1",
        company_id="acme",
        correlation_id=f"corr-{signal_id}",
        signal_type=signal_type,
        strength=0.7,
        confidence=0.8,
        disposition=S.SIGNAL_DISPOSITION_ACTIONABLE,
        entry=S.EntryStrategy(
            order_type=order_type,
            entry_price=entry_price,
            limit_price=limit_price,
            stop_loss=stop_loss,
            take_profit=take_profit,
            position_size_lots=lots,
            pip_value=pip_value,
        ),
    )
    signal.generated_at.FromNanoseconds(generated_ns)
    if valid_until_ns is not None:
        signal.entry.valid_until.FromNanoseconds(valid_until_ns)
    return signal


def _hold(signal_id: str, generated_ns: int) -> S.TradingSignal:
    signal = S.TradingSignal(
        signal_id=signal_id,
        symbol="EURUSD",
        signal_type=S.SIGNAL_TYPE_HOLD,
        disposition=S.SIGNAL_DISPOSITION_HOLD,
    )
    signal.generated_at.FromNanoseconds(generated_ns)
    return signal


def _bar(minute: int, high: float, low: float) -> Bar:
    """A bar ending `minute` minutes after T0; the simulation reads only its high and low."""
    return Bar(T0 + minute * MINUTE_NS, high, low, low)


def _minute_bar(minute: int, opened: float, high: float, low: float) -> Bar:
    """A one-minute bar ending `minute` minutes after T0, with its open known."""
    end_ns = T0 + minute * MINUTE_NS
    return Bar(end_ns, high, low, low, open=opened, start_ns=end_ns - MINUTE_NS)


def _simulate(
    signal: S.TradingSignal, bars: list[Bar], costs: Costs = NO_COSTS
) -> tuple[list[E.ExecutionResult], SignalResult]:
    """The simulated results and the outcome the live engine computes from them."""
    instrument = instruments.lookup(signal.symbol)
    assert instrument is not None
    results = simulate_signal(signal, bars, instrument, costs)
    return results, outcome_of(facts_of(signal), results, instrument, "USD").result


def _closed(outcome: SignalResult) -> tuple[int, float, float, int]:
    return outcome.outcome, outcome.profit_loss_pips, outcome.profit_loss, outcome.closed_ns


def _statuses(results: list[E.ExecutionResult]) -> list[int]:
    return [result.status for result in results]


def test_a_market_buy_fills_at_its_entry_and_takes_profit_at_exactly_the_target() -> None:
    signal = _signal("tp")  # buy 1 lot at 1.10000, stop 1.09800, target 1.10400
    results, outcome = _simulate(
        signal,
        [
            _bar(1, high=1.1010, low=1.0990),  # neither level
            _bar(2, high=1.1045, low=1.1005),  # through the target
        ],
    )
    fill = E.ExecutionResult(
        execution_id="sim:tp:fill",
        signal_id="tp",
        user_id="trader-1",
        company_id="acme",
        symbol="EURUSD",
        status=E.EXECUTION_STATUS_FILLED,
        executed_price=1.1,
        executed_size_lots=1.0,
        correlation_id="corr-tp",
    )
    fill.executed_at.FromNanoseconds(T0)
    close = E.ExecutionResult()
    close.CopyFrom(fill)
    close.execution_id = "sim:tp:close"
    close.status = E.EXECUTION_STATUS_CLOSED
    close.exit_price = 1.104
    close.close_reason = E.CLOSE_REASON_TAKE_PROFIT
    close.closed_at.FromNanoseconds(T0 + 2 * MINUTE_NS)
    assert results == [fill, close]
    # 1.10400 - 1.10000 = 400 ticks = +40 pips; 40 x 10 USD x 1 lot = +400.00.
    assert _closed(outcome) == (E.SIGNAL_OUTCOME_WIN, 40.0, 400.0, T0 + 2 * MINUTE_NS)
    # Filled at the entry at the decision instant: no slippage, no latency.
    assert (outcome.slippage_pips, outcome.execution_latency_ns) == (0.0, 0)


def test_a_market_sell_stops_out_at_exactly_the_stop() -> None:
    # Sell 0.5 lots at 1.10000, stop 1.10200, target 1.09500.
    signal = _signal("sl", signal_type=SELL, stop_loss=1.102, take_profit=1.095, lots=0.5)
    results, outcome = _simulate(
        signal,
        [_bar(1, high=1.1010, low=1.0990), _bar(2, high=1.1025, low=1.1000)],
    )
    assert _statuses(results) == [E.EXECUTION_STATUS_FILLED, E.EXECUTION_STATUS_CLOSED]
    assert (results[1].exit_price, results[1].close_reason) == (1.102, E.CLOSE_REASON_STOP_LOSS)
    # A sell losing 1.10200 - 1.10000 = 200 ticks = -20 pips; -20 x 10 USD x 0.5 lots = -100.00.
    assert _closed(outcome) == (E.SIGNAL_OUTCOME_LOSS, -20.0, -100.0, T0 + 2 * MINUTE_NS)


@pytest.mark.parametrize(
    ("signal_type", "stop_loss", "take_profit"),
    [(BUY, 1.098, 1.104), (SELL, 1.102, 1.096)],
    ids=["buy", "sell"],
)
def test_a_bar_reaching_both_the_stop_and_the_target_counts_as_the_stop(
    signal_type: S.SignalType.ValueType, stop_loss: float, take_profit: float
) -> None:
    signal = _signal("both", signal_type=signal_type, stop_loss=stop_loss, take_profit=take_profit)
    results, outcome = _simulate(signal, [_bar(1, high=1.1050, low=1.0970)])
    assert (results[1].exit_price, results[1].close_reason) == (
        stop_loss,
        E.CLOSE_REASON_STOP_LOSS,
    )
    # Either side: 200 ticks against the position = -20 pips; -20 x 10 USD x 1 lot = -200.00.
    assert _closed(outcome) == (E.SIGNAL_OUTCOME_LOSS, -20.0, -200.0, T0 + MINUTE_NS)


def test_a_limit_buy_fills_at_the_limit_in_the_first_bar_trading_through_it_then_closes() -> None:
    # Buy 1 lot limit at 1.09900, stop 1.09700, target 1.10300.
    signal = _signal(
        "limit",
        order_type=LIMIT,
        entry_price=1.099,
        limit_price=1.099,
        stop_loss=1.097,
        take_profit=1.103,
    )
    results, outcome = _simulate(
        signal,
        [
            _bar(1, high=1.1000, low=1.0990),  # touches the limit: not through it, no fill
            # One tick through: fills here; its high beyond the target may have come before
            # the fill, so no close.
            _bar(2, high=1.1035, low=1.09899),
            _bar(3, high=1.1031, low=1.0995),  # through the target
        ],
    )
    assert _statuses(results) == [E.EXECUTION_STATUS_FILLED, E.EXECUTION_STATUS_CLOSED]
    assert results[0].executed_price == 1.099
    assert results[0].executed_at.ToNanoseconds() == T0 + 2 * MINUTE_NS
    # 1.10300 - 1.09900 = 400 ticks = +40 pips; 40 x 10 USD x 1 lot = +400.00.
    assert _closed(outcome) == (E.SIGNAL_OUTCOME_WIN, 40.0, 400.0, T0 + 3 * MINUTE_NS)
    # At the limit, which is the planned entry: no slippage; latency to the fill bar's end.
    assert (outcome.slippage_pips, outcome.execution_latency_ns) == (0.0, 2 * MINUTE_NS)


def test_a_limit_sell_without_a_limit_price_fills_at_the_entry_when_the_high_reaches_it() -> None:
    # Sell 1 lot limit at 1.10100 (limit_price 0: the entry), stop 1.10300, target 1.09900.
    signal = _signal(
        "entry",
        signal_type=SELL,
        order_type=LIMIT,
        entry_price=1.101,
        stop_loss=1.103,
        take_profit=1.099,
    )
    results, outcome = _simulate(
        signal,
        [
            _bar(1, high=1.1010, low=1.0990),  # touches: no fill
            _bar(2, high=1.10101, low=1.1000),  # one tick through: fills at 1.10100
            _bar(3, high=1.1005, low=1.0985),  # through the target
        ],
    )
    assert results[0].executed_price == 1.101
    # A sell from 1.10100 to 1.09900: 200 ticks in its favour = +20 pips = +200.00.
    assert _closed(outcome) == (E.SIGNAL_OUTCOME_WIN, 20.0, 200.0, T0 + 3 * MINUTE_NS)


def test_a_limit_order_fills_at_its_limit_price_even_when_the_planned_entry_differs() -> None:
    # The engine plans limit orders at their limit; should the two differ, the order is the limit.
    signal = _signal("limit-first", order_type=LIMIT, entry_price=1.1, limit_price=1.099)
    results, outcome = _simulate(signal, [_bar(1, high=1.1005, low=1.0989)])
    assert results[0].executed_price == 1.099
    # 1.09900 bought against a planned 1.10000: 100 ticks better = -10 pips of slippage.
    assert outcome.slippage_pips == -10.0


def test_a_limit_order_fills_in_a_bar_ending_exactly_at_valid_until() -> None:
    signal = _signal(
        "in-time", order_type=LIMIT, entry_price=1.099, valid_until_ns=T0 + 2 * MINUTE_NS
    )
    results, outcome = _simulate(signal, [_bar(2, high=1.1000, low=1.0989)])
    assert _statuses(results) == [E.EXECUTION_STATUS_FILLED]
    assert outcome.outcome == E.SIGNAL_OUTCOME_OPEN


def test_a_limit_order_the_prices_reach_only_after_valid_until_expires_not_filled() -> None:
    signal = _signal("late", order_type=LIMIT, entry_price=1.099, valid_until_ns=T0 + 2 * MINUTE_NS)
    results, outcome = _simulate(
        signal,
        [
            _bar(1, high=1.1010, low=1.0995),  # above the limit
            _bar(3, high=1.1000, low=1.0980),  # through it, a minute too late
        ],
    )
    expired = E.ExecutionResult(
        execution_id="sim:late:expired",
        signal_id="late",
        user_id="trader-1",
        company_id="acme",
        symbol="EURUSD",
        status=E.EXECUTION_STATUS_EXPIRED,
        correlation_id="corr-late",
    )
    expired.executed_at.FromNanoseconds(T0 + 2 * MINUTE_NS)
    assert results == [expired]
    assert outcome.outcome == E.SIGNAL_OUTCOME_NOT_FILLED
    assert (outcome.slippage_pips, outcome.execution_latency_ns) == (None, None)


@pytest.mark.parametrize(
    "valid_until_ns",
    [None, T0 + 5 * MINUTE_NS],
    ids=["no-valid-until", "prices-end-before-valid-until"],
)
def test_a_limit_order_neither_filled_nor_expired_when_the_prices_end_has_no_result(
    valid_until_ns: int | None,
) -> None:
    signal = _signal("waiting", order_type=LIMIT, entry_price=1.099, valid_until_ns=valid_until_ns)
    results, outcome = _simulate(signal, [_bar(1, high=1.1010, low=1.0995)])
    assert results == []
    assert outcome.outcome == E.SIGNAL_OUTCOME_UNSPECIFIED


def test_a_position_still_open_when_the_prices_end_is_open_and_out_of_the_money_figures() -> None:
    signal = _signal("open")  # buy at 1.10000, stop 1.09800, target 1.10400
    results, outcome = _simulate(signal, [_bar(1, high=1.1039, low=1.0981)])
    assert _statuses(results) == [E.EXECUTION_STATUS_FILLED]
    assert _closed(outcome) == (E.SIGNAL_OUTCOME_OPEN, 0.0, 0.0, 0)
    stats = summarize([outcome], 10_000.0)
    # Executed, but no money figure counts it.
    assert (stats.executed, stats.closed, stats.total_profit_loss, stats.max_drawdown) == (
        1,
        0,
        0.0,
        0.0,
    )


@pytest.mark.parametrize(
    ("signal_type", "stop_loss", "take_profit", "gap", "exit_price", "pips"),
    [
        # Buy at 1.10000, stop 1.09800: the bar opens at 1.09700, 30 pips below the entry.
        (BUY, 1.098, 1.104, _minute_bar(2, opened=1.097, high=1.0985, low=1.0960), 1.097, -30.0),
        # Sell at 1.10000, stop 1.10200: the bar opens at 1.10350, 35 pips above the entry.
        (SELL, 1.102, 1.096, _minute_bar(2, opened=1.1035, high=1.1050, low=1.1015), 1.1035, -35.0),
    ],
    ids=["buy", "sell"],
)
def test_a_stop_the_bar_opens_beyond_fills_at_the_open_not_at_the_stop(
    signal_type: S.SignalType.ValueType,
    stop_loss: float,
    take_profit: float,
    gap: Bar,
    exit_price: float,
    pips: float,
) -> None:
    signal = _signal("gap", signal_type=signal_type, stop_loss=stop_loss, take_profit=take_profit)
    results, outcome = _simulate(
        signal, [_minute_bar(1, opened=1.1000, high=1.1010, low=1.0990), gap]
    )
    assert (results[1].exit_price, results[1].close_reason) == (
        exit_price,
        E.CLOSE_REASON_STOP_LOSS,
    )
    # Worse than the 20 pips the stop planned: pips x 10 USD x 1 lot.
    assert _closed(outcome) == (E.SIGNAL_OUTCOME_LOSS, pips, pips * 10.0, T0 + 2 * MINUTE_NS)


def test_a_stop_the_bar_reaches_after_opening_above_it_fills_at_the_stop() -> None:
    # Buy at 1.10000, stop 1.09800; the bar opens one tick above the stop, then trades through it.
    results, outcome = _simulate(
        _signal("inside"), [_minute_bar(1, opened=1.09801, high=1.0990, low=1.0970)]
    )
    assert results[1].exit_price == 1.098
    assert _closed(outcome) == (E.SIGNAL_OUTCOME_LOSS, -20.0, -200.0, T0 + MINUTE_NS)


def test_a_bar_opening_exactly_at_the_stop_fills_there() -> None:
    results, _ = _simulate(
        _signal("on-the-stop"), [_minute_bar(1, opened=1.098, high=1.0985, low=1.0975)]
    )
    assert (results[1].exit_price, results[1].close_reason) == (1.098, E.CLOSE_REASON_STOP_LOSS)


@pytest.mark.parametrize(
    ("signal_type", "stop_loss", "take_profit", "gap", "exit_price"),
    [
        # Buy at 1.10000, target 1.10400: opens at 1.10520 (and later falls through the stop).
        (BUY, 1.098, 1.104, _minute_bar(1, opened=1.1052, high=1.1060, low=1.0970), 1.1052),
        # Sell at 1.10000, target 1.09600: opens at 1.09480.
        (SELL, 1.102, 1.096, _minute_bar(1, opened=1.0948, high=1.0990, low=1.0940), 1.0948),
    ],
    ids=["buy", "sell"],
)
def test_a_target_the_bar_opens_beyond_fills_at_the_better_open_even_if_the_bar_also_stops(
    signal_type: S.SignalType.ValueType,
    stop_loss: float,
    take_profit: float,
    gap: Bar,
    exit_price: float,
) -> None:
    signal = _signal(
        "gap-up", signal_type=signal_type, stop_loss=stop_loss, take_profit=take_profit
    )
    results, outcome = _simulate(signal, [gap])
    assert (results[1].exit_price, results[1].close_reason) == (
        exit_price,
        E.CLOSE_REASON_TAKE_PROFIT,
    )
    # 520 ticks in the position's favour = +52 pips, not the target's 40: +520.00.
    assert _closed(outcome) == (E.SIGNAL_OUTCOME_WIN, 52.0, 520.0, T0 + MINUTE_NS)


def test_a_bar_opening_between_the_levels_and_reaching_both_counts_as_the_stop() -> None:
    results, _ = _simulate(_signal("both"), [_minute_bar(1, opened=1.1, high=1.105, low=1.097)])
    assert (results[1].exit_price, results[1].close_reason) == (1.098, E.CLOSE_REASON_STOP_LOSS)


def test_without_a_known_open_a_bar_wholly_beyond_the_stop_fills_at_its_nearest_price() -> None:
    # Buy at 1.10000, stop 1.09800; the bar never trades above 1.09700. No open: the gap cannot
    # be measured, and the stop's 1.09800 is a price the bar never traded: its high instead.
    results, outcome = _simulate(_signal("no-open"), [_bar(1, high=1.097, low=1.0950)])
    assert (results[1].exit_price, results[1].close_reason) == (1.097, E.CLOSE_REASON_STOP_LOSS)
    assert _closed(outcome) == (E.SIGNAL_OUTCOME_LOSS, -30.0, -300.0, T0 + MINUTE_NS)


def test_the_open_of_a_bar_that_began_before_the_decision_does_not_count() -> None:
    # Decided half-way through the bar: it opened at 1.09700 before the buy existed, so that is
    # no gap through the stop; the bar traded at the stop, which fills.
    signal = _signal("mid-bar", generated_ns=T0 + MINUTE_NS // 2)
    results, _ = _simulate(signal, [_minute_bar(1, opened=1.097, high=1.1005, low=1.0970)])
    assert (results[1].exit_price, results[1].close_reason) == (1.098, E.CLOSE_REASON_STOP_LOSS)


@pytest.mark.parametrize(
    ("signal_type", "limit", "gap", "fill"),
    [
        # Buy limit at 1.09900: the bar opens at 1.09850, 5 pips better.
        (BUY, 1.099, _minute_bar(1, opened=1.0985, high=1.0995, low=1.0980), 1.0985),
        # Sell limit at 1.10100: the bar opens at 1.10160, 6 pips better.
        (SELL, 1.101, _minute_bar(1, opened=1.1016, high=1.1020, low=1.1005), 1.1016),
    ],
    ids=["buy", "sell"],
)
def test_a_limit_the_bar_opens_beyond_fills_at_the_better_open(
    signal_type: S.SignalType.ValueType, limit: float, gap: Bar, fill: float
) -> None:
    signal = _signal(
        "limit-gap",
        signal_type=signal_type,
        order_type=LIMIT,
        entry_price=limit,
        limit_price=limit,
        stop_loss=1.09 if signal_type == BUY else 1.11,
        take_profit=1.11 if signal_type == BUY else 1.09,
    )
    results, outcome = _simulate(signal, [gap])
    assert (results[0].executed_price, results[0].executed_at.ToNanoseconds()) == (
        fill,
        T0 + MINUTE_NS,
    )
    # Better than the planned entry: negative slippage, -5 and -6 pips.
    assert outcome.slippage_pips == (-5.0 if signal_type == BUY else -6.0)


def test_a_limit_the_bar_opens_at_and_only_touches_does_not_fill() -> None:
    signal = _signal("touch", order_type=LIMIT, entry_price=1.099, limit_price=1.099)
    results, _ = _simulate(signal, [_minute_bar(1, opened=1.099, high=1.1, low=1.099)])
    assert results == []


def test_without_a_known_open_a_limit_the_whole_bar_is_beyond_fills_at_its_nearest_price() -> None:
    # Buy limit at 1.09900; the bar trades only from 1.09700 to 1.09800: no open, so the fill is
    # the bar's price nearest the limit, 1.09800, never the 1.09900 it did not trade.
    signal = _signal("below", order_type=LIMIT, entry_price=1.099, limit_price=1.099)
    results, _ = _simulate(signal, [_bar(1, high=1.098, low=1.097)])
    assert results[0].executed_price == 1.098


def test_slippage_worsens_market_fills_and_stops_within_the_bar_and_commission_is_charged() -> None:
    costs = Costs(slippage_pips=0.5, commission_per_lot=7.0)
    # Buy 2 lots at 1.10000 (+0.5 pip: 1.10005), stop 1.09800 (-0.5 pip: 1.09795).
    results, outcome = _simulate(
        _signal("costly", lots=2.0), [_bar(1, high=1.0990, low=1.0975)], costs
    )
    assert (results[0].executed_price, results[1].exit_price) == (1.10005, 1.09795)
    assert results[1].commission == 14.0
    # 1.09795 - 1.10005 = -210 ticks = -21 pips; -21 x 10 x 2 = -420, less 14 commission: -434.
    assert _closed(outcome) == (E.SIGNAL_OUTCOME_LOSS, -21.0, -434.0, T0 + MINUTE_NS)
    assert outcome.slippage_pips == 0.5
    # A stop's slippage stays within the bar: its low is 1.09797, two ticks below the stop.
    results, _ = _simulate(_signal("floor"), [_bar(1, high=1.0990, low=1.09797)], costs)
    assert results[1].exit_price == 1.09797
    # A take profit is a resting order: no slippage.
    results, _ = _simulate(_signal("target"), [_bar(1, high=1.1041, low=1.1001)], costs)
    assert results[1].exit_price == 1.104


def test_simulate_run_applies_each_instrument_s_costs() -> None:
    table = CostTable(
        default=Costs(commission_per_lot=5.0), by_symbol={"USDJPY": Costs(commission_per_lot=9.0)}
    )
    prices = PriceSeries(
        {"EURUSD": [_bar(1, high=1.1041, low=1.1001)], "USDJPY": [_bar(1, high=151.52, low=151.3)]}
    )
    jpy = _signal(
        "jpy", symbol="USDJPY", entry_price=151.2, stop_loss=151.0, take_profit=151.5,
        pip_value=6.61,
    )  # fmt: skip
    run = simulate_run([_signal("eur"), jpy], prices, 10_000.0, costs=table)
    # +400 - 5 and +198.30 - 9.
    assert [row.profit_loss for row in run.results] == [395.0, 189.3]


def test_bars_ending_at_or_before_the_decision_are_ignored() -> None:
    before = [
        _bar(-1, high=1.1050, low=1.0950),  # beyond every level, before the decision
        _bar(0, high=1.1050, low=1.0950),  # ends at the decision instant
    ]
    _, market_outcome = _simulate(_signal("market"), [*before, _bar(1, high=1.1040, low=1.0990)])
    # Not stopped by the earlier bars: the target, a minute later, closes it (+40 pips).
    assert _closed(market_outcome) == (E.SIGNAL_OUTCOME_WIN, 40.0, 400.0, T0 + MINUTE_NS)
    limit, _ = _simulate(
        _signal("limit", order_type=LIMIT, entry_price=1.099),
        [*before, _bar(1, high=1.1010, low=1.0995)],
    )
    # The earlier bars went through the limit; the only later one did not.
    assert limit == []


def test_usdjpy_profit_is_in_pips_of_0_01() -> None:
    # Buy 1 lot at 151.200, stop 151.000, target 151.500; a pip (0.01) of a lot is
    # 1,000 JPY, 6.61 USD at 151.2 (rounded; the signal carries it).
    signal = _signal(
        "jpy",
        symbol="USDJPY",
        entry_price=151.2,
        stop_loss=151.0,
        take_profit=151.5,
        pip_value=6.61,
    )
    _, outcome = _simulate(signal, [_bar(3, high=151.52, low=151.25)])
    # 151.500 - 151.200 = 300 ticks of 0.001 = +30 pips; 30 x 6.61 USD x 1 lot = +198.30.
    assert _closed(outcome) == (E.SIGNAL_OUTCOME_WIN, 30.0, 198.3, T0 + 3 * MINUTE_NS)


def test_a_multi_leg_entry_is_simulated_as_its_combined_order() -> None:
    signal = _signal("legs")  # 1 lot at 1.10000, stop 1.09800, main target 1.10400
    signal.entry.legs.add(position_size_lots=0.5, take_profit=1.102, take_profit_pips=20.0)
    signal.entry.legs.add(position_size_lots=0.5, take_profit=1.104, take_profit_pips=40.0)
    results, outcome = _simulate(
        signal,
        [
            _bar(1, high=1.1025, low=1.0990),  # the first leg's target only: nothing closes
            _bar(2, high=1.1040, low=1.1000),  # the main target: the whole lot closes
        ],
    )
    assert [result.executed_size_lots for result in results] == [1.0, 1.0]
    # +40 pips on the whole lot: 40 x 10 USD x 1 lot = +400.00.
    assert _closed(outcome) == (E.SIGNAL_OUTCOME_WIN, 40.0, 400.0, T0 + 2 * MINUTE_NS)


def test_signals_that_are_not_actionable_are_not_simulated() -> None:
    instrument = instruments.lookup("EURUSD")
    assert instrument is not None
    bars = [_bar(1, high=1.1050, low=1.0950)]
    rejected = _signal("rejected")
    rejected.disposition = S.SIGNAL_DISPOSITION_REJECTED
    assert simulate_signal(_hold("hold", T0), bars, instrument) == []
    assert simulate_signal(rejected, bars, instrument) == []


def test_simulated_results_are_ones_the_live_engine_would_accept() -> None:
    results = [
        *_simulate(_signal("closes"), [_bar(1, high=1.1040, low=1.0990)])[0],
        *_simulate(
            _signal("expires", order_type=LIMIT, entry_price=1.09, valid_until_ns=T0 + MINUTE_NS),
            [_bar(1, high=1.1040, low=1.0990)],
        )[0],
    ]
    assert _statuses(results) == [
        E.EXECUTION_STATUS_FILLED,
        E.EXECUTION_STATUS_CLOSED,
        E.EXECUTION_STATUS_EXPIRED,
    ]
    assert [result_violations(result) for result in results] == [[], [], []]


def test_simulate_run_reports_the_figures_and_the_equity_curve_worked_out_by_hand() -> None:
    def at(minute: int) -> int:
        return T0 + minute * MINUTE_NS

    prices = PriceSeries(
        {
            "EURUSD": [
                _bar(5, high=1.1010, low=1.0990),
                _bar(10, high=1.1041, low=1.1000),
                _bar(15, high=1.1030, low=1.1000),
            ],
            "GBPUSD": [_bar(20, high=1.2730, low=1.2690)],
            "AUDUSD": [_bar(20, high=0.6605, low=0.6590)],
            "NZDUSD": [_bar(25, high=0.6001, low=0.5990), _bar(40, high=0.5995, low=0.5985)],
            "USDCAD": [_bar(5, high=1.3520, low=1.3510), _bar(15, high=1.3505, low=1.3490)],
        }
    )
    # id decided signal                                  what happens             pips   P/L
    # a  m0  EURUSD buy 1 @1.10000 sl 1.09800 tp 1.10400 target at m10            +40   +400
    # b  m1  GBPUSD sell 1 @1.27000 sl 1.27300 tp 1.26500 stop at m20              -30   -300
    # c  m2  AUDUSD buy 2 @0.66000 sl 0.65900 tp 0.66200 stop at m20               -10   -200
    # d  m3  NZDUSD sell limit 1 @0.60000 until m30,     fills m25, target m40     +15   +150
    #           sl 0.60200 tp 0.59850
    # f  m4  USDCAD buy limit @1.35000 until m10         through only at m15: NOT_FILLED
    # g  m6  EURUSD HOLD                                 not a row, but counted
    # h  m7  XYZABC buy                                  unknown instrument: skipped, counted
    # i  m8  GBPUSD buy limit @1.26000, no valid_until   never reached: UNSPECIFIED
    # e  m11 EURUSD buy 1 @1.10100 sl 1.09900 tp 1.10500 neither by m15: OPEN
    signals = [
        _signal("a"),
        _signal(
            "b",
            symbol="GBPUSD",
            signal_type=SELL,
            entry_price=1.27,
            stop_loss=1.273,
            take_profit=1.265,
            generated_ns=at(1),
        ),
        _signal(
            "c",
            symbol="AUDUSD",
            entry_price=0.66,
            stop_loss=0.659,
            take_profit=0.662,
            lots=2.0,
            generated_ns=at(2),
        ),
        _signal(
            "d",
            symbol="NZDUSD",
            signal_type=SELL,
            order_type=LIMIT,
            entry_price=0.6,
            limit_price=0.6,
            stop_loss=0.602,
            take_profit=0.5985,
            valid_until_ns=at(30),
            generated_ns=at(3),
        ),
        _signal(
            "f",
            symbol="USDCAD",
            order_type=LIMIT,
            entry_price=1.35,
            stop_loss=1.348,
            take_profit=1.354,
            valid_until_ns=at(10),
            generated_ns=at(4),
        ),
        _hold("g", at(6)),
        _signal("h", symbol="XYZABC", generated_ns=at(7)),
        _signal(
            "i",
            symbol="GBPUSD",
            order_type=LIMIT,
            entry_price=1.26,
            stop_loss=1.258,
            take_profit=1.265,
            generated_ns=at(8),
        ),
        _signal("e", entry_price=1.101, stop_loss=1.099, take_profit=1.105, generated_ns=at(11)),
    ]
    # Given backwards, so only sorting puts the curve in order and finds its start.
    run = simulate_run(reversed(signals), prices, 10_000.0)

    assert [(row.signal_id, row.outcome, row.profit_loss) for row in run.results] == [
        ("e", E.SIGNAL_OUTCOME_OPEN, 0.0),
        ("i", E.SIGNAL_OUTCOME_UNSPECIFIED, 0.0),
        ("f", E.SIGNAL_OUTCOME_NOT_FILLED, 0.0),
        ("d", E.SIGNAL_OUTCOME_WIN, 150.0),
        ("c", E.SIGNAL_OUTCOME_LOSS, -200.0),
        ("b", E.SIGNAL_OUTCOME_LOSS, -300.0),
        ("a", E.SIGNAL_OUTCOME_WIN, 400.0),
    ]
    stats = run.stats
    # Every decision counts: BUY a c e f h i = 6, HOLD g = 1, SELL b d = 2.
    assert stats.signals_total == 9
    assert stats.signals_by_type == ((BUY, 6), (S.SIGNAL_TYPE_HOLD, 1), (SELL, 2))
    # Filled: a b c d e; closed: a b c d, of which a and d won.
    assert (stats.executed, stats.closed, stats.wins, stats.losses) == (5, 4, 2, 2)
    assert stats.hit_rate == 0.5
    # Gross profit 400 + 150 = 550 over gross loss 300 + 200 = 500.
    assert stats.profit_factor == 1.1
    # +40 - 30 - 10 + 15 = +15 pips; +400 - 300 - 200 + 150 = +50.00.
    assert (stats.total_profit_loss_pips, stats.total_profit_loss) == (15.0, 50.0)
    # Closes by time, b and c netted at m20: a m10 10,400 (the peak); b+c m20 9,900; d m40 10,050.
    # The largest fall is 10,400 - 9,900 = 500, 500 / 10,400 of the peak.
    assert (stats.max_drawdown, stats.max_drawdown_fraction) == (500.0, 500 / 10_400)
    # Only d filled late: 22 minutes after its decision, over five fills.
    assert stats.average_execution_latency_ns == 22 * MINUTE_NS // 5
    assert run.curve == (
        (at(0), 10_000.0),
        (at(10), 10_400.0),
        (at(20), 9_900.0),
        (at(40), 10_050.0),
    )
    assert (run.starting_equity, run.open_at_end, run.never_filled) == (10_000.0, 1, 2)


def test_simulate_run_without_signals_is_a_flat_curve_from_zero() -> None:
    run = simulate_run([], PriceSeries({}), 5_000.0)
    assert run.results == ()
    assert run.curve == ((0, 5_000.0),)
    assert (run.stats.signals_total, run.stats.max_drawdown) == (0, 0.0)


def test_price_series_from_predictions_has_one_tick_per_priced_prediction() -> None:
    def priced(symbol: str, price: float, observed_ns: int | None) -> prediction_pb2.Prediction:
        prediction = prediction_pb2.Prediction(symbol=symbol, current_price=price)
        if observed_ns is not None:
            prediction.timestamp.FromNanoseconds(observed_ns)
        return prediction

    first = prediction_pb2.MLPredictionBatch(
        predictions=[
            priced("EURUSD", 1.1, T0 + 2 * SECOND_NS),
            priced("EURUSD", 1.09, T0 + SECOND_NS),  # earlier, listed later
            priced("GBPUSD", 1.27, None),  # no timestamp: the batch's produced_at
            priced("USDJPY", 0.0, T0),  # no price: skipped
        ]
    )
    first.produced_at.FromNanoseconds(T0 + 3 * SECOND_NS)
    second = prediction_pb2.MLPredictionBatch(  # no produced_at
        predictions=[
            priced("EURUSD", 1.2, T0 + 2 * SECOND_NS),  # same instant again: replaces 1.1
            priced("GBPUSD", 1.28, None),  # no instant at all: skipped
        ]
    )
    prices = PriceSeries.from_predictions([first, second])
    # A single price is a bar of no length whose four prices are that price.
    assert list(prices.bars("EURUSD")) == [
        Bar(T0 + SECOND_NS, 1.09, 1.09, 1.09, open=1.09, start_ns=T0 + SECOND_NS),
        Bar(T0 + 2 * SECOND_NS, 1.2, 1.2, 1.2, open=1.2, start_ns=T0 + 2 * SECOND_NS),
    ]
    assert list(prices.bars("GBPUSD")) == [
        Bar(T0 + 3 * SECOND_NS, 1.27, 1.27, 1.27, open=1.27, start_ns=T0 + 3 * SECOND_NS)
    ]
    assert list(prices.bars("USDJPY")) == []
    assert list(prices.bars("AUDUSD")) == []


def test_price_series_from_csv_reads_iso_and_epoch_times_in_any_column_order(
    tmp_path: Path,
) -> None:
    path = tmp_path / "bars.csv"
    path.write_text(
        "time,symbol,open,high,low,close,volume\n"
        "2026-11-20T10:01:00Z,EURUSD,1.1000,1.1012,1.0995,1.1008,120\n"
        "2026-11-20T11:02:00+01:00,EURUSD,1.1008,1.1020,1.1001,1.1015,80\n"
        "1795168800,EURUSD,1.0990,1.1001,1.0985,1.1000,95\n"
        "1795168800,GBPUSD,1.2700,1.2710,1.2690,1.2705,40\n"
    )
    prices = PriceSeries.from_csv(path)
    # 1795168800 s is 2026-11-20T10:00:00Z = T0; 11:02+01:00 is 10:02Z. EURUSD's bars are a
    # minute apart, so each starts a minute before its end; GBPUSD's one bar has no known start.
    assert list(prices.bars("EURUSD")) == [
        Bar(T0, 1.1001, 1.0985, 1.1, open=1.099, start_ns=T0 - MINUTE_NS),
        Bar(T0 + MINUTE_NS, 1.1012, 1.0995, 1.1008, open=1.1, start_ns=T0),
        Bar(T0 + 2 * MINUTE_NS, 1.102, 1.1001, 1.1015, open=1.1008, start_ns=T0 + MINUTE_NS),
    ]
    assert list(prices.bars("GBPUSD")) == [Bar(T0, 1.271, 1.269, 1.2705, open=1.27)]


def test_a_csv_without_an_open_column_or_value_leaves_the_open_unknown(tmp_path: Path) -> None:
    path = tmp_path / "bars.csv"
    path.write_text("symbol,time,high,low,close\nEURUSD,1795168800,1.1,1.0,1.05\n")
    assert PriceSeries.from_csv(path).bars("EURUSD")[0].open is None
    path.write_text("symbol,time,open,high,low,close\nEURUSD,1795168800,,1.1,1.0,1.05\n")
    assert PriceSeries.from_csv(path).bars("EURUSD")[0].open is None


def test_a_csv_open_outside_the_bar_is_refused_naming_its_line(tmp_path: Path) -> None:
    path = tmp_path / "bars.csv"
    path.write_text("symbol,time,open,high,low,close\nEURUSD,1795168800,1.2,1.1,1.0,1.05\n")
    with pytest.raises(
        ValueError,
        match=re.escape(f"{path}, line 2: need low <= open <= high, got low 1.0, open 1.2"),
    ):
        PriceSeries.from_csv(path)


@pytest.mark.parametrize(
    ("row", "problem"),
    [
        ("EURUSD,yesterday,1.1,1.0,1.05", "time 'yesterday' is neither ISO-8601 nor whole seconds"),
        ("EURUSD,2026-11-20T10:00:00,1.1,1.0,1.05", "time '2026-11-20T10:00:00' has no zone"),
        ("EURUSD,1795168800,abc,1.0,1.05", "high 'abc' is not a number"),
        ("EURUSD,1795168800,1.1,-1.0,1.05", "low '-1.0' is not a positive price"),
        (
            "EURUSD,1795168800,1.0,1.1,1.05",
            "need low <= close <= high, got low 1.1, close 1.05, high 1.0",
        ),
        ("EURUSD,1795168800,1.1,1.0", "no value for close"),
    ],
)
def test_a_malformed_csv_row_is_refused_naming_its_line(
    tmp_path: Path, row: str, problem: str
) -> None:
    path = tmp_path / "bars.csv"
    path.write_text(f"symbol,time,high,low,close\nEURUSD,1795168800,1.1,1.0,1.05\n{row}\n")
    with pytest.raises(ValueError, match=re.escape(f"{path}, line 3: {problem}")):
        PriceSeries.from_csv(path)


def test_a_csv_header_without_a_required_column_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "bars.csv"
    path.write_text("symbol,time,high,close\nEURUSD,1795168800,1.1,1.05\n")
    with pytest.raises(ValueError, match=re.escape(f"{path}, line 1: the header lacks low")):
        PriceSeries.from_csv(path)


HOUR_NS = 60 * MINUTE_NS


def _hourly(*hours: float) -> dict[str, list[Bar]]:
    """EURUSD bars labelled `hours` after T0 as a file gives them, each 1.10 + hour/1000 to
    0.8 pips above: a market that rises a pip per hour."""
    bars = []
    for hour in hours:
        low = round(1.1 + hour / 1_000, 5)
        bars.append(Bar(T0 + int(hour * HOUR_NS), round(low + 0.00008, 5), low, low, open=low))
    return {"EURUSD": bars}


def test_bars_labelled_by_their_close_end_at_their_time_and_by_their_open_an_hour_later() -> None:
    raw = _hourly(0, 1, 3)
    by_close = labelled(raw, BarTime.CLOSE).bars("EURUSD")
    by_open = labelled(raw, BarTime.OPEN).bars("EURUSD")
    # Usually an hour apart (the gap of two hours is two bars missing, not a longer bar).
    assert [(bar.start_ns, bar.time_ns) for bar in by_close] == [
        (T0 - HOUR_NS, T0), (T0, T0 + HOUR_NS), (T0 + 2 * HOUR_NS, T0 + 3 * HOUR_NS),
    ]  # fmt: skip
    assert [(bar.start_ns, bar.time_ns) for bar in by_open] == [
        (T0, T0 + HOUR_NS), (T0 + HOUR_NS, T0 + 2 * HOUR_NS), (T0 + 3 * HOUR_NS, T0 + 4 * HOUR_NS),
    ]  # fmt: skip
    assert labelled(raw, BarTime.OPEN).warnings == ()


@pytest.mark.parametrize(
    ("bar_time", "outcome"),
    [(BarTime.CLOSE, E.SIGNAL_OUTCOME_WIN), (BarTime.OPEN, E.SIGNAL_OUTCOME_LOSS)],
)
def test_the_bar_time_decides_which_bar_a_decision_sees_first(
    bar_time: BarTime, outcome: int
) -> None:
    # A buy at 1.10000 decided at T0, stop 1.09800, target 1.10400. The bar labelled T0 reaches
    # the stop; the one labelled T0 + 1h the target. Labelled by their close, the first ended at
    # the decision and is ignored: a win. By their open, it is the hour after the decision: a loss.
    raw = {
        "EURUSD": [
            Bar(T0, 1.1005, 1.0975, 1.0990, open=1.1),
            Bar(T0 + HOUR_NS, 1.1045, 1.0990, 1.1040, open=1.0990),
        ]
    }
    prices = labelled(raw, bar_time)
    run = simulate_run([_signal("hour")], prices, 10_000.0)
    assert [(row.outcome, row.profit_loss) for row in run.results] == [
        (outcome, 400.0 if outcome == E.SIGNAL_OUTCOME_WIN else -200.0)
    ]


def test_bars_of_mixed_lengths_are_named_in_a_warning() -> None:
    warnings = labelled(_hourly(0, 1, 2, 2.5), BarTime.CLOSE).warnings
    assert warnings == (
        "EURUSD: 1 of 3 gaps between bars are not a whole number of its usual 1 h (the first "
        "before 2026-11-20T12:30:00Z): bars of other lengths get wrong starts",
    )


def test_a_single_bar_labelled_by_its_open_has_no_known_end() -> None:
    with pytest.raises(ValueError, match="EURUSD has a single bar: with --bar-time open"):
        labelled(_hourly(0), BarTime.OPEN)


def test_prices_that_sit_in_the_bars_read_the_other_way_flag_the_bar_time() -> None:
    # Bars labelled by their open, each hour 1 pip higher and 0.8 pips tall; the predictions saw
    # one price 30 minutes into each hour, inside that hour's bar. Read as labelled by their
    # close, every price falls in the bar of the hour before, a pip lower: outside it.
    raw = _hourly(*range(12))
    ticks = PriceSeries(
        {
            "EURUSD": [
                Bar(T0 + hour * HOUR_NS + 30 * MINUTE_NS, price, price, price)
                for hour in range(12)
                for price in [round(1.1 + hour / 1_000 + 0.00004, 5)]
            ]
        }
    )
    assert bar_time_warning(raw, BarTime.OPEN, ticks) is None
    assert bar_time_warning(raw, BarTime.CLOSE, ticks) == (
        "the bars disagree with --bar-time close: read as labelled by their open, 100% of the "
        "predictions' prices lie within the bar covering them, against 0% as given; check how "
        "the file labels its bars"
    )
    # Too few prices to tell: nothing said.
    few = PriceSeries({"EURUSD": list(ticks.bars("EURUSD"))[:9]})
    assert bar_time_warning(raw, BarTime.CLOSE, few) is None


def test_simulate_run_marks_open_positions_at_every_bar_close() -> None:
    # Buy at 1.10000, stop 1.09800, target 1.10400. At m1 the bar closes 15 pips down
    # (1.09850): the equity marked to market is 10,000 - 150 = 9,850. At m2 the target: +400.
    prices = PriceSeries(
        {
            "EURUSD": [
                Bar(T0 + MINUTE_NS, 1.1005, 1.0985, 1.0985),
                Bar(T0 + 2 * MINUTE_NS, 1.1045, 1.0990, 1.1040),
            ]
        }
    )
    stats = simulate_run([_signal("marked")], prices, 10_000.0).stats
    # Realised, the equity only rose.
    assert (stats.max_drawdown, stats.max_drawdown_fraction) == (0.0, 0.0)
    assert stats.max_drawdown_marked_to_market == 150.0
    assert stats.max_drawdown_marked_to_market_fraction == 0.015
