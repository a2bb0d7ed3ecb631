"""Domain errors: raised anywhere below the transports, mapped to a status once.

Each error carries a stable machine-readable `reason` (UPPER_SNAKE_CASE, sent
as google.rpc.ErrorInfo) and a message a caller can act on.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence


@dataclasses.dataclass(frozen=True, slots=True)
class FieldViolation:
    """One bad field: its path in the request (`batch.predictions[2].confidence`) and why."""

    field: str
    description: str


class EngineError(Exception):
    """Base of every error the API reports with a status code."""

    default_reason = "ENGINE_ERROR"

    def __init__(self, message: str, *, reason: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.reason = reason or self.default_reason


# The reason of an Undecodable: bytes that are not the message they should be.
UNDECODABLE = "UNDECODABLE"


class InvalidArgument(EngineError):
    """The request is malformed; `violations` names each offending field."""

    default_reason = "INVALID_ARGUMENT"

    def __init__(
        self,
        message: str,
        violations: tuple[FieldViolation, ...] = (),
        *,
        reason: str | None = None,
    ) -> None:
        super().__init__(message, reason=reason)
        self.violations = violations


class Undecodable(InvalidArgument):
    """The bytes are not the message they should be (INVALID_ARGUMENT, reason UNDECODABLE)."""

    default_reason = UNDECODABLE


def invalid(summary: str, violations: Sequence[FieldViolation]) -> InvalidArgument:
    """INVALID_ARGUMENT whose message lists every violation after `summary`."""
    return InvalidArgument(
        f"{summary}: " + "; ".join(f"{v.field} {v.description}" for v in violations),
        tuple(violations),
    )


class Unauthenticated(EngineError):
    """The caller's credentials are missing or invalid."""

    default_reason = "UNAUTHENTICATED"


class PermissionDenied(EngineError):
    """The caller may not do this, for example across tenants."""

    default_reason = "PERMISSION_DENIED"


class NotFound(EngineError):
    """The named resource does not exist for this caller."""

    default_reason = "NOT_FOUND"


class FailedPrecondition(EngineError):
    """The system is not in the state the request assumes, for example a stale version."""

    default_reason = "FAILED_PRECONDITION"


class ResourceExhausted(EngineError):
    """A limit was reached; retry later or send less."""

    default_reason = "RESOURCE_EXHAUSTED"


class Unavailable(EngineError):
    """A dependency is down; retrying later may succeed."""

    default_reason = "UNAVAILABLE"
