"""Admin actions, each kept in the store's audit log and logged: who, what, why, old and new.

A strategy revision (update, reset, adaptive adjustment), a trading-state
setting and a manual signal each make one audit record and one INFO line,
after the action succeeded; a retried request that changes nothing makes
neither. The line names the actor, their company and roles, the RPC (bound by
the authentication interceptor), what was changed for whom, why, and each
value before and after; in JSON logs the same facts are the line's `audit`
object, so a collector can select on them.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Mapping
from typing import Final

from trading_engine import logs
from trading_engine.stores.base import AuditRecord, Store
from trading_engine.tenancy import Caller

_log = logging.getLogger(__name__)
_UNSET: Final = "unset"


@dataclasses.dataclass(frozen=True)
class Actor:
    """Who acted: a user with the roles of their token, or one of the engine's own rules."""

    user_id: str
    roles: tuple[str, ...] = ()

    @classmethod
    def of(cls, caller: Caller) -> Actor:
        return cls(caller.user_id, tuple(sorted(caller.roles)))


@dataclasses.dataclass(frozen=True)
class AdminAction:
    """One change made to a tenant's strategies, trading states or signals."""

    company_id: str
    actor: Actor
    # A short verb: "strategy.update", "trading_state.set", "signal.inject", ...
    action: str
    # What was changed, e.g. "USER layer", "COMPANY trading state".
    scope: str
    # The user it was changed for; "" for the whole company.
    subject_user_id: str
    at_ns: int
    reason: str
    # The values the action changed, by name, before and after (JSON values); a name absent
    # from one side was unset there.
    old: Mapping[str, object]
    new: Mapping[str, object]
    # Particulars kept with the record (a revision, a signal id), JSON values.
    detail: Mapping[str, object]


async def record(store: Store, action: AdminAction) -> None:
    """Keep `action` in the audit log, then log it at INFO."""
    await store.append_audit(
        AuditRecord(
            company_id=action.company_id,
            actor=action.actor.user_id,
            action=action.action,
            subject_user_id=action.subject_user_id,
            at_ns=action.at_ns,
            detail=json.dumps(dict(action.detail)),
            actor_roles=action.actor.roles,
            reason=action.reason,
            old_values=json.dumps(dict(action.old)),
            new_values=json.dumps(dict(action.new)),
        )
    )
    rpc = logs.context().get("rpc", "")
    _log.info(
        "%s",
        describe(action, rpc),
        extra=logs.fields(
            audit={
                "action": action.action,
                "actor": action.actor.user_id,
                "actor_company_id": action.company_id,
                "actor_roles": list(action.actor.roles),
                "rpc": rpc,
                "scope": action.scope,
                "subject_user_id": action.subject_user_id,
                "reason": action.reason,
                "old": dict(action.old),
                "new": dict(action.new),
                "detail": dict(action.detail),
            }
        ),
    )


def describe(action: AdminAction, rpc: str) -> str:
    """One readable line: who, through which RPC, what for whom, each value old -> new, why."""
    roles = ", ".join(action.actor.roles) or "none"
    via = f" via {rpc}" if rpc else ""
    whom = (
        f"user {action.subject_user_id}"
        if action.subject_user_id
        else f"company {action.company_id}"
    )
    names = list(dict.fromkeys([*action.new, *action.old]))
    changes = ", ".join(
        f"{name} {_shown(action.old, name)} -> {_shown(action.new, name)}" for name in names
    )
    return (
        f"{action.action} by {action.actor.user_id} of company {action.company_id} "
        f"(roles: {roles}){via}: {action.scope} of {whom}: {changes or 'no change'}; "
        f"reason: {action.reason or '(none given)'}"
    )


def _shown(values: Mapping[str, object], name: str) -> str:
    return json.dumps(values[name]) if name in values else _UNSET
