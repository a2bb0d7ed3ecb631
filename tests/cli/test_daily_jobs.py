"""The daily jobs from the command line, against a real engine: halting and resuming
traders, reading and changing strategies with the difference shown first."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import pty
import subprocess
from collections.abc import Iterator
from pathlib import Path

from tests import factories
from tests.support import ADMIN, BIN, TRADER, Stubs, Tokens
from tradeflow.trading.v1 import signal_pb2, strategy_pb2
from tradeflow.trading.v1 import trading_engine_service_pb2 as service_pb2
from trading_engine.app import Application

USER_LAYER = strategy_pb2.STRATEGY_LAYER_USER


async def _run(
    *args: str, token: str = "", address: str = "", stdin: int | None = subprocess.DEVNULL
) -> subprocess.CompletedProcess[str]:
    """`trading-engine ARGS` as an operator's shell runs it, TOKEN and the address exported."""
    env = {k: v for k, v in os.environ.items() if k not in ("TOKEN", "TRADING_ENGINE_ADDRESS")}
    if token:
        env["TOKEN"] = token
    if address:
        env["TRADING_ENGINE_ADDRESS"] = address
    return await asyncio.to_thread(
        subprocess.run,
        [str(BIN / "trading-engine"), *args],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
        env=env,
        stdin=stdin,
    )


async def _known(stubs: Stubs) -> None:
    """trader-1 has used the engine (an admin can set the state only of users it knows)."""
    await stubs.as_(TRADER).GetStrategy(service_pb2.GetStrategyRequest())


async def _decided(stubs: Stubs, batch_id: str) -> signal_pb2.TradingSignal:
    """trader-1's signal for a fresh EURUSD buy."""
    request = service_pb2.ProcessPredictionBatchRequest(
        batch=factories.live(factories.batch(batch_id, [factories.prediction(f"{batch_id}-p")]))
    )
    [signal] = (await stubs.as_(TRADER).ProcessPredictionBatch(request)).signal_batch.signals
    return signal


async def test_an_admin_halts_and_resumes_a_trader_and_the_trader_sees_it(
    engine: Application, stubs: Stubs, tokens: Tokens
) -> None:
    admin, address = tokens.token(ADMIN), engine.grpc_address
    await _known(stubs)

    halted = await _run(
        "halt", "--user", "trader-1", "--reason", "desk closed", token=admin, address=address
    )

    assert halted.returncode == 0, halted.stderr
    assert halted.stdout == "trader-1 of acme is HALTED: desk closed\n"
    held = await _decided(stubs, "halt-1")
    assert held.reason == signal_pb2.DISPOSITION_REASON_TRADING_HALTED

    resumed = await _run(
        "resume", "--user", "trader-1", "--reason", "desk open", token=admin, address=address
    )
    assert resumed.returncode == 0, resumed.stderr
    assert resumed.stdout == "trader-1 of acme is ACTIVE: desk open\n"
    assert (await _decided(stubs, "halt-2")).disposition == signal_pb2.SIGNAL_DISPOSITION_ACTIONABLE


async def test_a_company_halt_says_so_and_a_resumed_user_is_told_the_company_still_holds(
    engine: Application, stubs: Stubs, tokens: Tokens
) -> None:
    admin, address = tokens.token(ADMIN), engine.grpc_address
    await _known(stubs)
    company = await _run("halt", "--company", "--reason", "close", token=admin, address=address)
    assert company.returncode == 0, company.stderr
    assert company.stdout == "every user of acme is HALTED: close\n"
    state = await stubs.as_(ADMIN).GetTradingState(service_pb2.GetTradingStateRequest())
    assert state.company_setting.state == service_pb2.TRADING_STATE_HALTED

    user = await _run(
        "resume", "--user", "trader-1", "--reason", "vip", token=admin, address=address
    )

    assert user.returncode == 0, user.stderr
    assert "but HALTED applies: the company acme is HALTED (close)" in user.stderr
    held = await _decided(stubs, "company-halt-1")
    assert held.reason == signal_pb2.DISPOSITION_REASON_TRADING_HALTED


async def test_halt_names_whom_it_needs_and_refuses_a_trader_token(
    engine: Application, tokens: Tokens
) -> None:
    nobody = await _run("halt", "--reason", "x", address=engine.grpc_address)
    assert nobody.returncode == 2
    assert nobody.stderr.startswith("usage: trading-engine halt ")
    assert "one of the arguments --user --company is required" in nobody.stderr

    trader = await _run(
        "halt",
        "--user",
        "trader-2",
        "--reason",
        "x",
        token=tokens.token(TRADER),
        address=engine.grpc_address,
    )
    assert trader.returncode == 1
    assert "PERMISSION_DENIED: setting a trading state needs the 'admin' role" in trader.stderr


