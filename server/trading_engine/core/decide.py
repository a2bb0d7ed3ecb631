"""The decision for one prediction: every rule in order, each recorded in the trace.

The rules run in phases: validation (input, instrument), gates (entitlement,
confidence, consensus, market condition), signal type (direction, patterns,
volatility mode, trend), strength, protections (trading state, stop-loss
cooldown), over-trading (position limit, order type, duplicate, rate limit)
and entry (timing, stop loss, take profit, size,
legs). The first rule that fails ends the decision with its disposition and
reason; a rule that changes the signal says so with outcome ADJUST.
"""

from __future__ import annotations

import hashlib
from typing import Final

from tradeflow.ml.v1 import prediction_pb2
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
    REASON_CONFIDENCE_BELOW_THRESHOLD,
    REASON_CONSENSUS_BELOW_THRESHOLD,
    REASON_COUNTER_TREND,
    REASON_DUPLICATE_SIGNAL,
    REASON_EXTREME_VOLATILITY,
    REASON_INSTRUMENT_NOT_ENTITLED,
    REASON_INVALID_PREDICTION,
    REASON_NEUTRAL_DIRECTION,
    REASON_NO_CONVERSION_RATE,
    REASON_PATTERN_CONFLICT,
    REASON_POSITION_LIMIT_REACHED,
    REASON_RATE_LIMITED,
    REASON_REDUCE_ONLY,
    REASON_SIZE_BELOW_MINIMUM,
    REASON_SPREAD_TOO_WIDE,
    REASON_STALE_PRICE,
    REASON_STOP_LOSS_COOLDOWN,
    REASON_TRADING_HALTED,
    REASON_UNKNOWN_SYMBOL,
    REJECTED,
    RULE_CONFIDENCE,
    RULE_CONSENSUS,
    RULE_COOLDOWN,
    RULE_DIRECTION,
    RULE_DUPLICATE,
    RULE_ENTITLEMENT,
    RULE_INPUT_VALIDATION,
    RULE_INSTRUMENT,
    RULE_MARKET_CONDITION,
    RULE_MULTI_LEG,
    RULE_ORDER_TYPE,
    RULE_PATTERN,
    RULE_POSITION_LIMIT,
    RULE_POSITION_SIZE,
    RULE_RATE_LIMIT,
    RULE_STOP_LOSS,
    RULE_STRENGTH,
    RULE_TAKE_PROFIT,
    RULE_TIMING,
    RULE_TRADING_STATE,
    RULE_TREND,
    RULE_VOLATILITY_MODE,
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
from trading_engine.core.protections import ACTIVE, HALTED, UNPROTECTED, Protection
from trading_engine.core.signal_rules import (
    BASE_TYPE,
    STRONGER,
    WEAKER,
    against_trend,
    consensus_score,
    direction_side,
    pattern_balance,
    volatility_mode_type,
)
from trading_engine.core.strategy import (
    TARGET_FIXED_PIPS,
    TARGET_PREDICTED_PRICE,
    VOLATILITY_AGGRESSIVE,
    VOLATILITY_BALANCED,
    VOLATILITY_CONSERVATIVE,
    Strategy,
)
from trading_engine.core.strength import market_favourability, signal_strength
from trading_engine.core.validation import prediction_problem, price_problem

_NS_PER_SECOND: Final = 1_000_000_000


class DecisionContext:
    """Everything about one batch that the rules read besides the prediction itself."""

    def __init__(
        self,
        user_id: str,
        company_id: str,
        equity: float,
        currency: str,
        strategy: Strategy,
        now_ns: int,
        produced_ns: int,
        open_positions: int,
        protection: Protection = UNPROTECTED,
    ) -> None:
        self.user_id = user_id
        self.company_id = company_id
        self.equity = equity
        self.currency = currency
        self.strategy = strategy
        self.now_ns = now_ns
        # When the batch was produced; stands in for predictions without a timestamp.
        self.produced_ns = produced_ns
        self.open_positions = open_positions
        self.protection = protection
        self.ids = SignalIds(company_id, user_id)


class SignalIds:
    """Deterministic signal ids for one tenant: the same prediction id, the same signal id.

    A 96-bit BLAKE2b digest of tenant and prediction id; the tenant part is
    hashed once and copied for each prediction.
    """

    def __init__(self, company_id: str, user_id: str) -> None:
        self._tenant = hashlib.blake2b(f"{company_id}\x1f{user_id}\x1f".encode(), digest_size=12)

    def of(self, prediction_id: str) -> str:
        digest = self._tenant.copy()
        digest.update(prediction_id.encode())
        return digest.hexdigest()


