"""Plausible prices (decision 19): the instrument's range, and the band around the last price.

A price outside is INVALID, naming the field, with the observed value and the
bound it crossed in the trace; it never reaches the market state, and the
rest of a batch is still decided. A real market that jumps is followed.
"""

from __future__ import annotations

import dataclasses
import math

import pytest

from tests.core.builders import (
    ENTERPRISE,
    MINUTE_NS,
    NOW_NS,
    PRO,
    SECOND_NS,
    context,
    feed,
    history_then,
    prediction,
    run,
)
from tradeflow.trading.v1 import signal_pb2
from trading_engine.core import instruments
from trading_engine.core.decision import ACTIONABLE, FAIL, INVALID, PASS, REJECTED, Decision
from trading_engine.core.market import MarketBook
from trading_engine.core.validation import PRICE_BAND_FACTOR, PRICE_BAND_WIDENING_PER_MINUTE

S = signal_pb2
MAX_DOUBLE = 1.7976931348623157e308


def _refused(decision: Decision, field: str, observed: float, bound: float) -> None:
    """INVALID for `field`, with one FAIL line holding the value and the bound it crossed."""
    assert decision.disposition == INVALID
    assert decision.reason == S.DISPOSITION_REASON_INVALID_PREDICTION
    assert decision.cancellation_reason.startswith(f"prediction.{field}: ")
    assert decision.entry is None
    fails = [line for line in decision.trace if line[1] == FAIL]
    assert fails == [decision.trace[-1]]
    rule, _, seen, threshold, detail = decision.trace[-1]
    assert rule == S.DECISION_RULE_INSTRUMENT
    assert (seen, threshold) == pytest.approx((observed, bound))
    assert detail.startswith(f"{field}: ")


def _accepted(decision: Decision) -> None:
    assert decision.disposition != INVALID, decision.cancellation_reason
    line = next(line for line in decision.trace if line[0] == S.DECISION_RULE_INSTRUMENT)
    assert line[1] == PASS


def _state_unchanged(before: MarketBook, after: MarketBook, symbol: str = "EURUSD") -> None:
    assert dataclasses.astuple(after.state("company-1", symbol)) == dataclasses.astuple(
        before.state("company-1", symbol)
    )


def _band(elapsed_ns: int) -> float:
    """The band's factor `elapsed_ns` after the last accepted price, as decision 19 has it."""
    return PRICE_BAND_FACTOR + elapsed_ns * (PRICE_BAND_WIDENING_PER_MINUTE / MINUTE_NS)


# --- The instrument's range: a first price needs no history to be refused --------------------


@pytest.mark.parametrize(
    ("symbol", "price", "bound"),
    [
        pytest.param("GBPUSD", 1e300, 10.0, id="GBPUSD-1e300"),
        pytest.param("EURUSD", MAX_DOUBLE, 10.0, id="EURUSD-max-double"),
        pytest.param("EURUSD", 5e-324, 0.1, id="EURUSD-subnormal"),
        pytest.param("EURUSD", math.nextafter(10.0, math.inf), 10.0, id="just-above-10"),
        pytest.param("EURUSD", math.nextafter(0.1, 0.0), 0.1, id="just-below-0.1"),
        pytest.param("USDJPY", 1.5, 10.0, id="USDJPY-quoted-as-a-dollar-pair"),
        pytest.param("XAUUSD", 24.0, 200.0, id="gold-at-a-silver-price"),
    ],
)
def test_a_first_price_outside_the_instruments_range_is_invalid(
    symbol: str, price: float, bound: float
) -> None:
    book = MarketBook()
    decision = run(
        prediction(symbol=symbol, price=price, spread_pips=None), context(tier=ENTERPRISE), book
    )

    _refused(decision, "current_price", price, bound)
    assert "outside the plausible" in decision.cancellation_reason
    assert book.last_price("company-1", symbol) == 0.0


