"""Subjects and topics pinned by the design (DESIGN.md, section 3)."""

from typing import Final

NATS_PREDICTIONS: Final = "trading-engine.ml-predictions"
NATS_SIGNALS: Final = "trading-engine.signals-out"
NATS_EXECUTIONS: Final = "trading-engine.execution-results"
NATS_DEAD_LETTER: Final = "trading-engine.dead-letter"

KAFKA_PREDICTIONS: Final = "trading-ml-predictions"
KAFKA_SIGNALS: Final = "trading-signals-output"
KAFKA_EXECUTIONS: Final = "trading-execution-results"
KAFKA_DEAD_LETTER: Final = "trading-dead-letter"

NATS: Final = "nats"
KAFKA: Final = "kafka"
SERVICE_NAME: Final = "trading-engine"
