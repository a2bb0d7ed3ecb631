"""Manual signals: an admin's order for one user, checked against that user's strategy.

A manual signal skips the prediction rules (confidence, consensus, market
condition, duplicates) but not the user's limits: the instrument must be one
the user's tier and strategy trade, the stop and take profit must lie on the
right sides of the entry, and the size may not exceed the strategy's maximum.
Its trace starts with a MANUAL step naming who injected it and why.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Final

from tradeflow.trading.v1 import signal_pb2
from trading_engine.core import entry as entry_rules
from trading_engine.core.decide import DecisionContext, position_size
from trading_engine.core.decision import (
    ACTIONABLE,
    BUY,
    PASS,
    RULE_MANUAL,
    RULE_POSITION_SIZE,
    SELL,
    SIDE,
    WEAK_BUY,
    WEAK_SELL,
    Decision,
    Entry,
    TraceStep,
)
from trading_engine.core.instruments import Instrument, lookup
from trading_engine.core.market import MarketBook
from trading_engine.errors import FieldViolation

_TRADABLE_TYPES: Final = (BUY, WEAK_BUY, WEAK_SELL, SELL)
MAX_VALIDITY_NS: Final = 86_400 * 1_000_000_000
# Full strength for BUY and SELL, half for the weak types: the admin's call, not a model's.
_STRENGTH: Final = {BUY: 1.0, SELL: 1.0, WEAK_BUY: 0.5, WEAK_SELL: 0.5}


@dataclasses.dataclass(frozen=True)
class ManualOrder:
    """An InjectManualSignalRequest as plain values."""

    symbol: str
    signal_type: int
    order_type: int
    limit_price: float
    reference_price: float
    stop_loss: float
    take_profit: float
    # 0: size from the user's strategy and account.
    lots: float
    note: str
    # 0: the strategy's signal_validity.
    validity_ns: int

    @property
    def entry_price(self) -> float:
        return self.limit_price if self.order_type == entry_rules.LIMIT else self.reference_price


def order_violations(
    order: ManualOrder, context: DecisionContext, account_known: bool
) -> list[FieldViolation]:
    """Why the order cannot be placed for the context's user; empty when it can."""
    violations: list[FieldViolation] = []

    def refuse(field: str, description: str) -> None:
        violations.append(FieldViolation(field, description))

    instrument = lookup(order.symbol)
    if instrument is None:
        refuse("symbol", f"unknown instrument {order.symbol!r}")
    elif order.symbol not in context.strategy.instruments:
        refuse("symbol", f"the user's tier and strategy do not trade {order.symbol}")
    if order.signal_type not in _TRADABLE_TYPES:
        refuse("signal_type", "must be BUY, WEAK_BUY, WEAK_SELL or SELL")
    if order.order_type not in (entry_rules.MARKET, entry_rules.LIMIT):
        refuse("order_type", "must be ORDER_TYPE_MARKET or ORDER_TYPE_LIMIT")
    violations += _price_violations(order)
    if instrument is not None:
        problem = _size_problem(order.lots, instrument, context, account_known)
        if problem is not None:
            refuse("position_size_lots", problem)
    if not 0 <= order.validity_ns <= MAX_VALIDITY_NS:
        refuse("validity", "must be at most 1 day (unset: the strategy's signal_validity)")
    return violations


def _price_violations(order: ManualOrder) -> list[FieldViolation]:
    """Every price present and positive; stop and take profit on their sides of the entry."""
    prices = {
        "reference_price": order.reference_price,
        "stop_loss": order.stop_loss,
        "take_profit": order.take_profit,
    }
    if order.order_type == entry_rules.LIMIT:
        prices["limit_price"] = order.limit_price
    violations = [
        FieldViolation(name, "required: a finite price > 0")
        for name, price in prices.items()
        if not (math.isfinite(price) and price > 0)
    ]
    side = SIDE.get(order.signal_type, 0)
    if side and not violations:
        entry = order.entry_price
        if (order.stop_loss - entry) * side >= 0:
            violations.append(
                FieldViolation("stop_loss", f"must be on the losing side of the entry {entry:g}")
            )
        if (order.take_profit - entry) * side <= 0:
            violations.append(
                FieldViolation("take_profit", f"must be on the winning side of the entry {entry:g}")
            )
    return violations


