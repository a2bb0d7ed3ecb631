"""The OpenAPI document of the REST routes (envoy/openapi.json) is valid, current, and says what
the contracts say: every annotated route, every bound, which fields have presence."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import pytest
from google.protobuf import descriptor, descriptor_pool
from openapi_spec_validator import validate

from tests.support import ROOT, http_rule
from tools import openapi_document
from tradeflow.common.v1 import limits_pb2
from tradeflow.trading.v1 import strategy_pb2
from tradeflow.trading.v1 import trading_engine_service_pb2 as service_pb2
from trading_engine.gateway.envoy import OPENAPI_DOCUMENT, OPENAPI_ROUTE

SERVICE = service_pb2.DESCRIPTOR.services_by_name["TradingEngineService"]
COMMITTED = ROOT / "envoy" / OPENAPI_DOCUMENT
Field = descriptor.FieldDescriptor


@pytest.fixture(scope="module")
def document() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(COMMITTED.read_text())
    return loaded


def annotated_routes() -> dict[tuple[str, str], str]:
    """(verb, path) → RPC of every google.api.http route of the service."""
    return {
        (rule[0], rule[1]): method.name
        for method in SERVICE.methods
        if (rule := http_rule(method)) is not None
    }


def documented_routes(document: dict[str, Any]) -> dict[tuple[str, str], str]:
    return {
        (verb, path): operation["operationId"]
        for path, item in document["paths"].items()
        for verb, operation in item.items()
    }


def message_schemas(document: dict[str, Any]) -> Iterator[tuple[descriptor.Descriptor, Any]]:
    """Each component schema of a message, with the message's descriptor."""
    pool = descriptor_pool.Default()
    for name, schema in document["components"]["schemas"].items():
        if schema.get("type") == "object":
            yield pool.FindMessageTypeByName(name), schema


def test_the_committed_document_is_the_one_the_contracts_generate(
    document: dict[str, Any],
) -> None:
    fresh = openapi_document.render(openapi_document.descriptor_set(ROOT))
    assert COMMITTED.read_text() == fresh, (
        f"envoy/{OPENAPI_DOCUMENT} is stale: run `make generate` and commit the result"
    )


def test_the_document_is_valid_openapi_3_1(document: dict[str, Any]) -> None:
    validate(document)
    assert document["openapi"] == "3.1.0"


def test_every_annotated_route_is_documented_with_its_rpc(document: dict[str, Any]) -> None:
    routes = annotated_routes()
    assert len(routes) >= 15

    assert documented_routes(document) == {
        **routes,
        ("get", OPENAPI_ROUTE): "GetOpenApiDocument",
    }


def test_only_health_and_the_document_need_no_token(document: dict[str, Any]) -> None:
    assert document["security"] == [{"bearer": []}]
    public = {
        operation["operationId"]
        for item in document["paths"].values()
        for operation in item.values()
        if operation.get("security") == []
    }
    assert public == {"HealthCheck", "GetOpenApiDocument"}


def test_server_streams_answer_an_array_and_every_route_documents_its_errors(
    document: dict[str, Any],
) -> None:
    for (verb, path), rpc in annotated_routes().items():
        method = SERVICE.methods_by_name[rpc]
        operation = document["paths"][path][verb]
        answer = operation["responses"]["200"]["content"]["application/json"]["schema"]
        reference = f"#/components/schemas/{method.output_type.full_name}"
        if method.server_streaming:
            assert answer == {"type": "array", "items": {"$ref": reference}}, rpc
        else:
            assert answer == {"$ref": reference}, rpc
        assert operation["responses"]["default"] == {"$ref": "#/components/responses/Error"}
    error = document["components"]["responses"]["Error"]["content"]["application/json"]
    assert error["schema"] == {"$ref": "#/components/schemas/google.rpc.Status"}


def test_get_routes_take_the_request_fields_as_query_parameters_by_json_name(
    document: dict[str, Any],
) -> None:
    history = document["paths"]["/api/v1/signals/history"]["get"]
    fields = service_pb2.GetSignalHistoryRequest.DESCRIPTOR.fields
    assert [p["name"] for p in history["parameters"]] == [f.json_name for f in fields]
    assert {p["in"] for p in history["parameters"]} == {"query"}
    explain = document["paths"]["/api/v1/signals/{signal_id}:explain"]["get"]
    assert explain["parameters"] == [
        {
            "name": "signal_id",
            "in": "path",
            "required": True,
            "description": "The signal's id; at most 128 characters.",
            "schema": {"type": "string", "maxLength": 128, "default": ""},
        }
    ]


def documented_fields(document: dict[str, Any]) -> Iterator[tuple[Field, Any]]:
    """Each field the document describes, with its schema: message properties, and the
    parameters of the routes that take their request in the path and query string."""
    for message, schema in message_schemas(document):
        for field in message.fields:
            yield field, schema["properties"][field.json_name]
    for (verb, path), rpc in annotated_routes().items():
        fields = SERVICE.methods_by_name[rpc].input_type.fields_by_name
        for parameter in document["paths"][path][verb].get("parameters", []):
            name = parameter["name"]
            field = fields.get(name) or next(f for f in fields.values() if f.json_name == name)
            yield field, parameter["schema"]