@pytest.mark.parametrize(
    ("symbol", "price"),
    [
        pytest.param("EURUSD", 10.0, id="EURUSD-at-10"),
        pytest.param("EURUSD", 0.1, id="EURUSD-at-0.1"),
        pytest.param("USDJPY", 1000.0, id="USDJPY-at-1000"),
        pytest.param("XAUUSD", 200.0, id="gold-at-200"),
    ],
)
def test_a_first_price_at_the_edge_of_the_range_is_accepted(symbol: str, price: float) -> None:
    decision = run(
        prediction(symbol=symbol, price=price, spread_pips=None), context(tier=ENTERPRISE)
    )

    _accepted(decision)


def test_every_instrument_has_a_range_around_where_it_trades() -> None:
    for symbol in instruments.all_symbols():
        instrument = instruments.lookup(symbol)
        assert instrument is not None
        assert 0.0 < instrument.min_price < instrument.max_price < math.inf
        # Ticks of the largest plausible price stay far inside exact float arithmetic.
        assert instrument.max_price * instrument.ticks_per_price < 2**53


# --- The band around the last accepted price -------------------------------------------------


def _after(last: float, price: float, elapsed_ns: int) -> tuple[MarketBook, Decision]:
    """A book with one EURUSD price `last` at NOW_NS, then `price` decided `elapsed_ns` later."""
    book = MarketBook()
    feed(book, [last], end_ns=NOW_NS)
    at = NOW_NS + elapsed_ns
    message = prediction(price=price, spread_pips=None, at_ns=at)
    return book, run(message, context(tier=PRO, now_ns=at), book)


@pytest.mark.parametrize(
    ("elapsed_ns", "about"),
    [
        pytest.param(0, 1.1, id="at-once"),
        pytest.param(SECOND_NS, 1.1 + 0.1 / 60, id="1s"),
        pytest.param(MINUTE_NS, 1.2, id="1min"),
        pytest.param(5 * MINUTE_NS, 1.6, id="5min"),
        pytest.param(60 * MINUTE_NS, 7.1, id="1h"),
    ],
)
def test_the_band_is_x1_1_at_once_and_widens_by_0_1_a_minute(elapsed_ns: int, about: float) -> None:
    factor = _band(elapsed_ns)
    assert factor == pytest.approx(about)
    last = 1.1
    # 1.1 x 7.1 is beyond the range (10): the range decides there, not the band.
    inside_up = min(last * factor, 10.0)
    _accepted(_after(last, inside_up, elapsed_ns)[1])
    _accepted(_after(last, last / factor, elapsed_ns)[1])

    above = math.nextafter(last * factor, math.inf)
    below = math.nextafter(last / factor, 0.0)
    if above <= 10.0:
        book, decision = _after(last, above, elapsed_ns)
        _refused(decision, "current_price", above, last * factor)
        assert book.last_price("company-1", "EURUSD") == last
    book, decision = _after(last, below, elapsed_ns)
    _refused(decision, "current_price", below, last / factor)
    assert book.last_price("company-1", "EURUSD") == last


def test_an_80_pip_jump_on_eurusd_is_accepted_and_makes_volatility_extreme() -> None:
    # A quiet minute-by-minute history, then 80 pips (0.7%) in one minute.
    book, last = history_then([1.1000] * 8 + [1.1080])
    decision = run(prediction(price=last), context(tier=PRO), book)

    _accepted(decision)
    assert decision.reason == S.DISPOSITION_REASON_EXTREME_VOLATILITY
    assert decision.disposition == REJECTED
    assert book.last_price("company-1", "EURUSD") == last


def test_a_crash_like_eurchf_in_2015_is_followed_within_minutes() -> None:
    # EURCHF fell from 1.20 to about 0.85 (-29%) in minutes when the floor was removed.
    book = MarketBook()
    feed(book, [1.2010], symbol="EURCHF", end_ns=NOW_NS)

    def decide_at(elapsed_ns: int, price: float) -> Decision:
        at = NOW_NS + elapsed_ns
        message = prediction(symbol="EURCHF", price=price, spread_pips=None, at_ns=at)
        return run(message, context(tier=ENTERPRISE, now_ns=at), book)

    # 1.2010 / 0.85 = 1.413: the band reaches it after (1.413 - 1.1) / 0.1 = 3.13 minutes.
    for seconds in (1, 60, 180):
        refused = decide_at(seconds * SECOND_NS, 0.85)
        assert refused.disposition == INVALID
        assert book.last_price("company-1", "EURCHF") == 1.2010
    _accepted(decide_at(190 * SECOND_NS, 0.85))
    # The new level is the band's centre now: the market is followed from there.
    _accepted(decide_at(191 * SECOND_NS, 0.84))
    assert book.last_price("company-1", "EURCHF") == 0.84


