"""The `trading-engine` command."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import datetime
import json
import math
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import grpc
from google.protobuf import json_format

from tradeflow.common.v1 import risk_level_pb2, tier_pb2
from tradeflow.trading.v1 import signal_pb2
from tradeflow.trading.v1 import trading_engine_service_pb2 as service_pb2
from tradeflow.trading.v1 import trading_engine_service_pb2_grpc as service_grpc
from trading_engine import __version__, logs
from trading_engine.app import Application, run_until_signalled
from trading_engine.auth.configured import signing_secret, token_policy
from trading_engine.auth.tokens import KeyConfigurationError, mint_development_token, parse_tier
from trading_engine.bus.names import KAFKA_PREDICTIONS
from trading_engine.commands import database, strategy, trading_state
from trading_engine.commands.calls import (
    add_engine_call_arguments,
    bearer_token,
    call_failed,
    engine_client,
)
from trading_engine.commands.parsing import CommandParser, Commands, add_deprecated_alias
from trading_engine.config import (
    ENV_PREFIX,
    DevStackSettings,
    EngineSettings,
    GatewaySettings,
    add_arguments,
    any_case,
    from_arguments,
    named_settings,
)
from trading_engine.core import instruments
from trading_engine.devstack import recordings
from trading_engine.devstack.banner import banner, write_session_files
from trading_engine.devstack.ports import gateway_ports, plan_ports
from trading_engine.devstack.stack import DevStack
from trading_engine.engine import EngineLimits
from trading_engine.gateway.envoy import EnvoyGateway, render_config
from trading_engine.replay.backtest import (
    Backtest,
    BacktestPlan,
    backtest_batches,
    backtest_stored,
    report_details,
    report_sides,
)
from trading_engine.replay.report import ReportSide, figures_table, html_report
from trading_engine.replay.runner import ReplayProgress, stored_session
from trading_engine.replay.simulate import BarTime, Costs, CostTable
from trading_engine.replay.sources import (
    RecordingError,
    count_batches,
    from_file,
    from_history,
    from_kafka,
)
from trading_engine.replay.strategies import Candidate, CandidateError, ReplayStrategies
from trading_engine.replay.sweep import candidates, in_processes, parse_sweep
from trading_engine.risk.reference import RiskBehaviour, serve
from trading_engine.stores.urls import open_store, sqlite_file
from trading_engine.tenancy import Caller
from trading_engine.terminal import explanation, replay_view, signal_table
from trading_engine.terminal import progress as progress_line
from trading_engine_client import PredictionPublisher
from trading_engine_client.errors import BusError, TradingEngineError

_SERVE_EXAMPLES = """\
examples:
  trading-engine serve
  trading-engine serve --grpc-port 50052
  TRADING_ENGINE_GRPC_PORT=50052 trading-engine serve
"""

_GATEWAY_EXAMPLES = """\
examples:
  trading-engine gateway                       # REST on :8080 in front of gRPC on :50051
  trading-engine gateway --http-port 8081 --upstream-port 50052
  trading-engine gateway --print-config > /tmp/envoy.yaml
  envoy --mode validate -c /tmp/envoy.yaml
"""

_DEV_EXAMPLES = """\
examples:
  trading-engine dev --demo                    # everything, and predictions flowing
  trading-engine dev --demo --demo-rate 200
  trading-engine dev --grpc-port 50061 --http-port 8091 --envoy-admin-port 9911
  trading-engine dev --bus-nats-url nats://127.0.0.1:4222   # an external NATS instead
"""

_TOKEN_EXAMPLES = """\
examples:
  trading-engine token --user trader-1 --company acme --tier pro
  TOKEN=$(trading-engine token --user ops-1 --company acme --tier enterprise --role admin)
  grpcurl -plaintext -H "authorization: Bearer $TOKEN" 127.0.0.1:50051 \\
      tradeflow.trading.v1.TradingEngineService/GetStrategy
"""

_EXPLAIN_EXAMPLES = """\
examples:
  export TOKEN=$(trading-engine token --user trader-1 --company acme --tier pro)
  trading-engine explain 3f9c2a...            # the engine on 127.0.0.1:50051
  trading-engine explain 3f9c2a... --address 10.0.0.5:50051 --json
"""

_WATCH_EXAMPLES = """\
examples:
  export TOKEN=$(trading-engine token --user trader-1 --company acme --tier pro)
  trading-engine watch                          # the engine on 127.0.0.1:50051
  trading-engine watch --symbol EURUSD --symbol USDJPY --type BUY --type SELL
  trading-engine watch --all                    # HOLD, rejected and suppressed too, with why
"""

_PUBLISH_EXAMPLES = """\
examples:
  trading-engine publish batches.jsonl --bus-nats-url nats://127.0.0.1:4222
  trading-engine publish batches.jsonl --bus-kafka-bootstrap 127.0.0.1:9092 --restamp
  trading-engine publish batches.jsonl --bus-nats-url URL --bus-kafka-bootstrap SERVERS   # both

