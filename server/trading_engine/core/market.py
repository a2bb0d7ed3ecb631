"""Market condition per instrument, updated incrementally from observed prices.

Each company has its own view of each instrument, built only from the prices
its own predictions carry, so one tenant's feed can never move another
tenant's volatility or trend (decision 6).

- Realised volatility: exponentially decayed sums of squared log returns and of
  elapsed time; their ratio is the variance per hour, reported in basis points
  per square-root hour, so it does not depend on how often prices arrive.
- Trend: a fast and a slow time-decayed average of price; their gap in basis
  points of price, against the strategy's threshold, gives UP, DOWN or SIDEWAYS.
- Both need `min_samples` returns before they are classified at all.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Final

from tradeflow.trading.v1 import market_pb2

NANOS_PER_HOUR: Final = 3_600_000_000_000
# The currency conversions go through when no pair links two currencies directly.
_PIVOT: Final = "USD"
_MINUS_LN2: Final = -math.log(2.0)

REGIME_UNKNOWN: Final[int] = market_pb2.VOLATILITY_REGIME_UNSPECIFIED
REGIME_LOW: Final[int] = market_pb2.VOLATILITY_REGIME_LOW
REGIME_NORMAL: Final[int] = market_pb2.VOLATILITY_REGIME_NORMAL
REGIME_HIGH: Final[int] = market_pb2.VOLATILITY_REGIME_HIGH
REGIME_EXTREME: Final[int] = market_pb2.VOLATILITY_REGIME_EXTREME
TREND_UNKNOWN: Final[int] = market_pb2.TREND_UNSPECIFIED
TREND_UP: Final[int] = market_pb2.TREND_UP
TREND_DOWN: Final[int] = market_pb2.TREND_DOWN
TREND_SIDEWAYS: Final[int] = market_pb2.TREND_SIDEWAYS


@dataclasses.dataclass(frozen=True)
class MarketParameters:
    """How quickly the estimators forget; engine-wide, not per strategy."""

    fast_half_life_ns: int = 5 * 60 * 1_000_000_000
    slow_half_life_ns: int = 30 * 60 * 1_000_000_000
    volatility_half_life_ns: int = 30 * 60 * 1_000_000_000
    min_samples: int = 5


@dataclasses.dataclass
class SymbolState:
    """Running estimators for one instrument of one company."""

    last_price: float = 0.0
    last_ns: int = 0
    fast_average: float = 0.0
    slow_average: float = 0.0
    decayed_squared_returns: float = 0.0
    decayed_hours: float = 0.0
    returns: int = 0

    def observe(self, price: float, at_ns: int, parameters: MarketParameters) -> None:
        """Fold in one price. Prices older than the latest are ignored: time only moves on."""
        if self.last_ns == 0:
            self.last_price = self.fast_average = self.slow_average = price
            self.last_ns = at_ns
            return
        elapsed = at_ns - self.last_ns
        if elapsed <= 0:
            return
        log_return = math.log(price / self.last_price)
        # 0.5 ** (elapsed / half-life), written with exp: a native call when compiled.
        keep = math.exp(elapsed * _MINUS_LN2 / parameters.volatility_half_life_ns)
        self.decayed_squared_returns = self.decayed_squared_returns * keep + log_return * log_return
        self.decayed_hours = self.decayed_hours * keep + elapsed / NANOS_PER_HOUR
        self.fast_average += (
            1.0 - math.exp(elapsed * _MINUS_LN2 / parameters.fast_half_life_ns)
        ) * (price - self.fast_average)
        self.slow_average += (
            1.0 - math.exp(elapsed * _MINUS_LN2 / parameters.slow_half_life_ns)
        ) * (price - self.slow_average)
        self.returns += 1
        self.last_price = price
        self.last_ns = at_ns

    def volatility_bps(self, parameters: MarketParameters) -> float:
        """Realised volatility in basis points per square-root hour; 0 before `min_samples`."""
        if self.returns < parameters.min_samples or self.decayed_hours <= 0.0:
            return 0.0
        return math.sqrt(self.decayed_squared_returns / self.decayed_hours) * 10_000.0

    def trend_bps(self, parameters: MarketParameters) -> float:
        """Fast minus slow average in basis points of the slow one; 0 before `min_samples`."""
        if self.returns < parameters.min_samples or self.slow_average <= 0.0:
            return 0.0
        return (self.fast_average - self.slow_average) / self.slow_average * 10_000.0


class MarketBook:
    """Every company's view of every instrument it has seen a price for."""

    def __init__(self, parameters: MarketParameters | None = None) -> None:
        self.parameters = parameters or MarketParameters()
        # company -> symbol -> state. Two lookups by string (whose hashes are cached) cost
        # less than building and hashing a (company, symbol) tuple for every prediction.
        self._companies: dict[str, dict[str, SymbolState]] = {}

    def state(self, company_id: str, symbol: str) -> SymbolState:
        """The company's state of `symbol`, empty until it observes a price."""
        states = self._companies.get(company_id)
        if states is None:
            states = self._companies[company_id] = {}
        state = states.get(symbol)
        if state is None:
            state = states[symbol] = SymbolState()
        return state

    def last_price(self, company_id: str, symbol: str) -> float:
        states = self._companies.get(company_id)
        return _last_price(states, symbol) if states is not None else 0.0

    def conversion_rate(self, company_id: str, source: str, target: str) -> float:
        """Units of `target` per unit of `source` from the company's prices; 0 when unknown.

        From the pair of the two currencies (either way round), else through the US dollar,
        which nearly every pair is quoted against: JPY into EUR from USDJPY and EURUSD.
        """
        if source == target:
            return 1.0
        states = self._companies.get(company_id)
        if states is None:
            return 0.0
        rate = _pair_rate(states, source, target)
        if rate > 0.0 or _PIVOT in (source, target):
            return rate
        return _pair_rate(states, source, _PIVOT) * _pair_rate(states, _PIVOT, target)


def _pair_rate(states: dict[str, SymbolState], source: str, target: str) -> float:
    """`conversion_rate` from the source-target pair alone: its price, or 1 / the inverse's."""
    direct = _last_price(states, source + target)
    if direct > 0.0:
        return direct
    inverse = _last_price(states, target + source)
    return 1.0 / inverse if inverse > 0.0 else 0.0


def _last_price(states: dict[str, SymbolState], symbol: str) -> float:
    state = states.get(symbol)
    return state.last_price if state is not None else 0.0


def classify_volatility(
    volatility_bps: float, samples: int, min_samples: int, low: float, high: float, extreme: float
) -> int:
    """The regime under the strategy's bands; unknown only without enough price history."""
    if samples < min_samples:
        return REGIME_UNKNOWN
    if volatility_bps >= extreme:
        return REGIME_EXTREME
    if volatility_bps >= high:
        return REGIME_HIGH
    if volatility_bps < low:
        return REGIME_LOW
    return REGIME_NORMAL


def classify_trend(trend_bps: float, samples: int, min_samples: int, threshold: float) -> int:
    """UP or DOWN when the averages are at least `threshold` apart; a flat market is SIDEWAYS."""
    if samples < min_samples:
        return TREND_UNKNOWN
    if trend_bps >= threshold and trend_bps > 0.0:
        return TREND_UP
    if trend_bps <= -threshold and trend_bps < 0.0:
        return TREND_DOWN
    return TREND_SIDEWAYS
