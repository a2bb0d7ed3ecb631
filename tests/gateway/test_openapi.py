"""The OpenAPI document through a real Envoy: served without a token, valid, naming every route
the contracts annotate; and it agrees with the gateway: real answers fit its schemas, bodies it
refuses the gateway refuses, and its bounds are where the engine says no."""

from __future__ import annotations

import asyncio
import json
import shutil
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from openapi_schema_validator import OAS31Validator, oas31_format_checker
from openapi_spec_validator import validate as validate_document

from tests.support import ADMIN, ROOT, TRADER, Tokens, example_batch_request, http_json, http_rule
from tradeflow.trading.v1 import trading_engine_service_pb2 as service_pb2
from trading_engine.app import Application
from trading_engine.config import GatewaySettings
from trading_engine.gateway.envoy import (
    CONFIG_TEMPLATE,
    DESCRIPTOR_SET,
    OPENAPI_DOCUMENT,
    OPENAPI_ROUTE,
    EnvoyGateway,
    render_config,
)
from trading_engine.tenancy import Caller

SERVICE = service_pb2.DESCRIPTOR.services_by_name["TradingEngineService"]
Document = dict[str, Any]


@pytest.fixture(scope="module")
def document() -> Document:
    loaded: Document = json.loads((ROOT / "envoy" / OPENAPI_DOCUMENT).read_text())
    return loaded


def _fetch(url: str, method: str = "GET") -> tuple[int, str, bytes]:
    """Status, content type and body of one request without a token."""
    try:
        with urllib.request.urlopen(urllib.request.Request(url, method=method), timeout=10) as r:
            return r.status, r.headers.get("content-type", ""), r.read()
    except urllib.error.HTTPError as error:
        with error:
            return error.code, error.headers.get("content-type", ""), error.read()


def _schema_validator(document: Document, schema: dict[str, Any]) -> OAS31Validator:
    """A validator for `schema`, resolving the document's `#/components/...` references."""
    return OAS31Validator(
        {**schema, "components": document["components"]}, format_checker=oas31_format_checker
    )


def _answer_schema(document: Document, verb: str, path: str, status: int) -> dict[str, Any]:
    responses = document["paths"][path][verb]["responses"]
    if status == 200:
        schema: dict[str, Any] = responses["200"]["content"]["application/json"]["schema"]
        return schema
    assert responses["default"] == {"$ref": "#/components/responses/Error"}
    error: dict[str, Any] = document["components"]["responses"]["Error"]["content"]
    return dict(error["application/json"]["schema"])


def _body_schema(document: Document, verb: str, path: str) -> dict[str, Any]:
    body: dict[str, Any] = document["paths"][path][verb]["requestBody"]["content"]
    return dict(body["application/json"]["schema"])


def _component(document: Document, schema: dict[str, Any]) -> dict[str, Any]:
    name = schema["$ref"].removeprefix("#/components/schemas/")
    component: dict[str, Any] = document["components"]["schemas"][name]
    return component


class _Rest:
    """Calls through the gateway, each answer checked against the document's schema."""

    def __init__(self, gateway: EnvoyGateway, tokens: Tokens, document: Document) -> None:
        self.gateway, self.tokens, self.document = gateway, tokens, document

    async def call(
        self,
        verb: str,
        route: str,
        query: str = "",
        body: Any = None,
        caller: Caller | None = TRADER,
        path: str | None = None,
    ) -> tuple[int, Any]:
        """Send one request to `route` (a path of the document; `path` when it has variables)."""
        headers = {"content-type": "application/json"}
        if caller is not None:
            headers.update(self.tokens.header(caller))
        status, answer = await asyncio.to_thread(
            http_json,
            verb.upper(),
            f"{self.gateway.base_url}{path or route}{query}",
            None if body is None else json.dumps(body).encode(),
            headers,
        )
        schema = _answer_schema(self.document, verb, route, status)
        _schema_validator(self.document, schema).validate(answer)
        return status, answer


def _always_printed_fields_are_there(document: Document, schema: dict[str, Any], value: Any) -> int:
    """Check that every field the schema gives a default (a field without presence) is in
    `value` and its nested messages; return how many were checked."""
    if "$ref" in schema and schema["$ref"].startswith("#/components/schemas/"):
        schema = _component(document, schema)
    checked = 0
    if schema.get("type") == "array":
        for element in value:
            checked += _always_printed_fields_are_there(document, schema["items"], element)
    elif schema.get("type") == "object" and "properties" in schema:
        for name, field in schema["properties"].items():
            if "default" in field:
                assert name in value, f"{name} is missing from {value}"
                checked += 1
            if name in value:
                checked += _always_printed_fields_are_there(document, field, value[name])
    return checked


