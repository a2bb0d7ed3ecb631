"""What the core decides for one prediction, before it is encoded as a TradingSignal.

Plain slotted objects: the hot path builds one per prediction, and the trace
is a list of tuples, because protobuf objects cost microseconds each to build.
"""

from __future__ import annotations

import dataclasses
from typing import Final

from tradeflow.trading.v1 import signal_pb2

# One line of the decision trace: (rule, outcome, observed, threshold, detail).
TraceStep = tuple[int, int, float, float, str]
# One risk adjustment: (kind, before, after, detail).
Adjustment = tuple[int, float, float, str]
# One leg of a multi-leg entry: (lots, take-profit price, take-profit pips).
Leg = tuple[float, float, float]

PASS: Final[int] = signal_pb2.RULE_OUTCOME_PASS
FAIL: Final[int] = signal_pb2.RULE_OUTCOME_FAIL
ADJUST: Final[int] = signal_pb2.RULE_OUTCOME_ADJUST
SKIP: Final[int] = signal_pb2.RULE_OUTCOME_SKIP

BUY: Final[int] = signal_pb2.SIGNAL_TYPE_BUY
WEAK_BUY: Final[int] = signal_pb2.SIGNAL_TYPE_WEAK_BUY
HOLD: Final[int] = signal_pb2.SIGNAL_TYPE_HOLD
WEAK_SELL: Final[int] = signal_pb2.SIGNAL_TYPE_WEAK_SELL
SELL: Final[int] = signal_pb2.SIGNAL_TYPE_SELL

ACTIONABLE: Final[int] = signal_pb2.SIGNAL_DISPOSITION_ACTIONABLE
HELD: Final[int] = signal_pb2.SIGNAL_DISPOSITION_HOLD
REJECTED: Final[int] = signal_pb2.SIGNAL_DISPOSITION_REJECTED
SUPPRESSED: Final[int] = signal_pb2.SIGNAL_DISPOSITION_SUPPRESSED
INVALID: Final[int] = signal_pb2.SIGNAL_DISPOSITION_INVALID

# Decision rules and disposition reasons, as compile-time constants of the hot path.
RULE_INPUT_VALIDATION: Final[int] = signal_pb2.DECISION_RULE_INPUT_VALIDATION
RULE_INSTRUMENT: Final[int] = signal_pb2.DECISION_RULE_INSTRUMENT
RULE_ENTITLEMENT: Final[int] = signal_pb2.DECISION_RULE_ENTITLEMENT
RULE_CONFIDENCE: Final[int] = signal_pb2.DECISION_RULE_CONFIDENCE
RULE_CONSENSUS: Final[int] = signal_pb2.DECISION_RULE_CONSENSUS
RULE_MARKET_CONDITION: Final[int] = signal_pb2.DECISION_RULE_MARKET_CONDITION
RULE_DIRECTION: Final[int] = signal_pb2.DECISION_RULE_DIRECTION
RULE_PATTERN: Final[int] = signal_pb2.DECISION_RULE_PATTERN
RULE_VOLATILITY_MODE: Final[int] = signal_pb2.DECISION_RULE_VOLATILITY_MODE
RULE_TREND: Final[int] = signal_pb2.DECISION_RULE_TREND
RULE_STRENGTH: Final[int] = signal_pb2.DECISION_RULE_STRENGTH
RULE_POSITION_LIMIT: Final[int] = signal_pb2.DECISION_RULE_POSITION_LIMIT
RULE_DUPLICATE: Final[int] = signal_pb2.DECISION_RULE_DUPLICATE
RULE_RATE_LIMIT: Final[int] = signal_pb2.DECISION_RULE_RATE_LIMIT
RULE_ORDER_TYPE: Final[int] = signal_pb2.DECISION_RULE_ORDER_TYPE
RULE_STOP_LOSS: Final[int] = signal_pb2.DECISION_RULE_STOP_LOSS
RULE_TAKE_PROFIT: Final[int] = signal_pb2.DECISION_RULE_TAKE_PROFIT
RULE_POSITION_SIZE: Final[int] = signal_pb2.DECISION_RULE_POSITION_SIZE
RULE_MULTI_LEG: Final[int] = signal_pb2.DECISION_RULE_MULTI_LEG
RULE_TIMING: Final[int] = signal_pb2.DECISION_RULE_TIMING
RULE_RISK_ASSESSMENT: Final[int] = signal_pb2.DECISION_RULE_RISK_ASSESSMENT
RULE_MANUAL: Final[int] = signal_pb2.DECISION_RULE_MANUAL
RULE_TRADING_STATE: Final[int] = signal_pb2.DECISION_RULE_TRADING_STATE
RULE_COOLDOWN: Final[int] = signal_pb2.DECISION_RULE_COOLDOWN

