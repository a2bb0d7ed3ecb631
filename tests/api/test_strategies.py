"""Strategies over gRPC: layers, versions, conflicts, idempotency, and the decisions they change."""

from __future__ import annotations

import asyncio
import dataclasses
from typing import TYPE_CHECKING, Any

import grpc
import pytest
from google.protobuf import field_mask_pb2
from google.rpc import error_details_pb2

from tests.factories import batch, live, prediction
from tests.support import ADMIN, FREE_USER, RIVAL_ADMIN, TRADER, Stubs, Tokens, rpc_failure
from tradeflow.common.v1 import tier_pb2
from tradeflow.trading.v1 import signal_pb2, strategy_pb2
from tradeflow.trading.v1 import trading_engine_service_pb2 as service_pb2
from tradeflow.trading.v1 import trading_engine_service_pb2_grpc as service_grpc
from trading_engine.app import Application
from trading_engine.config import EngineSettings
from trading_engine.tenancy import Caller
from trading_engine_client.errors import (
    FailedPreconditionError,
    InvalidArgumentError,
    NotFoundError,
    PermissionDeniedError,
    TradingEngineError,
    from_rpc_error,
)

if TYPE_CHECKING:
    Stub = service_grpc.TradingEngineServiceAsyncStub

USER = strategy_pb2.STRATEGY_LAYER_USER
COMPANY = strategy_pb2.STRATEGY_LAYER_COMPANY
TIER_DEFAULT = strategy_pb2.STRATEGY_LAYER_TIER_DEFAULT
SUGGESTION = 'did you mean "min_confidence_threshold"?'


def decide(stub: Stub, batch_id: str, confidence: float = 0.86) -> Any:
    """Decide a one-prediction batch for TRADER, priced just now."""
    message = live(batch(batch_id, [prediction(f"{batch_id}-p", confidence=confidence)]))
    return stub.ProcessPredictionBatch(service_pb2.ProcessPredictionBatchRequest(batch=message))


def update(
    layer: int = USER,
    expected_version: int = 0,
    user_id: str = "",
    request_id: str = "",
    **values: Any,
) -> service_pb2.UpdateStrategyRequest:
    strategy = strategy_pb2.StrategyConfig()
    paths = []
    for path, value in values.items():
        if path.startswith("features__"):
            flag = path.removeprefix("features__")
            setattr(strategy.features, flag, value)
            paths.append(f"features.{flag}")
        elif isinstance(value, list):
            getattr(strategy, path).extend(value)
            paths.append(path)
        else:
            setattr(strategy, path, value)
            paths.append(path)
    return service_pb2.UpdateStrategyRequest(
        layer=layer,  # type: ignore[arg-type]
        user_id=user_id,
        strategy=strategy,
        update_mask=field_mask_pb2.FieldMask(paths=paths),
        expected_version=expected_version,
        request_id=request_id,
        reason="test",
    )


def violations(error: TradingEngineError) -> dict[str, str]:
    assert isinstance(error, InvalidArgumentError), error
    return error.field_violations


async def test_a_new_user_gets_the_tier_defaults(stubs: Stubs) -> None:
    response = await stubs.as_().GetStrategy(service_pb2.GetStrategyRequest())
    strategy = response.strategy
    assert (strategy.user_id, strategy.company_id) == ("trader-1", "acme")
    assert strategy.tier == tier_pb2.SUBSCRIPTION_TIER_PRO
    assert strategy.config.min_confidence_threshold == pytest.approx(0.7)
    assert strategy.config.max_position_count == 10
    assert (strategy.version, strategy.user_version, strategy.company_version) == (0, 0, 0)
    assert set(strategy.field_sources.values()) == {TIER_DEFAULT}
    assert "features.multi_leg_entries_enabled" in strategy.field_sources


