"""The gRPC path: CPU per batch of `trading-engine serve` beside a grpc.aio echo server.

`python -m bench.grpc` starts a real engine (`trading-engine serve`, SQLite
history on) and, in its own turn, `bench.grpc_echo` (a grpc.aio server that
answers each request with its own bytes) on free loopback ports. For batches
of 10 and of 100 predictions it opens one `ProcessPredictions` stream per
trader (ENTERPRISE, duplicate window 0 and a rate limit no stream reaches, so
the disposition mix is the rules', not the limits'), sends each trader's
batches one at a time as the stream allows, and reads the server process's
CPU time (all threads, from /proc) before and after: CPU per batch. The echo
server gets the same requests the same way. One JSON line per batch size:
the engine's and the echo's CPU per batch, their ratio, the wall-clock rate,
and the dispositions the engine answered.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
from google.protobuf import field_mask_pb2

from bench import workload
from bench.cpu import cpu_seconds
from tradeflow.common.v1 import tier_pb2
from tradeflow.ml.v1 import prediction_pb2
from tradeflow.trading.v1 import signal_pb2, strategy_pb2
from tradeflow.trading.v1 import trading_engine_service_pb2 as service_pb2
from trading_engine.auth.configured import signing_secret, token_policy
from trading_engine.auth.tokens import mint_development_token
from trading_engine.config import EngineSettings
from trading_engine.devstack.brokers import free_port
from trading_engine.tenancy import Caller

_BIN = Path(sys.executable).parent
_SERVICE = "/tradeflow.trading.v1.TradingEngineService"
_TRADERS = 8


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.grpc", description=__doc__)
    parser.add_argument("--batches", type=int, default=4000, help="batches of 10 per run")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-grpc-") as folder:
        for size, count in ((10, args.batches), (100, args.batches // 5)):
            print(json.dumps(asyncio.run(measure(Path(folder), size, count))), flush=True)


async def measure(folder: Path, size: int, count: int) -> dict[str, object]:
    """Engine and echo server, each sent `count` batches of `size`; their CPU per batch."""
    requests = _requests(size, count)
    with _engine(folder / f"engine-{size}") as (address, pid, settings):
        await _prepare(address, settings)
        tokens = _tokens(settings)
        engine = await _run(address, pid, requests, tokens)
    with _echo() as (address, pid):
        echo = await _run(address, pid, requests, tokens)
    # The measured batches: all but each trader's first.
    count -= _TRADERS
    engine_us = engine["cpu_s"] / count * 1e6
    echo_us = echo["cpu_s"] / count * 1e6
    return {
        "name": f"grpc_process_predictions_{size}",
        "unit": "cpu_us_per_batch",
        "value": round(engine_us, 1),
        "reference": round(echo_us, 1),
        "reference_name": "grpc_aio_echo",
        "ratio_to_reference": round(engine_us / echo_us, 2),
        "batches": count,
        "batches_per_second": round(count / engine["wall_s"]),
        "reference_batches_per_second": round(count / echo["wall_s"]),
        "dispositions": engine["dispositions"],
    }


def _requests(size: int, count: int) -> dict[int, list[bytes]]:
    """Each trader's batches, as ProcessPredictionsRequest bytes, stamped now."""
    now_ns = time.time_ns()
    by_trader: dict[int, list[bytes]] = collections.defaultdict(list)
    for index, data in enumerate(workload.batches(count, size, users=_TRADERS, start_ns=now_ns)):
        batch = prediction_pb2.MLPredictionBatch.FromString(data)
        # Live: every price a moment old, whatever its place in the run.
        batch.produced_at.FromNanoseconds(now_ns)
        for prediction in batch.predictions:
            prediction.timestamp.FromNanoseconds(now_ns - 20_000_000)
        request = service_pb2.ProcessPredictionsRequest(batch=batch)
        by_trader[index % _TRADERS].append(request.SerializeToString())
    return by_trader


def _caller(trader: int) -> Caller:
    return Caller(f"trader-{trader}", "acme", tier_pb2.SUBSCRIPTION_TIER_ENTERPRISE)


def _tokens(settings: EngineSettings) -> dict[int, str]:
    secret, policy, now = signing_secret(settings), token_policy(settings), int(time.time())
    return {
        trader: mint_development_token(secret, policy, _caller(trader), now, 3600)
        for trader in range(_TRADERS)
    }


