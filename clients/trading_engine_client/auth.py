"""Bearer tokens: the call metadata the clients send, and interceptors for raw channels."""

from __future__ import annotations

from collections.abc import AsyncIterable, Callable, Iterable
from typing import Any

import grpc

Token = str | Callable[[], str]


def bearer_metadata(token: Token | None) -> tuple[tuple[str, str], ...]:
    """The call metadata carrying `token`, asked afresh from a callable on every call.

    Empty without a token: HealthCheck needs none.
    """
    if token is None:
        return ()
    current = token() if callable(token) else token
    return (("authorization", f"Bearer {current}"),)


def bearer_token(token: Token) -> list[grpc.aio.ClientInterceptor]:
    """Channel interceptors adding `authorization: Bearer <token>` to every call.

    `token` is a string, or a callable returning one so a caller can renew it.
    grpc.aio files an interceptor under the first call kind it implements
    only, so each kind gets an interceptor of its own.
    """
    return [
        _UnaryUnary(token),
        _UnaryStream(token),
        _StreamUnary(token),
        _StreamStream(token),
    ]


class _WithToken:
    def __init__(self, token: Token) -> None:
        self._token = token

    def _details(self, details: grpc.aio.ClientCallDetails) -> grpc.aio.ClientCallDetails:
        metadata = grpc.aio.Metadata(*(details.metadata or ()))
        for key, value in bearer_metadata(self._token):
            metadata[key] = value
        return grpc.aio.ClientCallDetails(
            details.method, details.timeout, metadata, details.credentials, details.wait_for_ready
        )


class _UnaryUnary(_WithToken, grpc.aio.UnaryUnaryClientInterceptor):
    async def intercept_unary_unary(
        self, continuation: Callable[..., Any], client_call_details: Any, request: Any
    ) -> Any:
        return await continuation(self._details(client_call_details), request)


class _UnaryStream(_WithToken, grpc.aio.UnaryStreamClientInterceptor):
    async def intercept_unary_stream(
        self, continuation: Callable[..., Any], client_call_details: Any, request: Any
    ) -> Any:
        return await continuation(self._details(client_call_details), request)


class _StreamUnary(_WithToken, grpc.aio.StreamUnaryClientInterceptor):
    async def intercept_stream_unary(
        self,
        continuation: Callable[..., Any],
        client_call_details: Any,
        request_iterator: Iterable[Any] | AsyncIterable[Any],
    ) -> Any:
        return await continuation(self._details(client_call_details), request_iterator)


class _StreamStream(_WithToken, grpc.aio.StreamStreamClientInterceptor):
    async def intercept_stream_stream(
        self,
        continuation: Callable[..., Any],
        client_call_details: Any,
        request_iterator: Iterable[Any] | AsyncIterable[Any],
    ) -> Any:
        return await continuation(self._details(client_call_details), request_iterator)
