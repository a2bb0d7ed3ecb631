"""Execution results: checked, linked to their signals, kept per tenant, turned into outcomes.

Results arrive from the bus and through `RecordExecutionResult`. Each is
stored once (a re-sent result changes nothing), the signal's outcome is
recomputed from all of its results (`core.outcomes`), and the user's
protection follows: open positions (the position limit and reduce-only read
them) and stop-outs (the cooldown reads them). Whoever waits for a user's
figures to change is woken (`changes`), and `after_close` reviews the user
once a signal closes (the drawdown limit and adaptive strategies).
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import logging
from collections.abc import Awaitable, Callable
from typing import Final

from tradeflow.trading.v1 import execution_pb2, signal_pb2
from trading_engine import errors, field_limits, timestamps
from trading_engine.clock import Clock
from trading_engine.core import instruments
from trading_engine.core.attribution import ModelTally, votes_of
from trading_engine.core.decision import SIDE
from trading_engine.core.instruments import DEFAULT_CURRENCY
from trading_engine.core.outcomes import Outcome, facts_of, outcome_of
from trading_engine.core.performance import BREAKEVEN, LOSS, WIN, SignalResult
from trading_engine.core.protections import Protection
from trading_engine.explain import prediction_of
from trading_engine.protections import Protections
from trading_engine.stores.base import ExecutionRecord, OutcomeRecord, Store
from trading_engine.stores.history import HistoryWriter
from trading_engine.stores.retry import with_store_retries
from trading_engine.tenancy import Caller, subject_user

_log = logging.getLogger(__name__)
E = execution_pb2
_NEEDS_FILL: Final = frozenset(
    {E.EXECUTION_STATUS_FILLED, E.EXECUTION_STATUS_PARTIALLY_FILLED, E.EXECUTION_STATUS_CLOSED}
)
_CLOSED_OUTCOMES: Final = frozenset({WIN, LOSS, BREAKEVEN})
_DAY_NS: Final = 86_400 * 1_000_000_000
# Amounts are kept to the cent in doubles, exact up to 2^53 cents (about 9e13); no
# commission or profit of one execution comes near a trillion in any currency.
MAX_AMOUNT: Final = 1e12

# (company, user) -> (equity, currency) of the account the user's newest batch reported.
Account = Callable[[str, str], tuple[float, str] | None]
# Called with (company, user) after one of the user's signals closed.
AfterClose = Callable[[str, str], Awaitable[None]]


class UserChanges:
    """A counter per user that waiters can watch: figures changed since I last looked?"""

    def __init__(self) -> None:
        self._versions: collections.Counter[tuple[str, str]] = collections.Counter()
        self._changed = asyncio.Condition()

    def version(self, key: tuple[str, str]) -> int:
        return self._versions[key]

    async def bump(self, key: tuple[str, str]) -> None:
        self._versions[key] += 1
        async with self._changed:
            self._changed.notify_all()

    async def wait_past(self, key: tuple[str, str], version: int) -> int:
        """Wait until the user's figures change past `version`; the new version."""
        async with self._changed:
            await self._changed.wait_for(lambda: self._versions[key] > version)
        return self._versions[key]


