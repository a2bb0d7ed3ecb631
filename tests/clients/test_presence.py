"""Issue 22 through the typed clients: a value left out is never read as a zero or a scope."""

from __future__ import annotations

import pytest
from google.protobuf import field_mask_pb2

from tests.clients.conftest import Session
from tests.support import ADMIN, TRADER
from tradeflow.trading.v1 import strategy_pb2
from tradeflow.trading.v1 import trading_engine_service_pb2 as service_pb2
from trading_engine.app import Application
from trading_engine.devstack.demo import set_up_demo_strategies
from trading_engine_client import InvalidArgumentError

S = service_pb2
USER = strategy_pb2.STRATEGY_LAYER_USER


async def test_a_mask_naming_a_field_left_unset_is_refused_and_changes_nothing(
    session: Session,
) -> None:
    request = S.UpdateStrategyRequest(
        layer=USER,
        # The value was meant to be set here, and was not.
        strategy=strategy_pb2.StrategyConfig(),
        update_mask=field_mask_pb2.FieldMask(paths=["min_confidence_threshold"]),
        reason="fewer, surer signals",
    )
    with pytest.raises(InvalidArgumentError) as refused:
        await session.call("update_strategy", TRADER, request)
    assert refused.value.field_violations == {
        "strategy.min_confidence_threshold": (
            "min_confidence_threshold is in the update mask but not in the strategy: "
            "send its value (0 and false are values) or leave it out of the mask"
        )
    }
    after = await session.call("get_strategy", TRADER, None)
    assert after.config.min_confidence_threshold == pytest.approx(0.7)
    assert after.user_version == 0


async def test_a_trading_state_naming_no_user_and_no_scope_halts_nobody(session: Session) -> None:
    await session.call("get_strategy", TRADER, None)  # the engine now knows trader-1
    request = S.SetTradingStateRequest(state=S.TRADING_STATE_HALTED, reason="trader-1 only")
    with pytest.raises(InvalidArgumentError) as refused:
        await session.call("set_trading_state", ADMIN, request)
    assert set(refused.value.field_violations) == {"scope"}
    state = await session.call(
        "get_trading_state", ADMIN, S.GetTradingStateRequest(user_id=TRADER.user_id)
    )
    assert state.effective_state == S.TRADING_STATE_ACTIVE
    assert not state.HasField("company_setting")


async def test_an_update_without_expected_version_applies_over_the_demo_revision_every_time(
    engine: Application, session: Session
) -> None:
    # `trading-engine dev --demo` writes revision 1 of trader-1's layer before anyone calls.
    await set_up_demo_strategies(engine.strategies)
    request = S.UpdateStrategyRequest(
        layer=USER,
        strategy=strategy_pb2.StrategyConfig(min_confidence_threshold=0.75),
        reason="fewer, surer signals",
    )
    first = await session.call("update_strategy", TRADER, request)
    second = await session.call("update_strategy", TRADER, request)
    assert 1 < first.version.version < second.version.version
    # The demo's duplicate window stays: the update changed only what it carried.
    assert second.strategy.config.duplicate_window.seconds == 20
    assert second.strategy.config.min_confidence_threshold == pytest.approx(0.75)

    operations = [S.ManageStrategiesRequest(operation_id="again", update=request)]
    [answer] = [each async for each in session.stream("manage_strategies", TRADER, operations)]
    assert answer.WhichOneof("result") == "update"
    assert answer.update.version.version > second.version.version
