"""The pipeline both transports feed: envelope -> once only -> decide -> both transports.

Thin: every trading rule is in the engine. What this adds is the bus's
contract: one decision per message id whichever transport brings it, output
on NATS and Kafka, and every refused message in the dead letters with the
reason, its bytes untouched.

Whatever one message does, it ends in exactly one of: decided (or recorded,
for an execution result) and published, dead-lettered with a reason, or
counted as a duplicate copy; the handler returns for the next one. So for any
run, messages received = the sum of `BridgeCounts`' outcomes (plus those in
hand).
"""

from __future__ import annotations

import collections
import dataclasses
import logging
from collections.abc import Awaitable, Callable
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
from trading_engine.errors import EngineError, PermissionDenied, Unavailable, Undecodable
from trading_engine.logs import log_context
from trading_engine.pipeline import SignalPipeline
from trading_engine.strategies import StrategyService
from trading_engine.tenancy import Caller
from trading_engine.tracing import CONSUMER, PRODUCER, Tracing

_log = logging.getLogger(__name__)

_UNSPECIFIED_TIER: Final = tier_pb2.SUBSCRIPTION_TIER_UNSPECIFIED
# The dead letter each kind of engine error makes of a message; any other refuses its
# payload (no such signal of that user, an execution for another symbol, ...).
_DEAD_LETTER_REASONS: Final[dict[type[EngineError], dead_letter_pb2.DeadLetterReason.ValueType]] = {
    Undecodable: dead_letter_pb2.DEAD_LETTER_REASON_UNDECODABLE,
    PermissionDenied: dead_letter_pb2.DEAD_LETTER_REASON_TENANT_MISMATCH,
    Unavailable: dead_letter_pb2.DEAD_LETTER_REASON_UNAVAILABLE,
}
_REFUSED: Final = dead_letter_pb2.DEAD_LETTER_REASON_INVALID_PAYLOAD


class Publisher(Protocol):
    async def publish(self, subject: str, message: Outbound) -> None:
        """Publish, or count the message as shed; never raises."""
        ...


class ExecutionSink(Protocol):
    """Where execution results go once received and de-duplicated."""

    async def record(self, tenant: Caller, result: execution_pb2.ExecutionResult) -> object:
        """Raises EngineError when the result cannot be taken (another tenant's, an unknown
        signal, bad fields; Unavailable when the store keeps failing)."""
        ...


