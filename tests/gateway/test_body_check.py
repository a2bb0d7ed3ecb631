"""REST bodies are checked field by field before the transcoder, which drops what it does not
know (decision 24): a misspelt field is a 400 naming it, and nothing reaches the engine."""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from google.api import annotations_pb2, http_pb2
from google.protobuf import descriptor_pb2

from tests.support import ADMIN, TRADER, Tokens, example_batch_request, http_json_async, http_text
from tradeflow.trading.v1 import strategy_pb2
from tradeflow.trading.v1 import trading_engine_service_pb2 as service_pb2
from tradeflow.trading.v1 import trading_engine_service_pb2_grpc as service_grpc
from trading_engine.app import Application
from trading_engine.config import GatewaySettings
from trading_engine.devstack.brokers import free_port
from trading_engine.devstack.demo import set_up_demo_strategies
from trading_engine.gateway.envoy import DESCRIPTOR_SET, EnvoyGateway
from trading_engine.tenancy import Caller

JSON = {"content-type": "application/json"}
UNKNOWN_FIELD = {
    "@type": "type.googleapis.com/google.rpc.ErrorInfo",
    "reason": "UNKNOWN_FIELD",
    "domain": "trading-engine.tradeflow",
}


async def _post(
    gateway: EnvoyGateway, tokens: Tokens, path: str, body: object, caller: Caller = TRADER
) -> tuple[int, Any]:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    return await http_json_async(
        "POST", f"{gateway.base_url}{path}", data, {**JSON, **tokens.header(caller)}
    )


async def _get(
    gateway: EnvoyGateway, tokens: Tokens, path: str, caller: Caller = TRADER
) -> dict[str, Any]:
    status, body = await http_json_async(
        "GET", f"{gateway.base_url}{path}", headers=tokens.header(caller)
    )
    assert status == 200, body
    assert isinstance(body, dict)
    return body


def _violations(body: dict[str, Any]) -> dict[str, str]:
    bad_request = next(d for d in body["details"] if d["@type"].endswith("BadRequest"))
    return {v["field"]: v["description"] for v in bad_request["fieldViolations"]}


def _requests_to_engine(gateway: EnvoyGateway) -> int:
    """Requests Envoy has sent to the engine so far, from its admin statistics."""
    stats = http_text(
        f"http://127.0.0.1:{gateway.settings.envoy_admin_port}/stats"
        "?filter=^cluster.engine.upstream_rq_total$"
    )
    match = re.search(r"upstream_rq_total: (\d+)", stats)
    return int(match.group(1)) if match else 0


async def test_a_misspelt_user_id_is_refused_and_halts_nobody(
    engine: Application, gateway: EnvoyGateway, tokens: Tokens
) -> None:
    await _get(gateway, tokens, "/api/v1/strategy")  # the engine now knows trader-1
    status, body = await _post(
        gateway,
        tokens,
        "/api/v1/trading-state",
        {"usr_id": "trader-1", "state": "TRADING_STATE_HALTED", "reason": "desk closed"},
        ADMIN,
    )
    assert status == 400, body
    assert body["code"] == 3
    assert '"usr_id"' in body["message"]
    assert body["details"][0] == UNKNOWN_FIELD
    assert _violations(body) == {
        "usr_id": 'unknown field of SetTradingStateRequest; did you mean "user_id"?'
    }
    state = await _get(gateway, tokens, "/api/v1/trading-state?user_id=trader-1", ADMIN)
    assert state["effectiveState"] == "TRADING_STATE_ACTIVE"
    assert "companySetting" not in state
    assert "userSetting" not in state


async def test_a_misspelt_threshold_named_in_the_mask_is_refused_and_changes_nothing(
    engine: Application, gateway: EnvoyGateway, tokens: Tokens
) -> None:
    await set_up_demo_strategies(engine.strategies)
    before = (await _get(gateway, tokens, "/api/v1/strategy"))["strategy"]
    status, body = await _post(
        gateway,
        tokens,
        "/api/v1/strategy/update",
        {
            "layer": "STRATEGY_LAYER_USER",
            "strategy": {"minConfidenceTreshold": 0.8},
            "updateMask": "minConfidenceThreshold",
            "reason": "fewer, surer signals",
        },
    )
    assert status == 400, body
    assert _violations(body) == {
        "strategy.minConfidenceTreshold": (
            'unknown field of StrategyConfig; did you mean "minConfidenceThreshold"?'
        )
    }
    after = (await _get(gateway, tokens, "/api/v1/strategy"))["strategy"]
    assert after == before
    assert after["config"]["minConfidenceThreshold"] == 0.7


