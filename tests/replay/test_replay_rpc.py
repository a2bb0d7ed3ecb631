"""ReplaySignals on a running engine: progress, then the result, for the caller's own signals."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

import pytest
from google.protobuf import field_mask_pb2, timestamp_pb2

from tests.api.trading import ManualClock
from tests.replay.sessions import BATCHES, live_session
from tests.support import (
    RIVAL_ADMIN,
    TRADER,
    Stubs,
    Tokens,
    http_json_async,
    rest_gateway,
    rpc_failure,
)
from tradeflow.trading.v1 import signal_pb2, strategy_pb2
from tradeflow.trading.v1 import trading_engine_service_pb2 as service_pb2
from trading_engine import errors
from trading_engine.app import Application
from trading_engine.engine import EngineLimits
from trading_engine.replay.backtest import Backtest
from trading_engine.replay.service import ReplayProgressed, ReplayQuery, ReplayService
from trading_engine.tenancy import Caller
from trading_engine_client.errors import InvalidArgumentError, PermissionDeniedError

if TYPE_CHECKING:
    from tests.api.trading import Stub

S = service_pb2
DAY_NS = 86_400 * 10**9
CONFIDENCE = signal_pb2.DECISION_RULE_CONFIDENCE


def _window(start_ns: int, end_ns: int, **fields: object) -> S.ReplaySignalsRequest:
    request = S.ReplaySignalsRequest(**fields)  # type: ignore[arg-type]
    request.start_time.FromNanoseconds(start_ns)
    request.end_time.FromNanoseconds(end_ns)
    return request


def _strict(threshold: float, masked: bool = True) -> dict[str, object]:
    """A candidate of `threshold`, named in a mask or (masked False) by its presence alone."""
    candidate = strategy_pb2.StrategyConfig(min_confidence_threshold=threshold)
    if not masked:
        return {"candidate": candidate}
    return {
        "candidate": candidate,
        "candidate_mask": field_mask_pb2.FieldMask(paths=["min_confidence_threshold"]),
    }


async def _replayed(stub: Stub, request: S.ReplaySignalsRequest) -> list[S.ReplaySignalsResponse]:
    return [response async for response in stub.ReplaySignals(request)]


async def test_a_replay_as_decided_reproduces_the_callers_signals_with_progress_first(
    live: Application, clock: ManualClock, tokens: Tokens
) -> None:
    start = await live_session(live, clock, tokens)
    stubs = Stubs(live.grpc_address, tokens)
    try:
        answers = await _replayed(stubs.as_(TRADER), _window(start, clock.now))
    finally:
        await stubs.close()

    *progress, last = answers
    done = [p.progress.batches_done for p in progress]
    assert done == sorted(set(done))
    assert done[0] == 0
    assert progress[-1].progress.batches_done == progress[-1].progress.batches_total == BATCHES
    result = last.result
    assert result.decisions > 200
    assert (result.identical, result.different, result.risk_answered) == (result.decisions, 0, 0)
    assert result.performance.signals_total == result.decisions
    assert not result.HasField("candidate_performance")


@pytest.mark.parametrize("masked", [True, False], ids=["with a mask", "by presence"])
async def test_a_candidate_lists_what_it_removes_with_the_rule_and_both_figures(
    live: Application, clock: ManualClock, tokens: Tokens, masked: bool
) -> None:
    start = await live_session(live, clock, tokens)
    stubs = Stubs(live.grpc_address, tokens)
    try:
        answers = await _replayed(
            stubs.as_(TRADER),
            _window(start, clock.now, max_differences=5, **_strict(0.95, masked)),
        )
    finally:
        await stubs.close()

    result = answers[-1].result
    assert result.removed > 5
    assert len(result.differences) == 5
    removed = [d for d in result.differences if d.change == S.SIGNAL_CHANGE_REMOVED]
    assert removed
    for difference in removed:
        assert difference.before.user_id == difference.after.user_id == "trader-1"
        assert difference.after.reason == signal_pb2.DISPOSITION_REASON_CONFIDENCE_BELOW_THRESHOLD
        confidence = next(
            s for s in difference.steps if s.rule == signal_pb2.DECISION_RULE_CONFIDENCE
        )
        assert (confidence.before.threshold, confidence.after.threshold) == (0.7, 0.95)
    assert result.candidate_performance.executed < result.performance.executed


async def test_bad_requests_name_each_field(
    live: Application, clock: ManualClock, tokens: Tokens
) -> None:
    stubs = Stubs(live.grpc_address, tokens)
    stub = stubs.as_(TRADER)
    try:
        cases = [
            (S.ReplaySignalsRequest(), {"start_time", "end_time"}),
            (_window(clock.now, clock.now - 1), {"end_time"}),
            (_window(clock.now - 32 * DAY_NS, clock.now), {"end_time"}),
            (_window(clock.now - DAY_NS, clock.now, max_differences=5000), {"max_differences"}),
            (
                _window(clock.now - DAY_NS, clock.now, **_strict(1.5)),
                {"candidate.min_confidence_threshold"},
            ),
            # The mask names a field the candidate does not carry: not a threshold of 0.
            (
                _window(
                    clock.now - DAY_NS,
                    clock.now,
                    candidate=strategy_pb2.StrategyConfig(stop_loss_pips=25.0),
                    candidate_mask=field_mask_pb2.FieldMask(paths=["min_confidence_threshold"]),
                ),
                {"candidate.min_confidence_threshold"},
            ),
            # A candidate that carries nothing is not a replay "as decided".
            (
                _window(clock.now - DAY_NS, clock.now, candidate=strategy_pb2.StrategyConfig()),
                {"candidate"},
            ),
        ]
        for request, fields in cases:
            error = await rpc_failure(_replayed(stub, request))
            assert isinstance(error, InvalidArgumentError), error
            assert set(error.field_violations) == fields
    finally:
        await stubs.close()


async def test_another_users_replay_is_for_admins_of_the_company_only(
    live: Application, clock: ManualClock, tokens: Tokens
) -> None:
    start = await live_session(live, clock, tokens)
    stubs = Stubs(live.grpc_address, tokens)
    colleague = Caller("trader-2", "acme", TRADER.tier)
    try:
        refused = await rpc_failure(
            _replayed(stubs.as_(colleague), _window(start, clock.now, user_id="trader-1"))
        )
        assert isinstance(refused, PermissionDeniedError)
        # Another company's admin replays their own company: nothing of acme's comes back.
        rival = await _replayed(stubs.as_(RIVAL_ADMIN), _window(start, clock.now))
    finally:
        await stubs.close()
    assert rival[-1].result.decisions == 0
    assert rival[-2].progress.batches_total == 0


async def test_the_replay_is_on_rest_too(
    live: Application, clock: ManualClock, tokens: Tokens
) -> None:
    start = await live_session(live, clock, tokens)
    body = json.dumps({
        "start_time": _iso(start), "end_time": _iso(clock.now),
        "candidate": {"min_confidence_threshold": 0.95}, "candidate_mask": "minConfidenceThreshold",
    }).encode()  # fmt: skip
    async with rest_gateway(live) as envoy:
        status, messages = await http_json_async(
            "POST", f"{envoy.base_url}/api/v1/signals:replay", body, tokens.header(TRADER)
        )
    assert status == 200, messages
    assert "progress" in messages[0]
    assert int(messages[-1]["result"]["removed"]) > 0


def _iso(ns: int) -> str:
    stamp = timestamp_pb2.Timestamp()
    stamp.FromNanoseconds(ns)
    return stamp.ToJsonString()


async def test_one_replay_at_a_time_and_none_too_large_for_the_engine(
    live: Application, clock: ManualClock, tokens: Tokens
) -> None:
    start = await live_session(live, clock, tokens)
    query = ReplayQuery("acme", "trader-1", start, clock.now, None)
    service = ReplayService(live.store, EngineLimits())
    running = service.replay(query)
    first = await anext(running)
    assert isinstance(first, ReplayProgressed)
    # The first holds the engine's replay turn until it ends.
    with pytest.raises(errors.ResourceExhausted):
        await anext(service.replay(query))
    assert isinstance([event async for event in running][-1], Backtest)
    # Its turn over, the next may run; one over the limit is refused with what to do.
    small = ReplayService(live.store, EngineLimits(), max_batches=BATCHES - 1)
    with pytest.raises(errors.FailedPrecondition, match="trading-engine replay --from-history"):
        async for _ in small.replay(query):
            pass
    assert isinstance([event async for event in service.replay(query)][-1], Backtest)
