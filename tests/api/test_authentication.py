"""Every call but health needs a valid bearer token, over gRPC and through Envoy."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import grpc
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.factories import batch, prediction
from tests.support import TRADER, Tokens, http_json_async
from tradeflow.trading.v1 import trading_engine_service_pb2 as service_pb2
from tradeflow.trading.v1 import trading_engine_service_pb2_grpc as service_grpc
from trading_engine.app import Application
from trading_engine.config import EngineSettings
from trading_engine.gateway.envoy import EnvoyGateway
from trading_engine_client.auth import bearer_token
from trading_engine_client.errors import UnauthenticatedError, from_rpc_error

SERVICE = service_pb2.DESCRIPTOR.services_by_name["TradingEngineService"]
PUBLIC = {"HealthCheck"}
PROTECTED = [method for method in SERVICE.methods if method.name not in PUBLIC]


async def _raw_call(channel: grpc.aio.Channel, method: Any, metadata: Any = None) -> None:
    """Call `method` with an empty request; raises the call's AioRpcError."""
    path = f"/{SERVICE.full_name}/{method.name}"
    kind = (method.client_streaming, method.server_streaming)
    identity: dict[str, Any] = {"request_serializer": bytes, "response_deserializer": bytes}
    if kind == (False, False):
        await channel.unary_unary(path, **identity)(b"", metadata=metadata, timeout=5)
    elif kind == (False, True):
        async for _ in channel.unary_stream(path, **identity)(b"", metadata=metadata, timeout=5):
            pass
    elif kind == (True, False):
        await channel.stream_unary(path, **identity)(_held(), metadata=metadata, timeout=5)
    else:
        call = channel.stream_stream(path, **identity)(_held(), metadata=metadata, timeout=5)
        async for _ in call:
            pass


async def _held() -> AsyncIterator[bytes]:
    """A request stream that sends nothing until the call ends.

    The server refuses at the start of the call. A request written as the refusal
    arrives makes grpc.aio report INTERNAL instead of the server's status
    (grpc/grpc#36066), so the refusal is tested without that race.
    """
    await asyncio.Event().wait()
    yield b""


async def _held_batches() -> AsyncIterator[service_pb2.ProcessPredictionsRequest]:
    """_held for a typed stub: a batch it would send, were the call not refused first."""
    await asyncio.Event().wait()
    yield service_pb2.ProcessPredictionsRequest(batch=batch("b", [prediction("p")]))


def _reason(error: grpc.aio.AioRpcError) -> str:
    mapped = from_rpc_error(error)
    assert isinstance(mapped, UnauthenticatedError), (error.code(), error.details())
    return mapped.reason


@pytest.mark.parametrize("method", PROTECTED, ids=lambda method: method.name)
async def test_every_rpc_but_health_needs_a_token(engine: Application, method: Any) -> None:
    async with grpc.aio.insecure_channel(engine.grpc_address) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await _raw_call(channel, method)
    assert raised.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert _reason(raised.value) == "TOKEN_MISSING"
    assert "authorization: Bearer" in (raised.value.details() or "")


async def test_health_answers_without_a_token(engine: Application) -> None:
    async with grpc.aio.insecure_channel(engine.grpc_address) as channel:
        stub = service_grpc.TradingEngineServiceStub(channel)
        health = await stub.HealthCheck(service_pb2.HealthCheckRequest(), timeout=5)
    assert health.status == service_pb2.SERVING_STATUS_SERVING


def _signed(secret: bytes, **changes: Any) -> str:
    now = int(time.time())
    claims = {
        "sub": TRADER.user_id,
        "company_id": TRADER.company_id,
        "tier": "PRO",
        "iss": "tradeflow",
        "aud": "trading-engine",
        "exp": now + 300,
        **changes,
    }
    return jwt.encode({k: v for k, v in claims.items() if v is not None}, secret, "HS256")


