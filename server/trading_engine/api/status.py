"""Maps domain errors to gRPC statuses, once, for every kind of RPC.

The status carries google.rpc.ErrorInfo (reason and domain) and, for invalid
input, google.rpc.BadRequest with one field violation per bad field; Envoy
turns the same status into the JSON body of the REST error.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Any, NoReturn

import grpc
from google.protobuf import any_pb2, message
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from trading_engine import errors
from trading_engine.api.handlers import rewrap

ERROR_DOMAIN = "trading-engine.tradeflow"

_OWN_SERVICES = "/tradeflow."

if TYPE_CHECKING:
    Handler = grpc.RpcMethodHandler[Any, Any]
    Context = grpc.aio.ServicerContext[Any, Any]

_log = logging.getLogger(__name__)

_CODES: dict[type[errors.EngineError], int] = {
    errors.InvalidArgument: code_pb2.INVALID_ARGUMENT,
    errors.Unauthenticated: code_pb2.UNAUTHENTICATED,
    errors.PermissionDenied: code_pb2.PERMISSION_DENIED,
    errors.NotFound: code_pb2.NOT_FOUND,
    errors.FailedPrecondition: code_pb2.FAILED_PRECONDITION,
    errors.ResourceExhausted: code_pb2.RESOURCE_EXHAUSTED,
    errors.Unavailable: code_pb2.UNAVAILABLE,
}


# A status travels in the call's trailers, which gRPC clients refuse beyond 16 KiB (and may
# refuse beyond 8 KiB): an error echoing a 100,000-character id reached its caller as
# RESOURCE_EXHAUSTED instead of itself. So the texts are clipped, in UTF-8 bytes, to keep
# the trailers under 6 KiB however they are escaped (the message is also percent-encoded).
_MAX_MESSAGE_BYTES = 512
_MAX_FIELD_BYTES = 200
_MAX_DESCRIPTION_BYTES = 400
_MAX_VIOLATION_BYTES = 2560
_ELLIPSIS = "…"


def to_status_proto(error: errors.EngineError) -> status_pb2.Status:
    """The google.rpc.Status for a domain error, with its details."""
    code = next(
        (code for kind, code in _CODES.items() if isinstance(error, kind)), code_pb2.INTERNAL
    )
    details = [_pack(error_details_pb2.ErrorInfo(reason=error.reason, domain=ERROR_DOMAIN))]
    if isinstance(error, errors.InvalidArgument) and error.violations:
        bad_request = error_details_pb2.BadRequest(
            field_violations=_listed_violations(error.violations)
        )
        details.append(_pack(bad_request))
    return status_pb2.Status(
        code=code, message=_clipped(error.message, _MAX_MESSAGE_BYTES), details=details
    )


def _listed_violations(
    violations: tuple[errors.FieldViolation, ...],
) -> list[error_details_pb2.BadRequest.FieldViolation]:
    """The violations, clipped, as many as fit; the last line counts the ones left out."""
    listed = []
    budget = _MAX_VIOLATION_BYTES
    for index, violation in enumerate(violations):
        field = _clipped(violation.field, _MAX_FIELD_BYTES)
        description = _clipped(violation.description, _MAX_DESCRIPTION_BYTES)
        budget -= len(field.encode()) + len(description.encode())
        if budget < 0:
            left = len(violations) - index
            listed.append(
                error_details_pb2.BadRequest.FieldViolation(
                    field=_ELLIPSIS, description=f"{left} more violations not listed"
                )
            )
            break
        listed.append(
            error_details_pb2.BadRequest.FieldViolation(field=field, description=description)
        )
    return listed


def _clipped(text: str, limit: int) -> str:
    """`text` cut to at most `limit` UTF-8 bytes, on a character boundary, marked when cut."""
    encoded = text.encode()
    if len(encoded) <= limit:
        return text
    kept = encoded[: limit - len(_ELLIPSIS.encode())].decode(errors="ignore")
    return kept + _ELLIPSIS


def to_grpc_status(error: errors.EngineError) -> grpc.Status:
    return rpc_status.to_status(to_status_proto(error))


def _pack(message: Any) -> any_pb2.Any:
    packed = any_pb2.Any()
    packed.Pack(message)
    return packed


class ErrorMappingInterceptor(grpc.aio.ServerInterceptor):
    """Turns domain errors raised by the engine's handlers into a status with details.

    Each of the four handler kinds is rebuilt as a handler of the same kind,
    so streaming RPCs get the same mapping as unary ones. Request bytes that do
    not decode become INVALID_ARGUMENT too (gRPC itself would answer INTERNAL).
    """

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[Handler | None]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> Handler | None:
        handler = await continuation(handler_call_details)
        # Health and reflection are library servicers that report their own statuses.
        if handler is None or not handler_call_details.method.startswith(_OWN_SERVICES):
            return handler
        return rewrap(handler, _mapping_errors, _tolerant(handler.request_deserializer))


class _Undecodable:
    """Stands in for a request message whose bytes did not decode."""

    __slots__ = ("problem",)

    def __init__(self, problem: str) -> None:
        self.problem = problem

    def error(self) -> errors.Undecodable:
        return errors.Undecodable(
            f"the request message does not decode: {self.problem}",
            (errors.FieldViolation("request", self.problem),),
        )


def _tolerant(deserializer: Callable[[bytes], Any] | None) -> Callable[[bytes], Any] | None:
    if deserializer is None:
        return None

    def deserialize(data: bytes) -> Any:
        try:
            return deserializer(data)
        except message.DecodeError as error:
            return _Undecodable(str(error) or "malformed protobuf")

    return deserialize


def _checked_request(request: Any) -> Any:
    if isinstance(request, _Undecodable):
        raise request.error()
    return request


async def _checked_requests(requests: AsyncIterator[Any]) -> AsyncIterator[Any]:
    async for request in requests:
        if isinstance(request, _Undecodable):
            raise request.error()
        yield request


async def abort_with_error(context: Context, error: errors.EngineError) -> NoReturn:
    """End the call with the status of `error`."""
    _log.info("request failed: %s (%s)", error.message, error.reason)
    await context.abort_with_status(to_grpc_status(error))


def _mapping_errors(
    behaviour: Callable[..., Any], requests_stream: bool, responses_stream: bool
) -> Callable[..., Any]:
    check = _checked_requests if requests_stream else _checked_request
    return (_wrap_stream if responses_stream else _wrap_unary)(behaviour, check)


def _wrap_unary(behaviour: Callable[..., Any], check: Callable[[Any], Any]) -> Callable[..., Any]:
    async def handle(request: Any, context: Context) -> Any:
        try:
            return await behaviour(check(request), context)
        except errors.EngineError as error:
            await abort_with_error(context, error)

    return handle


def _wrap_stream(behaviour: Callable[..., Any], check: Callable[[Any], Any]) -> Callable[..., Any]:
    # The engine's streaming handlers return async iterators of responses.
    async def handle(request: Any, context: Context) -> AsyncIterator[Any]:
        try:
            async for response in behaviour(check(request), context):
                yield response
        except errors.EngineError as error:
            await abort_with_error(context, error)

    return handle
