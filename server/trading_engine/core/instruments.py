"""The instruments the engine trades, with the sizes that make prices correct to the pip.

A pip is the quoting convention of an instrument, not a fixed number: 0.0001
for most currency pairs, 0.01 for pairs quoted in yen, 0.1 for gold, 0.01 for
silver and 1 index point for the cash indices listed here. Every distance the
engine computes in pips goes through `Instrument.pip_size`.

Each instrument also has the range its prices can plausibly have: about ten
times below and above where it trades (0.1 to 10 for a currency pair quoted
near 1, 10 to 1,000 for one quoted in yen). A price outside is a unit or feed
error, never a market, and is refused before it reaches any arithmetic.
`docs/instruments.md` lists them (rendered by `tools/instrument_reference.py`).
"""

from __future__ import annotations

import dataclasses
import enum
import math
from typing import Final

# The account currency of a batch that names none.
DEFAULT_CURRENCY: Final = "USD"
# Tolerance for floating-point error when counting lot steps (0.07 lots is 6.999... steps).
_LOT_EPSILON: Final = 1e-9


class AssetClass(enum.Enum):
    FX_MAJOR = "fx_major"
    FX_CROSS = "fx_cross"
    METAL = "metal"
    INDEX = "index"


@dataclasses.dataclass(frozen=True)
class Instrument:
    symbol: str
    # Base and quote currency: a price is quote units per one base unit.
    base: str
    quote: str
    asset_class: AssetClass
    # Price change of one pip, in quote units per base unit.
    pip_size: float
    # Decimals prices are quoted with (5 for EURUSD, 3 for USDJPY).
    price_decimals: int
    # Base units in one lot (100,000 for currency pairs, 100 oz for gold).
    contract_size: float
    # Smallest tradable size and size increment, in lots.
    min_lot: float
    lot_step: float
    max_lot: float
    # The plausible prices, both included (quote units per base unit).
    min_price: float
    max_price: float

    # Derived once. Prices are worked out in whole ticks (the smallest quoted
    # price step, 0.00001 for EURUSD): integer arithmetic is exact and, on the
    # hot path, cheaper than rounding floats.
    pip_value_in_quote: float = dataclasses.field(init=False)
    ticks_per_price: float = dataclasses.field(init=False)
    # Ticks in one pip: 10 for every instrument listed here.
    ticks_per_pip: int = dataclasses.field(init=False)
    _steps_per_lot: float = dataclasses.field(init=False)

    def __post_init__(self) -> None:
        scale = 10.0**self.price_decimals
        object.__setattr__(self, "pip_value_in_quote", self.contract_size * self.pip_size)
        object.__setattr__(self, "ticks_per_price", scale)
        object.__setattr__(self, "ticks_per_pip", round(self.pip_size * scale))
        object.__setattr__(self, "_steps_per_lot", float(round(1.0 / self.lot_step)))

    def lot_steps(self, lots: float) -> int:
        """How many whole lot steps fit in `lots` (rounded down: never more than asked)."""
        return math.floor(lots * self._steps_per_lot + _LOT_EPSILON)

    def lots(self, steps: int) -> float:
        """The size of `steps` lot steps, as the nearest float to the exact decimal."""
        return steps / self._steps_per_lot

    def plausible(self, price: float) -> bool:
        """Whether `price` lies within the instrument's plausible prices (never for NaN)."""
        return self.min_price <= price <= self.max_price

    def to_ticks(self, price: float) -> int:
        """A (positive, plausible) price in whole ticks, to the nearest tick."""
        return int(price * self.ticks_per_price + 0.5)

    def price(self, ticks: int) -> float:
        """The price of `ticks`: the nearest float to the quoted decimal."""
        return ticks / self.ticks_per_price

    def pip_ticks(self, pips: float) -> int:
        """A non-negative distance in pips as whole ticks, to the nearest tick."""
        return int(pips * self.ticks_per_pip + 0.5)

    def pips(self, ticks: int) -> float:
        """A distance in ticks as pips (tenths of a pip when a pip is ten ticks)."""
        return ticks / self.ticks_per_pip


def _fx(symbol: str, asset_class: AssetClass) -> Instrument:
    """A currency pair: quoted near 1, or near 100 in yen (JPY has no minor unit)."""
    quote = symbol[3:]
    in_yen = quote == "JPY"
    return Instrument(
        symbol=symbol,
        base=symbol[:3],
        quote=quote,
        asset_class=asset_class,
        pip_size=0.01 if in_yen else 0.0001,
        price_decimals=3 if in_yen else 5,
        contract_size=100_000.0,
        min_lot=0.01,
        lot_step=0.01,
        max_lot=100.0,
        min_price=10.0 if in_yen else 0.1,
        max_price=1_000.0 if in_yen else 10.0,
    )


def _index(symbol: str, currency: str, min_price: float, max_price: float) -> Instrument:
    """A cash index: one lot is one contract of 1 currency unit per index point."""
    return Instrument(
        symbol,
        symbol,
        currency,
        AssetClass.INDEX,
        pip_size=1.0,
        price_decimals=1,
        contract_size=1.0,
        min_lot=0.1,
        lot_step=0.1,
        max_lot=500.0,
        min_price=min_price,
        max_price=max_price,
    )


MAJORS: Final[tuple[str, ...]] = (
    "EURUSD",
    "GBPUSD",
    "USDJPY",
    "USDCHF",
    "AUDUSD",
    "USDCAD",
    "NZDUSD",
)
CROSSES: Final[tuple[str, ...]] = (
    "EURGBP", "EURJPY", "GBPJPY", "EURCHF", "AUDJPY", "EURAUD", "GBPCHF", "CADJPY", "AUDNZD",
)  # fmt: skip

_REGISTRY: Final[dict[str, Instrument]] = {
    **{s: _fx(s, AssetClass.FX_MAJOR) for s in MAJORS},
    **{s: _fx(s, AssetClass.FX_CROSS) for s in CROSSES},
    "XAUUSD": Instrument(
        "XAUUSD",
        "XAU",
        "USD",
        AssetClass.METAL,
        pip_size=0.1,
        price_decimals=2,
        contract_size=100.0,
        min_lot=0.01,
        lot_step=0.01,
        max_lot=50.0,
        min_price=200.0,
        max_price=50_000.0,
    ),
    "XAGUSD": Instrument(
        "XAGUSD",
        "XAG",
        "USD",
        AssetClass.METAL,
        pip_size=0.01,
        price_decimals=3,
        contract_size=5_000.0,
        min_lot=0.01,
        lot_step=0.01,
        max_lot=50.0,
        min_price=2.0,
        max_price=500.0,
    ),
    "US30": _index("US30", "USD", 4_000.0, 500_000.0),
    "NAS100": _index("NAS100", "USD", 2_000.0, 250_000.0),
    "SPX500": _index("SPX500", "USD", 500.0, 100_000.0),
    "GER40": _index("GER40", "EUR", 2_000.0, 250_000.0),
    "UK100": _index("UK100", "GBP", 800.0, 100_000.0),
}


def lookup(symbol: str) -> Instrument | None:
    """The instrument for a symbol, or None when the engine does not trade it."""
    return _REGISTRY.get(symbol)


def all_symbols() -> frozenset[str]:
    return frozenset(_REGISTRY)
