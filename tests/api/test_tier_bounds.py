"""Tier bounds over gRPC and REST: a FREE or PRO user (or company admin) may tighten each bound
of their tier, reach it exactly, never go past it; custom strategies (ENTERPRISE) lift the
bounds; a value stored past a bound is held to it, whichever layer stored it (decision 31)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from google.protobuf import timestamp_pb2

from tests.factories import batch, live, prediction
from tests.support import (
    ADMIN,
    FREE_USER,
    TRADER,
    Stubs,
    Tokens,
    http_json_async,
    rest_gateway,
    rpc_failure,
)
from tradeflow.common.v1 import tier_pb2
from tradeflow.trading.v1 import signal_pb2, strategy_pb2
from tradeflow.trading.v1 import trading_engine_service_pb2 as service_pb2
from trading_engine.app import Application
from trading_engine.tenancy import Caller
from trading_engine_client.errors import InvalidArgumentError, TradingEngineError

USER = strategy_pb2.STRATEGY_LAYER_USER
COMPANY = strategy_pb2.STRATEGY_LAYER_COMPANY
TIER_DEFAULT = strategy_pb2.STRATEGY_LAYER_TIER_DEFAULT
FREE = tier_pb2.SUBSCRIPTION_TIER_FREE
PRO = tier_pb2.SUBSCRIPTION_TIER_PRO
ENTERPRISE = tier_pb2.SUBSCRIPTION_TIER_ENTERPRISE
PRO_ADMIN = Caller("lead-1", "acme", PRO, frozenset({"admin"}))
QUANT = Caller("quant-1", "acme", ENTERPRISE)
NO_CUSTOM = "only a tier with custom strategies (ENTERPRISE) may go past it"


class Bound:
    """A bound as a trader reads it: the tier's value, and a value just past it."""

    def __init__(self, path: str, floor: bool, by_tier: dict[int, float], step: float) -> None:
        self.path = path
        self.floor = floor
        self.by_tier = by_tier
        self.step = step

    def at(self, tier: int) -> float:
        return self.by_tier[tier]

    def past(self, tier: int) -> float:
        return round(self.at(tier) - self.step if self.floor else self.at(tier) + self.step, 6)

    def refusal(self, tier: int, tier_name: str, remedy: str = NO_CUSTOM) -> str:
        side, kind = ("below", "floor") if self.floor else ("above", "ceiling")
        return (
            f"{self.path} {self.past(tier):g} is {side} the {tier_name} tier's {kind} "
            f"{self.at(tier):g}; {remedy}"
        )


# The seed's templates: FREE confidence 0.8 and 3 positions; risk and lots alike for every tier.
BOUNDS = [
    Bound("min_confidence_threshold", True, {FREE: 0.8, PRO: 0.7, ENTERPRISE: 0.6}, 0.01),
    Bound("min_consensus_score", True, {FREE: 0.7, PRO: 0.6, ENTERPRISE: 0.5}, 0.01),
    Bound("max_position_count", False, {FREE: 3, PRO: 10, ENTERPRISE: 50}, 1),
    Bound("max_signals_per_minute", False, {FREE: 10, PRO: 60, ENTERPRISE: 600}, 1),
    Bound("risk_per_trade_percent", False, {FREE: 1.0, PRO: 1.0, ENTERPRISE: 1.0}, 0.01),
    Bound("max_position_size_lots", False, {FREE: 10.0, PRO: 10.0, ENTERPRISE: 10.0}, 0.01),
]
BOUND_IDS = [bound.path for bound in BOUNDS]
TIER_NAMES: dict[int, str] = {FREE: "FREE", PRO: "PRO", ENTERPRISE: "ENTERPRISE"}


def update(layer: int = USER, /, **values: Any) -> service_pb2.UpdateStrategyRequest:
    """An update of the fields given, named by presence (no mask, no version check)."""
    strategy = strategy_pb2.StrategyConfig()
    for path, value in values.items():
        if path == "custom_strategies_enabled":
            strategy.features.custom_strategies_enabled = value
        else:
            setattr(strategy, path, value)
    return service_pb2.UpdateStrategyRequest(
        layer=layer,  # type: ignore[arg-type]
        strategy=strategy,
        reason="tier bounds test",
    )


def violations(error: TradingEngineError) -> dict[str, str]:
    assert isinstance(error, InvalidArgumentError), error
    return error.field_violations