async def test_an_update_creates_a_version_and_changes_decisions(stubs: Stubs) -> None:
    stub = stubs.as_()
    # At the PRO default (0.7) a 0.72 prediction is actionable.
    first = await decide(stub, "b1", confidence=0.72)
    assert first.signal_batch.signals[0].disposition == signal_pb2.SIGNAL_DISPOSITION_ACTIONABLE

    changed = await stub.UpdateStrategy(
        update(min_confidence_threshold=0.75, features__multi_leg_entries_enabled=True)
    )
    assert changed.version.version > 0
    assert changed.version.changed_by == "trader-1"
    assert list(changed.version.changed_fields) == [
        "min_confidence_threshold",
        "features.multi_leg_entries_enabled",
    ]
    effective = changed.strategy
    assert effective.config.min_confidence_threshold == pytest.approx(0.75)
    assert effective.config.features.multi_leg_entries_enabled
    assert effective.field_sources["min_confidence_threshold"] == USER
    assert effective.field_sources["max_position_count"] == TIER_DEFAULT
    assert effective.user_version == changed.version.version
    read = await stub.GetStrategy(service_pb2.GetStrategyRequest())
    assert read.strategy == effective

    second = await decide(stub, "b2", confidence=0.72)
    signal = second.signal_batch.signals[0]
    assert signal.disposition == signal_pb2.SIGNAL_DISPOSITION_REJECTED
    assert signal.reason == signal_pb2.DISPOSITION_REASON_CONFIDENCE_BELOW_THRESHOLD
    assert signal.strategy_version == changed.version.version
    step = next(s for s in signal.decision_trace if s.rule == signal_pb2.DECISION_RULE_CONFIDENCE)
    assert step.threshold == pytest.approx(0.75)


@pytest.mark.parametrize(
    ("caller", "request_message", "expected"),
    [
        pytest.param(
            FREE_USER,
            update(features__multi_leg_entries_enabled=True),
            {
                "strategy.features.multi_leg_entries_enabled": (
                    "the FREE tier does not include multi-leg entries"
                )
            },
            id="free-multi-leg",
        ),
        pytest.param(
            FREE_USER,
            update(available_instruments=["EURUSD", "USDJPY"]),
            {"strategy.available_instruments[1]": "the FREE tier does not include USDJPY"},
            id="free-usdjpy",
        ),
        pytest.param(
            TRADER,
            update(min_confidence_threshold=1.5),
            {"strategy.min_confidence_threshold": "must be in [0, 1]; got 1.5"},
            id="confidence-range",
        ),
        pytest.param(
            TRADER,
            service_pb2.UpdateStrategyRequest(
                layer=USER, update_mask=field_mask_pb2.FieldMask(paths=["min_confidence"])
            ),
            {"update_mask": f'unknown field "min_confidence"; {SUGGESTION}'},
            id="unknown-path",
        ),
        pytest.param(
            TRADER,
            service_pb2.UpdateStrategyRequest(layer=USER),
            {
                "strategy": (
                    "names no field to change: send the fields to change, "
                    "for example min_confidence_threshold"
                )
            },
            id="nothing-to-change",
        ),
        pytest.param(
            TRADER,
            service_pb2.UpdateStrategyRequest(
                layer=USER,
                strategy=strategy_pb2.StrategyConfig(stop_loss_pips=25.0),
                update_mask=field_mask_pb2.FieldMask(
                    paths=["stop_loss_pips", "min_confidence_threshold"]
                ),
            ),
            {
                "strategy.min_confidence_threshold": (
                    "min_confidence_threshold is in the update mask but not in the strategy: "
                    "send its value (0 and false are values) or leave it out of the mask"
                )
            },
            id="mask-names-a-field-not-sent",
        ),
        pytest.param(
            TRADER,
            update(min_stop_loss_pips=150.0),
            {"strategy.max_stop_loss_pips": "must be >= min_stop_loss_pips (150); got 100"},
            id="contradiction",
        ),
        pytest.param(
            TRADER,
            update(layer=strategy_pb2.STRATEGY_LAYER_TIER_DEFAULT, stop_loss_pips=10.0),
            {"layer": "must be USER or COMPANY"},
            id="tier-layer",
        ),
    ],
)
async def test_invalid_updates_name_each_bad_field_and_change_nothing(
    stubs: Stubs,
    caller: Caller,
    request_message: service_pb2.UpdateStrategyRequest,
    expected: dict[str, str],
) -> None:
    stub = stubs.as_(caller)
    error = await rpc_failure(stub.UpdateStrategy(request_message))
    assert violations(error) == expected
    after = await stub.GetStrategy(service_pb2.GetStrategyRequest())
    assert after.strategy.version == 0


