"""The `trading-engine` command."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import logging
import sys
import time
from collections.abc import Sequence

from tradeflow.common.v1 import tier_pb2
from trading_engine import __version__
from trading_engine.app import Application, run_until_signalled
from trading_engine.auth.configured import signing_secret, token_policy
from trading_engine.auth.tokens import KeyConfigurationError, mint_development_token, parse_tier
from trading_engine.config import EngineSettings, GatewaySettings, add_arguments, from_arguments
from trading_engine.gateway.envoy import EnvoyGateway, render_config
from trading_engine.tenancy import Caller

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
  trading-engine dev
  trading-engine dev --grpc-port 50061 --http-port 8091 --envoy-admin-port 9911
"""

_TOKEN_EXAMPLES = """\
examples:
  trading-engine token --user trader-1 --company acme --tier pro
  TOKEN=$(trading-engine token --user ops-1 --company acme --tier enterprise --role admin)
  grpcurl -plaintext -H "authorization: Bearer $TOKEN" 127.0.0.1:50051 \\
      tradeflow.trading.v1.TradingEngineService/GetStrategy
"""

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
_DEV_TOKEN_LIFETIME_S = 12 * 3600


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=(getattr(args, "log_level", None) or "INFO").upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        status: int = args.run(args)
    except (OSError, TimeoutError, RuntimeError, KeyConfigurationError) as error:
        print(f"trading-engine: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return status


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="trading-engine",
        description="Turns ML predictions into explained, risk-checked trading signals.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(title="commands", required=True, metavar="COMMAND")

    serve = _command(commands, "serve", "run the engine's gRPC server", _SERVE_EXAMPLES)
    add_arguments(serve, EngineSettings)
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
    add_arguments(dev.add_argument_group("engine"), EngineSettings)
    add_arguments(dev.add_argument_group("gateway"), GatewaySettings, exclude=_DEV_DERIVED)
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
    return parser


def _command(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
    name: str,
    summary: str,
    examples: str,
) -> argparse.ArgumentParser:
    return commands.add_parser(
        name,
        help=summary,
        description=summary,
        epilog=examples,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )


def _serve(args: argparse.Namespace) -> int:
    application = Application(from_arguments(EngineSettings, args))
    asyncio.run(run_until_signalled(application.start, application.stop))
    return 0


def _gateway(args: argparse.Namespace) -> int:
    settings = from_arguments(GatewaySettings, args)
    if args.print_config:
        print(render_config(settings), end="")
        return 0
    return asyncio.run(_run_gateway(settings))


async def _run_gateway(settings: GatewaySettings) -> int:
    gateway = EnvoyGateway(settings)
    await gateway.start()
    print(
        f"REST gateway on {gateway.base_url} "
        f"-> gRPC {settings.upstream_host}:{settings.upstream_port}"
    )
    try:
        return await gateway.wait()
    finally:
        await gateway.stop()


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


def _dev(args: argparse.Namespace) -> int:
    asyncio.run(
        _run_dev(from_arguments(EngineSettings, args), from_arguments(GatewaySettings, args))
    )
    return 0


async def _run_dev(engine_settings: EngineSettings, gateway_settings: GatewaySettings) -> None:
    application = Application(engine_settings)
    gateway: EnvoyGateway | None = None

    async def start() -> None:
        nonlocal gateway
        await application.start()
        gateway = EnvoyGateway(
            dataclasses.replace(
                gateway_settings,
                upstream_host=engine_settings.grpc_host,
                upstream_port=application.grpc_port,
            )
        )
        await gateway.start()
        token = _development_token(engine_settings, _DEV_CALLER, _DEV_TOKEN_LIFETIME_S)
        print(_dev_banner(application.grpc_address, gateway.base_url, token), flush=True)

    async def stop() -> None:
        if gateway is not None:
            await gateway.stop()
        await application.stop()

    await run_until_signalled(start, stop)


def _dev_banner(grpc_address: str, rest_url: str, token: str) -> str:
    service = "tradeflow.trading.v1.TradingEngineService"
    caller = _DEV_CALLER
    return f"""
Trading engine {__version__} is running.
  gRPC  {grpc_address}  (server reflection on)
  REST  {rest_url}  (Envoy gRPC-JSON transcoding)

A development token for user {caller.user_id} of company {caller.company_id} ({caller.tier_name}),
valid for {_DEV_TOKEN_LIFETIME_S // 3600} hours (`trading-engine token --help` mints others):
  export TOKEN={token}

Try, from another terminal (grpcurl is in .venv/bin):
  grpcurl -plaintext {grpc_address} list
  grpcurl -plaintext {grpc_address} describe {service}
  grpcurl -plaintext {grpc_address} {service}/HealthCheck
  grpcurl -plaintext {grpc_address} grpc.health.v1.Health/Check
  grpcurl -plaintext -H "authorization: Bearer $TOKEN" {grpc_address} {service}/GetStrategy
  curl -s {rest_url}/api/v1/health
  curl -s -H "authorization: Bearer $TOKEN" {rest_url}/api/v1/strategy

Press Ctrl-C to stop everything this command started.
"""
