"""Trading states, the stop-loss cooldown, the drawdown halt, adaptive strategies and the
audit chain of a signal, on a real server with a real store."""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

import pytest
from google.protobuf import field_mask_pb2

from tests.api.trading import CLOSED_NS, PIP, ManualClock, decide, failure, record, result
from tests.factories import NOW_NS, batch, prediction
from tests.support import (
    ADMIN,
    FREE_USER,
    RIVAL_ADMIN,
    TRADER,
    Stubs,
    Tokens,
    http_json_async,
    rest_gateway,
)
from tradeflow.ml.v1 import prediction_pb2
from tradeflow.trading.v1 import execution_pb2, signal_pb2, strategy_pb2
from tradeflow.trading.v1 import trading_engine_service_pb2 as service_pb2
from trading_engine.app import Application
from trading_engine.config import EngineSettings
from trading_engine_client.errors import (
    InvalidArgumentError,
    NotFoundError,
    PermissionDeniedError,
)

if TYPE_CHECKING:
    from tradeflow.trading.v1 import trading_engine_service_pb2_grpc as service_grpc

    Stub = service_grpc.TradingEngineServiceAsyncStub

E = execution_pb2
S = signal_pb2
SVC = service_pb2
MINUTE_NS = 60_000_000_000
ADAPTIVE = strategy_pb2.STRATEGY_LAYER_ADAPTIVE


@pytest.fixture
def engine_settings(engine_settings: EngineSettings) -> EngineSettings:
    # Three closed signals are enough evidence here; the default is 20.
    return dataclasses.replace(engine_settings, adaptive_min_closed_signals=3)


async def _set_state(stub: Stub, state: int, user_id: str = "", reason: str = "test") -> None:
    """Set `user_id`'s state, or the company's when no user is named."""
    scope = SVC.TRADING_STATE_SCOPE_USER if user_id else SVC.TRADING_STATE_SCOPE_COMPANY
    await stub.SetTradingState(
        SVC.SetTradingStateRequest(user_id=user_id, state=state, reason=reason, scope=scope)  # type: ignore[arg-type]
    )


async def _decide_at(
    stub: Stub, clock: ManualClock, batch_id: str, symbol: str, direction: int
) -> signal_pb2.TradingSignal:
    """One prediction priced a moment before the engine's clock."""
    message = prediction(
        f"{batch_id}-{symbol}", symbol, direction, observed_ns=clock.now - 200_000_000
    )
    response = await stub.ProcessPredictionBatch(
        SVC.ProcessPredictionBatchRequest(batch=batch(batch_id, [message]))
    )
    [signal] = response.signal_batch.signals
    return signal


async def _close(
    stub: Stub,
    signal: signal_pb2.TradingSignal,
    pips: float,
    money: float | None = None,
    reason: int = E.CLOSE_REASON_MANUAL,
) -> execution_pb2.SignalPerformance:
    """Fill at the entry and close `pips` pips away in the signal's favour (negative: against)."""
    price = signal.entry.entry_price
    side = 1 if signal.signal_type in (S.SIGNAL_TYPE_BUY, S.SIGNAL_TYPE_WEAK_BUY) else -1
    close = result(
        signal, f"x-{signal.signal_id}", E.EXECUTION_STATUS_CLOSED, price,
        round(price + side * pips * PIP, 5), close_reason=reason,
    )  # fmt: skip
    if money is not None:
        close.profit_loss, close.currency = money, "USD"
    return await record(stub, close)


# --- Trading states ----------------------------------------------------------------------------