--nats-url and --kafka-bootstrap, the flags' former names, still work.
"""

_REPLAY_EXAMPLES = """\
examples:
  trading-engine replay session.jsonl                          # decide a recording again
  trading-engine replay session.jsonl --compare strict.json --report week.html
  echo '{"minConfidenceThreshold": 0.75}' > strict.json
  trading-engine replay --from-history --company acme --user trader-1 \\
      --since 2026-11-29 --until 2026-12-06 --compare strict.json   # last week at 0.75
  trading-engine replay session.binpb --prices bars.csv --json
  trading-engine replay session.jsonl --prices bars.csv --sweep minConfidenceThreshold=0.6:0.8:0.05

A recording is JSON lines (.jsonl: one MLPredictionBatch per line) or length-delimited
binary (.binpb), decided at each batch's produced_at. --from-history replays the batches
the engine kept, each at the instant and with the strategy version it was decided with,
and checks the result against the signals stored then. A strategy file is a
StrategyConfig in JSON holding only the fields to change.
"""

_RISK_SERVICE_EXAMPLES = """\
examples:
  trading-engine risk-service                  # judges signals on 127.0.0.1:50071
  trading-engine risk-service --port 0         # a free port, printed when listening
  trading-engine risk-service --latency-ms 300 --error-rate 0.2 --seed 7
  trading-engine risk-service --max-lots 1 --extreme-symbol XAUUSD --extreme-symbol XAGUSD
  trading-engine risk-service --level extreme  # every signal EXTREME: the engine holds
"""

_COMPLETION_EXAMPLES = """\
examples:
  eval "$(trading-engine completion bash)"      # in ~/.bashrc: commands and flags on Tab
  trading-engine completion zsh > ~/.zfunc/_trading-engine
  trading-engine completion fish > ~/.config/fish/completions/trading-engine.fish
"""

_TOP_EPILOG = """\
every day:
  trading-engine dev --demo                     the whole stack on loopback, signals flowing
  trading-engine watch                          your live signals
  trading-engine halt --user trader-1 --reason "desk closed"        (and resume)
  trading-engine strategy get | set | diff | history | reset
  trading-engine db status                      the store's migrations

`trading-engine COMMAND --help` explains a command; `completion` sets up Tab completion.
"""
_SHELLS = ("bash", "zsh", "fish")
# What `serve --help` and `dev --help` list; `--help-all` lists every setting.
_EVERYDAY_SETTINGS = frozenset(
    {
        "grpc_host",
        "grpc_port",
        "environment",
        "data_dir",
        "store_url",
        "log_level",
        "log_format",
        "auth_hs256_secret_file",
        "auth_public_key_file",
        "auth_jwks_file",
        "bus_nats_url",
        "bus_kafka_bootstrap",
        "risk_service_address",
        "metrics_address",
        "tracing_exporter",
        # The gateway's, in `dev` and `gateway`.
        "http_host",
        "http_port",
        "envoy_admin_port",
    }
)
# In `dev` the gateway's upstream is the engine started alongside it.
_DEV_DERIVED = ("upstream_host", "upstream_port")
# The engine settings `token` reads: where the secret is and what tokens must say.
_TOKEN_SETTINGS = (
    "environment",
    "data_dir",
    "auth_issuer",
    "auth_audience",
    "auth_hs256_secret_file",
)
# Who `dev` mints its example token for.
_DEV_CALLER = Caller("trader-1", "acme", tier_pb2.SUBSCRIPTION_TIER_PRO)
# And a company admin, for the daily jobs the banner shows (halt, resume).
_DEV_ADMIN = Caller("ops-1", "acme", tier_pb2.SUBSCRIPTION_TIER_ENTERPRISE, frozenset({"admin"}))
_DEV_TOKEN_LIFETIME_S = 12 * 3600
# `risk-service --level` names: RISK_LEVEL_VERY_HIGH is very_high.
_RISK_LEVELS = {
    name.removeprefix("RISK_LEVEL_").lower(): value
    for name, value in risk_level_pb2.RiskLevel.items()
    if value != risk_level_pb2.RISK_LEVEL_UNSPECIFIED
}


def main(argv: Sequence[str] | None = None) -> int:
    arguments = list(sys.argv[1:] if argv is None else argv)
    parser = _parser(full_help="--help-all" in arguments)
    if "_ARGCOMPLETE" in os.environ:
        # Asked by the shell for completions (`trading-engine completion` sets that up).
        import argcomplete  # noqa: PLC0415  # only then: it costs every other start 15 ms

        argcomplete.autocomplete(parser)
    args = parser.parse_args(arguments)
    if not hasattr(args, "run"):
        parser.print_help()
        return 0
    _configure_logging(args)
    try:
        status: int = args.run(args)
    except BrokenPipeError:
        # The reader went away (`watch | head`): nothing more to say, and nowhere to say it.
        # Before OSError, of which it is one.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except (OSError, TimeoutError, RuntimeError, KeyConfigurationError, BusError) as error:
        print(f"trading-engine: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return status


def _configure_logging(args: argparse.Namespace) -> None:
    """Logging as the command's settings say (flags, then TRADING_ENGINE_* variables)."""
    defaults = EngineSettings()
    level, library_level, log_format = (
        getattr(args, name, None)
        or os.environ.get(ENV_PREFIX + name.upper())
        or getattr(defaults, name)
        for name in ("log_level", "log_library_level", "log_format")
    )
    logs.configure(level, log_format, library_level)


