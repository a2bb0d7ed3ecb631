"""The `trading-engine` command as a user runs it."""

from __future__ import annotations

import asyncio
import json
import re
import signal
import subprocess
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2

from tests.support import (
    BIN,
    children_of,
    example_batch_request,
    health_watch,
    http_json_async,
    http_text,
    pid_alive,
    running,
)
from tradeflow.common.v1 import tier_pb2
from trading_engine.auth.configured import token_verifier
from trading_engine.config import EngineSettings
from trading_engine.devstack.brokers import free_port
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
        match = await engine.wait_for_line(r'^\{.*"message": "trading engine .* serving gRPC')
        line = json.loads(match.string)
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


async def test_dev_runs_the_whole_stack_with_a_demo_feed_and_leaves_nothing_behind(
    tmp_path: Path,
) -> None:
    grpc_port, http_port, admin_port = free_port(), free_port(), free_port()
    async with running(
        "dev",
        "--demo",
        "--grpc-port", str(grpc_port),
        "--http-port", str(http_port),
        "--envoy-admin-port", str(admin_port),
        "--data-dir", str(tmp_path),
    ) as dev:  # fmt: skip
        await dev.wait_for_line(r"Press Ctrl-C")
        banner = "".join(dev.output)
        assert f"grpcurl -plaintext 127.0.0.1:{grpc_port} list" in banner
        assert f"curl -s http://127.0.0.1:{http_port}/api/v1/health" in banner
        for part in ("NATS     nats://127.0.0.1:", "Kafka    127.0.0.1:", "risk     127.0.0.1:"):
            assert part in banner, banner
        metrics = re.search(r"metrics  (\S+)", banner)
        assert metrics is not None, banner

        # The demo feed's signals, assessed by the reference risk service, are
        # visible to the banner's token at once: live, and in history.
        token = re.search(r"export TOKEN=(\S+)", banner)
        assert token is not None, banner
        watch = await asyncio.create_subprocess_exec(
            str(BIN / "trading-engine"), "watch", "--address", f"127.0.0.1:{grpc_port}",
            "--token", token.group(1),
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        assert watch.stdout is not None
        async with asyncio.timeout(20):
            header = (await watch.stdout.readline()).decode()
            first = (await watch.stdout.readline()).decode()
        watch.terminate()
        await watch.wait()
        assert header.split()[:3] == ["time", "symbol", "type"]
        assert "ASSESSED" in first, first
        status, pages = await http_json_async(
            "GET",
            f"http://127.0.0.1:{http_port}/api/v1/signals/history",
            headers={"authorization": f"Bearer {token.group(1)}"},
        )
        assert status == 200, pages
        assert any(page.get("signals") for page in pages)
        scraped = await asyncio.to_thread(http_text, metrics.group(1))
        assert 'trading_engine_risk_breaker_state{state="closed"} 1.0' in scraped
        decided = re.search(
            r'trading_engine_bus_messages_total\{outcome="decided"\} (\S+)', scraped
        )
        assert decided is not None, scraped
        assert float(decided.group(1)) > 0

        status, body = await http_json_async("GET", f"http://127.0.0.1:{http_port}/api/v1/health")
        assert status == 200
        assert body["status"] == "SERVING_STATUS_SERVING"

        # The banner's token works for the README's example batch.
        status, body = await http_json_async(
            "POST",
            f"http://127.0.0.1:{http_port}/api/v1/predictions:process",
            example_batch_request(),
            {"authorization": f"Bearer {token.group(1)}"},
        )
        assert status == 200, body
        assert len(body["signalBatch"]["signals"]) == 3

        assert dev.process is not None
        started = children_of(dev.process.pid)
        # Envoy, nats-server and Tansu.
        assert len(started) == 3, started
        assert await dev.signal_and_wait(signal.SIGINT) == 0
    assert not [pid for pid in started if pid_alive(pid)]
    assert "trading engine stopped" in "".join(dev.output)


def test_help_shows_examples_for_every_command() -> None:
    commands = ("serve", "gateway", "dev", "token", "risk-service", "explain", "watch", "publish")
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
