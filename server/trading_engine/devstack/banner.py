"""What `trading-engine dev` prints once everything runs, and the file a new terminal sources.

The banner is printed last and kept short. Its commands work as pasted into a
new terminal: the first line sources a file that puts the project's tools on
PATH and exports the development token (kept in a file of its own, not in
the banner) and the engine's address, which the commands read, and $GRPC and
$REST, which the user guide's examples read.
"""

from __future__ import annotations

import dataclasses
import shlex
import sys
from pathlib import Path

from trading_engine import __version__
from trading_engine.commands.calls import ADDRESS_VARIABLE, TOKEN_VARIABLE
from trading_engine.devstack.stack import Endpoints
from trading_engine.tenancy import Caller

SERVICE = "tradeflow.trading.v1.TradingEngineService"
# Where `pip install` put trading-engine and grpcurl: beside this Python.
TOOLS = Path(sys.executable).parent


@dataclasses.dataclass(frozen=True)
class SessionFiles:
    # The file a new terminal sources.
    environment: Path
    # The development token of the user the banner's commands act as.
    token: Path
    # A company admin's token, for halt, resume and company strategies.
    admin_token: Path


def write_session_files(
    workdir: Path, endpoints: Endpoints, tokens: dict[Caller, str]
) -> SessionFiles:
    """Each token in a file readable by its owner only, and env.sh exporting the first."""
    workdir.mkdir(parents=True, exist_ok=True)
    paths = []
    for caller, token in tokens.items():
        path = workdir / f"{caller.user_id}.token"
        path.touch(mode=0o600)
        path.chmod(0o600)
        path.write_text(token + "\n", encoding="utf-8")
        paths.append(path)
    user_token, admin_token = paths
    environment = workdir / "env.sh"
    environment.write_text(
        "# Written by `trading-engine dev`: `source` it in a new terminal to reach its stack.\n"
        f'export PATH={shlex.quote(str(TOOLS))}:"$PATH"\n'
        f"export {ADDRESS_VARIABLE}={shlex.quote(endpoints.grpc)}\n"
        f'export {TOKEN_VARIABLE}="$(cat {shlex.quote(str(user_token))})"\n'
        "# As docs/user-guide.md's examples name them.\n"
        f"export GRPC={shlex.quote(endpoints.grpc)} REST={shlex.quote(endpoints.rest)}\n",
        encoding="utf-8",
    )
    return SessionFiles(environment, user_token, admin_token)


def banner(
    endpoints: Endpoints,
    files: SessionFiles,
    user: Caller,
    admin: Caller,
    token_hours: int,
    demo: bool,
) -> str:
    grpc, rest = endpoints.grpc, endpoints.rest
    admin_file = shlex.quote(str(files.admin_token))
    feed = (
        "The demo feed publishes predictions for trader-1, trader-2, quant-1 and quant-2 of acme."
        if demo
        else "No predictions flow yet: restart with --demo for a synthetic feed."
    )
    moved = "".join(f"  ({moved})\n" for moved in endpoints.moved)
    return f"""
Trading engine {__version__} is running.
  gRPC         {grpc}  (server reflection on)
  REST         {rest}  (Envoy gRPC-JSON transcoding)
  Envoy admin  {endpoints.envoy_admin}  (its log: {endpoints.envoy_log})
  metrics      {endpoints.metrics}
  NATS         {endpoints.nats}  (predictions in, signals out)
  Kafka        {endpoints.kafka}
  risk         {endpoints.risk}  (reference risk service)
{moved}{feed}

In a new terminal, as {user.user_id} of {user.company_id} ({user.tier_name}; tokens valid \
{token_hours} hours, {admin.user_id}'s is an admin's):
  source {shlex.quote(str(files.environment))}
  trading-engine strategy get
  grpcurl -plaintext -H "authorization: Bearer ${TOKEN_VARIABLE}" {grpc} {SERVICE}/GetStrategy
  curl -s -H "authorization: Bearer ${TOKEN_VARIABLE}" "{rest}/api/v1/signals/history?page_size=5"
  trading-engine halt --user {user.user_id} --reason "a try" --token-file {admin_file}
  trading-engine resume --user {user.user_id} --reason "done" --token-file {admin_file}
  trading-engine watch

`trading-engine --help` lists every command. Press Ctrl-C to stop everything this command started.
"""
