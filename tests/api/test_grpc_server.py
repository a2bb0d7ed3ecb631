"""The gRPC server as a client sees it on a loopback port."""

from __future__ import annotations

import asyncio
import json
import subprocess
from typing import Any

import grpc
import pytest
from google.protobuf import descriptor, empty_pb2
from google.rpc import error_details_pb2
from grpc_health.v1 import health_pb2

from tests.support import Tokens, example_batch_request, health_status, health_watch
from tradeflow.trading.v1 import trading_engine_service_pb2 as service_pb2
from tradeflow.trading.v1 import trading_engine_service_pb2_grpc as service_grpc
from trading_engine import __version__
from trading_engine.api.status import ERROR_DOMAIN
from trading_engine.app import Application
from trading_engine_client.errors import rich_status

ENGINE = service_pb2.DESCRIPTOR.services_by_name["TradingEngineService"]
SERVICE = ENGINE.full_name


async def _call_with_empty_request(
    channel: grpc.aio.Channel, method: descriptor.MethodDescriptor
) -> grpc.aio.AioRpcError | None:
    """Call any RPC with an empty request message; return its error, or None on success."""
    path = f"/{SERVICE}/{method.name}"
    codec: dict[str, Any] = {
        "request_serializer": empty_pb2.Empty.SerializeToString,
        "response_deserializer": bytes,
    }
    try:
        if method.client_streaming:
            # A first answer is enough: a live stream (StreamAnalytics) goes on until cancelled.
            async for _ in channel.stream_stream(path, **codec)(
                iter([empty_pb2.Empty()]), timeout=5
            ):
                break
        elif method.server_streaming:
            async for _ in channel.unary_stream(path, **codec)(empty_pb2.Empty(), timeout=5):
                pass
        else:
            await channel.unary_unary(path, **codec)(empty_pb2.Empty(), timeout=5)
    except grpc.aio.AioRpcError as error:
        return error
    return None


@pytest.mark.parametrize("method", list(ENGINE.methods), ids=lambda m: m.name)
async def test_every_rpc_is_answered_by_the_engine(
    channel: grpc.aio.Channel, method: descriptor.MethodDescriptor
) -> None:
    error = await _call_with_empty_request(channel, method)
    if error is None:
        return
    # An unregistered method would get grpc's bare "Method not found!"; the
    # engine answers with a status carrying its own ErrorInfo.
    status = rich_status(error)
    assert status is not None, f"{method.name}: {error.code()} {error.details()}"
    info = error_details_pb2.ErrorInfo()
    assert any(detail.Unpack(info) for detail in status.details), status
    assert info.domain == ERROR_DOMAIN
    # Every RPC of the contract is built: none answers UNIMPLEMENTED.
    assert error.code() != grpc.StatusCode.UNIMPLEMENTED, error.details()


async def test_unknown_method_is_unimplemented_without_engine_details(
    channel: grpc.aio.Channel,
) -> None:
    no_such_method = channel.unary_unary(
        f"/{SERVICE}/NoSuchMethod", request_serializer=bytes, response_deserializer=bytes
    )
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await no_such_method(b"", timeout=5)
    assert raised.value.code() == grpc.StatusCode.UNIMPLEMENTED
    assert rich_status(raised.value) is None


async def test_health_check_reports_version_uptime_and_components(
    engine: Application, stub: service_grpc.TradingEngineServiceAsyncStub
) -> None:
    first = await stub.HealthCheck(service_pb2.HealthCheckRequest(), timeout=5)
    await asyncio.sleep(0.05)
    second = await stub.HealthCheck(service_pb2.HealthCheckRequest(), timeout=5)

    assert first.status == service_pb2.SERVING_STATUS_SERVING
    assert first.version == __version__
    assert first.started_at == second.started_at
    assert second.uptime.ToNanoseconds() - first.uptime.ToNanoseconds() >= 50_000_000
    assert second.checked_at.ToNanoseconds() > first.checked_at.ToNanoseconds()
    grpc_component = {c.name: c for c in first.components}["grpc"]
    assert grpc_component.state == service_pb2.COMPONENT_STATE_UP
    assert engine.grpc_address in grpc_component.detail


async def test_standard_health_service_serves_the_server_and_the_engine(
    channel: grpc.aio.Channel,
) -> None:
    for service in ("", SERVICE):
        assert await health_status(channel, service) == health_pb2.HealthCheckResponse.SERVING
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await health_status(channel, "no.such.Service")
    assert raised.value.code() == grpc.StatusCode.NOT_FOUND


async def test_stop_turns_health_not_serving_before_the_server_goes(engine: Application) -> None:
    async with grpc.aio.insecure_channel(engine.grpc_address) as channel:
        watch = health_watch(channel, SERVICE)
        assert _status(await watch.read()) == health_pb2.HealthCheckResponse.SERVING
        stopping = asyncio.create_task(engine.stop())
        update = _status(await asyncio.wait_for(watch.read(), timeout=5))
        assert update == health_pb2.HealthCheckResponse.NOT_SERVING
        await stopping


def _status(message: object) -> int:
    assert isinstance(message, health_pb2.HealthCheckResponse), message
    return message.status


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["list"], SERVICE),
        (
            ["describe", SERVICE],
            "rpc ProcessPredictions ( stream .tradeflow.trading.v1.ProcessPredictionsRequest )",
        ),
        (
            ["describe", "tradeflow.trading.v1.TradingSignal"],
            "repeated .tradeflow.trading.v1.DecisionStep decision_trace",
        ),
    ],
)
async def test_grpcurl_lists_and_describes_through_reflection(
    engine: Application, args: list[str], expected: str
) -> None:
    result = await asyncio.to_thread(
        subprocess.run,
        ["grpcurl", "-plaintext", engine.grpc_address, *args],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert expected in result.stdout


async def test_grpcurl_streams_the_readme_example_into_process_predictions(
    engine: Application, tokens: Tokens
) -> None:
    method = "tradeflow.trading.v1.TradingEngineService/ProcessPredictions"
    header = f"authorization: Bearer {tokens.token()}"
    result = await asyncio.to_thread(
        subprocess.run,
        ["grpcurl", "-plaintext", "-H", header, "-d", "@", engine.grpc_address, method],
        input=example_batch_request(),
        capture_output=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    signals = json.loads(result.stdout)["signalBatch"]["signals"]
    assert [signal["disposition"] for signal in signals] == [
        "SIGNAL_DISPOSITION_ACTIONABLE",
        "SIGNAL_DISPOSITION_ACTIONABLE",
        "SIGNAL_DISPOSITION_REJECTED",
    ]
