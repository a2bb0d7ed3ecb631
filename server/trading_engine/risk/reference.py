"""A reference RiskManagementService for development and tests.

It judges each signal with a few fixed rules (a size limit, a stop-loss limit,
a list of symbols judged extreme) and can be made slow or unreliable on
purpose, so the engine's deadline, circuit breaker and fallbacks can be
exercised against a real gRPC server. It knows nothing of accounts or
exposure: it is a stand-in, not a risk model.
"""

from __future__ import annotations

import asyncio
import dataclasses
import random
from signal import SIGINT, SIGTERM
from typing import Any, TypeAlias

import grpc
from google.protobuf import timestamp_pb2

from tradeflow.common.v1 import risk_level_pb2
from tradeflow.risk.v1 import risk_service_pb2 as risk_pb2
from tradeflow.risk.v1 import risk_service_pb2_grpc as risk_grpc
from tradeflow.trading.v1 import signal_pb2
from trading_engine import errors
from trading_engine.core import instruments

_Context = grpc.aio.ServicerContext[Any, Any]
_Level: TypeAlias = risk_level_pb2.RiskLevel.ValueType

# Seconds in-flight calls get to finish when the service is stopped.
_SHUTDOWN_GRACE_S = 2.0
# Signal types whose stop loss sits below the entry; the other actionable ones sit above.
_LONG = frozenset({signal_pb2.SIGNAL_TYPE_BUY, signal_pb2.SIGNAL_TYPE_WEAK_BUY})
_ACTIONABLE = _LONG | {signal_pb2.SIGNAL_TYPE_SELL, signal_pb2.SIGNAL_TYPE_WEAK_SELL}


@dataclasses.dataclass
class RiskBehaviour:
    """How the service answers; read on every call, so a test may change it while serving."""

    # Seconds to wait before answering or failing.
    latency_s: float = 0.0
    # Fraction of calls, in [0, 1], failed with UNAVAILABLE.
    error_rate: float = 0.0
    # Seed of the draws that pick the failing calls, so a run can be repeated.
    seed: int = 0
    # Largest size accepted per signal, in lots: up to half of it is LOW, up to all of it MEDIUM.
    max_lots: float = 2.0
    # Widest stop loss accepted, in pips of the instrument.
    max_stop_loss_pips: float = 50.0
    # Symbols always judged EXTREME.
    extreme_symbols: frozenset[str] = frozenset()
    # A RiskLevel every assessment gets whatever the rules say; 0 (UNSPECIFIED) lets them decide.
    fixed_level: int = 0


class ReferenceRiskServicer(risk_grpc.RiskManagementServiceServicer):
    """AssessSignal by the rules of `behaviour`, counting the calls and the failures it injects."""

    def __init__(self, behaviour: RiskBehaviour | None = None) -> None:
        self.behaviour = RiskBehaviour() if behaviour is None else behaviour
        self.calls = 0
        self.failures_injected = 0
        self._seed = self.behaviour.seed
        self._draws = random.Random(self._seed)

    async def AssessSignal(  # noqa: N802  # the RPC name the generated base class defines
        self, request: risk_pb2.AssessSignalRequest, context: _Context
    ) -> risk_pb2.AssessSignalResponse:
        self.calls += 1
        behaviour = self.behaviour
        # Drawn as the call arrives, before the sleep a deadline may cut short, so which calls
        # fail depends only on their order.
        fail = self._draw(behaviour) < behaviour.error_rate
        if behaviour.latency_s > 0:
            await asyncio.sleep(behaviour.latency_s)
        if fail:
            self.failures_injected += 1
            await context.abort(
                grpc.StatusCode.UNAVAILABLE,
                f"injected failure: the reference risk service fails "
                f"{behaviour.error_rate * 100:g}% of calls on purpose",
            )
        try:
            return _assess_request(request, behaviour)
        except errors.InvalidArgument as error:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, error.message)

    def _draw(self, behaviour: RiskBehaviour) -> float:
        if behaviour.seed != self._seed:
            # A new seed starts its own sequence, as if the service had been started with it.
            self._seed = behaviour.seed
            self._draws = random.Random(self._seed)
        return self._draws.random()


async def start_server(
    servicer: ReferenceRiskServicer, host: str = "127.0.0.1", port: int = 0
) -> tuple[grpc.aio.Server, int]:
    """Serve `servicer` on host:port (0 picks a free port); return the started server and its port.

    Raises OSError when the port cannot be bound.
    """
    # gRPC sets SO_REUSEPORT by default, so a second service on a busy port would silently
    # share it; fail loudly instead.
    server = grpc.aio.server(options=[("grpc.so_reuseport", 0)])
    risk_grpc.add_RiskManagementServiceServicer_to_server(servicer, server)
    try:
        bound = server.add_insecure_port(f"{host}:{port}")
    except RuntimeError as error:
        raise OSError(
            f"cannot listen on {host}:{port}: {error}; "
            "is another process using the port? Pick another with --port."
        ) from error
    await server.start()
    return server, bound


