"""Adaptive strategies: the seed's rules, with the guards an operator needs.

From the signals a user closed since the last adjustment:
- hit rate below `low_hit_rate` raises the confidence threshold by `threshold_raise`;
- hit rate above `high_hit_rate` lowers it by `threshold_cut`, never below the tier's floor;
- drawdown above `drawdown_limit` cuts the position-size multiplier by `size_cut`,
  never below `min_size_multiplier`.
Nothing changes before `min_closed_signals` closed signals, nor within
`cooldown_ns` of the last adjustment, nor past the bounds. Counting only the
signals closed since the last adjustment means each adjustment is judged on
signals decided under it, so one bad stretch cannot push the threshold twice.

Pure: the caller reads the figures and stores what `adjust` returns.
"""

from __future__ import annotations

import dataclasses
from typing import Final

MAX_THRESHOLD: Final = 0.99
# Values are rounded so repeated steps do not accumulate binary noise (0.7 + 0.05 = 0.75).
_DIGITS: Final = 6


@dataclasses.dataclass(frozen=True)
class AdaptiveRules:
    min_closed_signals: int = 20
    low_hit_rate: float = 0.6
    high_hit_rate: float = 0.8
    threshold_raise: float = 0.05
    threshold_cut: float = 0.02
    # As a fraction of equity: 0.10 is 10 %.
    drawdown_limit: float = 0.10
    size_cut: float = 0.20
    min_size_multiplier: float = 0.25
    cooldown_ns: int = 3_600 * 1_000_000_000


@dataclasses.dataclass(frozen=True)
class Evidence:
    """What the rules judge: the user's signals closed since the last adjustment."""

    closed: int
    wins: int
    # In [0, 1].
    max_drawdown_fraction: float

    @property
    def hit_rate(self) -> float:
        return self.wins / self.closed if self.closed else 0.0


@dataclasses.dataclass(frozen=True)
class Current:
    """The values in force and what bounds them."""

    min_confidence_threshold: float
    position_size_multiplier: float
    # The tier's default threshold: adjustments never lower the threshold below it.
    threshold_floor: float
    # Fields a higher layer (the company's) decides: adjusting them would change nothing.
    threshold_adjustable: bool = True
    size_adjustable: bool = True


@dataclasses.dataclass(frozen=True)
class Adjustment:
    """New values (None: unchanged) and why, in words with the numbers."""

    min_confidence_threshold: float | None
    position_size_multiplier: float | None
    reason: str


def adjust(
    evidence: Evidence,
    current: Current,
    last_adjusted_ns: int,
    now_ns: int,
    rules: AdaptiveRules,
) -> Adjustment | None:
    """The adjustment the evidence calls for, or None when nothing should change.

    `last_adjusted_ns` is 0 when the user was never adjusted.
    """
    if last_adjusted_ns and now_ns - last_adjusted_ns < rules.cooldown_ns:
        return None
    if evidence.closed < rules.min_closed_signals:
        return None
    reasons: list[str] = []
    threshold = _threshold(evidence, current, rules, reasons)
    multiplier = _multiplier(evidence, current, rules, reasons)
    if threshold is None and multiplier is None:
        return None
    return Adjustment(threshold, multiplier, "; ".join(reasons))


def _threshold(
    evidence: Evidence, current: Current, rules: AdaptiveRules, reasons: list[str]
) -> float | None:
    if not current.threshold_adjustable:
        return None
    old = current.min_confidence_threshold
    hit_rate = evidence.hit_rate
    if hit_rate < rules.low_hit_rate:
        new = min(MAX_THRESHOLD, round(old + rules.threshold_raise, _DIGITS))
        comparison = f"below {rules.low_hit_rate:g}"
    elif hit_rate > rules.high_hit_rate:
        # Never below the floor, and never raised by a rule meant to lower it.
        new = min(old, max(current.threshold_floor, round(old - rules.threshold_cut, _DIGITS)))
        comparison = f"above {rules.high_hit_rate:g}"
    else:
        return None
    if new == old:
        return None
    reasons.append(
        f"hit rate {hit_rate:.2f} over {evidence.closed} closed signals is {comparison}: "
        f"min_confidence_threshold {old:g} -> {new:g}"
    )
    return new


def _multiplier(
    evidence: Evidence, current: Current, rules: AdaptiveRules, reasons: list[str]
) -> float | None:
    if not current.size_adjustable or evidence.max_drawdown_fraction <= rules.drawdown_limit:
        return None
    old = current.position_size_multiplier
    new = min(old, max(rules.min_size_multiplier, round(old * (1.0 - rules.size_cut), _DIGITS)))
    if new == old:
        return None
    reasons.append(
        f"drawdown {evidence.max_drawdown_fraction:.1%} is above {rules.drawdown_limit:.0%}: "
        f"position_size_multiplier {old:g} -> {new:g}"
    )
    return new
