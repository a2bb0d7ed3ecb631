"""Free text and lists have bounds: a request at a bound is taken, one character or element
beyond it is refused with INVALID_ARGUMENT naming the field and the bound, and nothing of it is
kept. Characters are counted as Unicode code points, so every text here is multi-byte."""

from __future__ import annotations

from typing import Any

import grpc
import pytest
from google.protobuf import field_mask_pb2

from tests.support import ADMIN, TRADER, Stubs, rpc_failure
from tradeflow.trading.v1 import signal_pb2, strategy_pb2
from tradeflow.trading.v1 import trading_engine_service_pb2 as service_pb2
from trading_engine.app import Application
from trading_engine_client.errors import InvalidArgumentError

S = service_pb2
USER = strategy_pb2.STRATEGY_LAYER_USER
HALTED, REDUCE_ONLY = S.TRADING_STATE_HALTED, S.TRADING_STATE_REDUCE_ONLY
# Two bytes each in UTF-8: 1,000 of them are 2,000 bytes and still 1,000 characters.
TEXT_LIMIT = 1000
# The gRPC default a client accepts.
DEFAULT_MAX_RECEIVE = 4 * 1024 * 1024


def text(characters: int, letter: str = "é") -> str:
    return letter * characters


def _update(reason: str, threshold: float, expected_version: int) -> S.UpdateStrategyRequest:
    return S.UpdateStrategyRequest(
        layer=USER,
        strategy=strategy_pb2.StrategyConfig(min_confidence_threshold=threshold),
        update_mask=field_mask_pb2.FieldMask(paths=["min_confidence_threshold"]),
        expected_version=expected_version,
        reason=reason,
    )


def _manual(request_id: str, note: str) -> S.InjectManualSignalRequest:
    return S.InjectManualSignalRequest(
        request_id=request_id,
        user_id="trader-1",
        symbol="EURUSD",
        signal_type=signal_pb2.SIGNAL_TYPE_BUY,
        order_type=signal_pb2.ORDER_TYPE_MARKET,
        reference_price=1.085,
        stop_loss=1.083,
        take_profit=1.089,
        position_size_lots=1.0,
        note=note,
    )


def _refused_for(error: Exception, field: str, bound: str) -> None:
    assert isinstance(error, InvalidArgumentError), error
    assert bound in error.field_violations[field], error.field_violations
    assert field in error.message


@pytest.fixture
async def known_trader(stubs: Stubs) -> None:
    """trader-1 has called the engine, so the company's admins can act for them."""
    await stubs.as_(TRADER).GetStrategy(S.GetStrategyRequest())


async def test_a_strategy_reason_of_1000_characters_is_kept_and_one_more_is_refused(
    stubs: Stubs,
) -> None:
    trader = stubs.as_(TRADER)
    kept = await trader.UpdateStrategy(_update(text(TEXT_LIMIT), 0.7, 0))
    assert kept.version.reason == text(TEXT_LIMIT)

    error = await rpc_failure(
        trader.UpdateStrategy(_update(text(TEXT_LIMIT + 1), 0.9, kept.version.version))
    )

    _refused_for(error, "reason", "at most 1,000 characters")
    assert "got 1,001" in error.field_violations["reason"]
    # Nothing changed: one revision, the threshold it set.
    versions = await trader.ListStrategyVersions(S.ListStrategyVersionsRequest(layer=USER))
    assert [v.version for v in versions.versions] == [kept.version.version]
    strategy = await trader.GetStrategy(S.GetStrategyRequest())
    assert strategy.strategy.config.min_confidence_threshold == pytest.approx(0.7)


@pytest.mark.usefixtures("known_trader")
async def test_a_halt_reason_of_1000_characters_is_kept_and_one_more_is_refused(
    stubs: Stubs,
) -> None:
    admin = stubs.as_(ADMIN)
    reason = text(TEXT_LIMIT, "€")
    await admin.SetTradingState(
        S.SetTradingStateRequest(user_id="trader-1", state=REDUCE_ONLY, reason=reason)
    )

    error = await rpc_failure(
        admin.SetTradingState(
            S.SetTradingStateRequest(
                user_id="trader-1", state=HALTED, reason=text(TEXT_LIMIT + 1, "€")
            )
        )
    )

    _refused_for(error, "reason", "at most 1,000 characters")
    state = await admin.GetTradingState(S.GetTradingStateRequest(user_id="trader-1"))
    assert state.effective_state == REDUCE_ONLY
    assert state.user_setting.reason == reason


