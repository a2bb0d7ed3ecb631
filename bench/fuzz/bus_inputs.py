"""Inputs a careless or hostile producer would send the bus, built from (kind, seed).

Every input is reproducible from its kind and seed, so a failing one can be
rebuilt and named; `python -m bench.fuzz` draws seeds at random and the
Hypothesis tests in `tests/fuzz` draw and shrink them.
"""

from __future__ import annotations

import dataclasses
import math
import random
import time
from collections.abc import Callable
from typing import Final

from tradeflow.common.v1 import envelope_pb2, tier_pb2
from tradeflow.ml.v1 import prediction_pb2
from tradeflow.trading.v1 import execution_pb2
from trading_engine.bus import names

Envelope = envelope_pb2.TradingProcessingEnvelope

PRICES: Final = {
    "EURUSD": 1.08512,
    "GBPUSD": 1.27043,
    "USDJPY": 151.237,
    "XAUUSD": 2398.45,
    "AUDUSD": 0.65731,
    "US30": 39_120.5,
}
# Doubles that break arithmetic written for ordinary ones.
EXTREME_DOUBLES: Final = (
    0.0,
    -0.0,
    -1.0,
    5e-324,
    2.2250738585072014e-308,
    1e-300,
    1e300,
    1.7976931348623157e308,
    math.inf,
    -math.inf,
    math.nan,
)
EXTREME_INTS: Final = (0, 1, -1, 2**31 - 1, -(2**31), 2**53 + 1, 2**62, 2**63 - 1, -(2**63))
# Timestamps beyond what google.protobuf.Timestamp may hold (years 1 to 9999), and odd nanos.
EXTREME_SECONDS: Final = (-62_135_596_801, -1, 0, 253_402_300_800, 2**62, 2**63 - 1, -(2**63))
EXTREME_NANOS: Final = (-1, 999_999_999, 1_000_000_000, 2**31 - 1, -(2**31))
USERS: Final = tuple(f"trader-{index}" for index in range(8))


@dataclasses.dataclass(frozen=True, slots=True)
class BusInput:
    """One message to send, and where."""

    kind: str
    seed: int
    # "nats" or "kafka".
    transport: str
    # The subject (NATS) or topic (Kafka) it goes to.
    destination: str
    data: bytes


def bus_input(kind: str, seed: int, earlier: list[BusInput]) -> BusInput:
    """The input of `kind` built from `seed`; "duplicate" copies one of `earlier`."""
    rng = random.Random(f"{kind}:{seed}")
    transport = "kafka" if rng.random() < 0.3 else "nats"
    if kind == "duplicate" and earlier:
        original = earlier[rng.randrange(len(earlier))]
        other = "kafka" if original.transport == "nats" else "nats"
        return BusInput(kind, seed, other, _destination(other, original.destination), original.data)
    if kind == "execution":
        return BusInput(
            kind,
            seed,
            transport,
            _destination(transport, names.NATS_EXECUTIONS),
            _execution(rng, seed),
        )
    data = _BUILDERS.get(kind, _valid)(rng, seed)
    return BusInput(kind, seed, transport, _destination(transport, names.NATS_PREDICTIONS), data)


def _destination(transport: str, destination: str) -> str:
    """The subject or topic on `transport` that carries what `destination` carries."""
    executions = destination in (names.NATS_EXECUTIONS, names.KAFKA_EXECUTIONS)
    if transport == "nats":
        return names.NATS_EXECUTIONS if executions else names.NATS_PREDICTIONS
    return names.KAFKA_EXECUTIONS if executions else names.KAFKA_PREDICTIONS


