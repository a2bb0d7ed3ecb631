"""deploy/compose.yaml and deploy/Dockerfile, checked as far as a machine without a Docker
engine allows: every file they mount or copy exists, every trading-engine command and
setting in them is one the engine takes, the gateway's Envoy configuration validates, and
Prometheus and Grafana are wired to what the engine serves."""

from __future__ import annotations

import argparse
import dataclasses
import json
import re
import subprocess
from pathlib import Path
from typing import Any

import yaml

from tests.deploy.test_prometheus import DASHBOARD, tool
from tests.support import ROOT
from trading_engine.bus import names
from trading_engine.cli import _parser
from trading_engine.config import (
    ENV_PREFIX,
    EngineSettings,
    GatewaySettings,
    from_arguments,
)
from trading_engine.gateway.envoy import envoy_binary, render_config

DEPLOY = ROOT / "deploy"
COMPOSE: dict[str, Any] = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
SERVICES: dict[str, dict[str, Any]] = COMPOSE["services"]
ENGINE_IMAGE = "trading-engine:latest"
# Files the operator supplies (docs/operations.md), never committed.
SECRETS = DEPLOY / "secrets"


def _engine_services() -> dict[str, dict[str, Any]]:
    return {name: s for name, s in SERVICES.items() if s.get("image") == ENGINE_IMAGE}


def _parsed(service: dict[str, Any]) -> argparse.Namespace:
    """The service's command as the image's entry point (trading-engine) parses it."""
    command: list[str] = service["command"]
    return _parser().parse_args(command)


def _environment(service: dict[str, Any]) -> dict[str, str]:
    """The image's environment (Dockerfile ENV) under the service's own."""
    return {
        **_dockerfile_environment(),
        **{k: str(v) for k, v in service.get("environment", {}).items()},
    }


def _dockerfile_environment() -> dict[str, str]:
    text = (DEPLOY / "Dockerfile").read_text().replace("\\\n", " ")
    found = re.findall(r"^ENV (.+)$", text, re.MULTILINE)
    return dict(pair.split("=", 1) for line in found for pair in line.split())


def test_the_stack_has_every_part_the_engine_needs() -> None:
    assert set(SERVICES) == {
        *("engine", "gateway", "migrate", "risk"),
        *("postgres", "nats", "kafka", "kafka-topics", "prometheus", "grafana"),
    }
    assert set(_engine_services()) == {"engine", "gateway", "migrate", "risk"}
    for service in _engine_services().values():
        assert service["build"] == {"context": "..", "dockerfile": "deploy/Dockerfile"}
    # The engine starts after its schema is migrated and its topics exist.
    depends = SERVICES["engine"]["depends_on"]
    assert depends["migrate"]["condition"] == "service_completed_successfully"
    assert depends["kafka-topics"]["condition"] == "service_completed_successfully"
    assert "-js" in SERVICES["nats"]["command"]


def test_every_trading_engine_command_and_setting_is_one_the_engine_takes() -> None:
    known = {
        ENV_PREFIX + field.name.upper()
        for kind in (EngineSettings, GatewaySettings)
        for field in dataclasses.fields(kind)
    }
    for name, service in _engine_services().items():
        environment = _environment(service)
        assert set(environment) <= known, (name, set(environment) - known)
        args = _parsed(service)
        if args.command in ("serve", "db"):
            # Valid values: building the settings refuses a bad one.
            from_arguments(EngineSettings, args, environment)
    engine = from_arguments(
        EngineSettings, _parsed(SERVICES["engine"]), _environment(SERVICES["engine"])
    )
    assert engine.production
    assert engine.store_url.startswith("postgresql://engine:")
    assert engine.store_url == SERVICES["migrate"]["environment"]["TRADING_ENGINE_STORE_URL"]
    assert engine.grpc_host == "0.0.0.0"
    assert engine.risk_service_address == "risk:50071"
    assert "--port" in SERVICES["risk"]["command"]
    assert engine.auth_jwks_file == "/run/secrets/jwks"
    assert "jwks" in SERVICES["engine"]["secrets"]


