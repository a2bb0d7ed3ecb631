"""The bus against real brokers: a private nats-server and a Tansu Kafka-protocol broker.

Each test starts its own brokers (tests/bus/conftest.py) and engine, and
listens on both transports the way Risk-Management would.
"""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path

import pytest
from google.protobuf import duration_pb2
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from tests import factories
from tests.bus.busclient import (
    BusClient,
    Envelope,
    Received,
    bus_ready,
    bus_settings,
    eventually,
    prediction_envelope,
    running_engine,
    signal_outputs,
)
from tests.support import TRADER, Tokens
from tradeflow.common.v1 import dead_letter_pb2, envelope_pb2
from tradeflow.trading.v1 import execution_pb2, signal_pb2
from tradeflow.trading.v1 import trading_engine_service_pb2 as service_pb2
from tradeflow.trading.v1 import trading_engine_service_pb2_grpc as service_grpc
from trading_engine.app import Application
from trading_engine.bus import names
from trading_engine.config import EngineSettings
from trading_engine.devstack.brokers import KafkaBroker, NatsServer
from trading_engine.health import ComponentState
from trading_engine.tracing import Tracing

pytestmark = pytest.mark.timeout(90)


async def test_a_batch_from_either_transport_is_decided_and_published_on_both(
    engine: Application, client: BusClient
) -> None:
    await client.to_nats(prediction_envelope("from-nats"))
    await client.to_kafka(prediction_envelope("from-kafka"))

    expected = {"from-nats:signals", "from-kafka:signals"}
    await eventually(
        lambda: all(set(ids) == expected for ids in signal_outputs(client)),
        what="both batches' signals on NATS and on Kafka",
    )
    signals = client.nats[names.NATS_SIGNALS]
    batch = signals.signal_batches()[0]
    assert batch.signals[0].symbol == "EURUSD"
    # Four models agreeing on EURUSD going up, in a calm market: a BUY.
    assert batch.signals[0].signal_type == signal_pb2.SIGNAL_TYPE_BUY
    # Trace context and tenant travel on; Kafka keys keep one user's signals in order.
    assert signals.headers[0]["traceparent"].startswith("00-")
    assert signals.envelopes[0].trace_context.traceparent == signals.headers[0]["traceparent"]
    assert client.kafka[names.KAFKA_SIGNALS].keys == [b"acme/trader-1"] * 2


async def test_a_batch_sent_on_both_transports_is_decided_once(
    engine: Application, client: BusClient
) -> None:
    data = prediction_envelope("twice", sequence=1)
    await client.to_nats(data)
    await client.to_kafka(data)
    await client.to_nats(data)

    await eventually(lambda: engine.bus.bridge.counts.duplicates == 2, what="two copies dropped")
    await eventually(
        lambda: signal_outputs(client) == (["twice:signals"], ["twice:signals"]),
        what="one signal batch on each transport",
    )
    assert engine.bus.bridge.counts.batches_decided == 1
    assert engine.engine.stats.predictions_decided == 1


