"""Exceptions keyed by gRPC status code, with the engine's error details decoded."""

from __future__ import annotations

import grpc
from google.rpc import error_details_pb2, status_pb2


class TradingEngineError(Exception):
    """An RPC failed. `reason` is the engine's machine-readable ErrorInfo reason."""

    def __init__(
        self,
        code: grpc.StatusCode,
        message: str,
        reason: str = "",
        field_violations: dict[str, str] | None = None,
    ) -> None:
        super().__init__(f"{code.name}: {message}")
        self.code = code
        self.message = message
        self.reason = reason
        self.field_violations = field_violations or {}


class InvalidArgumentError(TradingEngineError):
    """The request was malformed; `field_violations` maps each bad field to why."""


class UnauthenticatedError(TradingEngineError):
    """The token is missing, expired or invalid."""


class PermissionDeniedError(TradingEngineError):
    """The caller may not do this, for example across tenants."""


class NotFoundError(TradingEngineError):
    """The named resource does not exist for this caller."""


class FailedPreconditionError(TradingEngineError):
    """The resource changed meanwhile (stale version); read it again and retry."""


class UnavailableError(TradingEngineError):
    """The engine or one of its dependencies is down; retrying later may succeed."""


class UnimplementedError(TradingEngineError):
    """The engine does not offer this operation (yet)."""


_BY_CODE: dict[grpc.StatusCode, type[TradingEngineError]] = {
    grpc.StatusCode.INVALID_ARGUMENT: InvalidArgumentError,
    grpc.StatusCode.UNAUTHENTICATED: UnauthenticatedError,
    grpc.StatusCode.PERMISSION_DENIED: PermissionDeniedError,
    grpc.StatusCode.NOT_FOUND: NotFoundError,
    grpc.StatusCode.FAILED_PRECONDITION: FailedPreconditionError,
    grpc.StatusCode.UNAVAILABLE: UnavailableError,
    grpc.StatusCode.UNIMPLEMENTED: UnimplementedError,
}


_STATUS_DETAILS_KEY = "grpc-status-details-bin"


def rich_status(error: grpc.aio.AioRpcError) -> status_pb2.Status | None:
    """The google.rpc.Status the server attached to a failed call, if it attached one."""
    for key, value in error.trailing_metadata() or ():
        if key == _STATUS_DETAILS_KEY and isinstance(value, bytes):
            return status_pb2.Status.FromString(value)
    return None


def from_rpc_error(error: grpc.aio.AioRpcError) -> TradingEngineError:
    """The typed exception for a failed call, with ErrorInfo and BadRequest details decoded."""
    reason = ""
    violations: dict[str, str] = {}
    status = rich_status(error)
    for detail in status.details if status is not None else ():
        info = error_details_pb2.ErrorInfo()
        bad_request = error_details_pb2.BadRequest()
        # Unpack checks the type URL and reports whether it matched.
        if detail.Unpack(info):
            reason = info.reason
        elif detail.Unpack(bad_request):
            violations.update({v.field: v.description for v in bad_request.field_violations})
    kind = _BY_CODE.get(error.code(), TradingEngineError)
    return kind(error.code(), error.details() or "", reason, violations)
