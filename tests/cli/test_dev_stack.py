"""End to end: `trading-engine dev --demo` as a newcomer runs it, read from every side."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
from pathlib import Path
from typing import Any

from tests.support import (
    CommandProcess,
    children_of,
    example_batch_request,
    http_json_async,
    http_text,
    pid_alive,
    running,
)
from tradeflow.trading.v1 import trading_engine_service_pb2 as service_pb2
from trading_engine.devstack.brokers import free_port
from trading_engine_client import AsyncTradingEngineClient, SignalDelivery, SignalSubscriber


class Banner:
    """What `dev` prints last: endpoints, then commands to paste into a new terminal."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.nats = self._field(r"^  NATS +(\S+)")
        self.kafka = self._field(r"^  Kafka +(\S+)")
        self.metrics = self._field(r"^  metrics +(\S+)")
        self.commands = text.partition("In a new terminal")[2].split("\n\n")[0].splitlines()[1:]
        sourced = self.commands[0].strip()
        assert sourced.startswith("source /"), self.commands
        self.environment = Path(sourced.removeprefix("source "))
        token_file = self.environment.parent / "trader-1.token"
        self.token = token_file.read_text().strip()

    def _field(self, pattern: str) -> str:
        found = re.search(pattern, self.text, re.MULTILINE)
        assert found is not None, f"{pattern!r} not in the banner:\n{self.text}"
        return found.group(1)


async def test_a_newcomer_sees_demo_signals_everywhere_traced_and_nothing_is_left_behind(
    tmp_path: Path,
) -> None:
    grpc_port, http_port = free_port(), free_port()
    rest = f"http://127.0.0.1:{http_port}"
    async with running(
        "dev", "--demo", "--tracing-exporter", "console",
        "--grpc-port", str(grpc_port), "--http-port", str(http_port),
        "--envoy-admin-port", str(free_port()), "--data-dir", str(tmp_path),
    ) as dev:  # fmt: skip
        await dev.wait_for_line(r"Press Ctrl-C")
        # The banner is the last thing printed: nothing the start logged comes after it.
        banner = Banner(dev.output.partition("\nTrading engine ")[2])
        assert banner.text.rstrip().endswith("stop everything this command started.")
        assert f"  REST         {rest}  " in banner.text
        assert "  risk         127.0.0.1:" in banner.text
        # The 300-character token is in a file, not on the screen.
        assert banner.token not in dev.output
        auth = {"authorization": f"Bearer {banner.token}"}

        # trader-1's signal batches arrive on NATS and on Kafka, the same on both.
        on_nats, on_kafka = await asyncio.gather(
            _signal_batches(nats_url=banner.nats), _signal_batches(kafka_bootstrap=banner.kafka)
        )
        on_both = on_nats.keys() & on_kafka.keys()
        assert on_both, (list(on_nats), list(on_kafka))
        assert all(on_nats[each].batch == on_kafka[each].batch for each in on_both)
        deliveries = list(on_nats.values())
        assert {d.batch.user_id for d in deliveries} == {"trader-1"}

        # The same signals through gRPC and through REST.
        signal_ids = {s.signal_id for d in deliveries for s in d.batch.signals}
        async with AsyncTradingEngineClient(f"127.0.0.1:{grpc_port}", token=banner.token) as client:
            explained = await client.explain_signal(
                service_pb2.ExplainSignalRequest(signal_id=min(signal_ids))
            )
        assert explained.signal.signal_id == min(signal_ids)
        assert explained.signal.user_id == "trader-1"
        # History is written behind the bus, a moment later: ask until it shows them
        # (another process's state, so nothing here to wait on but the answer).
        async with asyncio.timeout(10):
            while not signal_ids <= await _history_ids(rest, auth):  # noqa: ASYNC110
                await asyncio.sleep(0.2)

        await _the_commands_work_as_pasted_in_a_new_terminal(banner)

        # What the banner's `watch` shows: live signals, assessed by the reference risk service.
        header, first = await _first_watched_row(banner)
        assert header.split()[:3] == ["time", "symbol", "type"]
        assert "ASSESSED" in first, first

        scraped = await asyncio.to_thread(http_text, banner.metrics)
        assert 'trading_engine_risk_breaker_state{state="closed"} 1.0' in scraped
        decided = re.search(r'bus_messages_total\{outcome="decided"\} (\S+)', scraped)
        assert decided is not None, scraped
        assert float(decided.group(1)) > 0

        # The banner's token works for the README's example batch.
        status, body = await http_json_async(
            "POST", f"{rest}/api/v1/predictions:process", example_batch_request(), auth
        )
        assert status == 200, body
        buy, sell, unsure = body["signalBatch"]["signals"]
        # As the README says: the demo trades the same pairs for trader-1, so the buy and the
        # sell are actionable unless they repeat a demo signal of the last 20 s.
        for decided_now in (buy, sell):
            assert decided_now["disposition"] == "SIGNAL_DISPOSITION_ACTIONABLE" or (
                decided_now["reason"] == "DISPOSITION_REASON_DUPLICATE_SIGNAL"
                and "on the same side was issued" in decided_now["cancellationReason"]
            ), decided_now
        assert unsure["reason"] == "DISPOSITION_REASON_CONFIDENCE_BELOW_THRESHOLD"

        started = _children(dev)
        assert len(started) == 3, started  # Envoy, nats-server and Tansu.
        assert await dev.signal_and_wait(signal.SIGINT) == 0
        assert not [pid for pid in started if pid_alive(pid)]
        output = dev.output
        assert "trading engine stopped" in output

    _each_trace_runs_from_the_producer_to_the_consumer(_spans(output), deliveries)