async def test_a_stale_expected_version_is_refused(stubs: Stubs) -> None:
    stub = stubs.as_()
    first = await stub.UpdateStrategy(update(stop_loss_pips=25.0))
    error = await rpc_failure(stub.UpdateStrategy(update(stop_loss_pips=30.0, expected_version=0)))
    assert isinstance(error, FailedPreconditionError)
    assert error.reason == "VERSION_CONFLICT"
    assert f"the layer is at revision {first.version.version}" in str(error)
    current = await stub.GetStrategy(service_pb2.GetStrategyRequest())
    assert current.strategy.config.stop_loss_pips == pytest.approx(25.0)


async def test_without_expected_version_an_update_applies_over_any_revision(
    stubs: Stubs,
) -> None:
    stub = stubs.as_()
    first = await stub.UpdateStrategy(update(stop_loss_pips=25.0))
    request = update(stop_loss_pips=30.0)
    request.ClearField("expected_version")
    second = await stub.UpdateStrategy(request)
    third = await stub.UpdateStrategy(request)
    assert first.version.version < second.version.version < third.version.version
    assert third.strategy.config.stop_loss_pips == pytest.approx(30.0)
    assert third.strategy.user_version == third.version.version


async def test_concurrent_updates_without_expected_version_all_land(stubs: Stubs) -> None:
    # A layer is stored whole: each change is redone over the others, none undone.
    stub = stubs.as_()
    fields = [
        "stop_loss_pips",
        "take_profit_pips",
        "max_spread_pips",
        "trend_threshold_bps",
        "max_limit_deviation_pips",
    ]
    requests = []
    for field in fields:
        request = service_pb2.UpdateStrategyRequest(layer=USER, reason="test")
        setattr(request.strategy, field, 7.0)
        requests.append(request)
    await asyncio.gather(*(stub.UpdateStrategy(request) for request in requests))
    config = (await stub.GetStrategy(service_pb2.GetStrategyRequest())).strategy.config
    for field in fields:
        assert getattr(config, field) == pytest.approx(7.0), field


async def test_without_a_mask_the_fields_sent_change_zeros_included(stubs: Stubs) -> None:
    stub = stubs.as_()
    request = service_pb2.UpdateStrategyRequest(
        layer=USER,
        strategy=strategy_pb2.StrategyConfig(
            limit_order_discount_pips=0.0,
            features=strategy_pb2.TierFeatures(pattern_trading_enabled=False),
        ),
        reason="no discount, no patterns",
    )
    changed = await stub.UpdateStrategy(request)
    assert list(changed.version.changed_fields) == [
        "limit_order_discount_pips",
        "features.pattern_trading_enabled",
    ]
    effective = changed.strategy
    assert effective.config.limit_order_discount_pips == 0.0
    assert not effective.config.features.pattern_trading_enabled
    assert effective.field_sources["limit_order_discount_pips"] == USER
    assert effective.field_sources["features.pattern_trading_enabled"] == USER
    # Fields not sent keep the tier's values.
    assert effective.config.limit_order_premium_pips == pytest.approx(2.0)
    assert effective.config.features.advanced_timing_enabled
    assert effective.field_sources["limit_order_premium_pips"] == TIER_DEFAULT


