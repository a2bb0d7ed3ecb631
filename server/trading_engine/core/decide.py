"""The decision for one prediction: every rule in order, each recorded in the trace.

The rules run in phases: validation (input, instrument), gates (entitlement,
confidence, consensus, market condition), signal type (direction, patterns,
volatility mode, trend), strength, over-trading (position limit, order type,
duplicate, rate limit) and entry (timing, stop loss, take profit, size,
legs). The first rule that fails ends the decision with its disposition and
reason; a rule that changes the signal says so with outcome ADJUST.
"""

from __future__ import annotations

import dataclasses
import hashlib

from tradeflow.ml.v1 import prediction_pb2
from tradeflow.trading.v1 import signal_pb2, strategy_pb2
from trading_engine.core import entry as entry_rules
from trading_engine.core import instruments
from trading_engine.core.decision import (
    ACTIONABLE,
    ADJUST,
    FAIL,
    HELD,
    HOLD,
    INVALID,
    PASS,
    REJECTED,
    SKIP,
    SUPPRESSED,
    WEAK_TYPES,
    Decision,
    Entry,
    MarketView,
    TraceStep,
)
from trading_engine.core.inputs import PredictionInput, read_prediction
from trading_engine.core.instruments import Instrument
from trading_engine.core.market import (
    REGIME_EXTREME,
    MarketBook,
    SymbolState,
    classify_trend,
    classify_volatility,
)
from trading_engine.core.memory import RecentSignal, SignalMemory, UserMemory
from trading_engine.core.signal_rules import (
    BASE_TYPE,
    DIRECTION_SIDE,
    STRONGER,
    WEAKER,
    against_trend,
    consensus_score,
    pattern_balance,
    volatility_mode_type,
)
from trading_engine.core.strategy import Strategy
from trading_engine.core.strength import market_favourability, signal_strength
from trading_engine.core.validation import prediction_problem

R = signal_pb2
_NS_PER_SECOND = 1_000_000_000


@dataclasses.dataclass(slots=True)
class DecisionContext:
    """Everything about one batch that the rules read besides the prediction itself."""

    user_id: str
    company_id: str
    equity: float
    currency: str
    strategy: Strategy
    now_ns: int
    # When the batch was produced; stands in for predictions without a timestamp.
    produced_ns: int
    open_positions: int


def signal_id(company_id: str, user_id: str, prediction_id: str) -> str:
    """Deterministic id: the same tenant and prediction always give the same signal id."""
    key = f"{company_id}\x1f{user_id}\x1f{prediction_id}".encode()
    return hashlib.blake2b(key, digest_size=12).hexdigest()


def decide(
    prediction: prediction_pb2.Prediction,
    context: DecisionContext,
    book: MarketBook,
    memory: SignalMemory,
) -> Decision:
    """Decide one prediction; updates the market book and, if actionable, the signal memory."""
    return decide_input(read_prediction(prediction, context.produced_ns), context, book, memory)


def decide_input(
    prediction: PredictionInput,
    context: DecisionContext,
    book: MarketBook,
    memory: SignalMemory,
) -> Decision:
    """`decide` for a prediction already read into plain values."""
    # Positional arguments throughout the hot path: keyword matching costs
    # about 0.1 µs per argument here.
    decision = Decision(
        signal_id(context.company_id, context.user_id, prediction.prediction_id),
        prediction.prediction_id,
        prediction.symbol,
        prediction.confidence,
        prediction.volume,
        [],
    )
    instrument = _validate(decision, prediction, context.now_ns)
    if instrument is None:
        return decision
    state = book.observe(
        context.company_id, decision.symbol, prediction.price, prediction.observed_ns
    )
    side = DIRECTION_SIDE[prediction.direction]
    if not _gates(decision, prediction, context.strategy, side):
        return decision
    market = _market_view(prediction, instrument, state, book, context)
    decision.market = market
    if not _market_gate(decision, market, context.strategy):
        return decision
    pattern_factor = _signal_type(decision, prediction, context.strategy, market, side)
    if decision.disposition != ACTIONABLE:
        return decision
    _strength(decision, context.strategy, market, side, pattern_factor)
    user_memory = memory.user(context.user_id)
    entry_price = _over_trading(decision, prediction, instrument, context, user_memory, side)
    if entry_price is None:
        return decision
    entry = _plan_entry(decision, prediction, instrument, context, book, side, entry_price)
    if entry is None:
        return decision
    decision.entry = entry
    user_memory.remember(
        decision.symbol, side, RecentSignal(context.now_ns, entry_price, decision.signal_id)
    )
    return decision


