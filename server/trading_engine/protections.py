"""Trading states and the per-user protections the decision core reads.

A company admin sets a trading state (ACTIVE, REDUCE_ONLY, HALTED) for one
user or for the whole company; the drawdown limit halts a user by itself. The
state in force for a user is the stricter of the two settings. Settings are
kept in the store (so a restart keeps a halt) and in memory, where each
user's `Protection` is updated at once: the next batch decided sees the
change, on every transport, without a restart.

Open positions and stop-outs, which the execution tracker reports, live in
the same `Protection`, so a batch reads one object per user.
"""

from __future__ import annotations

import json
from typing import Final

from tradeflow.trading.v1 import trading_engine_service_pb2 as service_pb2
from trading_engine import audit, errors
from trading_engine.audit import Actor, AdminAction
from trading_engine.clock import Clock
from trading_engine.core.protections import ACTIVE, HALTED, Protection, stricter
from trading_engine.stores.base import (
    TRADING_STATE_SET,
    AuditRecord,
    Store,
    TradingStateRecord,
)
from trading_engine.tenancy import Caller, require_admin, subject_user

ADMIN: Final[int] = service_pb2.TRADING_STATE_CAUSE_ADMIN
DRAWDOWN_LIMIT: Final[int] = service_pb2.TRADING_STATE_CAUSE_DRAWDOWN_LIMIT
USER_SCOPE: Final[int] = service_pb2.TRADING_STATE_SCOPE_USER
COMPANY_SCOPE: Final[int] = service_pb2.TRADING_STATE_SCOPE_COMPANY
_UNSPECIFIED_SCOPE: Final[int] = service_pb2.TRADING_STATE_SCOPE_UNSPECIFIED
# `changed_by` of a halt the drawdown limit set.
DRAWDOWN_ACTOR: Final = "drawdown-limit"
_COMPANY: Final = ""
_STATE_WORDS: Final[dict[int, str]] = {
    service_pb2.TRADING_STATE_ACTIVE: "active",
    service_pb2.TRADING_STATE_REDUCE_ONLY: "reduce-only",
    service_pb2.TRADING_STATE_HALTED: "halted",
}
_STATES_BY_WORD: Final = {word: state for state, word in _STATE_WORDS.items()}


class Protections:
    """Each user's Protection, and the trading-state settings behind them."""

    def __init__(self, store: Store, clock: Clock) -> None:
        self._store = store
        self._clock = clock
        # (company, user or "" for the company) -> the setting in force.
        self._settings: dict[tuple[str, str], TradingStateRecord] = {}
        # (company, user) -> what the core reads.
        self._users: dict[tuple[str, str], Protection] = {}

    async def start(self) -> None:
        """Load the stored settings."""
        for record in await self._store.trading_states():
            self._settings[(record.company_id, record.user_id)] = record

    def protection(self, company_id: str, user_id: str) -> Protection:
        """The user's Protection, kept current from now on."""
        key = (company_id, user_id)
        protection = self._users.get(key)
        if protection is None:
            protection = self._users[key] = Protection()
            self._refresh(company_id, user_id, protection)
        return protection

    def settings(
        self, company_id: str, user_id: str
    ) -> tuple[int, TradingStateRecord | None, TradingStateRecord | None]:
        """The state in force for the user, their own setting and the company's."""
        user = self._settings.get((company_id, user_id))
        company = self._settings.get((company_id, _COMPANY))
        return self.protection(company_id, user_id).state, user, company

    def read(
        self, caller: Caller, user_id: str
    ) -> tuple[int, TradingStateRecord | None, TradingStateRecord | None]:
        """`settings` for a user of the caller's company (another user: admins only)."""
        return self.settings(caller.company_id, subject_user(caller, user_id))

    async def set_state(
        self, caller: Caller, scope: int, user_id: str, state: int, reason: str
    ) -> TradingStateRecord:
        """An admin's setting for a user of their company, or for the whole company.

        The company is covered only when the scope says COMPANY: an empty or misspelt
        user id must never widen a halt to every trader (decision 25).
        """
        violations = _scope_violations(scope, user_id)
        if state not in _STATE_WORDS:
            violations.append(
                errors.FieldViolation("state", "required: ACTIVE, REDUCE_ONLY or HALTED")
            )
        if not reason.strip():
            violations.append(
                errors.FieldViolation("reason", "required: say why, it is kept with the state")
            )
        if violations:
            raise errors.invalid("the trading state cannot be set", violations)
        require_admin(caller, "setting a trading state")
        if user_id and await self._store.user_tier(caller.company_id, user_id) is None:
            # Most likely a typo: a setting for it would protect nobody.
            raise errors.NotFound(
                f"user {user_id!r} of company {caller.company_id!r} has not used the engine yet",
                reason="USER_NOT_FOUND",
            )
        record = TradingStateRecord(
            caller.company_id, user_id, state, ADMIN, reason, caller.user_id, self._clock.now_ns()
        )
        await self._put(record, Actor.of(caller))
        return record

    async def halt_for_drawdown(self, company_id: str, user_id: str, reason: str) -> bool:
        """Halt a user whose own setting is not already HALTED; whether this halted them."""
        current = self._settings.get((company_id, user_id))
        if current is not None and current.state == HALTED:
            return False
        record = TradingStateRecord(
            company_id, user_id, HALTED, DRAWDOWN_LIMIT, reason, DRAWDOWN_ACTOR,
            self._clock.now_ns(),
        )  # fmt: skip
        await self._put(record, Actor(DRAWDOWN_ACTOR))
        return True

    async def _put(self, record: TradingStateRecord, actor: Actor) -> None:
        earlier = self._settings.get((record.company_id, record.user_id))
        await self._store.put_trading_state(record)
        await audit.record(
            self._store,
            AdminAction(
                company_id=record.company_id,
                actor=actor,
                action=TRADING_STATE_SET,
                scope=f"{'USER' if record.user_id else 'COMPANY'} trading state",
                subject_user_id=record.user_id,
                at_ns=record.changed_at_ns,
                reason=record.reason,
                # No setting made yet is ACTIVE: that is the state the engine applied.
                old={"state": _STATE_WORDS[earlier.state if earlier is not None else ACTIVE]},
                new={"state": _STATE_WORDS[record.state]},
                # What setting_from_audit reads back.
                detail={"state": _STATE_WORDS[record.state], "reason": record.reason},
            ),
        )
        self._settings[(record.company_id, record.user_id)] = record
        for (company_id, user_id), protection in self._users.items():
            if company_id == record.company_id and record.user_id in (_COMPANY, user_id):
                self._refresh(company_id, user_id, protection)

    def _refresh(self, company_id: str, user_id: str, protection: Protection) -> None:
        user = self._settings.get((company_id, user_id))
        company = self._settings.get((company_id, _COMPANY))
        protection.state, protection.why = state_in_force(user, company)