async def test_a_mask_naming_a_field_not_sent_is_refused_by_the_engine(
    gateway: EnvoyGateway, tokens: Tokens
) -> None:
    # Spelt right but left out: the gateway lets it through, the engine will not read a zero.
    status, body = await _post(
        gateway,
        tokens,
        "/api/v1/strategy/update",
        {
            "layer": "STRATEGY_LAYER_USER",
            "strategy": {"stopLossPips": 25},
            "updateMask": "stopLossPips,minConfidenceThreshold",
        },
    )
    assert status == 400, body
    assert set(_violations(body)) == {"strategy.min_confidence_threshold"}
    after = (await _get(gateway, tokens, "/api/v1/strategy"))["strategy"]
    assert after["config"]["stopLossPips"] == 20
    assert after["userVersion"] == "0"


async def test_the_guides_update_without_expected_version_runs_again_and_again(
    engine: Application, gateway: EnvoyGateway, tokens: Tokens
) -> None:
    # `make run` has written revision 1 of trader-1's layer before the user types anything.
    await set_up_demo_strategies(engine.strategies)
    update = {
        "layer": "STRATEGY_LAYER_USER",
        "strategy": {"minConfidenceThreshold": 0.75},
        "updateMask": "minConfidenceThreshold",
        "reason": "fewer, surer signals",
    }
    versions = []
    for _ in range(2):
        status, body = await _post(gateway, tokens, "/api/v1/strategy/update", update)
        assert status == 200, body
        versions.append(int(body["version"]["version"]))
        assert body["strategy"]["config"]["minConfidenceThreshold"] == 0.75
        # The demo's 20-second duplicate window is still there: only the threshold changed.
        assert body["strategy"]["config"]["duplicateWindow"] == "20s"
    assert 1 < versions[0] < versions[1]


async def test_a_zero_sent_over_rest_is_a_value_and_fields_not_sent_keep_theirs(
    gateway: EnvoyGateway, tokens: Tokens
) -> None:
    status, body = await _post(
        gateway,
        tokens,
        "/api/v1/strategy/update",
        {"layer": "STRATEGY_LAYER_USER", "strategy": {"limitOrderDiscountPips": 0}},
    )
    assert status == 200, body
    assert body["version"]["changedFields"] == ["limit_order_discount_pips"]
    strategy = body["strategy"]
    assert strategy["config"]["limitOrderDiscountPips"] == 0
    assert strategy["fieldSources"]["limit_order_discount_pips"] == "STRATEGY_LAYER_USER"
    assert strategy["config"]["limitOrderPremiumPips"] == 2
    assert strategy["fieldSources"]["limit_order_premium_pips"] == "STRATEGY_LAYER_TIER_DEFAULT"


def _batch_with(**changes: object) -> dict[str, Any]:
    batch: dict[str, Any] = json.loads(example_batch_request())
    batch["batch"]["predictions"][2].update(changes)
    return batch


@pytest.mark.parametrize(
    ("path", "body", "caller", "field", "description"),
    [
        pytest.param(
            "/api/v1/predictions:process",
            _batch_with(confidnce=0.9),
            TRADER,
            "batch.predictions[2].confidnce",
            'unknown field of Prediction; did you mean "confidence"?',
            id="prediction",
        ),
        pytest.param(
            "/api/v1/predictions:process",
            _batch_with(votes=[{"modelId": "m1", "weigth": 2}]),
            TRADER,
            "batch.predictions[2].votes[0].weigth",
            'unknown field of ModelVote; did you mean "weight"?',
            id="vote",
        ),
        pytest.param(
            "/api/v1/strategy/update",
            {
                "layer": "STRATEGY_LAYER_USER",
                "strategy": {"features": {"patternTrading": False}},
            },
            TRADER,
            "strategy.features.patternTrading",
            'unknown field of TierFeatures; did you mean "patternTradingEnabled"?',
            id="feature flag",
        ),
        pytest.param(
            "/api/v1/strategy:reset",
            {"layer": "STRATEGY_LAYER_USER", "toVersoin": 0},
            TRADER,
            "toVersoin",
            'unknown field of ResetStrategyRequest; did you mean "toVersion"?',
            id="reset",
        ),
        pytest.param(
            "/api/v1/signals/manual",
            {"requestId": "m-1", "userId": "trader-1", "symbol": "EURUSD", "stopLos": 1.08},
            ADMIN,
            "stopLos",
            'unknown field of InjectManualSignalRequest; did you mean "stopLoss"?',
            id="manual signal",
        ),
        pytest.param(
            "/api/v1/executions",
            {"result": {"executionID": "x-1", "signalId": "s-1"}},
            TRADER,
            "result.executionID",
            'unknown field of ExecutionResult; did you mean "executionId"?',
            id="execution",
        ),
        pytest.param(
            "/api/v1/trading-state",
            {"scope": "TRADING_STATE_SCOPE_COMPANY", "stat": "TRADING_STATE_HALTED"},
            ADMIN,
            "stat",
            'unknown field of SetTradingStateRequest; did you mean "state"?',
            id="trading state",
        ),
        pytest.param(
            "/api/v1/signals:replay",
            {"candidate": {"min_confidence_treshold": 0.75}},
            TRADER,
            "candidate.min_confidence_treshold",
            'unknown field of StrategyConfig; did you mean "min_confidence_threshold"?',
            id="replay candidate, proto names",
        ),
    ],
)
async def test_a_misspelt_field_at_any_depth_never_reaches_the_engine(
    gateway: EnvoyGateway,
    tokens: Tokens,
    path: str,
    body: object,
    caller: Caller,
    field: str,
    description: str,
) -> None:
    sent_before = _requests_to_engine(gateway)
    status, answer = await _post(gateway, tokens, path, body, caller)
    assert status == 400, answer
    assert answer["details"][0] == UNKNOWN_FIELD
    assert _violations(answer) == {field: description}
    assert _requests_to_engine(gateway) == sent_before