# Trace lines whose numbers never change.
_VALID = (R.DECISION_RULE_INPUT_VALIDATION, PASS, 0.0, 0.0, "every field is valid")
_ENTITLED = (R.DECISION_RULE_ENTITLEMENT, PASS, 0.0, 0.0, "tier and strategy allow the instrument")
_DIRECTION_STEP: dict[int, TraceStep] = {
    direction: (R.DECISION_RULE_DIRECTION, PASS, 0.0, 0.0, f"primary direction {text}")
    for direction, text in (
        (prediction_pb2.DIRECTION_UP, "UP gives BUY"),
        (prediction_pb2.DIRECTION_WEAK_UP, "WEAK_UP gives WEAK_BUY"),
        (prediction_pb2.DIRECTION_NEUTRAL, "NEUTRAL gives HOLD"),
        (prediction_pb2.DIRECTION_WEAK_DOWN, "WEAK_DOWN gives WEAK_SELL"),
        (prediction_pb2.DIRECTION_DOWN, "DOWN gives SELL"),
    )
}
_VOLATILITY_MODE_TEXT: dict[tuple[int, bool], str] = {
    (strategy_pb2.VOLATILITY_MODE_CONSERVATIVE, True): "HIGH volatility, CONSERVATIVE: weakened",
    (
        strategy_pb2.VOLATILITY_MODE_CONSERVATIVE,
        False,
    ): "HIGH volatility, CONSERVATIVE: already weak",
    (strategy_pb2.VOLATILITY_MODE_AGGRESSIVE, True): "HIGH volatility, AGGRESSIVE: strengthened",
    (strategy_pb2.VOLATILITY_MODE_AGGRESSIVE, False): "HIGH volatility, AGGRESSIVE: already strong",
    (strategy_pb2.VOLATILITY_MODE_BALANCED, False): "HIGH volatility, BALANCED: unchanged",
}


def _validate(decision: Decision, prediction: PredictionInput, now_ns: int) -> Instrument | None:
    trace = decision.trace
    problem = prediction_problem(prediction, now_ns)
    if problem is not None:
        field, why = problem
        trace.append((R.DECISION_RULE_INPUT_VALIDATION, FAIL, 0.0, 0.0, f"{field}: {why}"))
        decision.stop(
            INVALID, R.DISPOSITION_REASON_INVALID_PREDICTION, f"prediction.{field}: {why}"
        )
        return None
    trace.append(_VALID)
    instrument = instruments.lookup(decision.symbol)
    if instrument is None:
        trace.append((R.DECISION_RULE_INSTRUMENT, FAIL, 0.0, 0.0, "symbol not in the registry"))
        decision.stop(
            INVALID,
            R.DISPOSITION_REASON_UNKNOWN_SYMBOL,
            f"symbol {decision.symbol!r} is not traded here",
        )
        return None
    trace.append((R.DECISION_RULE_INSTRUMENT, PASS, instrument.pip_size, 0.0, "observed: pip size"))
    return instrument


