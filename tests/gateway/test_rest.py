"""REST through a real Envoy: the transcoded routes, and errors as JSON."""

from __future__ import annotations

import json

import pytest

from tests.support import Tokens, example_batch_request, http_json_async
from trading_engine import __version__
from trading_engine.app import Application
from trading_engine.gateway.envoy import EnvoyGateway


async def test_health_is_json_through_envoy(engine: Application, gateway: EnvoyGateway) -> None:
    status, body = await http_json_async("GET", f"{gateway.base_url}/api/v1/health")
    assert status == 200
    assert body["status"] == "SERVING_STATUS_SERVING"
    assert body["version"] == __version__
    assert body["uptime"].endswith("s")
    assert {"name": "grpc", "state": "COMPONENT_STATE_UP"}.items() <= body["components"][0].items()


async def test_malformed_json_body_is_a_400_with_a_readable_json_message(
    gateway: EnvoyGateway,
) -> None:
    status, body = await http_json_async(
        "POST",
        f"{gateway.base_url}/api/v1/strategy/update",
        b'{"layer": "STRATEGY_LAYER_USER",',
        {"content-type": "application/json"},
    )
    assert status == 400
    assert body["code"] == 3  # INVALID_ARGUMENT
    assert body["message"] == (
        "the request body is not JSON (RFC 8259): expected a quoted field name at byte 33"
    )


async def test_wrongly_typed_field_is_a_400_naming_the_field(gateway: EnvoyGateway) -> None:
    status, body = await http_json_async(
        "POST",
        f"{gateway.base_url}/api/v1/strategy/update",
        b'{"layer": "STRATEGY_LAYER_NOPE"}',
        {"content-type": "application/json"},
    )
    assert status == 400
    assert body["code"] == 3
    assert body["message"].startswith('layer: invalid value "STRATEGY_LAYER_NOPE"')


async def test_unknown_query_parameter_is_a_400_naming_it(gateway: EnvoyGateway) -> None:
    status, body = await http_json_async("GET", f"{gateway.base_url}/api/v1/health?verbose=1")
    assert status == 400
    assert body["code"] == 3
    assert '"verbose"' in body["message"]


async def test_unknown_route_is_a_404_json(gateway: EnvoyGateway) -> None:
    status, body = await http_json_async("GET", f"{gateway.base_url}/api/v1/nothing-here")
    assert status == 404
    assert body["code"] == 5
    assert "/api/v1/nothing-here" in body["message"]


async def test_engine_status_becomes_http_status_with_error_details(
    gateway: EnvoyGateway, tokens: Tokens
) -> None:
    # An execution result for a signal the engine never sent.
    result = {"executionId": "x-1", "signalId": "nope", "status": "EXECUTION_STATUS_REJECTED"}
    status, body = await http_json_async(
        "POST",
        f"{gateway.base_url}/api/v1/executions",
        json.dumps({"result": result}).encode(),
        headers=tokens.header(),
    )
    assert status == 404
    assert body["code"] == 5  # NOT_FOUND
    assert "no signal 'nope'" in body["message"]
    assert body["details"][0]["@type"] == "type.googleapis.com/google.rpc.ErrorInfo"
    assert body["details"][0]["reason"] == "SIGNAL_NOT_FOUND"


async def test_gateway_answers_unavailable_when_the_engine_is_down(
    engine: Application, gateway: EnvoyGateway
) -> None:
    await engine.stop()
    status, body = await http_json_async("GET", f"{gateway.base_url}/api/v1/health")
    assert status == 503
    assert body["code"] == 14  # UNAVAILABLE
    assert body["message"]