def _with_header(secret: bytes, **header: Any) -> str:
    """A token for TRADER, signed with `secret`, whose header carries `header` as given.

    Written by hand: PyJWT refuses to encode some of these headers at all.
    """
    encode = jwt.utils.base64url_encode
    signing_input = b".".join(
        encode(json.dumps(part).encode())
        for part in (
            {"alg": "HS256", "typ": "JWT", **header},
            jwt.decode(_signed(secret), options={"verify_signature": False}),
        )
    )
    signature = hmac.new(secret, signing_input, hashlib.sha256).digest()
    return (signing_input + b"." + encode(signature)).decode()


@pytest.fixture
def secret(engine_settings: EngineSettings) -> bytes:
    # The development secret the engine was started with (tests/conftest.py).
    return (Path(engine_settings.data_dir) / "dev-jwt-secret").read_bytes().strip()


@pytest.mark.parametrize(
    ("forge", "reason"),
    [
        pytest.param(
            lambda s: _signed(s, exp=int(time.time()) - 600), "TOKEN_EXPIRED", id="expired"
        ),
        pytest.param(lambda s: _signed(s, aud="billing"), "TOKEN_AUDIENCE_INVALID", id="audience"),
        pytest.param(lambda s: _signed(s, iss="evil"), "TOKEN_ISSUER_INVALID", id="issuer"),
        pytest.param(lambda s: _signed(b"k" * 32), "TOKEN_SIGNATURE_INVALID", id="wrong-key"),
        pytest.param(lambda s: _signed(s, exp=None), "TOKEN_CLAIMS_INVALID", id="no-exp"),
        pytest.param(
            lambda s: jwt.encode({"sub": "x", "exp": 9999999999}, "", "none"),
            "TOKEN_ALGORITHM_REFUSED",
            id="alg-none",
        ),
        # Headers and claims of the wrong type: refused with a reason, never an UNKNOWN.
        pytest.param(lambda s: _with_header(s, kid=5), "TOKEN_MALFORMED", id="kid-a-number"),
        pytest.param(lambda s: _with_header(s, kid=["k"]), "TOKEN_MALFORMED", id="kid-a-list"),
        pytest.param(lambda s: _with_header(s, crit="b64"), "TOKEN_MALFORMED", id="crit-a-string"),
        pytest.param(lambda s: _with_header(s, crit=[5]), "TOKEN_MALFORMED", id="crit-of-numbers"),
        pytest.param(lambda s: _with_header(s, crit=["exp"]), "TOKEN_MALFORMED", id="crit-unknown"),
        pytest.param(lambda s: _signed(s, exp="soon"), "TOKEN_MALFORMED", id="exp-a-string"),
        pytest.param(lambda s: _signed(s, aud=[1, 2]), "TOKEN_AUDIENCE_INVALID", id="aud-numbers"),
        pytest.param(lambda s: _signed(s, nbf="now"), "TOKEN_MALFORMED", id="nbf-a-string"),
    ],
)
async def test_bad_tokens_are_refused_on_unary_and_streaming_calls(
    engine: Application, secret: bytes, forge: Any, reason: str
) -> None:
    token = forge(secret)
    async with grpc.aio.insecure_channel(
        engine.grpc_address, interceptors=bearer_token(token)
    ) as channel:
        stub = service_grpc.TradingEngineServiceStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as unary:
            await stub.ProcessPredictionBatch(
                service_pb2.ProcessPredictionBatchRequest(batch=batch("b", [prediction("p")])),
                timeout=5,
            )
        # Nothing written before the refusal: see _held.
        stream = stub.ProcessPredictions(_held_batches(), timeout=5)
        with pytest.raises(grpc.aio.AioRpcError) as streaming:
            async for _ in stream:
                pass
    assert _reason(unary.value) == reason
    assert _reason(streaming.value) == reason