def signal_id(company_id: str, user_id: str, prediction_id: str) -> str:
    """The signal id of one tenant's prediction."""
    return SignalIds(company_id, user_id).of(prediction_id)


def decide(
    prediction: prediction_pb2.Prediction,
    context: DecisionContext,
    book: MarketBook,
    memory: SignalMemory,
) -> Decision:
    """Decide one prediction; updates the market book and, if actionable, the signal memory."""
    read = read_prediction(prediction, context.produced_ns)
    return decide_input(read, context, book, memory, context.ids.of(read.prediction_id))


def decide_input(
    prediction: PredictionInput,
    context: DecisionContext,
    book: MarketBook,
    memory: SignalMemory,
    signal_id: str,
) -> Decision:
    """`decide` for a prediction already read into plain values and its signal id."""
    # Positional arguments throughout the hot path: keyword matching costs
    # about 0.1 µs per argument here.
    decision = Decision(
        signal_id,
        prediction.prediction_id,
        prediction.symbol,
        prediction.confidence,
        prediction.volume,
        [],
    )
    instrument = _validate(decision, prediction, context.now_ns)
    if instrument is None:
        return decision
    state = book.state(context.company_id, decision.symbol)
    if not _plausible_prices(decision, prediction, instrument, state):
        # Refused before it could move the market state.
        return decision
    state.observe(prediction.price, prediction.observed_ns, book.parameters)
    side = direction_side(prediction.direction)
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
    if not _protections(decision, context, side):
        return decision
    user_memory = memory.user(context.company_id, context.user_id)
    prices = _over_trading(decision, prediction, instrument, context, user_memory, side)
    if prices is None:
        return decision
    reference, entry_ticks = prices
    entry = _plan_entry(
        decision, prediction, instrument, context, book, side, reference, entry_ticks
    )
    if entry is None:
        return decision
    decision.entry = entry
    user_memory.remember(
        decision.symbol, side, RecentSignal(context.now_ns, entry_ticks, decision.signal_id)
    )
    return decision


# Trace lines whose numbers never change.
_VALID: Final[TraceStep] = (RULE_INPUT_VALIDATION, PASS, 0.0, 0.0, "every field is valid")
_ENTITLED: Final[TraceStep] = (
    RULE_ENTITLEMENT,
    PASS,
    0.0,
    0.0,
    "tier and strategy allow the instrument",
)
_DIRECTION_STEP: Final[dict[int, TraceStep]] = {
    direction: (
        RULE_DIRECTION,
        FAIL if direction == prediction_pb2.DIRECTION_NEUTRAL else PASS,
        0.0,
        0.0,
        f"primary direction {text}",
    )
    for direction, text in (
        (prediction_pb2.DIRECTION_UP, "UP gives BUY"),
        (prediction_pb2.DIRECTION_WEAK_UP, "WEAK_UP gives WEAK_BUY"),
        (prediction_pb2.DIRECTION_NEUTRAL, "NEUTRAL gives HOLD"),
        (prediction_pb2.DIRECTION_WEAK_DOWN, "WEAK_DOWN gives WEAK_SELL"),
        (prediction_pb2.DIRECTION_DOWN, "DOWN gives SELL"),
    )
}
_VOLATILITY_MODE_TEXT: Final[dict[tuple[int, bool], str]] = {
    (VOLATILITY_CONSERVATIVE, True): "HIGH volatility, CONSERVATIVE: weakened",
    (
        VOLATILITY_CONSERVATIVE,
        False,
    ): "HIGH volatility, CONSERVATIVE: already weak",
    (VOLATILITY_AGGRESSIVE, True): "HIGH volatility, AGGRESSIVE: strengthened",
    (VOLATILITY_AGGRESSIVE, False): "HIGH volatility, AGGRESSIVE: already strong",
    (VOLATILITY_BALANCED, False): "HIGH volatility, BALANCED: unchanged",
}


