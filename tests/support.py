"""Helpers shared by the tests: free ports, HTTP calls, engine subprocesses."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Awaitable
from pathlib import Path
from typing import Any

import asyncpg
import grpc
import pytest
from google.api import annotations_pb2, http_pb2
from google.protobuf import descriptor
from grpc_health.v1 import health_pb2

from tradeflow.common.v1 import tier_pb2
from tradeflow.trading.v1 import trading_engine_service_pb2_grpc as service_grpc
from trading_engine.app import Application
from trading_engine.auth.configured import signing_secret, token_policy
from trading_engine.auth.tokens import mint_development_token
from trading_engine.config import EngineSettings, GatewaySettings
from trading_engine.devstack.brokers import free_port
from trading_engine.gateway.envoy import EnvoyGateway
from trading_engine.tenancy import Caller
from trading_engine_client.auth import bearer_token
from trading_engine_client.errors import TradingEngineError, from_rpc_error

BIN = Path(sys.executable).parent
ROOT = Path(__file__).resolve().parents[1]


EXAMPLE_BATCH = ROOT / "docs" / "examples" / "prediction-batch.json"

# The user the factories' batches are for (tests/factories.py), and others around them.
TRADER = Caller("trader-1", "acme", tier_pb2.SUBSCRIPTION_TIER_PRO)
ADMIN = Caller("ops-1", "acme", tier_pb2.SUBSCRIPTION_TIER_ENTERPRISE, frozenset({"admin"}))
FREE_USER = Caller("free-1", "acme", tier_pb2.SUBSCRIPTION_TIER_FREE)
RIVAL_ADMIN = Caller("boss-1", "rival", tier_pb2.SUBSCRIPTION_TIER_ENTERPRISE, frozenset({"admin"}))


class Tokens:
    """Development tokens an engine built from `settings` accepts."""

    def __init__(self, settings: EngineSettings) -> None:
        self._secret = signing_secret(settings)
        self._policy = token_policy(settings)

    def token(self, caller: Caller = TRADER, lifetime_s: int = 600) -> str:
        return mint_development_token(
            self._secret, self._policy, caller, int(time.time()), lifetime_s
        )

    def header(self, caller: Caller = TRADER) -> dict[str, str]:
        """The HTTP header (and gRPC metadata) carrying a token for `caller`."""
        return {"authorization": f"Bearer {self.token(caller)}"}

    def channel(self, address: str, caller: Caller = TRADER) -> grpc.aio.Channel:
        """A channel that sends `caller`'s token with every call."""
        return grpc.aio.insecure_channel(address, interceptors=bearer_token(self.token(caller)))


def example_batch_request() -> bytes:
    """The README's example request, its `@NOW@` placeholders stamped with the current time."""
    now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    return EXAMPLE_BATCH.read_bytes().replace(b"@NOW@", now.encode())


def http_json(
    method: str, url: str, body: bytes | None = None, headers: dict[str, str] | None = None
) -> tuple[int, Any]:
    """Send one HTTP request; return the status and the decoded JSON body (errors included).

    The body is an object, or an array for a server-streaming RPC through Envoy.
    """
    request = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        with error:
            return error.code, json.loads(error.read())


@contextlib.asynccontextmanager
async def rest_gateway(engine: Application) -> AsyncIterator[EnvoyGateway]:
    """A real Envoy on free loopback ports in front of `engine`, stopped at the end."""
    envoy = EnvoyGateway(
        GatewaySettings(
            http_port=free_port(), envoy_admin_port=free_port(), upstream_port=engine.grpc_port
        )
    )
    await envoy.start()
    try:
        yield envoy
    finally:
        await envoy.stop()


def http_text(url: str) -> str:
    """The body of a GET, as text (a /metrics page, say)."""
    with urllib.request.urlopen(url, timeout=5) as response:
        return str(response.read().decode())


async def http_json_async(
    method: str, url: str, body: bytes | None = None, headers: dict[str, str] | None = None
) -> tuple[int, Any]:
    return await asyncio.to_thread(http_json, method, url, body, headers)


def children_of(pid: int) -> list[int]:
    """Direct child processes of `pid`, read from /proc."""
    children = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError):
            # Field 4 is the parent pid; the command name (field 2) may hold spaces.
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[1]) == pid:
                children.append(int(stat.parent.name))
    return children


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}").exists() and "Z" not in _state(pid)


