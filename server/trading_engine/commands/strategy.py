"""`trading-engine strategy get|set|diff|history|reset`: a strategy, read and changed safely.

`set` and `reset` show what will change and ask before they change it (`--yes`
for scripts), then apply it only if the layer is still at the revision the
difference was read from: a change made meanwhile by someone else fails with
FAILED_PRECONDITION instead of being overwritten unseen.
"""

from __future__ import annotations

import argparse
import sys
import uuid
from collections.abc import Sequence
from pathlib import Path

from google.protobuf import field_mask_pb2, json_format

from tradeflow.common.v1 import tier_pb2
from tradeflow.trading.v1 import strategy_pb2
from tradeflow.trading.v1 import trading_engine_service_pb2 as service_pb2
from trading_engine.commands.calls import (
    add_engine_call_arguments,
    bearer_token,
    call_failed,
    engine_client,
)
from trading_engine.commands.parsing import Commands, show_help
from trading_engine.commands.strategy_values import (
    ChangeError,
    changes_from_file,
    layer_name,
    parse_changes,
    shown,
    table,
)
from trading_engine.config import any_case
from trading_engine.core.strategy_layers import FIELD_PATHS
from trading_engine.enum_names import short_name
from trading_engine_client import TradingEngineClient
from trading_engine_client.errors import TradingEngineError

_LAYERS: dict[str, strategy_pb2.StrategyLayer.ValueType] = {
    "user": strategy_pb2.STRATEGY_LAYER_USER,
    "company": strategy_pb2.STRATEGY_LAYER_COMPANY,
    "adaptive": strategy_pb2.STRATEGY_LAYER_ADAPTIVE,
}
# ListStrategyVersions' largest page, and the most revisions a command reads.
_PAGE_SIZE = 100
_MOST_REVISIONS = 1000
# The layers whose values win over each layer's (the company's wins over all).
_ABOVE: dict[int, tuple[int, ...]] = {
    strategy_pb2.STRATEGY_LAYER_USER: (
        strategy_pb2.STRATEGY_LAYER_ADAPTIVE,
        strategy_pb2.STRATEGY_LAYER_COMPANY,
    ),
    strategy_pb2.STRATEGY_LAYER_ADAPTIVE: (strategy_pb2.STRATEGY_LAYER_COMPANY,),
}
_EXAMPLES = """\
examples:
  trading-engine strategy get                                   # the token's user
  trading-engine strategy get --user trader-2 --json            # an admin, for a user
  trading-engine strategy diff min_confidence_threshold=0.75 duplicate_window=5m
  trading-engine strategy set min_confidence_threshold=0.75 --reason "fewer, surer signals"
  trading-engine strategy set --file strict.json --reason "..." --yes     # no question asked
  trading-engine strategy set --layer company max_position_count=5 --reason "..."   # admins
  trading-engine strategy history --limit 5
  trading-engine strategy reset --layer adaptive --reason "start learning again"
  trading-engine strategy reset --to-version 12 --reason "back to Monday's"

A change is FIELD=VALUE: a StrategyConfig field (docs/strategy-parameters.md;
features.pattern_trading_enabled for a feature flag) and a number, true/false,
an enum value (conservative), a duration (20s, 5m, 1h) or comma-separated symbols.
--file takes a StrategyConfig in JSON holding the fields to change.
"""


