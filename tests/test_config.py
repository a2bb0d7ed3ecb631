"""Settings come from flags, then the environment, then the defaults."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from trading_engine.config import EngineSettings, GatewaySettings, add_arguments, from_arguments


def _parse(settings_type: type[object], argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_arguments(parser, settings_type)
    return parser.parse_args(argv)


def test_defaults_apply_without_flags_or_environment() -> None:
    settings = from_arguments(EngineSettings, _parse(EngineSettings, []), environ={})
    assert settings == EngineSettings()
    assert settings.grpc_address == "127.0.0.1:50051"


def test_environment_overrides_default_and_flag_overrides_environment() -> None:
    environ = {"TRADING_ENGINE_GRPC_PORT": "6000", "TRADING_ENGINE_SHUTDOWN_GRACE_SECONDS": "2.5"}
    from_env = from_arguments(EngineSettings, _parse(EngineSettings, []), environ=environ)
    assert (from_env.grpc_port, from_env.shutdown_grace_seconds) == (6000, 2.5)
    from_flag = from_arguments(
        EngineSettings, _parse(EngineSettings, ["--grpc-port", "7000"]), environ=environ
    )
    assert (from_flag.grpc_port, from_flag.shutdown_grace_seconds) == (7000, 2.5)


def test_paths_are_typed() -> None:
    settings = from_arguments(
        GatewaySettings, _parse(GatewaySettings, ["--envoy-dir", "/tmp/x"]), environ={}
    )
    assert settings.envoy_dir == Path("/tmp/x")


def test_yes_no_settings_read_the_words_people_write() -> None:
    environ = {"TRADING_ENGINE_BUS_KAFKA_IDEMPOTENCE": "off"}
    assert not from_arguments(
        EngineSettings, _parse(EngineSettings, []), environ
    ).bus_kafka_idempotence
    flagged = _parse(EngineSettings, ["--bus-kafka-idempotence", "Yes"])
    assert from_arguments(EngineSettings, flagged, environ).bus_kafka_idempotence


def test_a_misspelt_setting_says_what_it_accepts() -> None:
    with pytest.raises(SystemExit, match="true/false, yes/no, on/off, 1/0"):
        from_arguments(
            EngineSettings,
            _parse(EngineSettings, []),
            {"TRADING_ENGINE_BUS_KAFKA_IDEMPOTENCE": "si"},
        )
    with pytest.raises(SystemExit, match=r"bus_claims must be one of \('local', 'nats'\)"):
        from_arguments(
            EngineSettings, _parse(EngineSettings, []), {"TRADING_ENGINE_BUS_CLAIMS": "redis"}
        )
    with pytest.raises(SystemExit, match="bus_claims nats claims messages in NATS"):
        from_arguments(EngineSettings, _parse(EngineSettings, ["--bus-claims", "nats"]), {})


def test_a_setting_with_choices_takes_any_case_and_refuses_others_naming_them(
    capsys: pytest.CaptureFixture[str],
) -> None:
    flagged = _parse(EngineSettings, ["--bus-claims", "NATS", "--bus-nats-url", "nats://n:4222"])
    assert from_arguments(EngineSettings, flagged, {}).bus_claims == "nats"
    with pytest.raises(SystemExit):
        _parse(EngineSettings, ["--bus-claims", "redis"])
    assert "argument --bus-claims: invalid choice: 'redis' (choose from" in capsys.readouterr().err
