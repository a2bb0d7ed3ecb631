"""The contracts carry the names other services depend on (DESIGN.md, pinned names)."""

from __future__ import annotations

import pytest
from google.protobuf import descriptor
from google.protobuf.message import Message

from tests.support import http_rule
from tradeflow.common.v1 import envelope_pb2, tier_pb2
from tradeflow.ml.v1 import prediction_pb2
from tradeflow.risk.v1 import risk_service_pb2
from tradeflow.trading.v1 import signal_pb2, strategy_pb2, trading_engine_service_pb2

ENGINE = trading_engine_service_pb2.DESCRIPTOR.services_by_name["TradingEngineService"]

# (client streaming, server streaming) for every RPC the contract promises.
RPC_KINDS = {
    "ProcessPredictions": (True, True),
    "StreamSignals": (True, True),
    "ManageStrategies": (True, True),
    "StreamAnalytics": (True, True),
    "GetSignalHistory": (False, True),
    "GetStrategyPerformance": (False, True),
    "UpdateStrategy": (False, False),
    "GetStrategy": (False, False),
    "InjectManualSignal": (False, False),
    "AnalyzeSignalPerformance": (False, False),
    "GetPerformanceSummary": (False, False),
    "HealthCheck": (False, False),
    "ProcessPredictionBatch": (False, False),
    "ListStrategyVersions": (False, False),
    "ResetStrategy": (False, False),
    "RecordExecutionResult": (False, False),
    "ExplainSignal": (False, False),
    "SetTradingState": (False, False),
    "GetTradingState": (False, False),
    "ReplaySignals": (False, True),
}

PINNED_ROUTES = {
    "UpdateStrategy": ("post", "/api/v1/strategy/update"),
    "HealthCheck": ("get", "/api/v1/health"),
    "InjectManualSignal": ("post", "/api/v1/signals/manual"),
    "GetPerformanceSummary": ("get", "/api/v1/performance/summary"),
}


def test_packages_and_service_names_are_the_pinned_ones() -> None:
    assert ENGINE.full_name == "tradeflow.trading.v1.TradingEngineService"
    risk = risk_service_pb2.DESCRIPTOR.services_by_name["RiskManagementService"]
    assert risk.full_name == "tradeflow.risk.v1.RiskManagementService"
    assert "AssessSignal" in risk.methods_by_name
    assert (
        prediction_pb2.MLPredictionBatch.DESCRIPTOR.full_name == "tradeflow.ml.v1.MLPredictionBatch"
    )
    assert (
        signal_pb2.TradingSignalBatch.DESCRIPTOR.full_name
        == "tradeflow.trading.v1.TradingSignalBatch"
    )
    assert (
        envelope_pb2.TradingProcessingEnvelope.DESCRIPTOR.full_name
        == "tradeflow.common.v1.TradingProcessingEnvelope"
    )


def test_signal_types_and_tiers_are_the_pinned_enums() -> None:
    assert signal_pb2.SignalType.keys() == [
        "SIGNAL_TYPE_UNSPECIFIED",
        "SIGNAL_TYPE_BUY",
        "SIGNAL_TYPE_WEAK_BUY",
        "SIGNAL_TYPE_HOLD",
        "SIGNAL_TYPE_WEAK_SELL",
        "SIGNAL_TYPE_SELL",
    ]
    assert tier_pb2.SubscriptionTier.keys() == [
        "SUBSCRIPTION_TIER_UNSPECIFIED",
        "SUBSCRIPTION_TIER_FREE",
        "SUBSCRIPTION_TIER_PRO",
        "SUBSCRIPTION_TIER_ENTERPRISE",
    ]


def test_envelope_carries_deduplication_and_tracing_fields() -> None:
    fields = envelope_pb2.TradingProcessingEnvelope.DESCRIPTOR.fields_by_name
    for name in (
        "message_type", "user_id", "company_id", "payload", "timestamp", "service_source",
        "correlation_id", "trace_context", "strategy_info", "auth_token", "message_id",
        "producer_id", "sequence",
    ):  # fmt: skip
        assert name in fields, name


@pytest.mark.parametrize(("rpc", "kind"), RPC_KINDS.items())
def test_every_promised_rpc_has_its_streaming_kind(rpc: str, kind: tuple[bool, bool]) -> None:
    method = ENGINE.methods_by_name[rpc]
    assert (method.client_streaming, method.server_streaming) == kind


def test_the_service_has_no_rpc_the_tests_do_not_know() -> None:
    assert set(ENGINE.methods_by_name) == set(RPC_KINDS)


@pytest.mark.parametrize("method", list(ENGINE.methods), ids=lambda m: m.name)
def test_unary_and_server_streams_have_rest_routes_and_bidi_streams_none(
    method: descriptor.MethodDescriptor,
) -> None:
    rule = http_rule(method)
    if method.client_streaming:
        assert rule is None, "a client stream cannot be transcoded"
        return
    assert rule is not None, f"{method.name} needs a google.api.http route"
    verb, path, body = rule
    assert path.startswith("/api/v1/")
    # AIP-127: reads carry no body, writes take the whole request as body.
    assert body == ("*" if verb == "post" else ""), (verb, body)


@pytest.mark.parametrize(("rpc", "route"), PINNED_ROUTES.items())
def test_pinned_rest_routes(rpc: str, route: tuple[str, str]) -> None:
    rule = http_rule(ENGINE.methods_by_name[rpc])
    assert rule is not None
    assert rule[:2] == route


@pytest.mark.parametrize(
    "message", [strategy_pb2.StrategyConfig, strategy_pb2.TierFeatures], ids=lambda m: m.__name__
)
def test_every_singular_strategy_field_tells_absent_from_zero(message: type[Message]) -> None:
    # Decision 23: an update sets the fields present, so a zero must be distinguishable from
    # "not sent". `buf breaking` would let `optional` be dropped again (the wire is the same).
    without_presence = [
        field.name
        for field in message.DESCRIPTOR.fields
        if not field.is_repeated and not field.has_presence
    ]
    assert without_presence == []
