"""The references in docs/ (strategy parameters, configuration, instruments) are rendered from
today's code."""

from __future__ import annotations

from tools import instrument_reference, settings_reference, strategy_reference
from tradeflow.trading.v1 import strategy_pb2


def test_the_committed_reference_is_current() -> None:
    rendered = strategy_reference.render(strategy_reference.PROTO.read_text())
    assert strategy_reference.REFERENCE.read_text() == rendered, (
        "docs/strategy-parameters.md is stale: run `make generate` and commit the result"
    )


def test_every_field_is_documented_with_its_default_or_range() -> None:
    documented = strategy_reference.fields(strategy_reference.PROTO.read_text())
    assert [name for name, _, _ in documented] == [
        field.name for field in strategy_pb2.StrategyConfig.DESCRIPTOR.fields
    ]
    for name, _, text in documented:
        assert text, f"{name} has no comment in the contract"


def test_the_committed_configuration_reference_is_current() -> None:
    assert settings_reference.REFERENCE.read_text() == settings_reference.render(), (
        "docs/configuration.md is stale: run `make generate` and commit the result"
    )


def test_the_committed_instrument_reference_is_current() -> None:
    assert instrument_reference.REFERENCE.read_text() == instrument_reference.render(), (
        "docs/instruments.md is stale: run `make generate` and commit the result"
    )
