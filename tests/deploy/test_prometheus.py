"""The alert rules and dashboard in deploy/: promtool's own tests of every alert, and a real
Prometheus scraping a real engine (both buses and the risk service on), evaluating the rules,
and knowing every metric the rules and the dashboard read."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import shutil
import subprocess
import urllib.parse
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import nats
import pytest
import yaml

from tests import factories
from tests.support import ROOT, TRADER, Tokens, http_json
from tradeflow.trading.v1 import trading_engine_service_pb2 as service_pb2
from tradeflow.trading.v1 import trading_engine_service_pb2_grpc as service_grpc
from trading_engine.app import Application
from trading_engine.bus import names
from trading_engine.config import EngineSettings
from trading_engine.devstack.brokers import KafkaBroker, NatsServer, free_port
from trading_engine.risk.reference import ReferenceRiskServicer, RiskBehaviour, start_server
from trading_engine.runtime import DIE_WITH_PARENT
from trading_engine_client import PredictionPublisher

DEPLOY = ROOT / "deploy"
RULES = DEPLOY / "prometheus" / "rules" / "trading-engine.yml"
RULE_TESTS = DEPLOY / "prometheus" / "tests" / "trading-engine.test.yml"
DASHBOARD = DEPLOY / "grafana" / "dashboards" / "trading-engine.json"
# The metric names an expression reads (recorded series have a colon).
_METRIC = re.compile(r"\b(up|(?:trading_engine|grpc_server|process|python_gc)[a-z0-9_:]*)\b")


def tool(name: str) -> str:
    """Prometheus's tools, from Debian's prometheus package (`make install` installs it)."""
    path = shutil.which(name)
    if path is None:
        pytest.fail(
            f"{name} is not installed: `make install` installs Debian's prometheus package "
            "(apt-get install prometheus)",
            pytrace=False,
        )
    return path


def _promtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [tool("promtool"), *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=DEPLOY / "prometheus",
    )


def test_every_alert_passes_its_promtool_tests() -> None:
    tested = _promtool("test", "rules", "tests/trading-engine.test.yml")
    assert tested.returncode == 0, tested.stdout + tested.stderr
    assert "SUCCESS" in tested.stdout
    # Each alert has a test that makes it fire.
    tests = yaml.safe_load(
        (DEPLOY / "prometheus" / "tests" / "trading-engine.test.yml").read_text()
    )
    fired = {
        case["alertname"]
        for test in tests["tests"]
        for case in test.get("alert_rule_test", [])
        if case["exp_alerts"]
    }
    assert fired == set(_alerts()), set(_alerts()) - fired


def test_the_prometheus_configuration_and_its_rules_are_valid() -> None:
    checked = _promtool("check", "config", "prometheus.yml")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "SUCCESS: 10 rules found" in checked.stdout


def _rules() -> list[dict[str, Any]]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"]]


def _alerts() -> list[str]:
    return [rule["alert"] for rule in _rules() if "alert" in rule]


def _expressions() -> list[str]:
    """Every PromQL expression the rules and the dashboard evaluate."""
    dashboard = json.loads(DASHBOARD.read_text())
    panels = [
        target["expr"] for panel in dashboard["panels"] for target in panel.get("targets", [])
    ]
    return [rule["expr"] for rule in _rules()] + panels


@contextlib.asynccontextmanager
async def _prometheus(tmp_path: Path, metrics_port: int) -> AsyncIterator[str]:
    """A Prometheus scraping the engine every second and evaluating the shipped rules."""
    config = tmp_path / "prometheus.yml"
    config.write_text(
        yaml.safe_dump(
            {
                "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                "rule_files": [str(RULES)],
                "scrape_configs": [
                    {
                        "job_name": "trading-engine",
                        "static_configs": [{"targets": [f"127.0.0.1:{metrics_port}"]}],
                    }
                ],
            }
        )
    )
    address = f"127.0.0.1:{free_port()}"
    log = (tmp_path / "prometheus.log").open("wb")
    process = await asyncio.create_subprocess_exec(
        *DIE_WITH_PARENT,
        tool("prometheus"),
        f"--config.file={config}",
        f"--storage.tsdb.path={tmp_path / 'tsdb'}",
        f"--web.listen-address={address}",
        stdin=asyncio.subprocess.DEVNULL,
        stdout=log,
        stderr=log,
    )
    try:
        yield f"http://{address}"
    finally:
        process.terminate()
        await process.wait()
        log.close()


async def _query(prometheus: str, promql: str) -> list[dict[str, Any]]:
    """An instant query's result; [] until Prometheus answers."""
    url = f"{prometheus}/api/v1/query?query={urllib.parse.quote(promql)}"
    try:
        status, body = await asyncio.to_thread(http_json, "GET", url)
    except OSError:
        return []
    assert status == 200, body
    result: list[dict[str, Any]] = body["data"]["result"]
    return result


async def _until(prometheus: str, promql: str, within: float = 30) -> list[dict[str, Any]]:
    async with asyncio.timeout(within):
        while not (result := await _query(prometheus, promql)):  # noqa: ASYNC110
            await asyncio.sleep(0.5)
    return result


