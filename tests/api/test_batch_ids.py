"""Batch ids belong to the user who sends them: users of one company may share one, and a user
may send one again with other predictions. Each signal is explained with the prediction it was
decided from, and every batch is kept for replay, on a real server with a real store."""

from __future__ import annotations

from typing import TYPE_CHECKING

from tests.api.trading import ManualClock
from tests.factories import NOW_NS, batch, prediction
from tests.support import TRADER, Stubs
from tradeflow.common.v1 import tier_pb2
from tradeflow.ml.v1 import prediction_pb2
from tradeflow.trading.v1 import signal_pb2
from tradeflow.trading.v1 import trading_engine_service_pb2 as service_pb2
from trading_engine.app import Application
from trading_engine.tenancy import Caller

if TYPE_CHECKING:
    from tests.api.trading import Stub

S = service_pb2
SECOND_NS = 1_000_000_000
TRADER_2 = Caller("trader-2", "acme", tier_pb2.SUBSCRIPTION_TIER_PRO)
UP, DOWN = prediction_pb2.DIRECTION_UP, prediction_pb2.DIRECTION_DOWN


def _priced(
    clock: ManualClock, prediction_id: str, symbol: str, direction: int
) -> prediction_pb2.Prediction:
    return prediction(prediction_id, symbol, direction, observed_ns=clock.now - 200_000_000)


async def _send(
    stub: Stub, caller: Caller, batch_id: str, *predictions: prediction_pb2.Prediction
) -> list[signal_pb2.TradingSignal]:
    request = S.ProcessPredictionBatchRequest(
        batch=batch(batch_id, list(predictions), user_id=caller.user_id)
    )
    return list((await stub.ProcessPredictionBatch(request)).signal_batch.signals)


async def _explained(stub: Stub, signal: signal_pb2.TradingSignal) -> prediction_pb2.Prediction:
    chain = await stub.ExplainSignal(S.ExplainSignalRequest(signal_id=signal.signal_id))
    assert chain.signal == signal
    assert chain.HasField("prediction"), f"no prediction kept for {signal.prediction_id}"
    return chain.prediction


async def _replayed(stub: Stub, end_ns: int) -> S.ReplayResult:
    request = S.ReplaySignalsRequest()
    request.start_time.FromNanoseconds(NOW_NS)
    request.end_time.FromNanoseconds(end_ns)
    *_, last = [response async for response in stub.ReplaySignals(request)]
    return last.result


async def test_users_of_one_company_sharing_a_batch_id_each_see_their_own_prediction(
    stubs_: Stubs, fixed_engine: Application, clock: ManualClock
) -> None:
    trader_1, trader_2 = stubs_.as_(TRADER), stubs_.as_(TRADER_2)
    # trader-2 first; then trader-1 with the same batch id and prediction id, another trade.
    theirs = _priced(clock, "p-1", "EURUSD", UP)
    [their_signal] = await _send(trader_2, TRADER_2, "shared", theirs)
    clock.now += SECOND_NS
    mine = _priced(clock, "p-1", "GBPUSD", DOWN)
    [my_signal] = await _send(trader_1, TRADER, "shared", mine)
    assert (their_signal.symbol, my_signal.symbol) == ("EURUSD", "GBPUSD")

    assert await _explained(trader_1, my_signal) == mine
    assert await _explained(trader_2, their_signal) == theirs

    # Both batches were kept: each user's replay decides their signal again, byte for byte.
    await fixed_engine.history_writer.flush()
    for stub in (trader_1, trader_2):
        result = await _replayed(stub, clock.now + 1)
        assert (result.decisions, result.identical, result.different) == (1, 1, 0)


async def test_a_batch_id_sent_again_with_other_predictions_is_explained_and_replayed(
    stubs_: Stubs, fixed_engine: Application, clock: ManualClock
) -> None:
    trader = stubs_.as_(TRADER)
    first = _priced(clock, "p-1", "EURUSD", UP)
    [eurusd] = await _send(trader, TRADER, "daily", first)
    # The same id again at the same instant with another prediction: a batch of its own.
    same_instant = _priced(clock, "p-2", "USDJPY", DOWN)
    again, usdjpy = await _send(trader, TRADER, "daily", first, same_instant)
    assert again == eurusd
    # And a second later, with a third.
    clock.now += SECOND_NS
    later = _priced(clock, "p-3", "GBPUSD", DOWN)
    [gbpusd] = await _send(trader, TRADER, "daily", later)

    assert await _explained(trader, eurusd) == first
    assert await _explained(trader, usdjpy) == same_instant
    assert await _explained(trader, gbpusd) == later

    await fixed_engine.history_writer.flush()
    result = await _replayed(trader, clock.now + 1)
    assert (result.decisions, result.identical, result.different) == (3, 3, 0)
