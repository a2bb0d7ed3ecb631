"""Where recorded prediction batches come from, each with the clock to decide it at.

- A file: JSON lines (`.jsonl`, `.json`, `.ndjson`; one MLPredictionBatch per
  line, as `trading-engine publish` reads) or length-delimited binary
  (`.binpb`, `.pb`; each batch's serialized bytes after their varint length,
  as protobuf's writeDelimitedTo writes them). JSON costs about 120 µs per
  prediction to parse, the binary form under 1 µs: replays at the core's speed
  read binary. The clock of a batch from a file is its `produced_at`.
- The Kafka predictions topic: the envelopes ML-Processing published, for
  every company, read from the start of each partition and kept when the
  batch was produced in the time range; decided at `produced_at`, in that
  order, each message id once. A message that is not a prediction batch is
  skipped and counted, as the engine would have dead-lettered it.
- Stored history: the batches the engine kept (`--history-keep-predictions`),
  a whole company in the order they were decided, each at the instant it was
  decided. The market state the rules read is per company, so replaying one
  user exactly takes the batches of all the company's users.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Final

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError
from google.protobuf.message import DecodeError

from tradeflow.ml.v1 import prediction_pb2
from trading_engine.bus.envelope import PREDICTIONS, Rejected, open_envelope
from trading_engine.bus.kafka_link import stop_client
from trading_engine.bus.names import KAFKA_PREDICTIONS
from trading_engine.recordings import read_batches
from trading_engine.stores.base import BatchPosition, Store
from trading_engine.wire.protowire import varint

JSON_SUFFIXES: Final = frozenset({".jsonl", ".json", ".ndjson"})
BINARY_SUFFIXES: Final = frozenset({".binpb", ".pb"})
_PAGE: Final = 500


@dataclasses.dataclass(frozen=True, slots=True)
class RecordedBatch:
    # The serialized MLPredictionBatch, as it was decided.
    data: bytes
    batch_id: str
    company_id: str
    user_id: str
    # The tier to decide at: the batch's own, or the user's as the store knows it.
    tier: int
    # The recorded clock: when the batch was decided (from history) or produced (from a file).
    decided_at_ns: int
    # Where it came from, for messages: "line 12", "batch b-7".
    origin: str
    # From history: risk management's verdict on its signals then (risk.verdicts, as JSON).
    risk_verdict: str = ""


class RecordingError(ValueError):
    """A recording that cannot be read; says where and why."""


def from_file(path: Path) -> Iterator[RecordedBatch]:
    """The batches of a recording file in order; a bad line or frame raises RecordingError."""
    suffix = path.suffix.lower()
    if suffix in JSON_SUFFIXES:
        return _from_json_lines(path)
    if suffix in BINARY_SUFFIXES:
        return _from_delimited(path)
    raise RecordingError(
        f"{path}: say what the recording holds by its name: "
        f"{', '.join(sorted(JSON_SUFFIXES))} for JSON lines, "
        f"{', '.join(sorted(BINARY_SUFFIXES))} for length-delimited binary"
    )


def count_batches(path: Path) -> int:
    """How many batches `from_file` will read (lines or frames), without parsing them."""
    if path.suffix.lower() in JSON_SUFFIXES:
        with path.open(encoding="utf-8") as lines:
            return sum(1 for line in lines if line.strip())
    return sum(1 for _ in _frames(path))


def _from_json_lines(path: Path) -> Iterator[RecordedBatch]:
    for number, read in read_batches(path):
        if isinstance(read, str):
            raise RecordingError(f"{path} line {number}: {read}")
        yield _recorded(read, read.SerializeToString(), f"line {number}")


def _from_delimited(path: Path) -> Iterator[RecordedBatch]:
    for number, frame in enumerate(_frames(path), start=1):
        batch = prediction_pb2.MLPredictionBatch()
        try:
            batch.ParseFromString(frame)
        except DecodeError as error:
            raise RecordingError(
                f"{path} batch {number}: not an MLPredictionBatch: {error}"
            ) from None
        yield _recorded(batch, frame, f"batch {number}")


def _frames(path: Path) -> Iterator[bytes]:
    """The length-delimited frames of a binary recording, unparsed."""
    data = path.read_bytes()
    at, number = 0, 0
    while at < len(data):
        number += 1
        length, at = _varint(data, at, path, number)
        frame = data[at : at + length]
        if len(frame) != length:
            raise RecordingError(f"{path} batch {number}: cut short ({len(frame)} of {length})")
        at += length
        yield frame


def _varint(data: bytes, at: int, path: Path, number: int) -> tuple[int, int]:
    value, shift = 0, 0
    while at < len(data) and shift < 64:
        byte = data[at]
        at += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, at
        shift += 7
    raise RecordingError(f"{path} batch {number}: the length prefix is cut short or too long")


def _recorded(batch: prediction_pb2.MLPredictionBatch, data: bytes, origin: str) -> RecordedBatch:
    tenant = batch.user_context
    return RecordedBatch(
        data,
        batch.batch_id,
        tenant.company_id,
        tenant.user_id,
        tenant.tier,
        batch.produced_at.ToNanoseconds(),
        origin,
    )


def delimited(batches: Iterator[prediction_pb2.MLPredictionBatch]) -> Iterator[bytes]:
    """Each batch as a frame of the binary recording format."""
    for batch in batches:
        frame = batch.SerializeToString()
        yield varint(len(frame)) + frame


@dataclasses.dataclass
class KafkaRead:
    batches: list[RecordedBatch]
    # (partition@offset, why) of each message that is not a prediction batch.
    skipped: list[tuple[str, str]]


async def from_kafka(
    bootstrap: str, start_ns: int, end_ns: int, topic: str = KAFKA_PREDICTIONS
) -> KafkaRead:
    """The batches on the topic produced in [start_ns, end_ns), in produced order."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        client_id="trading-engine-replay",
        group_id=None,
        enable_auto_commit=False,
        fetch_max_wait_ms=100,
    )
    try:
        await consumer.start()
    except KafkaError as error:
        await stop_client(consumer)
        raise RecordingError(f"cannot read Kafka at {bootstrap}: {error!r}") from None
    try:
        await consumer.topics()
        numbers = consumer.partitions_for_topic(topic)
        if not numbers:
            raise RecordingError(f"Kafka at {bootstrap} has no topic {topic}")
        partitions = [TopicPartition(topic, number) for number in sorted(numbers)]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        read = KafkaRead([], [])
        seen: set[str] = set()
        while await _behind(consumer, ends):
            fetched = await consumer.getmany(timeout_ms=500)
            for records in fetched.values():
                for record in records:
                    where = f"{topic} {record.partition}@{record.offset}"
                    if record.offset < ends[TopicPartition(topic, record.partition)]:
                        _keep(read, seen, record.value or b"", where, start_ns, end_ns)
    finally:
        await stop_client(consumer)
    read.batches.sort(key=lambda recorded: recorded.decided_at_ns)
    return read


