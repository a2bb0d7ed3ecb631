"""The decision pipeline: bytes in, bytes out, one decision per prediction.

decode -> validate the batch -> resolve the tenant's strategy -> decide each
prediction (or replay its earlier decision) -> risk status -> encode.
Synchronous and CPU-only: transports call it from the event loop between
awaits; nothing here waits on I/O. Risk management, which does, runs between
the two halves: `draft` decides, `seal` sets the risk status left unset,
encodes and keeps.
"""

from __future__ import annotations

import collections
import dataclasses
import time
from collections.abc import Sequence
from typing import Final, Protocol

from tradeflow.trading.v1 import signal_pb2
from trading_engine.core import decide as core
from trading_engine.core import instruments, manual, tiers
from trading_engine.core.decision import (
    ACTIONABLE,
    HELD,
    INVALID,
    REASON_INVALID_PREDICTION,
    REJECTED,
    RISK_NOT_ASSESSED,
    RISK_NOT_REQUIRED,
    RISK_UNSET,
    RULE_INPUT_VALIDATION,
    SIDE,
    SUPPRESSED,
    Decision,
)
from trading_engine.core.inputs import BatchInput, PredictionInput
from trading_engine.core.instruments import DEFAULT_CURRENCY
from trading_engine.core.manual import ManualOrder, order_violations
from trading_engine.core.market import MarketBook
from trading_engine.core.memory import RATE_WINDOW_NS, RecentSignal, SignalMemory
from trading_engine.core.protections import UNPROTECTED, Protection
from trading_engine.core.strategy import Strategy, from_config
from trading_engine.core.validation import batch_violations
from trading_engine.errors import (
    FailedPrecondition,
    FieldViolation,
    Undecodable,
    invalid,
)
from trading_engine.stats import DecisionStats
from trading_engine.stores.base import PredictionBatchRecord, SignalRecord
from trading_engine.tenancy import Caller, check_batch_tenant
from trading_engine.wire.predictions import decode_batch
from trading_engine.wire.protowire import DecodeError
from trading_engine.wire.signals import SignalContext, SignalEncoder

# How often (in batches) idle users' signal memories are dropped.
_HOUSEKEEPING_EVERY: Final = 4096


class StrategySource(Protocol):
    """Where the engine gets the strategy in force for a tenant."""

    def strategy_for(self, caller: Caller) -> Strategy: ...


class TierDefaultStrategies:
    """Each tier's default strategy, for every user of that tier (revision 0)."""

    def __init__(self) -> None:
        self._by_tier: dict[int, Strategy] = {}

    def strategy_for(self, caller: Caller) -> Strategy:
        strategy = self._by_tier.get(caller.tier)
        if strategy is None:
            policy = tiers.policy_for(caller.tier)
            strategy = self._by_tier[caller.tier] = from_config(policy.defaults, policy, 0)
        return strategy


class ProtectionSource(Protocol):
    """A user's trading state, open positions and stop-outs, kept current by their owner."""

    def protection(self, company_id: str, user_id: str) -> Protection: ...


class NoProtections:
    """Nothing tracked: every user is active, holds no position and was never stopped out."""

    def protection(self, company_id: str, user_id: str) -> Protection:
        return UNPROTECTED


@dataclasses.dataclass(frozen=True)
class EngineLimits:
    # Predictions beyond this many in one batch are answered INVALID, not decided.
    max_batch_size: int = 500
    # Decisions remembered by (user, prediction id) so a prediction delivered again
    # gets the same signal back; the oldest are forgotten first.
    replay_cache_size: int = 20_000


@dataclasses.dataclass
class DraftBatch:
    """A batch decided but not sealed: risk management may still change its fresh decisions."""

    # The serialized MLPredictionBatch, kept with the signals so each can be explained.
    data: bytes
    batch: BatchInput
    tier: int
    strategy: Strategy
    signal_context: SignalContext
    # Per input position: a decision made now, or an earlier (signal, disposition) replayed.
    slots: list[Decision | tuple[bytes, int]]
    # The decisions made now, in input order.
    fresh: list[Decision]
    # Time spent deciding, for the decision-time statistics.
    elapsed_ns: int
    # Risk management's verdict on the fresh decisions (risk.verdicts, as JSON), kept with the
    # batch so a replay can apply it again; empty without risk management.
    risk_verdict: str = ""


