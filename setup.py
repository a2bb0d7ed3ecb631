"""Builds the decision hot path; everything else is in pyproject.toml.

- The rules, the pipeline and the codec wrappers are plain, strictly typed
  Python that mypyc compiles to C at install time (decision 8).
- The protobuf codec for predictions in and signals out is a small C
  extension, _fastwire.c (decision 7).
Both need a C compiler; the machine's gcc serves.
"""

from __future__ import annotations

from setuptools import Extension, setup

HOT_PATH = [
    "server/trading_engine/core/decide.py",
    "server/trading_engine/core/decision.py",
    "server/trading_engine/core/entry.py",
    "server/trading_engine/core/inputs.py",
    "server/trading_engine/core/instruments.py",
    "server/trading_engine/core/market.py",
    "server/trading_engine/core/memory.py",
    "server/trading_engine/core/protections.py",
    "server/trading_engine/core/risk.py",
    "server/trading_engine/core/signal_rules.py",
    "server/trading_engine/core/strategy.py",
    "server/trading_engine/core/strength.py",
    "server/trading_engine/core/validation.py",
    "server/trading_engine/wire/predictions.py",
    "server/trading_engine/wire/protowire.py",
    "server/trading_engine/wire/signals.py",
    "server/trading_engine/engine.py",
    "server/trading_engine/stats.py",
]

CODEC = Extension(
    "trading_engine.wire._fastwire",
    sources=["server/trading_engine/wire/_fastwire.c"],
    extra_compile_args=["-O3", "-Wall", "-Werror", "-std=c11"],
)

from mypyc.build import mypycify  # noqa: E402  # a build requirement, see pyproject.toml

setup(ext_modules=[*mypycify(HOT_PATH, opt_level="3"), CODEC])