async def test_an_admin_halt_holds_the_users_signals_until_resumed(stubs_: Stubs) -> None:
    trader, admin = stubs_.as_(TRADER), stubs_.as_(ADMIN)
    [before] = await decide(trader, "b1", "EURUSD")
    assert before.disposition == S.SIGNAL_DISPOSITION_ACTIONABLE

    await _set_state(admin, SVC.TRADING_STATE_HALTED, TRADER.user_id, "broker outage")
    [halted] = await decide(trader, "b2", "GBPUSD")
    assert halted.disposition == S.SIGNAL_DISPOSITION_HOLD
    assert halted.reason == S.DISPOSITION_REASON_TRADING_HALTED
    assert halted.cancellation_reason == (
        "trading is halted for user trader-1 (set by ops-1: broker outage)"
    )
    assert halted.decision_trace[-1].rule == S.DECISION_RULE_TRADING_STATE
    assert not halted.HasField("entry")

    state = await trader.GetTradingState(SVC.GetTradingStateRequest())
    assert state.effective_state == SVC.TRADING_STATE_HALTED
    assert state.user_setting.cause == SVC.TRADING_STATE_CAUSE_ADMIN
    assert state.user_setting.changed_by == ADMIN.user_id
    assert state.user_setting.changed_at.ToNanoseconds() == NOW_NS
    assert not state.HasField("company_setting")

    await _set_state(admin, SVC.TRADING_STATE_ACTIVE, TRADER.user_id, "broker back")
    [resumed] = await decide(trader, "b3", "USDJPY")
    assert resumed.disposition == S.SIGNAL_DISPOSITION_ACTIONABLE


async def test_a_company_setting_applies_to_every_user_and_the_stricter_wins(
    stubs_: Stubs,
) -> None:
    trader, admin = stubs_.as_(TRADER), stubs_.as_(ADMIN)
    await decide(trader, "b1", "EURUSD")  # the engine now knows trader-1
    await _set_state(admin, SVC.TRADING_STATE_ACTIVE, TRADER.user_id)
    await _set_state(admin, SVC.TRADING_STATE_REDUCE_ONLY, reason="month-end review")

    [held] = await decide(trader, "b2", "GBPUSD")
    assert held.reason == S.DISPOSITION_REASON_REDUCE_ONLY
    assert "trading is reduce-only for company acme (set by ops-1: month-end review)" in (
        held.cancellation_reason
    )
    state = await admin.GetTradingState(SVC.GetTradingStateRequest(user_id=TRADER.user_id))
    assert state.effective_state == SVC.TRADING_STATE_REDUCE_ONLY
    assert state.user_setting.state == SVC.TRADING_STATE_ACTIVE
    assert state.company_setting.state == SVC.TRADING_STATE_REDUCE_ONLY
    assert state.company_setting.user_id == ""


async def test_reduce_only_lets_a_signal_against_an_open_position_through(
    stubs_: Stubs, clock: ManualClock
) -> None:
    trader, admin = stubs_.as_(TRADER), stubs_.as_(ADMIN)
    buy = await _decide_at(trader, clock, "b1", "EURUSD", prediction_pb2.DIRECTION_UP)
    await record(trader, result(buy, "x1", E.EXECUTION_STATUS_FILLED, buy.entry.entry_price))
    await _set_state(admin, SVC.TRADING_STATE_REDUCE_ONLY, TRADER.user_id)

    more = await _decide_at(trader, clock, "b2", "GBPUSD", prediction_pb2.DIRECTION_UP)
    sell = await _decide_at(trader, clock, "b3", "EURUSD", prediction_pb2.DIRECTION_DOWN)

    assert more.reason == S.DISPOSITION_REASON_REDUCE_ONLY
    assert sell.disposition == S.SIGNAL_DISPOSITION_ACTIONABLE
    assert any(
        step.rule == S.DECISION_RULE_TRADING_STATE and step.outcome == S.RULE_OUTCOME_PASS
        for step in sell.decision_trace
    )


async def test_setting_a_state_is_for_admins_and_bad_requests_name_each_field(
    stubs_: Stubs,
) -> None:
    trader, admin = stubs_.as_(TRADER), stubs_.as_(ADMIN)

    denied = await failure(_set_state(trader, SVC.TRADING_STATE_HALTED))
    assert isinstance(denied, PermissionDeniedError)

    invalid = await failure(
        admin.SetTradingState(SVC.SetTradingStateRequest(user_id=TRADER.user_id))
    )
    assert isinstance(invalid, InvalidArgumentError)
    assert set(invalid.field_violations) == {"state", "reason"}

    unknown = await failure(_set_state(admin, SVC.TRADING_STATE_HALTED, "trader-l"))
    assert isinstance(unknown, NotFoundError)
    assert unknown.reason == "USER_NOT_FOUND"

    # A user of another company is out of reach: the rival admin's setting is for their own.
    rival = stubs_.as_(RIVAL_ADMIN)
    await _set_state(rival, SVC.TRADING_STATE_HALTED, reason="rival halt")
    [ours] = await decide(trader, "b1", "EURUSD")
    assert ours.disposition == S.SIGNAL_DISPOSITION_ACTIONABLE


