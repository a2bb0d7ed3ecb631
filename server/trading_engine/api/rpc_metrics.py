"""Per-RPC metrics: calls started and handled by status code, and how long they took.

Named and labelled as grpc-ecosystem's go-grpc-prometheus names them
(`grpc_server_started_total`, `grpc_server_handled_total`,
`grpc_server_handling_seconds`, labels `grpc_type`, `grpc_service`,
`grpc_method`, `grpc_code` with codes spelt `Unknown`, `DeadlineExceeded`),
so the dashboards and alerts written for gRPC servers read them as they are
(decision 35). The interceptor is the outermost: a call refused for its token
counts too, with its code.
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Any, Final

import grpc
from prometheus_client import CollectorRegistry, Counter, Histogram

from trading_engine.api.handlers import rewrap

if TYPE_CHECKING:
    Handler = grpc.RpcMethodHandler[Any, Any]
    Context = grpc.aio.ServicerContext[Any, Any]

# From half a millisecond (a cached read) to 10 s; a stream's whole life lands in +Inf.
_SECONDS_BUCKETS: Final = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)
_SECONDS_BUCKETS_LONG: Final = (2.5, 5.0, 10.0)
_LABELS: Final = ("grpc_type", "grpc_service", "grpc_method")
_TYPES: Final = {
    (False, False): "unary",
    (True, False): "client_stream",
    (False, True): "server_stream",
    (True, True): "bidi_stream",
}


# Go's spelling of the two codes its camel case does not derive from the name.
_GO_SPELLING: Final = {grpc.StatusCode.OK: "OK", grpc.StatusCode.CANCELLED: "Canceled"}


def code_label(code: grpc.StatusCode) -> str:
    """A code as go-grpc-prometheus writes it: OK, Canceled, DeadlineExceeded, ..."""
    return _GO_SPELLING.get(code) or "".join(word.capitalize() for word in code.name.split("_"))


_OK: Final = code_label(grpc.StatusCode.OK)
_CANCELLED: Final = code_label(grpc.StatusCode.CANCELLED)
_UNKNOWN: Final = code_label(grpc.StatusCode.UNKNOWN)


class RpcMetrics:
    """The three metric families, in the registry /metrics serves."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.started = Counter(
            "grpc_server_started",
            "RPCs started on the server.",
            _LABELS,
            registry=registry,
        )
        self.handled = Counter(
            "grpc_server_handled",
            "RPCs completed on the server, by status code.",
            (*_LABELS, "grpc_code"),
            registry=registry,
        )
        self.seconds = Histogram(
            "grpc_server_handling_seconds",
            "Time from an RPC's start to its status (a stream's whole life).",
            _LABELS,
            buckets=_SECONDS_BUCKETS + _SECONDS_BUCKETS_LONG,
            registry=registry,
        )


class RpcMetricsInterceptor(grpc.aio.ServerInterceptor):
    def __init__(self, metrics: RpcMetrics) -> None:
        self._metrics = metrics

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[Handler | None]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> Handler | None:
        handler = await continuation(handler_call_details)
        if handler is None:
            return None
        service, _, method = handler_call_details.method.lstrip("/").rpartition("/")

        def wrap(behaviour: Callable[..., Any], requests: bool, responses: bool) -> Any:
            labels = (_TYPES[requests, responses], service, method)
            if responses and inspect.isasyncgenfunction(behaviour):
                return self._streamed(behaviour, labels)
            # Unary answers, and streams a library servicer writes with context.write().
            return self._awaited(behaviour, labels)

        return rewrap(handler, wrap)

    def _awaited(self, behaviour: Callable[..., Any], labels: tuple[str, ...]) -> Any:
        async def handle(request: Any, context: Context) -> Any:
            self._metrics.started.labels(*labels).inc()
            started = time.perf_counter()
            code = _UNKNOWN
            try:
                response = await behaviour(request, context)
                code = _code_of(context)
                return response
            except asyncio.CancelledError:
                code = _CANCELLED
                raise
            except grpc.aio.AbortError:
                code = _code_of(context)
                raise
            finally:
                self._finished(labels, code, started)

        return handle

    def _streamed(self, behaviour: Callable[..., Any], labels: tuple[str, ...]) -> Any:
        async def handle(request: Any, context: Context) -> AsyncIterator[Any]:
            self._metrics.started.labels(*labels).inc()
            started = time.perf_counter()
            code = _UNKNOWN
            try:
                async for response in behaviour(request, context):
                    yield response
                code = _code_of(context)
            except (asyncio.CancelledError, GeneratorExit):
                code = _CANCELLED
                raise
            except grpc.aio.AbortError:
                code = _code_of(context)
                raise
            finally:
                self._finished(labels, code, started)

        return handle

    def _finished(self, labels: tuple[str, ...], code: str, started: float) -> None:
        self._metrics.handled.labels(*labels, code).inc()
        self._metrics.seconds.labels(*labels).observe(time.perf_counter() - started)


def _code_of(context: Context) -> str:
    """The status the handler set or aborted with; OK when it set none."""
    # None until set, whatever the stubs say.
    code: grpc.StatusCode | None = context.code()
    return code_label(code) if code is not None else _OK
