"""Every admin action that succeeds is logged and audited: who (user, company, roles), what
(RPC, layer or scope, user), why, and each value before and after; a refused call is neither."""

from __future__ import annotations

import asyncio
import json
import logging
import signal
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.support import ADMIN, TRADER, Stubs, Tokens, rpc_failure, running
from tradeflow.trading.v1 import signal_pb2, strategy_pb2
from tradeflow.trading.v1 import trading_engine_service_pb2 as service_pb2
from trading_engine.app import Application
from trading_engine.config import EngineSettings
from trading_engine.stores.base import AuditRecord

USER = strategy_pb2.STRATEGY_LAYER_USER
COMPANY = strategy_pb2.STRATEGY_LAYER_COMPANY
HALTED = service_pb2.TRADING_STATE_HALTED
REDUCE_ONLY = service_pb2.TRADING_STATE_REDUCE_ONLY
AUDIT_LOGGER = "trading_engine.audit"


@pytest.fixture
async def audit_lines(
    caplog: pytest.LogCaptureFixture, stubs: Stubs
) -> AsyncIterator[list[logging.LogRecord]]:
    """The audit lines logged while the test runs; trader-1 is known to the engine."""
    await stubs.as_(TRADER).GetStrategy(service_pb2.GetStrategyRequest())
    caplog.set_level(logging.INFO, logger=AUDIT_LOGGER)
    lines: list[logging.LogRecord] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(record)

    handler = Collect(logging.INFO)
    logging.getLogger(AUDIT_LOGGER).addHandler(handler)
    yield lines
    logging.getLogger(AUDIT_LOGGER).removeHandler(handler)


def fields(line: logging.LogRecord) -> dict[str, Any]:
    """The `audit` object of a line's JSON form."""
    audit: dict[str, Any] = line.__dict__["line_fields"]["audit"]
    return audit


async def newest_audit(engine: Application, count: int) -> list[AuditRecord]:
    return await engine.store.list_audit("acme", count)


def strategy_update(layer: int, user_id: str = "", **values: Any) -> Any:
    return service_pb2.UpdateStrategyRequest(
        layer=layer,  # type: ignore[arg-type]
        user_id=user_id,
        strategy=strategy_pb2.StrategyConfig(**values),
        reason="fewer, surer signals",
    )


async def test_a_strategy_update_is_logged_and_audited_with_old_and_new_values(
    stubs: Stubs, engine: Application, audit_lines: list[logging.LogRecord]
) -> None:
    admin = stubs.as_(ADMIN)
    await admin.UpdateStrategy(
        strategy_update(USER, "trader-1", min_confidence_threshold=0.75, max_position_count=5)
    )
    await admin.UpdateStrategy(strategy_update(USER, "trader-1", min_confidence_threshold=0.8))

    first, second = audit_lines
    assert first.levelno == logging.INFO
    assert first.getMessage() == (
        "strategy.update by ops-1 of company acme (roles: admin) via UpdateStrategy: "
        "USER layer of user trader-1: min_confidence_threshold unset -> 0.75, "
        "max_position_count unset -> 5; reason: fewer, surer signals"
    )
    assert second.getMessage().endswith(
        "USER layer of user trader-1: min_confidence_threshold 0.75 -> 0.8; "
        "reason: fewer, surer signals"
    )
    audit = fields(second)
    assert {key: audit[key] for key in audit if key != "detail"} == {
        "action": "strategy.update",
        "actor": "ops-1",
        "actor_company_id": "acme",
        "actor_roles": ["admin"],
        "rpc": "UpdateStrategy",
        "scope": "USER layer",
        "subject_user_id": "trader-1",
        "reason": "fewer, surer signals",
        "old": {"min_confidence_threshold": 0.75},
        "new": {"min_confidence_threshold": 0.8},
    }
    newest = (await newest_audit(engine, 1))[0]
    assert (newest.actor, newest.actor_roles, newest.action, newest.subject_user_id) == (
        "ops-1",
        ("admin",),
        "strategy.update",
        "trader-1",
    )
    assert newest.reason == "fewer, surer signals"
    assert json.loads(newest.old_values) == {"min_confidence_threshold": 0.75}
    assert json.loads(newest.new_values) == {"min_confidence_threshold": 0.8}