async def test_strategy_set_shows_the_difference_and_applies_only_when_told(
    engine: Application, stubs: Stubs, tokens: Tokens
) -> None:
    token, address = tokens.token(TRADER), engine.grpc_address
    change = ("min_confidence_threshold=0.75", "duplicate_window=20s", "volatility_mode=balanced")

    unasked = await _run(
        "strategy", "set", *change, "--reason", "surer", token=token, address=address
    )

    # No terminal to ask on and no --yes: the difference, and nothing changed.
    assert unasked.returncode == 1
    assert unasked.stdout.splitlines() == [
        "the user layer of trader-1 (acme):",
        "min_confidence_threshold  0.7 (tier default)           ->  0.75",
        "volatility_mode           CONSERVATIVE (tier default)  ->  BALANCED",
        "duplicate_window          300s (tier default)          ->  20s",
    ]
    assert "no terminal to confirm on; pass --yes" in unasked.stderr
    before = await stubs.as_(TRADER).GetStrategy(service_pb2.GetStrategyRequest())
    assert before.strategy.user_version == 0

    applied = await _run(
        "strategy", "set", *change, "--reason", "surer", "--yes", token=token, address=address
    )

    assert applied.returncode == 0, applied.stderr
    assert applied.stdout.endswith("applied: revision 1, the user layer of trader-1 (acme)\n")
    after = (await stubs.as_(TRADER).GetStrategy(service_pb2.GetStrategyRequest())).strategy
    assert after.config.min_confidence_threshold == 0.75
    assert after.config.duplicate_window.seconds == 20
    assert after.config.volatility_mode == strategy_pb2.VOLATILITY_MODE_BALANCED
    assert after.field_sources["min_confidence_threshold"] == USER_LAYER

    again = await _run(
        "strategy",
        "set",
        "min_confidence_threshold=0.75",
        "--reason",
        "x",
        token=token,
        address=address,
    )
    assert again.returncode == 0
    assert again.stdout == (
        "nothing to change: the user layer of trader-1 has these values already\n"
    )


async def test_strategy_get_diff_and_history_read_what_was_changed_by_whom_and_why(
    engine: Application, tokens: Tokens
) -> None:
    token, address = tokens.token(TRADER), engine.grpc_address
    await _run(
        "strategy",
        "set",
        "max_position_count=4",
        "--reason",
        "calmer",
        "--yes",
        token=token,
        address=address,
    )

    shown = await _run("strategy", "get", token=token, address=address)
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert lines[0] == (
        "strategy of trader-1 (acme, PRO), revision 1: user layer 1, adaptive 0, company 0"
    )
    assert lines[1].split() == ["field", "value", "from"]
    assert ["max_position_count", "4", "user"] in [line.split() for line in lines]
    assert ["min_confidence_threshold", "0.7", "tier", "default"] in [
        line.split() for line in lines
    ]
    as_json = await _run("strategy", "get", "--json", token=token, address=address)
    assert json.loads(as_json.stdout)["config"]["maxPositionCount"] == 4

    # A diff of the company layer, against the company admin's own view, applies nothing.
    diff = await _run(
        "strategy",
        "diff",
        "--layer",
        "COMPANY",
        "max_position_count=2",
        token=tokens.token(ADMIN),
        address=address,
    )
    assert diff.returncode == 0, diff.stderr
    assert diff.stdout.splitlines()[0] == "the company layer of acme (beside ops-1's values):"

    history = await _run("strategy", "history", token=token, address=address)
    assert history.returncode == 0, history.stderr
    header, row = history.stdout.splitlines()
    assert header.split()[:3] == ["revision", "changed", "(UTC)"]
    assert row.split()[0] == "1"
    assert row.split()[3:] == ["trader-1", "max_position_count=4", "calmer"]


async def test_a_user_change_under_a_company_override_is_said_to_change_nothing_yet(
    engine: Application, tokens: Tokens
) -> None:
    address = engine.grpc_address
    company = await _run(
        "strategy",
        "set",
        "--layer",
        "company",
        "min_confidence_threshold=0.8",
        "--reason",
        "desk rule",
        "--yes",
        token=tokens.token(ADMIN),
        address=address,
    )
    assert company.returncode == 0, company.stderr

    diff = await _run(
        "strategy",
        "diff",
        "min_confidence_threshold=0.75",
        token=tokens.token(TRADER),
        address=address,
    )

    assert diff.stdout.splitlines()[1].split() == [
        "min_confidence_threshold",
        "0.8",
        "(company)",
        "->",
        "0.75",
        "but",
        "the",
        "company",
        "layer's",
        "value",
        "still",
        "applies",
    ]


