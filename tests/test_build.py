"""The decision hot path runs compiled, and from its current sources.

An edited .py next to an older compiled module would be silently ignored:
Python imports the compiled one first. `make build` recompiles.
"""

from __future__ import annotations

import ast
import importlib
import importlib.machinery

import pytest

from tests.support import ROOT


def _compiled_sources() -> list[str]:
    tree = ast.parse((ROOT / "setup.py").read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "HOT_PATH":
            return [ast.literal_eval(element) for element in node.value.elts]  # type: ignore[attr-defined]
    raise AssertionError("setup.py defines no HOT_PATH")


SOURCES = [*_compiled_sources(), "server/trading_engine/wire/_fastwire.c"]


@pytest.mark.parametrize("source", SOURCES)
def test_hot_path_module_is_compiled_from_its_current_source(source: str) -> None:
    dotted = source.removeprefix("server/").rsplit(".", 1)[0].replace("/", ".")
    module = importlib.import_module(dotted)
    assert isinstance(module.__loader__, importlib.machinery.ExtensionFileLoader), (
        f"{dotted} runs as Python: run `make build`"
    )
    compiled = (ROOT / source).with_suffix(importlib.machinery.EXTENSION_SUFFIXES[0])
    assert compiled.stat().st_mtime >= (ROOT / source).stat().st_mtime, (
        f"{compiled.name} is older than {source}: run `make build`"
    )