async def _prepare(address: str, settings: EngineSettings) -> None:
    """No duplicate window and a rate limit out of reach, for every trader."""
    tokens = _tokens(settings)
    async with grpc.aio.insecure_channel(address) as channel:
        update = channel.unary_unary(
            f"{_SERVICE}/UpdateStrategy",
            request_serializer=service_pb2.UpdateStrategyRequest.SerializeToString,
            response_deserializer=service_pb2.UpdateStrategyResponse.FromString,
        )
        for trader, token in tokens.items():
            config = strategy_pb2.StrategyConfig(max_signals_per_minute=1_000_000)
            config.duplicate_window.FromSeconds(0)
            request = service_pb2.UpdateStrategyRequest(
                layer=strategy_pb2.STRATEGY_LAYER_USER,
                strategy=config,
                update_mask=field_mask_pb2.FieldMask(
                    paths=["max_signals_per_minute", "duplicate_window"]
                ),
                reason="bench.grpc",
                request_id=f"bench-{trader}",
            )
            await update(request, metadata=[("authorization", f"Bearer {token}")], timeout=10)


async def _run(
    address: str, pid: int, requests: dict[int, list[bytes]], tokens: dict[int, str]
) -> dict[str, Any]:
    """Send every trader's requests on its own stream, all streams at once; CPU and wall time
    of the server over the run, and the dispositions of the signals answered."""
    dispositions: collections.Counter[str] = collections.Counter()
    async with grpc.aio.insecure_channel(address) as channel:
        conversation = channel.stream_stream(f"{_SERVICE}/ProcessPredictions", _raw, _raw)
        # One round first, not measured: connections, caches, the strategies loaded.
        await asyncio.gather(
            *(
                _stream(conversation, tokens[t], batches[:1], None)
                for t, batches in requests.items()
            )
        )
        cpu_before, wall_before = cpu_seconds(pid), time.monotonic()
        await asyncio.gather(
            *(
                _stream(conversation, tokens[t], batches[1:], dispositions)
                for t, batches in requests.items()
            )
        )
        return {
            "cpu_s": cpu_seconds(pid) - cpu_before,
            "wall_s": time.monotonic() - wall_before,
            "dispositions": dict(dispositions),
        }


async def _stream(
    conversation: grpc.aio.StreamStreamMultiCallable[bytes, bytes],
    token: str,
    batches: list[bytes],
    dispositions: collections.Counter[str] | None,
) -> None:
    """One trader's batches, each sent once the answer to the one before has come."""
    call = conversation(metadata=[("authorization", f"Bearer {token}")], timeout=600)
    for batch in batches:
        await call.write(batch)
        answer = await call.read()
        assert isinstance(answer, bytes)
        if dispositions is not None and answer != batch:
            response = service_pb2.ProcessPredictionsResponse.FromString(answer)
            for signal in response.signal_batch.signals:
                dispositions[signal_pb2.SignalDisposition.Name(signal.disposition)] += 1
    await call.done_writing()
    assert await call.read() is grpc.aio.EOF
    code = await call.code()
    if code != grpc.StatusCode.OK:
        raise RuntimeError(f"the stream ended {code.name}: {await call.details()}")


def _raw(data: bytes) -> bytes:
    return data


@contextlib.contextmanager
def _engine(data_dir: Path) -> Iterator[tuple[str, int, EngineSettings]]:
    settings = EngineSettings(grpc_port=free_port(), data_dir=str(data_dir))
    process = subprocess.Popen(
        [str(_BIN / "trading-engine"), "serve", "--grpc-port", str(settings.grpc_port),
         "--data-dir", settings.data_dir, "--log-level", "WARNING"],
        stdout=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        _wait_serving(f"127.0.0.1:{settings.grpc_port}", process)
        yield f"127.0.0.1:{settings.grpc_port}", process.pid, settings
    finally:
        _stop(process)


@contextlib.contextmanager
def _echo() -> Iterator[tuple[str, int]]:
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "bench.grpc_echo", str(port)])
    try:
        _wait_serving(f"127.0.0.1:{port}", process)
        yield f"127.0.0.1:{port}", process.pid
    finally:
        _stop(process)


def _wait_serving(address: str, process: subprocess.Popen[bytes], within_s: float = 60) -> None:
    deadline = time.monotonic() + within_s
    while True:
        channel = grpc.insecure_channel(address)
        try:
            grpc.channel_ready_future(channel).result(timeout=1)
            return
        except grpc.FutureTimeoutError:
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"no gRPC server on {address}") from None
        finally:
            channel.close()


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


if __name__ == "__main__":
    main()