def add_command(commands: Commands) -> None:
    summary = "read a strategy, change it (the difference shown first), list or undo changes"
    strategy = commands.add_parser("strategy", help=summary, description=summary, epilog=_EXAMPLES)
    strategy.set_defaults(run=show_help(strategy))
    actions = strategy.add_subparsers(title="commands", dest="strategy_command", metavar="COMMAND")

    get = _subcommand(actions, "get", "the strategy in force, each value with the layer it is from")
    get.add_argument("--json", action="store_true", help="print the EffectiveStrategy as JSON")
    get.set_defaults(run=_get)

    for name, summary, run in (
        ("set", "change fields of a layer: shows the difference, asks, applies", _set),
        ("diff", "show what a change would do, without applying it", _diff),
    ):
        change = _subcommand(actions, name, summary)
        change.add_argument(
            "changes", nargs="*", metavar="FIELD=VALUE", help="a field and its new value"
        )
        change.add_argument(
            "--file", type=Path, help="a StrategyConfig in JSON holding the fields to change"
        )
        _layer_argument(change, ("user", "company"))
        if name == "set":
            _reason_and_yes(change)
        change.set_defaults(run=run)

    history = _subcommand(actions, "history", "a layer's revisions: who changed what, when, why")
    _layer_argument(history, tuple(_LAYERS))
    history.add_argument(
        "--limit", type=int, default=20, help="newest revisions shown (default %(default)s)"
    )
    history.add_argument("--json", action="store_true", help="print the revisions as JSON")
    history.set_defaults(run=_history)

    reset = _subcommand(
        actions, "reset", "clear a layer, or restore an earlier revision: shows what, asks"
    )
    _layer_argument(reset, tuple(_LAYERS))
    reset.add_argument(
        "--to-version",
        type=int,
        default=0,
        metavar="REVISION",
        help="the revision to restore (see `strategy history`); default 0 clears the layer",
    )
    _reason_and_yes(reset)
    reset.set_defaults(run=_reset)


def _subcommand(actions: Commands, name: str, summary: str) -> argparse.ArgumentParser:
    parser = actions.add_parser(name, help=summary, description=summary, epilog=_EXAMPLES)
    parser.add_argument(
        "--user", default="", help="whose strategy (default: the token's user; others: admins)"
    )
    add_engine_call_arguments(parser)
    parser.set_defaults(command=f"strategy {name}")
    return parser


def _layer_argument(parser: argparse.ArgumentParser, layers: Sequence[str]) -> None:
    parser.add_argument(
        "--layer",
        type=any_case(layers),
        choices=layers,
        default="user",
        help=f"{', '.join(layers)} (default %(default)s; company: admins only)",
    )