def _gates(decision: Decision, prediction: PredictionInput, strategy: Strategy, side: int) -> bool:
    """Entitlement, confidence and consensus; False when one of them stopped the decision."""
    trace = decision.trace
    if decision.symbol not in strategy.instruments:
        trace.append(
            (R.DECISION_RULE_ENTITLEMENT, FAIL, 0.0, 0.0, "not a tier or strategy instrument")
        )
        decision.stop(
            REJECTED,
            R.DISPOSITION_REASON_INSTRUMENT_NOT_ENTITLED,
            f"{decision.symbol} is not among the instruments this tier and strategy trade",
        )
        return False
    trace.append(_ENTITLED)
    confidence = decision.confidence
    minimum = strategy.min_confidence
    if confidence < minimum:
        trace.append((R.DECISION_RULE_CONFIDENCE, FAIL, confidence, minimum, "below the minimum"))
        decision.stop(
            REJECTED,
            R.DISPOSITION_REASON_CONFIDENCE_BELOW_THRESHOLD,
            f"confidence {confidence:.4f} is below min_confidence_threshold {minimum:.4f}",
        )
        return False
    trace.append((R.DECISION_RULE_CONFIDENCE, PASS, confidence, minimum, "at or above the minimum"))
    votes = len(prediction.votes)
    consensus = consensus_score(prediction.votes, confidence, side)
    decision.consensus = consensus
    minimum = strategy.min_consensus
    if consensus < minimum:
        trace.append((R.DECISION_RULE_CONSENSUS, FAIL, consensus, minimum, "below the minimum"))
        decision.stop(
            REJECTED,
            R.DISPOSITION_REASON_CONSENSUS_BELOW_THRESHOLD,
            f"consensus {consensus:.4f} of {votes} votes is below min_consensus_score "
            f"{minimum:.4f}",
        )
        return False
    trace.append(
        (
            R.DECISION_RULE_CONSENSUS,
            PASS,
            consensus,
            minimum,
            "at or above the minimum" if votes else "no votes: the confidence stands in",
        )
    )
    return True


def _market_view(
    prediction: PredictionInput,
    instrument: Instrument,
    state: SymbolState,
    book: MarketBook,
    context: DecisionContext,
) -> MarketView:
    strategy = context.strategy
    parameters = book.parameters
    volatility = state.volatility_bps(parameters)
    trend_bps = state.trend_bps(parameters)
    bid, ask = prediction.bid, prediction.ask
    if bid > 0.0 and ask > 0.0:
        spread = instrument.pips(ask - bid)
    elif prediction.spread_pips is not None:
        spread = prediction.spread_pips
    else:
        spread = -1.0  # unknown
    return MarketView(
        classify_volatility(
            volatility,
            strategy.volatility_low_bps,
            strategy.volatility_high_bps,
            strategy.volatility_extreme_bps,
        ),
        volatility,
        classify_trend(
            trend_bps, state.returns, parameters.min_samples, strategy.trend_threshold_bps
        ),
        trend_bps,
        spread,  # spread_pips
        max(0, context.now_ns - prediction.observed_ns),  # price_age_ns
        state.returns,  # samples
        state.last_price,
    )


def _market_gate(decision: Decision, market: MarketView, strategy: Strategy) -> bool:
    trace = decision.trace
    rule = R.DECISION_RULE_MARKET_CONDITION
    extreme = strategy.volatility_extreme_bps
    if market.regime == REGIME_EXTREME:
        trace.append((rule, FAIL, market.volatility_bps, extreme, "volatility (bps/sqrt h)"))
        decision.stop(
            REJECTED,
            R.DISPOSITION_REASON_EXTREME_VOLATILITY,
            f"realised volatility {market.volatility_bps:.1f} bps/sqrt(h) is at or above "
            f"volatility_extreme_bps {extreme:.1f}",
        )
        return False
    if market.price_age_ns > strategy.max_price_age_ns:
        age_s = market.price_age_ns / _NS_PER_SECOND
        limit_s = strategy.max_price_age_ns / _NS_PER_SECOND
        trace.append((rule, FAIL, age_s, limit_s, "price age (s) above max_price_age"))
        decision.stop(
            REJECTED,
            R.DISPOSITION_REASON_STALE_PRICE,
            f"the price is {age_s:.1f} s old, older than max_price_age {limit_s:.1f} s",
        )
        return False
    if market.spread_pips > strategy.max_spread_pips:
        trace.append(
            (rule, FAIL, market.spread_pips, strategy.max_spread_pips, "spread (pips) too wide")
        )
        decision.stop(
            REJECTED,
            R.DISPOSITION_REASON_SPREAD_TOO_WIDE,
            f"spread {market.spread_pips:.1f} pips is wider than max_spread_pips "
            f"{strategy.max_spread_pips:.1f}",
        )
        return False
    trace.append(
        (
            rule,
            PASS,
            market.volatility_bps,
            extreme,
            "volatility below EXTREME, price fresh, spread within limit"
            if market.samples
            else "no price history yet; price fresh, spread within limit",
        )
    )
    return True