@pytest.mark.parametrize(
    ("scope", "user_id", "violation"),
    [
        pytest.param(
            SVC.TRADING_STATE_SCOPE_UNSPECIFIED,
            "",
            (
                "scope",
                "required: TRADING_STATE_SCOPE_COMPANY to set the company-wide state, "
                "or TRADING_STATE_SCOPE_USER with user_id",
            ),
            id="no scope, no user: the company is not assumed",
        ),
        pytest.param(
            SVC.TRADING_STATE_SCOPE_USER,
            "",
            ("user_id", "required for TRADING_STATE_SCOPE_USER: name the user"),
            id="user scope without the user",
        ),
        pytest.param(
            SVC.TRADING_STATE_SCOPE_COMPANY,
            TRADER.user_id,
            (
                "user_id",
                "must be empty for TRADING_STATE_SCOPE_COMPANY, which covers every user",
            ),
            id="company scope naming a user",
        ),
    ],
)
async def test_a_state_whose_scope_is_not_said_is_refused_and_nothing_is_halted(
    stubs_: Stubs, scope: int, user_id: str, violation: tuple[str, str]
) -> None:
    trader, admin = stubs_.as_(TRADER), stubs_.as_(ADMIN)
    await decide(trader, "b1", "EURUSD")
    request = SVC.SetTradingStateRequest(
        scope=scope,  # type: ignore[arg-type]
        user_id=user_id,
        state=SVC.TRADING_STATE_HALTED,
        reason="typo in the user field",
    )
    refused = await failure(admin.SetTradingState(request))
    assert isinstance(refused, InvalidArgumentError)
    assert refused.field_violations == dict([violation])

    state = await admin.GetTradingState(SVC.GetTradingStateRequest(user_id=TRADER.user_id))
    assert state.effective_state == SVC.TRADING_STATE_ACTIVE
    assert not state.HasField("company_setting")
    assert not state.HasField("user_setting")
    [signal] = await decide(trader, "b2", "GBPUSD")
    assert signal.disposition == S.SIGNAL_DISPOSITION_ACTIONABLE


async def test_a_user_id_without_a_scope_still_sets_that_user_only(stubs_: Stubs) -> None:
    # Callers from before the scope existed name the user and no scope: that stays USER.
    trader, admin = stubs_.as_(TRADER), stubs_.as_(ADMIN)
    await decide(trader, "b1", "EURUSD")
    await admin.SetTradingState(
        SVC.SetTradingStateRequest(
            user_id=TRADER.user_id, state=SVC.TRADING_STATE_HALTED, reason="old client"
        )
    )
    state = await admin.GetTradingState(SVC.GetTradingStateRequest(user_id=TRADER.user_id))
    assert state.user_setting.state == SVC.TRADING_STATE_HALTED
    assert not state.HasField("company_setting")
    own = await admin.GetTradingState(SVC.GetTradingStateRequest())
    assert own.effective_state == SVC.TRADING_STATE_ACTIVE


async def test_a_halt_survives_a_restart(
    stubs_: Stubs, fixed_engine: Application, engine_settings: EngineSettings,
    clock: ManualClock, tokens: Tokens,
) -> None:  # fmt: skip
    await decide(stubs_.as_(TRADER), "b1", "EURUSD")
    await _set_state(stubs_.as_(ADMIN), SVC.TRADING_STATE_HALTED, TRADER.user_id, "audit")
    await fixed_engine.stop()

    restarted = Application(engine_settings, clock=clock)
    await restarted.start()
    try:
        stubs = Stubs(restarted.grpc_address, tokens)
        try:
            [held] = await decide(stubs.as_(TRADER), "b2", "GBPUSD")
        finally:
            await stubs.close()
    finally:
        await restarted.stop()
    assert held.reason == S.DISPOSITION_REASON_TRADING_HALTED


