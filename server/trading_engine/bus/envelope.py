"""Opening inbound envelopes and sealing outbound ones.

Output message ids derive from the input's, so a batch decided again (after a
crash, before its Kafka offset was committed) goes out under the same id and
consumers can drop the second copy.

Every sealed message fits the bus's message size limit: a signal batch too
large for one message is split between signals into parts
(`<input id>:signals:1/3`, ...), and a dead letter too large carries the first
bytes of the original with its size and digest.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Callable, Mapping
from typing import Final

from google.protobuf.message import DecodeError

from tradeflow.common.v1 import dead_letter_pb2, envelope_pb2, trace_pb2
from tradeflow.trading.v1 import signal_pb2
from trading_engine.bus.names import SERVICE_NAME
from trading_engine.engine import DecidedBatch
from trading_engine_client.envelopes import message_type_name

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
# Room left in the limit for what a transport adds around the sealed bytes: NATS counts
# headers in its payload limit, Kafka its record framing, key and headers.
_TRANSPORT_OVERHEAD: Final = 1024
# The most a length-delimited field's tag and length take (a length below 2^28).
_LENGTH_PREFIX: Final = 5
# What a truncated dead letter may grow by: the flag saying so, the varints that shrink last.
_TRUNCATION_SLACK: Final = 16
# A dead letter's detail is for people; beyond this it is cut.
_MAX_DETAIL: Final = 2000
_DISPOSITION_COUNTS: Final = {
    signal_pb2.SIGNAL_DISPOSITION_ACTIONABLE: "actionable_count",
    signal_pb2.SIGNAL_DISPOSITION_HOLD: "hold_count",
    signal_pb2.SIGNAL_DISPOSITION_REJECTED: "rejected_count",
    signal_pb2.SIGNAL_DISPOSITION_SUPPRESSED: "suppressed_count",
    signal_pb2.SIGNAL_DISPOSITION_INVALID: "invalid_count",
}


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

    @property
    def size(self) -> int:
        """Bytes a transport's message size limit counts, its framing aside."""
        return (
            len(self.key)
            + len(self.data)
            + sum(len(name) + len(value) for name, value in self.headers)
            + _TRANSPORT_OVERHEAD
        )


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
            f"message_type is {message_type_name(envelope.message_type)}, "
            f"expected {message_type_name(expected_type)}",
            message_id[:_MAX_ID_LENGTH],
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
    decided: DecidedBatch,
    inbound: Envelope,
    now_ns: int,
    trace_context: trace_pb2.TraceContext,
    max_bytes: int,
) -> list[Outbound]:
    """The signal batch in an envelope carrying `trace_context` (the input's, or its child's);
    in several parts when one message of at most `max_bytes` cannot hold it.

    Raises Rejected (OUTPUT_TOO_LARGE) when a single signal does not fit.
    """
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
    key = tenant_key(decided.company_id, decided.user_id)
    whole = _outbound(envelope, key)
    if whole.size <= max_bytes:
        return [whole]
    batch = signal_pb2.TradingSignalBatch.FromString(decided.payload)
    parts = _split(batch, envelope, max_bytes, inbound.message_id)
    outbound = []
    for number, part in enumerate(parts, start=1):
        envelope.payload = part
        envelope.part, envelope.part_count = number, len(parts)
        envelope.message_id = f"{inbound.message_id}:signals:{number}/{len(parts)}"
        outbound.append(_outbound(envelope, key))
    return outbound


def _split(
    batch: signal_pb2.TradingSignalBatch, envelope: Envelope, max_bytes: int, message_id: str
) -> list[bytes]:
    """The batch's signals, in order, as the fewest batches whose envelopes fit `max_bytes`."""
    signals = list(batch.signals)
    del batch.signals[:]
    # The largest envelope and batch around the signals: ids as long as any part's, every
    # count and length at its widest.
    envelope.payload = b""
    envelope.part = envelope.part_count = len(signals)
    envelope.message_id += f":{len(signals)}/{len(signals)}"
    for name in _DISPOSITION_COUNTS.values():
        setattr(batch, name, len(signals))
    frame = _outbound(envelope, b"").size + batch.ByteSize() + _LENGTH_PREFIX
    budget = max_bytes - frame
    parts: list[list[signal_pb2.TradingSignal]] = [[]]
    used = 0
    for signal in signals:
        size = signal.ByteSize() + _LENGTH_PREFIX
        if size > budget:
            raise Rejected(
                dead_letter_pb2.DEAD_LETTER_REASON_OUTPUT_TOO_LARGE,
                f"signal {signal.signal_id} alone is {size} bytes; a message may carry "
                f"{budget} bytes of signals (limit {max_bytes} bytes)",
                message_id,
            )
        if used + size > budget:
            parts.append([])
            used = 0
        parts[-1].append(signal)
        used += size
    return [_part_of(batch, part) for part in parts]


def _part_of(
    template: signal_pb2.TradingSignalBatch, signals: list[signal_pb2.TradingSignal]
) -> bytes:
    part = signal_pb2.TradingSignalBatch()
    part.CopyFrom(template)
    part.signals.extend(signals)
    for disposition, name in _DISPOSITION_COUNTS.items():
        setattr(part, name, sum(1 for signal in signals if signal.disposition == disposition))
    return part.SerializeToString()


def seal_dead_letter(
    original: bytes,
    rejection: Rejected,
    source: str,
    transport: str,
    now_ns: int,
    max_bytes: int,
) -> Outbound:
    """The refused bytes, untouched, with the reason they were refused; only their first bytes
    (with the size and digest of all of them) when the letter would not fit `max_bytes`."""
    letter = dead_letter_pb2.DeadLetter(
        original=original,
        reason=rejection.reason,
        detail=rejection.detail[:_MAX_DETAIL],
        source=source,
        transport=transport,
        message_id=rejection.message_id[:_MAX_ID_LENGTH],
        original_size=len(original),
        original_sha256=hashlib.sha256(original).digest(),
    )
    letter.rejected_at.FromNanoseconds(now_ns)
    # Refused again on redelivery, it keeps its id: consumers see one dead letter.
    refused = letter.message_id or hashlib.blake2b(original, digest_size=12).hexdigest()
    envelope = Envelope(
        message_type=DEAD_LETTER,
        service_source=SERVICE_NAME,
        message_id=f"{refused}:dead-letter",
    )
    envelope.timestamp.FromNanoseconds(now_ns)
    key = source.encode()
    envelope.payload = letter.SerializeToString()
    sealed = _outbound(envelope, key)
    excess = sealed.size - max_bytes
    if excess > 0:
        letter.original = original[: max(len(original) - excess - _TRUNCATION_SLACK, 0)]
        letter.original_truncated = True
        envelope.payload = letter.SerializeToString()
        sealed = _outbound(envelope, key)
    return sealed


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


def _outbound(envelope: Envelope, key: bytes) -> Outbound:
    return Outbound(envelope.message_id, key, envelope.SerializeToString(), _headers(envelope))


def _headers(envelope: Envelope) -> tuple[tuple[str, str], ...]:
    headers = [
        (MESSAGE_ID, envelope.message_id),
        (MESSAGE_TYPE, message_type_name(envelope.message_type)),
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