def _signal_type(
    decision: Decision,
    prediction: PredictionInput,
    strategy: Strategy,
    market: MarketView,
    side: int,
) -> float | None:
    """Direction, patterns, volatility mode and trend; returns the pattern factor of strength."""
    trace = decision.trace
    direction = prediction.direction
    signal_type = BASE_TYPE[direction]
    trace.append(_DIRECTION_STEP[direction])
    if signal_type == HOLD:
        decision.stop(
            HELD, R.DISPOSITION_REASON_NEUTRAL_DIRECTION, "the prediction has no directional view"
        )
        return None
    signal_type, pattern_factor = _apply_patterns(decision, prediction, strategy, signal_type, side)
    if signal_type == HOLD:
        decision.stop(
            HELD,
            R.DISPOSITION_REASON_PATTERN_CONFLICT,
            "patterns against the signal outweighed those for it and weakened it to HOLD",
        )
        return None
    adjusted = volatility_mode_type(signal_type, market.regime, strategy.volatility_mode)
    high = strategy.volatility_high_bps
    trace.append(
        (
            R.DECISION_RULE_VOLATILITY_MODE,
            PASS if adjusted == signal_type else ADJUST,
            market.volatility_bps,
            high,
            "volatility below the HIGH band: unchanged"
            if market.volatility_bps < high
            else _VOLATILITY_MODE_TEXT[strategy.volatility_mode, adjusted != signal_type],
        )
    )
    if not strategy.trend_following:
        trace.append((R.DECISION_RULE_TREND, SKIP, 0.0, 0.0, "trend following is off"))
    else:
        counter = against_trend(side, market.trend)
        confidence = decision.confidence
        threshold = strategy.counter_trend_confidence
        if counter and confidence < threshold:
            trace.append(
                (R.DECISION_RULE_TREND, FAIL, confidence, threshold, "counter-trend, too unsure")
            )
            decision.stop(
                HELD,
                R.DISPOSITION_REASON_COUNTER_TREND,
                f"against the trend ({market.trend_bps:.2f} bps) with confidence "
                f"{confidence:.4f} below counter_trend_confidence_threshold {threshold:.4f}",
            )
            return None
        trace.append(
            (
                R.DECISION_RULE_TREND,
                PASS,
                confidence,
                threshold,
                "counter-trend, confident enough" if counter else "with the trend, or no trend",
            )
        )
    decision.signal_type = adjusted
    decision.pattern_score = pattern_factor
    return pattern_factor


def _apply_patterns(
    decision: Decision,
    prediction: PredictionInput,
    strategy: Strategy,
    signal_type: int,
    side: int,
) -> tuple[int, float | None]:
    """The signal type after patterns, and the pattern factor of strength (None when absent)."""
    trace = decision.trace
    rule = R.DECISION_RULE_PATTERN
    if not strategy.pattern_trading:
        trace.append((rule, SKIP, 0.0, 0.0, "pattern trading is off"))
        return signal_type, None
    minimum = strategy.min_pattern_probability
    support, opposition, best, counted = pattern_balance(prediction.patterns, side, minimum)
    if not counted:
        trace.append((rule, SKIP, 0.0, minimum, "no pattern at or above the minimum probability"))
        return signal_type, None
    if opposition > support:
        trace.append((rule, ADJUST, support, opposition, "support < opposition: weakened"))
        return WEAKER[signal_type], best
    if support > opposition and signal_type in WEAK_TYPES:
        trace.append((rule, ADJUST, support, opposition, "support > opposition: strengthened"))
        return STRONGER[signal_type], best
    trace.append((rule, PASS, support, opposition, "support vs opposition: unchanged"))
    return signal_type, best


