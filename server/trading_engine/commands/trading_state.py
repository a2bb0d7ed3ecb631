"""`trading-engine halt` and `resume`: a user's or the whole company's trading state."""

from __future__ import annotations

import argparse
import sys

from tradeflow.trading.v1 import trading_engine_service_pb2 as service_pb2
from trading_engine.commands.calls import (
    add_engine_call_arguments,
    bearer_token,
    call_failed,
    engine_client,
)
from trading_engine.commands.parsing import Commands
from trading_engine.enum_names import short_name
from trading_engine_client.errors import TradingEngineError

_EXAMPLES = """\
examples:
  export TOKEN=$(trading-engine token --user ops-1 --company acme --tier enterprise --role admin)
  trading-engine {name} --user trader-1 --reason "desk closed"
  trading-engine {name} --company --reason "market closed"      # every user of acme
  trading-engine {name} --user trader-1 --reason "..." --token-file var/dev/admin.token

Needs a company admin's token. A halted trader's signals are HOLD with reason
TRADING_HALTED from the next batch on; resume sets them ACTIVE again.
"""

_STATES = {
    "halt": service_pb2.TRADING_STATE_HALTED,
    "resume": service_pb2.TRADING_STATE_ACTIVE,
}
_SUMMARIES = {
    "halt": "halt a trader's or the whole company's trading (admins)",
    "resume": "let a halted trader or company trade again (admins)",
}


def add_commands(
    commands: Commands,
) -> None:
    for name in _STATES:
        parser = commands.add_parser(
            name,
            help=_SUMMARIES[name],
            description=_SUMMARIES[name],
            epilog=_EXAMPLES.format(name=name),
        )
        whom = parser.add_mutually_exclusive_group(required=True)
        whom.add_argument("--user", metavar="USER", help="the user (of the token's company)")
        whom.add_argument(
            "--company",
            action="store_true",
            help="every user of the token's company (scope COMPANY)",
        )
        parser.add_argument(
            "--reason", required=True, help="why, stored with the state and shown to the trader"
        )
        add_engine_call_arguments(parser)
        parser.set_defaults(run=_set_state)


def _set_state(args: argparse.Namespace) -> int:
    token = bearer_token(args)
    if token is None:
        return 2
    scope = (
        service_pb2.TRADING_STATE_SCOPE_COMPANY
        if args.company
        else service_pb2.TRADING_STATE_SCOPE_USER
    )
    request = service_pb2.SetTradingStateRequest(
        user_id=args.user or "", state=_STATES[args.command], reason=args.reason, scope=scope
    )
    with engine_client(args, token) as client:
        try:
            setting = client.set_trading_state(request)
            in_force = (
                client.get_trading_state(service_pb2.GetTradingStateRequest(user_id=args.user))
                if args.user
                else None
            )
        except TradingEngineError as error:
            return call_failed(args, error)
    print(f"{_whom(setting)} is {_state(setting.state)}: {setting.reason}")
    if in_force is not None and in_force.effective_state != setting.state:
        # A user resumed while the company is halted still does not trade: say so.
        company = in_force.company_setting
        print(
            f"  but {_state(in_force.effective_state)} applies: the company {company.company_id} "
            f"is {_state(company.state)} ({company.reason})",
            file=sys.stderr,
        )
    return 0


def _whom(setting: service_pb2.TradingStateSetting) -> str:
    if setting.user_id:
        return f"{setting.user_id} of {setting.company_id}"
    return f"every user of {setting.company_id}"


def _state(state: int) -> str:
    return short_name(service_pb2.TradingState.DESCRIPTOR, state)
