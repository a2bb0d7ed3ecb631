"""InjectManualSignal: company admins place orders for their users, once per request id."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from tests.factories import batch, live, prediction
from tests.support import (
    ADMIN,
    FREE_USER,
    RIVAL_ADMIN,
    TRADER,
    Stubs,
    Tokens,
    http_json_async,
    rpc_failure,
)
from tradeflow.trading.v1 import signal_pb2
from tradeflow.trading.v1 import trading_engine_service_pb2 as service_pb2
from trading_engine.app import Application
from trading_engine.gateway.envoy import EnvoyGateway
from trading_engine_client.errors import (
    FailedPreconditionError,
    InvalidArgumentError,
    NotFoundError,
    PermissionDeniedError,
)

S = signal_pb2


def order(**changes: Any) -> service_pb2.InjectManualSignalRequest:
    fields: dict[str, Any] = {
        "request_id": "req-1",
        "user_id": "trader-1",
        "symbol": "EURUSD",
        "signal_type": S.SIGNAL_TYPE_BUY,
        "order_type": S.ORDER_TYPE_MARKET,
        "reference_price": 1.08500,
        "stop_loss": 1.08300,
        "take_profit": 1.08900,
        "position_size_lots": 1.5,
        "note": "ECB surprise",
    }
    fields.update(changes)
    return service_pb2.InjectManualSignalRequest(**fields)


@pytest.fixture
async def known_trader(stubs: Stubs) -> None:
    """trader-1 has called the engine once, so the company's admins can act for them."""
    await stubs.as_().GetStrategy(service_pb2.GetStrategyRequest())


@pytest.mark.usefixtures("known_trader")
async def test_an_admin_injects_a_signal_that_is_published_and_audited(
    stubs: Stubs, engine: Application
) -> None:
    response = await stubs.as_(ADMIN).InjectManualSignal(order())
    signal = response.signal
    assert (signal.user_id, signal.company_id) == ("trader-1", "acme")
    assert signal.source == S.SIGNAL_SOURCE_MANUAL
    assert signal.injected_by == "ops-1"
    assert signal.correlation_id == "req-1"
    assert (signal.signal_type, signal.disposition) == (
        S.SIGNAL_TYPE_BUY,
        S.SIGNAL_DISPOSITION_ACTIONABLE,
    )
    assert signal.decision_trace[0].rule == S.DECISION_RULE_MANUAL
    assert signal.decision_trace[0].detail == "injected by ops-1: ECB surprise"
    entry = signal.entry
    assert (entry.entry_price, entry.stop_loss, entry.take_profit) == (1.085, 1.083, 1.089)
    assert (entry.stop_loss_pips, entry.take_profit_pips) == (20, 40)
    assert entry.position_size_lots == 1.5
    assert entry.time_in_force == S.TIME_IN_FORCE_IMMEDIATE_OR_CANCEL

    await asyncio.sleep(0.3)
    pages = [p async for p in stubs.as_().GetSignalHistory(service_pb2.GetSignalHistoryRequest())]
    assert [s for page in pages for s in page.signals] == [signal]
    audit = await engine.store.list_audit("acme", 10)
    assert audit[0].action == "signal.inject"
    assert (audit[0].actor, audit[0].subject_user_id) == ("ops-1", "trader-1")
    assert json.loads(audit[0].detail)["signal_id"] == signal.signal_id


@pytest.mark.usefixtures("known_trader")
async def test_a_retry_returns_the_first_signal_and_publishes_nothing_again(
    stubs: Stubs, engine: Application
) -> None:
    admin = stubs.as_(ADMIN)
    first = await admin.InjectManualSignal(order())
    # Even with other values, the request id names the first signal.
    again = await admin.InjectManualSignal(order(position_size_lots=2.0))
    assert again.signal == first.signal
    await asyncio.sleep(0.3)
    request = service_pb2.GetSignalHistoryRequest(user_id="trader-1")
    pages = [p async for p in admin.GetSignalHistory(request)]
    assert sum(len(page.signals) for page in pages) == 1
    assert [r.action for r in await engine.store.list_audit("acme", 10)] == ["signal.inject"]


@pytest.mark.usefixtures("known_trader")
async def test_a_request_id_used_for_another_user_is_refused(stubs: Stubs) -> None:
    admin = stubs.as_(ADMIN)
    await stubs.as_(FREE_USER).GetStrategy(service_pb2.GetStrategyRequest())
    await admin.InjectManualSignal(order())

    reused = await rpc_failure(admin.InjectManualSignal(order(user_id="free-1")))

    assert isinstance(reused, FailedPreconditionError)
    assert reused.reason == "REQUEST_ID_REUSED"


