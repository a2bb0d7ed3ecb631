"""A live session to replay: the demo feed for four traders through a running engine over
gRPC, with strategy changes on the way and batches delivered twice."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING

from google.protobuf import field_mask_pb2

from tests.api.trading import ManualClock
from tests.support import ADMIN, Stubs, Tokens
from tradeflow.trading.v1 import strategy_pb2
from tradeflow.trading.v1 import trading_engine_service_pb2 as service_pb2
from trading_engine.app import Application
from trading_engine.devstack.demo import TRADERS, DemoFeed
from trading_engine.tenancy import Caller

if TYPE_CHECKING:
    from tests.api.trading import Stub

SECOND_NS = 10**9
USER, COMPANY = strategy_pb2.STRATEGY_LAYER_USER, strategy_pb2.STRATEGY_LAYER_COMPANY
BATCHES = 240


async def _change(stub: Stub, layer: int, request_id: str, field: str, value: float) -> None:
    config = strategy_pb2.StrategyConfig()
    setattr(config, field, value)
    current = await stub.GetStrategy(service_pb2.GetStrategyRequest())
    version = (
        current.strategy.user_version
        if layer == strategy_pb2.STRATEGY_LAYER_USER
        else current.strategy.company_version
    )
    await stub.UpdateStrategy(
        service_pb2.UpdateStrategyRequest(
            layer=layer,  # type: ignore[arg-type]
            strategy=config,
            update_mask=field_mask_pb2.FieldMask(paths=[field]),
            expected_version=version,
            request_id=request_id,
        )
    )


async def live_session(
    live: Application,
    clock: ManualClock,
    tokens: Tokens,
    events: Mapping[int, Callable[[], Awaitable[None]]] | None = None,
) -> int:
    """The demo feed for four traders over gRPC, strategies changed on the way; its start.

    `events` run before the batch of their number (e.g. the risk service going away).
    """
    stubs = Stubs(live.grpc_address, tokens)
    as_trader = {t.user_id: stubs.as_(Caller(t.user_id, t.company_id, t.tier)) for t in TRADERS}
    trader_1, admin = as_trader["trader-1"], stubs.as_(ADMIN)
    changes = {
        60: lambda: _change(trader_1, USER, "u1", "min_confidence_threshold", 0.8),
        120: lambda: _change(admin, COMPANY, "c1", "min_consensus_score", 0.7),
        # Loosened again, down to the PRO floor (a tier bound: decision 31).
        180: lambda: _change(trader_1, USER, "u2", "min_confidence_threshold", 0.7),
    }
    start = clock.now
    feed = DemoFeed(seed=11, now_ns=clock.now_ns)
    try:
        for number in range(BATCHES):
            for happening in (changes, events or {}):
                if number in happening:
                    await happening[number]()
            request = service_pb2.ProcessPredictionBatchRequest(batch=feed.next_batch())
            stub = as_trader[request.batch.user_context.user_id]
            await stub.ProcessPredictionBatch(request)
            if number % 50 == 7:
                # A batch delivered again: answered from the first decision, not decided anew.
                await stub.ProcessPredictionBatch(request)
            clock.now += SECOND_NS // 2
    finally:
        await stubs.close()
    await live.history_writer.flush()
    return start