async def test_a_reset_must_say_what_to_restore(stubs: Stubs) -> None:
    stub = stubs.as_()
    await stub.UpdateStrategy(update(stop_loss_pips=25.0))
    refused = await rpc_failure(stub.ResetStrategy(service_pb2.ResetStrategyRequest(layer=USER)))
    assert violations(refused) == {
        "to_version": "required: the revision to restore, or 0 to clear the layer"
    }
    kept = await stub.GetStrategy(service_pb2.GetStrategyRequest())
    assert kept.strategy.config.stop_loss_pips == pytest.approx(25.0)
    assert kept.strategy.field_sources["stop_loss_pips"] == USER


async def test_concurrent_updates_on_one_version_let_exactly_one_win(stubs: Stubs) -> None:
    stub = stubs.as_()
    attempts = [stub.UpdateStrategy(update(stop_loss_pips=20.0 + index)) for index in range(8)]
    outcomes = await asyncio.gather(*attempts, return_exceptions=True)
    winners = [o for o in outcomes if isinstance(o, service_pb2.UpdateStrategyResponse)]
    losers = [from_rpc_error(o) for o in outcomes if isinstance(o, grpc.aio.AioRpcError)]
    assert len(winners) == 1
    assert len(losers) == 7
    assert all(isinstance(loser, FailedPreconditionError) for loser in losers)
    current = await stub.GetStrategy(service_pb2.GetStrategyRequest())
    assert current.strategy.config.stop_loss_pips == winners[0].strategy.config.stop_loss_pips


async def test_a_retried_update_with_its_request_id_changes_nothing_twice(stubs: Stubs) -> None:
    stub = stubs.as_()
    first = await stub.UpdateStrategy(update(stop_loss_pips=25.0, request_id="req-1"))
    again = await stub.UpdateStrategy(update(stop_loss_pips=25.0, request_id="req-1"))
    assert again.version == first.version
    listed = await stub.ListStrategyVersions(service_pb2.ListStrategyVersionsRequest(layer=USER))
    assert [v.version for v in listed.versions] == [first.version.version]


async def test_a_request_id_another_user_used_is_refused_not_answered_with_their_change(
    stubs: Stubs,
) -> None:
    await stubs.as_().UpdateStrategy(update(stop_loss_pips=25.0, request_id="req-1"))

    reused = await rpc_failure(
        stubs.as_(FREE_USER).UpdateStrategy(update(stop_loss_pips=30.0, request_id="req-1"))
    )

    assert isinstance(reused, FailedPreconditionError)
    assert reused.reason == "REQUEST_ID_REUSED"
    assert "trader-1" not in reused.message
    mine = await stubs.as_(FREE_USER).GetStrategy(service_pb2.GetStrategyRequest())
    assert mine.strategy.user_version == 0


async def test_company_overrides_win_and_only_admins_set_them(stubs: Stubs) -> None:
    trader, admin = stubs.as_(), stubs.as_(ADMIN)
    await trader.UpdateStrategy(update(min_confidence_threshold=0.75, stop_loss_pips=25.0))

    refused = await rpc_failure(
        trader.UpdateStrategy(update(COMPANY, min_confidence_threshold=0.9))
    )
    assert isinstance(refused, PermissionDeniedError)
    assert refused.reason == "NOT_COMPANY_ADMIN"

    override = await admin.UpdateStrategy(update(COMPANY, min_confidence_threshold=0.9))
    assert override.version.layer == COMPANY
    assert override.version.user_id == ""

    # Picked up from the cache at once, for the trader's decisions too.
    effective = (await trader.GetStrategy(service_pb2.GetStrategyRequest())).strategy
    assert effective.config.min_confidence_threshold == pytest.approx(0.9)
    assert effective.field_sources["min_confidence_threshold"] == COMPANY
    assert effective.config.stop_loss_pips == pytest.approx(25.0)
    assert effective.field_sources["stop_loss_pips"] == USER
    assert effective.company_version == override.version.version
    assert effective.version == override.version.version
    decided = await decide(trader, "b")
    assert decided.signal_batch.signals[0].reason == (
        signal_pb2.DISPOSITION_REASON_CONFIDENCE_BELOW_THRESHOLD
    )


