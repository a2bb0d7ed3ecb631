"""The `trading-engine` command as a user runs it."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2

from tests.support import (
    BIN,
    health_watch,
    running,
)
from tradeflow.common.v1 import tier_pb2
from trading_engine.auth.configured import token_verifier
from trading_engine.config import EngineSettings
from trading_engine.tenancy import Caller


async def test_serve_listens_and_exits_cleanly_on_sigterm(tmp_path: Path) -> None:
    async with running(
        "serve", "--grpc-port", "0", "--shutdown-grace-seconds", "2", "--data-dir", str(tmp_path)
    ) as engine:
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


async def test_serve_logs_json_lines_when_asked(tmp_path: Path) -> None:
    async with running(
        "serve", "--grpc-port", "0", "--data-dir", str(tmp_path), "--log-format", "json"
    ) as engine:
        match = await engine.wait_for_line(r'^\{.*"message": "trading engine .* serving gRPC.*$')
        line = json.loads(match.group(0))
        assert (line["level"], line["logger"]) == ("INFO", "trading_engine.app")
        assert engine.process is not None
        engine.process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(engine.process.wait(), timeout=10) == 0


async def test_serve_reports_a_busy_port_and_what_to_do(tmp_path: Path) -> None:
    async with running("serve", "--grpc-port", "0", "--data-dir", str(tmp_path)) as first:
        address = (await first.wait_for_line(r"serving gRPC on (\S+)")).group(1)
        port = address.rsplit(":", 1)[1]
        result = await asyncio.to_thread(
            subprocess.run,
            [
                str(BIN / "trading-engine"),
                "serve",
                "--grpc-port",
                port,
                "--data-dir",
                str(tmp_path),
            ],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    assert result.returncode == 1
    assert f"cannot listen on 127.0.0.1:{port}" in result.stderr
    assert "--grpc-port" in result.stderr


def test_help_shows_examples_for_every_command() -> None:
    commands = (
        "serve",
        "gateway",
        "dev",
        "token",
        "risk-service",
        "explain",
        "watch",
        "publish",
        "replay",
    )
    for command in commands:
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


def _token_command(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "trading-engine"), "token", *args],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


async def test_token_mints_a_development_token_the_engine_accepts(tmp_path: Path) -> None:
    minted = await asyncio.to_thread(
        _token_command,
        "--user", "ops-1", "--company", "acme", "--tier", "enterprise", "--role", "admin",
        "--data-dir", str(tmp_path),
    )  # fmt: skip
    assert minted.returncode == 0, minted.stderr
    assert "development token for user 'ops-1' of company 'acme'" in minted.stderr
    settings = EngineSettings(data_dir=str(tmp_path))
    caller = token_verifier(settings).verify(minted.stdout.strip())
    assert caller == Caller(
        "ops-1", "acme", tier_pb2.SUBSCRIPTION_TIER_ENTERPRISE, frozenset({"admin"})
    )


def test_token_is_refused_in_production_and_for_unknown_tiers(tmp_path: Path) -> None:
    production = _token_command(
        "--user", "u", "--company", "c", "--tier", "pro", "--environment", "production",
        "--data-dir", str(tmp_path),
    )  # fmt: skip
    assert production.returncode == 1
    assert "development tokens are refused in production" in production.stderr
    assert production.stdout == ""
    unknown = _token_command("--user", "u", "--company", "c", "--tier", "gold")
    assert unknown.returncode == 2
    assert "unknown tier 'gold': use FREE, PRO or ENTERPRISE" in unknown.stderr
