"""Builds the grpc.aio server: the engine service, standard health, reflection, interceptors."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1._async import HealthServicer
from grpc_reflection.v1alpha import reflection
from opentelemetry.instrumentation.grpc import aio_server_interceptor
from opentelemetry.sdk.trace import TracerProvider

from tradeflow.trading.v1 import trading_engine_service_pb2 as service_pb2
from tradeflow.trading.v1 import trading_engine_service_pb2_grpc as service_grpc
from trading_engine.api.auth import AuthInterceptor
from trading_engine.api.limits import RequestLimitsInterceptor
from trading_engine.api.predictions import PredictionHandlers
from trading_engine.api.rpc_metrics import RpcMetrics, RpcMetricsInterceptor
from trading_engine.api.status import ErrorMappingInterceptor
from trading_engine.auth.tokens import TokenVerifier

if TYPE_CHECKING:
    Handler = grpc.RpcMethodHandler[Any, Any]

ENGINE_SERVICE = service_pb2.DESCRIPTOR.services_by_name["TradingEngineService"].full_name
# Service names the standard health service answers for; "" is the whole server.
HEALTH_SERVICES = ("", ENGINE_SERVICE)


def build_server(
    servicer: service_grpc.TradingEngineServiceServicer,
    predictions: PredictionHandlers,
    health: HealthServicer,
    verifier: TokenVerifier,
    tracer_provider: TracerProvider | None = None,
    rpc_metrics: RpcMetrics | None = None,
) -> grpc.aio.Server:
    # The first interceptor is the outermost: a call is counted and traced even when
    # refused, and without a token there is no other answer; a request beyond the
    # contract's size limits is refused inside the error mapping, which gives it its status.
    counting = [RpcMetricsInterceptor(rpc_metrics)] if rpc_metrics is not None else []
    tracing = (
        # The instrumentation package ships no type hints.
        [aio_server_interceptor(tracer_provider=tracer_provider)]  # type: ignore[no-untyped-call]
        if tracer_provider
        else []
    )
    server = grpc.aio.server(
        interceptors=[
            *counting,
            *tracing,
            AuthInterceptor(verifier),
            ErrorMappingInterceptor(),
            RequestLimitsInterceptor(),
        ],
        # gRPC sets SO_REUSEPORT by default, so a second engine on the same port
        # would silently share it; fail loudly instead.
        options=[("grpc.so_reuseport", 0)],
    )
    _add_engine_service(servicer, predictions, server)
    health_pb2_grpc.add_HealthServicer_to_server(health, server)
    reflection.enable_server_reflection(
        (
            ENGINE_SERVICE,
            health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
            reflection.SERVICE_NAME,
        ),
        server,
    )
    return server


class _Registrations:
    """Takes the method handlers the generated add_*_to_server function registers."""

    def __init__(self) -> None:
        self.service = ""
        self.handlers: dict[str, Handler] = {}

    def add_generic_rpc_handlers(self, handlers: object) -> None:
        """The same handlers again, for lookup by name; rebuilt from `handlers` below."""

    def add_registered_method_handlers(self, service: str, handlers: dict[str, Handler]) -> None:
        self.service = service
        self.handlers = dict(handlers)


def _add_engine_service(
    servicer: service_grpc.TradingEngineServiceServicer,
    predictions: PredictionHandlers,
    server: grpc.aio.Server,
) -> None:
    """The service as generated, but for its two prediction RPCs, which take and give bytes."""
    registrations = _Registrations()
    # The generated function only calls the two methods _Registrations has.
    service_grpc.add_TradingEngineServiceServicer_to_server(
        servicer, cast(grpc.aio.Server, registrations)
    )
    handlers = registrations.handlers
    # No (de)serialisers: the handlers get the request's bytes and return the response's.
    handlers["ProcessPredictions"] = grpc.stream_stream_rpc_method_handler(
        predictions.process_predictions
    )
    handlers["ProcessPredictionBatch"] = grpc.unary_unary_rpc_method_handler(
        predictions.process_prediction_batch
    )
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler(registrations.service, handlers),)
    )
    server.add_registered_method_handlers(registrations.service, handlers)


async def mark_serving(health: HealthServicer) -> None:
    for service in HEALTH_SERVICES:
        await health.set(service, health_pb2.HealthCheckResponse.SERVING)