class ExecutionTracker:
    def __init__(
        self,
        store: Store,
        history: HistoryWriter,
        clock: Clock,
        account: Account,
        protections: Protections,
        after_close: AfterClose | None = None,
    ) -> None:
        self._store = store
        self._history = history
        self._clock = clock
        self._account = account
        self._protections = protections
        # Signal ids whose positions are open, as the protections count them.
        self._open: set[str] = set()
        self.changes = UserChanges()
        self._after_close = after_close
        # Signals closed through this instance since start, and how many won.
        self.closed = 0
        self.wins = 0
        # How each model's votes did on those signals (their prediction kept), for the metrics.
        self.models = ModelTally()

    async def start(self) -> None:
        """Rebuild the open positions and the last day's stop-outs from the store."""
        for outcome in await self._store.open_outcomes():
            self._opened(
                outcome.company_id, outcome.user_id, outcome.signal_id, outcome.symbol,
                SIDE[outcome.signal_type],
            )  # fmt: skip
        # No cooldown lasts longer than a day (the strategy's longest duration).
        since_ns = self._clock.now_ns() - _DAY_NS
        for record in await self._store.closed_executions_since(since_ns):
            result = execution_pb2.ExecutionResult.FromString(record.payload)
            if not _stop_out(result):
                continue
            stopped = await self._store.outcome(record.company_id, record.signal_id)
            if stopped is not None:
                self._protections.protection(record.company_id, record.user_id).stopped_out(
                    stopped.symbol, SIDE[stopped.signal_type], result.closed_at.ToNanoseconds()
                )

    def open_positions(self, company_id: str, user_id: str) -> int:
        return self._protections.protection(company_id, user_id).open_positions

    async def record(
        self, tenant: Caller, result: execution_pb2.ExecutionResult
    ) -> execution_pb2.SignalPerformance:
        """Record a result for `tenant` (the caller over gRPC, the envelope's tenant on the bus);
        the signal's performance now. A result recorded before changes nothing and gets the
        same answer.

        The result is the tenant's company's, empty ids meaning the tenant's; another user of
        the company only for an admin (PermissionDenied otherwise). Raises InvalidArgument
        naming each bad field, NotFound when the signal is not in the tenant's history,
        FailedPrecondition when it was not actionable or is for another symbol, Unavailable
        when the store keeps failing.
        """
        result = _for_tenant(tenant, result)
        violations = result_violations(result)
        if violations:
            raise errors.invalid("the execution result is invalid", violations)
        kept = await with_store_retries(
            lambda: self._keep(result), f"execution result {result.execution_id!r}"
        )
        key = (result.company_id, result.user_id)
        follow_position(
            self._protections.protection(*key),
            self._open,
            kept.signal,
            kept.outcome.result.outcome,
            result,
        )
        await self.changes.bump(key)
        if kept.new and kept.outcome.result.outcome in _CLOSED_OUTCOMES:
            self.closed += 1
            self.wins += kept.outcome.result.outcome == WIN
            await self._tally_models(kept.signal, kept.outcome.result)
            if self._after_close is not None:
                await self._after_close(*key)
        return kept.performance

    async def _keep(self, result: execution_pb2.ExecutionResult) -> _Kept:
        """Store the result and the signal's outcome; nothing in memory changes here, so a
        store failure can be retried from the start."""
        signal = await self._signal(result)
        instrument = instruments.lookup(signal.symbol)
        assert instrument is not None  # the engine signals only instruments it knows
        violations = _market_violations(result, instrument)
        if violations:
            raise errors.invalid("the execution result is invalid", violations)
        new = await self._store.record_execution(
            ExecutionRecord(
                result.company_id,
                result.user_id,
                result.execution_id,
                result.signal_id,
                result.status,
                self._clock.now_ns(),
                result.SerializeToString(),
            )
        )
        stored = await self._store.executions_for_signal(result.company_id, result.signal_id)
        results = [execution_pb2.ExecutionResult.FromString(r.payload) for r in stored]
        _, currency = self._account(result.company_id, result.user_id) or (0.0, DEFAULT_CURRENCY)
        outcome = outcome_of(facts_of(signal), results, instrument, currency)
        performance = _performance(signal, outcome)
        await self._store.put_outcome(_outcome_record(signal, outcome, performance, self._clock))
        return _Kept(signal, outcome, performance, new)

    def _opened(
        self, company_id: str, user_id: str, signal_id: str, symbol: str, side: int
    ) -> None:
        protection = self._protections.protection(company_id, user_id)
        _count_open(protection, self._open, signal_id, symbol, side)

    async def _tally_models(self, signal: signal_pb2.TradingSignal, closed: SignalResult) -> None:
        """Count the calls of the models that voted on a signal that has just closed."""
        record = await self._store.signal(signal.company_id, signal.signal_id)
        prediction = None if record is None else await prediction_of(self._store, record, signal)
        if prediction is not None:
            self.models.add(dataclasses.replace(closed, votes=votes_of(prediction)))

    async def _signal(self, result: execution_pb2.ExecutionResult) -> signal_pb2.TradingSignal:
        record = await self._store.signal(result.company_id, result.signal_id)
        if record is None and self._history.pending:
            # Decided moments ago: its history may still be queued.
            await self._history.flush()
            record = await self._store.signal(result.company_id, result.signal_id)
        if record is None or record.user_id != result.user_id:
            raise errors.NotFound(
                f"no signal {result.signal_id!r} of user {result.user_id!r} in the history of "
                f"company {result.company_id!r}",
                reason="SIGNAL_NOT_FOUND",
            )
        signal = signal_pb2.TradingSignal.FromString(record.payload)
        if not signal.HasField("entry"):
            disposition = signal_pb2.SignalDisposition.Name(signal.disposition)
            raise errors.FailedPrecondition(
                f"signal {result.signal_id!r} is {disposition}, not actionable: "
                "nothing of it can be executed",
                reason="SIGNAL_NOT_ACTIONABLE",
            )
        if result.symbol and result.symbol != signal.symbol:
            raise errors.FailedPrecondition(
                f"the result is for {result.symbol} but signal {result.signal_id!r} is for "
                f"{signal.symbol}",
                reason="SYMBOL_MISMATCH",
            )
        return signal


