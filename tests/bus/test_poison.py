"""Bad input never stops the engine or vanishes: poison records, oversized outputs, a crash.

Each test runs real brokers (a private nats-server and Tansu) and a real engine,
sends what a careless or hostile producer would, and checks that every message
ends decided, dead-lettered with its reason, or counted as a duplicate, and
that intake goes on with the next one.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import TypeAlias

import pytest

from tests import factories
from tests.bus.busclient import (
    ALL_TOPICS,
    BusClient,
    Envelope,
    bus_ready,
    bus_settings,
    eventually,
    prediction_envelope,
    running_engine,
    signal_outputs,
)
from tests.support import http_text
from tradeflow.common.v1 import dead_letter_pb2, envelope_pb2
from tradeflow.ml.v1 import prediction_pb2
from tradeflow.trading.v1 import execution_pb2, signal_pb2
from trading_engine.app import Application
from trading_engine.bus import names
from trading_engine.bus.envelope import Outbound
from trading_engine.bus.outbox import DurableOutbox, _Item
from trading_engine.config import EngineSettings
from trading_engine.devstack.brokers import KafkaBroker, NatsServer
from trading_engine.engine import DecidedBatch
from trading_engine.health import ComponentState
from trading_engine.tenancy import Caller

pytestmark = pytest.mark.timeout(120)

Reason: TypeAlias = dead_letter_pb2.DeadLetterReason.ValueType
# A batch id the fault injected below fails on, standing for a defect in the rules.
DEFECT = "defect"


def unknown_type(message_id: str) -> bytes:
    envelope = Envelope.FromString(prediction_envelope(message_id))
    envelope.message_type = 99  # type: ignore[assignment]
    return envelope.SerializeToString()


def poison(round_name: str) -> dict[str, tuple[bytes, Reason]]:
    """Records that stopped Kafka intake for good, each with the dead letter it must become."""
    defect = factories.batch(DEFECT, [factories.prediction(f"{round_name}-defect-p")])
    return {
        f"{round_name}-type": (
            unknown_type(f"{round_name}-type"),
            dead_letter_pb2.DEAD_LETTER_REASON_WRONG_MESSAGE_TYPE,
        ),
        f"{round_name}-defect": (
            prediction_envelope(f"{round_name}-defect", defect),
            dead_letter_pb2.DEAD_LETTER_REASON_PROCESSING_FAILED,
        ),
    }


def fail_on_defect(application: Application) -> None:
    """Make deciding a batch whose id is DEFECT raise, as a defect in the rules would."""
    pipeline = application.pipeline
    decide = pipeline.decide

    async def decide_or_fail(data: bytes, now_ns: int, caller: Caller) -> DecidedBatch:
        if prediction_pb2.MLPredictionBatch.FromString(data).batch_id == DEFECT:
            raise ZeroDivisionError("a defect in the rules")
        return await decide(data, now_ns, caller)

    pipeline.decide = decide_or_fail  # type: ignore[method-assign]


def dead_letters(client: BusClient, transport: str) -> dict[str, dead_letter_pb2.DeadLetter]:
    received = (client.nats if transport == "nats" else client.kafka)[
        names.NATS_DEAD_LETTER if transport == "nats" else names.KAFKA_DEAD_LETTER
    ]
    return {letter.message_id: letter for letter in received.dead_letters()}


def assert_accounted(application: Application) -> None:
    """Every message received is decided, recorded, a duplicate or a dead letter; none in hand."""
    counts = application.bus.bridge.counts
    assert counts.in_hand == 0
    report = application.bus.probe()
    assert report.state is ComponentState.UP, report.detail
    assert " 0 in hand" in report.detail


async def send_round(
    client: BusClient, round_name: str, good: int, sequence: int
) -> tuple[dict[str, tuple[bytes, Reason]], list[str]]:
    """The round's poison records and an oversized batch on Kafka, then `good` good batches
    behind them."""
    records = poison(round_name)
    # Forged sequence numbers: past 2^63 (a signed 64-bit overflow) and the largest there is.
    forged = {
        f"{round_name}-seq-{number}": number for number in (2**63, 2**64 - 1, sequence + 10**12)
    }
    for data, _ in records.values():
        await client.to_kafka(data)
    # Signals too large for one message (1 MiB on NATS, 1 MB on Kafka): they go in parts.
    await client.to_kafka(
        prediction_envelope(f"{round_name}-big", many_predictions(f"{round_name}-big", 3000))
    )
    for message_id, number in forged.items():
        await client.to_kafka(prediction_envelope(message_id, sequence=number))
    sent = []
    for index in range(good):
        message_id = f"{round_name}-good-{index}"
        await client.to_kafka(prediction_envelope(message_id, sequence=sequence + index))
        sent.append(message_id)
    return records, [*forged, *sent]


def big_parts(client: BusClient, round_name: str) -> list[Envelope]:
    return [
        envelope
        for envelope in client.kafka[names.KAFKA_SIGNALS].envelopes
        if envelope.message_id.startswith(f"{round_name}-big:signals:")
    ]


def all_parts(parts: list[Envelope]) -> bool:
    return bool(parts) and len(parts) == parts[0].part_count


def whole_outputs(client: BusClient) -> list[str]:
    return [m for m in signal_outputs(client)[1] if "-big:" not in m]


async def test_poison_records_on_kafka_are_dead_lettered_and_intake_goes_on_across_a_restart(
    tmp_path: Path, nats_server: NatsServer, kafka_broker: KafkaBroker, client: BusClient
) -> None:
    settings = bus_settings(
        str(tmp_path / "engine"),
        nats_server.url,
        kafka_broker.bootstrap,
        metrics_address="127.0.0.1:0",
    )
    expected_letters: dict[str, Reason] = {}
    decided: list[str] = []
    async with running_engine(settings) as engine:
        fail_on_defect(engine)
        await bus_ready(engine)
        records, good = await send_round(client, "first", good=20, sequence=1)
        expected_letters |= {message_id: reason for message_id, (_, reason) in records.items()}
        decided += good
        await eventually(
            lambda: sorted(whole_outputs(client)) == sorted(f"{m}:signals" for m in decided),
            what="every good batch behind the poison decided, on Kafka",
        )
        await eventually(
            lambda: all_parts(big_parts(client, "first")),
            what="the oversized batch's parts",
        )
        assert_parts(big_parts(client, "first"), many_predictions("first-big", 3000))
        for transport in ("nats", "kafka"):
            await eventually(
                lambda t=transport: (
                    {  # type: ignore[misc]
                        i: letter.reason for i, letter in dead_letters(client, t).items()
                    }
                    == expected_letters
                ),
                what=f"each poison record dead-lettered with its reason on {transport}",
            )
        defect = dead_letters(client, "kafka")["first-defect"]
        assert "ZeroDivisionError: a defect in the rules" in defect.detail
        assert defect.source == names.KAFKA_PREDICTIONS
        counts = engine.bus.bridge.counts
        assert counts.received["kafka"] == 26
        assert (counts.batches_decided, sum(counts.dead_letters.values())) == (24, 2)
        assert counts.split_batches == 1
        assert_accounted(engine)
        # The forged numbers restarted the producer's numbering instead of counting 2^64 gaps.
        assert engine.bus.bridge.sequences.gaps < 100
        metrics = await asyncio.to_thread(
            http_text, f"http://127.0.0.1:{engine.metrics.port}/metrics"
        )
        assert 'trading_engine_bus_messages_received_total{transport="kafka"} 26.0' in metrics
        assert (
            'trading_engine_bus_dead_letters_total{reason="dead_letter_reason_processing_failed"}'
            " 1.0" in metrics
        )
        assert "trading_engine_bus_messages_in_hand 0.0" in metrics

    # While the engine is down, the next round waits in Kafka; a new process takes it up from
    # the committed offsets: the first round is not handled again.
    records, good = await send_round(client, "second", good=20, sequence=100)
    expected_letters |= {message_id: reason for message_id, (_, reason) in records.items()}
    decided += good
    async with running_engine(settings) as engine:
        fail_on_defect(engine)
        await bus_ready(engine)
        await eventually(
            lambda: sorted(whole_outputs(client)) == sorted(f"{m}:signals" for m in decided),
            what="every good batch of the second round decided after the restart",
        )
        await eventually(
            lambda: all_parts(big_parts(client, "second")),
            what="the oversized batch's parts after the restart",
        )
        await eventually(
            lambda: (
                {i: letter.reason for i, letter in dead_letters(client, "kafka").items()}
                == expected_letters
            ),
            what="the second round's poison dead-lettered after the restart",
        )
        assert engine.bus.bridge.counts.received["kafka"] == 26
        assert_accounted(engine)
    # Each output once: nothing decided twice, no dead letter repeated.
    assert len(whole_outputs(client)) == len(decided)
    assert len(client.kafka[names.KAFKA_DEAD_LETTER].envelopes) == len(expected_letters)


async def test_a_message_that_fails_on_nats_is_dead_lettered_not_lost(
    engine: Application, client: BusClient
) -> None:
    fail_on_defect(engine)
    records = poison("nats")
    for data, _ in records.values():
        await client.to_nats(data)
    await client.to_nats(prediction_envelope("nats-after"))
    await eventually(lambda: "nats-after:signals" in signal_outputs(client)[0], what="decided")
    await eventually(
        lambda: (
            {i: letter.reason for i, letter in dead_letters(client, "kafka").items()}
            == {message_id: reason for message_id, (_, reason) in records.items()}
        ),
        what="both dead-lettered, on Kafka too",
    )
    assert_accounted(engine)


def many_predictions(batch_id: str, count: int) -> prediction_pb2.MLPredictionBatch:
    symbols = list(factories.PRICES)
    return factories.batch(
        batch_id,
        [factories.prediction(f"{batch_id}-{index}", symbols[index % 6]) for index in range(count)],
    )


def assert_parts(envelopes: list[Envelope], batch: prediction_pb2.MLPredictionBatch) -> None:
    """The parts, in order, hold one signal per prediction in input order, counted per part."""
    count = len(envelopes)
    assert count > 1
    assert [e.message_id for e in envelopes] == [
        f"{batch.batch_id}:signals:{n}/{count}" for n in range(1, count + 1)
    ]
    assert [(e.part, e.part_count) for e in envelopes] == [(n, count) for n in range(1, count + 1)]
    parts = [signal_pb2.TradingSignalBatch.FromString(e.payload) for e in envelopes]
    signals = [signal for part in parts for signal in part.signals]
    assert [s.prediction_id for s in signals] == [p.prediction_id for p in batch.predictions]
    for part in parts:
        assert part.batch_id == batch.batch_id
        assert part.actionable_count + part.hold_count + part.rejected_count + (
            part.suppressed_count + part.invalid_count
        ) == len(part.signals)
        assert part.actionable_count == sum(
            s.disposition == signal_pb2.SIGNAL_DISPOSITION_ACTIONABLE for s in part.signals
        )


@pytest.fixture
def small_nats(tmp_path: Path) -> Iterator[NatsServer]:
    """A nats-server that takes messages of at most 64 KiB (its default is 1 MiB)."""
    server = NatsServer(tmp_path / "small-nats", max_payload=65_536)
    server.start()
    yield server
    server.stop()


async def test_a_batch_too_large_for_one_nats_message_goes_out_in_parts_on_both_transports(
    tmp_path: Path, small_nats: NatsServer, kafka_broker: KafkaBroker
) -> None:
    await kafka_broker.create_topics(ALL_TOPICS, partitions=3)
    client = BusClient(small_nats.url, kafka_broker.bootstrap)
    await client.start()
    settings = bus_settings(str(tmp_path / "engine"), small_nats.url, kafka_broker.bootstrap)
    try:
        async with running_engine(settings) as engine:
            await bus_ready(engine)
            # The limit comes from the server's own announcement.
            assert engine.bus.max_message_bytes() == 65_536
            big = many_predictions("big", 300)
            data = prediction_envelope("big", big)
            assert len(data) < 65_536, "the input fits; its signals do not"
            await client.to_kafka(data)
            # Another tenant's batch right behind it is not held up.
            other = factories.batch("other", [factories.prediction("o-1")], user_id="trader-2")
            await client.to_nats(prediction_envelope("other", other, user_id="trader-2"))

            def parts(received: list[Envelope]) -> list[Envelope]:
                return [e for e in received if e.message_id.startswith("big:")]

            await eventually(
                lambda: (
                    "other:signals" in signal_outputs(client)[0]
                    and "other:signals" in signal_outputs(client)[1]
                ),
                what="the other tenant's signals on both transports",
            )
            await eventually(
                lambda: (
                    len(parts(client.kafka[names.KAFKA_SIGNALS].envelopes)) > 1
                    and len(parts(client.nats[names.NATS_SIGNALS].envelopes))
                    == len(parts(client.kafka[names.KAFKA_SIGNALS].envelopes))
                    == parts(client.kafka[names.KAFKA_SIGNALS].envelopes)[0].part_count
                ),
                what="every part on both transports",
            )
            nats_parts = parts(client.nats[names.NATS_SIGNALS].envelopes)
            assert_parts(nats_parts, big)
            # Kafka keeps one user's messages in one partition, so its parts arrive in order too.
            kafka_parts = parts(client.kafka[names.KAFKA_SIGNALS].envelopes)
            assert [e.SerializeToString() for e in kafka_parts] == [
                e.SerializeToString() for e in nats_parts
            ]
            assert all(len(e.SerializeToString()) <= 65_536 - 1024 for e in nats_parts)
            assert engine.bus.nats is not None
            assert engine.bus.nats.shed_outbound == 0
            assert engine.bus.bridge.counts.split_batches == 1
            assert "1 signal batches sent in parts" in engine.bus.probe().detail
            assert_accounted(engine)
    finally:
        await client.close()


async def test_a_dead_letter_too_large_for_nats_carries_the_first_bytes_its_size_and_digest(
    tmp_path: Path, small_nats: NatsServer, kafka_broker: KafkaBroker
) -> None:
    await kafka_broker.create_topics(ALL_TOPICS, partitions=3)
    client = BusClient(small_nats.url, kafka_broker.bootstrap)
    await client.start()
    settings = bus_settings(str(tmp_path / "engine"), small_nats.url, kafka_broker.bootstrap)
    try:
        async with running_engine(settings) as engine:
            await bus_ready(engine)
            # Fits Kafka (1 MB), not NATS (64 KiB): not an envelope at all.
            garbage = b"\xff\xff" + bytes(range(256)) * 800
            await client.to_kafka(garbage)
            await client.to_kafka(prediction_envelope("after-garbage"))
            await eventually(
                lambda: (
                    len(client.nats[names.NATS_DEAD_LETTER].envelopes) == 1
                    and len(client.kafka[names.KAFKA_DEAD_LETTER].envelopes) == 1
                ),
                what="the dead letter on both transports",
            )
            await eventually(
                lambda: "after-garbage:signals" in signal_outputs(client)[1], what="intake on"
            )
            for received in (
                client.nats[names.NATS_DEAD_LETTER],
                client.kafka[names.KAFKA_DEAD_LETTER],
            ):
                [letter] = received.dead_letters()
                assert letter.reason == dead_letter_pb2.DEAD_LETTER_REASON_UNDECODABLE
                assert letter.original_truncated
                assert letter.original_size == len(garbage)
                assert letter.original_sha256 == hashlib.sha256(garbage).digest()
                assert 60_000 < len(letter.original) < 65_536
                assert garbage.startswith(letter.original)
            assert_accounted(engine)
    finally:
        await client.close()


async def test_a_message_kafka_refuses_for_good_is_quarantined_and_what_follows_it_flows(
    tmp_path: Path, nats_server: NatsServer, kafka_broker: KafkaBroker, client: BusClient
) -> None:
    settings = bus_settings(str(tmp_path / "engine"), nats_server.url, kafka_broker.bootstrap)
    # Left in the outbox by an earlier run while Kafka was away: one message larger than Kafka
    # takes, and five ordinary ones behind it.
    outbox = DurableOutbox(tmp_path / "engine" / "kafka-outbox.db")
    oversized = Outbound("too-big:signals", b"acme/trader-1", b"x" * 1_200_000, ())
    waiting = [
        Outbound(f"w-{index}", b"acme/trader-1", prediction_envelope(f"w-{index}"), ())
        for index in range(5)
    ]
    outbox.append(
        [
            _Item(number, names.KAFKA_SIGNALS, message, None)
            for number, message in enumerate([oversized, *waiting], start=1)
        ]
    )
    outbox.close()
    async with running_engine(settings) as engine:
        await bus_ready(engine)
        output = engine.bus.output
        assert output is not None
        await eventually(lambda: output.pending == 0, what="the outbox flushes past the refusal")
        flushed = await client.read_topic(names.KAFKA_SIGNALS)
        assert flushed.message_ids == [message.message_id for message in waiting]
        assert output.quarantined == 1
        report = engine.bus.probe()
        assert "1 Kafka messages refused for good" in report.detail
        assert "MessageSizeTooLargeError" in report.detail
        # New output flows too.
        await client.to_nats(prediction_envelope("fresh"))
        await eventually(lambda: "fresh:signals" in signal_outputs(client)[1], what="fresh out")
    # The quarantine is kept: a restart reports it and does not send it again.
    async with running_engine(settings) as engine:
        assert engine.bus.output is not None
        assert engine.bus.output.quarantined == 1


async def test_kafka_intake_that_crashes_is_restarted_reported_and_goes_on(
    engine: Application, client: BusClient
) -> None:
    kafka = engine.bus.kafka
    assert kafka is not None
    handle: Callable[..., Awaitable[None]] = kafka._handle
    crashes = [RuntimeError("the client library lost its way")]

    async def crash_once(fetched: dict[object, list[object]]) -> None:
        if crashes:
            raise crashes.pop()
        await handle(fetched)

    kafka._handle = crash_once  # type: ignore[method-assign]
    await client.to_kafka(prediction_envelope("during-crash"))
    await eventually(
        lambda: engine.bus.probe().state is ComponentState.DEGRADED,
        what="health says Kafka intake is not running",
    )
    assert "Kafka intake not running since" in engine.bus.probe().detail
    assert "RuntimeError: the client library lost its way" in engine.bus.probe().detail
    # Restarted: the batch the crash interrupted, and the next ones, are decided.
    for index in range(3):
        await client.to_kafka(prediction_envelope(f"after-crash-{index}"))
    expected = {"during-crash:signals", *(f"after-crash-{i}:signals" for i in range(3))}
    await eventually(lambda: set(signal_outputs(client)[1]) == expected, what="intake restarted")
    await eventually(lambda: engine.bus.probe().state is ComponentState.UP, what="UP again")
    assert engine.bus.consumer is not None
    assert engine.bus.consumer.restarts == 1
    assert "Kafka intake restarted 1 times" in engine.bus.probe().detail
    assert_accounted(engine)


def test_settings_refuse_a_kafka_message_limit_no_signal_could_fit() -> None:
    with pytest.raises(ValueError, match="bus_kafka_max_message_bytes must be at least 16384"):
        EngineSettings(bus_kafka_max_message_bytes=16_383)
    EngineSettings(bus_kafka_max_message_bytes=16_384)


async def test_an_execution_result_beyond_the_contracts_limits_is_refused_on_the_bus_too(
    engine: Application, client: BusClient
) -> None:
    result = execution_pb2.ExecutionResult(
        execution_id="x-long",
        signal_id="sig-1",
        user_id="trader-1",
        company_id="acme",
        symbol="EURUSD",
        status=execution_pb2.EXECUTION_STATUS_REJECTED,
        reject_reason="r" * 1001,
    )
    envelope = Envelope(
        message_type=envelope_pb2.MESSAGE_TYPE_EXECUTION_RESULT,
        user_id="trader-1",
        company_id="acme",
        payload=result.SerializeToString(),
        message_id="x-long",
    )
    await client.to_kafka(envelope.SerializeToString(), names.KAFKA_EXECUTIONS)
    await eventually(lambda: "x-long" in dead_letters(client, "kafka"), what="refused")
    letter = dead_letters(client, "kafka")["x-long"]
    assert letter.reason == dead_letter_pb2.DEAD_LETTER_REASON_INVALID_PAYLOAD
    assert "result.reject_reason" in letter.detail
    assert "at most 1,000 characters" in letter.detail
    assert_accounted(engine)
