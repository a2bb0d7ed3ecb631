"""The reference risk service on a real loopback gRPC server: its rules, the latency and
failures it injects, and the `trading-engine risk-service` command."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import subprocess
import time
from collections.abc import AsyncIterator

import grpc
import pytest

from tests.support import BIN, running
from tradeflow.common.v1 import risk_level_pb2, user_context_pb2
from tradeflow.risk.v1 import risk_service_pb2 as risk_pb2
from tradeflow.risk.v1 import risk_service_pb2_grpc as risk_grpc
from tradeflow.trading.v1 import signal_pb2
from trading_engine.risk.reference import ReferenceRiskServicer, RiskBehaviour, start_server

LOW = risk_level_pb2.RISK_LEVEL_LOW
MEDIUM = risk_level_pb2.RISK_LEVEL_MEDIUM
HIGH = risk_level_pb2.RISK_LEVEL_HIGH
EXTREME = risk_level_pb2.RISK_LEVEL_EXTREME


def trading_signal(
    signal_id: str = "sig-1",
    *,
    symbol: str = "EURUSD",
    signal_type: signal_pb2.SignalType.ValueType = signal_pb2.SIGNAL_TYPE_BUY,
    size_lots: float = 0.5,
    entry_price: float = 1.08500,
    stop_loss: float = 1.08300,
    stop_loss_pips: float = 20.0,
) -> signal_pb2.TradingSignal:
    """An actionable signal as the engine sends it, with the fields the service reads."""
    return signal_pb2.TradingSignal(
        signal_id=signal_id,
        symbol=symbol,
        user_id="trader-1",
        company_id="acme",
        signal_type=signal_type,
        disposition=signal_pb2.SIGNAL_DISPOSITION_ACTIONABLE,
        entry=signal_pb2.EntryStrategy(
            order_type=signal_pb2.ORDER_TYPE_MARKET,
            reference_price=entry_price,
            entry_price=entry_price,
            stop_loss=stop_loss,
            stop_loss_pips=stop_loss_pips,
            position_size_lots=size_lots,
        ),
    )


def assess_request(*signals: signal_pb2.TradingSignal) -> risk_pb2.AssessSignalRequest:
    return risk_pb2.AssessSignalRequest(
        user_context=user_context_pb2.UserContext(user_id="trader-1", company_id="acme"),
        signals=signals,
    )


@contextlib.asynccontextmanager
async def serving(
    servicer: ReferenceRiskServicer,
) -> AsyncIterator[risk_grpc.RiskManagementServiceAsyncStub]:
    server, port = await start_server(servicer)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
            yield risk_grpc.RiskManagementServiceStub(channel)
    finally:
        await server.stop(None)


async def failure(
    stub: risk_grpc.RiskManagementServiceAsyncStub, request: risk_pb2.AssessSignalRequest
) -> grpc.aio.AioRpcError:
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await stub.AssessSignal(request, timeout=5)
    return raised.value


@pytest.fixture
def behaviour() -> RiskBehaviour:
    return RiskBehaviour()


@pytest.fixture
def servicer(behaviour: RiskBehaviour) -> ReferenceRiskServicer:
    return ReferenceRiskServicer(behaviour)


@pytest.fixture
async def stub(
    servicer: ReferenceRiskServicer,
) -> AsyncIterator[risk_grpc.RiskManagementServiceAsyncStub]:
    async with serving(servicer) as opened:
        yield opened


async def test_size_grades_low_medium_high_and_recommends_the_limit(
    stub: risk_grpc.RiskManagementServiceAsyncStub,
) -> None:
    before_ns = time.time_ns()
    response = await stub.AssessSignal(
        assess_request(
            trading_signal("half", size_lots=1.0),
            trading_signal("limit", size_lots=2.0),
            trading_signal("over", size_lots=2.5),
        ),
        timeout=5,
    )
    after_ns = time.time_ns()
    assessments = response.assessments
    assert [a.signal_id for a in assessments] == ["half", "limit", "over"]
    assert [a.risk_level for a in assessments] == [LOW, MEDIUM, HIGH]
    assert [a.recommended_position_size_lots for a in assessments] == [0.0, 0.0, 2.0]
    assert assessments[2].reasons == ["size 2.5 lots is above the 2-lot limit; reduce it to 2 lots"]
    for assessment in assessments:
        assert assessment.reasons
        assert not assessment.recommended_stop_loss_tighter
        assert before_ns <= assessment.assessed_at.ToNanoseconds() <= after_ns


async def test_a_signal_without_entry_is_low_and_not_actionable(
    stub: risk_grpc.RiskManagementServiceAsyncStub,
) -> None:
    hold = signal_pb2.TradingSignal(
        signal_id="held",
        symbol="EURUSD",
        signal_type=signal_pb2.SIGNAL_TYPE_HOLD,
        disposition=signal_pb2.SIGNAL_DISPOSITION_HOLD,
    )
    response = await stub.AssessSignal(assess_request(hold), timeout=5)
    [assessment] = response.assessments
    assert assessment.signal_id == "held"
    assert assessment.risk_level == LOW
    assert list(assessment.reasons) == ["not actionable"]


async def test_a_wide_stop_gets_a_tighter_one_on_the_losing_side(
    behaviour: RiskBehaviour, stub: risk_grpc.RiskManagementServiceAsyncStub
) -> None:
    behaviour.max_stop_loss_pips = 50.0
    response = await stub.AssessSignal(
        assess_request(
            # 80 pips below a EURUSD buy (pip 0.0001): 50 pips is 1.08000.
            trading_signal("buy", entry_price=1.08500, stop_loss=1.07700, stop_loss_pips=80.0),
            # 80 pips above a USDJPY sell (pip 0.01): 50 pips is 151.750.
            trading_signal(
                "sell",
                symbol="USDJPY",
                signal_type=signal_pb2.SIGNAL_TYPE_SELL,
                entry_price=151.250,
                stop_loss=152.050,
                stop_loss_pips=80.0,
            ),
            trading_signal(
                "weak-sell",
                signal_type=signal_pb2.SIGNAL_TYPE_WEAK_SELL,
                entry_price=1.08500,
                stop_loss=1.09100,
                stop_loss_pips=60.0,
            ),
            # Exactly at the limit: left alone.
            trading_signal("at-limit", entry_price=1.08500, stop_loss=1.08000, stop_loss_pips=50.0),
        ),
        timeout=5,
    )
    buy, sell, weak_sell, at_limit = response.assessments
    assert buy.recommended_stop_loss == pytest.approx(1.08000, abs=1e-9)
    assert sell.recommended_stop_loss == pytest.approx(151.750, abs=1e-9)
    assert weak_sell.recommended_stop_loss == pytest.approx(1.09000, abs=1e-9)
    for tightened in (buy, sell, weak_sell):
        assert tightened.recommended_stop_loss_tighter
        # A size of 0.5 lots alone is LOW; the wide stop raises it.
        assert tightened.risk_level == HIGH
    assert "tighten it to 1.08000, 50 pips below the entry at 1.08500" in buy.reasons[-1]
    assert "tighten it to 151.750, 50 pips above the entry at 151.250" in sell.reasons[-1]
    assert not at_limit.recommended_stop_loss_tighter
    assert at_limit.recommended_stop_loss == 0.0
    assert at_limit.risk_level == LOW


async def test_an_extreme_symbol_is_extreme_and_others_are_not(
    behaviour: RiskBehaviour, stub: risk_grpc.RiskManagementServiceAsyncStub
) -> None:
    behaviour.extreme_symbols = frozenset({"XAUUSD"})
    response = await stub.AssessSignal(
        assess_request(
            trading_signal("gold", symbol="XAUUSD", entry_price=2350.00, stop_loss=2348.00),
            trading_signal("euro"),
        ),
        timeout=5,
    )
    gold, euro = response.assessments
    assert gold.risk_level == EXTREME
    assert any("XAUUSD" in reason for reason in gold.reasons)
    assert euro.risk_level == LOW


async def test_a_fixed_level_replaces_the_rules_but_keeps_the_recommendations(
    behaviour: RiskBehaviour, stub: risk_grpc.RiskManagementServiceAsyncStub
) -> None:
    behaviour.fixed_level = LOW
    response = await stub.AssessSignal(
        assess_request(trading_signal(size_lots=3.0, stop_loss=1.07700, stop_loss_pips=80.0)),
        timeout=5,
    )
    [assessment] = response.assessments
    assert assessment.risk_level == LOW
    assert assessment.recommended_position_size_lots == 2.0
    assert assessment.recommended_stop_loss_tighter
    assert assessment.reasons[-1] == (
        "level fixed at RISK_LEVEL_LOW by the service's configuration; "
        "the rules said RISK_LEVEL_HIGH"
    )


async def test_latency_outlasting_the_deadline_ends_in_deadline_exceeded(
    behaviour: RiskBehaviour,
    servicer: ReferenceRiskServicer,
    stub: risk_grpc.RiskManagementServiceAsyncStub,
) -> None:
    behaviour.latency_s = 0.2
    with pytest.raises(grpc.aio.AioRpcError) as raised:
        await stub.AssessSignal(assess_request(trading_signal()), timeout=0.05)
    assert raised.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    started = time.monotonic()
    response = await stub.AssessSignal(assess_request(trading_signal()), timeout=5)
    assert time.monotonic() - started >= 0.2
    assert response.assessments[0].risk_level == LOW
    assert servicer.calls == 2


async def test_error_rate_one_fails_every_call_with_unavailable(
    behaviour: RiskBehaviour,
    servicer: ReferenceRiskServicer,
    stub: risk_grpc.RiskManagementServiceAsyncStub,
) -> None:
    behaviour.error_rate = 1.0
    for _ in range(5):
        error = await failure(stub, assess_request(trading_signal()))
        assert error.code() == grpc.StatusCode.UNAVAILABLE
        assert "injected failure" in (error.details() or "")
    assert (servicer.calls, servicer.failures_injected) == (5, 5)


async def test_a_seeded_error_rate_fails_the_same_calls_every_run() -> None:
    async def outcomes(servicer: ReferenceRiskServicer) -> list[grpc.StatusCode]:
        codes = []
        async with serving(servicer) as stub:
            for _ in range(20):
                try:
                    await stub.AssessSignal(assess_request(trading_signal()), timeout=5)
                except grpc.aio.AioRpcError as error:
                    codes.append(error.code())
                else:
                    codes.append(grpc.StatusCode.OK)
        return codes

    first = ReferenceRiskServicer(RiskBehaviour(error_rate=0.5, seed=42))
    # Seeded differently at start, then given the same seed: the draws start over from it.
    second = ReferenceRiskServicer(RiskBehaviour(seed=7))
    second.behaviour.seed = 42
    second.behaviour.error_rate = 0.5
    first_run = await outcomes(first)
    assert await outcomes(second) == first_run
    assert set(first_run) == {grpc.StatusCode.OK, grpc.StatusCode.UNAVAILABLE}
    failed = first_run.count(grpc.StatusCode.UNAVAILABLE)
    assert first.failures_injected == second.failures_injected == failed


async def test_changing_the_behaviour_between_calls_changes_the_answers(
    behaviour: RiskBehaviour, stub: risk_grpc.RiskManagementServiceAsyncStub
) -> None:
    request = assess_request(trading_signal(size_lots=1.5))

    async def level() -> int:
        response = await stub.AssessSignal(request, timeout=5)
        return response.assessments[0].risk_level

    assert await level() == MEDIUM
    behaviour.max_lots = 1.0
    assert await level() == HIGH
    behaviour.extreme_symbols = frozenset({"EURUSD"})
    assert await level() == EXTREME
    behaviour.error_rate = 1.0
    assert (await failure(stub, request)).code() == grpc.StatusCode.UNAVAILABLE


@pytest.mark.parametrize(
    ("bad_request", "complaint"),
    [
        (
            risk_pb2.AssessSignalRequest(signals=[trading_signal()]),
            "user_context.user_id is required",
        ),
        (
            risk_pb2.AssessSignalRequest(
                user_context=user_context_pb2.UserContext(user_id="trader-1")
            ),
            "signals is empty",
        ),
        (
            assess_request(trading_signal(), trading_signal(symbol="DOGEUSD")),
            "signals[1].symbol 'DOGEUSD' is not an instrument the engine trades",
        ),
    ],
)
async def test_bad_requests_are_invalid_argument(
    stub: risk_grpc.RiskManagementServiceAsyncStub,
    bad_request: risk_pb2.AssessSignalRequest,
    complaint: str,
) -> None:
    error = await failure(stub, bad_request)
    assert error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert complaint in (error.details() or "")


async def test_a_busy_port_is_reported_with_what_to_do(servicer: ReferenceRiskServicer) -> None:
    server, port = await start_server(servicer)
    try:
        with pytest.raises(OSError, match=rf"cannot listen on 127\.0\.0\.1:{port}.*--port"):
            await start_server(ReferenceRiskServicer(), port=port)
    finally:
        await server.stop(None)


async def test_command_serves_its_flags_until_sigterm() -> None:
    async with running(
        "risk-service", "--port", "0", "--max-lots", "1", "--extreme-symbol", "XAUUSD"
    ) as service:
        address = (await service.wait_for_line(r"risk service listening on (\S+)")).group(1)
        async with grpc.aio.insecure_channel(address) as channel:
            stub: risk_grpc.RiskManagementServiceAsyncStub = risk_grpc.RiskManagementServiceStub(
                channel
            )
            response = await stub.AssessSignal(
                assess_request(
                    trading_signal("euro", size_lots=1.5),
                    trading_signal("gold", symbol="XAUUSD", entry_price=2350.0, stop_loss=2348.0),
                ),
                timeout=5,
            )
        euro, gold = response.assessments
        assert (euro.risk_level, euro.recommended_position_size_lots) == (HIGH, 1.0)
        assert gold.risk_level == EXTREME
        assert await service.signal_and_wait(signal.SIGTERM) == 0


def _risk_service(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BIN / "trading-engine"), "risk-service", *args],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


@pytest.mark.parametrize(
    ("args", "complaint"),
    [
        (
            ("--error-rate", "1.5"),
            "argument --error-rate: 1.5 is not allowed: use a number from 0 to 1",
        ),
        (("--latency-ms", "-1"), "argument --latency-ms: -1 is not allowed: use a number >= 0"),
        (("--max-lots", "0"), "argument --max-lots: 0 is not allowed: use a number > 0"),
        (("--max-lots", "nan"), "argument --max-lots: 'nan' is not a finite number"),
        (("--level", "huge"), "argument --level: invalid choice: 'huge'"),
    ],
)
async def test_command_explains_values_out_of_range(args: tuple[str, ...], complaint: str) -> None:
    result = await asyncio.to_thread(_risk_service, *args)
    assert result.returncode == 2
    assert complaint in result.stderr


async def test_command_help_shows_examples() -> None:
    result = await asyncio.to_thread(_risk_service, "--help")
    assert result.returncode == 0
    assert "examples:" in result.stdout
    assert "trading-engine risk-service --port 0" in result.stdout
    assert "{low,medium,high,very_high,extreme}" in result.stdout