@pytest.mark.usefixtures("known_trader")
async def test_a_manual_note_of_1000_characters_is_kept_and_one_more_is_refused(
    stubs: Stubs, engine: Application
) -> None:
    admin = stubs.as_(ADMIN)
    note = text(TEXT_LIMIT, "ü")
    injected = await admin.InjectManualSignal(_manual("note-at-limit", note))
    assert injected.signal.decision_trace[0].detail.endswith(note)

    error = await rpc_failure(
        admin.InjectManualSignal(_manual("note-beyond", text(TEXT_LIMIT + 1, "ü")))
    )

    _refused_for(error, "note", "at most 1,000 characters")
    # Nothing kept under the refused request id, nothing audited: one injection only.
    assert await engine.store.manual_signal("acme", "note-beyond") is None
    audit = await engine.store.list_audit("acme", 10)
    assert [record.action for record in audit] == ["signal.inject"]


async def test_lists_and_ids_beyond_their_bounds_name_each_field(stubs: Stubs) -> None:
    trader = stubs.as_(TRADER)
    history = S.GetSignalHistoryRequest(
        user_id="u" * 129, symbols=["EURUSD"] * 51, page_token="t" * 513
    )

    error = await rpc_failure(_drain(trader.GetSignalHistory(history)))

    assert isinstance(error, InvalidArgumentError)
    assert error.field_violations == {
        "user_id": "at most 128 characters (Unicode code points), got 129",
        "symbols": "at most 50 entries, got 51",
        "page_token": "at most 512 characters (Unicode code points), got 513",
    }
    # One symbol too long among few, and a mask with a path too long.
    update = _update("ok", 0.7, 0)
    update.update_mask.paths.append("x" * 129)
    update.strategy.available_instruments.extend(["EURUSD", "E" * 33])
    error = await rpc_failure(trader.UpdateStrategy(update))
    assert isinstance(error, InvalidArgumentError)
    assert set(error.field_violations) == {
        "update_mask[1]",
        "strategy.available_instruments[1]",
    }


async def test_one_operation_beyond_a_bound_is_answered_and_the_stream_goes_on(
    stubs: Stubs,
) -> None:
    trader = stubs.as_(TRADER)
    operations = [
        S.ManageStrategiesRequest(operation_id="too-long", update=_update(text(1001), 0.9, 0)),
        S.ManageStrategiesRequest(operation_id="fine", update=_update(text(10), 0.7, 0)),
    ]

    answers = [answer async for answer in trader.ManageStrategies(iter(operations))]

    assert [answer.operation_id for answer in answers] == ["too-long", "fine"]
    assert answers[0].error.code == grpc.StatusCode.INVALID_ARGUMENT.value[0]
    assert "update.reason at most 1,000 characters" in answers[0].error.message
    assert answers[1].update.version.reason == text(10)


async def test_a_page_of_the_largest_revisions_fits_a_default_client(stubs: Stubs) -> None:
    # 100 revisions (the largest page), each with the longest reason in 4-byte characters.
    trader = stubs.as_(TRADER)
    version = 0
    for number in range(100):
        # From the PRO floor up: a tier bound may be tightened, not loosened.
        threshold = 0.7 + number / 1000
        changed = await trader.UpdateStrategy(_update(text(TEXT_LIMIT, "😀"), threshold, version))
        version = changed.version.version

    page = await trader.ListStrategyVersions(
        S.ListStrategyVersionsRequest(layer=USER, page_size=100)
    )

    assert len(page.versions) == 100
    # About 450 kB: a quarter of the limit leaves room for the contract to grow.
    assert page.ByteSize() < DEFAULT_MAX_RECEIVE / 4


async def _drain(responses: Any) -> None:
    async for _ in responses:
        pass