def value_of(strategy: strategy_pb2.EffectiveStrategy, path: str) -> float:
    number: float = getattr(strategy.config, path)
    return number


def decide(
    caller: Caller, batch_id: str, confidence: float
) -> service_pb2.ProcessPredictionBatchRequest:
    message = batch(
        batch_id,
        [prediction(f"{batch_id}-p", confidence=confidence)],
        user_id=caller.user_id,
        tier=caller.tier,
    )
    return service_pb2.ProcessPredictionBatchRequest(batch=live(message))


def confidence_step(signal: signal_pb2.TradingSignal) -> signal_pb2.DecisionStep:
    return next(s for s in signal.decision_trace if s.rule == signal_pb2.DECISION_RULE_CONFIDENCE)


@pytest.mark.parametrize("bound", BOUNDS, ids=BOUND_IDS)
@pytest.mark.parametrize("caller", [FREE_USER, TRADER], ids=["FREE", "PRO"])
async def test_a_user_cannot_loosen_a_bound_of_their_tier_but_may_reach_it(
    stubs: Stubs, caller: Caller, bound: Bound
) -> None:
    stub = stubs.as_(caller)

    error = await rpc_failure(stub.UpdateStrategy(update(**{bound.path: bound.past(caller.tier)})))

    assert violations(error) == {
        f"strategy.{bound.path}": bound.refusal(caller.tier, TIER_NAMES[caller.tier])
    }
    unchanged = (await stub.GetStrategy(service_pb2.GetStrategyRequest())).strategy
    assert unchanged.user_version == 0
    assert value_of(unchanged, bound.path) == pytest.approx(bound.at(caller.tier))
    # The bound itself is the tightest a layer must go: accepted, and in force from the user.
    reached = await stub.UpdateStrategy(update(**{bound.path: bound.at(caller.tier)}))
    assert reached.version.version > 0
    assert value_of(reached.strategy, bound.path) == pytest.approx(bound.at(caller.tier))
    assert reached.strategy.field_sources[bound.path] == USER
    assert list(reached.strategy.clamped_fields) == []


async def test_an_enterprise_user_with_custom_strategies_may_loosen_every_bound(
    stubs: Stubs,
) -> None:
    stub = stubs.as_(QUANT)
    loose = {bound.path: bound.past(ENTERPRISE) for bound in BOUNDS}

    changed = await stub.UpdateStrategy(update(**loose))

    strategy = changed.strategy
    for path, value in loose.items():
        assert value_of(strategy, path) == pytest.approx(value)
        assert strategy.field_sources[path] == USER
        # Lifted bounds are not shown as bounds.
        assert not strategy.tier_bounds.HasField(path)  # type: ignore[arg-type]
    assert strategy.tier_bounds.features.custom_strategies_enabled
    assert list(strategy.clamped_fields) == []


async def test_a_company_switching_custom_strategies_off_holds_enterprise_users_to_the_template(
    stubs: Stubs,
) -> None:
    quant = stubs.as_(QUANT)
    loose = {bound.path: bound.past(ENTERPRISE) for bound in BOUNDS}
    await quant.UpdateStrategy(update(**loose))

    await stubs.as_(ADMIN).UpdateStrategy(update(COMPANY, custom_strategies_enabled=False))

    held = (await quant.GetStrategy(service_pb2.GetStrategyRequest())).strategy
    assert sorted(held.clamped_fields) == sorted(loose)
    for bound in BOUNDS:
        assert value_of(held, bound.path) == pytest.approx(bound.at(ENTERPRISE))
        assert held.field_sources[bound.path] == TIER_DEFAULT
        assert getattr(held.tier_bounds, bound.path) == pytest.approx(bound.at(ENTERPRISE))
    remedy = "they apply while custom strategies are switched off"
    bound = BOUNDS[0]
    error = await rpc_failure(quant.UpdateStrategy(update(**{bound.path: bound.past(ENTERPRISE)})))
    assert violations(error) == {
        f"strategy.{bound.path}": bound.refusal(ENTERPRISE, "ENTERPRISE", remedy)
    }


