"""End to end: `trading-engine dev --demo` as a user runs it, read from every side."""

from __future__ import annotations

import asyncio
import json
import re
import signal
from pathlib import Path
from typing import Any

from tests.support import children_of, http_json_async, http_text, pid_alive, running
from tradeflow.trading.v1 import trading_engine_service_pb2 as service_pb2
from trading_engine.devstack.brokers import free_port
from trading_engine_client import AsyncTradingEngineClient, SignalDelivery, SignalSubscriber


def _spans(output: str) -> list[dict[str, Any]]:
    """The spans the console exporter printed, each a JSON object starting with its name."""
    decoder, spans, at = json.JSONDecoder(), [], 0
    while (start := output.find('{\n    "name"', at)) >= 0:
        span, length = decoder.raw_decode(output[start:])
        spans.append(span)
        at = start + length
    return spans


async def test_signals_flow_on_both_buses_and_one_trace_runs_from_producer_to_consumer(
    tmp_path: Path,
) -> None:
    grpc_port, http_port = free_port(), free_port()
    async with running(
        "dev", "--demo", "--tracing-exporter", "console",
        "--grpc-port", str(grpc_port), "--http-port", str(http_port),
        "--envoy-admin-port", str(free_port()), "--data-dir", str(tmp_path),
    ) as dev:  # fmt: skip
        await dev.wait_for_line(r"Press Ctrl-C")
        banner = "".join(dev.output)
        dev.keep_reading()
        nats = re.search(r"NATS     (\S+)", banner)
        kafka = re.search(r"Kafka    (\S+)", banner)
        metrics = re.search(r"metrics  (\S+)", banner)
        token = re.search(r"export TOKEN=(\S+)", banner)
        assert nats is not None, banner
        assert kafka is not None, banner
        assert metrics is not None, banner
        assert token is not None, banner

        # A consumer of both transports gets each signal batch once, the second copy dropped.
        deliveries: list[SignalDelivery] = []
        async with SignalSubscriber(
            nats_url=nats.group(1), kafka_bootstrap=kafka.group(1), user_ids=("trader-1",)
        ) as subscriber:
            async with asyncio.timeout(30):
                async for delivery in subscriber:
                    deliveries.append(delivery)
                    if len(deliveries) >= 3 and subscriber.duplicates >= 1:
                        break
        assert {d.batch.user_id for d in deliveries} == {"trader-1"}
        assert len({d.message_id for d in deliveries}) == len(deliveries)

        # The same signals through gRPC and REST.
        signal_ids = {s.signal_id for d in deliveries for s in d.batch.signals}
        async with AsyncTradingEngineClient(
            f"127.0.0.1:{grpc_port}", token=token.group(1)
        ) as client:
            explained = await client.explain_signal(
                service_pb2.ExplainSignalRequest(signal_id=sorted(signal_ids)[0])
            )
        assert explained.signal.signal_id in signal_ids
        status, pages = await http_json_async(
            "GET",
            f"http://127.0.0.1:{http_port}/api/v1/signals/history?include_non_actionable=true",
            headers={"authorization": f"Bearer {token.group(1)}"},
        )
        assert status == 200, pages
        assert signal_ids <= {s["signalId"] for page in pages for s in page.get("signals", [])}

        scraped = await asyncio.to_thread(http_text, metrics.group(1))
        assert 'trading_engine_bus_messages_total{outcome="decided"}' in scraped

        assert dev.process is not None
        started = children_of(dev.process.pid)
        assert await dev.signal_and_wait(signal.SIGINT) == 0
    assert not [pid for pid in started if pid_alive(pid)]

    # The trace a consumer received is the one the demo producer started, and the engine's
    # consumer span is its producer span's child.
    spans = _spans("".join(dev.output))
    traces = {d.trace_context.traceparent.split("-")[1] for d in deliveries}
    producers = {
        s["context"]["trace_id"][2:]: s["context"]["span_id"]
        for s in spans
        if s["name"] == "trading-engine.ml-predictions publish"
    }
    assert traces <= producers.keys()
    consumers = [
        s for s in spans
        if s["name"].endswith("ml-predictions process") and s["context"]["trace_id"][2:] in traces
    ]  # fmt: skip
    assert consumers
    for consumer in consumers:
        assert consumer["parent_id"] == producers[consumer["context"]["trace_id"][2:]]