async def test_admins_manage_their_company_users_and_no_one_else(stubs: Stubs) -> None:
    trader, admin, rival = stubs.as_(), stubs.as_(ADMIN), stubs.as_(RIVAL_ADMIN)
    # The trader's tier becomes known to the engine when the trader first calls.
    await trader.GetStrategy(service_pb2.GetStrategyRequest())

    changed = await admin.UpdateStrategy(update(user_id="trader-1", stop_loss_pips=30.0))
    assert changed.strategy.user_id == "trader-1"
    assert changed.strategy.tier == tier_pb2.SUBSCRIPTION_TIER_PRO
    assert changed.version.changed_by == "ops-1"
    mine = (await trader.GetStrategy(service_pb2.GetStrategyRequest())).strategy
    assert mine.config.stop_loss_pips == pytest.approx(30.0)

    # A plain user may not name another user.
    other = await rpc_failure(trader.GetStrategy(service_pb2.GetStrategyRequest(user_id="ops-1")))
    assert isinstance(other, PermissionDeniedError)
    # Another company's admin naming trader-1 names trader-1 *of their own company*: unknown.
    foreign = await rpc_failure(
        rival.GetStrategy(service_pb2.GetStrategyRequest(user_id="trader-1"))
    )
    assert isinstance(foreign, NotFoundError)
    assert "company 'rival'" in str(foreign)
    foreign_write = await rpc_failure(
        rival.UpdateStrategy(update(user_id="trader-1", stop_loss_pips=99.0))
    )
    assert isinstance(foreign_write, NotFoundError)
    # And the rival's company layer is the rival's own.
    rival_override = await rival.UpdateStrategy(update(COMPANY, min_confidence_threshold=0.95))
    assert rival_override.version.company_id == "rival"
    unaffected = (await trader.GetStrategy(service_pb2.GetStrategyRequest())).strategy
    assert unaffected.config.min_confidence_threshold == pytest.approx(0.7)
    assert unaffected.config.stop_loss_pips == pytest.approx(30.0)


async def test_versions_are_listed_newest_first_in_pages_and_can_be_restored(
    stubs: Stubs,
) -> None:
    stub = stubs.as_()
    versions: list[int] = []
    for index, pips in enumerate((21.0, 22.0, 23.0)):
        response = await stub.UpdateStrategy(
            update(stop_loss_pips=pips, expected_version=versions[-1] if index else 0)
        )
        versions.append(response.version.version)

    first_page = await stub.ListStrategyVersions(
        service_pb2.ListStrategyVersionsRequest(layer=USER, page_size=2)
    )
    assert [v.version for v in first_page.versions] == versions[:0:-1]
    assert first_page.next_page_token
    second_page = await stub.ListStrategyVersions(
        service_pb2.ListStrategyVersionsRequest(
            layer=USER, page_size=2, page_token=first_page.next_page_token
        )
    )
    assert [v.version for v in second_page.versions] == versions[:1]
    assert second_page.next_page_token == ""

    restored = await stub.ResetStrategy(
        service_pb2.ResetStrategyRequest(
            layer=USER, to_version=versions[0], expected_version=versions[2]
        )
    )
    assert restored.strategy.config.stop_loss_pips == pytest.approx(21.0)
    assert list(restored.version.changed_fields) == ["stop_loss_pips"]
    cleared = await stub.ResetStrategy(
        service_pb2.ResetStrategyRequest(
            layer=USER, to_version=0, expected_version=restored.version.version
        )
    )
    assert cleared.strategy.config.stop_loss_pips == pytest.approx(20.0)
    assert cleared.strategy.field_sources["stop_loss_pips"] == TIER_DEFAULT

    missing = await rpc_failure(
        stub.ResetStrategy(
            service_pb2.ResetStrategyRequest(
                layer=USER, to_version=999_999, expected_version=cleared.version.version
            )
        )
    )
    assert isinstance(missing, NotFoundError)
    bad_token = await rpc_failure(
        stub.ListStrategyVersions(
            service_pb2.ListStrategyVersionsRequest(layer=USER, page_token="not-a-token")
        )
    )
    assert violations(bad_token) == {"page_token": "use a next_page_token from an earlier response"}