def _batch(rng: random.Random, seed: int, size: int = 0) -> prediction_pb2.MLPredictionBatch:
    """A live, well-formed batch of 1-5 predictions (or `size`) for one of a few traders."""
    user = rng.choice(USERS)
    batch = prediction_pb2.MLPredictionBatch(batch_id=f"b-{seed}", correlation_id=f"c-{seed}")
    tenant = batch.user_context
    tenant.user_id = user
    tenant.company_id = "acme"
    tenant.tier = rng.choice(
        (tier_pb2.SUBSCRIPTION_TIER_PRO, tier_pb2.SUBSCRIPTION_TIER_ENTERPRISE)
    )
    tenant.account_equity = 25_000.0
    tenant.account_currency = "USD"
    now_ns = time.time_ns()
    batch.produced_at.FromNanoseconds(now_ns)
    for index in range(size or rng.randint(1, 5)):
        symbol = rng.choice(list(PRICES))
        price = PRICES[symbol] * (1 + rng.uniform(-0.002, 0.002))
        direction = rng.choice(
            (
                prediction_pb2.DIRECTION_UP,
                prediction_pb2.DIRECTION_DOWN,
                prediction_pb2.DIRECTION_WEAK_UP,
            )
        )
        prediction = batch.predictions.add(
            prediction_id=f"p-{seed}-{index}",
            symbol=symbol,
            primary_direction=direction,
            confidence=rng.uniform(0.5, 0.99),
            current_price=price,
            bid=price * 0.99998,
            ask=price * 1.00002,
            predicted_price=price
            * (1.002 if direction != prediction_pb2.DIRECTION_DOWN else 0.998),
        )
        prediction.timestamp.FromNanoseconds(now_ns - 100_000_000)
        prediction.horizon.FromSeconds(900)
        for model in range(rng.randint(0, 4)):
            prediction.votes.add(
                model_id=f"m-{model}", direction=direction, confidence=0.8, weight=1.0
            )
    return batch


def _envelope(
    batch: prediction_pb2.MLPredictionBatch, seed: int, payload: bytes | None = None
) -> Envelope:
    return Envelope(
        message_type=envelope_pb2.MESSAGE_TYPE_ML_PREDICTION_BATCH,
        user_id=batch.user_context.user_id,
        company_id=batch.user_context.company_id,
        payload=batch.SerializeToString() if payload is None else payload,
        service_source="fuzz",
        message_id=f"m-{seed}",
        producer_id="fuzz",
        sequence=seed + 1,
    )


def _valid(rng: random.Random, seed: int) -> bytes:
    return _envelope(_batch(rng, seed), seed).SerializeToString()


def _envelope_field(rng: random.Random, seed: int) -> bytes:
    """A valid batch in an envelope one of whose fields is odd."""
    envelope = _envelope(_batch(rng, seed), seed)
    field = rng.choice(("message_type", "message_id", "tenant", "sequence", "producer_id"))
    if field == "message_type":
        envelope.message_type = rng.choice((0, 2, 3, 4, 5, 99, 2**31 - 1, -1))  # type: ignore[assignment]
    elif field == "message_id":
        envelope.message_id = rng.choice(("", "x" * 257, "x" * 256, "\u00e9\U0001f600", "a.b*>"))
    elif field == "tenant":
        setattr(
            envelope, rng.choice(("user_id", "company_id")), rng.choice(("", "mallory", "x" * 500))
        )
    elif field == "sequence":
        envelope.sequence = rng.choice((0, 1, 2**63 - 1, 2**63, 2**64 - 1, rng.getrandbits(64)))
    else:
        envelope.producer_id = rng.choice(("", f"forged-{rng.getrandbits(32)}", "p" * 1000))
    return envelope.SerializeToString()


def _payload_bytes(rng: random.Random, seed: int) -> bytes:
    """A valid envelope whose payload's bytes were flipped, cut or added to."""
    payload = bytearray(_batch(rng, seed).SerializeToString())
    how = rng.choice(("flip", "cut", "insert", "garbage"))
    if how == "flip":
        for _ in range(rng.randint(1, 5)):
            payload[rng.randrange(len(payload))] ^= 1 << rng.randrange(8)
    elif how == "cut":
        del payload[rng.randrange(len(payload)) :]
    elif how == "insert":
        at = rng.randrange(len(payload) + 1)
        payload[at:at] = rng.randbytes(rng.randint(1, 20))
    else:
        payload = bytearray(rng.randbytes(rng.randint(0, 400)))
    batch = _batch(random.Random(seed), seed)
    return _envelope(batch, seed, bytes(payload)).SerializeToString()


def _raw(rng: random.Random, seed: int) -> bytes:
    """Not an envelope, or an envelope's bytes mangled."""
    if rng.random() < 0.5:
        return rng.randbytes(rng.randint(0, 300))
    data = bytearray(_valid(rng, seed))
    for _ in range(rng.randint(1, 8)):
        data[rng.randrange(len(data))] = rng.randrange(256)
    return bytes(data)


