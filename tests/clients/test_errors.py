"""Failures reach the caller as typed exceptions with the engine's reason and field violations."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import grpc
import pytest
from google.protobuf import field_mask_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from tests import factories
from tests.clients.conftest import ANONYMOUS, FLAVOURS, Session, connected, signed_by
from tests.support import TRADER, Tokens
from tradeflow.trading.v1 import strategy_pb2
from tradeflow.trading.v1 import trading_engine_service_pb2 as service_pb2
from trading_engine.app import Application
from trading_engine.devstack.brokers import free_port
from trading_engine.tenancy import Caller
from trading_engine_client import (
    NO_RETRIES,
    DeadlineExceededError,
    FailedPreconditionError,
    InvalidArgumentError,
    NotFoundError,
    PermissionDeniedError,
    Token,
    UnauthenticatedError,
    UnavailableError,
    UnimplementedError,
)

S = service_pb2


def confidence_update(threshold: float, expected_version: int = 0) -> S.UpdateStrategyRequest:
    return S.UpdateStrategyRequest(
        layer=strategy_pb2.STRATEGY_LAYER_USER,
        strategy=strategy_pb2.StrategyConfig(min_confidence_threshold=threshold),
        update_mask=field_mask_pb2.FieldMask(paths=["min_confidence_threshold"]),
        expected_version=expected_version,
    )


async def test_bad_input_is_invalid_argument_naming_each_bad_field(session: Session) -> None:
    with pytest.raises(InvalidArgumentError) as no_batch:
        await session.call("process_prediction_batch", TRADER, S.ProcessPredictionBatchRequest())
    assert no_batch.value.field_violations == {"batch": "required"}

    with pytest.raises(InvalidArgumentError) as out_of_range:
        await session.call("update_strategy", TRADER, confidence_update(1.5))
    assert set(out_of_range.value.field_violations) == {"strategy.min_confidence_threshold"}


async def test_another_users_batch_is_permission_denied(session: Session) -> None:
    batch = factories.batch("b-1", [factories.prediction("p-1")], user_id="mallory")
    with pytest.raises(PermissionDeniedError) as raised:
        await session.call(
            "process_prediction_batch", TRADER, S.ProcessPredictionBatchRequest(batch=batch)
        )
    assert raised.value.reason == "TENANT_MISMATCH"


async def test_an_unknown_signal_is_not_found_with_the_engines_reason(session: Session) -> None:
    with pytest.raises(NotFoundError) as raised:
        await session.call("explain_signal", TRADER, S.ExplainSignalRequest(signal_id="s-1"))
    assert raised.value.reason == "SIGNAL_NOT_FOUND"
    assert "'s-1'" in raised.value.message
    assert raised.value.code == grpc.StatusCode.NOT_FOUND


async def test_a_stale_version_is_failed_precondition(session: Session) -> None:
    with pytest.raises(FailedPreconditionError):
        await session.call("update_strategy", TRADER, confidence_update(0.75, expected_version=7))


async def test_only_health_answers_without_a_token(session: Session) -> None:
    report = await session.call("health_check", ANONYMOUS, None)
    assert report.status == S.SERVING_STATUS_SERVING
    with pytest.raises(UnauthenticatedError):
        await session.call("get_strategy", ANONYMOUS, None)


async def test_a_trader_may_not_halt_trading(session: Session) -> None:
    request = S.SetTradingStateRequest(
        scope=S.TRADING_STATE_SCOPE_COMPANY, state=S.TRADING_STATE_HALTED, reason="panic"
    )
    with pytest.raises(PermissionDeniedError):
        await session.call("set_trading_state", TRADER, request)


async def test_a_bad_stream_request_ends_the_stream_with_its_typed_error(session: Session) -> None:
    events = session.stream("stream_signals", TRADER, [S.SignalFilter(symbols=["EURUDS"])])
    with pytest.raises(InvalidArgumentError) as raised:
        await anext(events)
    assert set(raised.value.field_violations) == {"filter.symbols[0]"}


async def test_a_stream_ends_at_its_deadline(session: Session) -> None:
    events = session.stream("stream_signals", TRADER, [S.SignalFilter()], timeout=0.5)
    assert (await anext(events)).HasField("filter_applied")
    # Nothing is decided meanwhile: the next event is the deadline.
    with pytest.raises(DeadlineExceededError):
        await anext(events)


@pytest.mark.parametrize("flavour", FLAVOURS)
async def test_a_token_provider_is_asked_on_every_call(
    flavour: str, engine: Application, tokens: Tokens
) -> None:
    issued = [tokens.token(TRADER, lifetime_s=-120), tokens.token(TRADER)]

    def provider(caller: Caller) -> Token:
        return lambda: issued.pop(0)

    async with connected(engine.grpc_address, flavour, provider) as renewing:
        with pytest.raises(UnauthenticatedError) as expired:
            await renewing.call("get_strategy", TRADER, None)
        assert expired.value.reason == "TOKEN_EXPIRED"
        # The provider renewed the token: the next call goes through.
        assert (await renewing.call("get_strategy", TRADER, None)).user_id == "trader-1"
    assert issued == []


@pytest.mark.parametrize("flavour", FLAVOURS)
async def test_an_unreachable_engine_raises_unavailable(flavour: str, tokens: Tokens) -> None:
    address = f"127.0.0.1:{free_port()}"
    async with connected(address, flavour, signed_by(tokens), retry=NO_RETRIES) as nowhere:
        with pytest.raises(UnavailableError) as raised:
            await nowhere.call("health_check", TRADER, None, timeout=2)
    assert raised.value.retriable


@pytest.mark.parametrize("flavour", FLAVOURS)
async def test_an_engine_without_the_live_feed_raises_unimplemented(
    flavour: str, tokens: Tokens
) -> None:
    async with (
        engine_before_the_live_feed() as address,
        connected(address, flavour, signed_by(tokens)) as old,
    ):
        events = old.stream("stream_signals", TRADER, [S.SignalFilter()])
        with pytest.raises(UnimplementedError) as raised:
            await anext(events)
    assert raised.value.reason == "NOT_YET_AVAILABLE"
    assert "StreamSignals" in raised.value.message


@contextlib.asynccontextmanager
async def engine_before_the_live_feed() -> AsyncIterator[str]:
    """A gRPC server answering StreamSignals as engines without the live feed do."""

    async def refuse(requests: object, context: grpc.aio.ServicerContext[object, object]) -> None:
        info = error_details_pb2.ErrorInfo(
            reason="NOT_YET_AVAILABLE", domain="trading-engine.tradeflow"
        )
        status = status_pb2.Status(
            code=code_pb2.UNIMPLEMENTED,
            message="StreamSignals is part of the contract but not available in this build yet",
        )
        status.details.add().Pack(info)
        await context.abort_with_status(rpc_status.to_status(status))

    service = S.DESCRIPTOR.services_by_name["TradingEngineService"].full_name
    handler = grpc.stream_stream_rpc_method_handler(
        refuse,
        request_deserializer=S.StreamSignalsRequest.FromString,
        response_serializer=S.StreamSignalsResponse.SerializeToString,
    )
    server = grpc.aio.server()
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler(service, {"StreamSignals": handler}),)
    )
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        yield f"127.0.0.1:{port}"
    finally:
        await server.stop(grace=None)
