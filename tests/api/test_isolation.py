"""The isolation matrix: every way one tenant might reach another's data, over gRPC and REST.

Two companies, acme and rival, each with a plain user called trader-1 (the
same user id in both, on purpose) and an admin; acme also has a colleague
without the admin role. acme's trader-1 owns a customised strategy, decided
signals and a manual signal. Every attempt from anyone else is refused or
answered with the attempter's own (empty) data, and afterwards acme's
trader-1 finds everything exactly as it was.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import grpc
import jwt
import pytest
from google.protobuf import field_mask_pb2, json_format

from tests.factories import batch, live, prediction
from tests.support import (
    ADMIN,
    RIVAL_ADMIN,
    TRADER,
    Stubs,
    Tokens,
    http_json_async,
    http_rule,
    rpc_failure,
)
from tradeflow.trading.v1 import signal_pb2, strategy_pb2
from tradeflow.trading.v1 import trading_engine_service_pb2 as service_pb2
from trading_engine.config import EngineSettings
from trading_engine.gateway.envoy import EnvoyGateway
from trading_engine.tenancy import Caller
from trading_engine_client.errors import PermissionDeniedError

if TYPE_CHECKING:
    from tradeflow.trading.v1 import trading_engine_service_pb2_grpc as service_grpc

    Stub = service_grpc.TradingEngineServiceAsyncStub

COLLEAGUE = Caller("trader-2", "acme", TRADER.tier)
# Same user id as acme's trader, in another company.
NAMESAKE = Caller("trader-1", "rival", TRADER.tier)
USER = strategy_pb2.STRATEGY_LAYER_USER
SERVICE = service_pb2.DESCRIPTOR.services_by_name["TradingEngineService"]


def stop_loss_update(pips: float, user_id: str = "") -> service_pb2.UpdateStrategyRequest:
    return service_pb2.UpdateStrategyRequest(
        layer=USER,
        user_id=user_id,
        strategy=strategy_pb2.StrategyConfig(stop_loss_pips=pips),
        update_mask=field_mask_pb2.FieldMask(paths=["stop_loss_pips"]),
    )


def manual_order(user_id: str) -> service_pb2.InjectManualSignalRequest:
    return service_pb2.InjectManualSignalRequest(
        request_id=f"manual-{user_id}",
        user_id=user_id,
        symbol="EURUSD",
        signal_type=signal_pb2.SIGNAL_TYPE_BUY,
        order_type=signal_pb2.ORDER_TYPE_MARKET,
        reference_price=1.085,
        stop_loss=1.083,
        take_profit=1.089,
        position_size_lots=1.0,
    )


async def snapshot(trader: Stub) -> tuple[bytes, list[bytes], list[int]]:
    """acme trader-1's strategy, history and strategy versions, as bytes to compare."""
    strategy = await trader.GetStrategy(service_pb2.GetStrategyRequest())
    pages = [
        page
        async for page in trader.GetSignalHistory(
            service_pb2.GetSignalHistoryRequest(include_non_actionable=True)
        )
    ]
    versions = await trader.ListStrategyVersions(
        service_pb2.ListStrategyVersionsRequest(layer=USER)
    )
    return (
        strategy.SerializeToString(deterministic=True),
        [s.SerializeToString() for page in pages for s in page.signals],
        [v.version for v in versions.versions],
    )


@pytest.fixture
async def owned(stubs: Stubs) -> tuple[bytes, list[bytes], list[int]]:
    """acme trader-1's data, set up; everyone else has called once, so they are known."""
    trader = stubs.as_()
    await trader.UpdateStrategy(stop_loss_update(25.0))
    await trader.ProcessPredictionBatch(
        service_pb2.ProcessPredictionBatchRequest(
            batch=live(batch("b", [prediction("p1"), prediction("p2", "GBPUSD")]))
        )
    )
    await stubs.as_(ADMIN).InjectManualSignal(manual_order("trader-1"))
    for someone in (COLLEAGUE, NAMESAKE, RIVAL_ADMIN):
        await stubs.as_(someone).GetStrategy(service_pb2.GetStrategyRequest())
    await asyncio.sleep(0.3)
    return await snapshot(trader)