def _size_problem(
    lots: float, instrument: Instrument, context: DecisionContext, account_known: bool
) -> str | None:
    cap = min(context.strategy.max_position_lots, instrument.max_lot)
    problem = None
    if not math.isfinite(lots) or lots < 0:
        problem = "must be >= 0 (0: risk-based sizing)"
    elif lots == 0 and not account_known:
        problem = (
            "0 asks for risk-based sizing, which needs the user's account equity; no "
            "prediction batch for this user has been seen yet, so give a size"
        )
    elif lots > cap:
        problem = f"must be at most {cap:g} lots (the strategy's maximum)"
    elif 0 < lots < instrument.min_lot:
        problem = f"must be at least {instrument.min_lot:g} lots"
    elif lots and instrument.lots(instrument.lot_steps(lots)) != lots:
        problem = f"must be a multiple of {instrument.lot_step:g} lots"
    return problem


def decide_manual(
    order: ManualOrder,
    signal_id: str,
    injected_by: str,
    context: DecisionContext,
    book: MarketBook,
) -> Decision:
    """The signal for a valid order (see order_violations); sized from the account when lots is 0.

    Risk-based sizing can still stop the decision (no conversion rate, below
    the minimum lot): the caller reports its cancellation reason.
    """
    instrument = lookup(order.symbol)
    assert instrument is not None
    detail = f"injected by {injected_by}" + (f": {order.note}" if order.note else "")
    trace: list[TraceStep] = [(RULE_MANUAL, PASS, 0.0, 0.0, detail)]
    decision = Decision(signal_id, "", order.symbol, 1.0, None, trace)
    decision.signal_type = order.signal_type
    decision.strength = _STRENGTH[order.signal_type]
    side = SIDE[order.signal_type]
    entry = instrument.to_ticks(order.entry_price)
    stop_ticks = abs(entry - instrument.to_ticks(order.stop_loss))
    target_ticks = abs(instrument.to_ticks(order.take_profit) - entry)
    stop_pips = instrument.pips(stop_ticks)
    rate = book.conversion_rate(context.company_id, instrument.quote, context.currency)
    pip_value = instrument.pip_value_in_quote * rate if rate > 0 else 0.0
    if order.lots == 0:
        sized = position_size(decision, instrument, context, book, stop_pips)
        if sized is None:
            return decision
        lots, pip_value, budget, factor = sized
    else:
        lots, budget, factor = order.lots, 0.0, 1.0
        decision.trace.append(
            (RULE_POSITION_SIZE, PASS, lots, context.strategy.max_position_lots, "size as given")
        )
    validity_ns = order.validity_ns or context.strategy.signal_validity_ns
    market = order.order_type == entry_rules.MARKET
    decision.entry = Entry(
        order.order_type,
        entry_rules.IMMEDIATE if market else entry_rules.NORMAL,
        instrument.price(instrument.to_ticks(order.reference_price)),  # reference_price
        instrument.price(entry),  # entry_price
        0.0 if market else instrument.price(entry),  # limit_price
        instrument.price(entry - side * stop_ticks),  # stop_loss
        instrument.price(entry + side * target_ticks),  # take_profit
        stop_pips,
        instrument.pips(target_ticks),  # take_profit_pips
        lots,
        entry_rules.round_money(lots * stop_pips * pip_value),  # risk_amount
        pip_value,
        budget,  # risk_budget
        factor,  # size_factor
        [],  # legs
        entry_rules.IMMEDIATE_OR_CANCEL if market else entry_rules.GOOD_TILL_TIME,
        context.now_ns + validity_ns,  # valid_until_ns
    )
    decision.disposition = ACTIONABLE
    decision.risk_status = signal_pb2.RISK_STATUS_NOT_ASSESSED
    return decision
