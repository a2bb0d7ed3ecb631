"""The bounds of free text through a real Envoy: a reason or note at its bound is taken, one
character more is a 400 whose JSON names the field and the bound, and nothing changed."""

from __future__ import annotations

import json
from typing import Any

from tests.support import ADMIN, TRADER, Tokens, http_json_async
from trading_engine.app import Application
from trading_engine.gateway.envoy import EnvoyGateway

TEXT_LIMIT = 1000


def _violations(body: Any) -> dict[str, str]:
    bad_request = next(d for d in body["details"] if d["@type"].endswith("BadRequest"))
    return {v["field"]: v["description"] for v in bad_request["fieldViolations"]}


async def _call(
    gateway: EnvoyGateway, tokens: Tokens, caller: Any, method: str, path: str, body: Any = None
) -> tuple[int, Any]:
    return await http_json_async(
        method,
        f"{gateway.base_url}/api/v1/{path}",
        None if body is None else json.dumps(body).encode(),
        {"content-type": "application/json", **tokens.header(caller)},
    )


def _refused(status: int, body: Any, field: str) -> None:
    assert status == 400, body
    assert body["code"] == 3
    assert _violations(body)[field].startswith("at most 1,000 characters (Unicode code points)")


async def test_strategy_reason_halt_reason_and_manual_note_are_bounded_over_rest(
    engine: Application, gateway: EnvoyGateway, tokens: Tokens
) -> None:
    async def update(reason: str, threshold: float, expected: int) -> tuple[int, Any]:
        return await _call(
            gateway,
            tokens,
            TRADER,
            "POST",
            "strategy/update",
            {
                "layer": "STRATEGY_LAYER_USER",
                "strategy": {"minConfidenceThreshold": threshold},
                "updateMask": "minConfidenceThreshold",
                "expectedVersion": str(expected),
                "reason": reason,
            },
        )

    status, body = await update("é" * TEXT_LIMIT, 0.7, 0)
    assert status == 200, body
    version = int(body["version"]["version"])
    status, body = await update("é" * (TEXT_LIMIT + 1), 0.9, version)
    _refused(status, body, "reason")
    status, body = await _call(gateway, tokens, TRADER, "GET", "strategy")
    assert int(body["strategy"]["userVersion"]) == version
    assert body["strategy"]["config"]["minConfidenceThreshold"] == 0.7

    async def halt(reason: str) -> tuple[int, Any]:
        return await _call(
            gateway,
            tokens,
            ADMIN,
            "POST",
            "trading-state",
            {"user_id": "trader-1", "state": "TRADING_STATE_HALTED", "reason": reason},
        )

    status, body = await halt("€" * TEXT_LIMIT)
    assert status == 200, body
    status, body = await halt("€" * (TEXT_LIMIT + 1))
    _refused(status, body, "reason")
    status, body = await _call(gateway, tokens, ADMIN, "GET", "trading-state?userId=trader-1")
    assert body["userSetting"]["reason"] == "€" * TEXT_LIMIT

    async def inject(request_id: str, note: str) -> tuple[int, Any]:
        return await _call(
            gateway,
            tokens,
            ADMIN,
            "POST",
            "signals/manual",
            {
                "requestId": request_id,
                "userId": "trader-1",
                "symbol": "EURUSD",
                "signalType": "SIGNAL_TYPE_BUY",
                "orderType": "ORDER_TYPE_MARKET",
                "referencePrice": 1.085,
                "stopLoss": 1.083,
                "takeProfit": 1.089,
                "positionSizeLots": 1.0,
                "note": note,
            },
        )

    status, body = await inject("at-limit", "ü" * TEXT_LIMIT)
    assert status == 200, body
    status, body = await inject("beyond", "ü" * (TEXT_LIMIT + 1))
    _refused(status, body, "note")
    assert await engine.store.manual_signal("acme", "beyond") is None
