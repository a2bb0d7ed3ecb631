"""Refuses a request beyond the contract's size limits before its handler sees it.

Every request message of the engine's services, unary or streamed, is checked against the
bounds its fields declare (trading_engine.field_limits); one beyond them fails the call with
INVALID_ARGUMENT naming each field and its bound, so nothing of it is stored or published.
ManageStrategies is checked per operation by the servicer instead: one bad operation is
answered in the stream, which goes on. Methods whose requests have no bounded field are
left as they are, so the prediction path pays nothing.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Any, Final

import grpc
from google.protobuf import descriptor_pool

from trading_engine import field_limits
from trading_engine.api.handlers import Behaviour, rewrap

if TYPE_CHECKING:
    Handler = grpc.RpcMethodHandler[Any, Any]

_OWN_SERVICES: Final = "/tradeflow."
# Checked per operation by the servicer, so that the stream goes on after a bad one.
CHECKED_PER_OPERATION: Final = frozenset(
    {"/tradeflow.trading.v1.TradingEngineService/ManageStrategies"}
)


class RequestLimitsInterceptor(grpc.aio.ServerInterceptor):
    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[Handler | None]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> Handler | None:
        handler = await continuation(handler_call_details)
        method = handler_call_details.method
        if (
            handler is None
            or not method.startswith(_OWN_SERVICES)
            or method in CHECKED_PER_OPERATION
            or not _bounded(method)
        ):
            return handler
        return rewrap(handler, _checking)


def _bounded(method: str) -> bool:
    """Whether the request of `method` ("/package.Service/Method") has a bounded field."""
    service, name = method.removeprefix("/").rsplit("/", 1)
    found = descriptor_pool.Default().FindMethodByName(f"{service}.{name}")
    return field_limits.bounded(found.input_type)


def _checking(behaviour: Behaviour, requests_stream: bool, responses_stream: bool) -> Behaviour:
    check = _checked_requests if requests_stream else _checked_request
    if responses_stream:

        async def streaming(request: Any, context: Any) -> AsyncIterator[Any]:
            async for response in behaviour(check(request), context):
                yield response

        return streaming

    async def unary(request: Any, context: Any) -> Any:
        return await behaviour(check(request), context)

    return unary


def _checked_request(request: Any) -> Any:
    field_limits.check(request)
    return request


async def _checked_requests(requests: AsyncIterator[Any]) -> AsyncIterator[Any]:
    async for request in requests:
        field_limits.check(request)
        yield request
