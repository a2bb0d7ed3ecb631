"""Entry strategy: order type and price, stop loss, take profit, size, legs and timing.

Distances are in pips of the instrument; prices are rounded to its precision
after every step, and the distances are measured again from the rounded
prices, so what the signal says is what the order will do.
"""

from __future__ import annotations

import math
from typing import Final

from tradeflow.trading.v1 import signal_pb2
from trading_engine.core.decision import Leg
from trading_engine.core.instruments import Instrument
from trading_engine.core.strategy import (
    STOP_VOLATILITY_SCALED,
    TARGET_FIXED_PIPS,
    Strategy,
)

NANOS_PER_HOUR: Final = 3_600_000_000_000
MARKET: Final[int] = signal_pb2.ORDER_TYPE_MARKET
LIMIT: Final[int] = signal_pb2.ORDER_TYPE_LIMIT
IMMEDIATE: Final[int] = signal_pb2.EXECUTION_URGENCY_IMMEDIATE
NORMAL: Final[int] = signal_pb2.EXECUTION_URGENCY_NORMAL
PATIENT: Final[int] = signal_pb2.EXECUTION_URGENCY_PATIENT
IMMEDIATE_OR_CANCEL: Final[int] = signal_pb2.TIME_IN_FORCE_IMMEDIATE_OR_CANCEL
GOOD_TILL_TIME: Final[int] = signal_pb2.TIME_IN_FORCE_GOOD_TILL_TIME
# Strength from which a limit order with advanced timing is worked without waiting.
URGENT_STRENGTH: Final = 0.8


def reference_price(side: int, current: float, bid: float, ask: float) -> float:
    """What a market order would pay: the ask for buys, the bid for sells, else the last price."""
    if side > 0 and ask > 0.0:
        return ask
    if side < 0 and bid > 0.0:
        return bid
    return current


def limit_offset_pips(strategy: Strategy, side: int) -> tuple[float, bool]:
    """Pips between reference and limit price, and whether the maximum deviation clamped them."""
    wanted = strategy.limit_discount_pips if side > 0 else strategy.limit_premium_pips
    if wanted > strategy.max_limit_deviation_pips:
        return strategy.max_limit_deviation_pips, True
    return wanted, False


def stop_distance_pips(
    strategy: Strategy, volatility_bps: float, entry_price: float, validity_ns: int, pip_size: float
) -> tuple[float, bool]:
    """Stop-loss distance before clamping, and whether it was volatility-scaled.

    Volatility-scaled stops (an advanced feature) put the stop at the multiplier
    times the expected move over the entry's validity: volatility (bps per
    square-root hour) x sqrt(hours) x price. Without a volatility estimate, or
    without the feature, the fixed distance applies.
    """
    if (
        strategy.stop_loss_mode == STOP_VOLATILITY_SCALED
        and strategy.advanced_features
        and volatility_bps > 0.0
    ):
        expected_move = volatility_bps / 10_000.0 * math.sqrt(validity_ns / NANOS_PER_HOUR)
        return (
            strategy.stop_loss_volatility_multiplier * expected_move * entry_price / pip_size,
            True,
        )
    return strategy.stop_loss_pips, False


def clamp_stop_pips(strategy: Strategy, pips: float) -> float:
    return min(strategy.max_stop_loss_pips, max(strategy.min_stop_loss_pips, pips))


def take_profit_pips(strategy: Strategy, stop_pips: float) -> float:
    if strategy.take_profit_mode == TARGET_FIXED_PIPS:
        return strategy.take_profit_pips
    return strategy.risk_reward_ratio * stop_pips


def round_money(amount: float) -> float:
    """A non-negative account-currency amount to the nearest cent."""
    return int(amount * 100.0 + 0.5) / 100.0


def split_legs(
    instrument: Instrument, lots: float, legs: int, entry: int, side: int, target_ticks: int
) -> list[Leg]:
    """Equal legs in lot steps (remainder to the first legs) with staggered take profits.

    `entry` is the entry price and `target_ticks` the full take-profit distance,
    in ticks. Leg i of n takes profit at i/n of that distance. Each leg needs
    a lot step and a tick of its own (so the take profits are staggered, not
    stacked), which can leave fewer legs than asked; with fewer than two, there
    are no legs.
    """
    steps = instrument.lot_steps(lots)
    count = min(legs, steps, target_ticks)
    if count < 2:
        return []
    base, remainder = divmod(steps, count)
    result: list[Leg] = []
    for index in range(count):
        distance = (target_ticks * (index + 1) + count // 2) // count
        result.append(
            (
                instrument.lots(base + (1 if index < remainder else 0)),
                instrument.price(entry + side * distance),
                instrument.pips(distance),
            )
        )
    return result
