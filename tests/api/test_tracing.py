"""gRPC calls are traced when tracing is on, with the engine's own spans inside."""

from __future__ import annotations

from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from tests.factories import batch, live, prediction
from tests.support import TRADER, Stubs, Tokens
from tradeflow.common.v1 import trace_pb2
from tradeflow.trading.v1 import trading_engine_service_pb2 as service_pb2
from trading_engine.app import Application
from trading_engine.config import EngineSettings
from trading_engine.tracing import Tracing


async def test_a_traced_call_holds_the_decision_span(
    engine_settings: EngineSettings, tokens: Tokens
) -> None:
    spans = InMemorySpanExporter()
    tracing = Tracing.exporting(spans)
    application = Application(engine_settings, tracing=tracing)
    await application.start()
    try:
        stubs = Stubs(application.grpc_address, tokens)
        try:
            await stubs.as_(TRADER).ProcessPredictionBatch(
                service_pb2.ProcessPredictionBatchRequest(
                    batch=live(batch("b1", [prediction("p1")]))
                )
            )
        finally:
            await stubs.close()
        assert tracing.provider is not None
        tracing.provider.force_flush()
    finally:
        await application.stop()

    by_name = {span.name: span for span in spans.get_finished_spans()}
    call = by_name["/tradeflow.trading.v1.TradingEngineService/ProcessPredictionBatch"]
    decide = by_name["decide batch"]
    assert call.kind == SpanKind.SERVER
    assert decide.parent is not None
    assert decide.parent.span_id == call.context.span_id
    assert decide.context.trace_id == call.context.trace_id


def test_tracing_off_records_nothing_and_passes_the_trace_context_on() -> None:
    inbound = trace_pb2.TraceContext(traceparent="00-" + "a" * 32 + "-" + "b" * 16 + "-01")
    off = Tracing()
    with off.span("anything"):
        assert off.carried(inbound) is inbound
    assert off.provider is None
