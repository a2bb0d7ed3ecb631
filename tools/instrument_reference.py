"""Render docs/instruments.md from the instrument registry: pips, lots and plausible prices.

Each instrument is declared once, in server/trading_engine/core/instruments.py;
this renders its reference (a test compares the committed file with a fresh
rendering; `make generate` rewrites it).
"""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

from trading_engine.core import instruments
from trading_engine.core.validation import PRICE_BAND_FACTOR, PRICE_BAND_WIDENING_PER_MINUTE

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = ROOT / "docs" / "instruments.md"


def _number(value: float) -> str:
    return f"{value:,.10g}"


def render() -> str:
    rules = (
        "A prediction's `current_price` and `predicted_price` must lie within the instrument's "
        "plausible prices, both bounds included. `current_price` must also lie within "
        f"x{PRICE_BAND_FACTOR:g} of the last price the company's predictions gave for the "
        f"instrument, {PRICE_BAND_WIDENING_PER_MINUTE:g} wider for every minute between the "
        f"two, and `bid` and `ask`, when set, within x{PRICE_BAND_FACTOR:g} of "
        "`current_price`. A price outside makes the prediction INVALID, naming the field "
        "(decision 19)."
    )
    lines = [
        "# Instruments",
        "",
        "Generated from `server/trading_engine/core/instruments.py` by",
        "`tools/instrument_reference.py` (`make generate`). Prices are quote-currency units per",
        "unit of the base (per ounce for the metals, per index point for the indices).",
        "",
        *textwrap.wrap(rules, width=90),
        "",
        "| symbol | class | pip | decimals | contract size | lots (min / step / max) "
        "| plausible prices |",
        "|---|---|---|---|---|---|---|",
    ]
    for symbol in sorted(instruments.all_symbols()):
        instrument = instruments.lookup(symbol)
        assert instrument is not None
        lots = " / ".join(
            _number(size) for size in (instrument.min_lot, instrument.lot_step, instrument.max_lot)
        )
        lines.append(
            f"| {symbol} | {instrument.asset_class.value} | {_number(instrument.pip_size)} "
            f"| {instrument.price_decimals} | {_number(instrument.contract_size)} | {lots} "
            f"| {_number(instrument.min_price)} to {_number(instrument.max_price)} |"
        )
    return "\n".join(lines) + "\n"


def main() -> int:
    REFERENCE.write_text(render())
    print(f"wrote {REFERENCE.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