async def test_a_company_update_and_its_reset_are_logged_with_what_they_undo(
    stubs: Stubs, engine: Application, audit_lines: list[logging.LogRecord]
) -> None:
    admin = stubs.as_(ADMIN)
    changed = await admin.UpdateStrategy(
        strategy_update(COMPANY, max_signals_per_minute=20, duplicate_window={"seconds": 600})
    )
    await admin.ResetStrategy(
        service_pb2.ResetStrategyRequest(
            layer=COMPANY, to_version=0, reason="back to each tier's defaults"
        )
    )

    update_line, reset_line = audit_lines
    assert "via UpdateStrategy: COMPANY layer of company acme: " in update_line.getMessage()
    assert fields(update_line)["new"] == {
        "max_signals_per_minute": 20,
        "duplicate_window": "600s",
    }
    assert fields(update_line)["detail"]["version"] == changed.version.version
    assert reset_line.getMessage() == (
        "strategy.reset by ops-1 of company acme (roles: admin) via ResetStrategy: "
        'COMPANY layer of company acme: duplicate_window "600s" -> unset, '
        "max_signals_per_minute 20 -> unset; reason: back to each tier's defaults"
    )
    reset = (await newest_audit(engine, 1))[0]
    assert (reset.action, reset.subject_user_id) == ("strategy.reset", "")
    assert json.loads(reset.old_values) == {
        "max_signals_per_minute": 20,
        "duplicate_window": "600s",
    }
    assert json.loads(reset.new_values) == {}


async def test_trading_states_are_logged_with_the_state_they_replace(
    stubs: Stubs, engine: Application, audit_lines: list[logging.LogRecord]
) -> None:
    admin = stubs.as_(ADMIN)
    scope = service_pb2.TRADING_STATE_SCOPE_COMPANY
    await admin.SetTradingState(
        service_pb2.SetTradingStateRequest(state=HALTED, reason="NFP release", scope=scope)
    )
    await admin.SetTradingState(
        service_pb2.SetTradingStateRequest(
            user_id="trader-1",
            state=REDUCE_ONLY,
            reason="margin call",
            scope=service_pb2.TRADING_STATE_SCOPE_USER,
        )
    )
    await admin.SetTradingState(
        service_pb2.SetTradingStateRequest(
            state=service_pb2.TRADING_STATE_ACTIVE, reason="release over", scope=scope
        )
    )

    halt, user, resume = audit_lines
    assert halt.getMessage() == (
        "trading_state.set by ops-1 of company acme (roles: admin) via SetTradingState: "
        'COMPANY trading state of company acme: state "active" -> "halted"; reason: NFP release'
    )
    assert (fields(user)["scope"], fields(user)["subject_user_id"]) == (
        "USER trading state",
        "trader-1",
    )
    assert (fields(user)["old"], fields(user)["new"]) == (
        {"state": "active"},
        {"state": "reduce-only"},
    )
    assert (fields(resume)["old"], fields(resume)["new"]) == (
        {"state": "halted"},
        {"state": "active"},
    )
    stored = await newest_audit(engine, 3)
    assert [(r.subject_user_id, json.loads(r.new_values)["state"]) for r in stored] == [
        ("", "active"),
        ("trader-1", "reduce-only"),
        ("", "halted"),
    ]
    assert [r.reason for r in stored] == ["release over", "margin call", "NFP release"]
    assert all(r.actor_roles == ("admin",) for r in stored)


async def test_a_manual_signal_is_logged_with_what_it_puts_the_trader_into(
    stubs: Stubs, engine: Application, audit_lines: list[logging.LogRecord]
) -> None:
    response = await stubs.as_(ADMIN).InjectManualSignal(
        service_pb2.InjectManualSignalRequest(
            request_id="req-1",
            user_id="trader-1",
            symbol="EURUSD",
            signal_type=signal_pb2.SIGNAL_TYPE_BUY,
            order_type=signal_pb2.ORDER_TYPE_MARKET,
            reference_price=1.08500,
            stop_loss=1.08300,
            take_profit=1.08900,
            position_size_lots=1.5,
            note="ECB surprise",
        )
    )

    (line,) = audit_lines
    signal_id = response.signal.signal_id
    assert line.getMessage().startswith(
        "signal.inject by ops-1 of company acme (roles: admin) via InjectManualSignal: "
        f'signals of user trader-1: signal_id unset -> "{signal_id}", '
        'symbol unset -> "EURUSD", signal_type unset -> "SIGNAL_TYPE_BUY", '
    )
    assert line.getMessage().endswith("; reason: ECB surprise")
    assert fields(line)["new"] == {
        "signal_id": signal_id,
        "symbol": "EURUSD",
        "signal_type": "SIGNAL_TYPE_BUY",
        "order_type": "ORDER_TYPE_MARKET",
        "entry_price": 1.085,
        "position_size_lots": 1.5,
        "stop_loss": 1.083,
        "take_profit": 1.089,
    }
    stored = (await newest_audit(engine, 1))[0]
    assert (stored.action, stored.reason, stored.actor_roles) == (
        "signal.inject",
        "ECB surprise",
        ("admin",),
    )
    assert json.loads(stored.new_values)["signal_id"] == signal_id
    # A retry under the same request id publishes nothing new: nothing more is audited.
    await stubs.as_(ADMIN).InjectManualSignal(
        service_pb2.InjectManualSignalRequest(request_id="req-1", user_id="trader-1")
    )
    assert len(audit_lines) == 1