@pytest.fixture
async def production_engine(tmp_path: Path) -> AsyncIterator[tuple[Application, Any]]:
    """A production engine trusting an RS256 key and an HS256 secret; yields it and the RSA key."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public = tmp_path / "issuer.pem"
    public.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    (tmp_path / "shared-secret").write_text("p" * 40)
    settings = EngineSettings(
        grpc_port=0,
        data_dir=str(tmp_path / "data"),
        environment="production",
        auth_public_key_file=str(public),
        auth_hs256_secret_file=str(tmp_path / "shared-secret"),
    )
    application = Application(settings)
    await application.start()
    yield application, key
    await application.stop()


async def test_production_accepts_its_issuers_tokens_and_refuses_development_ones(
    production_engine: tuple[Application, Any], tmp_path: Path
) -> None:
    application, key = production_engine
    claims = {
        "sub": "trader-1", "company_id": "acme", "tier": "PRO", "iss": "tradeflow",
        "aud": "trading-engine", "exp": int(time.time()) + 300,
    }  # fmt: skip
    issued = jwt.encode(claims, key, "RS256")
    # Minted by `trading-engine token` with the production secret: valid, but a development token.
    development = Tokens(
        EngineSettings(auth_hs256_secret_file=str(tmp_path / "shared-secret"))
    ).token()
    async with grpc.aio.insecure_channel(
        application.grpc_address, interceptors=bearer_token(issued)
    ) as channel:
        response = await service_grpc.TradingEngineServiceStub(channel).ProcessPredictionBatch(
            service_pb2.ProcessPredictionBatchRequest(batch=batch("b", [prediction("p")])),
            timeout=5,
        )
    assert len(response.signal_batch.signals) == 1
    async with grpc.aio.insecure_channel(
        application.grpc_address, interceptors=bearer_token(development)
    ) as channel:
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await service_grpc.TradingEngineServiceStub(channel).GetStrategy(
                service_pb2.GetStrategyRequest(), timeout=5
            )
    assert _reason(raised.value) == "TOKEN_DEVELOPMENT_REFUSED"
    # Production never creates (or reads) a development secret.
    assert not (tmp_path / "data" / "dev-jwt-secret").exists()


def test_production_without_a_key_refuses_to_start(tmp_path: Path) -> None:
    settings = EngineSettings(data_dir=str(tmp_path), environment="production")
    with pytest.raises(ValueError, match="production needs a key"):
        Application(settings)


async def test_rest_without_a_token_is_a_401_json(gateway: EnvoyGateway) -> None:
    status, body = await http_json_async("GET", f"{gateway.base_url}/api/v1/strategy")
    assert status == 401
    assert body["code"] == 16  # UNAUTHENTICATED
    assert body["details"][0]["reason"] == "TOKEN_MISSING"


async def test_rest_forwards_the_bearer_token(
    gateway: EnvoyGateway, tokens: Tokens, secret: bytes
) -> None:
    expired = _signed(secret, exp=int(time.time()) - 600)
    status, body = await http_json_async(
        "GET", f"{gateway.base_url}/api/v1/strategy", headers={"authorization": f"Bearer {expired}"}
    )
    assert (status, body["details"][0]["reason"]) == (401, "TOKEN_EXPIRED")
    status, body = await http_json_async(
        "GET", f"{gateway.base_url}/api/v1/strategy", headers=tokens.header()
    )
    assert status != 401, body


@pytest.mark.parametrize("method", PROTECTED, ids=lambda method: method.name)
async def test_every_rpc_refuses_forged_expired_foreign_and_unsigned_tokens(
    engine: Application, secret: bytes, method: Any
) -> None:
    bad = {
        "TOKEN_SIGNATURE_INVALID": _signed(b"k" * 32, company_id="rival"),
        "TOKEN_EXPIRED": _signed(secret, exp=int(time.time()) - 600),
        "TOKEN_AUDIENCE_INVALID": _signed(secret, aud="billing"),
        "TOKEN_ALGORITHM_REFUSED": jwt.encode({"sub": "x", "exp": 9999999999}, "", "none"),
    }
    async with grpc.aio.insecure_channel(engine.grpc_address) as channel:
        for reason, token in bad.items():
            with pytest.raises(grpc.aio.AioRpcError) as raised:
                await _raw_call(channel, method, (("authorization", f"Bearer {token}"),))
            assert _reason(raised.value) == reason
