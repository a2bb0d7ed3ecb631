"""The `trading-engine` command."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import logging
import sys
from collections.abc import Sequence

from trading_engine import __version__
from trading_engine.app import Application, run_until_signalled
from trading_engine.config import EngineSettings, GatewaySettings, add_arguments, from_arguments
from trading_engine.gateway.envoy import EnvoyGateway, render_config

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

# In `dev` the gateway's upstream is the engine started alongside it.
_DEV_DERIVED = ("upstream_host", "upstream_port")


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=(getattr(args, "log_level", None) or "INFO").upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        status: int = args.run(args)
    except (OSError, TimeoutError, RuntimeError) as error:
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
        print(_dev_banner(application.grpc_address, gateway.base_url), flush=True)

    async def stop() -> None:
        if gateway is not None:
            await gateway.stop()
        await application.stop()

    await run_until_signalled(start, stop)


def _dev_banner(grpc_address: str, rest_url: str) -> str:
    service = "tradeflow.trading.v1.TradingEngineService"
    return f"""
Trading engine {__version__} is running.
  gRPC  {grpc_address}  (server reflection on)
  REST  {rest_url}  (Envoy gRPC-JSON transcoding)

Try, from another terminal (grpcurl is in .venv/bin):
  grpcurl -plaintext {grpc_address} list
  grpcurl -plaintext {grpc_address} describe {service}
  grpcurl -plaintext {grpc_address} {service}/HealthCheck
  grpcurl -plaintext {grpc_address} grpc.health.v1.Health/Check
  curl -s {rest_url}/api/v1/health

Press Ctrl-C to stop everything this command started.
"""
