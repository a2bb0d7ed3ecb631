"""REST through a real Envoy: the transcoded routes, and errors as JSON."""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any
from urllib.parse import urlsplit

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


# The most a REST body may hold: what the engine takes in one gRPC message.
MAX_BODY_BYTES = 4 * 1024 * 1024


async def _post_while_reading(url: str, body_size: int, headers: dict[str, str]) -> tuple[int, Any]:
    """POST a batch whose id makes the body `body_size` bytes, reading the answer as it writes.

    A gateway that refuses a body answers before it has all of it and closes the
    connection; a client that only reads once it has written everything (urllib)
    sees the reset instead. curl reads while it writes, as this does.
    """
    head, tail = b'{"batch": {"batchId": "', b'"}}'
    filler = body_size - len(head) - len(tail)
    address = urlsplit(url)
    reader, writer = await asyncio.open_connection(address.hostname, address.port)
    lines = [f"POST {address.path} HTTP/1.1", f"host: {address.netloc}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    lines += ["content-type: application/json", f"content-length: {body_size}", "", ""]

    async def send() -> None:
        with contextlib.suppress(ConnectionError):
            writer.write("\r\n".join(lines).encode() + head)
            chunk = 1024 * 1024
            for start in range(0, filler, chunk):
                writer.write(b"x" * min(chunk, filler - start))
                await writer.drain()
            writer.write(tail)
            await writer.drain()

    sending = asyncio.create_task(send())
    try:
        status_line = await reader.readline()
        response_headers = {}
        while (line := await reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.decode().partition(":")
            response_headers[name.strip().lower()] = value.strip()
        answer = await reader.readexactly(int(response_headers["content-length"]))
    finally:
        sending.cancel()
        writer.close()
    return int(status_line.split()[1]), json.loads(answer)


@pytest.mark.parametrize(
    ("body_size", "status", "code"),
    [
        # Read, transcoded and refused by the engine for what it says (a 4 MiB batch id).
        pytest.param(MAX_BODY_BYTES, 400, 3, id="at-the-limit"),
        pytest.param(MAX_BODY_BYTES + 1, 413, 8, id="one-byte-over"),
        pytest.param(50_000_000, 413, 8, id="50-MB"),
    ],
)
async def test_a_body_over_4_mib_is_a_413_in_the_json_error_shape(
    gateway: EnvoyGateway, tokens: Tokens, body_size: int, status: int, code: int
) -> None:
    answer_status, body = await _post_while_reading(
        f"{gateway.base_url}/api/v1/predictions:process", body_size, tokens.header()
    )
    assert (answer_status, body["code"]) == (status, code)
    assert set(body) >= {"code", "message", "details"}
    if status == 413:
        assert body == {"code": 8, "message": "Payload Too Large", "details": []}


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
