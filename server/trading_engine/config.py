"""Typed configuration, read from command-line flags and environment variables.

Every setting is declared once, as a dataclass field with a help text. The
flag is derived from the field name (`grpc_port` -> `--grpc-port`) and so is
the environment variable (`TRADING_ENGINE_GRPC_PORT`); a flag wins over the
environment, which wins over the default.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
from collections.abc import Callable, Collection, Mapping
from pathlib import Path
from typing import Any, TypeVar

ENV_PREFIX = "TRADING_ENGINE_"
DEVELOPMENT = "development"
PRODUCTION = "production"
# How instances agree on who decides a message (see bus/claims.py).
BUS_CLAIMS = ("local", "nats")
LOG_FORMATS = ("text", "json")
# Below this a signal could not fit one bus message, whatever the batch.
MIN_MESSAGE_BYTES = 16_384
TRACING_EXPORTERS = ("off", "console", "otlp")

_T = TypeVar("_T")


LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


def setting(default: Any, description: str, choices: Collection[str] = ()) -> Any:
    """Declare a setting with its default and the text `--help` shows for it; a setting with
    `choices` takes one of them, in any case."""
    return dataclasses.field(
        default=default, metadata={"help": description, "choices": tuple(choices)}
    )


@dataclasses.dataclass(frozen=True, slots=True)
class EngineSettings:
    """Settings of the engine process (`trading-engine serve`)."""

    grpc_host: str = setting("127.0.0.1", "interface the gRPC server listens on")
    grpc_port: int = setting(50051, "gRPC port; 0 picks a free port")
    shutdown_grace_seconds: float = setting(
        10.0, "seconds in-flight calls get to finish after SIGTERM before they are cancelled"
    )
    log_level: str = setting(
        "INFO", "logging level of the engine's own lines: DEBUG, INFO, WARNING or ERROR", LOG_LEVELS
    )
    log_library_level: str = setting(
        "WARNING",
        "logging level of the libraries' lines (aiokafka, nats, grpc, asyncpg): DEBUG, INFO, "
        "WARNING or ERROR",
        LOG_LEVELS,
    )
    log_format: str = setting(
        "text", "text (for people) or json (one object per line, with tenant and ids)", LOG_FORMATS
    )
    max_batch_size: int = setting(
        500, "predictions decided per batch; the rest of a larger batch are answered INVALID"
    )
    environment: str = setting(
        "development",
        "development or production; production refuses development tokens and needs a "
        "configured key",
        (DEVELOPMENT, PRODUCTION),
    )
    data_dir: str = setting(
        "var", "folder for the embedded database and the development token secret"
    )
    auth_issuer: str = setting("tradeflow", "the `iss` every token must carry")
    auth_audience: str = setting("trading-engine", "the `aud` every token must carry")
    auth_hs256_secret_file: str = setting(
        "", "file holding the HS256 shared secret (at least 32 bytes)"
    )
    auth_public_key_file: str = setting(
        "", "PEM public key for RS256 (RSA, 2048 bits or more) or ES256 (P-256) tokens"
    )
    auth_jwks_file: str = setting("", "JWKS file of RS256/ES256 public keys, chosen by `kid`")
    auth_leeway_seconds: float = setting(30.0, "clock skew tolerated when checking `exp` and `nbf`")
    store_url: str = setting(
        "",
        "sqlite:///path/to/file.db or postgresql://user@host/db; empty: SQLite "
        "trading-engine.db in the data directory",
    )
    strategy_poll_seconds: float = setting(
        0.5, "how often strategy changes made by other engine instances are picked up"
    )
    history_flush_seconds: float = setting(
        0.2,
        "how often decided signals are written to history; a crash loses at most this much",
    )
    history_keep_predictions: bool = setting(
        True,
        "keep each prediction batch with its signals, so ExplainSignal shows the prediction; "
        "off, history writes about a tenth of the bytes less and a busy engine keeps more CPU",
    )
    history_retention_days: float = setting(
        90.0, "signal history older than this is deleted (checked hourly)"
    )
    bus_nats_url: str = setting(
        "", "NATS server for predictions in and signals out, e.g. nats://127.0.0.1:4222; empty: off"
    )
    bus_kafka_bootstrap: str = setting(
        "", "Kafka bootstrap servers, e.g. 127.0.0.1:9092; empty: off"
    )
    bus_kafka_idempotence: bool = setting(
        True, "idempotent Kafka production; switch off for brokers without it (Tansu)"
    )
    bus_kafka_request_timeout_ms: int = setting(
        5000, "how long a Kafka send may wait before its output goes to the outbox"
    )
    bus_kafka_session_timeout_ms: int = setting(
        10_000,
        "a consumer silent this long leaves the group and its partitions move to another "
        "instance; joining the group takes up to half of it",
    )
    bus_kafka_max_message_bytes: int = setting(
        1_000_000,
        "the largest Kafka message the engine sends, headers and key included; keep it at or "
        "below the broker's message.max.bytes. Signal batches larger than this (or than "
        "NATS's max_payload) are sent in parts",
    )
    bus_group: str = setting(
        "trading-engine", "NATS queue group and Kafka consumer group the instances share"
    )
    bus_claims: str = setting(
        "local",
        "local (one instance) or nats: instances claim each message in a NATS key-value "
        "bucket, so a batch reaching two instances on two transports is decided once",
        BUS_CLAIMS,
    )
    bus_dedupe_window: int = setting(
        200_000, "message ids remembered to recognise a batch's second copy"
    )
    risk_service_address: str = setting(
        "",
        "host:port of the RiskManagementService that assesses each actionable signal; "
        "empty: off, signals carry RISK_STATUS_NOT_ASSESSED",
    )
    risk_deadline_ms: float = setting(
        50.0, "how long one assessment call (one per signal batch) may take before it fails"
    )
    risk_breaker_failures: int = setting(
        5, "failed assessment calls in a row that open the circuit breaker"
    )
    risk_breaker_reset_seconds: float = setting(
        10.0, "how long the breaker stays open before one trial call is let through"
    )
    tracing_exporter: str = setting(
        "off",
        "off, console (spans printed) or otlp (to --tracing-otlp-endpoint)",
        TRACING_EXPORTERS,
    )
    tracing_otlp_endpoint: str = setting(
        "http://127.0.0.1:4317", "OTLP gRPC endpoint spans are exported to"
    )
    metrics_address: str = setting(
        "", "host:port of the Prometheus /metrics endpoint (port 0: any free port); empty: off"
    )
    adaptive_min_closed_signals: int = setting(
        20, "closed signals since the last adaptive adjustment before the next may be made"
    )
    adaptive_cooldown_minutes: float = setting(
        60.0, "shortest time between two adaptive adjustments of one user's strategy"
    )

    def __post_init__(self) -> None:
        for field in dataclasses.fields(self):
            choices = field.metadata["choices"]
            if choices and getattr(self, field.name) not in choices:
                raise ValueError(
                    f"{field.name} must be one of {choices}, not {getattr(self, field.name)!r}"
                )
        if self.bus_claims == "nats" and not self.bus_nats_url:
            raise ValueError("bus_claims nats claims messages in NATS: set bus_nats_url too")
        if self.bus_kafka_max_message_bytes < MIN_MESSAGE_BYTES:
            raise ValueError(
                f"bus_kafka_max_message_bytes must be at least {MIN_MESSAGE_BYTES}, "
                f"not {self.bus_kafka_max_message_bytes}"
            )
        if self.risk_deadline_ms <= 0:
            raise ValueError(f"risk_deadline_ms must be positive, not {self.risk_deadline_ms}")
        if self.risk_breaker_failures < 1:
            raise ValueError(
                f"risk_breaker_failures must be at least 1, not {self.risk_breaker_failures}"
            )
        if self.metrics_address:
            host, _, port = self.metrics_address.rpartition(":")
            if not host or not port.isdigit():
                raise ValueError(
                    f"metrics_address must be host:port, e.g. 127.0.0.1:9464, "
                    f"not {self.metrics_address!r}"
                )
        if self.adaptive_min_closed_signals < 1 or self.adaptive_cooldown_minutes < 0:
            raise ValueError(
                "adaptive_min_closed_signals must be at least 1 and adaptive_cooldown_minutes "
                "at least 0"
            )
        if self.risk_breaker_reset_seconds <= 0:
            raise ValueError(
                "risk_breaker_reset_seconds must be positive, "
                f"not {self.risk_breaker_reset_seconds}"
            )

    @property
    def grpc_address(self) -> str:
        return f"{self.grpc_host}:{self.grpc_port}"

    @property
    def production(self) -> bool:
        return self.environment == PRODUCTION

    @property
    def resolved_store_url(self) -> str:
        return self.store_url or f"sqlite:///{Path(self.data_dir) / 'trading-engine.db'}"


@dataclasses.dataclass(frozen=True, slots=True)
class GatewaySettings:
    """Settings of the Envoy REST gateway (`trading-engine gateway`)."""

    http_host: str = setting("127.0.0.1", "interface the REST gateway listens on")
    http_port: int = setting(8080, "REST gateway port")
    envoy_admin_host: str = setting(
        "127.0.0.1", "interface of Envoy's admin port (it can stop Envoy: keep it private)"
    )
    envoy_admin_port: int = setting(9901, "Envoy admin port (stats, readiness at /ready)")
    upstream_host: str = setting("127.0.0.1", "host of the engine's gRPC server")
    upstream_port: int = setting(50051, "port of the engine's gRPC server")
    envoy_dir: Path = setting(
        Path(__file__).resolve().parents[2] / "envoy",
        "folder holding envoy.yaml and the buf-built descriptor set",
    )


@dataclasses.dataclass(frozen=True, slots=True)
class DevStackSettings:
    """What `trading-engine dev` runs around the engine; a port of 0 is a free one."""

    nats_port: int = setting(0, "port of the private nats-server (not started with --bus-nats-url)")
    kafka_port: int = setting(
        0, "port of the private Kafka-protocol broker (not started with --bus-kafka-bootstrap)"
    )
    risk_port: int = setting(
        0, "port of the reference risk service (not started with --risk-service-address)"
    )
    metrics_port: int = setting(0, "port of /metrics (unless --metrics-address names one)")
    demo: bool = setting(False, "publish a synthetic ML feed for 10 currency pairs")
    demo_rate: float = setting(20.0, "predictions per second the demo feed publishes")
    demo_hold_seconds: float = setting(
        10.0,
        "the demo broker closes a position still open after this long at the market price "
        "(stops and targets close it sooner)",
    )

    def __post_init__(self) -> None:
        if self.demo_rate <= 0:
            raise ValueError(f"demo_rate must be positive, not {self.demo_rate}")
        if self.demo_hold_seconds <= 0:
            raise ValueError(f"demo_hold_seconds must be positive, not {self.demo_hold_seconds}")


def add_arguments(
    parser: argparse.ArgumentParser | argparse._ArgumentGroup,
    settings_type: type[Any],
    exclude: Collection[str] = (),
    shown: Collection[str] | None = None,
) -> None:
    """Add one flag per field of a settings dataclass, except the excluded ones; with `shown`,
    `--help` lists only those (the others still work)."""
    for field in dataclasses.fields(settings_type):
        if field.name in exclude:
            continue
        flag = "--" + field.name.replace("_", "-")
        env = ENV_PREFIX + field.name.upper()
        choices = field.metadata["choices"]
        parser.add_argument(
            flag,
            dest=field.name,
            type=_field_type(field),
            choices=choices or None,
            default=None,
            metavar=field.name.upper(),
            help=f"{field.metadata['help']} (env {env}, default {field.default})"
            if shown is None or field.name in shown
            else argparse.SUPPRESS,
        )


def from_arguments(
    settings_type: type[_T], namespace: argparse.Namespace, environ: Mapping[str, str] | None = None
) -> _T:
    """Build settings from parsed flags, falling back to the environment, then the defaults."""
    environ = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    for field in dataclasses.fields(settings_type):  # type: ignore[arg-type]
        flag_value = getattr(namespace, field.name, None)
        env_value = environ.get(ENV_PREFIX + field.name.upper())
        if flag_value is not None:
            values[field.name] = flag_value
        elif env_value is not None:
            try:
                values[field.name] = _field_type(field)(env_value)
            except ValueError as error:
                raise SystemExit(
                    f"{ENV_PREFIX}{field.name.upper()}={env_value!r} is not a valid "
                    f"{field.type}: {error}"
                ) from error
    try:
        return settings_type(**values)
    except ValueError as error:
        raise SystemExit(f"trading-engine: {error}") from error


def named_settings(
    settings_type: type[Any],
    namespace: argparse.Namespace,
    environ: Mapping[str, str] | None = None,
) -> frozenset[str]:
    """The settings the user named, by flag or environment variable, rather than left at
    their defaults."""
    environ = os.environ if environ is None else environ
    return frozenset(
        field.name
        for field in dataclasses.fields(settings_type)
        if getattr(namespace, field.name, None) is not None
        or ENV_PREFIX + field.name.upper() in environ
    )


def _field_type(field: dataclasses.Field[Any]) -> Callable[[str], Any]:
    choices: tuple[str, ...] = field.metadata["choices"]
    if choices:
        return any_case(choices)
    # Annotations are strings under `from __future__ import annotations`.
    kinds: dict[str, Callable[[str], Any]] = {
        "str": str,
        "int": int,
        "float": float,
        "Path": Path,
        "bool": boolean,
    }
    return kinds[str(field.type)]


def any_case(choices: Collection[str]) -> Callable[[str], str]:
    """An argument type taking any case of the choices and giving the choice's spelling; other
    text passes unchanged, for the choices check to refuse it by name."""
    by_folded = {choice.casefold(): choice for choice in choices}
    return lambda text: by_folded.get(text.strip().casefold(), text)


def boolean(text: str) -> bool:
    """A yes/no setting as people write it."""
    lowered = text.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"{text!r} is not one of true/false, yes/no, on/off, 1/0")