@dataclasses.dataclass
class BridgeCounts:
    """What became of every message the transports handed in."""

    # Messages handed in, by transport.
    received: collections.Counter[str] = dataclasses.field(default_factory=collections.Counter)
    batches_decided: int = 0
    executions: int = 0
    duplicates: int = 0
    # Dead letters by reason name.
    dead_letters: collections.Counter[str] = dataclasses.field(default_factory=collections.Counter)
    # Signal batches published in several parts, each too large for one message.
    split_batches: int = 0

    @property
    def in_hand(self) -> int:
        """Messages received and not yet at an outcome: being handled right now."""
        outcomes = (
            self.batches_decided
            + self.executions
            + self.duplicates
            + sum(self.dead_letters.values())
        )
        return sum(self.received.values()) - outcomes


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
        max_message_bytes: Callable[[], int],
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
        self._max_message_bytes = max_message_bytes
        self.sequences = SequenceTracker()
        self.counts = BridgeCounts()

    async def on_predictions(self, inbound: Inbound) -> None:
        await self._handle(inbound, self._predictions)

    async def on_execution(self, inbound: Inbound) -> None:
        await self._handle(inbound, self._execution)

    async def _handle(
        self, inbound: Inbound, handler: Callable[[Inbound], Awaitable[None]]
    ) -> None:
        """Run `handler` on the message; whatever it raises dead-letters the message."""
        self.counts.received[inbound.transport] += 1
        try:
            await handler(inbound)
        except Rejected as rejection:
            await self._dead_letter(inbound, rejection)
        except Exception as error:  # the last line of defence: a defect must not stop intake
            message_id = _readable_id(inbound.data)
            _log.error(
                "failed handling message %r from %s %s; dead-lettering it",
                message_id,
                inbound.transport,
                inbound.source,
                exc_info=error,
            )
            failure = Rejected(
                dead_letter_pb2.DEAD_LETTER_REASON_PROCESSING_FAILED,
                f"the engine failed handling this message: {type(error).__name__}: {error}",
                message_id,
            )
            await self._dead_letter(inbound, failure)

    async def _predictions(self, inbound: Inbound) -> None:
        envelope = open_envelope(inbound.data, PREDICTIONS)
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
            decided, now_ns = await self._decide(envelope)
            with tracing.span(f"{NATS_SIGNALS} publish", PRODUCER):
                outbound = seal_signals(
                    decided,
                    envelope,
                    now_ns,
                    tracing.carried(envelope.trace_context),
                    self._max_message_bytes(),
                )
                if len(outbound) > 1:
                    self.counts.split_batches += 1
                await self._publish(NATS_SIGNALS, KAFKA_SIGNALS, outbound, inbound)
        self.counts.batches_decided += 1

    async def _execution(self, inbound: Inbound) -> None:
        envelope = open_envelope(inbound.data, EXECUTIONS)
        if not await self._first_copy(envelope, inbound):
            return
        result = _execution_result(envelope)
        with log_context(
            company_id=envelope.company_id,
            user_id=envelope.user_id,
            message_id=envelope.message_id,
            signal_id=result.signal_id,
        ):
            try:
                # The envelope names the tenant, as a token does over gRPC.
                await self._executions.record(_tenant(envelope), result)
            except EngineError as error:
                raise self._refusal(error, envelope.message_id) from None
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
        now_ns = self._clock.now_ns()
        try:
            decided = await self._pipeline.decide(envelope.payload, now_ns, _tenant(envelope))
        except EngineError as error:
            raise self._refusal(error, envelope.message_id) from None
        return decided, now_ns

    def _refusal(self, error: EngineError, message_id: str) -> Rejected:
        """The dead letter an engine error makes of a message; one whose cause may pass
        (UNAVAILABLE) releases the message id, so another copy of it is handled."""
        if isinstance(error, Unavailable):
            self._deliveries.forget(message_id)
        return Rejected(_DEAD_LETTER_REASONS.get(type(error), _REFUSED), error.message, message_id)

    async def _dead_letter(self, inbound: Inbound, rejection: Rejected) -> None:
        letter = seal_dead_letter(
            inbound.data,
            rejection,
            inbound.source,
            inbound.transport,
            self._clock.now_ns(),
            self._max_message_bytes(),
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
        await self._publish(NATS_DEAD_LETTER, KAFKA_DEAD_LETTER, [letter], inbound)

    async def _publish(
        self, subject: str, topic: str, messages: list[Outbound], inbound: Inbound
    ) -> None:
        """On both transports; the input's receipt fires once the last message is handed off."""
        for message in messages:
            if self._nats is not None:
                await self._nats.publish(subject, message)
        if self._kafka is not None:
            last = len(messages) - 1
            for index, message in enumerate(messages):
                self._kafka.put(topic, message, inbound.receipt if index == last else None)
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


def _readable_id(data: bytes) -> str:
    """The message id of an envelope, or "" when the bytes do not say."""
    try:
        return Envelope.FromString(data).message_id[:256]
    except DecodeError:
        return ""


def _tenant(envelope: Envelope) -> Caller:
    """Whom a message is from: the envelope's tenant; its tier unstated, so a batch's applies."""
    return Caller(envelope.user_id, envelope.company_id, _UNSPECIFIED_TIER)


def _execution_result(envelope: Envelope) -> execution_pb2.ExecutionResult:
    try:
        return execution_pb2.ExecutionResult.FromString(envelope.payload)
    except DecodeError as error:
        raise Rejected(
            dead_letter_pb2.DEAD_LETTER_REASON_UNDECODABLE,
            f"the payload is not an ExecutionResult: {error}",
            envelope.message_id,
        ) from None