async def test_bad_input_lands_in_the_dead_letters_with_its_reason_and_bytes(
    engine: Application, client: BusClient
) -> None:
    someone_else = factories.batch("other", [factories.prediction("o-1")], user_id="mallory")
    no_batch_id = factories.batch("", [factories.prediction("n-1")])
    wrong_type = Envelope(
        message_type=envelope_pb2.MESSAGE_TYPE_EXECUTION_RESULT,
        user_id="trader-1",
        company_id="acme",
        message_id="wrong-type",
    ).SerializeToString()
    garbage_payload = Envelope(
        message_type=envelope_pb2.MESSAGE_TYPE_ML_PREDICTION_BATCH,
        user_id="trader-1",
        company_id="acme",
        payload=b"\xff\xff not a batch",
        message_id="garbage-payload",
    ).SerializeToString()
    cases = {
        b"\xff\xff not protobuf": dead_letter_pb2.DEAD_LETTER_REASON_UNDECODABLE,
        garbage_payload: dead_letter_pb2.DEAD_LETTER_REASON_UNDECODABLE,
        wrong_type: dead_letter_pb2.DEAD_LETTER_REASON_WRONG_MESSAGE_TYPE,
        prediction_envelope("tenant", someone_else): (
            dead_letter_pb2.DEAD_LETTER_REASON_TENANT_MISMATCH
        ),
        prediction_envelope("no-id", no_batch_id): (
            dead_letter_pb2.DEAD_LETTER_REASON_INVALID_PAYLOAD
        ),
    }
    for data in cases:
        await client.to_nats(data)

    def letters(received: Received) -> dict[bytes, int]:
        return {letter.original: letter.reason for letter in received.dead_letters()}

    await eventually(
        lambda: (
            letters(client.nats[names.NATS_DEAD_LETTER]) == cases
            and letters(client.kafka[names.KAFKA_DEAD_LETTER]) == cases
        ),
        what="every refused message in the dead letters on both transports",
    )
    details = {
        letter.reason: letter for letter in client.nats[names.NATS_DEAD_LETTER].dead_letters()
    }
    tenant = details[dead_letter_pb2.DEAD_LETTER_REASON_TENANT_MISMATCH]
    assert "mallory" in tenant.detail
    assert (tenant.message_id, tenant.source, tenant.transport) == (
        "tenant",
        names.NATS_PREDICTIONS,
        "nats",
    )
    assert (
        "batch.batch_id required"
        in details[dead_letter_pb2.DEAD_LETTER_REASON_INVALID_PAYLOAD].detail
    )
    assert signal_outputs(client) == ([], [])


async def test_a_gap_in_a_producers_sequence_is_reported(
    engine: Application, client: BusClient
) -> None:
    for sequence in (1, 2, 5):
        await client.to_nats(prediction_envelope(f"seq-{sequence}", sequence=sequence))
    await eventually(lambda: len(signal_outputs(client)[0]) == 3, what="three batches decided")
    assert engine.bus.bridge.sequences.gaps == 2
    report = engine.bus.probe()
    assert "2 sequence gaps" in report.detail
    # The missing ones arrive late on Kafka: the gap is filled, nothing stays missing.
    for sequence in (3, 4):
        await client.to_kafka(prediction_envelope(f"seq-{sequence}", sequence=sequence))
    await eventually(
        lambda: engine.bus.bridge.sequences.missing == 0, what="late copies fill the gap"
    )
    assert engine.bus.bridge.sequences.filled == 2


