"""The demo broker: fills at the quote, closes at the stop, the target or after its hold."""

from __future__ import annotations

from tradeflow.trading.v1 import execution_pb2, signal_pb2
from trading_engine.devstack.broker import DemoBroker

E = execution_pb2
S = signal_pb2
SECOND_NS = 1_000_000_000


def _buy(
    signal_id: str, order_type: S.OrderType.ValueType = S.ORDER_TYPE_MARKET
) -> S.TradingSignal:
    """Buy 1 lot of EURUSD at 1.10000 (limit 1.09950), stop 1.09800, target 1.10400."""
    return S.TradingSignal(
        signal_id=signal_id, user_id="trader-1", company_id="acme", symbol="EURUSD",
        signal_type=S.SIGNAL_TYPE_BUY, disposition=S.SIGNAL_DISPOSITION_ACTIONABLE,
        entry=S.EntryStrategy(
            order_type=order_type, entry_price=1.1, limit_price=1.0995, stop_loss=1.098,
            take_profit=1.104, position_size_lots=1.0,
        ),
    )  # fmt: skip


class _Quotes:
    def __init__(self) -> None:
        self.now = (1.09996, 1.10004)

    def __call__(self, symbol: str) -> tuple[float, float] | None:
        return self.now if symbol == "EURUSD" else None


def test_a_market_buy_fills_at_the_ask_and_stops_out_at_the_bid() -> None:
    quotes = _Quotes()
    broker = DemoBroker(quotes, hold_seconds=60)
    [fill] = broker.take(_buy("s1"), 0)
    assert (fill.status, fill.executed_price, fill.execution_id) == (
        E.EXECUTION_STATUS_FILLED, 1.10004, "demo-s1-fill",
    )  # fmt: skip
    assert broker.tick(SECOND_NS) == []
    quotes.now = (1.09799, 1.09807)  # the bid one tick below the stop
    [close] = broker.tick(2 * SECOND_NS)
    assert (close.status, close.exit_price, close.close_reason) == (
        E.EXECUTION_STATUS_CLOSED, 1.09799, E.CLOSE_REASON_STOP_LOSS,
    )  # fmt: skip
    assert (close.closed_at.ToNanoseconds(), broker.open_positions) == (2 * SECOND_NS, 0)


def test_a_position_closes_at_its_target_or_at_the_market_after_its_hold() -> None:
    quotes = _Quotes()
    broker = DemoBroker(quotes, hold_seconds=60)
    broker.take(_buy("won"), 0)
    quotes.now = (1.104, 1.10408)
    [won] = broker.tick(SECOND_NS)
    assert won.close_reason == E.CLOSE_REASON_TAKE_PROFIT
    broker.take(_buy("held"), 0)
    quotes.now = (1.1001, 1.10018)
    assert broker.tick(60 * SECOND_NS - 1) == []
    [held] = broker.tick(60 * SECOND_NS)
    assert (held.close_reason, held.exit_price) == (E.CLOSE_REASON_MANUAL, 1.1001)


def test_a_limit_waits_for_the_ask_to_reach_it_and_holds_are_not_filled() -> None:
    quotes = _Quotes()
    broker = DemoBroker(quotes, hold_seconds=60)
    assert broker.take(_buy("limit", S.ORDER_TYPE_LIMIT), 0) == []
    assert broker.tick(SECOND_NS) == []
    quotes.now = (1.09942, 1.0995)
    [fill] = broker.tick(2 * SECOND_NS)
    assert fill.executed_price == 1.0995
    hold = _buy("hold")
    hold.disposition = S.SIGNAL_DISPOSITION_HOLD
    assert broker.take(hold, 0) == []
