"""Who is calling, and whose data a call may touch.

Every stored row and every cached strategy is keyed by company and user, and
every operation names both from the Caller, never from the request alone: a
request can narrow the user within the caller's company (admins only), never
change the company. That is what makes crossing tenants impossible rather than
merely checked.
"""

from __future__ import annotations

import dataclasses

from tradeflow.common.v1 import tier_pb2
from trading_engine import errors

ADMIN_ROLE = "admin"


@dataclasses.dataclass(frozen=True, slots=True)
class Caller:
    """An authenticated user: the claims of a verified token.

    On the bus without authentication, the caller is the envelope's tenant and
    its tier is UNSPECIFIED: the tier the payload states then applies.
    """

    user_id: str
    company_id: str
    # tradeflow.common.v1.SubscriptionTier value.
    tier: int
    roles: frozenset[str] = frozenset()

    @property
    def is_admin(self) -> bool:
        """A company admin: manages company overrides and acts for the company's users."""
        return ADMIN_ROLE in self.roles

    @property
    def tier_name(self) -> str:
        return tier_name(self.tier)


def tier_name(tier: int) -> str:
    """FREE, PRO or ENTERPRISE; the number itself for a value the contract does not define."""
    for value in tier_pb2.SubscriptionTier.values():
        if value == tier:
            return tier_pb2.SubscriptionTier.Name(value)[len("SUBSCRIPTION_TIER_") :]
    return str(tier)


def subject_user(caller: Caller, requested_user_id: str) -> str:
    """The user of the caller's company a request is about.

    Empty means the caller. Another user needs the admin role; the company is
    always the caller's, so an admin reaches only the users of their own company.
    """
    if not requested_user_id or requested_user_id == caller.user_id:
        return caller.user_id
    if not caller.is_admin:
        raise errors.PermissionDenied(
            f"user {caller.user_id!r} may not act for user {requested_user_id!r}: "
            "only a company admin may name another user of the company",
            reason="NOT_COMPANY_ADMIN",
        )
    return requested_user_id


def require_admin(caller: Caller, action: str) -> None:
    """Refuse `action` unless the caller is a company admin."""
    if not caller.is_admin:
        raise errors.PermissionDenied(
            f"{action} needs the {ADMIN_ROLE!r} role; the caller's token has "
            f"{sorted(caller.roles) or 'no roles'}",
            reason="NOT_COMPANY_ADMIN",
        )


def check_batch_tenant(caller: Caller, user_id: str, company_id: str, tier: int) -> None:
    """A prediction batch must be for the caller, at the caller's tier."""
    if company_id != caller.company_id or user_id != caller.user_id:
        raise errors.PermissionDenied(
            f"the batch is for user {user_id!r} of company {company_id!r}, "
            f"but the caller is user {caller.user_id!r} of company {caller.company_id!r}",
            reason="TENANT_MISMATCH",
        )
    unstated = tier_pb2.SUBSCRIPTION_TIER_UNSPECIFIED
    if unstated not in (tier, caller.tier) and tier != caller.tier:
        raise errors.PermissionDenied(
            f"the batch claims tier {tier_name(tier)}, "
            f"but the caller's token says {caller.tier_name}",
            reason="TIER_MISMATCH",
        )