REASON_CONFIDENCE_BELOW_THRESHOLD: Final[int] = (
    signal_pb2.DISPOSITION_REASON_CONFIDENCE_BELOW_THRESHOLD
)
REASON_CONSENSUS_BELOW_THRESHOLD: Final[int] = (
    signal_pb2.DISPOSITION_REASON_CONSENSUS_BELOW_THRESHOLD
)
REASON_COUNTER_TREND: Final[int] = signal_pb2.DISPOSITION_REASON_COUNTER_TREND
REASON_DUPLICATE_SIGNAL: Final[int] = signal_pb2.DISPOSITION_REASON_DUPLICATE_SIGNAL
REASON_EXTREME_VOLATILITY: Final[int] = signal_pb2.DISPOSITION_REASON_EXTREME_VOLATILITY
REASON_INSTRUMENT_NOT_ENTITLED: Final[int] = signal_pb2.DISPOSITION_REASON_INSTRUMENT_NOT_ENTITLED
REASON_INVALID_PREDICTION: Final[int] = signal_pb2.DISPOSITION_REASON_INVALID_PREDICTION
REASON_NEUTRAL_DIRECTION: Final[int] = signal_pb2.DISPOSITION_REASON_NEUTRAL_DIRECTION
REASON_NO_CONVERSION_RATE: Final[int] = signal_pb2.DISPOSITION_REASON_NO_CONVERSION_RATE
REASON_PATTERN_CONFLICT: Final[int] = signal_pb2.DISPOSITION_REASON_PATTERN_CONFLICT
REASON_POSITION_LIMIT_REACHED: Final[int] = signal_pb2.DISPOSITION_REASON_POSITION_LIMIT_REACHED
REASON_RATE_LIMITED: Final[int] = signal_pb2.DISPOSITION_REASON_RATE_LIMITED
REASON_REDUCE_ONLY: Final[int] = signal_pb2.DISPOSITION_REASON_REDUCE_ONLY
REASON_STOP_LOSS_COOLDOWN: Final[int] = signal_pb2.DISPOSITION_REASON_STOP_LOSS_COOLDOWN
REASON_TRADING_HALTED: Final[int] = signal_pb2.DISPOSITION_REASON_TRADING_HALTED
REASON_RISK_EXTREME: Final[int] = signal_pb2.DISPOSITION_REASON_RISK_EXTREME
REASON_RISK_UNAVAILABLE: Final[int] = signal_pb2.DISPOSITION_REASON_RISK_UNAVAILABLE
REASON_SIZE_BELOW_MINIMUM: Final[int] = signal_pb2.DISPOSITION_REASON_SIZE_BELOW_MINIMUM
REASON_SPREAD_TOO_WIDE: Final[int] = signal_pb2.DISPOSITION_REASON_SPREAD_TOO_WIDE
REASON_STALE_PRICE: Final[int] = signal_pb2.DISPOSITION_REASON_STALE_PRICE
REASON_UNKNOWN_SYMBOL: Final[int] = signal_pb2.DISPOSITION_REASON_UNKNOWN_SYMBOL
REASON_UNSPECIFIED: Final[int] = signal_pb2.DISPOSITION_REASON_UNSPECIFIED

# Risk status: unset until risk management or sealing gives one.
RISK_UNSET: Final[int] = signal_pb2.RISK_STATUS_UNSPECIFIED
RISK_NOT_ASSESSED: Final[int] = signal_pb2.RISK_STATUS_NOT_ASSESSED
RISK_NOT_REQUIRED: Final[int] = signal_pb2.RISK_STATUS_NOT_REQUIRED