def _validate(decision: Decision, prediction: PredictionInput, now_ns: int) -> Instrument | None:
    trace = decision.trace
    problem = prediction_problem(prediction, now_ns)
    if problem is not None:
        field, why = problem
        trace.append((RULE_INPUT_VALIDATION, FAIL, 0.0, 0.0, f"{field}: {why}"))
        decision.stop(INVALID, REASON_INVALID_PREDICTION, f"prediction.{field}: {why}")
        return None
    trace.append(_VALID)
    instrument = instruments.lookup(decision.symbol)
    if instrument is None:
        trace.append((RULE_INSTRUMENT, FAIL, 0.0, 0.0, "symbol not in the registry"))
        decision.stop(
            INVALID,
            REASON_UNKNOWN_SYMBOL,
            f"symbol {decision.symbol!r} is not traded here",
        )
        return None
    return instrument


def _plausible_prices(
    decision: Decision, prediction: PredictionInput, instrument: Instrument, state: SymbolState
) -> bool:
    """The instrument's range and band for the prices (decision 19); False when refused."""
    trace = decision.trace
    problem = price_problem(prediction, instrument, state)
    if problem is not None:
        field = problem.field
        trace.append(
            (RULE_INSTRUMENT, FAIL, problem.observed, problem.bound, f"{field}: implausible")
        )
        decision.stop(INVALID, REASON_INVALID_PREDICTION, f"prediction.{field}: {problem.why}")
        return False
    trace.append((RULE_INSTRUMENT, PASS, instrument.pip_size, 0.0, "observed: pip size"))
    return True