async def test_execution_results_change_the_figures_once_and_bad_ones_are_refused(
    engine: Application, client: BusClient
) -> None:
    await client.to_nats(prediction_envelope("to-execute"))
    await eventually(lambda: len(signal_outputs(client)[0]) == 1, what="the signal decided")
    [signal] = client.nats[names.NATS_SIGNALS].signal_batches()[0].signals
    assert signal.disposition == signal_pb2.SIGNAL_DISPOSITION_ACTIONABLE
    tokens = Tokens(engine.settings)
    async with tokens.channel(engine.grpc_address, TRADER) as channel:
        stub = service_grpc.TradingEngineServiceStub(channel)
        subscription = service_pb2.AnalyticsSubscription(
            min_interval=duration_pb2.Duration(nanos=100_000_000)
        )
        live = stub.StreamAnalytics(
            iter([service_pb2.StreamAnalyticsRequest(subscription=subscription)])
        )
        first = await asyncio.wait_for(live.read(), 10)
        assert isinstance(first, service_pb2.StreamAnalyticsResponse)
        assert first.summary.stats.executed == 0

        result = execution_pb2.ExecutionResult(
            execution_id="x-1",
            signal_id=signal.signal_id,
            user_id="trader-1",
            company_id="acme",
            symbol="EURUSD",
            status=execution_pb2.EXECUTION_STATUS_FILLED,
            executed_price=signal.entry.entry_price,
            executed_size_lots=signal.entry.position_size_lots,
        )
        result.executed_at.GetCurrentTime()
        envelope = Envelope(
            message_type=envelope_pb2.MESSAGE_TYPE_EXECUTION_RESULT,
            user_id="trader-1",
            company_id="acme",
            payload=result.SerializeToString(),
            message_id="exec-1",
        )
        await client.to_nats(envelope.SerializeToString(), names.NATS_EXECUTIONS)
        await client.to_kafka(envelope.SerializeToString(), names.KAFKA_EXECUTIONS)
        update = await asyncio.wait_for(live.read(), 10)
        assert isinstance(update, service_pb2.StreamAnalyticsResponse)
        assert update.summary.stats.executed == 1
        live.cancel()
    assert engine.executions.open_positions("acme", "trader-1") == 1

    unknown = execution_pb2.ExecutionResult()
    unknown.CopyFrom(result)
    unknown.signal_id = "no-such-signal"
    envelope.payload, envelope.message_id = unknown.SerializeToString(), "exec-2"
    await client.to_kafka(envelope.SerializeToString(), names.KAFKA_EXECUTIONS)
    result.user_id = "mallory"
    envelope.payload, envelope.message_id = result.SerializeToString(), "exec-3"
    await client.to_kafka(envelope.SerializeToString(), names.KAFKA_EXECUTIONS)
    await eventually(
        lambda: len(client.kafka[names.KAFKA_DEAD_LETTER].envelopes) == 2,
        what="the unknown signal's and the other tenant's results refused",
    )
    counts = engine.bus.bridge.counts
    await eventually(lambda: counts.duplicates == 1, what="the second copy dropped")
    assert counts.executions == 1
    letters = {
        letter.message_id: letter for letter in client.kafka[names.KAFKA_DEAD_LETTER].dead_letters()
    }
    assert letters["exec-2"].reason == dead_letter_pb2.DEAD_LETTER_REASON_INVALID_PAYLOAD
    assert "no signal 'no-such-signal'" in letters["exec-2"].detail
    assert letters["exec-3"].reason == dead_letter_pb2.DEAD_LETTER_REASON_TENANT_MISMATCH
    assert (letters["exec-3"].source, letters["exec-3"].transport) == (
        names.KAFKA_EXECUTIONS,
        "kafka",
    )


async def test_nats_killed_mid_stream_loses_no_batch_and_kafka_carries_on(
    engine: Application, client: BusClient, nats_server: NatsServer
) -> None:
    sent = [f"n-{index}" for index in range(30)]
    for index, message_id in enumerate(sent):
        data = prediction_envelope(message_id, sequence=index + 1)
        if index < 15:
            await client.to_nats(data)
        if index == 15:
            nats_server.kill()
        await client.to_kafka(data)

    expected = [f"{message_id}:signals" for message_id in sent]
    await eventually(
        lambda: sorted(signal_outputs(client)[1]) == sorted(expected),
        what="every batch's signals on Kafka, each once",
    )
    assert engine.bus.probe().state is ComponentState.DEGRADED
    assert engine.bus.bridge.counts.batches_decided == 30

    nats_server.restart()
    await eventually(lambda: engine.bus.probe().state is ComponentState.UP, what="NATS rejoined")
    await client.to_nats(prediction_envelope("after", sequence=31))
    await eventually(lambda: "after:signals" in signal_outputs(client)[0], what="NATS path back")
    await eventually(
        lambda: sorted(signal_outputs(client)[1]) == sorted([*expected, "after:signals"]),
        what="every batch on Kafka exactly once",
    )