def _reason_and_yes(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--reason", required=True, help="why; stored with the revision")
    parser.add_argument("--yes", action="store_true", help="apply without asking (for scripts)")


def _get(args: argparse.Namespace) -> int:
    token = bearer_token(args)
    if token is None:
        return 2
    with engine_client(args, token) as client:
        try:
            strategy = client.get_strategy(service_pb2.GetStrategyRequest(user_id=args.user))
        except TradingEngineError as error:
            return call_failed(args, error)
    if args.json:
        print(json_format.MessageToJson(strategy), end="\n")
        return 0
    print(_heading(strategy))
    rows = [("field", "value", "from")]
    rows += [
        (path, shown(strategy.config, path), layer_name(strategy.field_sources[path]))
        for path in FIELD_PATHS
    ]
    print(table(rows), end="")
    return 0


def _heading(strategy: strategy_pb2.EffectiveStrategy) -> str:
    tier = short_name(tier_pb2.SubscriptionTier.DESCRIPTOR, strategy.tier)
    return (
        f"strategy of {strategy.user_id} ({strategy.company_id}, {tier}), "
        f"revision {strategy.version}: "
        f"user layer {strategy.user_version}, adaptive {strategy.adaptive_version}, "
        f"company {strategy.company_version}"
    )


def _change(args: argparse.Namespace) -> tuple[strategy_pb2.StrategyConfig, tuple[str, ...]]:
    if bool(args.changes) == (args.file is not None):
        raise ChangeError("give the changes as FIELD=VALUE arguments or --file, one of them")
    return changes_from_file(args.file) if args.file else parse_changes(args.changes)


def _differences(
    strategy: strategy_pb2.EffectiveStrategy,
    layer: int,
    values: strategy_pb2.StrategyConfig,
    paths: Sequence[str],
) -> list[tuple[str, ...]]:
    """(field, value now and its layer, "->", new value, note) for each path the change sets
    to another value, or that `layer` starts defining."""
    rows: list[tuple[str, ...]] = []
    for path in paths:
        source = strategy.field_sources[path]
        before, after = shown(strategy.config, path), shown(values, path)
        if before == after and source == layer:
            continue
        rows.append((path, f"{before} ({layer_name(source)})", "->", after, _note(layer, source)))
    return rows


def _note(layer: int, source: int) -> str:
    """Why a change to `layer` may not be what the user gets: a layer above it wins."""
    if source in _ABOVE.get(layer, ()):
        return f"but the {layer_name(source)} layer's value still applies"
    return ""


def _read_change(
    args: argparse.Namespace, client: TradingEngineClient
) -> tuple[strategy_pb2.EffectiveStrategy, strategy_pb2.StrategyConfig, list[tuple[str, ...]]]:
    values, paths = _change(args)
    strategy = client.get_strategy(service_pb2.GetStrategyRequest(user_id=args.user))
    return strategy, values, _differences(strategy, _LAYERS[args.layer], values, paths)


def _diff(args: argparse.Namespace) -> int:
    token = bearer_token(args)
    if token is None:
        return 2
    with engine_client(args, token) as client:
        try:
            strategy, _, rows = _read_change(args, client)
        except ChangeError as error:
            return _refused(args, str(error))
        except TradingEngineError as error:
            return call_failed(args, error)
    _print_differences(strategy, args.layer, rows)
    return 0


def _print_differences(
    strategy: strategy_pb2.EffectiveStrategy, layer: str, rows: list[tuple[str, ...]]
) -> None:
    if not rows:
        print(
            f"nothing to change: the {layer} layer of {strategy.user_id} has these values already"
        )
        return
    if layer == "company":
        print(f"the company layer of {strategy.company_id} (beside {strategy.user_id}'s values):")
    else:
        print(f"the {layer} layer of {strategy.user_id} ({strategy.company_id}):")
    print(table(rows), end="")


def _set(args: argparse.Namespace) -> int:
    token = bearer_token(args)
    if token is None:
        return 2
    layer = _LAYERS[args.layer]
    with engine_client(args, token) as client:
        try:
            strategy, values, rows = _read_change(args, client)
            _print_differences(strategy, args.layer, rows)
            if not rows:
                return 0
            if not _confirmed(args):
                return 1
            paths = [row[0] for row in rows]
            response = client.update_strategy(
                service_pb2.UpdateStrategyRequest(
                    layer=layer,
                    user_id=args.user,
                    strategy=values,
                    update_mask=field_mask_pb2.FieldMask(paths=paths),
                    expected_version=_layer_version(strategy, layer),
                    request_id=_request_id(),
                    reason=args.reason,
                )
            )
        except ChangeError as error:
            return _refused(args, str(error))
        except TradingEngineError as error:
            return call_failed(args, error)
    print(_applied(response.version))
    return 0


def _history(args: argparse.Namespace) -> int:
    token = bearer_token(args)
    if token is None:
        return 2
    if not 1 <= args.limit <= _MOST_REVISIONS:
        return _refused(args, f"--limit must be from 1 to {_MOST_REVISIONS}")
    with engine_client(args, token) as client:
        try:
            versions = _newest_revisions(client, args, _LAYERS[args.layer], args.limit)
        except TradingEngineError as error:
            return call_failed(args, error)
    if args.json:
        page = service_pb2.ListStrategyVersionsResponse(versions=versions)
        print(json_format.MessageToJson(page))
        return 0
    if not versions:
        print(f"the {args.layer} layer has no revisions: its values are those of the layers below")
        return 0
    rows = [("revision", "changed (UTC)", "by", "changes", "reason")]
    for version in versions:
        changes = [f"{path}={shown(version.changes, path)}" for path in version.changed_fields]
        changed_at = version.changed_at.ToDatetime().strftime("%Y-%m-%d %H:%M:%S")
        rows.append(
            (
                str(version.version),
                changed_at,
                version.changed_by,
                " ".join(changes) or "(cleared)",
                version.reason,
            )
        )
    print(table(rows), end="")
    return 0


def _reset(args: argparse.Namespace) -> int:
    token = bearer_token(args)
    if token is None:
        return 2
    layer = _LAYERS[args.layer]
    with engine_client(args, token) as client:
        try:
            strategy = client.get_strategy(service_pb2.GetStrategyRequest(user_id=args.user))
            version = _layer_version(strategy, layer)
            if version in (0, args.to_version):
                print(f"nothing to reset: the {args.layer} layer is at revision {version}")
                return 0
            print(_what_reset_undoes(client, args, strategy, layer))
            if not _confirmed(args):
                return 1
            response = client.reset_strategy(
                service_pb2.ResetStrategyRequest(
                    layer=layer,
                    user_id=args.user,
                    to_version=args.to_version,
                    expected_version=version,
                    request_id=_request_id(),
                    reason=args.reason,
                )
            )
        except TradingEngineError as error:
            return call_failed(args, error)
    print(_applied(response.version))
    return 0


def _what_reset_undoes(
    client: TradingEngineClient,
    args: argparse.Namespace,
    strategy: strategy_pb2.EffectiveStrategy,
    layer: strategy_pb2.StrategyLayer.ValueType,
) -> str:
    if args.to_version == 0:
        fields = [
            f"  {path} = {shown(strategy.config, path)}"
            for path in FIELD_PATHS
            if strategy.field_sources[path] == layer
        ]
        listed = "\n".join(fields) or "  (none of its values is in force)"
        return (
            f"the {args.layer} layer of {strategy.user_id} is cleared; these values then come "
            f"from the layers below:\n{listed}"
        )
    undone = _newest_revisions(client, args, layer, _MOST_REVISIONS, after=args.to_version)
    lines = [
        f"  revision {v.version} by {v.changed_by}: {', '.join(v.changed_fields)} ({v.reason})"
        for v in undone
    ]
    return (
        f"the {args.layer} layer goes back to revision {args.to_version}, undoing:\n"
        + "\n".join(lines)
    )


def _newest_revisions(
    client: TradingEngineClient,
    args: argparse.Namespace,
    layer: strategy_pb2.StrategyLayer.ValueType,
    limit: int,
    after: int = 0,
) -> list[strategy_pb2.StrategyVersion]:
    """Up to `limit` of the layer's revisions newer than `after`, newest first, page by page."""
    found: list[strategy_pb2.StrategyVersion] = []
    request = service_pb2.ListStrategyVersionsRequest(
        layer=layer, user_id=args.user, page_size=_PAGE_SIZE
    )
    while len(found) < limit:
        page = client.list_strategy_versions(request)
        newer = [version for version in page.versions if version.version > after]
        found += newer
        if len(newer) < len(page.versions) or not page.next_page_token:
            break
        request.page_token = page.next_page_token
    return found[:limit]


def _layer_version(strategy: strategy_pb2.EffectiveStrategy, layer: int) -> int:
    versions: dict[int, int] = {
        strategy_pb2.STRATEGY_LAYER_USER: strategy.user_version,
        strategy_pb2.STRATEGY_LAYER_COMPANY: strategy.company_version,
        strategy_pb2.STRATEGY_LAYER_ADAPTIVE: strategy.adaptive_version,
    }
    return versions[layer]


def _confirmed(args: argparse.Namespace) -> bool:
    if args.yes:
        return True
    if not sys.stdin.isatty():
        print(
            f"trading-engine {args.command}: not applied: no terminal to confirm on; "
            "pass --yes to apply without asking",
            file=sys.stderr,
        )
        return False
    answer = input("Apply? [y/N] ").strip().lower()
    if answer in ("y", "yes"):
        return True
    print("not applied", file=sys.stderr)
    return False


def _applied(version: strategy_pb2.StrategyVersion) -> str:
    whose = f" of {version.user_id}" if version.user_id else ""
    return (
        f"applied: revision {version.version}, the {layer_name(version.layer)} layer{whose} "
        f"({version.company_id})"
    )


def _request_id() -> str:
    # Retries of this one change (the client retries a call with a request id) make it once.
    return f"cli-{uuid.uuid4().hex}"


def _refused(args: argparse.Namespace, why: str) -> int:
    print(f"trading-engine {args.command}: {why}", file=sys.stderr)
    return 2