async def test_strategy_reset_clears_a_layer_or_restores_a_revision(
    engine: Application, stubs: Stubs, tokens: Tokens
) -> None:
    token, address = tokens.token(TRADER), engine.grpc_address
    for value in ("4", "6"):
        await _run(
            "strategy",
            "set",
            f"max_position_count={value}",
            "--reason",
            f"to {value}",
            "--yes",
            token=token,
            address=address,
        )

    back = await _run(
        "strategy",
        "reset",
        "--to-version",
        "1",
        "--reason",
        "undo",
        "--yes",
        token=token,
        address=address,
    )

    assert back.returncode == 0, back.stderr
    assert back.stdout.splitlines()[:2] == [
        "the user layer goes back to revision 1, undoing:",
        "  revision 2 by trader-1: max_position_count (to 6)",
    ]
    restored = (await stubs.as_(TRADER).GetStrategy(service_pb2.GetStrategyRequest())).strategy
    assert restored.config.max_position_count == 4

    cleared = await _run(
        "strategy", "reset", "--reason", "defaults", "--yes", token=token, address=address
    )
    assert cleared.returncode == 0, cleared.stderr
    assert "  max_position_count = 4" in cleared.stdout
    default = (await stubs.as_(TRADER).GetStrategy(service_pb2.GetStrategyRequest())).strategy
    assert default.config.max_position_count == 10
    assert default.field_sources["max_position_count"] == strategy_pb2.STRATEGY_LAYER_TIER_DEFAULT


async def test_a_misspelt_field_or_value_is_refused_with_what_was_meant(
    engine: Application, tokens: Tokens
) -> None:
    token, address = tokens.token(TRADER), engine.grpc_address
    misspelt = await _run(
        "strategy",
        "set",
        "min_confidence_thresold=0.75",
        "--reason",
        "x",
        token=token,
        address=address,
    )
    assert misspelt.returncode == 2
    assert 'did you mean "min_confidence_threshold"?' in misspelt.stderr

    wrong_mode = await _run(
        "strategy", "diff", "volatility_mode=wild", token=token, address=address
    )
    assert wrong_mode.returncode == 2
    assert "not one of CONSERVATIVE, BALANCED, AGGRESSIVE" in wrong_mode.stderr

    # Out of range is the engine's call, with its field violation.
    out_of_range = await _run(
        "strategy",
        "set",
        "min_confidence_threshold=1.5",
        "--reason",
        "x",
        "--yes",
        token=token,
        address=address,
    )
    assert out_of_range.returncode == 1
    assert "INVALID_ARGUMENT" in out_of_range.stderr
    assert "must be in [0, 1]; got 1.5" in out_of_range.stderr


@contextlib.contextmanager
def _terminal() -> Iterator[tuple[int, int]]:
    """A pseudo-terminal: (the side a command reads as its stdin, the side we type on)."""
    typed, terminal = pty.openpty()
    try:
        yield terminal, typed
    finally:
        os.close(typed)
        os.close(terminal)


async def test_on_a_terminal_set_asks_and_a_change_made_meanwhile_is_not_overwritten(
    engine: Application, stubs: Stubs, tokens: Tokens
) -> None:
    token, address = tokens.token(TRADER), engine.grpc_address
    with _terminal() as (terminal, typed):
        declined_run = asyncio.create_task(
            _run(
                "strategy",
                "set",
                "max_position_count=3",
                "--reason",
                "x",
                token=token,
                address=address,
                stdin=terminal,
            )
        )
        await asyncio.sleep(1.5)
        os.write(typed, b"n\n")
        declined = await declined_run
    assert declined.returncode == 1
    assert "Apply? [y/N]" in declined.stdout
    assert "not applied" in declined.stderr

    with _terminal() as (terminal, typed):
        raced_run = asyncio.create_task(
            _run(
                "strategy",
                "set",
                "max_position_count=3",
                "--reason",
                "x",
                token=token,
                address=address,
                stdin=terminal,
            )
        )
        await asyncio.sleep(1.5)
        # While the operator reads the difference, someone else changes the layer.
        change = service_pb2.UpdateStrategyRequest(
            layer=USER_LAYER, strategy=strategy_pb2.StrategyConfig(max_position_count=5)
        )
        await stubs.as_(TRADER).UpdateStrategy(change)
        os.write(typed, b"y\n")
        raced = await raced_run
    assert raced.returncode == 1
    assert "FAILED_PRECONDITION" in raced.stderr
    kept = (await stubs.as_(TRADER).GetStrategy(service_pb2.GetStrategyRequest())).strategy
    assert kept.config.max_position_count == 5


async def test_the_token_can_come_from_a_file(
    engine: Application, stubs: Stubs, tokens: Tokens, tmp_path: Path
) -> None:
    await _known(stubs)
    token_file = tmp_path / "admin.token"
    token_file.write_text(tokens.token(ADMIN) + "\n")
    halted = await _run(
        "halt",
        "--user",
        "trader-1",
        "--reason",
        "r",
        "--token-file",
        str(token_file),
        token=tokens.token(TRADER),
        address=engine.grpc_address,
    )
    assert halted.returncode == 0, halted.stderr