async def test_kafka_killed_nats_carries_on_and_the_outbox_flushes_exactly_once_in_order(
    engine: Application, client: BusClient, kafka_broker: KafkaBroker
) -> None:
    await client.to_nats(prediction_envelope("before", sequence=1))
    await eventually(lambda: signal_outputs(client)[1] == ["before:signals"], what="Kafka works")
    kafka_broker.kill()
    sent = [f"k-{index}" for index in range(20)]
    for index, message_id in enumerate(sent):
        await client.to_nats(prediction_envelope(message_id, sequence=index + 2))

    expected = [f"{message_id}:signals" for message_id in sent]
    await eventually(
        lambda: signal_outputs(client)[0] == ["before:signals", *expected],
        what="NATS goes on publishing while Kafka is away",
    )
    output = engine.bus.output
    assert output is not None
    await eventually(lambda: output.pending == 20, what="Kafka output waits in the outbox")
    assert engine.bus.probe().state is ComponentState.DEGRADED

    # Tansu keeps topics in memory: they come back empty (trading_engine/devstack/brokers.py).
    kafka_broker.restart()
    await eventually(lambda: output.pending == 0, within=30, what="the outbox flushes")
    # The restarted broker holds exactly what the outbox sent: all 20, once, in order.
    flushed = await client.read_topic(names.KAFKA_SIGNALS)
    assert flushed.message_ids == expected
    assert engine.bus.probe().state is ComponentState.UP
    assert output.spilled == 20


async def test_two_instances_split_the_load_and_decide_each_batch_once(
    tmp_path: Path, nats_server: NatsServer, kafka_broker: KafkaBroker, client: BusClient
) -> None:
    def settings(name: str) -> EngineSettings:
        return bus_settings(
            str(tmp_path / name), nats_server.url, kafka_broker.bootstrap, bus_claims="nats"
        )

    async with (
        running_engine(settings("a")) as first,
        running_engine(settings("b")) as second,
    ):
        await bus_ready(first)
        await bus_ready(second)
        sent = [f"pair-{index}" for index in range(60)]
        for index, message_id in enumerate(sent):
            # ML-Processing publishes every batch on both transports.
            data = prediction_envelope(
                message_id,
                factories.batch(
                    message_id,
                    [factories.prediction(f"{message_id}-p")],
                    user_id=f"trader-{index % 6}",
                ),
                sequence=index + 1,
                user_id=f"trader-{index % 6}",
            )
            await client.to_nats(data)
            await client.to_kafka(data)
        expected = sorted(f"{message_id}:signals" for message_id in sent)
        await eventually(
            lambda: (
                sorted(signal_outputs(client)[0]) == expected
                and sorted(signal_outputs(client)[1]) == expected
            ),
            within=30,
            what="each batch's signals once on each transport",
        )
        decided = [app.bus.bridge.counts.batches_decided for app in (first, second)]
        assert sum(decided) == 60
        assert min(decided) > 0, f"one instance did all the work: {decided}"


async def test_a_second_engine_on_the_same_data_directory_is_refused_at_start(
    tmp_path: Path, kafka_broker: KafkaBroker
) -> None:
    settings = bus_settings(str(tmp_path), "", kafka_broker.bootstrap)
    first = Application(settings)
    try:
        with pytest.raises(OSError, match=r"outbox .* is in use by another engine"):
            Application(settings)
    finally:
        await first.stop()
    # Once the first has stopped, the directory is free again.
    await Application(settings).stop()


async def test_committed_offsets_keep_a_restarted_engine_from_deciding_kafka_input_again(
    tmp_path: Path, nats_server: NatsServer, kafka_broker: KafkaBroker, client: BusClient
) -> None:
    def settings(name: str) -> EngineSettings:
        return bus_settings(str(tmp_path / name), nats_server.url, kafka_broker.bootstrap)

    async with running_engine(settings("first")) as first:
        await bus_ready(first)
        for index in range(5):
            await client.to_kafka(prediction_envelope(f"c-{index}"))
        await eventually(lambda: len(signal_outputs(client)[1]) == 5, what="five decided")
    # A new process (empty memory of message ids) in the same consumer group.
    async with running_engine(settings("second")) as second:
        await bus_ready(second)
        await client.to_kafka(prediction_envelope("c-5"))
        await eventually(lambda: "c-5:signals" in signal_outputs(client)[1], what="c-5 decided")
        assert second.bus.bridge.counts.batches_decided == 1
    assert signal_outputs(client)[1] == [f"c-{index}:signals" for index in range(6)]