Attempt = Callable[["Stub"], Awaitable[Any]]


def _history(user_id: str) -> Attempt:
    async def attempt(stub: Stub) -> list[service_pb2.GetSignalHistoryResponse]:
        request = service_pb2.GetSignalHistoryRequest(user_id=user_id, include_non_actionable=True)
        return [page async for page in stub.GetSignalHistory(request)]

    return attempt


# Attempts on acme trader-1's data by name, and what each attacker must get.
REFUSED_BY_NAME: list[tuple[str, Attempt]] = [
    ("get", lambda s: s.GetStrategy(service_pb2.GetStrategyRequest(user_id="trader-1"))),
    ("update", lambda s: s.UpdateStrategy(stop_loss_update(99.0, "trader-1"))),
    (
        "versions",
        lambda s: s.ListStrategyVersions(
            service_pb2.ListStrategyVersionsRequest(layer=USER, user_id="trader-1")
        ),
    ),
    (
        "reset",
        lambda s: s.ResetStrategy(
            service_pb2.ResetStrategyRequest(layer=USER, user_id="trader-1", to_version=0)
        ),
    ),
    ("history", _history("trader-1")),
    ("inject", lambda s: s.InjectManualSignal(manual_order("trader-1"))),
]


@pytest.mark.parametrize(("name", "attempt"), REFUSED_BY_NAME, ids=[n for n, _ in REFUSED_BY_NAME])
async def test_a_colleague_without_the_admin_role_is_refused(
    stubs: Stubs, owned: tuple[bytes, list[bytes], list[int]], name: str, attempt: Attempt
) -> None:
    error = await rpc_failure(attempt(stubs.as_(COLLEAGUE)))
    assert isinstance(error, PermissionDeniedError), (name, error)
    assert await snapshot(stubs.as_()) == owned


@pytest.mark.parametrize(("name", "attempt"), REFUSED_BY_NAME, ids=[n for n, _ in REFUSED_BY_NAME])
async def test_another_companys_admin_reaches_only_their_own_trader_1(
    stubs: Stubs, owned: tuple[bytes, list[bytes], list[int]], name: str, attempt: Attempt
) -> None:
    # For rival's admin, "trader-1" is rival's trader-1: the answer is about them, never acme's.
    answer = await attempt(stubs.as_(RIVAL_ADMIN))
    text = json.dumps(
        [json_format.MessageToDict(page) for page in answer]
        if isinstance(answer, list)
        else json_format.MessageToDict(answer)
    )
    assert '"acme"' not in text, (name, text)
    assert await snapshot(stubs.as_()) == owned


async def test_the_namesake_in_another_company_sees_only_their_own_data(
    stubs: Stubs, owned: tuple[bytes, list[bytes], list[int]]
) -> None:
    namesake = stubs.as_(NAMESAKE)
    strategy = (await namesake.GetStrategy(service_pb2.GetStrategyRequest())).strategy
    assert (strategy.company_id, strategy.version) == ("rival", 0)
    assert strategy.config.stop_loss_pips == 20.0
    assert await _history("")(namesake) == []
    batch_of_acme = live(batch("x", [prediction("p9")]))  # tenant: acme's trader-1
    error = await rpc_failure(
        namesake.ProcessPredictionBatch(
            service_pb2.ProcessPredictionBatchRequest(batch=batch_of_acme)
        )
    )
    assert isinstance(error, PermissionDeniedError)
    assert error.reason == "TENANT_MISMATCH"
    managed = [
        r
        async for r in namesake.ManageStrategies(
            iter(
                [
                    service_pb2.ManageStrategiesRequest(
                        operation_id="x", get=service_pb2.GetStrategyRequest(user_id="trader-2")
                    )
                ]
            )
        )
    ]
    assert managed[0].error.code == grpc.StatusCode.PERMISSION_DENIED.value[0]
    assert await snapshot(stubs.as_()) == owned


