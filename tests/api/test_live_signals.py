"""StreamSignals: the caller's live signals, filtered, on a real server."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

import grpc
import pytest

from tests.factories import batch, live, prediction
from tests.support import ADMIN, FREE_USER, TRADER, Stubs
from tradeflow.trading.v1 import signal_pb2
from tradeflow.trading.v1 import trading_engine_service_pb2 as service_pb2
from trading_engine import errors
from trading_engine.live import LiveSignals
from trading_engine_client.errors import from_rpc_error

if TYPE_CHECKING:
    from tradeflow.trading.v1 import trading_engine_service_pb2_grpc as service_grpc

    Stub = service_grpc.TradingEngineServiceAsyncStub

S = signal_pb2
SVC = service_pb2


class Subscription:
    """One StreamSignals call whose filter the test changes while it runs."""

    def __init__(self, stub: Stub) -> None:
        self._requests: asyncio.Queue[SVC.StreamSignalsRequest | None] = asyncio.Queue()
        self.call = stub.StreamSignals(self._send())
        # Read in the background: cancelling a read of a grpc.aio call cancels the call.
        self._events: asyncio.Queue[SVC.StreamSignalsResponse | BaseException] = asyncio.Queue()
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        try:
            async for event in self.call:
                self._events.put_nowait(event)
        except grpc.aio.AioRpcError as error:
            self._events.put_nowait(error)

    def cancel(self) -> None:
        self.call.cancel()
        self._reader.cancel()

    async def _send(self) -> AsyncIterator[SVC.StreamSignalsRequest]:
        while (request := await self._requests.get()) is not None:
            yield request

    async def apply(self, **fields: object) -> None:
        """Send a filter and wait for its acknowledgement."""
        signal_filter = SVC.SignalFilter(**fields)  # type: ignore[arg-type]
        await self._requests.put(SVC.StreamSignalsRequest(filter=signal_filter))
        event = await self.next()
        assert event.WhichOneof("event") == "filter_applied"
        assert event.filter_applied == signal_filter

    async def next(self, within_s: float = 5.0) -> SVC.StreamSignalsResponse:
        event = await asyncio.wait_for(self._events.get(), within_s)
        if isinstance(event, BaseException):
            raise event
        return event

    async def signal(self) -> signal_pb2.TradingSignal:
        event = await self.next()
        assert event.WhichOneof("event") == "signal"
        return event.signal

    async def nothing_more(self) -> None:
        with pytest.raises(TimeoutError):
            await self.next(within_s=0.3)


async def _decide(stub: Stub, batch_id: str, *predictions: object) -> list[S.TradingSignal]:
    response = await stub.ProcessPredictionBatch(
        SVC.ProcessPredictionBatchRequest(batch=live(batch(batch_id, list(predictions))))  # type: ignore[arg-type]
    )
    return list(response.signal_batch.signals)


async def test_signals_arrive_as_decided_and_each_filter_replaces_the_last(stubs: Stubs) -> None:
    trader = stubs.as_(TRADER)
    watch = Subscription(trader)
    await watch.apply(symbols=["EURUSD"])

    decided = await _decide(
        trader, "b1", prediction("b1-eur", "EURUSD"), prediction("b1-gbp", "GBPUSD")
    )
    assert await watch.signal() == decided[0]
    await watch.nothing_more()  # GBPUSD is filtered out

    await watch.apply(symbols=["GBPUSD"], include_non_actionable=True)
    unsure = await _decide(trader, "b2", prediction("b2-gbp", "GBPUSD", confidence=0.4))
    received = await watch.signal()
    assert received == unsure[0]
    assert received.disposition == S.SIGNAL_DISPOSITION_REJECTED

    # The same batch again gets the same signals back, but they are not news.
    await _decide(trader, "b2", prediction("b2-gbp", "GBPUSD", confidence=0.4))
    await watch.nothing_more()
    watch.cancel()


async def test_types_filter_and_manual_signals_reach_the_stream(stubs: Stubs) -> None:
    trader = stubs.as_(TRADER)
    watch = Subscription(trader)
    await watch.apply(signal_types=[S.SIGNAL_TYPE_SELL])
    await _decide(trader, "b1", prediction("b1-eur", "EURUSD"))  # a BUY
    await watch.nothing_more()

    injected = await stubs.as_(ADMIN).InjectManualSignal(
        SVC.InjectManualSignalRequest(
            request_id="req-1",
            user_id="trader-1",
            symbol="EURUSD",
            signal_type=S.SIGNAL_TYPE_SELL,
            order_type=S.ORDER_TYPE_MARKET,
            reference_price=1.085,
            stop_loss=1.087,
            take_profit=1.081,
            position_size_lots=1.0,
        )
    )
    assert await watch.signal() == injected.signal
    watch.cancel()


async def test_a_user_sees_only_their_own_signals(stubs: Stubs) -> None:
    other = Subscription(stubs.as_(FREE_USER))
    await other.apply()
    await _decide(stubs.as_(TRADER), "b1", prediction("b1-eur", "EURUSD"))
    await other.nothing_more()
    other.cancel()


async def test_an_invalid_filter_ends_the_stream_with_each_bad_field(stubs: Stubs) -> None:
    watch = Subscription(stubs.as_(TRADER))
    await watch._requests.put(
        SVC.StreamSignalsRequest(
            filter=SVC.SignalFilter(
                symbols=["EURUSD", "EURUDS"], signal_types=[S.SIGNAL_TYPE_UNSPECIFIED]
            )
        )
    )
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await watch.next()
    assert raised.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    violations = from_rpc_error(raised.value).field_violations
    assert set(violations) == {"filter.symbols[1]", "filter.signal_types[0]"}


async def test_a_watcher_that_falls_behind_is_told_instead_of_silently_skipping() -> None:
    feed = LiveSignals(max_backlog=2)
    with feed.watch("acme", "trader-1") as watcher:
        for number in range(3):
            signal = S.TradingSignal(signal_id=f"s{number}")
            feed.publish_signal("acme", "trader-1", signal.SerializeToString())
        assert (await watcher.next()).signal_id == "s0"
        assert (await watcher.next()).signal_id == "s1"
        with pytest.raises(errors.ResourceExhausted) as raised:
            await watcher.next()
    assert raised.value.reason == "STREAM_OVERRUN"
    # Nobody watches any more: the signal is not even parsed (these bytes would not parse).
    feed.publish_signal("acme", "trader-1", b"\xff\xff")
