"""Typed clients for the trading engine, for the services around it.

- `AsyncTradingEngineClient` and `TradingEngineClient`: every RPC of
  TradingEngineService, with tokens, deadlines, retries and typed errors.
- `PredictionPublisher`: prediction batches onto NATS and Kafka (ML-Processing).
- `SignalSubscriber`: signal batches from NATS and Kafka, each once
  (Risk-Management, analytics).

docs/clients.md shows each in use.
"""

from __future__ import annotations

from trading_engine_client.aio import AsyncTradingEngineClient
from trading_engine_client.auth import Token, bearer_token
from trading_engine_client.errors import (
    BusError,
    DeadlineExceededError,
    FailedPreconditionError,
    InvalidArgumentError,
    NotFoundError,
    PermissionDeniedError,
    PublishError,
    ResourceExhaustedError,
    TradingEngineError,
    TransportError,
    UnauthenticatedError,
    UnavailableError,
    UnimplementedError,
    from_status,
)
from trading_engine_client.publisher import PredictionPublisher
from trading_engine_client.retry import NO_RETRIES, RetryPolicy
from trading_engine_client.subscriber import SignalDelivery, SignalSubscriber
from trading_engine_client.sync import ResponseStream, TradingEngineClient

__all__ = [
    "NO_RETRIES",
    "AsyncTradingEngineClient",
    "BusError",
    "DeadlineExceededError",
    "FailedPreconditionError",
    "InvalidArgumentError",
    "NotFoundError",
    "PermissionDeniedError",
    "PredictionPublisher",
    "PublishError",
    "ResourceExhaustedError",
    "ResponseStream",
    "RetryPolicy",
    "SignalDelivery",
    "SignalSubscriber",
    "Token",
    "TradingEngineClient",
    "TradingEngineError",
    "TransportError",
    "UnauthenticatedError",
    "UnavailableError",
    "UnimplementedError",
    "bearer_token",
    "from_status",
]