async def test_a_real_prometheus_scrapes_per_rpc_metrics_and_evaluates_the_rules(
    tmp_path: Path, nats_server: NatsServer, kafka_broker: KafkaBroker
) -> None:
    await kafka_broker.create_topics([names.KAFKA_PREDICTIONS, names.KAFKA_EXECUTIONS])
    risk, risk_port = await start_server(ReferenceRiskServicer(RiskBehaviour()))
    settings = EngineSettings(
        grpc_port=0,
        data_dir=str(tmp_path / "engine"),
        metrics_address="127.0.0.1:0",
        bus_nats_url=nats_server.url,
        bus_kafka_bootstrap=kafka_broker.bootstrap,
        bus_kafka_idempotence=False,
        risk_service_address=f"127.0.0.1:{risk_port}",
    )
    engine = Application(settings)
    await engine.start()
    tokens = Tokens(settings)
    try:
        async with _prometheus(tmp_path, engine.metrics.port) as prometheus:
            await _calls(engine, tokens)
            # Something the bus cannot decide, for a dead letter; three batches on Kafka.
            connection = await nats.connect(nats_server.url)
            await connection.publish(names.NATS_PREDICTIONS, b"not an envelope")
            await connection.close()
            async with PredictionPublisher(
                kafka_bootstrap=kafka_broker.bootstrap, service_source="test"
            ) as publisher:
                for number in range(3):
                    batch_id = f"kafka-{number}"
                    prediction = factories.prediction(f"{batch_id}-p")
                    await publisher.publish(factories.live(factories.batch(batch_id, [prediction])))

            refused = await _until(
                prometheus,
                'grpc_server_handled_total{grpc_method="GetStrategy", grpc_code="Unauthenticated"}',
            )
            assert refused[0]["value"][1] == "1"
            assert refused[0]["metric"]["grpc_type"] == "unary"
            assert (
                refused[0]["metric"]["grpc_service"] == "tradeflow.trading.v1.TradingEngineService"
            )
            answered = await _until(
                prometheus, 'grpc_server_handled_total{grpc_method="GetStrategy", grpc_code="OK"}'
            )
            assert answered[0]["value"][1] == "2"
            latency = await _until(
                prometheus,
                'grpc_server_handling_seconds_count{grpc_method="ProcessPredictionBatch"}',
            )
            assert latency[0]["value"][1] == "1"

            # The recording rules ran on what was scraped.
            recorded = await _until(
                prometheus, 'trading_engine:grpc_server_handled:rate5m{grpc_method="GetStrategy"}'
            )
            assert {series["metric"]["grpc_code"] for series in recorded} == {
                "OK",
                "Unauthenticated",
            }
            status, rules = await asyncio.to_thread(http_json, "GET", f"{prometheus}/api/v1/rules")
            assert status == 200
            evaluated = [rule for group in rules["data"]["groups"] for rule in group["rules"]]
            assert len(evaluated) == len(_rules())
            assert all(rule["health"] == "ok" for rule in evaluated), evaluated
            down = next(rule for rule in evaluated if rule["name"] == "TradingEngineDown")
            assert down["state"] == "inactive"

            # The three were taken: nothing waits in the predictions' partition.
            taken = 'trading_engine_bus_messages_received_total{transport="kafka"} == 3'
            await _until(prometheus, taken)
            lag = await _until(
                prometheus, 'trading_engine_bus_kafka_lag{topic="trading-ml-predictions"}'
            )
            assert [series["value"][1] for series in lag] == ["0"]

            # Every metric the rules and the dashboard read is one the engine serves.
            await _until(prometheus, "trading_engine_bus_dead_letters_total")
            status, known = await asyncio.to_thread(
                http_json, "GET", f"{prometheus}/api/v1/label/__name__/values"
            )
            read = {name for expr in _expressions() for name in _METRIC.findall(expr)}
            recorded_names = {rule["record"] for rule in _rules() if "record" in rule}
            missing = {name for name in read if ":" not in name} - set(known["data"])
            assert not missing, missing
            assert {name for name in read if ":" in name} <= recorded_names
    finally:
        await engine.stop()
        await risk.stop(None)


async def _calls(engine: Application, tokens: Tokens) -> None:
    """Health; GetStrategy refused without a token, then answered twice; one batch decided."""
    async with grpc.aio.insecure_channel(engine.grpc_address) as anonymous:
        stub = service_grpc.TradingEngineServiceStub(anonymous)
        await stub.HealthCheck(service_pb2.HealthCheckRequest())
        with contextlib.suppress(grpc.aio.AioRpcError):
            await stub.GetStrategy(service_pb2.GetStrategyRequest())
    async with tokens.channel(engine.grpc_address, TRADER) as trader:
        stub = service_grpc.TradingEngineServiceStub(trader)
        await stub.GetStrategy(service_pb2.GetStrategyRequest())
        await stub.GetStrategy(service_pb2.GetStrategyRequest())
        batch = factories.live(factories.batch("prom-1", [factories.prediction("prom-1-p")]))
        await stub.ProcessPredictionBatch(service_pb2.ProcessPredictionBatchRequest(batch=batch))
