"""The Envoy process behind the gateway: it never shares a port with another gateway, and
starts without warnings to read past."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from tests.support import http_json_async
from trading_engine.app import Application
from trading_engine.config import GatewaySettings
from trading_engine.devstack.brokers import free_port
from trading_engine.gateway.envoy import EnvoyGateway


async def test_a_second_gateway_on_a_busy_rest_port_fails_instead_of_sharing_it(
    engine: Application, gateway: EnvoyGateway, tmp_path: Path
) -> None:
    second = EnvoyGateway(
        dataclasses.replace(gateway.settings, envoy_admin_port=free_port()),
        log_path=tmp_path / "envoy.log",
    )

    # Envoy's default (SO_REUSEPORT) let both listen, the kernel splitting requests between
    # two engines; now the second exits, and says why.
    with pytest.raises(RuntimeError, match=r"envoy exited with status 1; .*--http-port"):
        await second.start()

    status, _ = await http_json_async("GET", f"{gateway.base_url}/api/v1/health")
    assert status == 200


async def test_envoy_starts_without_a_warning(engine: Application, tmp_path: Path) -> None:
    log = tmp_path / "envoy.log"
    envoy = EnvoyGateway(
        GatewaySettings(
            http_port=free_port(), envoy_admin_port=free_port(), upstream_port=engine.grpc_port
        ),
        log_path=log,
    )
    await envoy.start()
    try:
        status, _ = await http_json_async("GET", f"{envoy.base_url}/api/v1/health")
        assert status == 200
    finally:
        await envoy.stop()
    # The connection limit it used to warn about is configured now; stopping is all it says.
    said = [line for line in log.read_text().splitlines() if "caught ENVOY_SIGTERM" not in line]
    assert said == []