@pytest.mark.parametrize("bound", BOUNDS, ids=BOUND_IDS)
async def test_a_company_admin_cannot_loosen_their_tiers_bounds_for_the_company(
    stubs: Stubs, bound: Bound
) -> None:
    lead = stubs.as_(PRO_ADMIN)

    error = await rpc_failure(lead.UpdateStrategy(update(COMPANY, **{bound.path: bound.past(PRO)})))

    assert violations(error) == {f"strategy.{bound.path}": bound.refusal(PRO, "PRO")}
    unchanged = (await lead.GetStrategy(service_pb2.GetStrategyRequest())).strategy
    assert unchanged.company_version == 0
    reached = await lead.UpdateStrategy(update(COMPANY, **{bound.path: bound.at(PRO)}))
    assert reached.strategy.field_sources[bound.path] == COMPANY
    assert value_of(reached.strategy, bound.path) == pytest.approx(bound.at(PRO))


async def test_a_looser_company_layer_holds_each_user_to_their_own_tier(stubs: Stubs) -> None:
    # An ENTERPRISE admin may loosen the company's strategy; a FREE user of the company
    # still trades at most as the FREE tier allows, and says so.
    await stubs.as_(ADMIN).UpdateStrategy(
        update(COMPANY, min_confidence_threshold=0.65, max_position_count=20)
    )
    free = stubs.as_(FREE_USER)

    strategy = (await free.GetStrategy(service_pb2.GetStrategyRequest())).strategy

    assert strategy.config.min_confidence_threshold == pytest.approx(0.8)
    assert strategy.config.max_position_count == 3
    assert sorted(strategy.clamped_fields) == ["max_position_count", "min_confidence_threshold"]
    assert strategy.field_sources["min_confidence_threshold"] == TIER_DEFAULT
    assert strategy.tier_bounds.min_confidence_threshold == pytest.approx(0.8)
    assert list(strategy.tier_bounds.available_instruments) == ["EURUSD", "GBPUSD"]
    # A 0.75-confidence prediction: above the company's 0.65, below FREE's floor.
    decided = await free.ProcessPredictionBatch(decide(FREE_USER, "free-b1", 0.75))
    signal = decided.signal_batch.signals[0]
    assert signal.reason == signal_pb2.DISPOSITION_REASON_CONFIDENCE_BELOW_THRESHOLD
    assert confidence_step(signal).threshold == pytest.approx(0.8)
    # An ENTERPRISE user of the company gets the company's value.
    quant = (await stubs.as_(QUANT).GetStrategy(service_pb2.GetStrategyRequest())).strategy
    assert quant.config.min_confidence_threshold == pytest.approx(0.65)
    assert quant.field_sources["min_confidence_threshold"] == COMPANY


async def test_a_layer_stored_past_the_bounds_is_held_to_them_after_a_downgrade(
    stubs: Stubs,
) -> None:
    enterprise = Caller("mover-1", "acme", ENTERPRISE)
    downgraded = Caller("mover-1", "acme", FREE)
    first = await stubs.as_(enterprise).UpdateStrategy(update(min_confidence_threshold=0.5))
    free = stubs.as_(downgraded)

    strategy = (await free.GetStrategy(service_pb2.GetStrategyRequest())).strategy
    decided = await free.ProcessPredictionBatch(decide(downgraded, "mover-b1", 0.75))

    assert strategy.config.min_confidence_threshold == pytest.approx(0.8)
    assert list(strategy.clamped_fields) == ["min_confidence_threshold"]
    assert strategy.field_sources["min_confidence_threshold"] == TIER_DEFAULT
    signal = decided.signal_batch.signals[0]
    assert signal.reason == signal_pb2.DISPOSITION_REASON_CONFIDENCE_BELOW_THRESHOLD
    assert confidence_step(signal).threshold == pytest.approx(0.8)
    # The stored value does not block a change to another field...
    other = await free.UpdateStrategy(update(stop_loss_pips=25.0))
    assert other.strategy.config.stop_loss_pips == pytest.approx(25.0)
    assert other.strategy.config.min_confidence_threshold == pytest.approx(0.8)
    # ...but restoring it, once the user tightened it, is loosening: refused.
    await free.UpdateStrategy(update(min_confidence_threshold=0.85))
    error = await rpc_failure(
        free.ResetStrategy(
            service_pb2.ResetStrategyRequest(
                layer=USER, to_version=first.version.version, reason="back to 0.5"
            )
        )
    )
    assert violations(error) == {
        "strategy.min_confidence_threshold": "min_confidence_threshold 0.5 is below the FREE "
        f"tier's floor 0.8; {NO_CUSTOM}"
    }
    after = (await free.GetStrategy(service_pb2.GetStrategyRequest())).strategy
    assert after.config.min_confidence_threshold == pytest.approx(0.85)