def test_a_refused_price_leaves_the_market_state_as_it_was() -> None:
    book, last = history_then([1.1000, 1.1002, 1.0999, 1.1003, 1.1001, 1.1004, 1.1002])
    reference = MarketBook()
    feed(reference, [1.1000, 1.1002, 1.0999, 1.1003, 1.1001, 1.1004], end_ns=NOW_NS - MINUTE_NS)

    for price in (5e-324, MAX_DOUBLE, 1e300, 1.5, 0.9):
        decision = run(prediction(price=price, spread_pips=None), context(tier=PRO), book)
        assert decision.disposition == INVALID
        _state_unchanged(reference, book)
    # The next good price is judged, and folded in, as if the bad ones never came.
    assert run(prediction(price=last), context(tier=PRO), book).disposition == ACTIONABLE
    assert book.last_price("company-1", "EURUSD") == last


def test_an_older_price_is_judged_by_the_time_between_the_two() -> None:
    book = MarketBook()
    feed(book, [1.1], end_ns=NOW_NS)
    # Observed a minute before the last accepted price: the band is x1.2 for it too.
    at = NOW_NS - MINUTE_NS
    decision = run(
        prediction(price=1.1 * 1.19, spread_pips=None, at_ns=at), context(tier=PRO), book
    )
    _accepted(decision)
    decision = run(
        prediction(price=1.1 * 1.21, spread_pips=None, at_ns=at), context(tier=PRO), book
    )
    assert decision.disposition == INVALID


def test_one_companys_prices_do_not_move_anothers_band() -> None:
    book = MarketBook()
    feed(book, [1.1], company_id="company-1", end_ns=NOW_NS)

    theirs = run(prediction(price=1.5, spread_pips=None), context(company_id="company-2"), book)

    _accepted(theirs)
    assert book.last_price("company-1", "EURUSD") == 1.1


# --- Bid, ask and the predicted price --------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "overrides", "observed", "bound"),
    [
        pytest.param(
            "bid", {"bid": 0.99, "ask": 1.1001}, 0.99, 1.1 / PRICE_BAND_FACTOR, id="bid-far-below"
        ),
        pytest.param(
            "ask", {"bid": 1.0999, "ask": 1e300}, 1e300, 1.1 * PRICE_BAND_FACTOR, id="ask-1e300"
        ),
        pytest.param(
            "bid",
            {"bid": 5e-324, "ask": 1.1001},
            5e-324,
            1.1 / PRICE_BAND_FACTOR,
            id="bid-subnormal",
        ),
        pytest.param(
            "ask",
            {"bid": 0.0, "ask": MAX_DOUBLE},
            MAX_DOUBLE,
            1.1 * PRICE_BAND_FACTOR,
            id="ask-alone-max",
        ),
        pytest.param(
            "predicted_price", {"predicted_price": 1e300}, 1e300, 10.0, id="predicted-1e300"
        ),
        pytest.param(
            "predicted_price", {"predicted_price": 5e-324}, 5e-324, 0.1, id="predicted-subnormal"
        ),
    ],
)
def test_quotes_and_the_predicted_price_must_be_plausible_too(
    field: str, overrides: dict[str, float], observed: float, bound: float
) -> None:
    book = MarketBook()
    message = prediction(price=1.1, spread_pips=None, **overrides)  # type: ignore[arg-type]
    decision = run(message, context(tier=PRO), book)

    _refused(decision, field, observed, bound)
    assert book.last_price("company-1", "EURUSD") == 0.0


def test_quotes_at_the_edge_of_the_band_are_accepted() -> None:
    message = prediction(price=1.1, bid=1.1 / PRICE_BAND_FACTOR, ask=1.1 * PRICE_BAND_FACTOR)

    _accepted(run(message, context(tier=PRO)))
