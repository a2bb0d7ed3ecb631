"""The risk step of the pipeline: every actionable signal assessed, or a fallback that says why.

One `AssessSignal` call per signal batch carries all of its actionable
signals, with a deadline. The circuit breaker keeps a failing service from
slowing every batch: while it is open the user's last known risk limits
apply (FALLBACK_USED); a call that fails gets conservative limits
(ERROR_FALLBACK). A strategy with `require_risk_assessment` holds the signal
instead (fail-closed). The rules themselves are in `core.risk`.
"""

from __future__ import annotations

import collections
import dataclasses
import logging
from typing import Final, Protocol

import grpc

from tradeflow.common.v1 import trace_pb2, user_context_pb2
from tradeflow.trading.v1 import signal_pb2
from trading_engine.core.decision import Decision
from trading_engine.core.inputs import BatchInput
from trading_engine.core.instruments import DEFAULT_CURRENCY
from trading_engine.core.risk import CONSERVATIVE, FallbackLimits
from trading_engine.core.strategy import Strategy
from trading_engine.health import ComponentReport, ComponentState
from trading_engine.risk.breaker import BreakerState, CircuitBreaker
from trading_engine.risk.verdicts import RiskVerdict, apply_verdict
from trading_engine.wire.protowire import length_delimited
from trading_engine.wire.signals import SignalContext, SignalEncoder

_log = logging.getLogger(__name__)

ASSESS_SIGNAL: Final = "/tradeflow.risk.v1.RiskManagementService/AssessSignal"
# Reconnection to a risk service that went away is tried at least this often, so the
# breaker's trial call finds it soon after it is back.
_RECONNECT_OPTIONS: Final = (
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 1000),
)
# Users whose last assessment is remembered for the open-circuit fallback; oldest dropped first.
_KNOWN_LIMITS_CAPACITY: Final = 100_000


@dataclasses.dataclass(frozen=True)
class RiskSettings:
    address: str
    deadline_s: float
    breaker_failures: int
    breaker_reset_s: float


class Reviewed(Protocol):
    """What the gate reads of a batch decided and not yet sealed (the engine's DraftBatch),
    and the verdict it leaves on it."""

    batch: BatchInput
    tier: int
    strategy: Strategy
    signal_context: SignalContext
    # The decisions made now, in input order.
    fresh: list[Decision]
    risk_verdict: str


@dataclasses.dataclass
class RiskCounts:
    calls: int = 0
    assessed: int = 0
    fallbacks: int = 0
    errors: int = 0
    withheld: int = 0