_STRENGTH_TEXT = (
    "mean of confidence x0.30, consensus_score x0.25, pattern_score x0.20, "
    "market.favourability x0.15, volume_confirmation x0.10 over the factors present; "
    "threshold: total weight present"
)


def _strength(
    decision: Decision, strategy: Strategy, market: MarketView, side: int, pattern: float | None
) -> None:
    market.favourability = market_favourability(
        market.regime, market.spread_pips, strategy.max_spread_pips, market.trend, side
    )
    strength, weights = signal_strength(
        decision.confidence, decision.consensus, pattern, market.favourability, decision.volume
    )
    decision.strength = strength
    decision.trace.append((R.DECISION_RULE_STRENGTH, PASS, strength, weights, _STRENGTH_TEXT))


def _over_trading(
    decision: Decision,
    prediction: PredictionInput,
    instrument: Instrument,
    context: DecisionContext,
    memory: UserMemory,
    side: int,
) -> float | None:
    """Position limit, order type, duplicates and rate limit; the entry price if all pass."""
    trace = decision.trace
    strategy = context.strategy
    open_positions = float(context.open_positions)
    cap = float(strategy.max_positions)
    if open_positions >= cap:
        trace.append((R.DECISION_RULE_POSITION_LIMIT, FAIL, open_positions, cap, "limit reached"))
        decision.stop(
            HELD,
            R.DISPOSITION_REASON_POSITION_LIMIT_REACHED,
            f"{context.open_positions} open positions reach max_position_count "
            f"{strategy.max_positions}",
        )
        return None
    trace.append((R.DECISION_RULE_POSITION_LIMIT, PASS, open_positions, cap, "below the limit"))

    pip = instrument.pip_size
    reference = instrument.round_price(
        entry_rules.reference_price(side, prediction.price, prediction.bid, prediction.ask)
    )
    if strategy.prefer_market_orders:
        entry_price = reference
        trace.append((R.DECISION_RULE_ORDER_TYPE, PASS, reference, reference, "market order"))
    else:
        offset, clamped = entry_rules.limit_offset_pips(strategy, side)
        entry_price = instrument.round_price(reference - side * offset * pip)
        trace.append(
            (
                R.DECISION_RULE_ORDER_TYPE,
                ADJUST if clamped else PASS,
                offset,
                strategy.max_limit_deviation_pips,
                "limit offset (pips) clamped to the maximum deviation"
                if clamped
                else "limit offset (pips) on the favourable side",
            )
        )

    now = context.now_ns
    window = strategy.duplicate_window_ns
    tolerance = strategy.duplicate_tolerance_pips
    duplicate = memory.find_duplicate(
        decision.symbol, side, entry_price, now - window, (tolerance + 1e-6) * pip
    )
    if duplicate is not None:
        distance = instrument.pips(abs(duplicate.entry_price - entry_price))
        trace.append(
            (R.DECISION_RULE_DUPLICATE, FAIL, distance, tolerance, f"of {duplicate.signal_id}")
        )
        decision.stop(
            SUPPRESSED,
            R.DISPOSITION_REASON_DUPLICATE_SIGNAL,
            f"signal {duplicate.signal_id} on the same side was issued "
            f"{(now - duplicate.at_ns) / _NS_PER_SECOND:.1f} s ago {distance:.1f} pips away",
        )
        return None
    trace.append((R.DECISION_RULE_DUPLICATE, PASS, 0.0, tolerance, "no similar recent signal"))
    issued = float(memory.issued_last_minute(now))
    cap = float(strategy.max_signals_per_minute)
    if issued >= cap:
        trace.append((R.DECISION_RULE_RATE_LIMIT, FAIL, issued, cap, "per-minute limit reached"))
        decision.stop(
            SUPPRESSED,
            R.DISPOSITION_REASON_RATE_LIMITED,
            f"{int(issued)} actionable signals in the last minute reach max_signals_per_minute "
            f"{strategy.max_signals_per_minute}",
        )
        return None
    trace.append((R.DECISION_RULE_RATE_LIMIT, PASS, issued, cap, "below the per-minute limit"))
    return entry_price