# Not frozen: a frozen dataclass's __init__ stays interpreted under mypyc (about 13,000
# instructions a batch); this one is written out, as in core.decision. Nothing changes it.
@dataclasses.dataclass(init=False)
class DecidedBatch:
    """The encoded TradingSignalBatch and what it holds."""

    payload: bytes
    batch_id: str
    user_id: str
    company_id: str
    # The tier the batch was decided at.
    tier: int
    correlation_id: str
    strategy_version: int
    # Decisions of this call (replayed ones excluded), in input order.
    decisions: list[Decision]
    # Actionable, hold, rejected, suppressed, invalid.
    counts: tuple[int, int, int, int, int]

    def __init__(
        self,
        payload: bytes,
        batch_id: str,
        user_id: str,
        company_id: str,
        tier: int,
        correlation_id: str,
        strategy_version: int,
        decisions: list[Decision],
        counts: tuple[int, int, int, int, int],
    ) -> None:
        self.payload = payload
        self.batch_id = batch_id
        self.user_id = user_id
        self.company_id = company_id
        self.tier = tier
        self.correlation_id = correlation_id
        self.strategy_version = strategy_version
        self.decisions = decisions
        self.counts = counts


class HistorySink(Protocol):
    """Where decided signals and their prediction batches go to be kept; must not block."""

    def submit(self, records: Sequence[SignalRecord]) -> None: ...

    def keep_batch(self, record: PredictionBatchRecord) -> None: ...