def _scope_violations(scope: int, user_id: str) -> list[errors.FieldViolation]:
    """Why `scope` and `user_id` do not say whom to set; UNSPECIFIED with a user id is USER,
    as callers sent it before the scope existed."""
    if scope not in (_UNSPECIFIED_SCOPE, USER_SCOPE, COMPANY_SCOPE):
        return [errors.FieldViolation("scope", f"unknown scope {scope}: USER or COMPANY")]
    if scope == COMPANY_SCOPE and user_id:
        problem = "must be empty for TRADING_STATE_SCOPE_COMPANY, which covers every user"
        return [errors.FieldViolation("user_id", problem)]
    if scope == USER_SCOPE and not user_id:
        problem = "required for TRADING_STATE_SCOPE_USER: name the user"
        return [errors.FieldViolation("user_id", problem)]
    if scope == _UNSPECIFIED_SCOPE and not user_id:
        problem = (
            "required: TRADING_STATE_SCOPE_COMPANY to set the company-wide state, "
            "or TRADING_STATE_SCOPE_USER with user_id"
        )
        return [errors.FieldViolation("scope", problem)]
    return []


def state_in_force(
    user: TradingStateRecord | None, company: TradingStateRecord | None
) -> tuple[int, str]:
    """The stricter of the user's and the company's settings, and why (empty when ACTIVE)."""
    state = stricter(
        user.state if user is not None else ACTIVE,
        company.state if company is not None else ACTIVE,
    )
    # The cancellation reason names the setting that decided, and its reason.
    deciding = company if company is not None and company.state == state else user
    return state, "" if state == ACTIVE or deciding is None else _describe(deciding)


def setting_from_audit(record: AuditRecord) -> TradingStateRecord:
    """The setting an audited trading-state change made (its cause is not audited)."""
    detail = json.loads(record.detail)
    return TradingStateRecord(
        record.company_id, record.subject_user_id, _STATES_BY_WORD[detail["state"]],
        service_pb2.TRADING_STATE_CAUSE_UNSPECIFIED, detail["reason"], record.actor,
        record.at_ns,
    )  # fmt: skip


def _describe(record: TradingStateRecord) -> str:
    scope = f"user {record.user_id}" if record.user_id else f"company {record.company_id}"
    return (
        f"trading is {_STATE_WORDS[record.state]} for {scope} "
        f"(set by {record.changed_by}: {record.reason})"
    )
