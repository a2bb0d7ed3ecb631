"""Render docs/strategy-parameters.md from the StrategyConfig contract.

Every parameter's unit, range and default are written once, in the comment
above its field in proto/tradeflow/trading/v1/strategy.proto; this renders
them as the user guide's reference table, so the two cannot disagree (a test
compares the committed file with a fresh rendering; `make generate` rewrites
it).
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

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
    return _HEADER + "\n".join(rows) + "\n"


def _cell(text: str) -> str:
    """Text safe inside a Markdown table cell."""
    return text.replace("|", "\\|")


def main() -> int:
    REFERENCE.write_text(render(PROTO.read_text()))
    print(f"wrote {REFERENCE.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
