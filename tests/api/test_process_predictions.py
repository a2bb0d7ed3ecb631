"""ProcessPredictions and its unary twin on a real server: signals out, errors as statuses."""

from __future__ import annotations

import asyncio
import dataclasses
import math
from collections.abc import AsyncIterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import grpc
import pytest

from tests.factories import NOW_NS, batch, prediction
from tests.support import Tokens
from tradeflow.common.v1 import tier_pb2
from tradeflow.ml.v1.prediction_pb2 import Prediction
from tradeflow.trading.v1 import signal_pb2
from tradeflow.trading.v1 import trading_engine_service_pb2 as service_pb2
from tradeflow.trading.v1 import trading_engine_service_pb2_grpc as service_grpc
from trading_engine.app import Application
from trading_engine.config import EngineSettings
from trading_engine_client.errors import (
    InvalidArgumentError,
    PermissionDeniedError,
    from_rpc_error,
)

if TYPE_CHECKING:  # the async stub type exists only in the generated .pyi
    Stub = service_grpc.TradingEngineServiceAsyncStub


class FixedClock:
    def __init__(self, now_ns: int) -> None:
        self.now = now_ns

    def now_ns(self) -> int:
        return self.now


@pytest.fixture
async def fixed_engine(engine_settings: EngineSettings) -> AsyncIterator[Application]:
    """An engine whose clock stands still at NOW_NS, so decisions are reproducible."""
    application = Application(
        dataclasses.replace(engine_settings, shutdown_grace_seconds=1.0, max_batch_size=20),
        clock=FixedClock(NOW_NS),
    )
    await application.start()
    yield application
    await application.stop()


@pytest.fixture
async def fixed_stub(fixed_engine: Application, tokens: Tokens) -> AsyncIterator[Stub]:
    async with tokens.channel(fixed_engine.grpc_address) as channel:
        yield service_grpc.TradingEngineServiceStub(channel)


def _requests(*batches: object) -> list[service_pb2.ProcessPredictionsRequest]:
    return [service_pb2.ProcessPredictionsRequest(batch=b) for b in batches]  # type: ignore[arg-type]


async def test_each_batch_gets_one_signal_batch_in_order(fixed_stub: Stub) -> None:
    batches = [
        batch("b1", [prediction("p1"), prediction("p2", "USDJPY")]),
        batch("b2", [prediction("p3", "GBPUSD", confidence=0.5)]),
        batch("b3", [prediction("p4", "XAUUSD")]),
    ]
    responses = [r async for r in fixed_stub.ProcessPredictions(iter(_requests(*batches)))]

    assert [r.signal_batch.batch_id for r in responses] == ["b1", "b2", "b3"]
    first, second, third = (r.signal_batch for r in responses)
    assert [s.prediction_id for s in first.signals] == ["p1", "p2"]
    assert first.actionable_count == 2
    eurusd, usdjpy = first.signals
    assert eurusd.signal_type == signal_pb2.SIGNAL_TYPE_BUY
    assert eurusd.risk_status == signal_pb2.RISK_STATUS_NOT_ASSESSED
    assert eurusd.entry.stop_loss < eurusd.entry.entry_price < eurusd.entry.take_profit
    # 20 pips below the ask, in each instrument's own pips.
    assert eurusd.entry.entry_price - eurusd.entry.stop_loss == pytest.approx(0.0020)
    assert usdjpy.entry.entry_price - usdjpy.entry.stop_loss == pytest.approx(0.20)
    assert eurusd.generated_at.ToNanoseconds() == NOW_NS
    assert second.rejected_count == 1
    assert second.signals[0].reason == signal_pb2.DISPOSITION_REASON_CONFIDENCE_BELOW_THRESHOLD
    assert second.signals[0].risk_status == signal_pb2.RISK_STATUS_NOT_REQUIRED
    assert (
        "0.5000 is below min_confidence_threshold 0.7000" in second.signals[0].cancellation_reason
    )
    # PRO trades the majors only.
    assert third.signals[0].reason == signal_pb2.DISPOSITION_REASON_INSTRUMENT_NOT_ENTITLED


