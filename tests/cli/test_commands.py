"""The `trading-engine` command as a user runs it."""

from __future__ import annotations

import asyncio
import signal
import subprocess

import grpc
from grpc_health.v1 import health_pb2

from tests.support import (
    BIN,
    children_of,
    free_port,
    health_watch,
    http_json_async,
    pid_alive,
    running,
)


async def test_serve_listens_and_exits_cleanly_on_sigterm() -> None:
    async with running("serve", "--grpc-port", "0", "--shutdown-grace-seconds", "2") as engine:
        match = await engine.wait_for_line(r"serving gRPC on (\S+)")
        address = match.group(1)
        async with grpc.aio.insecure_channel(address) as channel:
            watch = health_watch(channel, "")
            first = await watch.read()
            assert isinstance(first, health_pb2.HealthCheckResponse)
            assert first.status == health_pb2.HealthCheckResponse.SERVING
            assert engine.process is not None
            engine.process.send_signal(signal.SIGTERM)
            update = await asyncio.wait_for(watch.read(), timeout=5)
            assert isinstance(update, health_pb2.HealthCheckResponse)
            assert update.status == health_pb2.HealthCheckResponse.NOT_SERVING
        assert await asyncio.wait_for(engine.process.wait(), timeout=10) == 0


async def test_serve_reports_a_busy_port_and_what_to_do() -> None:
    async with running("serve", "--grpc-port", "0") as first:
        address = (await first.wait_for_line(r"serving gRPC on (\S+)")).group(1)
        port = address.rsplit(":", 1)[1]
        result = await asyncio.to_thread(
            subprocess.run,
            [str(BIN / "trading-engine"), "serve", "--grpc-port", port],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    assert result.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}" in result.stderr
    assert "--grpc-port" in result.stderr


async def test_dev_runs_engine_and_gateway_prints_commands_and_leaves_nothing_behind() -> None:
    grpc_port, http_port, admin_port = free_port(), free_port(), free_port()
    async with running(
        "dev",
        "--grpc-port", str(grpc_port),
        "--http-port", str(http_port),
        "--envoy-admin-port", str(admin_port),
    ) as dev:  # fmt: skip
        await dev.wait_for_line(r"Press Ctrl-C")
        banner = "".join(dev.output)
        assert f"grpcurl -plaintext 127.0.0.1:{grpc_port} list" in banner
        assert f"curl -s http://127.0.0.1:{http_port}/api/v1/health" in banner

        status, body = await http_json_async("GET", f"http://127.0.0.1:{http_port}/api/v1/health")
        assert status == 200
        assert body["status"] == "SERVING_STATUS_SERVING"

        assert dev.process is not None
        started = children_of(dev.process.pid)
        assert started, "dev should run Envoy as a child process"
        assert await dev.signal_and_wait(signal.SIGINT) == 0
    assert not [pid for pid in started if pid_alive(pid)]
    assert "trading engine stopped" in "".join(dev.output)


def test_help_shows_examples_for_every_command() -> None:
    for command in ("serve", "gateway", "dev"):
        result = subprocess.run(
            [str(BIN / "trading-engine"), command, "--help"],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        )
        assert "examples:" in result.stdout
        assert f"trading-engine {command}" in result.stdout


def test_invalid_environment_value_is_explained() -> None:
    result = subprocess.run(
        [str(BIN / "trading-engine"), "serve"],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
        env={"TRADING_ENGINE_GRPC_PORT": "fifty", "PATH": str(BIN)},
    )
    assert result.returncode != 0
    assert "TRADING_ENGINE_GRPC_PORT='fifty' is not a valid int" in result.stderr
