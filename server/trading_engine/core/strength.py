"""Signal strength: a weighted mean of the factors a prediction actually has.

Each weight belongs to its factor. When a factor is absent (no pattern counted,
no volume confirmation) its weight is left out and the rest are renormalised
over the weights present, so an absent pattern never shifts its weight onto
another factor.
"""

from __future__ import annotations

from typing import Final

from trading_engine.core.market import (
    REGIME_EXTREME,
    REGIME_HIGH,
    REGIME_LOW,
    REGIME_NORMAL,
    TREND_DOWN,
    TREND_UP,
)

CONFIDENCE_WEIGHT: Final = 0.30
CONSENSUS_WEIGHT: Final = 0.25
PATTERN_WEIGHT: Final = 0.20
MARKET_WEIGHT: Final = 0.15
VOLUME_WEIGHT: Final = 0.10

# Market favourability, each part in [0, 1].
_REGIME_SCORE: Final[dict[int, float]] = {
    REGIME_LOW: 0.8,
    REGIME_NORMAL: 1.0,
    REGIME_HIGH: 0.6,
    REGIME_EXTREME: 0.0,
}
_UNKNOWN_REGIME_SCORE: Final = 0.5
_UNKNOWN_SPREAD_SCORE: Final = 0.75
_ALIGNED_TREND_SCORE: Final = 1.0
_NEUTRAL_TREND_SCORE: Final = 0.7
_COUNTER_TREND_SCORE: Final = 0.4


def market_favourability(
    regime: int, spread_pips: float, max_spread_pips: float, trend: int, side: int
) -> float:
    """How favourable the market is for a signal on `side`, in [0, 1].

    0.4 x volatility score (NORMAL 1, LOW 0.8, HIGH 0.6, EXTREME 0, unknown 0.5)
    + 0.3 x spread score (1 - 0.5 x spread / max spread, floored at 0; unknown 0.75)
    + 0.3 x trend score (with the signal 1, sideways or unknown 0.7, against 0.4).
    A negative `spread_pips` means the spread is unknown.
    """
    volatility = _REGIME_SCORE.get(regime, _UNKNOWN_REGIME_SCORE)
    if spread_pips < 0.0:
        spread = _UNKNOWN_SPREAD_SCORE
    elif max_spread_pips > 0.0:
        spread = max(0.0, 1.0 - 0.5 * spread_pips / max_spread_pips)
    else:
        spread = 1.0 if spread_pips == 0.0 else 0.0
    if trend == TREND_UP:
        trend_score = _ALIGNED_TREND_SCORE if side > 0 else _COUNTER_TREND_SCORE
    elif trend == TREND_DOWN:
        trend_score = _ALIGNED_TREND_SCORE if side < 0 else _COUNTER_TREND_SCORE
    else:
        trend_score = _NEUTRAL_TREND_SCORE
    return 0.4 * volatility + 0.3 * spread + 0.3 * trend_score


def signal_strength(
    confidence: float,
    consensus: float,
    pattern: float | None,
    market: float,
    volume: float | None,
) -> tuple[float, float]:
    """(strength in [0, 1], total weight of the factors present)."""
    weighted = (
        CONFIDENCE_WEIGHT * confidence + CONSENSUS_WEIGHT * consensus + MARKET_WEIGHT * market
    )
    weights = CONFIDENCE_WEIGHT + CONSENSUS_WEIGHT + MARKET_WEIGHT
    if pattern is not None:
        weighted += PATTERN_WEIGHT * pattern
        weights += PATTERN_WEIGHT
    if volume is not None:
        weighted += VOLUME_WEIGHT * volume
        weights += VOLUME_WEIGHT
    return min(1.0, max(0.0, weighted / weights)), weights
