"""Opening inbound envelopes and sealing outbound ones.

Output message ids derive from the input's, so a batch decided again (after a
crash, before its Kafka offset was committed) goes out under the same id and
consumers can drop the second copy.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Callable, Mapping
from typing import Final

from google.protobuf.message import DecodeError

from tradeflow.common.v1 import dead_letter_pb2, envelope_pb2, trace_pb2
from trading_engine.bus.names import SERVICE_NAME
from trading_engine.engine import DecidedBatch

Envelope = envelope_pb2.TradingProcessingEnvelope

PREDICTIONS: Final = envelope_pb2.MESSAGE_TYPE_ML_PREDICTION_BATCH
SIGNALS: Final = envelope_pb2.MESSAGE_TYPE_TRADING_SIGNAL_BATCH
EXECUTIONS: Final = envelope_pb2.MESSAGE_TYPE_EXECUTION_RESULT
DEAD_LETTER: Final = envelope_pb2.MESSAGE_TYPE_DEAD_LETTER

# Header names; trace context follows W3C Trace Context.
TRACEPARENT: Final = "traceparent"
TRACESTATE: Final = "tracestate"
CORRELATION_ID: Final = "correlation-id"
MESSAGE_ID: Final = "message-id"
MESSAGE_TYPE: Final = "message-type"

_MAX_ID_LENGTH: Final = 256


class Rejected(Exception):
    """Input that cannot be processed; it goes to the dead letters with this reason."""

    def __init__(
        self, reason: dead_letter_pb2.DeadLetterReason.ValueType, detail: str, message_id: str = ""
    ) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail
        self.message_id = message_id


@dataclasses.dataclass(frozen=True, slots=True)
class Outbound:
    """One message to publish on both transports."""

    message_id: str
    # Kafka partition key: one user's messages stay in order.
    key: bytes
    data: bytes
    headers: tuple[tuple[str, str], ...]


def open_envelope(data: bytes, expected_type: envelope_pb2.MessageType.ValueType) -> Envelope:
    """The envelope in `data`, checked to carry `expected_type` for a named tenant."""
    envelope = Envelope()
    try:
        envelope.ParseFromString(data)
    except DecodeError as error:
        raise Rejected(
            dead_letter_pb2.DEAD_LETTER_REASON_UNDECODABLE,
            f"not a TradingProcessingEnvelope: {error}",
        ) from None
    message_id = envelope.message_id
    if envelope.message_type != expected_type:
        raise Rejected(
            dead_letter_pb2.DEAD_LETTER_REASON_WRONG_MESSAGE_TYPE,
            f"message_type is {envelope_pb2.MessageType.Name(envelope.message_type)}, "
            f"expected {envelope_pb2.MessageType.Name(expected_type)}",
            message_id,
        )
    missing = [
        name for name in ("message_id", "user_id", "company_id") if not getattr(envelope, name)
    ]
    if missing:
        raise Rejected(
            dead_letter_pb2.DEAD_LETTER_REASON_INVALID_PAYLOAD,
            f"the envelope lacks {', '.join(missing)}",
            message_id,
        )
    if len(message_id) > _MAX_ID_LENGTH:
        raise Rejected(
            dead_letter_pb2.DEAD_LETTER_REASON_INVALID_PAYLOAD,
            f"message_id is longer than {_MAX_ID_LENGTH} characters",
            message_id[:_MAX_ID_LENGTH],
        )
    return envelope


def seal_signals(
    decided: DecidedBatch, inbound: Envelope, now_ns: int, trace_context: trace_pb2.TraceContext
) -> Outbound:
    """The signal batch in an envelope carrying `trace_context` (the input's, or its child's)."""
    envelope = Envelope(
        message_type=SIGNALS,
        user_id=decided.user_id,
        company_id=decided.company_id,
        payload=decided.payload,
        service_source=SERVICE_NAME,
        correlation_id=decided.correlation_id or inbound.correlation_id,
        message_id=f"{inbound.message_id}:signals",
    )
    envelope.timestamp.FromNanoseconds(now_ns)
    envelope.trace_context.CopyFrom(trace_context)
    envelope.strategy_info.strategy_version = decided.strategy_version
    return Outbound(
        envelope.message_id,
        tenant_key(decided.company_id, decided.user_id),
        envelope.SerializeToString(),
        _headers(envelope),
    )


def seal_dead_letter(
    original: bytes,
    rejection: Rejected,
    source: str,
    transport: str,
    now_ns: int,
) -> Outbound:
    """The refused bytes, untouched, with the reason they were refused."""
    letter = dead_letter_pb2.DeadLetter(
        original=original,
        reason=rejection.reason,
        detail=rejection.detail,
        source=source,
        transport=transport,
        message_id=rejection.message_id,
    )
    letter.rejected_at.FromNanoseconds(now_ns)
    # Refused again on redelivery, it keeps its id: consumers see one dead letter.
    refused = rejection.message_id or hashlib.blake2b(original, digest_size=12).hexdigest()
    envelope = Envelope(
        message_type=DEAD_LETTER,
        payload=letter.SerializeToString(),
        service_source=SERVICE_NAME,
        message_id=f"{refused}:dead-letter",
    )
    envelope.timestamp.FromNanoseconds(now_ns)
    return Outbound(
        envelope.message_id, source.encode(), envelope.SerializeToString(), _headers(envelope)
    )


def tenant_key(company_id: str, user_id: str) -> bytes:
    return f"{company_id}/{user_id}".encode()


def trace_headers(envelope: Envelope, headers: Mapping[str, str]) -> None:
    """Fill the envelope's trace context from transport headers where it has none."""
    context = envelope.trace_context
    if not context.traceparent and TRACEPARENT in headers:
        context.traceparent = headers[TRACEPARENT]
        context.tracestate = headers.get(TRACESTATE, "")
    if not envelope.correlation_id:
        envelope.correlation_id = context.correlation_id or headers.get(CORRELATION_ID, "")


def _headers(envelope: Envelope) -> tuple[tuple[str, str], ...]:
    headers = [
        (MESSAGE_ID, envelope.message_id),
        (MESSAGE_TYPE, envelope_pb2.MessageType.Name(envelope.message_type)),
    ]
    if envelope.correlation_id:
        headers.append((CORRELATION_ID, envelope.correlation_id))
    if envelope.trace_context.traceparent:
        headers.append((TRACEPARENT, envelope.trace_context.traceparent))
        if envelope.trace_context.tracestate:
            headers.append((TRACESTATE, envelope.trace_context.tracestate))
    return tuple(headers)


@dataclasses.dataclass(frozen=True, slots=True)
class Inbound:
    """A message as a transport delivered it."""

    transport: str
    # Subject or topic it arrived on.
    source: str
    data: bytes
    headers: Mapping[str, str]
    # Fired once the message's outputs are handed off; Kafka commits its offset then.
    receipt: Callable[[], None] | None = None
