"""Where the engine's bus traffic goes and how its messages are labelled (DESIGN.md, section 3).

The contracts define the messages but not these names; the engine defines
them in its own code, which other services do not install. They are kept
here once, and a test holds them equal to the engine's.
"""

from __future__ import annotations

from typing import Final

NATS_PREDICTIONS: Final = "trading-engine.ml-predictions"
NATS_SIGNALS: Final = "trading-engine.signals-out"
KAFKA_PREDICTIONS: Final = "trading-ml-predictions"
KAFKA_SIGNALS: Final = "trading-signals-output"

# Transport names, as a SignalDelivery and a PublishError report them.
NATS: Final = "nats"
KAFKA: Final = "kafka"

# Message headers: the envelope's id, type and trace context, for routers that do not decode.
MESSAGE_ID: Final = "message-id"
MESSAGE_TYPE: Final = "message-type"
CORRELATION_ID: Final = "correlation-id"
TRACEPARENT: Final = "traceparent"
TRACESTATE: Final = "tracestate"


def tenant_key(company_id: str, user_id: str) -> bytes:
    """The Kafka key of a user's messages: one partition per user keeps them in order."""
    return f"{company_id}/{user_id}".encode()