def _plan_entry(
    decision: Decision,
    prediction: PredictionInput,
    instrument: Instrument,
    context: DecisionContext,
    book: MarketBook,
    side: int,
    entry_price: float,
) -> Entry | None:
    """Timing, stop loss, take profit, size and legs; None when the size rules stop it."""
    trace = decision.trace
    strategy = context.strategy
    market = decision.market
    assert market is not None
    pip = instrument.pip_size
    reference = instrument.round_price(
        entry_rules.reference_price(side, prediction.price, prediction.bid, prediction.ask)
    )

    horizon_ns = prediction.horizon_ns
    validity_ns = strategy.signal_validity_ns
    timed = strategy.advanced_timing and 0 < horizon_ns < validity_ns
    if timed:
        validity_ns = horizon_ns

    wanted, scaled = entry_rules.stop_distance_pips(
        strategy, market.volatility_bps, entry_price, validity_ns, pip
    )
    clamped = entry_rules.clamp_stop_pips(strategy, wanted)
    stop_loss = instrument.round_price(entry_price - side * clamped * pip)
    stop_pips = instrument.pips(abs(entry_price - stop_loss))
    trace.append(
        (
            R.DECISION_RULE_STOP_LOSS,
            PASS if clamped == wanted else ADJUST,
            stop_pips,
            wanted,
            ("volatility-scaled" if scaled else "fixed stop_loss_pips")
            + ("" if clamped == wanted else ", clamped to the stop bounds")
            + "; threshold: pips wanted",
        )
    )

    take_profit, tp_text = _take_profit(
        strategy, instrument, prediction, entry_price, side, stop_pips
    )
    tp_pips = instrument.pips(abs(take_profit - entry_price))
    trace.append((R.DECISION_RULE_TAKE_PROFIT, PASS, tp_pips, stop_pips, tp_text))

    sized = _position_size(decision, instrument, context, book, stop_pips)
    if sized is None:
        return None
    lots, pip_value, budget, factor = sized

    if strategy.multi_leg_entries:
        legs = entry_rules.split_legs(
            instrument, lots, strategy.multi_leg_count, entry_price, side, tp_pips
        )
        count = float(strategy.multi_leg_count)
        trace.append((R.DECISION_RULE_MULTI_LEG, PASS, float(len(legs)), count, "staggered legs"))
    else:
        legs = []
        trace.append((R.DECISION_RULE_MULTI_LEG, SKIP, 0.0, 0.0, "multi-leg entries are off"))

    market_order = strategy.prefer_market_orders
    if market_order:
        urgency = entry_rules.IMMEDIATE
    elif strategy.advanced_timing and decision.strength >= entry_rules.URGENT_STRENGTH:
        urgency = entry_rules.NORMAL
    else:
        urgency = entry_rules.PATIENT
    trace.append(
        (
            R.DECISION_RULE_TIMING,
            PASS,
            validity_ns / _NS_PER_SECOND,
            strategy.signal_validity_ns / _NS_PER_SECOND,
            "valid for the prediction horizon (s)" if timed else "valid for signal_validity (s)",
        )
    )
    return Entry(
        entry_rules.MARKET if market_order else entry_rules.LIMIT,  # order_type
        urgency,
        reference,  # reference_price
        entry_price,
        0.0 if market_order else entry_price,  # limit_price
        stop_loss,
        take_profit,
        stop_pips,  # stop_loss_pips
        tp_pips,  # take_profit_pips
        lots,
        entry_rules.round_money(lots * stop_pips * pip_value),  # risk_amount
        pip_value,
        budget,  # risk_budget
        factor,  # size_factor
        legs,
        entry_rules.IMMEDIATE_OR_CANCEL if market_order else entry_rules.GOOD_TILL_TIME,
        context.now_ns + validity_ns,  # valid_until_ns
    )