def follow_position(
    protection: Protection,
    open_signals: set[str],
    signal: signal_pb2.TradingSignal,
    outcome: int,
    result: execution_pb2.ExecutionResult,
) -> None:
    """Count the signal's position open or closed after `result`, and a stop-out.

    `open_signals` holds the ids whose positions `protection` counts open.
    """
    side = SIDE[signal.signal_type]
    if outcome == E.SIGNAL_OUTCOME_OPEN:
        _count_open(protection, open_signals, signal.signal_id, signal.symbol, side)
    elif signal.signal_id in open_signals:
        open_signals.discard(signal.signal_id)
        protection.closed(signal.symbol, side)
    if _stop_out(result):
        protection.stopped_out(signal.symbol, side, result.closed_at.ToNanoseconds())


def _count_open(
    protection: Protection, open_signals: set[str], signal_id: str, symbol: str, side: int
) -> None:
    if signal_id not in open_signals:
        open_signals.add(signal_id)
        protection.opened(symbol, side)


def _stop_out(result: execution_pb2.ExecutionResult) -> bool:
    return result.close_reason == E.CLOSE_REASON_STOP_LOSS and result.HasField("closed_at")


@dataclasses.dataclass(frozen=True, slots=True)
class _Kept:
    """A result as stored: its signal, the signal's outcome and performance, and whether the
    result was new (not recorded before)."""

    signal: signal_pb2.TradingSignal
    outcome: Outcome
    performance: execution_pb2.SignalPerformance
    new: bool


def _for_tenant(
    tenant: Caller, result: execution_pb2.ExecutionResult
) -> execution_pb2.ExecutionResult:
    """The result as the tenant's: empty ids are the tenant's own; another company never,
    another user of the company only for an admin."""
    if result.company_id and result.company_id != tenant.company_id:
        raise errors.PermissionDenied(
            f"the result is for company {result.company_id!r}, "
            f"but the caller belongs to {tenant.company_id!r}",
            reason="TENANT_MISMATCH",
        )
    owned = execution_pb2.ExecutionResult()
    owned.CopyFrom(result)
    owned.company_id = tenant.company_id
    owned.user_id = subject_user(tenant, result.user_id)
    return owned