class DecisionEngine:
    def __init__(
        self,
        strategies: StrategySource | None = None,
        protections: ProtectionSource | None = None,
        limits: EngineLimits | None = None,
        stats: DecisionStats | None = None,
        history: HistorySink | None = None,
    ) -> None:
        self.strategies = strategies or TierDefaultStrategies()
        self.protections = protections or NoProtections()
        self.limits = limits or EngineLimits()
        self.stats = stats or DecisionStats()
        self.history = history
        self.book = MarketBook()
        self.memory = SignalMemory()
        self._encoder = SignalEncoder()
        # signal id -> (encoded signal, disposition), oldest first.
        self._replay: collections.OrderedDict[str, tuple[bytes, int]] = collections.OrderedDict()
        # (company, user) -> (equity, account currency) of the user's newest batch.
        self._accounts: dict[tuple[str, str], tuple[float, str]] = {}
        self._batches = 0

    def decide(self, data: bytes, now_ns: int, caller: Caller) -> DecidedBatch:
        """Decide and seal a batch with no risk management in between (see `draft`)."""
        return self.seal(self.draft(data, now_ns, caller))

    def draft(self, data: bytes, now_ns: int, caller: Caller) -> DraftBatch:
        """Decide a serialized MLPredictionBatch for `caller` at the instant `now_ns`.

        Raises InvalidArgument when the bytes are not a batch or the batch as a
        whole cannot be decided (no tenant, no id), and PermissionDenied when
        the batch is not the caller's; bad predictions are answered with
        INVALID decisions instead. The caller's tier, not the batch's, selects
        the strategy.
        """
        started = time.perf_counter_ns()
        try:
            batch = decode_batch(data)
        except DecodeError as error:
            raise Undecodable(
                f"not a valid MLPredictionBatch: {error}", (FieldViolation("batch", str(error)),)
            ) from None
        violations = batch_violations(batch)
        if violations:
            raise invalid("the prediction batch cannot be decided", violations)
        check_batch_tenant(caller, batch.user_id, batch.company_id, batch.tier)
        if not caller.tier:
            caller = Caller(caller.user_id, caller.company_id, batch.tier, caller.roles)
        strategy = self.strategies.strategy_for(caller)
        currency = batch.currency or DEFAULT_CURRENCY
        # Manual signals for this user are sized from the account the newest batch reported.
        self._accounts[(batch.company_id, batch.user_id)] = (batch.equity, currency)
        protection = self.protections.protection(batch.company_id, batch.user_id)
        context = core.DecisionContext(
            batch.user_id,
            batch.company_id,
            batch.equity,
            currency,
            strategy,
            now_ns,
            batch.produced_ns,
            protection.open_positions,
            protection,
        )
        signal_context = SignalContext(
            batch.batch_id,
            batch.user_id,
            batch.company_id,
            batch.correlation_id,
            strategy.version,
            now_ns,
            signal_pb2.SIGNAL_SOURCE_ENGINE,
        )
        slots, fresh = self._decide_all(batch, context)
        return DraftBatch(
            data,
            batch,
            caller.tier,
            strategy,
            signal_context,
            slots,
            fresh,
            time.perf_counter_ns() - started,
        )

    def seal(self, draft: DraftBatch) -> DecidedBatch:
        """Encode the batch; decisions risk management left alone get NOT_ASSESSED or NOT_REQUIRED.

        The fresh signals are remembered (a prediction delivered again gets the
        same signal back) and handed to history.
        """
        started = time.perf_counter_ns()
        signal_context = draft.signal_context
        encoder = self._encoder
        payloads: list[bytes] = []
        # Decisions per disposition value (ACTIONABLE 1 .. INVALID 5).
        tally = [0] * (INVALID + 1)
        fresh: list[bytes] = []
        for slot in draft.slots:
            if isinstance(slot, tuple):
                payloads.append(slot[0])
                tally[slot[1]] += 1
                continue
            if slot.risk_status == RISK_UNSET:
                slot.risk_status = (
                    RISK_NOT_ASSESSED if slot.disposition == ACTIONABLE else RISK_NOT_REQUIRED
                )
            payload = encoder.encode_signal(signal_context, slot)
            payloads.append(payload)
            tally[slot.disposition] += 1
            fresh.append(payload)
            if _replayable(slot.prediction_id, slot.reason):
                self._remember(slot.signal_id, payload, slot.disposition)
        # Encoding the signals, their replay memory included: the health report's serialisation.
        encode_ns = time.perf_counter_ns() - started
        batch = draft.batch
        now_ns = signal_context.decided_at_ns
        if self.history is not None and fresh:
            self.history.keep_batch(
                PredictionBatchRecord(
                    batch.company_id,
                    batch.batch_id,
                    batch.user_id,
                    now_ns,
                    draft.data,
                    draft.risk_verdict,
                )
            )
            self.history.submit(_history_records(batch, now_ns, draft.fresh, fresh))
        counts = (
            tally[ACTIONABLE],
            tally[HELD],
            tally[REJECTED],
            tally[SUPPRESSED],
            tally[INVALID],
        )
        payload = encoder.encode_batch(signal_context, payloads, counts)
        self._housekeeping(now_ns, draft.strategy)
        elapsed_ns = draft.elapsed_ns + time.perf_counter_ns() - started
        self.stats.record(
            len(payloads), counts[0], elapsed_ns, now_ns, batch.produced_ns, draft.fresh,
            (batch.company_id, batch.user_id), encode_ns,
        )  # fmt: skip
        return DecidedBatch(
            payload,
            batch.batch_id,
            batch.user_id,
            batch.company_id,
            draft.tier,
            batch.correlation_id,
            draft.strategy.version,
            draft.fresh,
            counts,
        )

    def remember_signals(self, newest_first: Sequence[SignalRecord]) -> int:
        """Take up signals decided before a restart (history's newest, newest first), as if
        decided by this engine; returns how many a prediction delivered again gets back.

        - A prediction delivered again gets the signal it got then, byte for byte: the same
          signals as while running, decided from a prediction (not manual) and not refused as
          an invalid prediction, which may come back corrected under the same id.
        - The actionable ones count for duplicate suppression and the rate limit, so a
          restart does not signal again what was just signalled.
        """
        remembered = 0
        for record in reversed(newest_first[: self.limits.replay_cache_size]):
            signal = signal_pb2.TradingSignal.FromString(record.payload)
            if signal.source != signal_pb2.SIGNAL_SOURCE_ENGINE:
                continue
            if _replayable(signal.prediction_id, signal.reason):
                self._remember(record.signal_id, record.payload, record.disposition)
                remembered += 1
            if record.disposition == ACTIONABLE:
                self._recall_actionable(record, signal)
        return remembered

    def _recall_actionable(self, record: SignalRecord, signal: signal_pb2.TradingSignal) -> None:
        """Remember an actionable signal of an earlier run as the rules did when deciding it."""
        instrument = instruments.lookup(signal.symbol)
        side = SIDE.get(signal.signal_type, 0)
        if instrument is None or not side:
            return
        entry_ticks = instrument.to_ticks(signal.entry.entry_price)
        self.memory.user(record.company_id, record.user_id).remember(
            signal.symbol, side, RecentSignal(record.generated_at_ns, entry_ticks, record.signal_id)
        )

    def account(self, company_id: str, user_id: str) -> tuple[float, str] | None:
        """(equity, currency) of the account the user's newest batch reported, if any."""
        return self._accounts.get((company_id, user_id))

    def decide_manual(
        self,
        order: ManualOrder,
        subject: Caller,
        request_id: str,
        injected_by: str,
        now_ns: int,
    ) -> tuple[Decision, bytes]:
        """An admin's order for `subject` as a signal and its encoding; nothing is kept.

        Raises InvalidArgument naming each bad field of the order, and
        FailedPrecondition when risk-based sizing cannot size it.
        """
        strategy = self.strategies.strategy_for(subject)
        account = self._accounts.get((subject.company_id, subject.user_id))
        equity, currency = account or (0.0, DEFAULT_CURRENCY)
        # An admin's order is theirs to make: trading state and cooldown do not apply to it.
        protection = self.protections.protection(subject.company_id, subject.user_id)
        context = core.DecisionContext(
            subject.user_id, subject.company_id, equity, currency, strategy, now_ns, now_ns,
            protection.open_positions,
        )  # fmt: skip
        violations = order_violations(order, context, account is not None)
        if violations:
            raise invalid("the manual signal is invalid", violations)
        signal_id = context.ids.of(f"manual\x1f{request_id}")
        decision = manual.decide_manual(order, signal_id, injected_by, context, self.book)
        if not decision.actionable:
            raise FailedPrecondition(
                f"the signal cannot be sized: {decision.cancellation_reason}; "
                "give position_size_lots",
                reason="CANNOT_SIZE",
            )
        signal_context = SignalContext(
            "", subject.user_id, subject.company_id, request_id, strategy.version, now_ns,
            signal_pb2.SIGNAL_SOURCE_MANUAL, injected_by,
        )  # fmt: skip
        return decision, self._encoder.encode_signal(signal_context, decision)

    def _decide_all(
        self, batch: BatchInput, context: core.DecisionContext
    ) -> tuple[list[Decision | tuple[bytes, int]], list[Decision]]:
        """Every prediction's decision or replayed signal, and the decisions made now."""
        slots: list[Decision | tuple[bytes, int]] = []
        decisions: list[Decision] = []
        replay = self._replay
        seen: set[str] = set()
        max_batch = self.limits.max_batch_size
        for index, prediction in enumerate(batch.predictions):
            prediction_id = prediction.prediction_id
            signal_id = ""
            if index >= max_batch:
                decision = _invalid_in_batch(
                    context, prediction, index, f"the batch exceeds {max_batch} predictions"
                )
            elif prediction_id and prediction_id in seen:
                decision = _invalid_in_batch(
                    context, prediction, index, "repeats an earlier prediction_id of the batch"
                )
            else:
                seen.add(prediction_id)
                # The signal id names tenant and prediction: the replay key too.
                signal_id = context.ids.of(prediction_id)
                earlier = replay.get(signal_id) if prediction_id else None
                if earlier is not None:
                    slots.append(earlier)
                    continue
                decision = core.decide_input(prediction, context, self.book, self.memory, signal_id)
            slots.append(decision)
            decisions.append(decision)
        return slots, decisions

    def _remember(self, key: str, payload: bytes, disposition: int) -> None:
        replay = self._replay
        replay[key] = (payload, disposition)
        if len(replay) > self.limits.replay_cache_size:
            replay.popitem(last=False)

    def _housekeeping(self, now_ns: int, strategy: Strategy) -> None:
        self._batches += 1
        if self._batches % _HOUSEKEEPING_EVERY == 0:
            self.memory.forget_idle(now_ns, max(strategy.duplicate_window_ns, RATE_WINDOW_NS))


