"""Every shell example of the user guide, run as written against a live engine and Envoy
holding what `trading-engine dev --demo` has written before a user types anything."""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess

import pytest

from tests.support import BIN, ROOT, TRADER, Tokens
from trading_engine.app import Application
from trading_engine.devstack.demo import set_up_demo_strategies
from trading_engine.gateway.envoy import EnvoyGateway

GUIDE = ROOT / "docs" / "user-guide.md"


def _examples() -> list[str]:
    """The lines of the guide's sh blocks, in order."""
    blocks = re.findall(r"```sh\n(.*?)```", GUIDE.read_text(), re.S)
    return [line for block in blocks for line in block.splitlines() if line.strip()]


def test_the_guide_has_examples_for_each_area() -> None:
    paths = " ".join(_examples())
    for route in ("predictions:process", "strategy/update", "signals/history",
                  "performance/summary", "trading-state"):  # fmt: skip
        assert route in paths, route


@pytest.fixture
async def dev_stack(engine: Application, gateway: EnvoyGateway) -> EnvoyGateway:
    """The gateway of an engine in the state `make run` leaves it: the demo's strategy
    revision for each demo trader (trader-1, the token's user, among them)."""
    await set_up_demo_strategies(engine.strategies)
    return gateway


@pytest.mark.parametrize("command", _examples())
async def test_the_example_works_as_written(
    command: str, dev_stack: EnvoyGateway, tokens: Tokens
) -> None:
    gateway = dev_stack
    environment = {
        **os.environ,
        # grpcurl is installed beside this Python.
        "PATH": f"{BIN}:{os.environ['PATH']}",
        "REST": gateway.base_url,
        "GRPC": f"127.0.0.1:{gateway.settings.upstream_port}",
        "TOKEN": tokens.token(TRADER),
    }
    done = await asyncio.to_thread(
        subprocess.run,
        ["bash", "-o", "pipefail", "-c", command],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=ROOT,
        env=environment,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    if command.startswith("trading-engine "):
        # The command line answers for people, in lines; a failure is its exit status.
        assert done.stdout.strip(), command
        return
    answer = json.loads(done.stdout)
    # A refused call answers with a google.rpc.Status: code and message.
    assert not (isinstance(answer, dict) and {"code", "message"} <= answer.keys()), answer