def test_every_bound_of_the_contracts_is_a_max_length_or_max_items(
    document: dict[str, Any],
) -> None:
    checked = set()
    for field, documented in documented_fields(document):
        limits = field.GetOptions().Extensions[limits_pb2.limits]
        if not limits.ByteSize() or field.message_type is not None:
            # A FieldMask's bounds count its paths, which its comment states.
            continue
        value = documented
        if field.is_repeated:
            assert documented.get("maxItems") == (limits.max_items or None), field.full_name
            value = documented["items"]
        assert value.get("maxLength") == (limits.max_chars or None), field.full_name
        checked.add(field.full_name)

    routed_requests = [
        SERVICE.methods_by_name[rpc].input_type for rpc in annotated_routes().values()
    ]
    bounded = {
        field.full_name
        for request in routed_requests
        for field in request.fields
        if field.GetOptions().Extensions[limits_pb2.limits].ByteSize()
        and field.message_type is None
    }
    assert bounded <= checked
    assert len(checked) >= 40


def test_fields_with_presence_have_no_default_and_say_that_absent_is_not_zero(
    document: dict[str, Any],
) -> None:
    optional = []
    for message, schema in message_schemas(document):
        for field in message.fields:
            documented = schema["properties"][field.json_name]
            if field.is_repeated:
                assert documented["default"] in ([], {}), field.full_name
            elif field.has_presence:
                assert "default" not in documented, field.full_name
                if field.message_type is None and "One of" not in documented["description"]:
                    assert "not the same as sending" in documented["description"]
                    optional.append(field.full_name)
            else:
                assert "default" in documented, field.full_name
    # proto3 `optional` fields of requests and responses alike.
    assert {
        "tradeflow.ml.v1.Prediction.volume_confirmation",
        "tradeflow.trading.v1.TradingSignal.pattern_score",
    } <= set(optional)


@pytest.mark.parametrize(
    ("message", "field", "schema"),
    [
        # 64-bit integers are decimal strings, 32-bit ones numbers; an optional one has no
        # default (absent is not zero).
        (
            "tradeflow.trading.v1.UpdateStrategyRequest",
            "expectedVersion",
            {"type": "string", "format": "int64", "pattern": "^-?[0-9]+$"},
        ),
        (
            "tradeflow.trading.v1.ReplaySignalsRequest",
            "maxDifferences",
            {"type": "integer", "format": "int32", "default": 0},
        ),
        (
            "tradeflow.trading.v1.TradingSignalBatch",
            "actionableCount",
            {"type": "integer", "minimum": 0, "maximum": 2**32 - 1, "default": 0},
        ),
        ("tradeflow.trading.v1.TradingSignalBatch", "decidedAt", {"type": "string"}),
        ("tradeflow.trading.v1.HealthCheckResponse", "uptime", {"type": "string"}),
        ("tradeflow.trading.v1.UpdateStrategyRequest", "updateMask", {"type": "string"}),
        (
            "tradeflow.trading.v1.UpdateStrategyRequest",
            "layer",
            {
                "$ref": "#/components/schemas/tradeflow.trading.v1.StrategyLayer",
                "default": "STRATEGY_LAYER_UNSPECIFIED",
            },
        ),
    ],
)
def test_json_mapping_of_envoys_transcoder(
    document: dict[str, Any], message: str, field: str, schema: dict[str, Any]
) -> None:
    documented = document["components"]["schemas"][message]["properties"][field]
    assert schema.items() <= documented.items()


def test_well_known_types_have_their_json_forms(document: dict[str, Any]) -> None:
    properties = document["components"]["schemas"]["tradeflow.trading.v1.HealthCheckResponse"][
        "properties"
    ]
    assert properties["startedAt"]["format"] == "date-time"
    assert properties["uptime"]["pattern"] == r"^-?[0-9]+(\.[0-9]{1,9})?s$"
    assert (
        "comma"
        in (
            document["components"]["schemas"]["tradeflow.trading.v1.UpdateStrategyRequest"][
                "properties"
            ]["updateMask"]["description"]
        )
    )


def test_enums_list_their_value_names_with_the_contracts_comments(
    document: dict[str, Any],
) -> None:
    layer = document["components"]["schemas"]["tradeflow.trading.v1.StrategyLayer"]
    assert layer["type"] == "string"
    assert layer["enum"] == [value.name for value in strategy_pb2.StrategyLayer.DESCRIPTOR.values]
    assert "- `STRATEGY_LAYER_USER`: " in layer["description"]


def test_descriptions_come_from_the_proto_comments(document: dict[str, Any]) -> None:
    operation = document["paths"]["/api/v1/trading-state"]["post"]
    assert operation["description"] == (
        "Sets the trading state of a user or of the whole company (company admins only)."
    )
    reason = document["components"]["schemas"]["tradeflow.trading.v1.SetTradingStateRequest"][
        "properties"
    ]["reason"]
    assert reason["description"].startswith("Why; required, kept with the state")


def test_the_readme_lists_every_documented_route(document: dict[str, Any]) -> None:
    section = (ROOT / "README.md").read_text().split("## REST routes", 1)[1].split("\n## ", 1)[0]
    listed = {
        (verb.lower(), path)
        for verb, path in re.findall(
            r"^\| (GET|POST|PUT|PATCH|DELETE) \| `([^`]+)` \|", section, re.M
        )
    }
    assert listed == set(documented_routes(document))


def test_every_message_names_the_fields_a_body_may_use_in_either_spelling(
    document: dict[str, Any],
) -> None:
    # The gateway refuses any other name (decision 24), and accepts proto names too.
    for message, schema in message_schemas(document):
        allowed = set(schema["propertyNames"]["enum"])
        assert allowed == {
            name for field in message.fields for name in (field.json_name, field.name)
        }, message.full_name
