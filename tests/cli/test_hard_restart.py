"""`kill -9` of a serving engine loses at most the last history flush, on both stores."""

from __future__ import annotations

import asyncio
import secrets
import signal
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from google.protobuf import field_mask_pb2

from tests.factories import batch, live, prediction
from tests.support import POSTGRES_URL, Tokens, connect_postgres, running
from tradeflow.trading.v1 import signal_pb2, strategy_pb2
from tradeflow.trading.v1 import trading_engine_service_pb2 as service_pb2
from tradeflow.trading.v1 import trading_engine_service_pb2_grpc as service_grpc
from trading_engine.config import EngineSettings

FLUSH_S = 0.05


@pytest.fixture(params=["sqlite", "postgresql"])
async def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'engine.db'}"
        return
    schema = f"test_restart_{secrets.token_hex(6)}"
    admin = await connect_postgres()
    try:
        yield f"{POSTGRES_URL}?schema={schema}"
    finally:
        await admin.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        await admin.close()


async def test_strategies_and_flushed_history_survive_kill_9(
    store_url: str, tmp_path: Path
) -> None:
    args = (
        "serve", "--grpc-port", "0", "--data-dir", str(tmp_path), "--store-url", store_url,
        "--history-flush-seconds", str(FLUSH_S),
    )  # fmt: skip
    tokens = Tokens(EngineSettings(data_dir=str(tmp_path)))
    async with running(*args) as engine:
        address = (await engine.wait_for_line(r"serving gRPC on (\S+)")).group(1)
        async with tokens.channel(address) as channel:
            stub = service_grpc.TradingEngineServiceStub(channel)
            changed = await stub.UpdateStrategy(
                service_pb2.UpdateStrategyRequest(
                    layer=strategy_pb2.STRATEGY_LAYER_USER,
                    strategy=strategy_pb2.StrategyConfig(stop_loss_pips=33.0),
                    update_mask=field_mask_pb2.FieldMask(paths=["stop_loss_pips"]),
                )
            )
            decided: list[signal_pb2.TradingSignal] = []
            for index in range(3):
                response = await stub.ProcessPredictionBatch(
                    service_pb2.ProcessPredictionBatchRequest(
                        batch=live(batch(f"b{index}", [prediction(f"p{index}")]))
                    )
                )
                decided.extend(response.signal_batch.signals)
            await asyncio.sleep(10 * FLUSH_S)
        assert engine.process is not None
        engine.process.send_signal(signal.SIGKILL)
        assert await engine.process.wait() == -signal.SIGKILL

    async with running(*args) as engine:
        address = (await engine.wait_for_line(r"serving gRPC on (\S+)")).group(1)
        async with tokens.channel(address) as channel:
            stub = service_grpc.TradingEngineServiceStub(channel)
            strategy = (await stub.GetStrategy(service_pb2.GetStrategyRequest())).strategy
            pages = [
                page
                async for page in stub.GetSignalHistory(
                    service_pb2.GetSignalHistoryRequest(include_non_actionable=True)
                )
            ]
        await engine.signal_and_wait(signal.SIGTERM)
    assert strategy.config.stop_loss_pips == pytest.approx(33.0)
    assert strategy.user_version == changed.version.version
    assert sorted(s.signal_id for page in pages for s in page.signals) == sorted(
        s.signal_id for s in decided
    )
    # The first is actionable, sized on the updated stop; the other two duplicate it.
    assert decided[0].entry.stop_loss_pips == pytest.approx(33.0)