def _state(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return "Z"


class CommandProcess:
    """A `trading-engine` subcommand run as a user would run it.

    Its output goes to a file, not a pipe: a chatty process (spans printed to the
    console) never blocks on a pipe the test is not reading at that moment.
    """

    def __init__(self, log: Path, *args: str) -> None:
        self.args = args
        self.log = log
        self.process: asyncio.subprocess.Process | None = None

    @property
    def output(self) -> str:
        return self.log.read_text(errors="replace")

    async def start(self) -> None:
        with self.log.open("wb") as log:
            self.process = await asyncio.create_subprocess_exec(
                str(BIN / "trading-engine"),
                *self.args,
                stdout=log,
                stderr=asyncio.subprocess.STDOUT,
                stdin=asyncio.subprocess.DEVNULL,
            )

    async def wait_for_line(self, pattern: str, within: float = 20) -> re.Match[str]:
        """Wait until a line of output matches; return the match."""
        assert self.process is not None
        compiled = re.compile(pattern, re.MULTILINE)
        async with asyncio.timeout(within):
            while not (match := compiled.search(self.output)):
                if self.process.returncode is not None:
                    raise AssertionError(
                        f"process exited before printing {pattern!r}:\n{self.output}"
                    )
                await asyncio.sleep(0.05)
        return match

    async def signal_and_wait(self, signum: int = signal.SIGTERM) -> int:
        """Send a signal; wait (at most 20 s) for the exit status."""
        assert self.process is not None
        self.process.send_signal(signum)
        async with asyncio.timeout(20):
            return await self.process.wait()

    async def kill(self) -> None:
        if self.process is not None and self.process.returncode is None:
            self.process.kill()
            await self.process.wait()


@contextlib.asynccontextmanager
async def running(*args: str) -> AsyncIterator[CommandProcess]:
    """Run a subcommand; its output stays readable after it ends, until the test ends."""
    with tempfile.TemporaryDirectory(prefix="command-") as folder:
        command = CommandProcess(Path(folder) / "output.txt", *args)
        await command.start()
        try:
            yield command
        finally:
            await command.kill()


async def health_status(channel: grpc.aio.Channel, service: str) -> int:
    """grpc.health.v1.Health/Check for one service name."""
    check = channel.unary_unary(
        "/grpc.health.v1.Health/Check",
        request_serializer=health_pb2.HealthCheckRequest.SerializeToString,
        response_deserializer=health_pb2.HealthCheckResponse.FromString,
    )
    reply: health_pb2.HealthCheckResponse = await check(
        health_pb2.HealthCheckRequest(service=service), timeout=5
    )
    return reply.status


def health_watch(
    channel: grpc.aio.Channel, service: str
) -> grpc.aio.UnaryStreamCall[Any, health_pb2.HealthCheckResponse]:
    """grpc.health.v1.Health/Watch for one service name; read() yields each status change."""
    watch = channel.unary_stream(
        "/grpc.health.v1.Health/Watch",
        request_serializer=health_pb2.HealthCheckRequest.SerializeToString,
        response_deserializer=health_pb2.HealthCheckResponse.FromString,
    )
    return watch(health_pb2.HealthCheckRequest(service=service))


class Stubs:
    """Engine stubs that call as a given user, on channels closed together."""

    def __init__(self, address: str, tokens: Tokens) -> None:
        self._address = address
        self._tokens = tokens
        self._channels: list[grpc.aio.Channel] = []

    def as_(self, caller: Caller = TRADER) -> service_grpc.TradingEngineServiceAsyncStub:
        channel = self._tokens.channel(self._address, caller)
        self._channels.append(channel)
        return service_grpc.TradingEngineServiceStub(channel)

    async def close(self) -> None:
        for channel in self._channels:
            await channel.close()


async def rpc_failure(call: Awaitable[Any]) -> TradingEngineError:
    """The typed error a call that must fail fails with."""
    try:
        await call
    except grpc.aio.AioRpcError as error:
        return from_rpc_error(error)
    raise AssertionError("the call succeeded")


POSTGRES_URL = os.environ.get(
    "TRADING_ENGINE_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"
)


async def connect_postgres(**settings: str) -> asyncpg.Connection:
    """A connection to the test PostgreSQL; fails the test (never skips it) when unreachable."""
    try:
        return await asyncpg.connect(POSTGRES_URL, timeout=5, server_settings=settings)
    except (OSError, asyncpg.PostgresError) as error:
        pytest.fail(
            f"PostgreSQL is unreachable at {POSTGRES_URL} ({error}); start it, or point "
            "TRADING_ENGINE_TEST_POSTGRES_URL at a server where this user may create schemas",
            pytrace=False,
        )


def http_rule(method: descriptor.MethodDescriptor) -> tuple[str, str, str] | None:
    """(verb, path template, body) of an RPC's google.api.http route; None without one."""
    options = method.GetOptions()
    if not options.HasExtension(annotations_pb2.http):  # type: ignore[arg-type]  # stubs lack extension typing
        return None
    rule: http_pb2.HttpRule = options.Extensions[annotations_pb2.http]  # type: ignore[index]  # same
    verb = rule.WhichOneof("pattern")
    assert verb is not None
    return verb, getattr(rule, verb), rule.body
