"""Per-RPC and process metrics on /metrics: every kind of call counted with its status code
and timed, the libraries' services too, and the process's CPU, memory, files and GC."""

from __future__ import annotations

import asyncio
import dataclasses

import grpc
import pytest
from grpc_health.v1 import health_pb2
from prometheus_client.parser import text_string_to_metric_families

from tests.support import TRADER, Tokens, health_watch, http_text, rpc_failure
from tradeflow.trading.v1 import trading_engine_service_pb2 as service_pb2
from tradeflow.trading.v1 import trading_engine_service_pb2_grpc as service_grpc
from trading_engine.app import Application
from trading_engine.config import EngineSettings

ENGINE = "tradeflow.trading.v1.TradingEngineService"
# A sample's name and its labels, sorted.
Sample = tuple[str, tuple[tuple[str, str], ...]]


@pytest.fixture
def engine_settings(engine_settings: EngineSettings) -> EngineSettings:
    return dataclasses.replace(engine_settings, metrics_address="127.0.0.1:0")


async def _scraped(engine: Application) -> dict[Sample, float]:
    """Every sample on /metrics: (name, sorted labels) -> value."""
    text = await asyncio.to_thread(http_text, f"http://127.0.0.1:{engine.metrics.port}/metrics")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def _handled(
    kind: str, service: str, method: str, code: str
) -> tuple[str, tuple[tuple[str, str], ...]]:
    labels = {"grpc_type": kind, "grpc_service": service, "grpc_method": method, "grpc_code": code}
    return "grpc_server_handled_total", tuple(sorted(labels.items()))


async def test_each_kind_of_call_is_counted_with_its_code_and_timed(
    engine: Application, tokens: Tokens
) -> None:
    async with tokens.channel(engine.grpc_address, TRADER) as channel:
        stub = service_grpc.TradingEngineServiceStub(channel)
        await stub.GetStrategy(service_pb2.GetStrategyRequest())
        # Another user's strategy is refused in the engine's error mapping, inside.
        await rpc_failure(stub.GetStrategy(service_pb2.GetStrategyRequest(user_id="trader-2")))
        async for _ in stub.GetSignalHistory(service_pb2.GetSignalHistoryRequest()):
            pass
        # A library servicer's stream, written with context.write, ended by its caller.
        watch = health_watch(channel, "")
        first = await watch.read()
        assert isinstance(first, health_pb2.HealthCheckResponse)
        assert first.status == health_pb2.HealthCheckResponse.SERVING
        watch.cancel()
    async with grpc.aio.insecure_channel(engine.grpc_address) as anonymous:
        # No token: refused by the outermost interceptor but one, and still counted.
        no_token = service_grpc.TradingEngineServiceStub(anonymous)
        await rpc_failure(no_token.GetStrategy(service_pb2.GetStrategyRequest()))

    # The cancelled stream ends on the server a moment after the caller left.
    cancelled = _handled("server_stream", "grpc.health.v1.Health", "Watch", "Canceled")
    async with asyncio.timeout(5):
        while cancelled not in (samples := await _scraped(engine)):  # noqa: ASYNC110
            await asyncio.sleep(0.05)

    for kind, service, method, code in (
        ("unary", ENGINE, "GetStrategy", "OK"),
        ("unary", ENGINE, "GetStrategy", "PermissionDenied"),
        ("unary", ENGINE, "GetStrategy", "Unauthenticated"),
        ("server_stream", ENGINE, "GetSignalHistory", "OK"),
        ("server_stream", "grpc.health.v1.Health", "Watch", "Canceled"),
    ):
        assert samples.get(_handled(kind, service, method, code)) == 1.0, (method, code, samples)
    started = ("grpc_type", "unary"), ("grpc_service", ENGINE), ("grpc_method", "GetStrategy")
    labels = tuple(sorted(started))
    assert samples["grpc_server_started_total", labels] == 3.0
    assert samples["grpc_server_handling_seconds_count", labels] == 3.0
    assert 0 < samples["grpc_server_handling_seconds_sum", labels] < 5


async def test_the_process_is_measured_too(engine: Application) -> None:
    samples = await _scraped(engine)
    by_name = {name: value for (name, _), value in samples.items()}
    assert by_name["process_resident_memory_bytes"] > 10_000_000
    assert by_name["process_open_fds"] > 0
    assert by_name["process_cpu_seconds_total"] > 0
    assert "python_gc_collections_total" in by_name
