"""Typed clients for the trading engine, for the services around it."""

from __future__ import annotations

from trading_engine_client.aio import AsyncTradingEngineClient
from trading_engine_client.auth import bearer_token
from trading_engine_client.errors import (
    InvalidArgumentError,
    NotFoundError,
    PermissionDeniedError,
    TradingEngineError,
    UnauthenticatedError,
    UnavailableError,
)

__all__ = [
    "AsyncTradingEngineClient",
    "InvalidArgumentError",
    "NotFoundError",
    "PermissionDeniedError",
    "TradingEngineError",
    "UnauthenticatedError",
    "UnavailableError",
    "bearer_token",
]
