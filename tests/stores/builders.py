"""Builders for the store tests: strategy changes and signal records with realistic defaults,
and the migrations the engine ships."""

from __future__ import annotations

from tradeflow.trading.v1 import signal_pb2
from trading_engine.stores._common import migrations
from trading_engine.stores.base import (
    COMPANY_LAYER,
    USER_LAYER,
    LayerKey,
    NewRevision,
    SignalRecord,
)

NOW_NS = 1_800_000_000_000_000_000
SECOND_NS = 1_000_000_000

BUY: int = signal_pb2.SIGNAL_TYPE_BUY
SELL: int = signal_pb2.SIGNAL_TYPE_SELL
HOLD: int = signal_pb2.SIGNAL_TYPE_HOLD
ACTIONABLE: int = signal_pb2.SIGNAL_DISPOSITION_ACTIONABLE
REJECTED: int = signal_pb2.SIGNAL_DISPOSITION_REJECTED
SUPPRESSED: int = signal_pb2.SIGNAL_DISPOSITION_SUPPRESSED
INVALID: int = signal_pb2.SIGNAL_DISPOSITION_INVALID

# Every migration the engine ships; both backends number them alike.
EVERY_MIGRATION = [migration.version for migration in migrations("sqlite")]


def user_layer(company_id: str = "acme", user_id: str = "alice") -> LayerKey:
    return LayerKey(company_id, user_id, USER_LAYER)


def company_layer(company_id: str = "acme") -> LayerKey:
    return LayerKey(company_id, "", COMPANY_LAYER)


def change(
    key: LayerKey | None = None,
    expected_version: int = 0,
    *,
    request_id: str = "",
    reason: str = "tighten risk",
    changed_by: str = "admin-1",
    at_ns: int = NOW_NS,
) -> NewRevision:
    """A change setting the minimum confidence, as the strategy service would send it."""
    return NewRevision(
        key=key or user_layer(),
        expected_version=expected_version,
        changed_by=changed_by,
        changed_at_ns=at_ns,
        changed_fields=("min_confidence",),
        changes=b"\x0d\x00\x00\x40\x3f",
        layer_fields=("min_confidence", "max_positions"),
        layer_config=b"\x0d\x00\x00\x40\x3f\x10\x05",
        reason=reason,
        request_id=request_id,
    )


def signal(
    signal_id: str,
    at_ns: int = NOW_NS,
    *,
    company_id: str = "acme",
    user_id: str = "alice",
    symbol: str = "EURUSD",
    signal_type: int = BUY,
    disposition: int = ACTIONABLE,
    payload: bytes | None = None,
) -> SignalRecord:
    """A decided signal; its payload names it, so a test can tell two apart."""
    return SignalRecord(
        company_id=company_id,
        user_id=user_id,
        signal_id=signal_id,
        generated_at_ns=at_ns,
        symbol=symbol,
        signal_type=signal_type,
        disposition=disposition,
        payload=payload if payload is not None else f"signal {signal_id}".encode() * 20,
    )