async def test_every_unknown_field_is_named_at_once(gateway: EnvoyGateway, tokens: Tokens) -> None:
    status, body = await _post(
        gateway,
        tokens,
        "/api/v1/strategy/update",
        {"layr": "STRATEGY_LAYER_USER", "strategy": {"stopLossPip": 25, "zzz": 1}},
    )
    assert status == 400, body
    assert list(_violations(body)) == ["layr", "strategy.stopLossPip", "strategy.zzz"]
    assert body["message"] == (
        "the request body names fields unknown to UpdateStrategyRequest, so nothing was done: "
        '"layr", "strategy.stopLossPip", "strategy.zzz"'
    )


async def test_every_way_the_contract_spells_a_field_is_accepted(
    gateway: EnvoyGateway, tokens: Tokens
) -> None:
    # Proto names, JSON names, an escaped key, null and nested arrays: all fields that exist.
    body = (
        b'{"layer": "STRATEGY_LAYER_USER", "user_id": "", "str\\u0061tegy": '
        b'{"stop_loss_pips": 25, "takeProfitPips": 50, "maxPositionCount": null, '
        b'"availableInstruments": ["EURUSD", "GBPUSD"], "features": {}}, "reason": "a \\"b\\""}'
    )
    status, answer = await _post(gateway, tokens, "/api/v1/strategy/update", body)
    assert status == 200, answer
    assert answer["version"]["changedFields"] == [
        "stop_loss_pips",
        "take_profit_pips",
        "available_instruments",
    ]


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        # The transcoder reads unquoted keys and single quotes; a misspelling there would
        # pass unseen, so the gateway takes strict JSON only.
        (b"{layr: 'STRATEGY_LAYER_USER'}", "expected a quoted field name at byte 2"),
        (b'{"layer": "STRATEGY_LAYER_USER",}', "expected a quoted field name at byte 33"),
        (b'{"layer": "STRATEGY_LAYER_USER",', "expected a quoted field name at byte 33"),
        (b'["layer"]', "expected a JSON object at byte 1"),
        (b'{"layer": "STRATEGY_LAYER_USER"} {}', "unexpected text after the JSON object"),
    ],
)
async def test_a_body_that_is_not_strict_json_is_refused(
    gateway: EnvoyGateway, tokens: Tokens, body: bytes, problem: str
) -> None:
    sent_before = _requests_to_engine(gateway)
    status, answer = await _post(gateway, tokens, "/api/v1/strategy/update", body)
    assert status == 400, answer
    assert answer["code"] == 3
    assert answer["message"].startswith("the request body is not JSON (RFC 8259): ")
    assert problem in answer["message"]
    assert answer["details"] == [{**UNKNOWN_FIELD, "reason": "MALFORMED_JSON"}]
    assert _requests_to_engine(gateway) == sent_before


async def test_grpc_through_the_gateway_is_not_checked(
    gateway: EnvoyGateway, tokens: Tokens
) -> None:
    address = f"{gateway.settings.http_host}:{gateway.settings.http_port}"
    async with tokens.channel(address) as channel:
        stub = service_grpc.TradingEngineServiceStub(channel)
        changed = await stub.UpdateStrategy(
            service_pb2.UpdateStrategyRequest(
                layer=strategy_pb2.STRATEGY_LAYER_USER,
                strategy=strategy_pb2.StrategyConfig(stop_loss_pips=25.0),
            )
        )
    assert changed.strategy.config.stop_loss_pips == 25.0