class RiskGate:
    """Sets the risk status of every actionable decision of a draft batch before it is sealed."""

    def __init__(self, settings: RiskSettings) -> None:
        self._encoder = SignalEncoder()
        self.settings = settings
        self.breaker = CircuitBreaker(settings.breaker_failures, settings.breaker_reset_s)
        self.counts = RiskCounts()
        # (company, user) -> the limits the user's newest assessment implied.
        self._known_limits: collections.OrderedDict[tuple[str, str], FallbackLimits] = (
            collections.OrderedDict()
        )
        # Built in start(): a grpc.aio channel belongs to the loop that creates it.
        self._channel: grpc.aio.Channel | None = None
        self._assess: grpc.aio.UnaryUnaryMultiCallable[bytes, bytes] | None = None

    async def start(self) -> None:
        self._channel = grpc.aio.insecure_channel(self.settings.address, options=_RECONNECT_OPTIONS)
        self._assess = self._channel.unary_unary(ASSESS_SIGNAL)

    async def close(self) -> None:
        if self._channel is not None:
            await self._channel.close()

    async def review(self, draft: Reviewed) -> None:
        """Assess the draft's actionable decisions, or fall back; cancellation passes through.

        The verdict goes with the draft, so history keeps it for replays.
        """
        actionable = [decision for decision in draft.fresh if decision.actionable]
        if not actionable:
            return
        batch = draft.batch
        key = (batch.company_id, batch.user_id)
        verdict = await self._verdict(draft, actionable, key)
        tally = apply_verdict(verdict, actionable, draft.strategy.require_risk_assessment)
        counts = self.counts
        counts.assessed += tally.assessed
        counts.fallbacks += tally.fallbacks
        counts.errors += tally.errors
        counts.withheld += tally.withheld
        if tally.implied is not None:
            self._remember(key, tally.implied)
        draft.risk_verdict = verdict.to_json()

    async def _verdict(
        self, draft: Reviewed, actionable: list[Decision], key: tuple[str, str]
    ) -> RiskVerdict:
        """The risk service's answer for the actionable decisions, or the fallback instead."""
        asked = tuple(decision.signal_id for decision in actionable)
        if self._assess is None or not self.breaker.admit():
            known = self._known_limits.get(key)
            why = f"risk service circuit open ({self.breaker.last_failure or 'not started'}); " + (
                "the user's last known risk limits applied"
                if known is not None
                else "no earlier assessment of this user, conservative limits applied"
            )
            return RiskVerdict(
                asked, status=signal_pb2.RISK_STATUS_FALLBACK_USED,
                limits=known or CONSERVATIVE, why=why,
            )  # fmt: skip
        self.counts.calls += 1
        try:
            answer = await self._assess(
                self._request(draft, actionable),
                timeout=self.settings.deadline_s,
                # Between reconnection attempts, wait (within the deadline) for the next one.
                wait_for_ready=True,
            )
        except grpc.aio.AioRpcError as error:
            failure = f"{error.code().name}: {error.details()}"
            opened = self.breaker.times_opened
            self.breaker.failed(failure)
            if self.breaker.times_opened > opened:
                _log.warning(
                    "risk service circuit opened for %.1fs after: %s",
                    self.settings.breaker_reset_s,
                    failure,
                )
            return RiskVerdict(
                asked, status=signal_pb2.RISK_STATUS_ERROR_FALLBACK,
                why=f"risk assessment failed ({failure}); conservative limits applied",
            )  # fmt: skip
        self.breaker.succeeded()
        return RiskVerdict(asked, answer=answer)

    def _request(self, draft: Reviewed, actionable: list[Decision]) -> bytes:
        batch = draft.batch
        user = user_context_pb2.UserContext(
            user_id=batch.user_id,
            company_id=batch.company_id,
            tier=draft.tier,  # type: ignore[arg-type]  # a SubscriptionTier value
            account_equity=batch.equity,
            account_currency=batch.currency or DEFAULT_CURRENCY,
        ).SerializeToString()
        trace = trace_pb2.TraceContext(correlation_id=batch.correlation_id).SerializeToString()
        encode, context = self._encoder.encode_signal, draft.signal_context
        return b"".join(
            [
                length_delimited(_USER_CONTEXT, user),
                *(length_delimited(_SIGNAL, encode(context, d)) for d in actionable),
                length_delimited(_TRACE_CONTEXT, trace),
            ]
        )

    def _remember(self, key: tuple[str, str], limits: FallbackLimits) -> None:
        known = self._known_limits
        known[key] = limits
        known.move_to_end(key)
        if len(known) > _KNOWN_LIMITS_CAPACITY:
            known.popitem(last=False)

    def probe(self) -> ComponentReport:
        counts = self.counts
        breaker = self.breaker
        summary = (
            f"{counts.calls} calls, {counts.assessed} signals assessed, "
            f"{counts.fallbacks} last-known-limit fallbacks, {counts.errors} error fallbacks, "
            f"{counts.withheld} withheld (fail-closed); breaker opened {breaker.times_opened} times"
        )
        state = breaker.state
        if state is BreakerState.CLOSED:
            return ComponentReport("risk", ComponentState.UP, f"breaker closed; {summary}", False)
        detail = (
            f"breaker {state.value}"
            + (
                f" for {breaker.seconds_until_trial():.1f}s more"
                if state is BreakerState.OPEN
                else ""
            )
            + f" after: {breaker.last_failure}; {summary}"
        )
        return ComponentReport("risk", ComponentState.DEGRADED, detail, False)


# Field tags of AssessSignalRequest: user_context 1, signals 2, trace_context 3 (all LEN).
_USER_CONTEXT: Final = b"\x0a"
_SIGNAL: Final = b"\x12"
_TRACE_CONTEXT: Final = b"\x1a"
