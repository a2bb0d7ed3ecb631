"""Authenticates every call of the engine's services, once per call or stream.

The token is verified when the call starts, from its metadata, and the Caller
is put in a context variable for the handler; a stream of a thousand batches
costs one signature check. Health, reflection and the HealthCheck RPC need no
token. A refused call gets a handler of its own kind that fails with
UNAUTHENTICATED, so streaming calls are refused as cleanly as unary ones, and
before anything else about the request is looked at.
"""

from __future__ import annotations

import contextvars
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Any

import grpc

from trading_engine import errors, logs
from trading_engine.api.handlers import Behaviour, rewrap
from trading_engine.api.status import abort_with_error
from trading_engine.auth.tokens import TokenVerifier, bearer_token
from trading_engine.tenancy import Caller

if TYPE_CHECKING:
    from trading_engine.api.status import Context

    Handler = grpc.RpcMethodHandler[Any, Any]

_OWN_SERVICES = "/tradeflow."
# Methods of the engine's services that answer without a token.
PUBLIC_METHODS = frozenset({"/tradeflow.trading.v1.TradingEngineService/HealthCheck"})

_caller: contextvars.ContextVar[Caller] = contextvars.ContextVar("caller")


def current_caller() -> Caller:
    """The authenticated caller of the RPC being handled."""
    try:
        return _caller.get()
    except LookupError:
        # Only reachable if a handler runs without the interceptor: refuse, never guess.
        raise errors.Unauthenticated("no authenticated caller for this call") from None


class AuthInterceptor(grpc.aio.ServerInterceptor):
    def __init__(self, verifier: TokenVerifier) -> None:
        self._verifier = verifier

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[Handler | None]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> Handler | None:
        handler = await continuation(handler_call_details)
        method = handler_call_details.method
        if handler is None or not method.startswith(_OWN_SERVICES) or method in PUBLIC_METHODS:
            return handler
        outcome: Caller | errors.Unauthenticated
        try:
            outcome = self._verifier.verify(bearer_token(_authorization(handler_call_details)))
        except errors.Unauthenticated as refusal:
            outcome = refusal
        return _bind(handler, outcome, method.rpartition("/")[2])


def _authorization(details: grpc.HandlerCallDetails) -> list[str]:
    metadata = details.invocation_metadata or ()
    return [str(value) for key, value in metadata if key == "authorization"]


def _run_as(caller: Caller, rpc: str) -> None:
    _caller.set(caller)
    logs.bind(company_id=caller.company_id, user_id=caller.user_id, rpc=rpc)


def _bind(handler: Handler, outcome: Caller | errors.Unauthenticated, rpc: str) -> Handler:
    """The same handler, run as `outcome`'s caller of `rpc`, or failing with `outcome`."""

    def as_caller(behaviour: Behaviour, _: bool, responses_stream: bool) -> Behaviour:
        async def unary(request: Any, context: Context) -> Any:
            if isinstance(outcome, errors.Unauthenticated):
                await abort_with_error(context, outcome)
            _run_as(outcome, rpc)
            return await behaviour(request, context)

        async def streaming(request: Any, context: Context) -> AsyncIterator[Any]:
            if isinstance(outcome, errors.Unauthenticated):
                await abort_with_error(context, outcome)
            _run_as(outcome, rpc)
            async for response in behaviour(request, context):
                yield response

        return streaming if responses_stream else unary

    return rewrap(handler, as_caller)