async def test_every_number_is_traced_to_a_rule(fixed_stub: Stub) -> None:
    responses = [
        r
        async for r in fixed_stub.ProcessPredictions(iter(_requests(batch("b", [prediction("p")]))))
    ]
    signal = responses[0].signal_batch.signals[0]
    steps = {step.rule: step for step in signal.decision_trace}
    assert steps[signal_pb2.DECISION_RULE_CONFIDENCE].observed == pytest.approx(0.86)
    assert steps[signal_pb2.DECISION_RULE_CONFIDENCE].threshold == pytest.approx(0.7)
    assert steps[signal_pb2.DECISION_RULE_STRENGTH].observed == pytest.approx(signal.strength)
    assert steps[signal_pb2.DECISION_RULE_POSITION_SIZE].observed == pytest.approx(
        signal.entry.position_size_lots
    )
    assert steps[signal_pb2.DECISION_RULE_STOP_LOSS].observed == pytest.approx(
        signal.entry.stop_loss_pips
    )
    # risk_budget / (stop pips x pip value) x size factor, floored to 0.01 lots.
    expected_lots = math.floor(
        signal.entry.risk_budget / (signal.entry.stop_loss_pips * signal.entry.pip_value)
        * signal.entry.size_factor * 100 + 1e-9
    ) / 100  # fmt: skip
    assert signal.entry.position_size_lots == pytest.approx(expected_lots)
    assert all(step.outcome != signal_pb2.RULE_OUTCOME_FAIL for step in signal.decision_trace)


async def test_same_input_and_clock_give_byte_identical_signals(
    engine_settings: EngineSettings, tokens: Tokens, tmp_path: Path
) -> None:
    outputs = []
    for run in range(2):
        # A database each: decided afresh, not answered from the first run's history.
        settings = dataclasses.replace(engine_settings, store_url=f"sqlite:///{tmp_path}/{run}.db")
        application = Application(settings, clock=FixedClock(NOW_NS))
        await application.start()
        try:
            async with tokens.channel(application.grpc_address) as channel:
                stub = service_grpc.TradingEngineServiceStub(channel)
                batches = [
                    batch(f"b{i}", [prediction(f"p{i}"), prediction(f"q{i}", "GBPUSD")])
                    for i in range(3)
                ]
                outputs.append(
                    [
                        r.SerializeToString()
                        async for r in stub.ProcessPredictions(iter(_requests(*batches)))
                    ]
                )
        finally:
            await application.stop()
    assert outputs[0] == outputs[1]
    assert len(outputs[0]) == 3


async def test_a_prediction_delivered_twice_returns_the_same_signal(fixed_stub: Stub) -> None:
    again = batch("b2", [prediction("p1"), prediction("p9", "GBPUSD")])
    responses = [
        r.signal_batch
        async for r in fixed_stub.ProcessPredictions(
            iter(_requests(batch("b1", [prediction("p1")]), again))
        )
    ]
    first, second = responses
    assert second.signals[0] == first.signals[0]
    assert second.signals[0].disposition == signal_pb2.SIGNAL_DISPOSITION_ACTIONABLE


async def _decided_by_a_new_engine(
    settings: EngineSettings, tokens: Tokens, at_ns: int, *predictions: Prediction
) -> list[signal_pb2.TradingSignal]:
    """Start an engine on `settings` (its store included) at `at_ns`, decide one batch, stop.

    Each signal is checked to be the one ExplainSignal shows.
    """
    application = Application(settings, clock=FixedClock(at_ns))
    await application.start()
    try:
        async with tokens.channel(application.grpc_address) as channel:
            stub = service_grpc.TradingEngineServiceStub(channel)
            requests = iter(_requests(batch(f"b-{at_ns}", [*predictions])))
            [response] = [r async for r in stub.ProcessPredictions(requests)]
            signals = list(response.signal_batch.signals)
            for each in signals:
                request = service_pb2.ExplainSignalRequest(signal_id=each.signal_id)
                assert (await stub.ExplainSignal(request)).signal == each
            return signals
    finally:
        await application.stop()  # writes the history still queued


async def test_a_prediction_delivered_again_after_a_restart_gets_the_signal_it_got(
    engine_settings: EngineSettings, tokens: Tokens
) -> None:
    def decide(at_ns: int, *predictions: Prediction) -> Any:
        return _decided_by_a_new_engine(engine_settings, tokens, at_ns, *predictions)

    unreadable = prediction("p2", "GBPUSD")
    unreadable.confidence = math.nan
    buy, refused = await decide(NOW_NS, prediction("p1"), unreadable)
    assert refused.disposition == signal_pb2.SIGNAL_DISPOSITION_INVALID

    # After the restart, a second later: the same prediction, and p2 corrected.
    again, corrected = await decide(
        NOW_NS + 1_000_000_000, prediction("p1"), prediction("p2", "GBPUSD")
    )

    # Byte for byte what it got before (decided at NOW_NS), which ExplainSignal shows too.
    assert again.SerializeToString() == buy.SerializeToString()
    assert again.generated_at.ToNanoseconds() == NOW_NS
    # A refused prediction is not held against its correction: decided now, and explained
    # (above) as decided now.
    assert corrected.signal_id == refused.signal_id
    assert corrected.disposition == signal_pb2.SIGNAL_DISPOSITION_ACTIONABLE
    assert corrected.generated_at.ToNanoseconds() == NOW_NS + 1_000_000_000