# +1 for a long signal, -1 for a short one, 0 for HOLD.
SIDE: Final[dict[int, int]] = {BUY: 1, WEAK_BUY: 1, HOLD: 0, WEAK_SELL: -1, SELL: -1}
WEAK_TYPES: Final[frozenset[int]] = frozenset({WEAK_BUY, WEAK_SELL})


# The classes below are built once per prediction. Their __init__ is written
# out so that mypyc compiles it: the dataclass decorator would otherwise
# generate an interpreted one (several µs). The decorator still provides
# equality and repr.


@dataclasses.dataclass(init=False)
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

    def __init__(
        self,
        order_type: int,
        urgency: int,
        reference_price: float,
        entry_price: float,
        limit_price: float,
        stop_loss: float,
        take_profit: float,
        stop_loss_pips: float,
        take_profit_pips: float,
        lots: float,
        risk_amount: float,
        pip_value: float,
        risk_budget: float,
        size_factor: float,
        legs: list[Leg],
        time_in_force: int,
        valid_until_ns: int,
    ) -> None:
        self.order_type = order_type
        self.urgency = urgency
        self.reference_price = reference_price
        self.entry_price = entry_price
        self.limit_price = limit_price
        self.stop_loss = stop_loss
        self.take_profit = take_profit
        self.stop_loss_pips = stop_loss_pips
        self.take_profit_pips = take_profit_pips
        self.lots = lots
        self.risk_amount = risk_amount
        self.pip_value = pip_value
        self.risk_budget = risk_budget
        self.size_factor = size_factor
        self.legs = legs
        self.time_in_force = time_in_force
        self.valid_until_ns = valid_until_ns


@dataclasses.dataclass(init=False)
class MarketView:
    """The market condition as the deciding strategy classifies it."""

    regime: int
    volatility_bps: float
    trend: int
    trend_bps: float
    # Negative when the spread is unknown.
    spread_pips: float
    price_age_ns: int
    samples: int
    last_price: float
    favourability: float

    def __init__(
        self,
        regime: int,
        volatility_bps: float,
        trend: int,
        trend_bps: float,
        spread_pips: float,
        price_age_ns: int,
        samples: int,
        last_price: float,
        favourability: float = 0.0,
    ) -> None:
        self.regime = regime
        self.volatility_bps = volatility_bps
        self.trend = trend
        self.trend_bps = trend_bps
        self.spread_pips = spread_pips
        self.price_age_ns = price_age_ns
        self.samples = samples
        self.last_price = last_price
        self.favourability = favourability


@dataclasses.dataclass(init=False)
class Decision:
    signal_id: str
    prediction_id: str
    symbol: str
    confidence: float
    # Volume confirmation, a strength factor that may be absent.
    volume: float | None
    trace: list[TraceStep]
    signal_type: int
    disposition: int
    reason: int
    cancellation_reason: str
    strength: float
    consensus: float
    # Pattern factor of strength; None when no pattern counted.
    pattern_score: float | None
    entry: Entry | None
    market: MarketView | None
    risk_status: int
    risk_level: int
    risk_adjustments: list[Adjustment]

    def __init__(
        self,
        signal_id: str,
        prediction_id: str,
        symbol: str,
        confidence: float,
        volume: float | None,
        trace: list[TraceStep],
    ) -> None:
        """A decision in progress: actionable until a rule stops it."""
        self.signal_id = signal_id
        self.prediction_id = prediction_id
        self.symbol = symbol
        self.confidence = confidence
        self.volume = volume
        self.trace = trace
        self.signal_type = HOLD
        self.disposition = ACTIONABLE
        self.reason = REASON_UNSPECIFIED
        self.cancellation_reason = ""
        self.strength = 0.0
        self.consensus = 0.0
        self.pattern_score = None
        self.entry = None
        self.market = None
        self.risk_status = RISK_UNSET
        self.risk_level = 0
        self.risk_adjustments = []

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