# --- Stop-loss cooldown ------------------------------------------------------------------------


async def test_after_a_stop_loss_the_same_side_waits_for_the_cooldown(
    stubs_: Stubs, clock: ManualClock
) -> None:
    trader = stubs_.as_(TRADER)
    buy = await _decide_at(trader, clock, "b1", "EURUSD", prediction_pb2.DIRECTION_UP)
    stopped = await _close(trader, buy, -20, reason=E.CLOSE_REASON_STOP_LOSS)
    assert stopped.outcome == E.SIGNAL_OUTCOME_LOSS

    clock.now = CLOSED_NS + 10 * MINUTE_NS
    again = await _decide_at(trader, clock, "b2", "EURUSD", prediction_pb2.DIRECTION_UP)
    other_side = await _decide_at(trader, clock, "b3", "EURUSD", prediction_pb2.DIRECTION_DOWN)
    assert again.reason == S.DISPOSITION_REASON_STOP_LOSS_COOLDOWN
    assert "600 s ago; stop_loss_cooldown is 1800 s" in again.cancellation_reason
    assert other_side.disposition == S.SIGNAL_DISPOSITION_ACTIONABLE

    clock.now = CLOSED_NS + 30 * MINUTE_NS
    later = await _decide_at(trader, clock, "b4", "EURUSD", prediction_pb2.DIRECTION_UP)
    assert later.disposition == S.SIGNAL_DISPOSITION_ACTIONABLE


async def test_a_cooldown_survives_a_restart(
    stubs_: Stubs, fixed_engine: Application, engine_settings: EngineSettings,
    clock: ManualClock, tokens: Tokens,
) -> None:  # fmt: skip
    trader = stubs_.as_(TRADER)
    buy = await _decide_at(trader, clock, "b1", "EURUSD", prediction_pb2.DIRECTION_UP)
    await _close(trader, buy, -20, reason=E.CLOSE_REASON_STOP_LOSS)
    await fixed_engine.stop()

    clock.now = CLOSED_NS + 10 * MINUTE_NS
    restarted = Application(engine_settings, clock=clock)
    await restarted.start()
    try:
        stubs = Stubs(restarted.grpc_address, tokens)
        try:
            again = await _decide_at(
                stubs.as_(TRADER), clock, "b2", "EURUSD", prediction_pb2.DIRECTION_UP
            )
        finally:
            await stubs.close()
    finally:
        await restarted.stop()
    assert again.reason == S.DISPOSITION_REASON_STOP_LOSS_COOLDOWN


async def test_a_take_profit_starts_no_cooldown(stubs_: Stubs, clock: ManualClock) -> None:
    trader = stubs_.as_(TRADER)
    buy = await _decide_at(trader, clock, "b1", "EURUSD", prediction_pb2.DIRECTION_UP)
    await _close(trader, buy, 40, reason=E.CLOSE_REASON_TAKE_PROFIT)

    clock.now = CLOSED_NS + MINUTE_NS
    again = await _decide_at(trader, clock, "b2", "EURUSD", prediction_pb2.DIRECTION_UP)
    assert again.disposition == S.SIGNAL_DISPOSITION_ACTIONABLE


# --- Drawdown halt -----------------------------------------------------------------------------


async def test_the_days_drawdown_past_the_limit_halts_the_user(stubs_: Stubs) -> None:
    trader = stubs_.as_(TRADER)
    await _update(trader, halt_drawdown_percent=5.0)
    [eurusd, gbpusd] = await decide(trader, "b1", "EURUSD", "GBPUSD")
    await _close(trader, eurusd, -20, money=-1_000.0)  # 4 % of 25,000: below the limit
    [allowed] = await decide(trader, "b2", "USDJPY")
    assert allowed.disposition == S.SIGNAL_DISPOSITION_ACTIONABLE

    await _close(trader, gbpusd, -20, money=-500.0)  # 6 % from the peak
    state = await trader.GetTradingState(SVC.GetTradingStateRequest())
    assert state.effective_state == SVC.TRADING_STATE_HALTED
    assert state.user_setting.cause == SVC.TRADING_STATE_CAUSE_DRAWDOWN_LIMIT
    assert state.user_setting.changed_by == "drawdown-limit"
    assert state.user_setting.reason == ("the day's drawdown 6.0% reached halt_drawdown_percent 5%")
    [held] = await decide(trader, "b3", "AUDUSD")
    assert held.reason == S.DISPOSITION_REASON_TRADING_HALTED