def _keep(
    read: KafkaRead, seen: set[str], value: bytes, where: str, start_ns: int, end_ns: int
) -> None:
    try:
        envelope = open_envelope(value, PREDICTIONS)
        batch = prediction_pb2.MLPredictionBatch.FromString(envelope.payload)
    except Rejected as rejected:
        read.skipped.append((where, rejected.detail))
        return
    except DecodeError as error:
        read.skipped.append((where, f"the payload is not an MLPredictionBatch: {error}"))
        return
    if envelope.message_id in seen:
        return
    seen.add(envelope.message_id)
    produced_ns = batch.produced_at.ToNanoseconds()
    if start_ns <= produced_ns < end_ns:
        tenant, tier = (envelope.company_id, envelope.user_id), batch.user_context.tier
        recorded = RecordedBatch(
            envelope.payload, batch.batch_id, *tenant, tier, produced_ns, where
        )
        read.batches.append(recorded)


async def _behind(consumer: AIOKafkaConsumer, ends: dict[TopicPartition, int]) -> bool:
    """Whether a partition still has records before the end seen when reading began."""
    for partition, end in ends.items():
        if await consumer.position(partition) < end:
            return True
    return False


async def from_history(
    store: Store, company_id: str, start_ns: int, end_ns: int
) -> AsyncIterator[RecordedBatch]:
    """The company's stored batches decided in [start_ns, end_ns), in decision order."""
    tiers: dict[str, int] = {}
    after: BatchPosition | None = None
    while page := await store.prediction_batches(company_id, start_ns, end_ns, after, _PAGE):
        for arrived in page:
            record = arrived.record
            batch = prediction_pb2.MLPredictionBatch.FromString(record.payload)
            tier: int = batch.user_context.tier
            if not tier:
                # Stated by the caller's token when the batch came over gRPC.
                if record.user_id not in tiers:
                    tiers[record.user_id] = await store.user_tier(company_id, record.user_id) or 0
                tier = tiers[record.user_id]
            yield RecordedBatch(
                record.payload,
                record.batch_id,
                record.company_id,
                record.user_id,
                tier,
                record.received_at_ns,
                f"batch {record.batch_id} of {record.user_id}",
                record.risk_verdict,
            )
        after = page[-1].position
