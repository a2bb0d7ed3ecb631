"""Render docs/strategy-parameters.md from the StrategyConfig contract and the tiers.

Every parameter's unit, range and default are written once, in the comment
above its field in proto/tradeflow/trading/v1/strategy.proto, and each tier's
bounds once, in server/trading_engine/core/tiers.py; this renders them as the
user guide's reference tables, so they cannot disagree (a test compares the
committed file with a fresh rendering; `make generate` rewrites it).
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

from trading_engine.core import instruments, tiers
from trading_engine.tenancy import tier_name

ROOT = Path(__file__).resolve().parents[1]
PROTO = ROOT / "proto" / "tradeflow" / "trading" / "v1" / "strategy.proto"
REFERENCE = ROOT / "docs" / "strategy-parameters.md"
_FIELD = re.compile(r"(repeated |optional )?([\w.]+) (\w+) = \d+\b")
_HEADER = """\
# Strategy parameters

Generated from the comments of `StrategyConfig` in
`proto/tradeflow/trading/v1/strategy.proto` by `tools/strategy_reference.py`
(`make generate`); edit the contract, not this file. Tier defaults differ
where the text names the tiers; a user's layer, the adaptive layer and the
company's layer override them in that order (decision 15), bounded by the
tier. Durations are `google.protobuf.Duration` (in JSON, `"300s"`). In an
update, a field that is present is set, 0 and false included; a field left
out keeps its value (decision 23).

| field | type | meaning, range and default |
|---|---|---|
"""


def fields(proto_text: str) -> list[tuple[str, str, str]]:
    """(name, type, comment) of each StrategyConfig field, in declaration order."""
    body = re.search(r"message StrategyConfig \{(.*?)\n\}", proto_text, re.S)
    if body is None:
        raise ValueError("no StrategyConfig message in the contract")
    found: list[tuple[str, str, str]] = []
    comment: list[str] = []
    for line in (raw.strip() for raw in body.group(1).splitlines()):
        if line.startswith("//"):
            comment.append(line[2:].strip())
        elif match := _FIELD.match(line):
            label, kind, name = match.groups()
            kind = f"repeated {kind}" if label == "repeated " else kind
            found.append((name, kind, " ".join(comment)))
            comment = []
    return found


def render(proto_text: str) -> str:
    rows = [
        f"| `{name}` | {kind.removeprefix('google.protobuf.')} | {_cell(text)} |"
        for name, kind, text in fields(proto_text)
    ]
    return _HEADER + "\n".join(rows) + "\n" + _bounds()


def _bounds() -> str:
    """The tier bounds section: each bounded number per tier, then instruments and features."""
    names = [tier_name(policy.tier) for policy in tiers.POLICIES]
    lifting = " and ".join(
        tier_name(policy.tier)
        for policy in tiers.POLICIES
        if policy.allowed.custom_strategies_enabled
    )
    lines = [
        "",
        "## Tier bounds",
        "",
        "A tier's template bounds the numbers that set what a trader is exposed to (decision 31).",
        "A user's layer, and a company's layer for its admin's tier, may tighten each bound",
        "(raise a floor, lower a ceiling) and reach it exactly; a change past it is refused with",
        "INVALID_ARGUMENT naming the field and the bound. Custom strategies, which only",
        f"{lifting} includes, lift the number bounds while they are switched on; its column",
        "applies where a company layer switches them off. A value stored past a bound (before a",
        "downgrade, by a company layer made under a higher tier) is held to the bound, and",
        "`GetStrategy` lists it in `clamped_fields`; `tier_bounds` shows every bound beside",
        "the values. The adaptive layer is held to the bounds too.",
        "",
        f"| field | looser is | {' | '.join(names)} |",
        f"|---|---|{'---|' * len(names)}",
    ]
    for bound in tiers.NUMBER_BOUNDS:
        direction = "lower (a floor)" if bound.floor else "higher (a ceiling)"
        limits = " | ".join(f"{policy.bound(bound.path):g}" for policy in tiers.POLICIES)
        lines.append(f"| `{bound.path}` | {direction} | {limits} |")
    lines.append(
        "| `available_instruments` | more instruments | "
        + " | ".join(_instruments(policy) for policy in tiers.POLICIES)
        + " |"
    )
    for flag in tiers.FREE.allowed.DESCRIPTOR.fields:
        allowed = " | ".join(
            "included" if getattr(policy.allowed, flag.name) else "not included"
            for policy in tiers.POLICIES
        )
        lines.append(f"| `features.{flag.name}` | on | {allowed} |")
    lines += [
        "",
        "Instruments and features are bounds for every tier, custom strategies or not. Every",
        "other field is the trader's own choice within its range: the duplicate window and",
        "price tolerance (the position count and signal rate already bound how often an idea",
        "can trade), entry, stop and take-profit distances (sizes are risk-based, so a wider",
        "stop trades fewer lots for the same risk), and the market-data guards (stale prices,",
        "spreads, volatility bands), which every tier shares at the same default.",
        "",
    ]
    return "\n".join(lines)


def _instruments(policy: tiers.TierPolicy) -> str:
    if policy.instruments == instruments.all_symbols():
        return f"all {len(policy.instruments)} instruments"
    if policy.instruments == frozenset(instruments.MAJORS):
        return f"the {len(policy.instruments)} majors"
    return ", ".join(sorted(policy.instruments))


def _cell(text: str) -> str:
    """Text safe inside a Markdown table cell."""
    return text.replace("|", "\\|")


def main() -> int:
    REFERENCE.write_text(render(PROTO.read_text()))
    print(f"wrote {REFERENCE.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