# --- Adaptive strategies -----------------------------------------------------------------------


async def _update(stub: Stub, **values: object) -> None:
    await stub.UpdateStrategy(
        SVC.UpdateStrategyRequest(
            layer=strategy_pb2.STRATEGY_LAYER_USER,
            strategy=strategy_pb2.StrategyConfig(**values),  # type: ignore[arg-type]
            update_mask=field_mask_pb2.FieldMask(paths=list(values)),
            reason="test",
        )
    )


async def _strategy(stub: Stub) -> strategy_pb2.EffectiveStrategy:
    return (await stub.GetStrategy(SVC.GetStrategyRequest())).strategy


async def test_losses_past_the_sample_minimum_adjust_the_strategy_once_then_reset_undoes_it(
    stubs_: Stubs,
) -> None:
    trader = stubs_.as_(TRADER)
    signals = await decide(trader, "b1", "EURUSD", "GBPUSD", "USDJPY", "AUDUSD")
    # Two losses: fewer closed signals than the minimum of three.
    for signal in signals[:2]:
        await _close(trader, signal, -20, money=-1_500.0)
    assert (await _strategy(trader)).adaptive_version == 0

    # The third: hit rate 0 < 0.6 and drawdown 18 % > 10 %.
    await _close(trader, signals[2], -20, money=-1_500.0)
    adapted = await _strategy(trader)
    assert adapted.config.min_confidence_threshold == 0.75
    assert adapted.config.position_size_multiplier == 0.8
    assert adapted.field_sources["min_confidence_threshold"] == ADAPTIVE
    assert adapted.field_sources["position_size_multiplier"] == ADAPTIVE
    assert adapted.adaptive_version == adapted.version > 0
    [version] = (
        await trader.ListStrategyVersions(SVC.ListStrategyVersionsRequest(layer=ADAPTIVE))
    ).versions
    assert version.changed_by == "adaptive"
    assert version.reason == (
        "hit rate 0.00 over 3 closed signals is below 0.6: min_confidence_threshold 0.7 -> 0.75; "
        "drawdown 18.0% is above 10%: position_size_multiplier 1 -> 0.8"
    )
    assert list(version.changed_fields) == ["min_confidence_threshold", "position_size_multiplier"]
    # New signals are decided under the adjusted strategy.
    [next_signal] = await decide(trader, "b2", "NZDUSD")
    assert next_signal.strategy_version == adapted.version

    # Within the hour's cooldown, another loss changes nothing.
    await _close(trader, signals[3], -20, money=-1_500.0)
    assert (await _strategy(trader)).adaptive_version == adapted.adaptive_version

    reset = await trader.ResetStrategy(
        SVC.ResetStrategyRequest(
            layer=ADAPTIVE, to_version=0, expected_version=adapted.adaptive_version, reason="undo"
        )
    )
    assert reset.strategy.config.min_confidence_threshold == 0.7
    assert reset.strategy.config.position_size_multiplier == 1.0
    assert reset.strategy.field_sources["min_confidence_threshold"] == (
        strategy_pb2.STRATEGY_LAYER_TIER_DEFAULT
    )


async def test_adaptive_adjustments_can_be_switched_off(stubs_: Stubs) -> None:
    trader = stubs_.as_(TRADER)
    await _update(trader, adaptive_enabled=False)
    for signal in await decide(trader, "b1", "EURUSD", "GBPUSD", "USDJPY"):
        await _close(trader, signal, -20)

    strategy = await _strategy(trader)
    assert strategy.adaptive_version == 0
    assert strategy.config.min_confidence_threshold == 0.7


