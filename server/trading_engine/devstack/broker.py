"""A small simulated broker for the demo: it fills the feed's actionable signals from the
feed's own price walk and reports what became of them on the bus, as an execution gateway
would, so positions, stop-outs, cooldowns, the adaptive layer and the performance figures
all move in `dev --demo`.

`DemoBroker` is the bookkeeping, without I/O: a market order fills at once at the quote
(a buy at the ask, a sell at the bid), a limit order when the quote trades through it.
A position closes at its stop or target when the quote reaches it, else after
`hold_seconds` at the quote, as a trader's time exit (CLOSE_REASON_MANUAL): at the walk's
volatility a 20-pip stop is an hour away, and a demo should show closed trades within
minutes. `run_broker` wires it to the bus.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable
from typing import Final

import nats
from nats.aio.client import Client

from tradeflow.common.v1 import envelope_pb2
from tradeflow.trading.v1 import execution_pb2, signal_pb2
from trading_engine.bus.names import NATS_EXECUTIONS
from trading_engine.core.decision import SIDE
from trading_engine_client import SignalSubscriber

E = execution_pb2
# (bid, ask) of a symbol now; None for a symbol the feed does not quote.
Quote = Callable[[str], tuple[float, float] | None]
# Short: at about 35 signals a minute a PRO demo trader keeps some 6 positions open, below
# the tier's limit of 10, so signals keep coming.
DEFAULT_HOLD_SECONDS: Final = 10.0
_NANOS_PER_SECOND: Final = 1_000_000_000


@dataclasses.dataclass
class _Order:
    signal: signal_pb2.TradingSignal
    # +1 buy, -1 sell.
    side: int
    fill_price: float = 0.0
    opened_ns: int = 0


class DemoBroker:
    """Orders from signals, filled and closed against `quote`."""

    def __init__(self, quote: Quote, hold_seconds: float = DEFAULT_HOLD_SECONDS) -> None:
        self._quote = quote
        self._hold_ns = int(hold_seconds * _NANOS_PER_SECOND)
        self._pending: list[_Order] = []
        self._open: list[_Order] = []

    @property
    def open_positions(self) -> int:
        return len(self._open)

    def take(self, signal: signal_pb2.TradingSignal, now_ns: int) -> list[E.ExecutionResult]:
        """Take the order a signal asks for; the fill when it fills at once (a market order)."""
        if signal.disposition != signal_pb2.SIGNAL_DISPOSITION_ACTIONABLE:
            return []
        if not signal.HasField("entry") or not SIDE[signal.signal_type]:
            return []
        order = _Order(signal, SIDE[signal.signal_type])
        if signal.entry.order_type == signal_pb2.ORDER_TYPE_LIMIT:
            self._pending.append(order)
            return []
        return self._fill(order, now_ns)

    def tick(self, now_ns: int) -> list[E.ExecutionResult]:
        """The fills and closes the quotes now bring: limits traded through, stops and targets
        reached, positions held `hold_seconds`."""
        results: list[E.ExecutionResult] = []
        for order in list(self._pending):
            quote = self._quote(order.signal.symbol)
            limit = order.signal.entry.limit_price or order.signal.entry.entry_price
            if quote is not None and order.side * (_paying(quote, order.side) - limit) <= 0:
                self._pending.remove(order)
                results += self._fill(order, now_ns)
        for order in list(self._open):
            close = self._close(order, now_ns)
            if close is not None:
                self._open.remove(order)
                results.append(close)
        return results

    def _fill(self, order: _Order, now_ns: int) -> list[E.ExecutionResult]:
        quote = self._quote(order.signal.symbol)
        if quote is None:
            return []
        order.fill_price, order.opened_ns = _paying(quote, order.side), now_ns
        self._open.append(order)
        return [self._result(order, E.EXECUTION_STATUS_FILLED, now_ns)]

    def _close(self, order: _Order, now_ns: int) -> E.ExecutionResult | None:
        quote = self._quote(order.signal.symbol)
        if quote is None:
            return None
        # A long position sells at the bid, a short one buys back at the ask.
        price = _paying(quote, -order.side)
        entry = order.signal.entry
        if order.side * (price - entry.stop_loss) <= 0:
            reason = E.CLOSE_REASON_STOP_LOSS
        elif order.side * (price - entry.take_profit) >= 0:
            reason = E.CLOSE_REASON_TAKE_PROFIT
        elif now_ns - order.opened_ns >= self._hold_ns:
            reason = E.CLOSE_REASON_MANUAL
        else:
            return None
        result = self._result(order, E.EXECUTION_STATUS_CLOSED, order.opened_ns)
        result.exit_price = price
        result.closed_at.FromNanoseconds(now_ns)
        result.close_reason = reason
        return result

    def _result(
        self, order: _Order, status: E.ExecutionStatus.ValueType, executed_ns: int
    ) -> E.ExecutionResult:
        signal = order.signal
        # Named by the signal: unique across restarts of the demo, as a broker's ids are.
        event = "fill" if status == E.EXECUTION_STATUS_FILLED else "close"
        result = E.ExecutionResult(
            execution_id=f"demo-{signal.signal_id}-{event}",
            signal_id=signal.signal_id,
            user_id=signal.user_id,
            company_id=signal.company_id,
            symbol=signal.symbol,
            status=status,
            executed_price=order.fill_price,
            executed_size_lots=signal.entry.position_size_lots,
            correlation_id=signal.correlation_id,
        )
        result.executed_at.FromNanoseconds(executed_ns)
        return result


def _paying(quote: tuple[float, float], side: int) -> float:
    """The price a buyer (side +1) pays or a seller (-1) gets."""
    bid, ask = quote
    return ask if side > 0 else bid


class BrokerLink:
    """The broker on the bus: signals in from the engine's output, results out on the
    execution-results subject, as an execution gateway would."""

    def __init__(self, broker: DemoBroker, nats_url: str, now_ns: Callable[[], int]) -> None:
        self.broker = broker
        self._nats_url = nats_url
        self._now_ns = now_ns
        self._client: Client | None = None

    async def run(self) -> None:
        """Take every signal the engine publishes, until cancelled."""
        self._client = await nats.connect(self._nats_url, name="demo-broker")
        try:
            async with SignalSubscriber(nats_url=self._nats_url) as signals:
                async for delivery in signals:
                    now_ns = self._now_ns()
                    for signal in delivery.batch.signals:
                        await self.report(self.broker.take(signal, now_ns))
        finally:
            await self._client.drain()

    async def tick(self) -> None:
        """Report what the quotes now bring (after the feed moved them); nothing before the
        link is connected, so nothing is decided that cannot be reported."""
        if self._client is not None:
            await self.report(self.broker.tick(self._now_ns()))

    async def report(self, results: list[E.ExecutionResult]) -> None:
        if self._client is None or not results:
            return
        for result in results:
            envelope = envelope_pb2.TradingProcessingEnvelope(
                message_type=envelope_pb2.MESSAGE_TYPE_EXECUTION_RESULT,
                user_id=result.user_id,
                company_id=result.company_id,
                payload=result.SerializeToString(),
                message_id=result.execution_id,
                correlation_id=result.correlation_id,
                service_source="demo-broker",
            )
            await self._client.publish(NATS_EXECUTIONS, envelope.SerializeToString())
        await asyncio.sleep(0)