async def test_the_outbox_survives_an_engine_restart_while_kafka_is_away(
    tmp_path: Path, nats_server: NatsServer, kafka_broker: KafkaBroker, client: BusClient
) -> None:
    settings = bus_settings(str(tmp_path / "engine"), nats_server.url, kafka_broker.bootstrap)
    async with running_engine(settings) as first:
        await bus_ready(first)
        kafka_broker.kill()
        for index in range(10):
            await client.to_nats(prediction_envelope(f"o-{index}"))
        await eventually(lambda: len(signal_outputs(client)[0]) == 10, what="decided over NATS")
    kafka_broker.restart()
    async with running_engine(settings) as second:
        output = second.bus.output
        assert output is not None
        assert output.pending == 10, "the outbox file kept what Kafka never acknowledged"
        await eventually(lambda: output.pending == 0, within=30, what="the outbox flushes")
    flushed = await client.read_topic(names.KAFKA_SIGNALS)
    assert flushed.message_ids == [f"o-{index}:signals" for index in range(10)]


BACKLOG = 600


async def test_an_engine_stopped_mid_stream_hands_over_without_losing_or_repeating_a_batch(
    tmp_path: Path, nats_server: NatsServer, kafka_broker: KafkaBroker, client: BusClient
) -> None:
    def settings(name: str) -> EngineSettings:
        return bus_settings(str(tmp_path / name), nats_server.url, kafka_broker.bootstrap)

    sent = [f"s-{index}" for index in range(BACKLOG)]
    for message_id in sent:
        await client.to_kafka(prediction_envelope(message_id))
    async with running_engine(settings("first")) as first:
        await bus_ready(first)
        await eventually(lambda: len(signal_outputs(client)[1]) >= 10, what="the first decided")
    # SIGTERM in the middle of the backlog: what was decided is committed, the rest waits.
    decided_first = first.bus.bridge.counts.batches_decided
    assert decided_first < BACKLOG
    async with running_engine(settings("second")) as second:
        await bus_ready(second)
        await eventually(
            lambda: sorted(signal_outputs(client)[1]) == sorted(f"{m}:signals" for m in sent),
            what="every batch decided by one engine or the other",
        )
        assert second.bus.bridge.counts.batches_decided == BACKLOG - decided_first


