"""Protections: the trading state and the stop-loss cooldown, as the rules read them.

A `Protection` describes one user at the moment a batch is decided: the
trading state in force (the stricter of the user's and the company's), the
open positions by symbol and side, and when a stop loss last closed a
position on each symbol and side. The engine's services keep one per user up
to date; the rules only read it.
"""

from __future__ import annotations

from typing import Final

from tradeflow.trading.v1 import trading_engine_service_pb2 as service_pb2

ACTIVE: Final[int] = service_pb2.TRADING_STATE_ACTIVE
REDUCE_ONLY: Final[int] = service_pb2.TRADING_STATE_REDUCE_ONLY
HALTED: Final[int] = service_pb2.TRADING_STATE_HALTED
# Stricter states rank higher; UNSPECIFIED is ACTIVE.
_RANK: Final[dict[int, int]] = {0: 0, ACTIVE: 0, REDUCE_ONLY: 1, HALTED: 2}


def stricter(first: int, second: int) -> int:
    """The more restrictive of two TradingState values (UNSPECIFIED counts as ACTIVE)."""
    chosen = first if _RANK[first] >= _RANK[second] else second
    return chosen or ACTIVE


class Protection:
    """One user's trading state, open positions and stop-outs."""

    def __init__(self) -> None:
        # TradingState value in force.
        self.state = ACTIVE
        # Why the state is not ACTIVE, for the decision's cancellation reason.
        self.why = ""
        # (symbol, side) -> open positions; side +1 long, -1 short.
        self.open_by_side: dict[tuple[str, int], int] = {}
        # (symbol, side) -> when a stop loss last closed a position, ns since the epoch.
        self.stop_outs: dict[tuple[str, int], int] = {}

    @property
    def open_positions(self) -> int:
        return sum(self.open_by_side.values())

    def opened(self, symbol: str, side: int) -> None:
        key = (symbol, side)
        self.open_by_side[key] = self.open_by_side.get(key, 0) + 1

    def closed(self, symbol: str, side: int) -> None:
        key = (symbol, side)
        remaining = self.open_by_side.get(key, 0) - 1
        if remaining > 0:
            self.open_by_side[key] = remaining
        else:
            self.open_by_side.pop(key, None)

    def stopped_out(self, symbol: str, side: int, at_ns: int) -> None:
        """Remember a stop-loss close; an older report never moves the time back."""
        key = (symbol, side)
        self.stop_outs[key] = max(self.stop_outs.get(key, at_ns), at_ns)


# The protection of a user nothing is known about: active, no positions, no stop-outs.
UNPROTECTED: Final = Protection()
