"""What the core decides for one prediction, before it is encoded as a TradingSignal.

Plain slotted objects: the hot path builds one per prediction, and the trace
is a list of tuples, because protobuf objects cost microseconds each to build.
"""

from __future__ import annotations

import dataclasses

from tradeflow.trading.v1 import signal_pb2

# One line of the decision trace: (rule, outcome, observed, threshold, detail).
TraceStep = tuple[int, int, float, float, str]
# One risk adjustment: (kind, before, after, detail).
Adjustment = tuple[int, float, float, str]
# One leg of a multi-leg entry: (lots, take-profit price, take-profit pips).
Leg = tuple[float, float, float]

PASS: int = signal_pb2.RULE_OUTCOME_PASS
FAIL: int = signal_pb2.RULE_OUTCOME_FAIL
ADJUST: int = signal_pb2.RULE_OUTCOME_ADJUST
SKIP: int = signal_pb2.RULE_OUTCOME_SKIP

BUY: int = signal_pb2.SIGNAL_TYPE_BUY
WEAK_BUY: int = signal_pb2.SIGNAL_TYPE_WEAK_BUY
HOLD: int = signal_pb2.SIGNAL_TYPE_HOLD
WEAK_SELL: int = signal_pb2.SIGNAL_TYPE_WEAK_SELL
SELL: int = signal_pb2.SIGNAL_TYPE_SELL

ACTIONABLE: int = signal_pb2.SIGNAL_DISPOSITION_ACTIONABLE
HELD: int = signal_pb2.SIGNAL_DISPOSITION_HOLD
REJECTED: int = signal_pb2.SIGNAL_DISPOSITION_REJECTED
SUPPRESSED: int = signal_pb2.SIGNAL_DISPOSITION_SUPPRESSED
INVALID: int = signal_pb2.SIGNAL_DISPOSITION_INVALID

# +1 for a long signal, -1 for a short one, 0 for HOLD.
SIDE = {BUY: 1, WEAK_BUY: 1, HOLD: 0, WEAK_SELL: -1, SELL: -1}
WEAK_TYPES = frozenset({WEAK_BUY, WEAK_SELL})


@dataclasses.dataclass(slots=True)
class Entry:
    order_type: int
    urgency: int
    reference_price: float
    entry_price: float
    limit_price: float
    stop_loss: float
    take_profit: float
    stop_loss_pips: float
    take_profit_pips: float
    lots: float
    risk_amount: float
    pip_value: float
    # Account currency the strategy allows to risk at full size, and the size multiplier applied.
    risk_budget: float
    size_factor: float
    legs: list[Leg]
    time_in_force: int
    valid_until_ns: int


@dataclasses.dataclass(slots=True)
class MarketView:
    """The market condition as the deciding strategy classifies it."""

    regime: int
    volatility_bps: float
    trend: int
    trend_bps: float
    spread_pips: float
    price_age_ns: int
    samples: int
    last_price: float
    favourability: float = 0.0


@dataclasses.dataclass(slots=True)
class Decision:
    signal_id: str
    prediction_id: str
    symbol: str
    confidence: float
    # Volume confirmation, a strength factor that may be absent.
    volume: float | None
    trace: list[TraceStep]
    signal_type: int = HOLD
    disposition: int = ACTIONABLE
    reason: int = signal_pb2.DISPOSITION_REASON_UNSPECIFIED
    cancellation_reason: str = ""
    strength: float = 0.0
    consensus: float = 0.0
    # Pattern factor of strength; None when no pattern counted.
    pattern_score: float | None = None
    entry: Entry | None = None
    market: MarketView | None = None
    risk_status: int = signal_pb2.RISK_STATUS_UNSPECIFIED
    risk_level: int = 0
    risk_adjustments: list[Adjustment] = dataclasses.field(default_factory=list)

    @property
    def actionable(self) -> bool:
        return self.disposition == ACTIONABLE

    def stop(self, disposition: int, reason: int, sentence: str) -> Decision:
        """End the decision without an entry; the signal becomes HOLD and says why."""
        self.disposition = disposition
        self.reason = reason
        self.cancellation_reason = sentence
        self.signal_type = HOLD
        self.entry = None
        return self