async def test_the_adaptive_layer_cannot_be_written_directly(stubs_: Stubs) -> None:
    error = await failure(
        stubs_.as_(TRADER).UpdateStrategy(
            SVC.UpdateStrategyRequest(
                layer=ADAPTIVE,
                strategy=strategy_pb2.StrategyConfig(min_confidence_threshold=0.5),
                update_mask=field_mask_pb2.FieldMask(paths=["min_confidence_threshold"]),
            )
        )
    )
    assert isinstance(error, InvalidArgumentError)
    assert "reset it to undo" in error.message


# --- The audit chain ---------------------------------------------------------------------------


async def test_explain_returns_prediction_decision_risk_and_executions(stubs_: Stubs) -> None:
    trader = stubs_.as_(TRADER)
    [eurusd] = await decide(trader, "b1", "EURUSD")
    price = eurusd.entry.entry_price
    await record(trader, result(eurusd, "x1", E.EXECUTION_STATUS_FILLED, price))
    await record(trader, result(eurusd, "x1", E.EXECUTION_STATUS_CLOSED, price, price + 30 * PIP))

    chain = await trader.ExplainSignal(SVC.ExplainSignalRequest(signal_id=eurusd.signal_id))

    assert chain.prediction == prediction("b1-EURUSD", "EURUSD")
    assert chain.signal == eurusd
    assert chain.signal.risk_status == S.RISK_STATUS_NOT_ASSESSED
    assert [r.status for r in chain.executions] == [
        E.EXECUTION_STATUS_FILLED,
        E.EXECUTION_STATUS_CLOSED,
    ]
    assert chain.performance.outcome == E.SIGNAL_OUTCOME_WIN
    assert chain.performance.profit_loss_pips == pytest.approx(30.0)
    health = await trader.HealthCheck(SVC.HealthCheckRequest())
    assert (health.signals_closed, health.strategy_accuracy) == (1, 1.0)


async def test_explain_is_tenant_scoped(stubs_: Stubs) -> None:
    [eurusd] = await decide(stubs_.as_(TRADER), "b1", "EURUSD")
    request = SVC.ExplainSignalRequest(signal_id=eurusd.signal_id)

    # An admin of the company may read it; another user, or another company, may not know it exists.
    assert (await stubs_.as_(ADMIN).ExplainSignal(request)).signal.signal_id == eurusd.signal_id
    for stranger in (FREE_USER, RIVAL_ADMIN):
        error = await failure(stubs_.as_(stranger).ExplainSignal(request))
        assert isinstance(error, NotFoundError)
        assert error.reason == "SIGNAL_NOT_FOUND"
    missing = await failure(stubs_.as_(TRADER).ExplainSignal(SVC.ExplainSignalRequest()))
    assert isinstance(missing, InvalidArgumentError)


async def test_trading_state_and_explain_over_rest(
    stubs_: Stubs, fixed_engine: Application, tokens: Tokens
) -> None:
    [eurusd] = await decide(stubs_.as_(TRADER), "b1", "EURUSD")
    async with rest_gateway(fixed_engine) as envoy:
        base = f"{envoy.base_url}/api/v1"
        status, body = await http_json_async(
            "POST",
            f"{base}/trading-state",
            b'{"user_id": "trader-1", "state": "TRADING_STATE_HALTED", "reason": "desk closed"}',
            headers=tokens.header(ADMIN),
        )
        assert status == 200, body
        assert body["setting"]["state"] == "TRADING_STATE_HALTED"
        status, body = await http_json_async(
            "GET", f"{base}/trading-state", headers=tokens.header(TRADER)
        )
        assert status == 200, body
        assert body["effectiveState"] == "TRADING_STATE_HALTED"
        status, body = await http_json_async(
            "POST", f"{base}/trading-state", b'{"state": 3}', headers=tokens.header(ADMIN)
        )
        assert status == 400, body
        status, body = await http_json_async(
            "GET", f"{base}/signals/{eurusd.signal_id}:explain", headers=tokens.header(TRADER)
        )
        assert status == 200, body
        assert body["prediction"]["predictionId"] == "b1-EURUSD"
        assert body["signal"]["decisionTrace"][0]["rule"] == "DECISION_RULE_INPUT_VALIDATION"