@pytest.mark.usefixtures("known_trader")
async def test_only_admins_of_the_users_company_inject(stubs: Stubs) -> None:
    refused = await rpc_failure(stubs.as_(TRADER).InjectManualSignal(order()))
    assert isinstance(refused, PermissionDeniedError)
    assert refused.reason == "NOT_COMPANY_ADMIN"
    # For the rival's admin, trader-1 names a user of the rival company: unknown there.
    foreign = await rpc_failure(stubs.as_(RIVAL_ADMIN).InjectManualSignal(order()))
    assert isinstance(foreign, NotFoundError)


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        pytest.param(
            {"stop_loss": 1.0870, "take_profit": 1.0840},
            {
                "stop_loss": "must be on the losing side of the entry 1.085",
                "take_profit": "must be on the winning side of the entry 1.085",
            },
            id="sides",
        ),
        pytest.param(
            {"symbol": "XAUUSD"},
            {"symbol": "the user's tier and strategy do not trade XAUUSD"},
            id="not-entitled",
        ),
        pytest.param(
            {"signal_type": S.SIGNAL_TYPE_HOLD, "reference_price": 0.0},
            {
                "signal_type": "must be BUY, WEAK_BUY, WEAK_SELL or SELL",
                "reference_price": "required: a finite price > 0",
            },
            id="hold-and-no-price",
        ),
        pytest.param(
            {"position_size_lots": 11.0},
            {"position_size_lots": "must be at most 10 lots (the strategy's maximum)"},
            id="too-large",
        ),
        pytest.param(
            {"position_size_lots": 0.0},
            {
                "position_size_lots": (
                    "0 asks for risk-based sizing, which needs the user's account equity; no "
                    "prediction batch for this user has been seen yet, so give a size"
                )
            },
            id="no-account-for-sizing",
        ),
        pytest.param({"request_id": ""}, "request_id", id="no-request-id"),
    ],
)
@pytest.mark.usefixtures("known_trader")
async def test_invalid_orders_name_every_bad_field(
    stubs: Stubs, changes: dict[str, Any], expected: dict[str, str] | str
) -> None:
    error = await rpc_failure(stubs.as_(ADMIN).InjectManualSignal(order(**changes)))
    assert isinstance(error, InvalidArgumentError)
    if isinstance(expected, str):
        assert expected in error.field_violations
    else:
        assert error.field_violations == expected


async def test_risk_based_sizing_uses_the_account_of_the_users_newest_batch(
    stubs: Stubs,
) -> None:
    # The trader's batch reports 25,000 USD; PRO risks 1% per trade: 250 USD over 20 pips.
    await stubs.as_().ProcessPredictionBatch(
        service_pb2.ProcessPredictionBatchRequest(batch=live(batch("b", [prediction("p")])))
    )
    signal = (await stubs.as_(ADMIN).InjectManualSignal(order(position_size_lots=0.0))).signal
    assert signal.entry.position_size_lots == pytest.approx(1.25)
    assert signal.entry.risk_amount == pytest.approx(250.0)
    sizing = next(s for s in signal.decision_trace if s.rule == S.DECISION_RULE_POSITION_SIZE)
    assert sizing.outcome == S.RULE_OUTCOME_PASS


@pytest.mark.usefixtures("known_trader")
async def test_sizing_without_a_conversion_rate_is_refused_with_what_to_do(stubs: Stubs) -> None:
    await stubs.as_().ProcessPredictionBatch(
        service_pb2.ProcessPredictionBatchRequest(batch=live(batch("b", [prediction("p")])))
    )
    # USDCHF's pip is worth CHF; no CHF price has been seen to convert it into USD.
    error = await rpc_failure(
        stubs.as_(ADMIN).InjectManualSignal(
            order(
                symbol="USDCHF",
                reference_price=0.8812,
                stop_loss=0.8792,
                take_profit=0.8852,
                position_size_lots=0.0,
            )
        )
    )
    assert isinstance(error, FailedPreconditionError)
    assert error.reason == "CANNOT_SIZE"
    assert "give position_size_lots" in error.message


@pytest.mark.usefixtures("known_trader")
async def test_manual_signals_over_rest(gateway: EnvoyGateway, tokens: Tokens) -> None:
    body = {
        "requestId": "rest-1", "userId": "trader-1", "symbol": "GBPUSD",
        "signalType": "SIGNAL_TYPE_WEAK_SELL", "orderType": "ORDER_TYPE_LIMIT",
        "limitPrice": 1.2720, "referencePrice": 1.2704, "stopLoss": 1.2750,
        "takeProfit": 1.2660, "positionSizeLots": 0.5, "validity": "600s",
    }  # fmt: skip
    status, answer = await http_json_async(
        "POST",
        f"{gateway.base_url}/api/v1/signals/manual",
        json.dumps(body).encode(),
        {"content-type": "application/json", **tokens.header(ADMIN)},
    )
    assert status == 200, answer
    entry = answer["signal"]["entry"]
    assert entry["orderType"] == "ORDER_TYPE_LIMIT"
    assert entry["limitPrice"] == 1.272
    assert entry["timeInForce"] == "TIME_IN_FORCE_GOOD_TILL_TIME"
    status, answer = await http_json_async(
        "POST",
        f"{gateway.base_url}/api/v1/signals/manual",
        json.dumps(body).encode(),
        {"content-type": "application/json", **tokens.header(TRADER)},
    )
    assert (status, answer["details"][0]["reason"]) == (403, "NOT_COMPANY_ADMIN")