def _replayable(prediction_id: str, reason: int) -> bool:
    """Whether a prediction delivered again gets this decision back rather than a new one."""
    return bool(prediction_id) and reason != REASON_INVALID_PREDICTION


def _history_records(
    batch: BatchInput, now_ns: int, decisions: list[Decision], signals: list[bytes]
) -> list[SignalRecord]:
    company_id, user_id = batch.company_id, batch.user_id
    return [
        history_record(company_id, user_id, now_ns, decision, signal)
        for decision, signal in zip(decisions, signals, strict=True)
    ]


def history_record(
    company_id: str, user_id: str, now_ns: int, decision: Decision, signal: bytes
) -> SignalRecord:
    """A decision and its encoded signal, as signal history keeps them."""
    return SignalRecord(
        company_id,
        user_id,
        decision.signal_id,
        now_ns,
        decision.symbol,
        decision.signal_type,
        decision.disposition,
        signal,
    )


def _invalid_in_batch(
    context: core.DecisionContext, prediction: PredictionInput, index: int, why: str
) -> Decision:
    """An INVALID decision for a prediction the batch itself makes undecidable.

    Its signal id includes the position, so it never collides with the signal
    of the prediction it repeats.
    """
    prediction_id = prediction.prediction_id
    decision = Decision(
        context.ids.of(f"{prediction_id}#{index}"),
        prediction_id,
        prediction.symbol,
        prediction.confidence,
        prediction.volume,
        [(RULE_INPUT_VALIDATION, signal_pb2.RULE_OUTCOME_FAIL, float(index), 0.0, why)],
    )
    return decision.stop(INVALID, REASON_INVALID_PREDICTION, f"prediction {index}: {why}")
