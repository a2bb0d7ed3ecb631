"""What the commands that call a running engine share: where it is, the token, the errors."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from trading_engine_client import TradingEngineClient
from trading_engine_client.errors import TradingEngineError

DEFAULT_ADDRESS = "127.0.0.1:50051"
# `trading-engine dev` exports these (in the file its banner sources), so the commands of a
# new terminal reach the stack it started, on whatever ports it chose.
ADDRESS_VARIABLE = "TRADING_ENGINE_ADDRESS"
TOKEN_VARIABLE = "TOKEN"
_CALL_TIMEOUT_S = 10.0


def add_engine_call_arguments(parser: argparse.ArgumentParser) -> None:
    """--address, --token and --token-file, for commands that call a running engine."""
    parser.add_argument(
        "--address",
        default=os.environ.get(ADDRESS_VARIABLE) or DEFAULT_ADDRESS,
        help=f"the engine's gRPC address (default ${ADDRESS_VARIABLE}, else {DEFAULT_ADDRESS})",
    )
    parser.add_argument(
        "--token",
        default="",
        help=f"bearer token (default: --token-file, else ${TOKEN_VARIABLE}; "
        "`trading-engine token --help` mints one)",
    )
    parser.add_argument(
        "--token-file",
        type=Path,
        metavar="FILE",
        help="read the bearer token from this file (`trading-engine dev` writes its tokens "
        "to files and names them)",
    )


def bearer_token(args: argparse.Namespace) -> str | None:
    """The call's token, or None after telling the user how to get one."""
    if args.token:
        return str(args.token)
    token_file: Path | None = args.token_file
    if token_file is not None:
        try:
            token = token_file.read_text(encoding="utf-8").strip()
        except OSError as error:
            print(f"trading-engine {args.command}: cannot read the token: {error}", file=sys.stderr)
            return None
        if token:
            return token
        print(f"trading-engine {args.command}: {token_file} is empty", file=sys.stderr)
        return None
    if token := os.environ.get(TOKEN_VARIABLE, ""):
        return token
    print(
        f"trading-engine {args.command}: no token; pass --token or export {TOKEN_VARIABLE}, "
        "or name a file holding one with --token-file (`trading-engine token --help` mints "
        "a development one)",
        file=sys.stderr,
    )
    return None


def engine_client(args: argparse.Namespace, token: str) -> TradingEngineClient:
    return TradingEngineClient(args.address, token=token, default_timeout=_CALL_TIMEOUT_S)


def call_failed(args: argparse.Namespace, error: TradingEngineError) -> int:
    """Say why a call failed, each bad field on a line of its own; the exit status."""
    said = str(error)
    print(f"trading-engine {args.command}: {said}", file=sys.stderr)
    for field, why in error.field_violations.items():
        if why not in said:
            print(f"  {field}: {why}", file=sys.stderr)
    return 1
