"""`dev` and `gateway` beside another stack: a port the user chose that is in use refuses the
start before anything runs, naming the flag; a default one is replaced by a free one, said
aloud; and a gateway that dies is a health component and stops the stack."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

from tests.support import BIN, children_of, http_json_async, pid_alive, running
from trading_engine.devstack.brokers import free_port

DEFAULT_PORTS = {"gRPC": 50051, "REST": 8080, "Envoy admin": 9901}


@contextlib.contextmanager
def _listening(*ports: int) -> Iterator[None]:
    """Another process's servers on these loopback ports (those already in use stay so)."""
    sockets = []
    try:
        for port in ports:
            server = socket.socket()
            server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                server.bind(("127.0.0.1", port))
            except OSError:
                server.close()
                continue
            server.listen()
            sockets.append(server)
        yield
    finally:
        for server in sockets:
            server.close()


def _trading_engine(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "trading-engine"), *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_dev_refuses_chosen_ports_in_use_before_starting_anything(tmp_path: Path) -> None:
    grpc, rest, admin, metrics = (free_port() for _ in range(4))
    with _listening(grpc, rest, admin, metrics):
        refused = _trading_engine(
            "dev",
            "--grpc-port",
            str(grpc),
            "--http-port",
            str(rest),
            "--envoy-admin-port",
            str(admin),
            "--metrics-port",
            str(metrics),
            "--data-dir",
            str(tmp_path / "data"),
        )

    assert refused.returncode == 1
    for what, port, flag in (
        ("gRPC", grpc, "--grpc-port"),
        ("REST", rest, "--http-port"),
        ("Envoy admin", admin, "--envoy-admin-port"),
        ("metrics", metrics, "--metrics-port"),
    ):
        assert f"{what} port 127.0.0.1:{port} is in use: choose another with {flag}" in (
            refused.stderr
        )
    # Nothing ran: no database was created, no migration applied.
    assert not (tmp_path / "data").exists()
    assert "migration" not in refused.stderr


def test_a_port_asked_for_twice_is_refused_too(tmp_path: Path) -> None:
    port = free_port()
    refused = _trading_engine(
        "dev",
        "--http-port",
        str(port),
        "--envoy-admin-port",
        str(port),
        "--data-dir",
        str(tmp_path),
    )
    assert refused.returncode == 1
    assert (
        f"Envoy admin port {port} is also the REST port: choose another with --envoy-admin-port"
        in refused.stderr
    )


def test_gateway_refuses_a_chosen_rest_port_in_use() -> None:
    port = free_port()
    with _listening(port):
        refused = _trading_engine("gateway", "--http-port", str(port))
    assert refused.returncode == 1
    assert f"REST port 127.0.0.1:{port} is in use: choose another with --http-port" in (
        refused.stderr
    )


async def test_beside_another_stack_dev_moves_to_free_ports_and_stops_when_its_gateway_dies(
    tmp_path: Path,
) -> None:
    with _listening(*DEFAULT_PORTS.values()):
        async with running("dev", "--data-dir", str(tmp_path)) as dev:
            await dev.wait_for_line(r"Press Ctrl-C")
            output = dev.output
            for what, default in DEFAULT_PORTS.items():
                assert re.search(
                    rf"\({what} port {default} is in use; using \d+ instead \(--[a-z-]+ chooses",
                    output,
                ), output
            rest = re.search(r"^  REST +(\S+)", output, re.MULTILINE)
            assert rest is not None
            assert not rest.group(1).endswith(":8080")

            # The REST URL printed is this stack's: its health names its own gateway.
            status, health = await http_json_async("GET", f"{rest.group(1)}/api/v1/health")
            assert status == 200, health
            [gateway] = [c for c in health["components"] if c["name"] == "gateway"]
            assert gateway["state"] == "COMPONENT_STATE_UP", gateway
            assert rest.group(1) in gateway["detail"]

            # Envoy dies: the stack says so and stops, leaving nothing behind.
            assert dev.process is not None
            envoy = _child_named(dev.process.pid, "envoy")
            started = children_of(dev.process.pid)
            os.kill(envoy, signal.SIGKILL)
            async with asyncio.timeout(20):
                status_code = await dev.process.wait()
            assert status_code == 1
            assert "the REST gateway (Envoy) exited with status -9; stopping the stack" in (
                dev.output
            )
            assert "trading engine stopped" in dev.output
            assert not [pid for pid in started if pid_alive(pid)]


def _child_named(parent: int, name: str) -> int:
    for pid in children_of(parent):
        if Path(f"/proc/{pid}/comm").read_text().strip() == name:
            return pid
    raise AssertionError(f"no {name} among the children of {parent}")
