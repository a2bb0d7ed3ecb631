"""Render docs/configuration.md from the settings classes: every flag, variable and default.

Each setting is declared once, with its help text, in
server/trading_engine/config.py; this renders the operations guide's
configuration reference from them (a test compares the committed file with a
fresh rendering; `make generate` rewrites it).
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path
from typing import Any

from trading_engine.config import ENV_PREFIX, DevStackSettings, EngineSettings, GatewaySettings

ROOT = Path(__file__).resolve().parents[1]
REFERENCE = ROOT / "docs" / "configuration.md"
_SECTIONS: tuple[tuple[str, type[Any], str], ...] = (
    ("The engine", EngineSettings, "`trading-engine serve` and `dev`"),
    ("The REST gateway", GatewaySettings, "`trading-engine gateway` and `dev`"),
    ("The developer stack", DevStackSettings, "`trading-engine dev` only"),
)


def _default(field: dataclasses.Field[Any]) -> str:
    if isinstance(field.default, Path):
        # Paths inside the checkout differ per machine; say where they point instead.
        return f"`{field.default.relative_to(ROOT)}` in the checkout"
    return f"`{field.default}`" if field.default != "" else "empty"


def render() -> str:
    lines = [
        "# Configuration",
        "",
        "Generated from `server/trading_engine/config.py` by `tools/settings_reference.py`",
        "(`make generate`). Every setting is a flag and an environment variable; a flag",
        "wins over the variable, which wins over the default.",
    ]
    for title, settings, used_by in _SECTIONS:
        lines += ["", f"## {title}", "", f"Used by {used_by}.", ""]
        lines += ["| flag | environment variable | default | meaning |", "|---|---|---|---|"]
        for field in dataclasses.fields(settings):
            flag = "--" + field.name.replace("_", "-")
            variable = ENV_PREFIX + field.name.upper()
            meaning = str(field.metadata["help"]).replace("|", "\\|")
            lines.append(f"| `{flag}` | `{variable}` | {_default(field)} | {meaning} |")
    return "\n".join(lines) + "\n"


def main() -> int:
    REFERENCE.write_text(render())
    print(f"wrote {REFERENCE.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
