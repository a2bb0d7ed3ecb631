"""From a prediction to a signal type: consensus, direction, patterns, volatility mode, trend."""

from __future__ import annotations

import math
from typing import Final

from tradeflow.ml.v1 import prediction_pb2
from trading_engine.core.decision import BUY, HOLD, SELL, WEAK_BUY, WEAK_SELL
from trading_engine.core.market import REGIME_HIGH, TREND_DOWN, TREND_UP
from trading_engine.core.strategy import VOLATILITY_AGGRESSIVE, VOLATILITY_CONSERVATIVE

_NEUTRAL: Final[int] = prediction_pb2.DIRECTION_NEUTRAL
_INF: Final = math.inf
BASE_TYPE: Final[dict[int, int]] = {
    prediction_pb2.DIRECTION_UP: BUY,
    prediction_pb2.DIRECTION_WEAK_UP: WEAK_BUY,
    prediction_pb2.DIRECTION_NEUTRAL: HOLD,
    prediction_pb2.DIRECTION_WEAK_DOWN: WEAK_SELL,
    prediction_pb2.DIRECTION_DOWN: SELL,
}
STRONGER: Final[dict[int, int]] = {WEAK_BUY: BUY, WEAK_SELL: SELL}
WEAKER: Final[dict[int, int]] = {BUY: WEAK_BUY, SELL: WEAK_SELL, WEAK_BUY: HOLD, WEAK_SELL: HOLD}


def direction_side(direction: int) -> int:
    """Which side of the market a validated direction is on: +1 up, -1 down, 0 neutral.

    UP and WEAK_UP number below NEUTRAL, WEAK_DOWN and DOWN above it; compared
    rather than looked up, as it runs for every vote and pattern.
    """
    if direction < _NEUTRAL:
        return 1
    if direction > _NEUTRAL:
        return -1
    return 0


def consensus_score(
    votes: list[tuple[int, float, float]], confidence: float, side: int
) -> tuple[float, bool]:
    """(Share of the ensemble's weighted confidence agreeing with `side`, whether votes counted).

    Each vote counts with weight x confidence; neutral and opposing votes count
    against. With no votes, or votes whose weight x confidence sums to zero,
    there is no ensemble to agree, so the score is the prediction's own
    confidence (a single model standing for itself).
    """
    agreeing = total = 0.0
    for direction, vote_confidence, weight in votes:
        mass = weight * vote_confidence
        total += mass
        if direction_side(direction) == side:
            agreeing += mass
    if total <= 0.0:
        return confidence, False
    if total == _INF:
        # Weights so large their masses overflow: only their ratios count, so scale them down.
        largest = max([weight for _, _, weight in votes])
        scaled = [(direction, c, weight / largest) for direction, c, weight in votes]
        return consensus_score(scaled, confidence, side)
    return agreeing / total, True


def pattern_balance(
    patterns: list[tuple[int, float]], side: int, min_probability: float
) -> tuple[float, float, float, int]:
    """(support, opposition, best agreeing probability, patterns counted).

    Only patterns at or above `min_probability` with a directional view count;
    support and opposition are sums of their probabilities.
    """
    support = opposition = best = 0.0
    counted = 0
    for direction, probability in patterns:
        if probability < min_probability:
            continue
        pattern_side = direction_side(direction)
        if pattern_side == 0:
            continue
        counted += 1
        if pattern_side == side:
            support += probability
            best = max(best, probability)
        else:
            opposition += probability
    return support, opposition, best, counted


def volatility_mode_type(signal_type: int, regime: int, mode: int) -> int:
    """HIGH volatility weakens strong signals (CONSERVATIVE), strengthens weak ones (AGGRESSIVE)."""
    if regime != REGIME_HIGH:
        return signal_type
    if mode == VOLATILITY_CONSERVATIVE and signal_type in (BUY, SELL):
        return WEAKER[signal_type]
    if mode == VOLATILITY_AGGRESSIVE:
        return STRONGER.get(signal_type, signal_type)
    return signal_type


def against_trend(side: int, trend: int) -> bool:
    return (side > 0 and trend == TREND_DOWN) or (side < 0 and trend == TREND_UP)