async def test_the_strategy_stream_names_its_rpc_and_a_refused_change_is_not_audited(
    stubs: Stubs, engine: Application, audit_lines: list[logging.LogRecord]
) -> None:
    before = await newest_audit(engine, 100)
    trader = stubs.as_(TRADER)
    refused = await rpc_failure(trader.UpdateStrategy(strategy_update(USER, max_position_count=11)))
    assert refused.code.name == "INVALID_ARGUMENT"

    async def operations() -> AsyncIterator[service_pb2.ManageStrategiesRequest]:
        yield service_pb2.ManageStrategiesRequest(
            operation_id="op-1", update=strategy_update(USER, max_position_count=4)
        )

    answers = [answer async for answer in trader.ManageStrategies(operations())]

    assert answers[0].WhichOneof("result") == "update"
    (line,) = audit_lines
    assert fields(line)["rpc"] == "ManageStrategies"
    assert (fields(line)["actor"], fields(line)["actor_roles"]) == ("trader-1", [])
    assert "(roles: none) via ManageStrategies" in line.getMessage()
    assert len(await newest_audit(engine, 100)) == len(before) + 1


async def test_a_served_engine_writes_the_audit_line_as_json(tmp_path: Path) -> None:
    async with running(
        "serve", "--grpc-port", "0", "--data-dir", str(tmp_path), "--log-format", "json"
    ) as engine:
        address = (await engine.wait_for_line(r"serving gRPC on ([^\s\"]+)")).group(1)
        stubs = Stubs(address, Tokens(EngineSettings(data_dir=str(tmp_path))))
        try:
            await stubs.as_(ADMIN).SetTradingState(
                service_pb2.SetTradingStateRequest(
                    state=HALTED,
                    reason="NFP release",
                    scope=service_pb2.TRADING_STATE_SCOPE_COMPANY,
                )
            )
        finally:
            await stubs.close()
        match = await engine.wait_for_line(r'^\{.*"logger": "trading_engine.audit".*$')
        line = json.loads(match.group(0))
        assert engine.process is not None
        engine.process.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(engine.process.wait(), timeout=10) == 0
    assert line["level"] == "INFO"
    # The call's context (tenant, RPC) and the action's own facts.
    assert (line["company_id"], line["user_id"], line["rpc"]) == (
        "acme",
        "ops-1",
        "SetTradingState",
    )
    audit = line["audit"]
    assert (audit["action"], audit["actor"], audit["actor_roles"]) == (
        "trading_state.set",
        "ops-1",
        ["admin"],
    )
    assert (audit["scope"], audit["subject_user_id"], audit["reason"]) == (
        "COMPANY trading state",
        "",
        "NFP release",
    )
    assert (audit["old"], audit["new"]) == ({"state": "active"}, {"state": "halted"})


async def test_an_adaptive_adjustment_is_logged_as_the_engines_own_action(
    engine: Application, audit_lines: list[logging.LogRecord]
) -> None:
    effective = await engine.strategies.effective_for("acme", "trader-1")
    assert effective is not None
    await engine.strategies.adapt(
        effective,
        strategy_pb2.StrategyConfig(min_confidence_threshold=0.75),
        ["min_confidence_threshold"],
        "hit rate 0.45 over 20 closed signals is below 0.6",
    )

    (line,) = audit_lines
    # No RPC made it: the rules did, after a close.
    assert line.getMessage() == (
        "strategy.adapt by adaptive of company acme (roles: none): ADAPTIVE layer of user "
        "trader-1: min_confidence_threshold unset -> 0.75; "
        "reason: hit rate 0.45 over 20 closed signals is below 0.6"
    )
    stored = (await newest_audit(engine, 1))[0]
    assert (stored.actor, stored.actor_roles, stored.action) == ("adaptive", (), "strategy.adapt")
    assert json.loads(stored.new_values) == {"min_confidence_threshold": 0.75}