async def _the_commands_work_as_pasted_in_a_new_terminal(banner: Banner) -> None:
    """Every command the banner offers but the last (`watch`, which runs until stopped), run
    in order by a fresh bash without the project's tools on its PATH and no TOKEN."""
    *pasted, watch = banner.commands
    assert watch.strip() == "trading-engine watch", banner.text
    assert len(pasted) == 6, banner.text
    out = await _new_terminal("\n".join(pasted))
    assert "strategy of trader-1 (acme, PRO)" in out
    decoder = json.JSONDecoder()
    strategy, _ = decoder.raw_decode(out, out.index("{"))
    assert strategy["strategy"]["userId"] == "trader-1"
    history, _ = decoder.raw_decode(out, out.index("[{"))
    assert any(page.get("signals") for page in history), history
    assert "trader-1 of acme is HALTED: a try\n" in out
    assert "trader-1 of acme is ACTIVE: done\n" in out


async def _new_terminal(script: str) -> str:
    """What a new terminal prints for `script` (set -e: the first failing line fails it)."""
    terminal = await asyncio.create_subprocess_exec(
        "bash",
        "--noprofile",
        "--norc",
        "-e",
        "-c",
        script,
        env={"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": os.environ.get("HOME", "/root")},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    async with asyncio.timeout(60):
        out, err = await terminal.communicate()
    assert terminal.returncode == 0, (script, out.decode(), err.decode())
    return out.decode()


def _each_trace_runs_from_the_producer_to_the_consumer(
    spans: list[dict[str, Any]], deliveries: list[SignalDelivery]
) -> None:
    """The trace each consumer received began at the demo producer's publish span, and
    the engine's consumer span is that span's child."""
    traces = {d.trace_context.traceparent.split("-")[1] for d in deliveries}
    producers = {
        _trace_id(s): s["context"]["span_id"]
        for s in spans
        if s["name"] == "trading-engine.ml-predictions publish"
    }
    assert traces <= producers.keys()
    consumers = [
        s for s in spans
        if s["name"].endswith("ml-predictions process") and _trace_id(s) in traces
    ]  # fmt: skip
    assert {_trace_id(s) for s in consumers} == traces
    assert all(s["parent_id"] == producers[_trace_id(s)] for s in consumers)


async def _signal_batches(
    nats_url: str | None = None, kafka_bootstrap: str | None = None
) -> dict[str, SignalDelivery]:
    """trader-1's next eight signal batches on one transport, by message id."""
    batches: dict[str, SignalDelivery] = {}
    async with SignalSubscriber(
        nats_url=nats_url, kafka_bootstrap=kafka_bootstrap, user_ids=("trader-1",)
    ) as subscriber:
        async with asyncio.timeout(30):
            async for delivery in subscriber:
                batches[delivery.message_id] = delivery
                if len(batches) == 8:
                    return batches
    raise AssertionError(f"the subscription to {nats_url or kafka_bootstrap} ended")


async def _history_ids(rest: str, auth: dict[str, str]) -> set[str]:
    status, pages = await http_json_async(
        "GET", f"{rest}/api/v1/signals/history?include_non_actionable=true", headers=auth
    )
    assert status == 200, pages
    return {s["signalId"] for page in pages for s in page.get("signals", [])}


async def _first_watched_row(banner: Banner) -> tuple[str, str]:
    """The banner's `watch`, as a new terminal runs it after sourcing the banner's file."""
    watch = await asyncio.create_subprocess_exec(
        "bash",
        "--noprofile",
        "--norc",
        "-c",
        f"{banner.commands[0].strip()} && exec {banner.commands[-1].strip()}",
        env={"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": os.environ.get("HOME", "/root")},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert watch.stdout is not None
    try:
        async with asyncio.timeout(20):
            header = (await watch.stdout.readline()).decode()
            first = (await watch.stdout.readline()).decode()
    finally:
        watch.terminate()
        await watch.wait()
    return header, first


def _children(command: CommandProcess) -> list[int]:
    assert command.process is not None
    return children_of(command.process.pid)


def _spans(output: str) -> list[dict[str, Any]]:
    """The spans the console exporter printed, each a JSON object starting with its name."""
    decoder, spans, at = json.JSONDecoder(), [], 0
    while (start := output.find('{\n    "name"', at)) >= 0:
        span, length = decoder.raw_decode(output[start:])
        spans.append(span)
        at = start + length
    return spans


def _trace_id(span: dict[str, Any]) -> str:
    context: dict[str, str] = span["context"]
    return context["trace_id"].removeprefix("0x")