def _gates(decision: Decision, prediction: PredictionInput, strategy: Strategy, side: int) -> bool:
    """Entitlement, confidence and consensus; False when one of them stopped the decision."""
    trace = decision.trace
    if decision.symbol not in strategy.instruments:
        trace.append((RULE_ENTITLEMENT, FAIL, 0.0, 0.0, "not a tier or strategy instrument"))
        decision.stop(
            REJECTED,
            REASON_INSTRUMENT_NOT_ENTITLED,
            f"{decision.symbol} is not among the instruments this tier and strategy trade",
        )
        return False
    trace.append(_ENTITLED)
    confidence = decision.confidence
    minimum = strategy.min_confidence
    if confidence < minimum:
        trace.append((RULE_CONFIDENCE, FAIL, confidence, minimum, "below the minimum"))
        decision.stop(
            REJECTED,
            REASON_CONFIDENCE_BELOW_THRESHOLD,
            f"confidence {confidence:.4f} is below min_confidence_threshold {minimum:.4f}",
        )
        return False
    trace.append((RULE_CONFIDENCE, PASS, confidence, minimum, "at or above the minimum"))
    votes = len(prediction.votes)
    consensus, from_votes = consensus_score(prediction.votes, confidence, side)
    decision.consensus = consensus
    minimum = strategy.min_consensus
    if consensus < minimum:
        trace.append((RULE_CONSENSUS, FAIL, consensus, minimum, "below the minimum"))
        decision.stop(
            REJECTED,
            REASON_CONSENSUS_BELOW_THRESHOLD,
            f"consensus {consensus:.4f} of {votes} votes is below min_consensus_score "
            f"{minimum:.4f}",
        )
        return False
    trace.append(
        (
            RULE_CONSENSUS,
            PASS,
            consensus,
            minimum,
            "at or above the minimum" if from_votes else "no usable votes: confidence stands in",
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
        spread = instrument.pips(instrument.to_ticks(ask) - instrument.to_ticks(bid))
    elif prediction.spread_pips is not None:
        spread = prediction.spread_pips
    else:
        spread = -1.0  # unknown
    return MarketView(
        classify_volatility(
            volatility,
            state.returns,
            parameters.min_samples,
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
    rule = RULE_MARKET_CONDITION
    extreme = strategy.volatility_extreme_bps
    if market.regime == REGIME_EXTREME:
        trace.append((rule, FAIL, market.volatility_bps, extreme, "volatility (bps/sqrt h)"))
        decision.stop(
            REJECTED,
            REASON_EXTREME_VOLATILITY,
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
            REASON_STALE_PRICE,
            f"the price is {age_s:.1f} s old, older than max_price_age {limit_s:.1f} s",
        )
        return False
    if market.spread_pips > strategy.max_spread_pips:
        trace.append(
            (rule, FAIL, market.spread_pips, strategy.max_spread_pips, "spread (pips) too wide")
        )
        decision.stop(
            REJECTED,
            REASON_SPREAD_TOO_WIDE,
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
        decision.stop(HELD, REASON_NEUTRAL_DIRECTION, "the prediction has no directional view")
        return None
    signal_type, pattern_factor = _apply_patterns(decision, prediction, strategy, signal_type, side)
    if signal_type == HOLD:
        decision.stop(
            HELD,
            REASON_PATTERN_CONFLICT,
            "patterns against the signal outweighed those for it and weakened it to HOLD",
        )
        return None
    adjusted = volatility_mode_type(signal_type, market.regime, strategy.volatility_mode)
    high = strategy.volatility_high_bps
    trace.append(
        (
            RULE_VOLATILITY_MODE,
            PASS if adjusted == signal_type else ADJUST,
            market.volatility_bps,
            high,
            "volatility below the HIGH band: unchanged"
            if market.volatility_bps < high
            else _VOLATILITY_MODE_TEXT[strategy.volatility_mode, adjusted != signal_type],
        )
    )
    if not strategy.trend_following:
        trace.append((RULE_TREND, SKIP, 0.0, 0.0, "trend following is off"))
    else:
        counter = against_trend(side, market.trend)
        confidence = decision.confidence
        threshold = strategy.counter_trend_confidence
        if counter and confidence < threshold:
            trace.append((RULE_TREND, FAIL, confidence, threshold, "counter-trend, too unsure"))
            decision.stop(
                HELD,
                REASON_COUNTER_TREND,
                f"against the trend ({market.trend_bps:.2f} bps) with confidence "
                f"{confidence:.4f} below counter_trend_confidence_threshold {threshold:.4f}",
            )
            return None
        trace.append(
            (
                RULE_TREND,
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
    rule = RULE_PATTERN
    if not strategy.pattern_trading:
        trace.append((rule, SKIP, 0.0, 0.0, "pattern trading is off"))
        return signal_type, None
    minimum = strategy.min_pattern_probability
    support, opposition, best, counted = pattern_balance(prediction.patterns, side, minimum)
    if not counted:
        trace.append((rule, SKIP, 0.0, minimum, "no pattern at or above the minimum probability"))
        return signal_type, None
    if opposition > support:
        weakened = WEAKER[signal_type]
        if weakened == HOLD:
            trace.append((rule, FAIL, support, opposition, "support < opposition: weak to HOLD"))
        else:
            trace.append((rule, ADJUST, support, opposition, "support < opposition: weakened"))
        return weakened, best
    if support > opposition and signal_type in WEAK_TYPES:
        trace.append((rule, ADJUST, support, opposition, "support > opposition: strengthened"))
        return STRONGER[signal_type], best
    trace.append((rule, PASS, support, opposition, "support vs opposition: unchanged"))
    return signal_type, best


_STRENGTH_TEXT: Final = (
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
    decision.trace.append((RULE_STRENGTH, PASS, strength, weights, _STRENGTH_TEXT))


def _protections(decision: Decision, context: DecisionContext, side: int) -> bool:
    """Trading state and stop-loss cooldown; traced only when they have something to check."""
    protection = context.protection
    trace = decision.trace
    symbol = decision.symbol
    if protection.state != ACTIVE:
        if protection.state == HALTED:
            trace.append((RULE_TRADING_STATE, FAIL, 0.0, 0.0, "trading halted"))
            decision.stop(HELD, REASON_TRADING_HALTED, protection.why)
            return False
        # Reduce-only: a signal may only go against positions the user holds.
        against = float(protection.open_by_side.get((symbol, -side), 0))
        if against == 0.0:
            trace.append((RULE_TRADING_STATE, FAIL, 0.0, 0.0, "reduce-only: nothing to reduce"))
            decision.stop(
                HELD,
                REASON_REDUCE_ONLY,
                f"{protection.why}; no open position on {symbol} on the other side to reduce",
            )
            return False
        trace.append(
            (RULE_TRADING_STATE, PASS, against, 0.0, "reduce-only: reduces open positions")
        )
    stop_outs = protection.stop_outs
    # Most users were never stopped out: skip building and hashing the key.
    stopped_ns = stop_outs.get((symbol, side)) if stop_outs else None
    if stopped_ns is not None:
        cooldown_ns = context.strategy.stop_loss_cooldown_ns
        elapsed_ns = context.now_ns - stopped_ns
        elapsed_s = elapsed_ns / _NS_PER_SECOND
        cooldown_s = cooldown_ns / _NS_PER_SECOND
        if elapsed_ns < cooldown_ns:
            trace.append((RULE_COOLDOWN, FAIL, elapsed_s, cooldown_s, "s since the stop loss"))
            decision.stop(
                HELD,
                REASON_STOP_LOSS_COOLDOWN,
                f"a stop loss closed a {'long' if side > 0 else 'short'} {symbol} position "
                f"{elapsed_s:.0f} s ago; stop_loss_cooldown is {cooldown_s:.0f} s",
            )
            return False
        trace.append((RULE_COOLDOWN, PASS, elapsed_s, cooldown_s, "s since the stop loss"))
    return True


def _over_trading(
    decision: Decision,
    prediction: PredictionInput,
    instrument: Instrument,
    context: DecisionContext,
    memory: UserMemory,
    side: int,
) -> tuple[int, int] | None:
    """Position limit, order type, duplicates and rate limit.

    Returns (reference, entry) prices in ticks when all pass.
    """
    trace = decision.trace
    strategy = context.strategy
    open_positions = float(context.open_positions)
    cap = float(strategy.max_positions)
    if open_positions >= cap:
        trace.append((RULE_POSITION_LIMIT, FAIL, open_positions, cap, "limit reached"))
        decision.stop(
            HELD,
            REASON_POSITION_LIMIT_REACHED,
            f"{context.open_positions} open positions reach max_position_count "
            f"{strategy.max_positions}",
        )
        return None
    trace.append((RULE_POSITION_LIMIT, PASS, open_positions, cap, "below the limit"))

    reference = instrument.to_ticks(
        entry_rules.reference_price(side, prediction.price, prediction.bid, prediction.ask)
    )
    if strategy.prefer_market_orders:
        entry = reference
        reference_price = instrument.price(reference)
        trace.append((RULE_ORDER_TYPE, PASS, reference_price, reference_price, "market order"))
    else:
        offset, clamped = entry_rules.limit_offset_pips(strategy, side)
        # Whole ticks, rounded down: the deviation never exceeds the maximum.
        entry = reference - side * int(offset * instrument.ticks_per_pip + 1e-9)
        trace.append(
            (
                RULE_ORDER_TYPE,
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
        decision.symbol, side, entry, now - window, instrument.pip_ticks(tolerance)
    )
    if duplicate is not None:
        distance = instrument.pips(abs(duplicate.entry_ticks - entry))
        trace.append((RULE_DUPLICATE, FAIL, distance, tolerance, f"of {duplicate.signal_id}"))
        decision.stop(
            SUPPRESSED,
            REASON_DUPLICATE_SIGNAL,
            f"signal {duplicate.signal_id} on the same side was issued "
            f"{(now - duplicate.at_ns) / _NS_PER_SECOND:.1f} s ago {distance:.1f} pips away",
        )
        return None
    trace.append((RULE_DUPLICATE, PASS, 0.0, tolerance, "no similar recent signal"))
    issued = float(memory.issued_last_minute(now))
    cap = float(strategy.max_signals_per_minute)
    if issued >= cap:
        trace.append((RULE_RATE_LIMIT, FAIL, issued, cap, "per-minute limit reached"))
        decision.stop(
            SUPPRESSED,
            REASON_RATE_LIMITED,
            f"{int(issued)} actionable signals in the last minute reach max_signals_per_minute "
            f"{strategy.max_signals_per_minute}",
        )
        return None
    trace.append((RULE_RATE_LIMIT, PASS, issued, cap, "below the per-minute limit"))
    return reference, entry


_STOP_TEXT: Final = {
    (False, False): "fixed stop_loss_pips; threshold: pips wanted",
    (False, True): "fixed stop_loss_pips, clamped to the stop bounds; threshold: pips wanted",
    (True, False): "volatility-scaled; threshold: pips wanted",
    (True, True): "volatility-scaled, clamped to the stop bounds; threshold: pips wanted",
}


def _plan_entry(
    decision: Decision,
    prediction: PredictionInput,
    instrument: Instrument,
    context: DecisionContext,
    book: MarketBook,
    side: int,
    reference: int,
    entry: int,
) -> Entry | None:
    """Timing, stop loss, take profit, size and legs; None when the size rules stop it.

    `reference` and `entry` are prices in ticks; stops and targets are at least
    one tick away from the entry, on their own side of it.
    """
    trace = decision.trace
    strategy = context.strategy
    market = decision.market
    assert market is not None
    entry_price = instrument.price(entry)

    horizon_ns = prediction.horizon_ns
    validity_ns = strategy.signal_validity_ns
    timed = strategy.advanced_timing and 0 < horizon_ns < validity_ns
    if timed:
        validity_ns = horizon_ns

    wanted, scaled = entry_rules.stop_distance_pips(
        strategy, market.volatility_bps, entry_price, validity_ns, instrument.pip_size
    )
    clamped = entry_rules.clamp_stop_pips(strategy, wanted)
    stop_ticks = max(1, instrument.pip_ticks(clamped))
    stop_pips = instrument.pips(stop_ticks)
    trace.append(
        (
            RULE_STOP_LOSS,
            PASS if clamped == wanted else ADJUST,
            stop_pips,
            wanted,
            _STOP_TEXT[scaled, clamped != wanted],
        )
    )

    target_ticks, tp_text = _take_profit(strategy, instrument, prediction, entry, side, stop_pips)
    tp_pips = instrument.pips(target_ticks)
    trace.append((RULE_TAKE_PROFIT, PASS, tp_pips, stop_pips, tp_text))

    sized = position_size(decision, instrument, context, book, stop_pips)
    if sized is None:
        return None
    lots, pip_value, budget, factor = sized

    if strategy.multi_leg_entries:
        legs = entry_rules.split_legs(
            instrument, lots, strategy.multi_leg_count, entry, side, target_ticks
        )
        count = float(strategy.multi_leg_count)
        if legs:
            trace.append((RULE_MULTI_LEG, PASS, float(len(legs)), count, "staggered legs"))
        else:
            trace.append((RULE_MULTI_LEG, SKIP, 0.0, count, "too small to split into legs"))
    else:
        legs = []
        trace.append((RULE_MULTI_LEG, SKIP, 0.0, 0.0, "multi-leg entries are off"))

    market_order = strategy.prefer_market_orders
    if market_order:
        urgency = entry_rules.IMMEDIATE
    elif strategy.advanced_timing and decision.strength >= entry_rules.URGENT_STRENGTH:
        urgency = entry_rules.NORMAL
    else:
        urgency = entry_rules.PATIENT
    trace.append(
        (
            RULE_TIMING,
            PASS,
            validity_ns / _NS_PER_SECOND,
            strategy.signal_validity_ns / _NS_PER_SECOND,
            "valid for the prediction horizon (s)" if timed else "valid for signal_validity (s)",
        )
    )
    return Entry(
        entry_rules.MARKET if market_order else entry_rules.LIMIT,  # order_type
        urgency,
        instrument.price(reference),  # reference_price
        entry_price,
        0.0 if market_order else entry_price,  # limit_price
        instrument.price(entry - side * stop_ticks),  # stop_loss
        instrument.price(entry + side * target_ticks),  # take_profit
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
    entry: int,
    side: int,
    stop_pips: float,
) -> tuple[int, str]:
    """Take-profit distance from the entry in ticks (at least one), and how it was chosen."""
    mode = strategy.take_profit_mode
    predicted = prediction.predicted_price
    if mode == TARGET_PREDICTED_PRICE:
        distance = side * (instrument.to_ticks(predicted) - entry) if predicted > 0.0 else 0
        if strategy.advanced_features and distance >= max(
            1, instrument.pip_ticks(strategy.min_stop_loss_pips)
        ):
            return distance, "at the predicted price"
    ticks = max(1, instrument.pip_ticks(entry_rules.take_profit_pips(strategy, stop_pips)))
    if mode == TARGET_FIXED_PIPS:
        return ticks, "at take_profit_pips"
    if mode == TARGET_PREDICTED_PRICE:
        return ticks, "predicted price unusable: risk_reward_ratio x stop"
    return ticks, "at risk_reward_ratio x stop"


_SIZE_TEXT: Final = (
    "risk_budget / (stop_loss_pips x pip_value) x size_factor, floored to the lot step; "
    "threshold: the size cap"
)


def position_size(
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
        trace.append((RULE_POSITION_SIZE, FAIL, 0.0, 0.0, "no conversion rate"))
        decision.stop(
            REJECTED,
            REASON_NO_CONVERSION_RATE,
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
        trace.append((RULE_POSITION_SIZE, FAIL, lots, instrument.min_lot, _SIZE_TEXT))
        decision.stop(
            HELD,
            REASON_SIZE_BELOW_MINIMUM,
            f"the risk-based size {raw_lots:.4f} lots ({budget:.2f} {currency} over "
            f"{stop_pips:.1f} pips at {pip_value:.4f} {currency}/pip) is below the minimum "
            f"{instrument.min_lot} lots",
        )
        return None
    outcome = PASS if raw_lots <= cap else ADJUST
    trace.append((RULE_POSITION_SIZE, outcome, lots, cap, _SIZE_TEXT))
    return lots, pip_value, budget, factor