def _values(rng: random.Random, seed: int) -> bytes:
    """A well-formed batch whose numbers, enums or timestamps are extreme."""
    batch = _batch(rng, seed)
    prediction = batch.predictions[rng.randrange(len(batch.predictions))]
    what = rng.choice(
        (
            "current_price",
            "bid",
            "ask",
            "predicted_price",
            "confidence",
            "volume_confirmation",
            "spread_pips",
            "vote",
            "pattern",
            "direction",
            "timestamp",
            "horizon",
            "equity",
            "tier",
            "currency",
            "symbol",
        )
    )
    extreme = rng.choice(EXTREME_DOUBLES)
    if what in ("current_price", "bid", "ask", "predicted_price", "confidence"):
        # Valid batches before it priced the same company's symbols: the market state takes
        # a ratio to their price.
        setattr(prediction, what, extreme)
    elif what in ("volume_confirmation", "spread_pips"):
        setattr(prediction, what, extreme)
    elif what == "vote":
        vote = prediction.votes.add(model_id="odd", direction=prediction.primary_direction)
        setattr(vote, rng.choice(("confidence", "weight")), extreme)
    elif what == "pattern":
        pattern = prediction.patterns.add(name="odd", direction=rng.choice((0, 1, 5, 99)))
        pattern.probability = extreme
    elif what == "direction":
        prediction.primary_direction = rng.choice((0, 6, 99, -1, 2**31 - 1))  # type: ignore[assignment]
    elif what == "timestamp":
        prediction.timestamp.seconds = rng.choice(EXTREME_SECONDS)
        prediction.timestamp.nanos = rng.choice(EXTREME_NANOS)
    elif what == "horizon":
        prediction.horizon.seconds = rng.choice(EXTREME_INTS)
        prediction.horizon.nanos = rng.choice(EXTREME_NANOS)
    elif what == "equity":
        batch.user_context.account_equity = extreme
    elif what == "tier":
        batch.user_context.tier = rng.choice((0, 4, 99, -1))  # type: ignore[assignment]
    elif what == "currency":
        batch.user_context.account_currency = rng.choice(
            ("", "usd", "US", "\u20ac\u20ac\u20ac", "X" * 200)
        )
    else:
        prediction.symbol = rng.choice(("", "eurusd", "EUR/USD", "XXXYYY", "E" * 300))
    return _envelope(batch, seed).SerializeToString()


def _shape(rng: random.Random, seed: int) -> bytes:
    """A batch too large, empty, without ids or tenant, or repeating its prediction ids."""
    how = rng.choice(("large", "empty", "no-id", "no-tenant", "repeated-ids", "other-tenant"))
    if how == "large":
        batch = _batch(rng, seed, size=rng.choice((501, 1200, 3000)))
    else:
        batch = _batch(rng, seed)
    if how == "empty":
        del batch.predictions[:]
    elif how == "no-id":
        batch.batch_id = ""
    elif how == "no-tenant":
        batch.ClearField("user_context")
    elif how == "repeated-ids":
        for prediction in batch.predictions:
            prediction.prediction_id = "same"
    envelope = _envelope(batch, seed)
    if how == "other-tenant":
        envelope.user_id = "mallory"
    return envelope.SerializeToString()


def _execution(rng: random.Random, seed: int) -> bytes:
    """An execution result for no signal of the user, for another tenant, or not one at all."""
    result = execution_pb2.ExecutionResult(
        execution_id=f"x-{seed}",
        signal_id=f"no-such-signal-{seed}",
        user_id="trader-0",
        company_id="acme",
        symbol="EURUSD",
        status=execution_pb2.EXECUTION_STATUS_FILLED,
        executed_price=rng.choice((1.08, *EXTREME_DOUBLES)),
        executed_size_lots=rng.choice((0.1, *EXTREME_DOUBLES)),
    )
    result.executed_at.seconds = rng.choice((1_800_000_000, *EXTREME_SECONDS))
    envelope = Envelope(
        message_type=envelope_pb2.MESSAGE_TYPE_EXECUTION_RESULT,
        user_id=rng.choice(("trader-0", "mallory")),
        company_id="acme",
        payload=result.SerializeToString() if rng.random() < 0.8 else rng.randbytes(40),
        message_id=f"x-{seed}",
    )
    return envelope.SerializeToString()


_BUILDERS: Final[dict[str, Callable[[random.Random, int], bytes]]] = {
    "valid": _valid,
    "envelope-field": _envelope_field,
    "payload-bytes": _payload_bytes,
    "raw": _raw,
    "values": _values,
    "shape": _shape,
}
# Each kind's share of a run: mostly hostile, with valid batches and copies among them.
KINDS: Final = {
    "valid": 15,
    "envelope-field": 15,
    "payload-bytes": 15,
    "raw": 10,
    "values": 25,
    "shape": 4,
    "execution": 6,
    "duplicate": 10,
}