async def test_manage_strategies_answers_each_operation_in_order_and_survives_errors(
    stubs: Stubs,
) -> None:
    requests = [
        service_pb2.ManageStrategiesRequest(operation_id="a", get=service_pb2.GetStrategyRequest()),
        service_pb2.ManageStrategiesRequest(
            operation_id="b", update=update(min_confidence_threshold=7.0)
        ),
        service_pb2.ManageStrategiesRequest(
            operation_id="c", update=update(min_confidence_threshold=0.8)
        ),
        service_pb2.ManageStrategiesRequest(
            operation_id="d",
            list_versions=service_pb2.ListStrategyVersionsRequest(layer=USER),
        ),
        service_pb2.ManageStrategiesRequest(operation_id="e"),
    ]
    responses = [r async for r in stubs.as_().ManageStrategies(iter(requests))]

    assert [r.operation_id for r in responses] == ["a", "b", "c", "d", "e"]
    assert [r.WhichOneof("result") for r in responses] == [
        "get", "error", "update", "list_versions", "error",
    ]  # fmt: skip
    assert responses[0].get.strategy.version == 0
    assert responses[1].error.code == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    bad_request = error_details_pb2.BadRequest()
    assert any(d.Unpack(bad_request) for d in responses[1].error.details)
    assert bad_request.field_violations[0].field == "strategy.min_confidence_threshold"
    assert responses[2].update.strategy.config.min_confidence_threshold == pytest.approx(0.8)
    assert [v.version for v in responses[3].list_versions.versions] == [
        responses[2].update.version.version
    ]


async def test_a_change_reaches_another_engine_instance_within_its_poll_interval(
    engine_settings: EngineSettings, tokens: Tokens
) -> None:
    # Two engines on one database, as two processes behind a load balancer would be.
    settings = dataclasses.replace(engine_settings, strategy_poll_seconds=0.1)
    first, second = Application(settings), Application(settings)
    await first.start()
    await second.start()
    try:
        async with (
            tokens.channel(first.grpc_address) as a,
            tokens.channel(second.grpc_address) as b,
        ):
            on_first = service_grpc.TradingEngineServiceStub(a)
            on_second = service_grpc.TradingEngineServiceStub(b)
            before = await on_second.GetStrategy(service_pb2.GetStrategyRequest())
            assert before.strategy.config.min_confidence_threshold == pytest.approx(0.7)
            await decide(on_second, "b1")
            await on_first.UpdateStrategy(update(min_confidence_threshold=0.9))
            await asyncio.sleep(0.5)
            after = await decide(on_second, "b2")
    finally:
        await first.stop()
        await second.stop()
    assert after.signal_batch.signals[0].reason == (
        signal_pb2.DISPOSITION_REASON_CONFIDENCE_BELOW_THRESHOLD
    )


async def test_strategies_survive_a_restart(
    engine_settings: EngineSettings, tokens: Tokens
) -> None:
    for round_ in range(2):
        application = Application(engine_settings)
        await application.start()
        try:
            async with tokens.channel(application.grpc_address) as channel:
                stub = service_grpc.TradingEngineServiceStub(channel)
                if round_ == 0:
                    await stub.UpdateStrategy(update(stop_loss_pips=33.0))
                else:
                    read = await stub.GetStrategy(service_pb2.GetStrategyRequest())
                    assert read.strategy.config.stop_loss_pips == pytest.approx(33.0)
                    assert read.strategy.user_version > 0
        finally:
            await application.stop()