async def test_the_gateway_serves_the_document_without_a_token(
    gateway: EnvoyGateway, document: Document
) -> None:
    status, content_type, body = await asyncio.to_thread(
        _fetch, f"{gateway.base_url}{OPENAPI_ROUTE}"
    )

    assert status == 200
    assert content_type == "application/json"
    served = json.loads(body)
    assert served == document
    validate_document(served)
    annotated = {
        (rule[0], rule[1]) for method in SERVICE.methods if (rule := http_rule(method)) is not None
    }
    documented = {(verb, path) for path, item in served["paths"].items() for verb in item}
    assert documented == annotated | {("get", OPENAPI_ROUTE)}
    assert len(annotated) >= 15

    # Only GET: anything else goes to the transcoder, which knows no such method.
    status, content_type, body = await asyncio.to_thread(
        _fetch, f"{gateway.base_url}{OPENAPI_ROUTE}", "POST"
    )
    assert status == 404
    assert json.loads(body)["code"] == 5


async def test_answers_of_the_gateway_fit_the_documented_schemas(
    engine: Application, gateway: EnvoyGateway, tokens: Tokens, document: Document
) -> None:
    rest = _Rest(gateway, tokens, document)

    status, decided = await rest.call(
        "post", "/api/v1/predictions:process", body=json.loads(example_batch_request())
    )
    assert status == 200, decided
    assert len(decided["signalBatch"]["signals"]) == 3
    signal_id = decided["signalBatch"]["signals"][0]["signalId"]
    status, explained = await rest.call(
        "get",
        "/api/v1/signals/{signal_id}:explain",
        path=f"/api/v1/signals/{signal_id}:explain",
    )
    assert status == 200, explained
    assert explained["signal"]["signalId"] == signal_id

    await asyncio.sleep(0.2)  # the history writer flushes every 50 ms in tests
    status, history = await rest.call(
        "get", "/api/v1/signals/history", "?includeNonActionable=true"
    )
    assert status == 200, history
    assert sum(len(page["signals"]) for page in history) == 3

    status, updated = await rest.call(
        "post",
        "/api/v1/strategy/update",
        body={
            "layer": "STRATEGY_LAYER_USER",
            "strategy": {"minConfidenceThreshold": 0.75},
            "updateMask": "minConfidenceThreshold",
            "reason": "fewer, surer signals",
        },
    )
    assert status == 200, updated
    status, halted = await rest.call(
        "post",
        "/api/v1/trading-state",
        body={"userId": "trader-1", "state": "TRADING_STATE_HALTED", "reason": "test"},
        caller=ADMIN,
    )
    assert status == 200, halted
    for route, query in [
        ("/api/v1/strategy", ""),
        ("/api/v1/strategy/versions", "?layer=STRATEGY_LAYER_USER"),
        ("/api/v1/trading-state", ""),
        ("/api/v1/performance/summary", ""),
        ("/api/v1/performance/analysis", ""),
        ("/api/v1/strategy/performance", ""),
    ]:
        status, answer = await rest.call("get", route, query)
        assert status == 200, (route, answer)
    status, health = await rest.call("get", "/api/v1/health", caller=None)
    assert status == 200, health

    # Errors, from the engine and from Envoy itself, fit google.rpc.Status.
    status, missing = await rest.call(
        "get", "/api/v1/signals/{signal_id}:explain", path="/api/v1/signals/nope:explain"
    )
    assert status == 404
    assert missing["details"][0]["reason"] == "SIGNAL_NOT_FOUND"
    status, unknown = await rest.call("get", "/api/v1/health", "?verbose=1", caller=None)
    assert status == 400
    assert unknown["code"] == 3


async def test_fields_without_presence_are_always_in_answers_and_optional_ones_only_when_set(
    engine: Application, gateway: EnvoyGateway, tokens: Tokens, document: Document
) -> None:
    rest = _Rest(gateway, tokens, document)
    route = "/api/v1/predictions:process"
    status, decided = await rest.call("post", route, body=json.loads(example_batch_request()))
    assert status == 200, decided

    checked = _always_printed_fields_are_there(
        document, _answer_schema(document, "post", route, 200), decided
    )
    assert checked > 100
    # `patternScore` is optional: the example's predictions carry no patterns, so no signal
    # has one, where a field without presence would show 0.
    signal = _component(
        document, {"$ref": "#/components/schemas/tradeflow.trading.v1.TradingSignal"}
    )
    assert "default" not in signal["properties"]["patternScore"]
    assert [s for s in decided["signalBatch"]["signals"] if "patternScore" in s] == []