def result_violations(result: execution_pb2.ExecutionResult) -> list[errors.FieldViolation]:
    """What is wrong with a result on its own, field by field; the contract's size limits too,
    which the bus (unlike the gRPC interceptor) does not check on the way in."""
    violations = field_limits.violations(result, "result.")

    def need(ok: bool, field: str, why: str) -> None:
        if not ok:
            violations.append(errors.FieldViolation(f"result.{field}", why))

    need(bool(result.execution_id), "execution_id", "required")
    need(bool(result.signal_id), "signal_id", "required")
    need(bool(result.user_id), "user_id", "required")
    need(bool(result.company_id), "company_id", "required")
    need(
        result.status != E.EXECUTION_STATUS_UNSPECIFIED,
        "status",
        "required: FILLED, PARTIALLY_FILLED, REJECTED, CANCELLED, CLOSED or EXPIRED",
    )
    if result.status in _NEEDS_FILL:
        need(result.executed_price > 0.0, "executed_price", "must be > 0 for a fill or a close")
        need(
            result.executed_size_lots > 0.0,
            "executed_size_lots",
            "must be > 0 for a fill or a close",
        )
        need(result.HasField("executed_at"), "executed_at", "required for a fill or a close")
    if result.status == E.EXECUTION_STATUS_CLOSED:
        need(result.exit_price > 0.0, "exit_price", "must be > 0 for a close")
        need(result.HasField("closed_at"), "closed_at", "required for a close")
    need(
        0.0 <= result.commission <= MAX_AMOUNT,
        "commission",
        f"must be >= 0 and at most {MAX_AMOUNT:.0e}",
    )
    need(
        -MAX_AMOUNT <= result.profit_loss <= MAX_AMOUNT,
        "profit_loss",
        f"must be within +-{MAX_AMOUNT:.0e}",
    )
    if result.HasField("executed_at"):
        timestamps.nanoseconds(result.executed_at, "result.executed_at", violations)
    if result.HasField("closed_at"):
        timestamps.nanoseconds(result.closed_at, "result.closed_at", violations)
    return violations


def _market_violations(
    result: execution_pb2.ExecutionResult, instrument: instruments.Instrument
) -> list[errors.FieldViolation]:
    """Prices and sizes the signal's instrument cannot have (0 stands for not reported)."""
    bounds = f"{instrument.min_price:g} to {instrument.max_price:g}"
    plausible = f"must be a plausible {instrument.symbol} price, {bounds}"
    violations = [
        errors.FieldViolation(f"result.{name}", plausible)
        for name, price in (
            ("executed_price", result.executed_price),
            ("exit_price", result.exit_price),
        )
        if price != 0.0 and not instrument.plausible(price)
    ]
    if not result.executed_size_lots <= instrument.max_lot:
        violations.append(
            errors.FieldViolation(
                "result.executed_size_lots",
                f"must be at most {instrument.max_lot:g} lots, the most {instrument.symbol} trades",
            )
        )
    return violations


def _performance(
    signal: signal_pb2.TradingSignal, outcome: Outcome
) -> execution_pb2.SignalPerformance:
    result = outcome.result
    performance = execution_pb2.SignalPerformance(
        signal_id=signal.signal_id,
        user_id=signal.user_id,
        company_id=signal.company_id,
        symbol=signal.symbol,
        signal_type=signal.signal_type,
        strength=signal.strength,
        confidence=signal.confidence,
        slippage_pips=result.slippage_pips or 0.0,
        outcome=result.outcome,  # type: ignore[arg-type]  # a SignalOutcome value
        profit_loss_pips=result.profit_loss_pips,
        profit_loss=result.profit_loss,
        currency=outcome.currency,
        strategy_version=signal.strategy_version,
    )
    if result.execution_latency_ns is not None:
        performance.execution_latency.FromNanoseconds(result.execution_latency_ns)
    if outcome.opened_ns:
        performance.opened_at.FromNanoseconds(outcome.opened_ns)
    if result.closed_ns:
        performance.closed_at.FromNanoseconds(result.closed_ns)
    return performance


def _outcome_record(
    signal: signal_pb2.TradingSignal,
    outcome: Outcome,
    performance: execution_pb2.SignalPerformance,
    clock: Clock,
) -> OutcomeRecord:
    result = outcome.result
    return OutcomeRecord(
        company_id=signal.company_id,
        user_id=signal.user_id,
        signal_id=signal.signal_id,
        symbol=signal.symbol,
        signal_type=signal.signal_type,
        strength=signal.strength,
        confidence=signal.confidence,
        generated_at_ns=result.generated_ns,
        outcome=result.outcome,
        profit_loss_pips=result.profit_loss_pips,
        profit_loss=result.profit_loss,
        slippage_pips=result.slippage_pips,
        execution_latency_ns=result.execution_latency_ns,
        closed_at_ns=result.closed_ns,
        strategy_version=signal.strategy_version,
        updated_at_ns=clock.now_ns(),
        payload=performance.SerializeToString(),
    )