async def test_an_admin_reaches_their_own_companys_user(
    stubs: Stubs, owned: tuple[bytes, list[bytes], list[int]]
) -> None:
    # The one allowed crossing: acme's admin reads acme's trader-1.
    admin = stubs.as_(ADMIN)
    read = await admin.GetStrategy(service_pb2.GetStrategyRequest(user_id="trader-1"))
    assert read.SerializeToString(deterministic=True) == owned[0]
    pages = await _history("trader-1")(admin)
    assert [s.SerializeToString() for page in pages for s in page.signals] == owned[1]


# --- REST, through Envoy ----------------------------------------------------------------------

ROUTES = [
    (method.name, rule)
    for method in SERVICE.methods
    if (rule := http_rule(method)) is not None and method.name != "HealthCheck"
]


def _url(base: str, path: str) -> str:
    # Path parameters ({signal_id}) get a value; every route is tried without a body.
    return base + path.replace("{signal_id}", "sig-1")


def _bad_token(settings: EngineSettings, kind: str) -> str:
    """A token that must be refused: forged, expired, for another audience, or unsigned."""
    valid = Tokens(settings).token()
    claims = jwt.decode(valid, options={"verify_signature": False})
    secret = (Path(settings.data_dir) / "dev-jwt-secret").read_bytes().strip()
    if kind == "expired":
        return jwt.encode({**claims, "exp": int(time.time()) - 600}, secret, "HS256")
    if kind == "audience":
        return jwt.encode({**claims, "aud": "billing"}, secret, "HS256")
    if kind == "alg-none":
        return jwt.encode(claims, "", "none")
    return jwt.encode({**claims, "company_id": "rival"}, b"f" * 32, "HS256")


@pytest.mark.parametrize("kind", ["forged", "expired", "audience", "alg-none"])
async def test_every_rest_route_refuses_bad_tokens(
    gateway: EnvoyGateway, engine_settings: EngineSettings, kind: str
) -> None:
    token = _bad_token(engine_settings, kind)
    for name, (verb, path, _) in ROUTES:
        status, body = await http_json_async(
            verb.upper(),
            _url(gateway.base_url, path),
            b"{}" if verb == "post" else None,
            {"authorization": f"Bearer {token}", "content-type": "application/json"},
        )
        assert status == 401, (name, kind, body)
        assert body["details"][0]["reason"].startswith("TOKEN_"), (name, body)


async def test_rest_refuses_cross_tenant_reads_and_writes(
    gateway: EnvoyGateway, tokens: Tokens, owned: tuple[bytes, list[bytes], list[int]], stubs: Stubs
) -> None:
    base = gateway.base_url
    attempts = [
        ("GET", "/api/v1/strategy?userId=trader-1", None),
        ("GET", "/api/v1/strategy/versions?layer=STRATEGY_LAYER_USER&userId=trader-1", None),
        ("GET", "/api/v1/signals/history?userId=trader-1", None),
        (
            "POST",
            "/api/v1/strategy/update",
            json.dumps(
                {
                    "layer": "STRATEGY_LAYER_USER",
                    "userId": "trader-1",
                    "strategy": {"stopLossPips": 99},
                    "updateMask": "stopLossPips",
                }
            ).encode(),
        ),
        (
            "POST",
            "/api/v1/signals/manual",
            json_format.MessageToJson(manual_order("trader-1")).encode(),
        ),
    ]
    for method, path, body in attempts:
        status, answer = await http_json_async(
            method,
            base + path,
            body,
            {"content-type": "application/json", **tokens.header(COLLEAGUE)},
        )
        assert status == 403, (path, answer)
        status, answer = await http_json_async(
            method,
            base + path,
            body,
            {"content-type": "application/json", **tokens.header(RIVAL_ADMIN)},
        )
        assert status in (200, 404), (path, answer)
        assert '"acme"' not in json.dumps(answer), (path, answer)
    assert await snapshot(stubs.as_()) == owned