async def test_bodies_the_document_refuses_the_gateway_refuses(
    engine: Application, gateway: EnvoyGateway, tokens: Tokens, document: Document
) -> None:
    rest = _Rest(gateway, tokens, document)
    accepted = json.loads(example_batch_request())
    route = "/api/v1/predictions:process"
    _schema_validator(document, _body_schema(document, "post", route)).validate(accepted)
    status, _ = await rest.call("post", route, body=accepted)
    assert status == 200

    refused: list[tuple[str, dict[str, Any], Caller]] = [
        # An enum value the document does not list.
        (
            "/api/v1/trading-state",
            {"userId": "trader-1", "state": "TRADING_STATE_PAUSED", "reason": "r"},
            ADMIN,
        ),
        # A 64-bit integer that is not a decimal string.
        (
            "/api/v1/strategy:reset",
            {"layer": "STRATEGY_LAYER_USER", "expectedVersion": "one", "reason": "r"},
            TRADER,
        ),
        # A duration without its "s" suffix.
        (
            "/api/v1/signals/manual",
            {"requestId": "m-1", "userId": "trader-1", "validity": "5m"},
            ADMIN,
        ),
        # A timestamp that is not RFC 3339.
        ("/api/v1/signals:replay", {"startTime": "yesterday"}, TRADER),
    ]
    for route, body, caller in refused:
        assert not _schema_validator(document, _body_schema(document, "post", route)).is_valid(body)
        status, answer = await rest.call("post", route, body=body, caller=caller)
        assert status == 400, (route, answer)
        assert answer["code"] == 3


async def test_the_documented_bounds_are_where_the_engine_refuses(
    engine: Application, gateway: EnvoyGateway, tokens: Tokens, document: Document
) -> None:
    rest = _Rest(gateway, tokens, document)
    # The trader uses the engine, so an admin may set their trading state.
    status, _ = await rest.call(
        "post", "/api/v1/predictions:process", body=json.loads(example_batch_request())
    )
    assert status == 200

    # A body field: SetTradingState's reason.
    route = "/api/v1/trading-state"
    request = _component(document, _body_schema(document, "post", route))
    most = request["properties"]["reason"]["maxLength"]

    async def halt(reason: str) -> tuple[int, Any]:
        body = {"userId": "trader-1", "state": "TRADING_STATE_HALTED", "reason": reason}
        return await rest.call("post", route, body=body, caller=ADMIN)

    status, answer = await halt("€" * most)
    assert status == 200, answer
    status, answer = await halt("€" * (most + 1))
    assert status == 400
    assert "reason" in _violations(answer)

    # A repeated query parameter: the history's symbols, by count and by length.
    route = "/api/v1/signals/history"
    symbols = next(
        p for p in document["paths"][route]["get"]["parameters"] if p["name"] == "symbols"
    )["schema"]
    count, length = symbols["maxItems"], symbols["items"]["maxLength"]

    def query(*names: str) -> str:
        return "?" + "&".join(f"symbols={name}" for name in names)

    status, answer = await rest.call("get", route, query(*("X" * length for _ in range(count))))
    assert status == 200, answer
    status, answer = await rest.call("get", route, query(*("X" for _ in range(count + 1))))
    assert status == 400
    assert "symbols" in _violations(answer)
    status, answer = await rest.call("get", route, query("X" * (length + 1)))
    assert status == 400
    assert "symbols[0]" in _violations(answer)

    # A path variable: at its bound the signal is merely unknown; beyond it, refused.
    route = "/api/v1/signals/{signal_id}:explain"
    (signal_id,) = document["paths"][route]["get"]["parameters"]
    most = signal_id["schema"]["maxLength"]
    status, answer = await rest.call("get", route, path=f"/api/v1/signals/{'s' * most}:explain")
    assert status == 404, answer
    status, answer = await rest.call(
        "get", route, path=f"/api/v1/signals/{'s' * (most + 1)}:explain"
    )
    assert status == 400
    assert "signal_id" in _violations(answer)


def _violations(answer: Any) -> dict[str, str]:
    bad_request = next(d for d in answer["details"] if d["@type"].endswith("BadRequest"))
    return {v["field"]: v["description"] for v in bad_request["fieldViolations"]}


def test_a_gateway_folder_without_the_document_is_refused_naming_it(tmp_path: Path) -> None:
    for name in (CONFIG_TEMPLATE, DESCRIPTOR_SET, "rest_fields.lua"):
        shutil.copy(ROOT / "envoy" / name, tmp_path / name)

    with pytest.raises(
        FileNotFoundError, match=f"{OPENAPI_DOCUMENT} is missing; run `make generate`"
    ):
        render_config(GatewaySettings(envoy_dir=tmp_path))