def _take_profit(
    strategy: Strategy,
    instrument: Instrument,
    prediction: PredictionInput,
    entry_price: float,
    side: int,
    stop_pips: float,
) -> tuple[float, str]:
    """The take-profit price and how it was chosen (threshold in the trace: stop pips)."""
    mode = strategy.take_profit_mode
    predicted = prediction.predicted_price
    if mode == strategy_pb2.TAKE_PROFIT_MODE_PREDICTED_PRICE:
        usable = (
            strategy.advanced_features
            and predicted > 0.0
            and side * (predicted - entry_price)
            >= strategy.min_stop_loss_pips * instrument.pip_size
        )
        if usable:
            return instrument.round_price(predicted), "at the predicted price"
    target = entry_rules.take_profit_pips(strategy, stop_pips)
    price = instrument.round_price(entry_price + side * target * instrument.pip_size)
    if mode == strategy_pb2.TAKE_PROFIT_MODE_FIXED_PIPS:
        return price, "at take_profit_pips"
    if mode == strategy_pb2.TAKE_PROFIT_MODE_PREDICTED_PRICE:
        return price, "predicted price unusable: risk_reward_ratio x stop"
    return price, "at risk_reward_ratio x stop"


_SIZE_TEXT = (
    "risk_budget / (stop_loss_pips x pip_value) x size_factor, floored to the lot step; "
    "threshold: the size cap"
)


def _position_size(
    decision: Decision,
    instrument: Instrument,
    context: DecisionContext,
    book: MarketBook,
    stop_pips: float,
) -> tuple[float, float, float, float] | None:
    """(lots, pip value per lot, risk budget, size factor), or None when the decision stopped.

    lots = equity x risk fraction / (stop pips x account-currency pip value) x
    size multiplier (x weak_signal_size_factor for WEAK_* signals), floored to
    the lot step and capped by the strategy's and the instrument's maximum.
    """
    strategy = context.strategy
    trace = decision.trace
    currency = context.currency
    rate = book.conversion_rate(context.company_id, instrument.quote, currency)
    if rate <= 0.0:
        trace.append((R.DECISION_RULE_POSITION_SIZE, FAIL, 0.0, 0.0, "no conversion rate"))
        decision.stop(
            REJECTED,
            R.DISPOSITION_REASON_NO_CONVERSION_RATE,
            f"no price seen converts {instrument.quote} into the account currency {currency}",
        )
        return None
    pip_value = instrument.pip_value_in_quote * rate
    budget = context.equity * strategy.risk_fraction
    factor = strategy.size_multiplier * (
        strategy.weak_size_factor if decision.signal_type in WEAK_TYPES else 1.0
    )
    raw_lots = budget / (stop_pips * pip_value) * factor
    cap = min(strategy.max_position_lots, instrument.max_lot)
    lots = instrument.lots(instrument.lot_steps(min(raw_lots, cap)))
    if lots < instrument.min_lot:
        trace.append((R.DECISION_RULE_POSITION_SIZE, FAIL, lots, instrument.min_lot, _SIZE_TEXT))
        decision.stop(
            HELD,
            R.DISPOSITION_REASON_SIZE_BELOW_MINIMUM,
            f"the risk-based size {raw_lots:.4f} lots ({budget:.2f} {currency} over "
            f"{stop_pips:.1f} pips at {pip_value:.4f} {currency}/pip) is below the minimum "
            f"{instrument.min_lot} lots",
        )
        return None
    outcome = PASS if raw_lots <= cap else ADJUST
    trace.append((R.DECISION_RULE_POSITION_SIZE, outcome, lots, cap, _SIZE_TEXT))
    return lots, pip_value, budget, factor
