"""TradingProcessingEnvelope: sealing prediction batches, opening signal batches.

The engine checks an inbound envelope's message type, its tenant (which must
be the payload's), its message id (it decides each id once, whichever
transport brings it) and reads the producer's sequence number to report
gaps; it carries the trace context on to the signals it publishes.
"""

from __future__ import annotations

import dataclasses
import secrets
import uuid
from typing import Final

from google.protobuf.message import DecodeError

from tradeflow.common.v1 import envelope_pb2
from tradeflow.ml.v1 import prediction_pb2
from tradeflow.trading.v1 import signal_pb2
from trading_engine_client.auth import Token
from trading_engine_client.bus_names import (
    CORRELATION_ID,
    MESSAGE_ID,
    MESSAGE_TYPE,
    TRACEPARENT,
    TRACESTATE,
    tenant_key,
)

Envelope = envelope_pb2.TradingProcessingEnvelope

PREDICTIONS: Final = envelope_pb2.MESSAGE_TYPE_ML_PREDICTION_BATCH
SIGNALS: Final = envelope_pb2.MESSAGE_TYPE_TRADING_SIGNAL_BATCH


@dataclasses.dataclass(frozen=True, slots=True)
class Sealed:
    """A prediction batch in its envelope, as NATS and Kafka both carry it."""

    message_id: str
    sequence: int
    # Kafka partition key: one user's batches stay in order.
    key: bytes
    data: bytes
    headers: tuple[tuple[str, str], ...]


class MalformedMessage(ValueError):
    """Bytes on the signal subject or topic that are not a signal batch envelope."""


def seal_predictions(
    batch: prediction_pb2.MLPredictionBatch,
    *,
    producer_id: str,
    sequence: int,
    service_source: str,
    traceparent: str,
    tracestate: str,
    token: Token | None,
    now_ns: int,
) -> Sealed:
    """The batch in a new envelope under a fresh message id.

    Raises ValueError when the batch names no tenant: the engine would only
    refuse it to the dead letters.
    """
    tenant = batch.user_context
    if not tenant.user_id or not tenant.company_id:
        raise ValueError(
            "the batch's user_context needs a user_id and a company_id: "
            "the engine decides a batch for its tenant only"
        )
    envelope = Envelope(
        message_type=PREDICTIONS,
        user_id=tenant.user_id,
        company_id=tenant.company_id,
        payload=batch.SerializeToString(),
        service_source=service_source,
        correlation_id=batch.correlation_id,
        message_id=uuid.uuid4().hex,
        producer_id=producer_id,
        sequence=sequence,
    )
    envelope.timestamp.FromNanoseconds(now_ns)
    trace = envelope.trace_context
    trace.correlation_id = batch.correlation_id
    trace.traceparent = traceparent or _new_traceparent()
    trace.tracestate = tracestate
    if token is not None:
        envelope.auth_token.jwt = token() if callable(token) else token
    return Sealed(
        envelope.message_id,
        sequence,
        tenant_key(tenant.company_id, tenant.user_id),
        envelope.SerializeToString(),
        _headers(envelope),
    )


def _new_traceparent() -> str:
    """A W3C traceparent of a new, unsampled trace.

    A batch from a producer that does not trace still gets a trace id, so it
    and its signals can be followed through the logs of every service.
    """
    return f"00-{secrets.token_hex(16)}-{secrets.token_hex(8)}-00"


def open_signals(data: bytes) -> Envelope:
    """The envelope in `data`, checked to carry a signal batch under a message id."""
    try:
        envelope = Envelope.FromString(data)
    except DecodeError as error:
        raise MalformedMessage(f"not a TradingProcessingEnvelope: {error}") from None
    if envelope.message_type != SIGNALS:
        kind = message_type_name(envelope.message_type)
        raise MalformedMessage(f"message_type is {kind}, not MESSAGE_TYPE_TRADING_SIGNAL_BATCH")
    if not envelope.message_id:
        raise MalformedMessage("the envelope has no message_id")
    return envelope


def message_type_name(message_type: int) -> str:
    """The type's name, or its number when it is none this version knows (a newer producer's,
    or a forged one)."""
    try:
        return envelope_pb2.MessageType.Name(message_type)  # type: ignore[arg-type]
    except ValueError:
        return f"unknown message type {message_type}"


def signal_batch(envelope: Envelope) -> signal_pb2.TradingSignalBatch:
    try:
        return signal_pb2.TradingSignalBatch.FromString(envelope.payload)
    except DecodeError as error:
        raise MalformedMessage(f"the payload is not a TradingSignalBatch: {error}") from None


def _headers(envelope: Envelope) -> tuple[tuple[str, str], ...]:
    headers = [
        (MESSAGE_ID, envelope.message_id),
        (MESSAGE_TYPE, message_type_name(envelope.message_type)),
        (TRACEPARENT, envelope.trace_context.traceparent),
    ]
    if envelope.correlation_id:
        headers.append((CORRELATION_ID, envelope.correlation_id))
    if envelope.trace_context.tracestate:
        headers.append((TRACESTATE, envelope.trace_context.tracestate))
    return tuple(headers)
