"""The pipeline both transports feed: envelope -> once only -> decide -> both transports.

Thin: every trading rule is in the engine. What this adds is the bus's
contract: one decision per message id whichever transport brings it, output
on NATS and Kafka, and every refused message in the dead letters with the
reason, its bytes untouched.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import logging
from typing import Final, Protocol

from google.protobuf.message import DecodeError

from tradeflow.common.v1 import dead_letter_pb2, tier_pb2
from tradeflow.trading.v1 import execution_pb2
from trading_engine.bus.claims import Claims
from trading_engine.bus.deliveries import DeliveryLog, SequenceTracker
from trading_engine.bus.envelope import (
    EXECUTIONS,
    PREDICTIONS,
    Envelope,
    Inbound,
    Outbound,
    Rejected,
    open_envelope,
    seal_dead_letter,
    seal_signals,
    trace_headers,
)
from trading_engine.bus.names import (
    KAFKA_DEAD_LETTER,
    KAFKA_SIGNALS,
    NATS_DEAD_LETTER,
    NATS_SIGNALS,
)
from trading_engine.bus.outbox import KafkaOutput
from trading_engine.clock import Clock
from trading_engine.engine import DecidedBatch
from trading_engine.errors import UNDECODABLE, EngineError, InvalidArgument, PermissionDenied
from trading_engine.logs import log_context
from trading_engine.pipeline import SignalPipeline
from trading_engine.stores.base import StoreError
from trading_engine.strategies import StrategyService
from trading_engine.tenancy import Caller
from trading_engine.tracing import CONSUMER, PRODUCER, Tracing

_log = logging.getLogger(__name__)

# A tenant's strategy that cannot be loaded is retried this often, then the batch is
# refused to the dead letters (with its bytes) rather than decided with a guess.
_STRATEGY_ATTEMPTS: Final = 5
_STRATEGY_RETRY_S: Final = 0.2
_UNSPECIFIED_TIER: Final = tier_pb2.SUBSCRIPTION_TIER_UNSPECIFIED


class Publisher(Protocol):
    async def publish(self, subject: str, message: Outbound) -> None: ...


class ExecutionSink(Protocol):
    """Where execution results go once received, checked and de-duplicated."""

    async def record(self, result: execution_pb2.ExecutionResult) -> object:
        """Raises EngineError when the result cannot be taken (unknown signal, bad fields)."""
        ...


@dataclasses.dataclass
class BridgeCounts:
    batches_decided: int = 0
    duplicates: int = 0
    executions: int = 0
    # Dead letters by reason name.
    dead_letters: collections.Counter[str] = dataclasses.field(default_factory=collections.Counter)


class BusBridge:
    def __init__(
        self,
        pipeline: SignalPipeline,
        strategies: StrategyService,
        clock: Clock,
        claims: Claims,
        nats: Publisher | None,
        kafka: KafkaOutput | None,
        deliveries: DeliveryLog,
        executions: ExecutionSink,
        tracing: Tracing,
    ) -> None:
        self._tracing = tracing
        self._pipeline = pipeline
        self._strategies = strategies
        self._clock = clock
        self._claims = claims
        self._nats = nats
        self._kafka = kafka
        self._deliveries = deliveries
        self._executions = executions
        self.sequences = SequenceTracker()
        self.counts = BridgeCounts()

    async def on_predictions(self, inbound: Inbound) -> None:
        try:
            envelope = open_envelope(inbound.data, PREDICTIONS)
        except Rejected as rejection:
            await self._dead_letter(inbound, rejection)
            return
        if not await self._first_copy(envelope, inbound):
            return
        with log_context(
            company_id=envelope.company_id,
            user_id=envelope.user_id,
            message_id=envelope.message_id,
            correlation_id=envelope.correlation_id,
        ):
            await self._decide_and_publish(envelope, inbound)

    async def _decide_and_publish(self, envelope: Envelope, inbound: Inbound) -> None:
        tracing = self._tracing
        with tracing.span(
            f"{inbound.source} process",
            CONSUMER,
            envelope.trace_context,
            **{"messaging.system": inbound.transport, "messaging.message.id": envelope.message_id},
        ):
            try:
                decided, now_ns = await self._decide(envelope)
            except Rejected as rejection:
                # Refused for good: another copy would be refused the same way.
                await self._dead_letter(inbound, rejection)
                return
            except BaseException:
                # Not decided: a later copy may be.
                self._deliveries.forget(envelope.message_id)
                raise
            with tracing.span(f"{NATS_SIGNALS} publish", PRODUCER):
                outbound = seal_signals(
                    decided, envelope, now_ns, tracing.carried(envelope.trace_context)
                )
                await self._publish(NATS_SIGNALS, KAFKA_SIGNALS, outbound, inbound)
        self.counts.batches_decided += 1

    async def on_execution(self, inbound: Inbound) -> None:
        try:
            envelope = open_envelope(inbound.data, EXECUTIONS)
            if not await self._first_copy(envelope, inbound):
                return
            result = _execution_result(envelope)
        except Rejected as rejection:
            await self._dead_letter(inbound, rejection)
            return
        try:
            with log_context(
                company_id=envelope.company_id,
                user_id=envelope.user_id,
                message_id=envelope.message_id,
                signal_id=result.signal_id,
            ):
                await self._executions.record(result)
        except EngineError as error:
            # Refused for good, with the engine's reason (e.g. no such signal of that user).
            refusal = Rejected(
                dead_letter_pb2.DEAD_LETTER_REASON_INVALID_PAYLOAD,
                error.message,
                envelope.message_id,
            )
            await self._dead_letter(inbound, refusal)
            return
        except BaseException:
            # Not recorded (the store failed): a later copy may be.
            self._deliveries.forget(envelope.message_id)
            raise
        self.counts.executions += 1
        self._handed_off(inbound)

    async def _first_copy(self, envelope: Envelope, inbound: Inbound) -> bool:
        """Whether this copy is the one to process; others only fire their receipt."""
        message_id = envelope.message_id
        if self._deliveries.begin(message_id) and await self._claims.claim(message_id):
            self.sequences.observe(envelope.producer_id, envelope.sequence)
            trace_headers(envelope, inbound.headers)
            return True
        self.counts.duplicates += 1
        self._handed_off(inbound)
        return False

    async def _decide(self, envelope: Envelope) -> tuple[DecidedBatch, int]:
        """The decided batch and the instant it was decided at."""
        # On the bus the envelope names the tenant and the batch states its tier.
        caller = Caller(envelope.user_id, envelope.company_id, _UNSPECIFIED_TIER)
        await self._load_strategy(envelope)
        now_ns = self._clock.now_ns()
        try:
            decided = await self._pipeline.decide(envelope.payload, now_ns, caller)
        except PermissionDenied as error:
            raise Rejected(
                dead_letter_pb2.DEAD_LETTER_REASON_TENANT_MISMATCH,
                error.message,
                envelope.message_id,
            ) from None
        except InvalidArgument as error:
            # The message names every offending field.
            raise Rejected(
                dead_letter_pb2.DEAD_LETTER_REASON_UNDECODABLE
                if error.reason == UNDECODABLE
                else dead_letter_pb2.DEAD_LETTER_REASON_INVALID_PAYLOAD,
                error.message,
                envelope.message_id,
            ) from None
        try:
            await self._strategies.remember(
                Caller(decided.user_id, decided.company_id, decided.tier)
            )
        except StoreError as error:
            # Only an admin listing is late; the decision stands.
            _log.warning("cannot record the tier of user %s: %s", decided.user_id, error)
        return decided, now_ns

    async def _load_strategy(self, envelope: Envelope) -> None:
        for attempt in range(1, _STRATEGY_ATTEMPTS + 1):
            try:
                await self._strategies.prepare(envelope.company_id, envelope.user_id)
                return
            except (StoreError, EngineError) as error:
                if attempt == _STRATEGY_ATTEMPTS:
                    raise Rejected(
                        dead_letter_pb2.DEAD_LETTER_REASON_UNSPECIFIED,
                        f"the tenant's strategy cannot be loaded: {error}",
                        envelope.message_id,
                    ) from None
                await asyncio.sleep(_STRATEGY_RETRY_S * attempt)

    async def _dead_letter(self, inbound: Inbound, rejection: Rejected) -> None:
        letter = seal_dead_letter(
            inbound.data, rejection, inbound.source, inbound.transport, self._clock.now_ns()
        )
        reason = dead_letter_pb2.DeadLetterReason.Name(rejection.reason)
        self.counts.dead_letters[reason] += 1
        _log.info(
            "dead letter from %s %s: %s: %s",
            inbound.transport,
            inbound.source,
            reason,
            rejection.detail,
        )
        await self._publish(NATS_DEAD_LETTER, KAFKA_DEAD_LETTER, letter, inbound)

    async def _publish(self, subject: str, topic: str, message: Outbound, inbound: Inbound) -> None:
        if self._nats is not None:
            await self._nats.publish(subject, message)
        if self._kafka is not None:
            self._kafka.put(topic, message, inbound.receipt)
        elif inbound.receipt is not None:
            inbound.receipt()

    def _handed_off(self, inbound: Inbound) -> None:
        """Nothing to publish for this message: its receipt fires after everything before it."""
        if inbound.receipt is None:
            return
        if self._kafka is not None:
            self._kafka.after_pending(inbound.receipt)
        else:
            inbound.receipt()


def _execution_result(envelope: Envelope) -> execution_pb2.ExecutionResult:
    try:
        result = execution_pb2.ExecutionResult.FromString(envelope.payload)
    except DecodeError as error:
        raise Rejected(
            dead_letter_pb2.DEAD_LETTER_REASON_UNDECODABLE,
            f"the payload is not an ExecutionResult: {error}",
            envelope.message_id,
        ) from None
    missing = [name for name in ("execution_id", "signal_id") if not getattr(result, name)]
    if missing or result.status == execution_pb2.EXECUTION_STATUS_UNSPECIFIED:
        raise Rejected(
            dead_letter_pb2.DEAD_LETTER_REASON_INVALID_PAYLOAD,
            f"the execution result lacks {', '.join(missing or ['status'])}",
            envelope.message_id,
        )
    if (result.user_id, result.company_id) != (envelope.user_id, envelope.company_id):
        raise Rejected(
            dead_letter_pb2.DEAD_LETTER_REASON_TENANT_MISMATCH,
            f"the execution result belongs to user {result.user_id!r} of company "
            f"{result.company_id!r}, the envelope to user {envelope.user_id!r} of company "
            f"{envelope.company_id!r}",
            envelope.message_id,
        )
    return result
