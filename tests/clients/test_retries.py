"""Retries: reads and keyed changes are tried again after transient failures; others never."""

from __future__ import annotations

import asyncio
import dataclasses
import socket
from typing import Any

import grpc
import pytest
from google.protobuf import field_mask_pb2

from tests import factories
from tests.clients.conftest import FLAVOURS, connected, signed_by
from tests.support import ADMIN, TRADER, Tokens
from tradeflow.trading.v1 import strategy_pb2
from tradeflow.trading.v1 import trading_engine_service_pb2 as service_pb2
from trading_engine.app import Application
from trading_engine.config import EngineSettings
from trading_engine.devstack.brokers import free_port
from trading_engine.tenancy import Caller
from trading_engine_client import (
    DeadlineExceededError,
    NotFoundError,
    RetryPolicy,
    Token,
    UnavailableError,
)

S = service_pb2
UNAVAILABLE = UnavailableError(grpc.StatusCode.UNAVAILABLE, "engine down")


def test_waits_grow_to_the_cap_shortened_by_at_most_the_jitter() -> None:
    policy = RetryPolicy(
        max_attempts=6, initial_backoff=0.1, max_backoff=0.5, multiplier=2, jitter=0.25
    )
    for _ in range(200):
        waits = [policy.backoff(attempt, UNAVAILABLE) for attempt in range(1, 6)]
        ceilings = [0.1, 0.2, 0.4, 0.5, 0.5]
        assert all(
            wait is not None and ceiling * 0.75 <= wait <= ceiling
            for wait, ceiling in zip(waits, ceilings, strict=True)
        ), waits


def test_gives_up_after_max_attempts_and_on_errors_that_would_recur() -> None:
    policy = RetryPolicy(max_attempts=3)
    assert policy.backoff(2, UNAVAILABLE) is not None
    assert policy.backoff(3, UNAVAILABLE) is None
    deadline = DeadlineExceededError(grpc.StatusCode.DEADLINE_EXCEEDED, "slow")
    assert policy.backoff(1, deadline) is not None
    missing = NotFoundError(grpc.StatusCode.NOT_FOUND, "no such signal")
    assert policy.backoff(1, missing) is None


def test_a_policy_that_could_not_work_is_refused() -> None:
    with pytest.raises(ValueError, match="max_attempts"):
        RetryPolicy(max_attempts=0)
    with pytest.raises(ValueError, match="backoff"):
        RetryPolicy(initial_backoff=2.0, max_backoff=1.0)


def confidence_update(request_id: str) -> S.UpdateStrategyRequest:
    return S.UpdateStrategyRequest(
        layer=strategy_pb2.STRATEGY_LAYER_USER,
        strategy=strategy_pb2.StrategyConfig(min_confidence_threshold=0.75),
        update_mask=field_mask_pb2.FieldMask(paths=["min_confidence_threshold"]),
        request_id=request_id,
    )


@pytest.mark.parametrize("flavour", FLAVOURS)
async def test_reads_and_keyed_changes_wait_for_an_engine_that_starts_late(
    flavour: str, engine_settings: EngineSettings, tokens: Tokens
) -> None:
    port = free_port()
    # About 3 to 5 s of retries: room for a slow machine to start the engine.
    patient = RetryPolicy(max_attempts=8, initial_backoff=0.2, max_backoff=1.0)
    address = f"127.0.0.1:{port}"
    async with connected(address, flavour, signed_by(tokens), retry=patient) as session:
        # Sent while nothing listens on the port.
        calls: dict[str, asyncio.Future[Any]] = {
            "read": asyncio.ensure_future(session.call("get_strategy", TRADER, None)),
            "keyed change": asyncio.ensure_future(
                session.call("update_strategy", TRADER, confidence_update("late-1"))
            ),
            "unkeyed change": asyncio.ensure_future(
                session.call("update_strategy", TRADER, confidence_update(""))
            ),
            "halt": asyncio.ensure_future(
                session.call(
                    "set_trading_state",
                    ADMIN,
                    S.SetTradingStateRequest(state=S.TRADING_STATE_HALTED, reason="drill"),
                )
            ),
        }
        await asyncio.sleep(0.5)
        # Changes without an idempotency key failed at once; the others are still trying.
        assert {name for name, call in calls.items() if call.done()} == {"unkeyed change", "halt"}
        engine = Application(dataclasses.replace(engine_settings, grpc_port=port))
        await engine.start()
        try:
            await asyncio.wait(calls.values())
        finally:
            await engine.stop()
    assert calls["read"].result().user_id == "trader-1"
    assert calls["keyed change"].result().strategy.config.min_confidence_threshold == 0.75
    for unsafe in ("unkeyed change", "halt"):
        assert isinstance(calls[unsafe].exception(), UnavailableError), unsafe


@pytest.mark.parametrize("flavour", FLAVOURS)
async def test_each_attempt_gets_its_deadline_and_only_safe_calls_make_several(
    flavour: str, tokens: Tokens
) -> None:
    attempts: list[str] = []

    def counting(caller: Caller) -> Token:
        def token() -> str:
            # The token is asked once per attempt.
            attempts.append(caller.user_id)
            return tokens.token(caller)

        return token

    quick = RetryPolicy(max_attempts=3, initial_backoff=0.01, max_backoff=0.01)
    # A peer that accepts connections and never answers: every attempt meets its deadline.
    with socket.create_server(("127.0.0.1", 0)) as hung:
        address = f"127.0.0.1:{hung.getsockname()[1]}"
        async with connected(address, flavour, counting, retry=quick) as session:
            with pytest.raises(DeadlineExceededError):
                await session.call("get_strategy", TRADER, None, timeout=0.1)
            assert len(attempts) == 3

            attempts.clear()
            batch = factories.live(factories.batch("d-1", [factories.prediction("d-1-eur")]))
            with pytest.raises(DeadlineExceededError):
                await session.call(
                    "process_prediction_batch",
                    TRADER,
                    S.ProcessPredictionBatchRequest(batch=batch),
                    timeout=0.1,
                )
            assert len(attempts) == 1