async def test_losing_results_on_the_bus_change_the_users_strategy_version(
    tmp_path: Path, nats_server: NatsServer, kafka_broker: KafkaBroker, topics: None,
    client: BusClient,
) -> None:  # fmt: skip
    settings = dataclasses.replace(
        bus_settings(str(tmp_path / "engine"), nats_server.url, kafka_broker.bootstrap),
        adaptive_min_closed_signals=2,
    )
    async with running_engine(settings) as engine:
        await bus_ready(engine)
        predictions = [factories.prediction(f"p-{s}", s) for s in ("EURUSD", "GBPUSD")]
        await client.to_nats(prediction_envelope("two", factories.batch("two", predictions)))
        await eventually(lambda: len(signal_outputs(client)[1]) == 1, what="the signals decided")
        signals = client.kafka[names.KAFKA_SIGNALS].signal_batches()[0].signals
        assert [s.disposition for s in signals] == [signal_pb2.SIGNAL_DISPOSITION_ACTIONABLE] * 2

        for index, signal in enumerate(signals):
            # Filled at the entry, stopped out 20 pips lower.
            loss = execution_pb2.ExecutionResult(
                execution_id=f"x-{index}", signal_id=signal.signal_id, user_id="trader-1",
                company_id="acme", symbol=signal.symbol,
                status=execution_pb2.EXECUTION_STATUS_CLOSED,
                executed_price=signal.entry.entry_price,
                executed_size_lots=signal.entry.position_size_lots,
                exit_price=signal.entry.entry_price - signal.entry.stop_loss_pips * 0.0001,
                close_reason=execution_pb2.CLOSE_REASON_STOP_LOSS,
            )  # fmt: skip
            loss.executed_at.GetCurrentTime()
            loss.closed_at.GetCurrentTime()
            envelope = Envelope(
                message_type=envelope_pb2.MESSAGE_TYPE_EXECUTION_RESULT,
                user_id="trader-1", company_id="acme", payload=loss.SerializeToString(),
                message_id=f"exec-{index}",
            )  # fmt: skip
            await client.to_kafka(envelope.SerializeToString(), names.KAFKA_EXECUTIONS)
        await eventually(lambda: engine.bus.bridge.counts.executions == 2, what="results taken")

        async with Tokens(engine.settings).channel(engine.grpc_address, TRADER) as channel:
            stub = service_grpc.TradingEngineServiceStub(channel)
            strategy = (await stub.GetStrategy(service_pb2.GetStrategyRequest())).strategy
            summary = await stub.GetPerformanceSummary(service_pb2.GetPerformanceSummaryRequest())
    assert (summary.summary.stats.closed, summary.summary.stats.losses) == (2, 2)
    assert strategy.adaptive_version > 0
    assert strategy.version == strategy.adaptive_version
    assert strategy.config.min_confidence_threshold == 0.75


async def test_one_trace_follows_a_batch_from_its_producer_through_the_engine_to_its_signals(
    tmp_path: Path, nats_server: NatsServer, kafka_broker: KafkaBroker, topics: None,
    client: BusClient,
) -> None:  # fmt: skip
    spans = InMemorySpanExporter()
    tracing = Tracing.exporting(spans)
    settings = bus_settings(str(tmp_path / "engine"), nats_server.url, kafka_broker.bootstrap)
    async with running_engine(settings, tracing) as engine:
        await bus_ready(engine)
        message = prediction_envelope("traced")
        producer = Envelope.FromString(message).trace_context.traceparent
        _, trace_id, producer_span, _ = producer.split("-")
        await client.to_kafka(message)
        await eventually(lambda: len(signal_outputs(client)[0]) == 1, what="the signals out")
        assert tracing.provider is not None
        tracing.provider.force_flush()

    by_name = {span.name: span for span in spans.get_finished_spans()}
    process = by_name[f"{names.KAFKA_PREDICTIONS} process"]
    decide = by_name["decide batch"]
    publish = by_name[f"{names.NATS_SIGNALS} publish"]
    # All in the producer's trace: the engine's span is the producer span's child, and
    # deciding and publishing are the engine span's.
    assert {format(s.context.trace_id, "032x") for s in (process, decide, publish)} == {trace_id}
    assert process.parent is not None
    assert format(process.parent.span_id, "016x") == producer_span
    assert decide.parent is not None
    assert publish.parent is not None
    assert decide.parent.span_id == publish.parent.span_id == process.context.span_id
    # Both transports' signals carry the publish span on, for the consumer's span to follow.
    for envelope in (
        client.nats[names.NATS_SIGNALS].envelopes[0],
        client.kafka[names.KAFKA_SIGNALS].envelopes[0],
    ):
        _, carried_trace, carried_parent, _ = envelope.trace_context.traceparent.split("-")
        assert (carried_trace, carried_parent) == (
            trace_id,
            format(publish.context.span_id, "016x"),
        )
    assert client.nats[names.NATS_SIGNALS].headers[0]["traceparent"] == (
        client.nats[names.NATS_SIGNALS].envelopes[0].trace_context.traceparent
    )