async def test_the_adaptive_layer_is_held_to_the_bounds(engine: Application, stubs: Stubs) -> None:
    # Adapted down to the ENTERPRISE floor, then downgraded to PRO: the adjustment stays
    # stored, and the PRO floor applies.
    enterprise = Caller("mover-2", "acme", ENTERPRISE)
    await stubs.as_(enterprise).GetStrategy(service_pb2.GetStrategyRequest())
    effective = await engine.strategies.effective_for("acme", "mover-2")
    assert effective is not None
    adjusted = strategy_pb2.StrategyConfig(min_confidence_threshold=0.6)
    await engine.strategies.adapt(
        effective, adjusted, ["min_confidence_threshold"], "hit rate 0.90 over 20 closed signals"
    )

    pro = Caller("mover-2", "acme", PRO)
    strategy = (await stubs.as_(pro).GetStrategy(service_pb2.GetStrategyRequest())).strategy

    assert strategy.adaptive_version > 0
    assert strategy.config.min_confidence_threshold == pytest.approx(0.7)
    assert strategy.field_sources["min_confidence_threshold"] == TIER_DEFAULT
    assert list(strategy.clamped_fields) == ["min_confidence_threshold"]


async def test_rest_refuses_a_loosening_and_shows_the_bounds_beside_the_values(
    engine: Application, tokens: Tokens
) -> None:
    auth = {"content-type": "application/json", **tokens.header(FREE_USER)}
    async with rest_gateway(engine) as gateway:
        status, body = await http_json_async(
            "POST",
            f"{gateway.base_url}/api/v1/strategy/update",
            json.dumps(
                {
                    "layer": "STRATEGY_LAYER_USER",
                    "strategy": {"maxPositionCount": 4},
                    "reason": "one more position",
                }
            ).encode(),
            auth,
        )
        assert status == 400, body
        bad_request = next(d for d in body["details"] if d["@type"].endswith("BadRequest"))
        assert [(v["field"], v["description"]) for v in bad_request["fieldViolations"]] == [
            (
                "strategy.max_position_count",
                f"max_position_count 4 is above the FREE tier's ceiling 3; {NO_CUSTOM}",
            )
        ]

        status, body = await http_json_async(
            "GET", f"{gateway.base_url}/api/v1/strategy", headers=auth
        )
    assert status == 200, body
    strategy = body["strategy"]
    assert strategy["config"]["maxPositionCount"] == 3
    assert int(strategy["userVersion"]) == 0
    assert strategy["tierBounds"] == {
        "minConfidenceThreshold": 0.8,
        "minConsensusScore": 0.7,
        "riskPerTradePercent": 1,
        "maxPositionSizeLots": 10,
        "maxPositionCount": 3,
        "availableInstruments": ["EURUSD", "GBPUSD"],
        "features": {
            "advancedFeaturesEnabled": False,
            "patternTradingEnabled": False,
            "multiLegEntriesEnabled": False,
            "advancedTimingEnabled": False,
            "customStrategiesEnabled": False,
            "algorithmicExecutionEnabled": False,
        },
        "maxSignalsPerMinute": 10,
    }


async def test_a_replay_candidate_past_a_bound_is_refused_not_replayed_as_the_bound(
    stubs: Stubs,
) -> None:
    replay = stubs.as_(FREE_USER).ReplaySignals(
        service_pb2.ReplaySignalsRequest(
            start_time=timestamp_pb2.Timestamp(seconds=1_700_000_000),
            end_time=timestamp_pb2.Timestamp(seconds=1_700_086_400),
            candidate=strategy_pb2.StrategyConfig(min_confidence_threshold=0.5),
        )
    )

    error = await rpc_failure(_drain(replay))

    assert violations(error) == {
        "candidate.min_confidence_threshold": "min_confidence_threshold 0.5 is below the FREE "
        f"tier's floor 0.8; {NO_CUSTOM}"
    }


async def _drain(responses: Any) -> None:
    async for _ in responses:
        pass