async def test_a_restart_does_not_signal_again_what_it_just_signalled(
    engine_settings: EngineSettings, tokens: Tokens
) -> None:
    [first] = await _decided_by_a_new_engine(engine_settings, tokens, NOW_NS, prediction("p1"))
    assert first.disposition == signal_pb2.SIGNAL_DISPOSITION_ACTIONABLE

    # A minute later, after a restart: another prediction, the same buy at the same price.
    later_ns = NOW_NS + 60 * 1_000_000_000
    fresh = prediction("p2", observed_ns=later_ns - 200_000_000)
    [second] = await _decided_by_a_new_engine(engine_settings, tokens, later_ns, fresh)

    assert second.disposition == signal_pb2.SIGNAL_DISPOSITION_SUPPRESSED
    assert second.reason == signal_pb2.DISPOSITION_REASON_DUPLICATE_SIGNAL
    assert f"signal {first.signal_id} on the same side was issued 60.0 s ago" in (
        second.cancellation_reason
    )


async def test_bad_predictions_are_answered_invalid_while_the_rest_is_decided(
    fixed_stub: Stub,
) -> None:
    bad_confidence = prediction("nan")
    bad_confidence.confidence = math.nan
    bad_price = prediction("zero-price")
    bad_price.current_price = 0.0
    unknown = prediction("unknown")
    unknown.symbol = "DOGEUSD"
    oversized = [prediction(f"extra-{i}", "GBPUSD") for i in range(17)]
    predictions = [bad_confidence, prediction("good"), bad_price, unknown, prediction("good")]
    response = await fixed_stub.ProcessPredictionBatch(
        service_pb2.ProcessPredictionBatchRequest(batch=batch("b", predictions + oversized))
    )
    signals = response.signal_batch.signals
    assert len(signals) == 22
    by_reason = [(s.prediction_id, s.disposition, s.reason) for s in signals[:5]]
    invalid = signal_pb2.SIGNAL_DISPOSITION_INVALID
    assert by_reason == [
        ("nan", invalid, signal_pb2.DISPOSITION_REASON_INVALID_PREDICTION),
        ("good", signal_pb2.SIGNAL_DISPOSITION_ACTIONABLE, 0),
        ("zero-price", invalid, signal_pb2.DISPOSITION_REASON_INVALID_PREDICTION),
        ("unknown", invalid, signal_pb2.DISPOSITION_REASON_UNKNOWN_SYMBOL),
        ("good", invalid, signal_pb2.DISPOSITION_REASON_INVALID_PREDICTION),
    ]
    assert "confidence" in signals[0].cancellation_reason
    assert "current_price" in signals[2].cancellation_reason
    assert "repeats an earlier prediction_id" in signals[4].cancellation_reason
    assert signals[4].signal_id != signals[1].signal_id
    # The engine decides at most max_batch_size (20) predictions of a batch.
    assert [s.disposition for s in signals[20:]] == [invalid, invalid]
    assert "exceeds 20 predictions" in signals[21].cancellation_reason
    assert response.signal_batch.invalid_count == 6


def _long_correlation_id() -> service_pb2.ProcessPredictionsRequest:
    # Copied onto every signal of the batch: 129 characters refuse it, 128 are decided (above).
    request = service_pb2.ProcessPredictionsRequest(batch=batch("b", []))
    request.batch.correlation_id = "c" * 129
    return request


def _without_tenant() -> service_pb2.ProcessPredictionsRequest:
    request = service_pb2.ProcessPredictionsRequest(batch=batch("b", []))
    request.batch.ClearField("user_context")
    return request


