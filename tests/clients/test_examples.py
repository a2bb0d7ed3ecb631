"""docs/clients.md shows only code from examples.py, and every example runs against real servers."""

from __future__ import annotations

import ast
import asyncio
import inspect
import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests import factories
from tests.bus.busclient import eventually
from tests.clients import examples
from tests.support import ROOT, TRADER, Tokens
from tradeflow.ml.v1 import prediction_pb2
from tradeflow.trading.v1 import signal_pb2
from tradeflow.trading.v1 import trading_engine_service_pb2 as service_pb2
from trading_engine import __version__
from trading_engine.app import Application
from trading_engine.devstack.brokers import KafkaBroker, NatsServer
from trading_engine_client import AsyncTradingEngineClient

DOCS = ROOT / "docs" / "clients.md"


def python_blocks(markdown: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", markdown, flags=re.DOTALL)


def test_the_docs_show_every_example_and_only_tested_code() -> None:
    source = Path(inspect.getfile(examples)).read_text()
    blocks = python_blocks(DOCS.read_text())
    assert blocks, "docs/clients.md has no python examples"
    for block in blocks:
        assert block in source, f"not in tests/clients/examples.py:\n{block}"
    shown = "".join(blocks)
    functions = [
        node.name
        for node in ast.parse(source).body
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
    ]
    assert [name for name in functions if f"def {name}(" not in shown] == []


def batch(batch_id: str, symbol: str = "EURUSD") -> prediction_pb2.MLPredictionBatch:
    prediction = factories.prediction(f"{batch_id}-{symbol}", symbol)
    return factories.live(factories.batch(batch_id, [prediction]))


@pytest.fixture
async def client(engine: Application, tokens: Tokens) -> AsyncIterator[AsyncTradingEngineClient]:
    async with AsyncTradingEngineClient(engine.grpc_address, token=tokens.token()) as opened:
        yield opened


async def test_engine_version(engine: Application, tokens: Tokens) -> None:
    asked: list[str] = []

    def token() -> str:
        asked.append("token")
        return tokens.token(TRADER)

    assert await examples.engine_version(engine.grpc_address, token) == __version__
    assert asked == ["token"]


async def test_explain(
    client: AsyncTradingEngineClient, capsys: pytest.CaptureFixture[str]
) -> None:
    decided = await client.process_prediction_batch(
        service_pb2.ProcessPredictionBatchRequest(batch=batch("x-1"))
    )
    explained = await examples.explain(client, decided.signals[0].signal_id)
    assert explained is not None
    assert explained.prediction.prediction_id == "x-1-EURUSD"

    assert await examples.explain(client, "s-404") is None
    assert "no such signal (SIGNAL_NOT_FOUND)" in capsys.readouterr().out


async def test_raise_confidence(
    engine: Application, tokens: Tokens, client: AsyncTradingEngineClient
) -> None:
    revision = await asyncio.to_thread(
        examples.raise_confidence, engine.grpc_address, tokens.token(), 0.8
    )
    strategy = await client.get_strategy()
    assert strategy.user_version == revision
    assert strategy.config.min_confidence_threshold == 0.8


async def test_decide(client: AsyncTradingEngineClient) -> None:
    async def batches() -> AsyncIterator[prediction_pb2.MLPredictionBatch]:
        yield batch("d-1")
        yield batch("d-2", "USDJPY")

    decided = await examples.decide(client, batches())
    assert [(d.batch_id, d.signals[0].symbol) for d in decided] == [
        ("d-1", "EURUSD"),
        ("d-2", "USDJPY"),
    ]


async def test_history(engine: Application, client: AsyncTradingEngineClient) -> None:
    for batch_id, symbol in (("h-1", "EURUSD"), ("h-2", "USDJPY")):
        await client.process_prediction_batch(
            service_pb2.ProcessPredictionBatchRequest(batch=batch(batch_id, symbol))
        )
    await engine.history_writer.flush()
    assert [s.symbol for s in await examples.history(client, "USDJPY")] == ["USDJPY"]


async def test_publish_predictions_and_assess_actionable(
    bus_engine: Application, nats_server: NatsServer, kafka_broker: KafkaBroker
) -> None:
    assessed: list[signal_pb2.TradingSignal] = []

    async def assess(signal: signal_pb2.TradingSignal) -> None:
        assessed.append(signal)

    async with examples.risk_feed(nats_server.url, kafka_broker.bootstrap, "acme") as feed:
        assessing = asyncio.create_task(examples.assess_actionable(feed, assess))
        unsure = factories.prediction("p-2-gbp", "GBPUSD", confidence=0.4)
        batches = [batch("p-1"), factories.live(factories.batch("p-2", [unsure]))]
        message_ids = await examples.publish_predictions(
            nats_server.url, kafka_broker.bootstrap, batches
        )
        assert len(set(message_ids)) == 2
        await eventually(lambda: feed.duplicates == 2, what="both batches' signals, twice each")
        # Leaving the block closes the feed: the loop ends on its own.
    await asyncio.wait_for(assessing, 5)
    # The unsure GBPUSD prediction was not actionable; the EURUSD one was, and came once.
    assert [s.symbol for s in assessed] == ["EURUSD"]
