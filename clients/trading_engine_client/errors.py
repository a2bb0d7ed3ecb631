"""Exceptions the clients raise: one per gRPC status code, and the bus's own.

Every failure a caller can act on has a type of its own, so callers write
`except NotFoundError:` rather than comparing status codes. The mapping from a
status to its exception is made here once, for unary calls, streams and the
errors ManageStrategies reports in-stream.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import ClassVar, cast

import grpc
from google.rpc import error_details_pb2, status_pb2

from trading_engine_client.envelopes import Sealed


class TradingEngineError(Exception):
    """An RPC failed. `reason` is the engine's machine-readable ErrorInfo reason.

    `retriable` says whether the same call may succeed later without any
    change: the clients retry only such errors, and only for calls the engine
    may safely receive twice.
    """

    retriable: ClassVar[bool] = False

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


class ResourceExhaustedError(TradingEngineError):
    """A limit was reached, for example a live stream that fell too far behind."""


class UnavailableError(TradingEngineError):
    """The engine or one of its dependencies is down; retrying later may succeed."""

    retriable = True


class DeadlineExceededError(TradingEngineError):
    """The call did not finish within its deadline; retrying may succeed."""

    retriable = True


class UnimplementedError(TradingEngineError):
    """The engine does not offer this operation (yet): it runs an older build."""


_BY_CODE: dict[grpc.StatusCode, type[TradingEngineError]] = {
    grpc.StatusCode.INVALID_ARGUMENT: InvalidArgumentError,
    grpc.StatusCode.UNAUTHENTICATED: UnauthenticatedError,
    grpc.StatusCode.PERMISSION_DENIED: PermissionDeniedError,
    grpc.StatusCode.NOT_FOUND: NotFoundError,
    grpc.StatusCode.FAILED_PRECONDITION: FailedPreconditionError,
    grpc.StatusCode.RESOURCE_EXHAUSTED: ResourceExhaustedError,
    grpc.StatusCode.UNAVAILABLE: UnavailableError,
    grpc.StatusCode.DEADLINE_EXCEEDED: DeadlineExceededError,
    grpc.StatusCode.UNIMPLEMENTED: UnimplementedError,
}
# google.rpc.Status carries the code as a number.
_CODE_BY_NUMBER = {code.value[0]: code for code in grpc.StatusCode}

_STATUS_DETAILS_KEY = "grpc-status-details-bin"


def rich_status(error: grpc.RpcError) -> status_pb2.Status | None:
    """The google.rpc.Status the server attached to a failed call, if it attached one."""
    # Both gRPC APIs give (key, value) pairs; the stubs type the blocking API's as objects.
    pairs = cast("Iterable[tuple[str, str | bytes]]", error.trailing_metadata() or ())
    for key, value in pairs:
        if key == _STATUS_DETAILS_KEY and isinstance(value, bytes):
            return status_pb2.Status.FromString(value)
    return None


def from_rpc_error(error: grpc.RpcError) -> TradingEngineError:
    """The typed exception for a failed call (grpc.aio's or the blocking API's)."""
    reason, violations = _details(rich_status(error))
    return _typed(error.code(), error.details() or "", reason, violations)


def from_status(status: status_pb2.Status) -> TradingEngineError:
    """The typed exception for a google.rpc.Status, with ErrorInfo and BadRequest decoded.

    ManageStrategies reports a failed operation as such a status in its
    response; `raise from_status(response.error)` makes it the exception the
    unary RPC would have raised.
    """
    reason, violations = _details(status)
    code = _CODE_BY_NUMBER.get(status.code, grpc.StatusCode.UNKNOWN)
    return _typed(code, status.message, reason, violations)


def _details(status: status_pb2.Status | None) -> tuple[str, dict[str, str]]:
    """The ErrorInfo reason and the BadRequest field violations of a status."""
    reason = ""
    violations: dict[str, str] = {}
    for detail in status.details if status is not None else ():
        info = error_details_pb2.ErrorInfo()
        bad_request = error_details_pb2.BadRequest()
        # Unpack checks the type URL and reports whether it matched.
        if detail.Unpack(info):
            reason = info.reason
        elif detail.Unpack(bad_request):
            violations.update({v.field: v.description for v in bad_request.field_violations})
    return reason, violations


def _typed(
    code: grpc.StatusCode, message: str, reason: str, violations: dict[str, str]
) -> TradingEngineError:
    return _BY_CODE.get(code, TradingEngineError)(code, message, reason, violations)


class BusError(Exception):
    """The publisher or subscriber could not use NATS or Kafka."""


class TransportError(BusError):
    """One transport failed: it could not connect, or stopped delivering.

    `transport` is "nats" or "kafka"; the transport's own exception is the
    `__cause__`.
    """

    def __init__(self, transport: str, message: str) -> None:
        super().__init__(f"{transport}: {message}")
        self.transport = transport


class PublishError(BusError):
    """A prediction batch did not reach every configured transport.

    `delivered` names the transports that took it, `failures` maps each other
    transport to its error. The engine decides a message id once, so handing
    the error to `PredictionPublisher.resend` is safe even if a failed
    transport delivers its copy late after all.
    """

    def __init__(
        self,
        message_id: str,
        failures: Mapping[str, BaseException],
        delivered: tuple[str, ...],
        sealed: Sealed,
    ) -> None:
        reasons = "; ".join(f"{name}: {error!r}" for name, error in failures.items())
        super().__init__(
            f"message {message_id} was not published on {', '.join(failures)} ({reasons})"
            + (f"; it was on {', '.join(delivered)}" if delivered else "")
        )
        self.message_id = message_id
        self.failures = dict(failures)
        self.delivered = delivered
        # The envelope as sent, so a resend carries the same id and sequence number.
        self.sealed = sealed