@pytest.mark.parametrize(
    ("request_message", "violations"),
    [
        (service_pb2.ProcessPredictionsRequest(), {"batch": "required"}),
        (
            service_pb2.ProcessPredictionsRequest(batch=batch("", [])),
            {"batch.batch_id": "required"},
        ),
        (_without_tenant(), {"batch.user_context": "required: the tenant"}),
        (_long_correlation_id(), {"batch.correlation_id": "longer than 128"}),
    ],
    ids=["no-batch", "no-batch-id", "no-tenant", "long-correlation-id"],
)
async def test_a_malformed_stream_message_ends_the_stream_with_invalid_argument(
    fixed_stub: Stub,
    request_message: service_pb2.ProcessPredictionsRequest,
    violations: dict[str, str],
) -> None:
    good = service_pb2.ProcessPredictionsRequest(batch=batch("ok", [prediction("p")]))
    good.batch.correlation_id = "c" * 128
    call = fixed_stub.ProcessPredictions(iter([good, request_message, good]))
    first = await call.read()
    assert isinstance(first, service_pb2.ProcessPredictionsResponse)
    assert first.signal_batch.batch_id == "ok"
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await call.read()
    error = from_rpc_error(raised.value)
    assert isinstance(error, InvalidArgumentError)
    assert error.field_violations == violations


async def test_undecodable_bytes_are_invalid_argument(
    fixed_engine: Application, tokens: Tokens
) -> None:
    async with tokens.channel(fixed_engine.grpc_address) as channel:
        raw = channel.unary_unary(
            "/tradeflow.trading.v1.TradingEngineService/ProcessPredictionBatch",
            request_serializer=bytes,
            response_deserializer=bytes,
        )
        with pytest.raises(grpc.aio.AioRpcError) as raised:
            await raw(b"\x0a\x05ab", timeout=5)
    error = from_rpc_error(raised.value)
    assert isinstance(error, InvalidArgumentError)
    assert error.reason == "UNDECODABLE"


async def test_a_client_that_stops_reading_holds_the_server_back(
    fixed_engine: Application, fixed_stub: Stub
) -> None:
    total = 3000
    call = fixed_stub.ProcessPredictions()
    request = service_pb2.ProcessPredictionsRequest(
        batch=batch("b", [prediction(f"p{i}") for i in range(10)])
    )

    async def write_all() -> None:
        for _ in range(total):
            await call.write(request)
        await call.done_writing()

    writer = asyncio.create_task(write_all())
    await asyncio.sleep(2.0)
    decided_while_not_reading = fixed_engine.engine.stats.predictions_decided
    assert not writer.done(), "writes should block once the server stops reading"
    assert decided_while_not_reading < total * 10 // 4
    answered = 0
    async for _ in call:
        answered += 1
    await writer
    assert answered == total
    assert fixed_engine.engine.stats.predictions_decided == total * 10


async def test_health_check_counts_what_was_decided(fixed_stub: Stub) -> None:
    await fixed_stub.ProcessPredictionBatch(
        service_pb2.ProcessPredictionBatchRequest(
            batch=batch("b", [prediction("p1"), prediction("p2", "GBPUSD")])
        )
    )
    health = await fixed_stub.HealthCheck(service_pb2.HealthCheckRequest())
    assert health.predictions_decided == 2
    assert health.signals_today == 2
    assert health.average_decision_time_us > 0
    # Encoding is part of deciding.
    assert 0 < health.average_serialization_time_us < health.average_decision_time_us
    assert (health.active_users, health.active_strategies) == (1, 1)
    assert (health.signals_closed, health.strategy_accuracy) == (0, 0.0)


@pytest.mark.parametrize(
    ("tenant", "reason"),
    [
        pytest.param({"user_id": "trader-2"}, "TENANT_MISMATCH", id="another-user"),
        pytest.param({"company_id": "rival"}, "TENANT_MISMATCH", id="another-company"),
        pytest.param({"tier": tier_pb2.SUBSCRIPTION_TIER_ENTERPRISE}, "TIER_MISMATCH", id="tier"),
    ],
)
async def test_a_batch_for_another_tenant_is_refused_and_nothing_decided(
    fixed_stub: Stub, tenant: dict[str, Any], reason: str
) -> None:
    # The channel calls as trader-1 of acme on PRO (tests/support.py TRADER).
    foreign = batch("b", [prediction("p")], **tenant)
    with pytest.raises(grpc.aio.AioRpcError) as unary:
        await fixed_stub.ProcessPredictionBatch(
            service_pb2.ProcessPredictionBatchRequest(batch=foreign)
        )
    stream = fixed_stub.ProcessPredictions(iter(_requests(foreign)))
    with pytest.raises(grpc.aio.AioRpcError) as streaming:
        async for _ in stream:
            pass
    for raised in (unary.value, streaming.value):
        error = from_rpc_error(raised)
        assert isinstance(error, PermissionDeniedError)
        assert error.reason == reason
    health = await fixed_stub.HealthCheck(service_pb2.HealthCheckRequest())
    assert health.predictions_decided == 0