def _parser(full_help: bool = False) -> argparse.ArgumentParser:
    """The command line; `full_help` lists every setting in `serve` and `dev` help."""
    parser = CommandParser(
        prog="trading-engine",
        description="Turns ML predictions into explained, risk-checked trading signals.",
        epilog=_TOP_EPILOG,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(title="commands", dest="command", metavar="COMMAND")
    shown = None if full_help else _EVERYDAY_SETTINGS

    serve = _command(commands, "serve", "run the engine's gRPC server", _SERVE_EXAMPLES)
    add_arguments(serve, EngineSettings, shown=shown)
    _help_all_argument(serve, full_help)
    serve.set_defaults(run=_serve)

    gateway = _command(
        commands,
        "gateway",
        "run the Envoy REST gateway in front of a running engine",
        _GATEWAY_EXAMPLES,
    )
    add_arguments(gateway, GatewaySettings)
    gateway.add_argument(
        "--print-config",
        action="store_true",
        help="print the rendered Envoy configuration and exit",
    )
    gateway.set_defaults(run=_gateway)

    dev = _command(
        commands,
        "dev",
        "run the engine and its REST gateway on loopback and print how to call them",
        _DEV_EXAMPLES,
    )
    add_arguments(dev.add_argument_group("engine"), EngineSettings, shown=shown)
    add_arguments(
        dev.add_argument_group("gateway"), GatewaySettings, exclude=_DEV_DERIVED, shown=shown
    )
    stack = dev.add_argument_group("stack")
    add_arguments(stack, DevStackSettings, exclude=("demo",))
    stack.add_argument(
        "--demo",
        action="store_true",
        help="publish a synthetic ML feed for 10 currency pairs, so signals flow at once",
    )
    _help_all_argument(dev, full_help)
    dev.set_defaults(run=_dev)

    token = _command(
        commands,
        "token",
        "print a development token (signed with the development secret; refused in production)",
        _TOKEN_EXAMPLES,
    )
    token.add_argument("--user", required=True, help="user id (the `sub` claim)")
    token.add_argument("--company", required=True, help="company id (the `company_id` claim)")
    token.add_argument("--tier", required=True, type=_tier_argument, help="FREE, PRO or ENTERPRISE")
    token.add_argument(
        "--role", action="append", default=[], help="a role, e.g. admin; may be repeated"
    )
    token.add_argument(
        "--lifetime-minutes", type=int, default=60, help="minutes until it expires (default 60)"
    )
    add_arguments(
        token,
        EngineSettings,
        exclude=[
            field.name
            for field in dataclasses.fields(EngineSettings)
            if field.name not in _TOKEN_SETTINGS
        ],
    )
    token.set_defaults(run=_token)

    _explain_command(commands)
    _watch_command(commands)
    trading_state.add_commands(commands)
    strategy.add_command(commands)
    database.add_command(commands)
    _publish_command(commands)
    _replay_command(commands)

    risk = _command(
        commands,
        "risk-service",
        "run the reference risk-management service, for development and tests",
        _RISK_SERVICE_EXAMPLES,
    )
    risk.add_argument(
        "--host", default="127.0.0.1", help="interface to listen on (default %(default)s)"
    )
    risk.add_argument(
        "--port", type=int, default=50071, help="port; 0 picks a free port (default %(default)s)"
    )
    risk.add_argument(
        "--latency-ms",
        type=_at_least_zero,
        default=0.0,
        help="milliseconds to wait before answering, >= 0 (default %(default)s)",
    )
    risk.add_argument(
        "--error-rate",
        type=_fraction,
        default=0.0,
        help="fraction of calls failed with UNAVAILABLE, in [0, 1] (default %(default)s)",
    )
    risk.add_argument(
        "--seed",
        type=int,
        default=0,
        help="seed of the draws that pick the failing calls (default %(default)s)",
    )
    risk.add_argument(
        "--max-lots",
        type=_above_zero,
        default=2.0,
        help="largest size accepted per signal in lots, > 0; up to half is LOW, up to all "
        "MEDIUM, above HIGH with this size recommended (default %(default)s)",
    )
    risk.add_argument(
        "--max-stop-loss-pips",
        type=_above_zero,
        default=50.0,
        help="widest stop loss accepted in pips, > 0; a wider one gets a tighter stop "
        "recommended and at least HIGH (default %(default)s)",
    )
    risk.add_argument(
        "--extreme-symbol",
        action="append",
        default=[],
        metavar="SYMBOL",
        help="a symbol always judged EXTREME, e.g. XAUUSD; may be repeated",
    )
    risk.add_argument(
        "--level",
        type=any_case(_RISK_LEVELS),
        choices=sorted(_RISK_LEVELS, key=_RISK_LEVELS.__getitem__),
        help="give every signal this level instead of the rules' (size and stop "
        "recommendations still apply)",
    )
    risk.set_defaults(run=_risk_service)

    completion = _command(
        commands,
        "completion",
        "print the shell code that completes trading-engine's commands and flags",
        _COMPLETION_EXAMPLES,
    )
    completion.add_argument(
        "shell", type=any_case(_SHELLS), choices=_SHELLS, help=", ".join(_SHELLS)
    )
    completion.set_defaults(run=_completion)
    return parser


def _help_all_argument(parser: argparse.ArgumentParser, full_help: bool) -> None:
    parser.add_argument(
        "--help-all",
        action="help",
        help="show every setting, not only the everyday ones"
        if not full_help
        else "show this help",
    )


def _explain_command(commands: Commands) -> None:
    explain = _command(
        commands,
        "explain",
        "show why a signal was decided as it was: prediction, rules, risk and executions",
        _EXPLAIN_EXAMPLES,
    )
    explain.add_argument("signal_id", metavar="SIGNAL_ID", help="the signal's id")
    add_engine_call_arguments(explain)
    explain.add_argument("--json", action="store_true", help="print the response as JSON")
    explain.set_defaults(run=_explain)


def _watch_command(commands: Commands) -> None:
    watch = _command(
        commands,
        "watch",
        "show your live signals as a table as the engine decides them",
        _WATCH_EXAMPLES,
    )
    add_engine_call_arguments(watch)
    watch.add_argument(
        "--symbol",
        action="append",
        default=[],
        type=_symbol_argument,
        help="only this symbol, in any case; may be repeated",
    )
    watch.add_argument(
        "--type",
        action="append",
        default=[],
        type=_signal_type_argument,
        help="only this signal type (BUY, SELL, WEAK_BUY, WEAK_SELL, HOLD); may be repeated",
    )
    watch.add_argument(
        "--all", action="store_true", help="also HOLD, rejected, suppressed and invalid decisions"
    )
    watch.set_defaults(run=_watch)


def _publish_command(commands: Commands) -> None:
    publish = _command(
        commands,
        "publish",
        "publish recorded prediction batches (one JSON object per line) on the bus",
        _PUBLISH_EXAMPLES,
    )
    publish.add_argument("file", type=Path, metavar="FILE", help="MLPredictionBatch JSON lines")
    # Named as `serve` and `dev` name the same brokers; the old names still work.
    publish.add_argument(
        "--bus-nats-url", default="", help="NATS server, e.g. nats://127.0.0.1:4222"
    )
    publish.add_argument(
        "--bus-kafka-bootstrap", default="", help="Kafka bootstrap servers, e.g. 127.0.0.1:9092"
    )
    add_deprecated_alias(publish, "--nats-url", "--bus-nats-url", "bus_nats_url")
    add_deprecated_alias(
        publish, "--kafka-bootstrap", "--bus-kafka-bootstrap", "bus_kafka_bootstrap"
    )
    publish.add_argument(
        "--restamp",
        action="store_true",
        help="stamp each batch and its predictions with the time it is sent (old recordings "
        "would otherwise be refused as stale)",
    )
    publish.set_defaults(run=_publish)


def _replay_command(commands: Commands) -> None:
    replay = _command(
        commands,
        "replay",
        "run recorded predictions through the engine again, compare strategies, backtest",
        _REPLAY_EXAMPLES,
    )
    replay.add_argument(
        "recording", nargs="?", type=Path, metavar="RECORDING", help="a .jsonl or .binpb file"
    )
    replay.add_argument(
        "--from-history", action="store_true", help="replay the batches the store kept"
    )
    replay.add_argument(
        "--from-kafka",
        metavar="BOOTSTRAP",
        default="",
        help="replay the prediction envelopes on Kafka (--kafka-topic) produced in the range",
    )
    replay.add_argument(
        "--kafka-topic", default=KAFKA_PREDICTIONS, help="with --from-kafka (default %(default)s)"
    )
    replay.add_argument("--company", default="", help="with --from-history: the company")
    replay.add_argument(
        "--since", type=_instant_argument, help="from history or Kafka: from (default: 7 days ago)"
    )
    replay.add_argument(
        "--until", type=_instant_argument, help="from history or Kafka: until (default: now)"
    )
    replay.add_argument(
        "--user", action="append", default=[], help="only this user's signals; may be repeated"
    )
    replay.add_argument("--strategy", type=Path, help="a candidate strategy (StrategyConfig JSON)")
    replay.add_argument("--compare", type=Path, help="a second strategy to compare with")
    replay.add_argument(
        "--prices", type=Path, help="CSV bars (symbol,time,open,high,low,close; open optional) "
        "to simulate against; default: the prices the predictions carry"
    )  # fmt: skip
    replay.add_argument(
        "--bar-time", choices=[way.value for way in BarTime], default=BarTime.CLOSE.value,
        help="with --prices: whether a bar's time is its open (start, as most data vendors "
        "label bars) or its close (end) (default %(default)s)",
    )  # fmt: skip
    replay.add_argument(
        "--equity", type=_above_zero, help="starting equity (default: the first batch's)"
    )
    replay.add_argument(
        "--slippage-pips", type=_symbol_cost, action="append", default=[],
        metavar="[SYMBOL=]PIPS", help="pips by which simulated market fills and stops are worse "
        "(default 0); SYMBOL= for one instrument; may be repeated",
    )  # fmt: skip
    replay.add_argument(
        "--commission", type=_symbol_cost, action="append", default=[],
        metavar="[SYMBOL=]AMOUNT", help="account currency per lot for a simulated round trip, "
        "charged on the close (default 0); SYMBOL= for one instrument; may be repeated",
    )  # fmt: skip
    replay.add_argument("--report", type=Path, help="write an HTML report with equity curves")
    replay.add_argument(
        "--sweep", metavar="FIELD=FROM:TO:STEP", help="backtest one candidate per value of a "
        "strategy parameter (over --strategy's fields, if given), one process per value, and "
        "show the figures side by side, e.g. minConfidenceThreshold=0.6:0.8:0.05",
    )  # fmt: skip
    replay.add_argument(
        "--list", type=int, default=20, help="differences listed per kind (default %(default)s)"
    )
    replay.add_argument("--json", action="store_true", help="print the result as JSON")
    replay.add_argument(
        "--max-batch-size", type=int, default=500, help="as the engine's (default %(default)s)"
    )
    replay.add_argument("--data-dir", default="var", help="with --from-history: the engine's")
    replay.add_argument(
        "--store-url", default="", help="with --from-history: the engine's store URL"
    )
    replay.set_defaults(run=_replay)


def _command(
    commands: Commands,
    name: str,
    summary: str,
    examples: str,
) -> argparse.ArgumentParser:
    return commands.add_parser(name, help=summary, description=summary, epilog=examples)


def _serve(args: argparse.Namespace) -> int:
    application = Application(from_arguments(EngineSettings, args))
    asyncio.run(run_until_signalled(application.start, application.stop))
    return 0


def _gateway(args: argparse.Namespace) -> int:
    settings = from_arguments(GatewaySettings, args)
    if args.print_config:
        print(render_config(settings), end="")
        return 0
    return asyncio.run(_run_gateway(settings, named_settings(GatewaySettings, args)))


async def _run_gateway(settings: GatewaySettings, named: frozenset[str]) -> int:
    plan = plan_ports(gateway_ports(settings, named))
    for moved in plan.moved:
        print(f"trading-engine gateway: {moved}", file=sys.stderr)
    gateway = EnvoyGateway(
        dataclasses.replace(
            settings,
            http_port=plan.numbers["--http-port"],
            envoy_admin_port=plan.numbers["--envoy-admin-port"],
        )
    )
    await gateway.start()
    print(
        f"REST gateway on {gateway.base_url} "
        f"-> gRPC {settings.upstream_host}:{settings.upstream_port}"
    )
    try:
        return await gateway.wait()
    finally:
        await gateway.stop()


def _explain(args: argparse.Namespace) -> int:
    token = bearer_token(args)
    if token is None:
        return 2
    with engine_client(args, token) as client:
        try:
            response = client.explain_signal(
                service_pb2.ExplainSignalRequest(signal_id=args.signal_id)
            )
        except TradingEngineError as error:
            return call_failed(args, error)
    print(
        json_format.MessageToJson(response) if args.json else explanation.render(response), end=""
    )
    return 0


def _watch(args: argparse.Namespace) -> int:
    token = bearer_token(args)
    if token is None:
        return 2
    metadata = (("authorization", f"Bearer {token}"),)
    signal_filter = service_pb2.SignalFilter(
        symbols=args.symbol, signal_types=args.type, include_non_actionable=args.all
    )
    with grpc.insecure_channel(args.address) as channel:
        stub = service_grpc.TradingEngineServiceStub(channel)
        stream = stub.StreamSignals(
            iter([service_pb2.StreamSignalsRequest(filter=signal_filter)]), metadata=metadata
        )
        try:
            for event in stream:
                if event.HasField("filter_applied"):
                    print(signal_table.header(), flush=True)
                else:
                    print(signal_table.row(event.signal), flush=True)
        except grpc.RpcError as error:
            print(f"trading-engine watch: {error.code().name}: {error.details()}", file=sys.stderr)
            return 1
    return 0


def _publish(args: argparse.Namespace) -> int:
    if not (args.bus_nats_url or args.bus_kafka_bootstrap):
        print(
            "trading-engine publish: name where to publish: --bus-nats-url, "
            "--bus-kafka-bootstrap or both (`trading-engine dev` prints its addresses)",
            file=sys.stderr,
        )
        return 2
    if not args.file.is_file():
        print(f"trading-engine publish: {args.file} is not a file", file=sys.stderr)
        return 2
    summary = asyncio.run(_publish_file(args))
    progress_line.finish()
    print(
        f"published {summary.batches} batches ({summary.predictions} predictions) "
        f"in {summary.seconds:.1f} s; {len(summary.skipped)} lines skipped",
        file=sys.stderr,
    )
    for number, why in summary.skipped:
        print(f"  line {number}: {why}", file=sys.stderr)
    return 1 if summary.skipped else 0


async def _publish_file(args: argparse.Namespace) -> recordings.PublishSummary:
    def progress(summary: recordings.PublishSummary) -> None:
        rate = summary.batches / summary.seconds if summary.seconds else 0.0
        done = summary.batches + len(summary.skipped)
        progress_line.show(done, summary.lines, f"lines, {rate:.0f} batches/s")

    async with PredictionPublisher(
        nats_url=args.bus_nats_url or None,
        kafka_bootstrap=args.bus_kafka_bootstrap or None,
        service_source="trading-engine-publish",
    ) as publisher:
        return await recordings.publish_file(
            args.file, publisher, stamp_now=args.restamp, progress=progress
        )


def _signal_type_argument(text: str) -> int:
    known = signal_pb2.SignalType.DESCRIPTOR.values_by_name.get(
        "SIGNAL_TYPE_" + text.strip().upper()
    )
    if known is None or known.number == signal_pb2.SIGNAL_TYPE_UNSPECIFIED:
        raise argparse.ArgumentTypeError(f"{text!r} is not BUY, SELL, WEAK_BUY, WEAK_SELL or HOLD")
    return int(known.number)


def _symbol_argument(text: str) -> str:
    # Symbols are upper case everywhere; `eurusd` can only mean EURUSD.
    return text.strip().upper()


def _tier_argument(text: str) -> int:
    try:
        return parse_tier(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def _token(args: argparse.Namespace) -> int:
    settings = from_arguments(EngineSettings, args)
    caller = Caller(args.user, args.company, args.tier, frozenset(args.role))
    lifetime_s = args.lifetime_minutes * 60
    print(_development_token(settings, caller, lifetime_s))
    print(
        f"development token for user {caller.user_id!r} of company {caller.company_id!r} "
        f"({caller.tier_name}, roles: {', '.join(sorted(caller.roles)) or 'none'}), "
        f"valid for {args.lifetime_minutes} minutes; engines in production refuse it",
        file=sys.stderr,
    )
    return 0


def _development_token(settings: EngineSettings, caller: Caller, lifetime_s: int) -> str:
    return mint_development_token(
        signing_secret(settings), token_policy(settings), caller, int(time.time()), lifetime_s
    )


def _completion(args: argparse.Namespace) -> int:
    import argcomplete  # noqa: PLC0415  # only here and when completing: it costs a start 15 ms

    print(argcomplete.shellcode(["trading-engine"], shell=args.shell), end="")
    return 0


def _risk_service(args: argparse.Namespace) -> int:
    behaviour = RiskBehaviour(
        latency_s=args.latency_ms / 1000,
        error_rate=args.error_rate,
        seed=args.seed,
        max_lots=args.max_lots,
        max_stop_loss_pips=args.max_stop_loss_pips,
        extreme_symbols=frozenset(args.extreme_symbol),
        fixed_level=_RISK_LEVELS[args.level] if args.level else 0,
    )
    asyncio.run(serve(behaviour, args.host, args.port))
    return 0


def _finite(text: str) -> float:
    try:
        number = float(text)
    except ValueError:
        number = math.nan
    if not math.isfinite(number):
        raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
    return number


def _instant_argument(text: str) -> int:
    """A date (UTC midnight) or an ISO date and time with a zone, as ns since the epoch."""
    try:
        moment = datetime.datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a date or an ISO date and time"
        ) from None
    if moment.tzinfo is None:
        if len(text) > 10:
            raise argparse.ArgumentTypeError(f"{text!r} has no zone: end it with Z or +01:00")
        moment = moment.replace(tzinfo=datetime.UTC)
    return int(moment.timestamp()) * 1_000_000_000 + moment.microsecond * 1_000


def _replay(args: argparse.Namespace) -> int:
    if [args.recording is not None, args.from_history, bool(args.from_kafka)].count(True) != 1:
        print(
            "trading-engine replay: give one of a RECORDING file, --from-history or --from-kafka",
            file=sys.stderr,
        )
        return 2
    if args.from_history and not args.company:
        print("trading-engine replay: --from-history needs --company", file=sys.stderr)
        return 2
    if args.sweep:
        return _sweep(args)
    try:
        candidates = [Candidate.from_file(path) for path in (args.strategy, args.compare) if path]
        base = "strategies in force" if args.from_history else "tier defaults"
        sides = (
            [ReplayStrategies(c) for c in candidates]
            if args.strategy
            else [ReplayStrategies(base=base)]
        )
        if not args.strategy and args.compare:
            sides.append(ReplayStrategies(candidates[0]))
        backtest = _backtest(args, _plan(args, sides), _replay_progress)
        print(file=sys.stderr)
        if args.report is not None:
            _write_report(args.report, backtest)
    except (RecordingError, CandidateError, ValueError, OSError) as error:
        print(f"\ntrading-engine replay: {error}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(replay_view.as_json(backtest), indent=2))
    else:
        print(replay_view.render(backtest, args.list), end="")
    return 0


def _plan(args: argparse.Namespace, sides: list[ReplayStrategies]) -> BacktestPlan:
    return BacktestPlan(
        sides, EngineLimits(max_batch_size=args.max_batch_size), args.user,
        args.prices, args.equity, _cost_table(args.slippage_pips, args.commission),
        BarTime(args.bar_time),
    )  # fmt: skip


def _backtest(
    args: argparse.Namespace,
    plan: BacktestPlan,
    progress: Callable[[int], Callable[[ReplayProgress], None]],
) -> Backtest:
    """The backtest of the replay the arguments name; `progress` makes the progress
    reporter for a number of batches."""
    if args.from_history:
        return asyncio.run(_replay_history(args, plan, progress))
    if args.from_kafka:
        return _replay_kafka(args, plan)
    total = count_batches(args.recording)
    return backtest_batches(plan, from_file(args.recording), progress(total))


def _sweep(args: argparse.Namespace) -> int:
    """Each value of the swept parameter backtested in a process of its own, side by side."""
    try:
        if args.compare or args.from_kafka:
            raise ValueError("--sweep replays a RECORDING or --from-history, without --compare")
        spec = parse_sweep(args.sweep)
        base = json.loads(args.strategy.read_text(encoding="utf-8")) if args.strategy else {}
        documents = candidates(spec, base)
        # Checked here, once, so a typo fails before any process starts.
        for name, text in documents:
            Candidate.from_json(name, text)
        # One window for every process, not each its own "now".
        args.since, args.until = _replay_range(args)
        print(f"backtesting {len(documents)} values of {spec.field}", file=sys.stderr)
        sides = in_processes(
            _sweep_value,
            [(args, name, text) for name, text in documents],
            lambda finished: progress_line.show(finished, len(documents), "values"),
        )
        print(file=sys.stderr)
        if args.report is not None:
            title = f"Sweep: {spec.field} from {spec.values[0]} to {spec.values[-1]}"
            args.report.write_text(html_report(sides, title, time.time_ns()), encoding="utf-8")
            print(f"report written to {args.report}", file=sys.stderr)
    except (RecordingError, CandidateError, ValueError, OSError) as error:
        print(f"\ntrading-engine replay: {error}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps([replay_view.side_json(side) for side in sides], indent=2))
    else:
        print(figures_table(sides))
    return 0


def _sweep_value(job: tuple[argparse.Namespace, str, str]) -> ReportSide:
    """One value of a sweep, in a process of its own: its backtest, as a report side."""
    args, name, text = job
    plan = _plan(args, [ReplayStrategies(Candidate.from_json(name, text))])
    backtest = _backtest(args, plan, lambda _: lambda _: None)
    sides = report_sides(backtest)
    if not sides:
        raise ValueError(f"{name}: no performance simulated ({backtest.without_performance})")
    return sides[0]


def _replay_range(args: argparse.Namespace) -> tuple[int, int]:
    """(since, until) in ns: the last 7 days unless given."""
    until: int = args.until if args.until is not None else time.time_ns()
    since: int = args.since if args.since is not None else until - 7 * 86_400 * 1_000_000_000
    return since, until


def _replay_kafka(args: argparse.Namespace, plan: BacktestPlan) -> Backtest:
    since, until = _replay_range(args)
    read = asyncio.run(from_kafka(args.from_kafka, since, until, args.kafka_topic))
    for where, why in read.skipped:
        print(f"skipped {where}: {why}", file=sys.stderr)
    return backtest_batches(plan, read.batches, _replay_progress(len(read.batches)))


async def _replay_history(
    args: argparse.Namespace,
    plan: BacktestPlan,
    progress: Callable[[int], Callable[[ReplayProgress], None]],
) -> Backtest:
    settings = EngineSettings(data_dir=args.data_dir, store_url=args.store_url)
    since, until = _replay_range(args)
    database = sqlite_file(settings.resolved_store_url)
    if database is not None and not database.is_file():
        # Opening it would create an empty one and replay nothing, saying nothing.
        raise RecordingError(
            f"no engine database at {database}: give the engine's --data-dir or --store-url"
        )
    store = open_store(settings.resolved_store_url)
    await store.open()
    try:
        session = await stored_session(
            store, args.company, since, until, from_history(store, args.company, since, until)
        )
        return await backtest_stored(plan, store, session, progress(len(session.batches)))
    finally:
        await store.close()


def _replay_progress(total: int) -> Callable[[ReplayProgress], None]:
    started = time.monotonic()

    def show(progress: ReplayProgress) -> None:
        done = progress.batches + len(progress.refused)
        if done % 200 == 0 or done == total:
            rate = progress.predictions / max(time.monotonic() - started, 1e-9)
            progress_line.show(done, total, f"batches, {rate:,.0f} predictions/s")

    return show


def _write_report(path: Path, backtest: Backtest) -> None:
    sides = report_sides(backtest)
    if not sides:
        raise ValueError(f"no report: no performance simulated ({backtest.without_performance})")
    title = "Backtest: " + " vs ".join(side.name for side in sides)
    document = html_report(sides, title, time.time_ns(), report_details(backtest))
    path.write_text(document, encoding="utf-8")
    print(f"report written to {path}", file=sys.stderr)


def _symbol_cost(text: str) -> tuple[str, float]:
    """("", amount) from "AMOUNT", (symbol, amount) from "SYMBOL=AMOUNT"; amount >= 0."""
    symbol, _, amount = text.rpartition("=")
    symbol = symbol.strip().upper()
    if symbol and instruments.lookup(symbol) is None:
        raise argparse.ArgumentTypeError(f"{symbol!r} is not an instrument the engine knows")
    return symbol, _at_least_zero(amount)


def _cost_table(
    slippages: Sequence[tuple[str, float]], commissions: Sequence[tuple[str, float]]
) -> CostTable:
    """The costs the flags give: a value without a symbol is every other instrument's."""
    default_slippage = dict(slippages).get("", 0.0)
    default_commission = dict(commissions).get("", 0.0)
    by_symbol = {
        symbol: Costs(
            slippage_pips=dict(slippages).get(symbol, default_slippage),
            commission_per_lot=dict(commissions).get(symbol, default_commission),
        )
        for symbol, _ in (*slippages, *commissions)
        if symbol
    }
    return CostTable(Costs(default_slippage, default_commission), by_symbol)


def _at_least_zero(text: str) -> float:
    number = _finite(text)
    if number < 0:
        raise argparse.ArgumentTypeError(f"{text} is not allowed: use a number >= 0")
    return number


def _above_zero(text: str) -> float:
    number = _finite(text)
    if number <= 0:
        raise argparse.ArgumentTypeError(f"{text} is not allowed: use a number > 0")
    return number


def _fraction(text: str) -> float:
    number = _finite(text)
    if not 0 <= number <= 1:
        raise argparse.ArgumentTypeError(f"{text} is not allowed: use a number from 0 to 1")
    return number


def _dev(args: argparse.Namespace) -> int:
    engine_settings = from_arguments(EngineSettings, args)
    kinds = (EngineSettings, GatewaySettings, DevStackSettings)
    named = frozenset().union(*(named_settings(kind, args) for kind in kinds))
    stack = DevStack(
        engine_settings,
        from_arguments(GatewaySettings, args),
        from_arguments(DevStackSettings, args),
        named,
    )

    async def start() -> None:
        await stack.start()
        assert stack.endpoints is not None  # start() set them
        tokens = {
            caller: _development_token(engine_settings, caller, _DEV_TOKEN_LIFETIME_S)
            for caller in (_DEV_CALLER, _DEV_ADMIN)
        }
        files = write_session_files(stack.workdir, stack.endpoints, tokens)
        hours = _DEV_TOKEN_LIFETIME_S // 3600
        text = banner(stack.endpoints, files, _DEV_CALLER, _DEV_ADMIN, hours, args.demo)
        print(text, flush=True)

    failure = asyncio.run(run_until_signalled(start, stack.stop, stack.wait_for_failure))
    if failure:
        print(f"trading-engine dev: {failure}", file=sys.stderr)
        return 1
    return 0