async def test_readme_example_batch_is_decided_through_rest(
    engine: Application, gateway: EnvoyGateway, tokens: Tokens
) -> None:
    status, body = await http_json_async(
        "POST",
        f"{gateway.base_url}/api/v1/predictions:process",
        example_batch_request(),
        {"content-type": "application/json", **tokens.header()},
    )
    assert status == 200, body
    signals = {signal["symbol"]: signal for signal in body["signalBatch"]["signals"]}
    assert list(signals) == ["EURUSD", "USDJPY", "GBPUSD"]
    # The ids are stamped with the time, like the prices: each run is a new batch.
    stamp = body["signalBatch"]["batchId"].removeprefix("batch-")
    assert stamp.endswith("Z")
    assert [s["predictionId"] for s in signals.values()] == [f"pred-{n}-{stamp}" for n in (1, 2, 3)]

    buy = signals["EURUSD"]
    assert (buy["signalType"], buy["disposition"]) == (
        "SIGNAL_TYPE_BUY",
        "SIGNAL_DISPOSITION_ACTIONABLE",
    )
    assert buy["entry"]["stopLoss"] < buy["entry"]["entryPrice"] < buy["entry"]["takeProfit"]

    # USDJPY: a pip is 0.01, so a 20-pip stop sits 0.20 above a sell's entry.
    sell = signals["USDJPY"]
    assert sell["signalType"] == "SIGNAL_TYPE_SELL"
    entry = sell["entry"]
    assert (entry["stopLossPips"], entry["takeProfitPips"]) == (20, 40)
    assert entry["stopLoss"] - entry["entryPrice"] == pytest.approx(0.20)
    assert entry["entryPrice"] - entry["takeProfit"] == pytest.approx(0.40)
    # Both size to risk 1% of the 25,000 USD equity.
    assert buy["entry"]["riskAmount"] == pytest.approx(250, rel=0.01)
    assert entry["riskAmount"] == pytest.approx(250, rel=0.01)

    held = signals["GBPUSD"]
    assert held["reason"] == "DISPOSITION_REASON_CONFIDENCE_BELOW_THRESHOLD"
    assert "entry" not in held
    failed = [step for step in held["decisionTrace"] if step["outcome"] == "RULE_OUTCOME_FAIL"]
    assert [(step["rule"], step["observed"]) for step in failed] == [
        ("DECISION_RULE_CONFIDENCE", 0.42)
    ]


async def test_strategies_over_rest_with_field_violations_as_json(
    gateway: EnvoyGateway, tokens: Tokens
) -> None:
    base, auth = gateway.base_url, tokens.header()
    status, body = await http_json_async(
        "POST",
        f"{base}/api/v1/strategy/update",
        json.dumps(
            {
                "layer": "STRATEGY_LAYER_USER",
                "strategy": {
                    "minConfidenceThreshold": 0.75,
                    "features": {"patternTradingEnabled": False},
                },
                "updateMask": "minConfidenceThreshold,features.patternTradingEnabled",
                "reason": "fewer, surer signals",
            }
        ).encode(),
        {"content-type": "application/json", **auth},
    )
    assert status == 200, body
    version = int(body["version"]["version"])
    assert body["strategy"]["config"]["minConfidenceThreshold"] == 0.75
    assert body["strategy"]["fieldSources"]["features.pattern_trading_enabled"] == (
        "STRATEGY_LAYER_USER"
    )

    status, body = await http_json_async("GET", f"{base}/api/v1/strategy", headers=auth)
    assert status == 200
    assert int(body["strategy"]["userVersion"]) == version

    status, body = await http_json_async(
        "GET", f"{base}/api/v1/strategy/versions?layer=STRATEGY_LAYER_USER", headers=auth
    )
    assert [int(v["version"]) for v in body["versions"]] == [version]

    status, body = await http_json_async(
        "POST",
        f"{base}/api/v1/strategy/update",
        json.dumps(
            {
                "layer": "STRATEGY_LAYER_USER",
                "strategy": {"riskPerTradePercent": 25},
                "updateMask": "riskPerTradePercent",
                "expectedVersion": str(version),
            }
        ).encode(),
        {"content-type": "application/json", **auth},
    )
    assert status == 400
    assert body["code"] == 3
    bad_request = next(d for d in body["details"] if d["@type"].endswith("BadRequest"))
    assert [(v["field"], v["description"]) for v in bad_request["fieldViolations"]] == [
        ("strategy.risk_per_trade_percent", "must be in (0, 10]; got 25")
    ]