# --- The check follows the descriptor set: maps and path variables too ---------------------


def _labels_service() -> descriptor_pb2.FileDescriptorProto:
    """A service the engine does not have: POST /v1/items/{item_id}:tag with a map of labels."""
    file = descriptor_pb2.FileDescriptorProto(
        name="labels/v1/labels.proto",
        package="labels.v1",
        syntax="proto3",
        dependency=["google/api/annotations.proto"],
    )
    label = file.message_type.add(name="Label")
    label.field.add(name="name", json_name="name", number=1, type=9, label=1)
    request = file.message_type.add(name="TagRequest")
    request.field.add(name="item_id", json_name="itemId", number=1, type=9, label=1)
    request.field.add(
        name="labels",
        json_name="labels",
        number=2,
        type=11,
        label=3,
        type_name=".labels.v1.TagRequest.LabelsEntry",
    )
    entry = request.nested_type.add(name="LabelsEntry")
    entry.options.map_entry = True
    entry.field.add(name="key", json_name="key", number=1, type=9, label=1)
    entry.field.add(
        name="value", json_name="value", number=2, type=11, label=1, type_name=".labels.v1.Label"
    )
    service = file.service.add(name="Labels")
    method = service.method.add(
        name="Tag", input_type=".labels.v1.TagRequest", output_type=".labels.v1.Label"
    )
    method.options.Extensions[annotations_pb2.http].CopyFrom(  # type: ignore[index]  # stubs lack extension typing
        http_pb2.HttpRule(post="/v1/items/{item_id}:tag", body="*")
    )
    return file


@pytest.fixture
async def labels_gateway(tmp_path: Path) -> AsyncIterator[EnvoyGateway]:
    """The gateway with the labels service added to the descriptor set (no engine behind it)."""
    envoy_dir = GatewaySettings().envoy_dir
    for name in ("envoy.yaml", "rest_fields.lua", "openapi.json"):
        shutil.copy(envoy_dir / name, tmp_path / name)
    files = descriptor_pb2.FileDescriptorSet.FromString((envoy_dir / DESCRIPTOR_SET).read_bytes())
    files.file.append(_labels_service())
    (tmp_path / DESCRIPTOR_SET).write_bytes(files.SerializeToString())
    gateway = EnvoyGateway(
        GatewaySettings(
            envoy_dir=tmp_path,
            http_port=free_port(),
            envoy_admin_port=free_port(),
            upstream_port=free_port(),
        )
    )
    await gateway.start()
    yield gateway
    await gateway.stop()


async def test_map_values_and_templated_paths_are_checked(labels_gateway: EnvoyGateway) -> None:
    url = f"{labels_gateway.base_url}/v1/items/item-7:tag"
    status, body = await http_json_async(
        "POST", url, b'{"labels": {"colour": {"name": "red"}, "size": {"nmae": "L"}}}', JSON
    )
    assert status == 400, body
    assert _violations(body) == {
        'labels["size"].nmae': 'unknown field of Label; did you mean "name"?'
    }
    # Known fields pass the check; the transcoder, which does not serve this service, answers.
    status, body = await http_json_async(
        "POST", url, b'{"labels": {"colour": {"name": "red"}}}', JSON
    )
    assert status == 404, body


@pytest.mark.parametrize(("size", "status"), [(4 * 1024 * 1024, 400), (4 * 1024 * 1024 + 1, 413)])
async def test_the_check_reads_bodies_up_to_the_transcoders_4_mib(
    gateway: EnvoyGateway, tokens: Tokens, size: int, status: int
) -> None:
    # A batch without its tenant, padded with trailing spaces: at 4 MiB the engine refuses it
    # (so it got there); a byte more and the gateway answers 413, as the transcoder did alone.
    body = b'{"batch": {"batchId": "b-big", "predictions": []}}'
    sent_before = _requests_to_engine(gateway)
    answered, answer = await _post(gateway, tokens, "/api/v1/predictions:process", body.ljust(size))
    assert answered == status, answer
    if status == 400:
        assert "batch.user_context" in answer["message"]
        assert _requests_to_engine(gateway) == sent_before + 1
    else:
        assert answer["code"] == 8  # RESOURCE_EXHAUSTED
        assert _requests_to_engine(gateway) == sent_before