async def serve(behaviour: RiskBehaviour, host: str, port: int) -> None:
    """Serve until SIGINT or SIGTERM, then give in-flight calls a grace period and stop.

    Prints `risk service listening on HOST:PORT` once it accepts calls.
    """
    stop_requested = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (SIGTERM, SIGINT):
        loop.add_signal_handler(signum, stop_requested.set)
    server, bound = await start_server(ReferenceRiskServicer(behaviour), host, port)
    try:
        print(f"risk service listening on {host}:{bound}", flush=True)
        await stop_requested.wait()
    finally:
        await server.stop(_SHUTDOWN_GRACE_S)


def _assess_request(
    request: risk_pb2.AssessSignalRequest, behaviour: RiskBehaviour
) -> risk_pb2.AssessSignalResponse:
    if not request.user_context.user_id:
        raise errors.InvalidArgument(
            "user_context.user_id is required: the tenant the signals belong to"
        )
    if not request.signals:
        raise errors.InvalidArgument("signals is empty: send at least one signal to assess")
    assessed_at = timestamp_pb2.Timestamp()
    assessed_at.GetCurrentTime()
    response = risk_pb2.AssessSignalResponse()
    for index, signal in enumerate(request.signals):
        assessment = _assess(index, signal, behaviour)
        assessment.assessed_at.CopyFrom(assessed_at)
        response.assessments.append(assessment)
    return response


def _assess(
    index: int, signal: signal_pb2.TradingSignal, behaviour: RiskBehaviour
) -> risk_pb2.RiskAssessment:
    assessment = risk_pb2.RiskAssessment(signal_id=signal.signal_id)
    if signal.HasField("entry") and signal.signal_type in _ACTIONABLE:
        level = _judge(index, signal, behaviour, assessment)
    else:
        level = risk_level_pb2.RISK_LEVEL_LOW
        assessment.reasons.append("not actionable")
    if behaviour.fixed_level:
        assessment.reasons.append(
            f"level fixed at {_name(behaviour.fixed_level)} by the service's configuration; "
            f"the rules said {_name(level)}"
        )
        level = _Level(behaviour.fixed_level)
    assessment.risk_level = level
    return assessment


def _judge(
    index: int,
    signal: signal_pb2.TradingSignal,
    behaviour: RiskBehaviour,
    assessment: risk_pb2.RiskAssessment,
) -> _Level:
    """The level of an actionable signal by the rules; fills in their recommendations."""
    instrument = instruments.lookup(signal.symbol)
    if instrument is None:
        raise errors.InvalidArgument(
            f"signals[{index}].symbol {signal.symbol!r} is not an instrument the engine trades"
        )
    levels: list[_Level] = []
    if signal.symbol in behaviour.extreme_symbols:
        levels.append(risk_level_pb2.RISK_LEVEL_EXTREME)
        assessment.reasons.append(f"{signal.symbol} is on the service's extreme-risk list")
    levels.append(_size_level(signal.entry, behaviour, assessment))
    if signal.entry.stop_loss_pips > behaviour.max_stop_loss_pips:
        _tighten_stop(instrument, signal, behaviour, assessment)
        levels.append(risk_level_pb2.RISK_LEVEL_HIGH)
    return max(levels)


def _size_level(
    entry: signal_pb2.EntryStrategy, behaviour: RiskBehaviour, assessment: risk_pb2.RiskAssessment
) -> _Level:
    size, limit = entry.position_size_lots, behaviour.max_lots
    if size > limit:
        assessment.recommended_position_size_lots = limit
        assessment.reasons.append(
            f"size {size:g} lots is above the {limit:g}-lot limit; reduce it to {limit:g} lots"
        )
        return risk_level_pb2.RISK_LEVEL_HIGH
    if size <= limit / 2:
        assessment.reasons.append(f"size {size:g} lots is at most half the {limit:g}-lot limit")
        return risk_level_pb2.RISK_LEVEL_LOW
    assessment.reasons.append(f"size {size:g} lots is within the {limit:g}-lot limit")
    return risk_level_pb2.RISK_LEVEL_MEDIUM


def _tighten_stop(
    instrument: instruments.Instrument,
    signal: signal_pb2.TradingSignal,
    behaviour: RiskBehaviour,
    assessment: risk_pb2.RiskAssessment,
) -> None:
    entry, limit = signal.entry, behaviour.max_stop_loss_pips
    long = signal.signal_type in _LONG
    # In whole ticks, as the engine prices stops, so the price is exact to the quote.
    distance = instrument.pip_ticks(limit)
    entry_ticks = instrument.to_ticks(entry.entry_price)
    stop = instrument.price(entry_ticks - distance if long else entry_ticks + distance)
    assessment.recommended_stop_loss = stop
    assessment.recommended_stop_loss_tighter = True
    decimals = instrument.price_decimals
    assessment.reasons.append(
        f"stop loss {entry.stop_loss_pips:g} pips is wider than the {limit:g}-pip limit; "
        f"tighten it to {stop:.{decimals}f}, {limit:g} pips {'below' if long else 'above'} "
        f"the entry at {entry.entry_price:.{decimals}f}"
    )


def _name(level: int) -> str:
    return risk_level_pb2.RiskLevel.Name(_Level(level))