def test_the_kafka_topics_created_are_the_engines() -> None:
    script = SERVICES["kafka-topics"]["command"][0]
    loop = re.search(r"for topic in ([^;]+);", script)
    assert loop is not None, script
    created = set(loop.group(1).split())
    assert created == {
        names.KAFKA_PREDICTIONS,
        names.KAFKA_SIGNALS,
        names.KAFKA_EXECUTIONS,
        names.KAFKA_DEAD_LETTER,
    }


def test_every_mounted_and_copied_file_is_in_the_repository() -> None:
    for name, service in SERVICES.items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (DEPLOY / source).exists(), (name, volume)
    for secret in COMPOSE["secrets"].values():
        assert (DEPLOY / secret["file"]).parent == SECRETS
    dockerfile = (DEPLOY / "Dockerfile").read_text().replace("\\\n", " ")
    copied = re.findall(r"^COPY (?!--from)(.+) \S+$", dockerfile, re.MULTILINE)
    for sources in copied:
        for source in sources.split():
            assert (ROOT / source).exists(), source
    assert re.search(r'^ENTRYPOINT \["trading-engine"\]$', dockerfile, re.MULTILINE)


def test_the_gateways_envoy_configuration_validates(tmp_path: Path) -> None:
    service = SERVICES["gateway"]
    args = _parsed(service)
    settings = from_arguments(GatewaySettings, args, _environment(service))
    # The image's envoy folder is this repository's.
    settings = dataclasses.replace(settings, envoy_dir=ROOT / "envoy")
    assert (settings.upstream_host, settings.upstream_port) == ("engine", 50051)
    config = tmp_path / "envoy.yaml"
    config.write_text(render_config(settings))

    checked = subprocess.run(
        [str(envoy_binary()), "--mode", "validate", "-c", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "OK" in checked.stdout


def test_prometheus_scrapes_the_engine_and_gateway_where_they_serve() -> None:
    config = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml").read_text())
    targets = {
        job["job_name"]: target
        for job in config["scrape_configs"]
        for group in job["static_configs"]
        for target in group["targets"]
    }
    engine = _environment(SERVICES["engine"])["TRADING_ENGINE_METRICS_ADDRESS"]
    assert targets["trading-engine"] == f"engine:{engine.rpartition(':')[2]}"
    assert targets["envoy"] == "gateway:9901"
    assert "--envoy-admin-port=9901" in SERVICES["gateway"]["command"]
    assert "./prometheus:/etc/prometheus:ro" in SERVICES["prometheus"]["volumes"]
    checked = subprocess.run(
        [tool("promtool"), "check", "config", str(DEPLOY / "prometheus" / "prometheus.yml")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_grafana_loads_the_dashboard_with_the_prometheus_it_is_given() -> None:
    provisioning = DEPLOY / "grafana" / "provisioning"
    [source] = yaml.safe_load((provisioning / "datasources" / "prometheus.yml").read_text())[
        "datasources"
    ]
    assert source["url"] == "http://prometheus:9090"
    [provider] = yaml.safe_load((provisioning / "dashboards" / "trading-engine.yml").read_text())[
        "providers"
    ]
    mounts = dict(volume.split(":")[:2] for volume in SERVICES["grafana"]["volumes"])
    assert mounts["./grafana/dashboards"] == provider["options"]["path"]
    dashboard = json.loads(DASHBOARD.read_text())
    used = {
        json.dumps(part["datasource"], sort_keys=True)
        for panel in dashboard["panels"]
        for part in (panel, *panel.get("targets", []))
        if "datasource" in part
    }
    assert used == {json.dumps({"type": "prometheus", "uid": source["uid"]}, sort_keys=True)}
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    titles = {panel["title"] for panel in dashboard["panels"]}
    # What the dashboard is for (issue 21): each of these has its panel.
    for wanted in (
        "Decisions by disposition",
        "Batch decision time",
        "Bus lag: batch age when decided",
        "Kafka lag per partition",
        "Dead letters by reason",
        "Risk breaker",
        "History lag",
        "Errors by method and code",
    ):
        assert wanted in titles
