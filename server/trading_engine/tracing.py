"""Tracing with OpenTelemetry, W3C trace context carried through the bus.

Off by default (`--tracing-exporter off`): nothing is recorded and the bus
passes the producer's trace context on unchanged. On (console or OTLP), gRPC
calls are traced by opentelemetry-instrumentation-grpc, and a bus message
gets a consumer span whose parent is the producer's span named in the
envelope (or the `traceparent` header), with decide, risk and publish spans
inside; the signals go out carrying the publish span's context, so one trace
follows a prediction from the ML producer to the signal consumer.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Final

from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    ConsoleSpanExporter,
    SpanExporter,
)
from opentelemetry.trace import SpanKind
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from tradeflow.common.v1 import trace_pb2
from trading_engine import __version__

SERVICE_NAME: Final = "trading-engine"
_PROPAGATOR: Final = TraceContextTextMapPropagator()
_NO_SPAN: Final = contextlib.nullcontext()
CONSUMER: Final = SpanKind.CONSUMER
PRODUCER: Final = SpanKind.PRODUCER
CLIENT: Final = SpanKind.CLIENT
INTERNAL: Final = SpanKind.INTERNAL


class Tracing:
    """The engine's tracer, or nothing at all when tracing is off."""

    def __init__(self, provider: TracerProvider | None = None) -> None:
        self.provider = provider
        self._tracer = provider.get_tracer("trading_engine", __version__) if provider else None

    @classmethod
    def exporting(cls, exporter: SpanExporter) -> Tracing:
        provider = TracerProvider(
            resource=Resource.create({"service.name": SERVICE_NAME, "service.version": __version__})
        )
        provider.add_span_processor(BatchSpanProcessor(exporter))
        return cls(provider)

    @classmethod
    def configured(cls, exporter: str, otlp_endpoint: str) -> Tracing:
        """From the settings (config.TRACING_EXPORTERS): off, console, or otlp to the endpoint."""
        if exporter == "off":
            return cls()
        if exporter == "console":
            return cls.exporting(ConsoleSpanExporter())
        return cls.exporting(OTLPSpanExporter(endpoint=otlp_endpoint, insecure=True))

    def span(
        self,
        name: str,
        kind: SpanKind = INTERNAL,
        parent: trace_pb2.TraceContext | None = None,
        **attributes: str | int,
    ) -> contextlib.AbstractContextManager[None]:
        """A span around the block, child of `parent` if given, else of the current span."""
        if self._tracer is None:
            # Every batch passes here: off, it costs one call and no allocation.
            return _NO_SPAN
        return self._traced(self._tracer, name, kind, parent, attributes)

    @staticmethod
    @contextlib.contextmanager
    def _traced(
        tracer: trace.Tracer,
        name: str,
        kind: SpanKind,
        parent: trace_pb2.TraceContext | None,
        attributes: dict[str, str | int],
    ) -> Iterator[None]:
        context = None
        if parent is not None and parent.traceparent:
            context = _PROPAGATOR.extract(
                {"traceparent": parent.traceparent, "tracestate": parent.tracestate}
            )
        with tracer.start_as_current_span(name, context=context, kind=kind, attributes=attributes):
            yield

    def carried(self, inbound: trace_pb2.TraceContext) -> trace_pb2.TraceContext:
        """The trace context an output carries: the current span's, or the input's when off."""
        if self._tracer is None:
            return inbound
        carrier: dict[str, str] = {}
        _PROPAGATOR.inject(carrier)
        outbound = trace_pb2.TraceContext()
        outbound.CopyFrom(inbound)
        outbound.traceparent = carrier.get("traceparent", inbound.traceparent)
        outbound.tracestate = carrier.get("tracestate", "")
        return outbound

    def shutdown(self) -> None:
        """Export what is buffered, then stop."""
        if self.provider is not None:
            self.provider.shutdown()
