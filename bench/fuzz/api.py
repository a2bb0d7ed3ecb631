"""Fuzz the API: generated requests to a real `trading-engine serve` over gRPC and through Envoy.

Every RPC of TradingEngineService gets requests built from its request
message's descriptor (`bench/fuzz/api_inputs.py`), from callers of each kind
(a trader, a company admin, another company's admin, a FREE user, no token, a
forged token), sometimes as mangled bytes. Over REST the same requests go as
JSON, often mangled, to the routes the contracts annotate. The contract
checked: no gRPC call ends UNKNOWN, INTERNAL, UNAVAILABLE or DEADLINE_EXCEEDED
(the engine failed, died or hung), and no REST call gets a 5xx.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import dataclasses
import http.client
import random
import re
import subprocess
import sys
import time
from collections.abc import AsyncIterable, AsyncIterator, Iterator
from pathlib import Path
from typing import Any, Final
from urllib.parse import quote

import grpc
from google.api import annotations_pb2, http_pb2
from google.protobuf import descriptor, message

from bench.fuzz.api_inputs import query_string, random_message, rest_body
from tradeflow.common.v1 import tier_pb2
from tradeflow.trading.v1 import trading_engine_service_pb2 as service_pb2
from trading_engine.auth.configured import signing_secret, token_policy
from trading_engine.auth.tokens import mint_development_token
from trading_engine.config import EngineSettings, GatewaySettings
from trading_engine.devstack.brokers import free_port
from trading_engine.gateway.envoy import EnvoyGateway
from trading_engine.tenancy import Caller

SERVICE: Final = service_pb2.DESCRIPTOR.services_by_name["TradingEngineService"]
# Codes that say the engine failed, died or hung rather than answered.
FAILING_CODES: Final = frozenset(
    {
        grpc.StatusCode.UNKNOWN,
        grpc.StatusCode.INTERNAL,
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.DATA_LOSS,
    }
)
_CALLERS: Final = (
    Caller("trader-1", "acme", tier_pb2.SUBSCRIPTION_TIER_PRO),
    Caller("ops-1", "acme", tier_pb2.SUBSCRIPTION_TIER_ENTERPRISE, frozenset({"admin"})),
    Caller("boss-1", "rival", tier_pb2.SUBSCRIPTION_TIER_ENTERPRISE, frozenset({"admin"})),
    Caller("free-1", "acme", tier_pb2.SUBSCRIPTION_TIER_FREE),
)
_DEADLINE_S: Final = 10.0
# How long a bidirectional stream is read before the client ends it (live streams never end).
_STREAM_READ_S: Final = 0.3
_IN_FLIGHT: Final = 16
# What grpc's client reports when its side of a stream fails, say writing a request after the
# server has ended the call under load: not the server's answer.
_CLIENT_CORE_ERROR: Final = "Internal error from Core"


@dataclasses.dataclass
class ApiFuzzReport:
    grpc_calls: int = 0
    grpc_codes: collections.Counter[str] = dataclasses.field(default_factory=collections.Counter)
    rest_calls: int = 0
    rest_statuses: collections.Counter[int] = dataclasses.field(default_factory=collections.Counter)
    # The first failures: transport, RPC or route, code or status, what came back, the seed.
    failures: list[dict[str, object]] = dataclasses.field(default_factory=list)
    failure_count: int = 0
    # Failures by RPC or route and code or status: "ReplaySignals UNKNOWN".
    failure_kinds: collections.Counter[str] = dataclasses.field(default_factory=collections.Counter)
    # Calls that ended INTERNAL on the client's side (_CLIENT_CORE_ERROR): made again alone
    # after the run; those answered then count here, the others as failures.
    suspects: list[int] = dataclasses.field(default_factory=list)
    client_artifacts: int = 0
    seconds: float = 0.0

    @property
    def holds(self) -> bool:
        return self.failure_count == 0

    def figures(self) -> dict[str, object]:
        """The report as JSON-ready figures (dataclasses.asdict mangles Counters)."""
        return {
            "grpc_calls": self.grpc_calls,
            "grpc_codes": dict(self.grpc_codes),
            "rest_calls": self.rest_calls,
            "rest_statuses": {str(status): n for status, n in sorted(self.rest_statuses.items())},
            "failure_count": self.failure_count,
            "failure_kinds": dict(self.failure_kinds),
            "failures": self.failures,
            "client_artifacts": self.client_artifacts,
            "seconds": round(self.seconds, 1),
            "requests_per_second": round((self.grpc_calls + self.rest_calls) / self.seconds),
        }

    def fail(self, **what: object) -> None:
        self.failure_count += 1
        where = what.get("rpc") or what.get("route")
        self.failure_kinds[f"{where} {what.get('code') or what.get('status')}"] += 1
        if len(self.failures) < 50:
            self.failures.append(what)


@dataclasses.dataclass(frozen=True, slots=True)
class _Route:
    verb: str
    # The path with `{field}` placeholders for request fields.
    template: str
    body: str


class _Credentials:
    def __init__(self, settings: EngineSettings) -> None:
        secret, policy, now = signing_secret(settings), token_policy(settings), int(time.time())
        self._tokens = [mint_development_token(secret, policy, c, now, 7200) for c in _CALLERS]

    def pick(self, rng: random.Random) -> list[tuple[str, str]]:
        roll = rng.random()
        if roll < 0.04:
            return []
        if roll < 0.08:
            token = rng.choice(self._tokens)
            return [("authorization", f"Bearer {token[:-4]}AAAA")]
        return [("authorization", f"Bearer {rng.choice(self._tokens)}")]


@contextlib.contextmanager
def engine_process(workdir: Path) -> Iterator[EngineSettings]:
    """`trading-engine serve` on a free port with its data in `workdir`, stopped at the end."""
    settings = EngineSettings(grpc_port=free_port(), data_dir=str(workdir / "engine"))
    command = [
        str(Path(sys.executable).parent / "trading-engine"),
        "serve",
        "--grpc-port",
        str(settings.grpc_port),
        "--data-dir",
        settings.data_dir,
        "--log-level",
        "WARNING",
    ]
    with (workdir / "engine.log").open("wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    try:
        yield settings
    finally:
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


async def _serving(address: str, within_s: float = 60.0) -> None:
    deadline = time.monotonic() + within_s
    async with grpc.aio.insecure_channel(address) as channel:
        health = channel.unary_unary(
            f"/{SERVICE.full_name}/HealthCheck",
            request_serializer=service_pb2.HealthCheckRequest.SerializeToString,
            response_deserializer=service_pb2.HealthCheckResponse.FromString,
        )
        while True:
            try:
                await health(service_pb2.HealthCheckRequest(), timeout=1)
                return
            except grpc.aio.AioRpcError:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.2)


async def fuzz_api(grpc_count: int, rest_count: int, seed: int, workdir: Path) -> ApiFuzzReport:
    """Send generated requests to a fresh engine (and its gateway); what came back."""
    report = ApiFuzzReport()
    with engine_process(workdir) as settings:
        address = f"127.0.0.1:{settings.grpc_port}"
        await _serving(address)
        credentials = _Credentials(settings)
        gateway = EnvoyGateway(
            GatewaySettings(
                http_port=free_port(),
                envoy_admin_port=free_port(),
                upstream_port=settings.grpc_port,
            )
        )
        await gateway.start()
        started = time.monotonic()
        try:
            async with grpc.aio.insecure_channel(address) as channel:
                await _run(
                    [
                        _grpc_call(channel, credentials, seed * 1_000_000 + index, report)
                        for index in range(grpc_count)
                    ]
                )
                await _confirm(channel, credentials, report)
            await _rest_calls(gateway, credentials, rest_count, seed, report)
        finally:
            report.seconds = time.monotonic() - started
            await gateway.stop()
    return report


async def _run(calls: list[Any]) -> None:
    """Await the calls, `_IN_FLIGHT` at a time."""
    limit = asyncio.Semaphore(_IN_FLIGHT)

    async def bounded(call: Any) -> None:
        async with limit:
            await call

    await asyncio.gather(*(bounded(call) for call in calls))


async def _grpc_call(
    channel: grpc.aio.Channel, credentials: _Credentials, seed: int, report: ApiFuzzReport
) -> None:
    rng = random.Random(seed)
    method = rng.choice(SERVICE.methods)
    path = f"/{SERVICE.full_name}/{method.name}"
    metadata = credentials.pick(rng)
    requests = [_request_bytes(method.input_type, rng) for _ in range(rng.randint(1, 3))]
    code = grpc.StatusCode.OK
    details = ""
    try:
        if not method.client_streaming and not method.server_streaming:
            unary = channel.unary_unary(path, _raw, _raw)
            await unary(requests[0], metadata=metadata, timeout=_DEADLINE_S)
        elif not method.client_streaming:
            responses = channel.unary_stream(path, _raw, _raw)
            async for _ in _bounded(responses(requests[0], metadata=metadata, timeout=_DEADLINE_S)):
                pass
        else:
            code, details = await _conversation(channel, path, requests, metadata)
    except grpc.aio.AioRpcError as error:
        code, details = error.code(), error.details() or ""
    report.grpc_calls += 1
    report.grpc_codes[code.name] += 1
    if code == grpc.StatusCode.INTERNAL and details == _CLIENT_CORE_ERROR:
        report.suspects.append(seed)
    elif code in FAILING_CODES:
        report.fail(transport="grpc", rpc=method.name, code=code.name, details=details, seed=seed)


async def _confirm(
    channel: grpc.aio.Channel, credentials: _Credentials, report: ApiFuzzReport
) -> None:
    """Make each suspect call again, alone: a failure only if it fails again."""
    for seed in report.suspects:
        alone = ApiFuzzReport()
        await _grpc_call(channel, credentials, seed, alone)
        if alone.failure_count or alone.suspects:
            report.fail(**(alone.failures[0] if alone.failures else {"seed": seed}))
        else:
            report.client_artifacts += 1


async def _conversation(
    channel: grpc.aio.Channel, path: str, requests: list[bytes], metadata: list[tuple[str, str]]
) -> tuple[grpc.StatusCode, str]:
    """A bidirectional stream: the requests written one by one (the server may end the call
    before the last), responses read for a moment, then the call's status, the server's own
    unless the stream was still open and this side ended it (CANCELLED)."""
    call = channel.stream_stream(path, _raw, _raw)(metadata=metadata, timeout=_DEADLINE_S)
    for request in requests:
        if call.done():
            break
        # Writing to a call the server has ended fails here; its status says why.
        with contextlib.suppress(grpc.aio.AioRpcError, asyncio.InvalidStateError):
            await call.write(request)
    with contextlib.suppress(grpc.aio.AioRpcError, asyncio.InvalidStateError):
        await call.done_writing()
    with contextlib.suppress(TimeoutError, grpc.aio.AioRpcError):
        async with asyncio.timeout(_STREAM_READ_S):
            while await call.read() is not grpc.aio.EOF:
                pass
    call.cancel()
    return await call.code(), await call.details() or ""


def _raw(data: bytes) -> bytes:
    """Requests and responses as bytes: a request may be anything, and responses are not read."""
    return data


async def _bounded(responses: AsyncIterable[Any], at_most: int = 200) -> AsyncIterator[Any]:
    count = 0
    async for response in responses:
        yield response
        count += 1
        if count >= at_most:
            return


def _request_bytes(message_type: descriptor.Descriptor, rng: random.Random) -> bytes:
    data = random_message(message_type, rng).SerializeToString()
    if data and rng.random() < 0.05:
        # Not the message at all: flipped bytes.
        mangled = bytearray(data)
        for _ in range(rng.randint(1, 4)):
            mangled[rng.randrange(len(mangled))] ^= 0xFF
        return bytes(mangled)
    return data


def _routes() -> list[tuple[descriptor.MethodDescriptor, _Route]]:
    routes = []
    for method in SERVICE.methods:
        options = method.GetOptions()
        if not options.HasExtension(annotations_pb2.http):  # type: ignore[arg-type]  # stubs lack extension typing
            continue
        rule: http_pb2.HttpRule = options.Extensions[annotations_pb2.http]  # type: ignore[index]  # same
        verb = rule.WhichOneof("pattern")
        assert verb is not None
        routes.append((method, _Route(verb.upper(), getattr(rule, verb), rule.body)))
    return routes


async def _rest_calls(
    gateway: EnvoyGateway, credentials: _Credentials, count: int, seed: int, report: ApiFuzzReport
) -> None:
    routes = _routes()
    host, port = gateway.settings.http_host, gateway.settings.http_port
    queue: asyncio.Queue[int] = asyncio.Queue()
    for index in range(count):
        queue.put_nowait(seed * 1_000_000 + index)

    async def worker() -> None:
        connection = http.client.HTTPConnection(host, port, timeout=_DEADLINE_S)
        try:
            while not queue.empty():
                call_seed = queue.get_nowait()
                rng = random.Random(call_seed)
                method, route = rng.choice(routes)
                request = random_message(method.input_type, rng)
                target = _target(route, request, rng)
                body = rest_body(request, rng) if route.body else None
                headers = dict(credentials.pick(rng))
                status, text = await asyncio.to_thread(
                    _http, connection, route.verb, target, body, headers
                )
                report.rest_calls += 1
                report.rest_statuses[status] += 1
                if status >= 500:
                    report.fail(
                        transport="rest",
                        route=f"{route.verb} {route.template}",
                        status=status,
                        body=text[:300],
                        seed=call_seed,
                    )
        finally:
            connection.close()

    await asyncio.gather(*(worker() for _ in range(8)))


def _target(route: _Route, request: message.Message, rng: random.Random) -> str:
    """The route's path with its placeholders filled, and a query string for GETs."""

    def fill(match: re.Match[str]) -> str:
        return quote(rng.choice(("sig-1", "x" * 300, "%", "a/b", " ", "\u00e9")), safe="")

    path = re.sub(r"\{[^}]*\}", fill, route.template)
    if route.verb == "GET" and rng.random() < 0.8:
        path += "?" + query_string(request, rng)
    return path


def _http(
    connection: http.client.HTTPConnection,
    verb: str,
    target: str,
    body: bytes | None,
    headers: dict[str, str],
) -> tuple[int, str]:
    try:
        connection.request(verb, target, body=body, headers=headers)
        response = connection.getresponse()
        return response.status, response.read().decode(errors="replace")
    except (http.client.HTTPException, OSError) as error:
        # The gateway closed the connection: open another for the next call.
        connection.close()
        return 599, f"{type(error).__name__}: {error}"
