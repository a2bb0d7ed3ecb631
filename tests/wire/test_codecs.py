"""The hand-written codecs agree with the protobuf runtime, field for field and byte for byte."""

from __future__ import annotations

import contextlib
import re
import struct

import pytest
from google.protobuf import descriptor, message
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.wire import oracle
from tradeflow.common.v1 import risk_level_pb2
from tradeflow.ml.v1 import prediction_pb2
from tradeflow.risk.v1 import risk_service_pb2
from tradeflow.trading.v1 import market_pb2, signal_pb2
from tradeflow.trading.v1 import trading_engine_service_pb2 as service_pb2
from trading_engine.core import decide as core
from trading_engine.core import instruments, risk, tiers
from trading_engine.core.decision import Decision, Entry, MarketView
from trading_engine.core.inputs import BatchInput
from trading_engine.core.market import MarketBook
from trading_engine.core.memory import SignalMemory
from trading_engine.core.strategy import from_config
from trading_engine.engine import DecisionEngine
from trading_engine.errors import UNDECODABLE, InvalidArgument
from trading_engine.tenancy import Caller
from trading_engine.wire import predictions as prediction_codec
from trading_engine.wire.predictions import decode_batch
from trading_engine.wire.protowire import DecodeError, embedded_message
from trading_engine.wire.signals import SignalContext, SignalEncoder

NOW = 1_800_000_000_000_000_000
REPRODUCIBLE = settings(max_examples=150, deadline=None, derandomize=True)

texts = st.text(max_size=12)
probabilities = st.floats(min_value=0.0, max_value=1.0)
anything = st.floats(allow_nan=False, width=64)
directions = st.integers(min_value=0, max_value=5)
nanos = st.integers(min_value=0, max_value=NOW)


@st.composite
def prediction_messages(draw: st.DrawFn) -> prediction_pb2.Prediction:
    message = prediction_pb2.Prediction(
        prediction_id=draw(texts),
        symbol=draw(st.sampled_from(["EURUSD", "USDJPY", "XAUUSD", "", "ÄÖÜ"])),
        primary_direction=draw(directions),  # type: ignore[arg-type]
        confidence=draw(anything),
        current_price=draw(anything),
        predicted_price=draw(anything),
        bid=draw(anything),
        ask=draw(anything),
    )
    for _ in range(draw(st.integers(0, 4))):
        message.votes.add(
            model_id=draw(texts),
            direction=draw(directions),
            confidence=draw(anything),
            weight=draw(anything),
        )
    for _ in range(draw(st.integers(0, 3))):
        message.patterns.add(
            name=draw(texts),
            probability=draw(anything),
            direction=draw(directions),
        )
    if draw(st.booleans()):
        message.volume_confirmation = draw(anything)
    if draw(st.booleans()):
        message.spread_pips = draw(anything)
    if draw(st.booleans()):
        message.horizon.FromNanoseconds(draw(st.integers(0, 10**13)))
    if draw(st.booleans()):
        message.timestamp.FromNanoseconds(draw(nanos))
    return message


@st.composite
def batch_messages(draw: st.DrawFn) -> prediction_pb2.MLPredictionBatch:
    message = prediction_pb2.MLPredictionBatch(
        batch_id=draw(texts),
        correlation_id=draw(texts),
        predictions=draw(st.lists(prediction_messages(), max_size=4)),
    )
    if draw(st.booleans()):
        tenant = message.user_context
        tenant.SetInParent()
        tenant.user_id = draw(texts)
        tenant.company_id = draw(texts)
        tenant.tier = draw(st.integers(0, 3))  # type: ignore[assignment]
        tenant.account_equity = draw(anything)
        tenant.account_currency = draw(texts)
    if draw(st.booleans()):
        message.produced_at.FromNanoseconds(draw(nanos))
    return message


@REPRODUCIBLE
@given(batch_messages())
def test_decoding_reads_what_the_runtime_reads(message: prediction_pb2.MLPredictionBatch) -> None:
    assert decode_batch(message.SerializeToString()) == oracle.batch_input(message)


def test_unknown_fields_from_newer_producers_are_skipped() -> None:
    message = prediction_pb2.MLPredictionBatch(batch_id="b")
    message.predictions.add(prediction_id="p", symbol="EURUSD", confidence=0.5)
    unknown = b"\xf8\x06\x2a" + b"\x82\x07\x03abc" + b"\x89\x07" + bytes(8)  # fields 111, 112, 113
    prediction_bytes = message.predictions[0].SerializeToString() + unknown
    data = b"\x0a\x01b" + b"\x22" + bytes((len(prediction_bytes),)) + prediction_bytes + unknown
    decoded = decode_batch(data)
    assert decoded == oracle.batch_input(message)


@pytest.mark.parametrize(
    ("data", "complaint"),
    [
        (b"\x0a\x05ab", "past the end"),
        (b"\x0a\x02\xff\xfe", "not valid UTF-8"),
        (b"\x08\x01", "field 1 has wire type 0"),
        (b"\x22\x02\x20\x01", "Prediction field 4 has wire type 0"),
        (b"\x22\x0a\x2a\x08\x19" + bytes(7), "truncated double"),
        (b"\x0a", "truncated or overlong varint"),
        (b"\xfb\x06", "unsupported wire type 3"),
    ],
    ids=[
        "overlong-length",
        "bad-utf8",
        "wrong-wire-type",
        "wrong-wire-type-nested",
        "truncated-double",
        "truncated-varint",
        "group",
    ],
)
def test_malformed_bytes_raise_decode_error_saying_what_is_wrong(
    data: bytes, complaint: str
) -> None:
    with pytest.raises(DecodeError, match=complaint):
        decode_batch(data)


@REPRODUCIBLE
@given(batch_messages(), st.data())
def test_any_truncation_is_a_decode_error_or_a_shorter_batch(
    message: prediction_pb2.MLPredictionBatch, data: st.DataObject
) -> None:
    encoded = message.SerializeToString()
    cut = data.draw(st.integers(0, len(encoded)))
    # Anything but a DecodeError (an IndexError, a struct.error) would be a crash.
    with contextlib.suppress(DecodeError):
        decode_batch(encoded[:cut])


# -- bytes the runtime would refuse ---------------------------------------------

# Field numbers around every edge the wire format has: 0 (never valid), the fields the
# decoder knows at each level, unknown ones, the largest valid number (2^29 - 1) and beyond.
_FIELD_NUMBERS = st.one_of(
    st.integers(0, 16), st.sampled_from([2**29 - 1, 2**29, 2**32 - 1, 2**32, 2**61])
)
# Varint values around 32- and 64-bit edges (enums and nanos are int32 in the contract).
_VARINTS = st.one_of(
    st.integers(0, 2**64 - 1),
    st.sampled_from([2**31 - 1, 2**31, 2**32 - 1, 2**32 + 1, 2**63, 2**64 - 1]),
)
_DOUBLE_BYTES = st.one_of(
    st.binary(min_size=8, max_size=8),
    st.sampled_from([5e-324, 1e300, -0.0, float("inf"), float("nan")]).map(
        lambda value: struct.pack("<d", value)
    ),
)


def _varint_bytes(value: int, padding: int = 0) -> bytes:
    """`value` as a varint, with `padding` redundant continuation bytes (an overlong form)."""
    groups = []
    while True:
        groups.append(value & 0x7F)
        value >>= 7
        if not value:
            break
    groups += [0] * padding
    return bytes([group | 0x80 for group in groups[:-1]] + groups[-1:])


_PADDING = st.one_of(st.just(0), st.just(0), st.integers(0, 10))


@st.composite
def _wire_fields(draw: st.DrawFn, depth: int) -> bytes:
    """A message body of fields of any number and wire type, nested with consistent lengths."""
    body = b""
    for _ in range(draw(st.integers(0, 4))):
        number, wire_type = draw(_FIELD_NUMBERS), draw(st.integers(0, 7))
        body += _varint_bytes(number << 3 | wire_type, draw(_PADDING))
        if wire_type == 0:
            body += _varint_bytes(draw(_VARINTS), draw(_PADDING))
        elif wire_type == 1:
            body += draw(_DOUBLE_BYTES)
        elif wire_type == 5:
            body += draw(st.binary(min_size=4, max_size=4))
        elif wire_type == 2:
            payload = (
                draw(_wire_fields(depth + 1))
                if depth < 3 and draw(st.booleans())
                else draw(st.one_of(st.text(max_size=6).map(str.encode), st.binary(max_size=6)))
            )
            body += _varint_bytes(len(payload), draw(_PADDING)) + payload
    return body


@st.composite
def _mutated_batches(draw: st.DrawFn) -> bytes:
    """A valid batch with hostile fields spliced into it, or its bytes altered."""
    batch = draw(batch_messages())
    if draw(st.booleans()) and batch.predictions:
        # Inside a prediction, where the decoder has the most fields to get wrong.
        prediction = batch.predictions[0].SerializeToString()
        prediction += draw(_wire_fields(1))
        del batch.predictions[0]
        tail = batch.SerializeToString()
        return b"\x22" + _varint_bytes(len(prediction)) + prediction + tail
    encoded = bytearray(batch.SerializeToString() + draw(_wire_fields(0)))
    for _ in range(draw(st.integers(0, 3))):
        if encoded:
            encoded[draw(st.integers(0, len(encoded) - 1))] = draw(st.integers(0, 255))
    return bytes(encoded)


def _as_runtime_reads(data: bytes) -> BatchInput | None:
    try:
        return oracle.batch_input(prediction_pb2.MLPredictionBatch.FromString(data))
    except message.DecodeError:
        return None


# The decoder is stricter than the runtime in exactly these ways (decision 7): a known
# field with another wire type than the contract's, and groups (wire type 3), which no
# proto3 producer writes.
_STRICTER = "has wire type|unsupported wire type 3"


@settings(REPRODUCIBLE, max_examples=2000)
@given(_mutated_batches())
def test_the_decoder_accepts_only_what_the_runtime_accepts_and_reads_it_alike(
    data: bytes,
) -> None:
    expected = _as_runtime_reads(data)
    try:
        decoded = decode_batch(data)
    except DecodeError as error:
        refusal = str(error)
    else:
        refusal = ""
    if refusal:
        assert expected is None or re.search(_STRICTER, refusal), (
            f"the runtime reads {data!r}, the decoder refuses it: {refusal}"
        )
        return
    assert expected is not None, f"the runtime refuses {data!r}, the decoder reads {decoded}"
    # repr: NaN equals NaN, and -0.0 differs from 0.0.
    assert repr(decoded) == repr(expected)


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(b"\x00\x01", id="field-0"),
        pytest.param(b"\x22\x02\x02\x00", id="field-0-in-a-prediction"),
        pytest.param(b"\x12\x02\x00\x01", id="field-0-in-the-user-context"),
        pytest.param(b"\x22\x04\x72\x02\x00\x01", id="field-0-in-a-timestamp"),
        pytest.param(b"\x22\x04\x2a\x02\x02\x00", id="field-0-in-a-vote"),
        pytest.param(b"\x80\x80\x80\x80\x10\x01", id="field-2^29"),
        pytest.param(b"\xf8\xff\xff\xff\x1f\x01", id="key-beyond-32-bits"),
        pytest.param(b"\xc8\x80\x80\x80\x80\x00\x01", id="key-longer-than-5-bytes"),
        pytest.param(b"\x0a\x80\x80\x80\x80\x80\x00", id="length-longer-than-5-bytes"),
        pytest.param(b"\x4c", id="lone-end-group"),
        pytest.param(b"\x4e", id="wire-type-6"),
        pytest.param(b"\x4f", id="wire-type-7"),
        pytest.param(b"\x48" + b"\xff" * 10 + b"\x00", id="varint-longer-than-10-bytes"),
    ],
)
def test_bytes_the_runtime_refuses_are_a_decode_error(data: bytes) -> None:
    with pytest.raises(message.DecodeError):
        prediction_pb2.MLPredictionBatch.FromString(data)
    with pytest.raises(DecodeError):
        decode_batch(data)


def test_bytes_the_runtime_refuses_are_undecodable_for_the_engine() -> None:
    # A batch whose one prediction carries field number 0, as a bus message would bring it.
    data = b"\x0a\x01b\x22\x04\x0a\x01p\x00\x01"
    with pytest.raises(InvalidArgument) as refused:
        DecisionEngine().decide(data, NOW, Caller("u", "c", tiers.PRO.tier))
    assert refused.value.reason == UNDECODABLE
    assert "field number 0" in refused.value.message


def _prediction_field(body: bytes) -> bytes:
    return b"\x22" + bytes((len(body),)) + body


@pytest.mark.parametrize(
    "data",
    [
        # A message field sent twice is merged: nanos from the first, seconds from the second.
        pytest.param(b"\x1a\x02\x10\x07\x1a\x02\x08\x05", id="timestamp-sent-twice"),
        # Enums and nanos are int32: the runtime keeps the low 32 bits of a longer varint.
        pytest.param(_prediction_field(b"\x18\x81\x80\x80\x80\x10"), id="direction-2^32+1"),
        pytest.param(b"\x1a\x06\x10\xff\xff\xff\xff\x0f", id="nanos-2^32-1"),
        # Seconds far beyond 64-bit nanoseconds, both ways: read exactly, never wrapped.
        pytest.param(b"\x1a\x0a\x08" + b"\xff" * 8 + b"\x7f", id="seconds-2^63-1"),
        pytest.param(
            _prediction_field(b"\x72\x0b\x08" + b"\x80" * 9 + b"\x01"), id="seconds--2^63"
        ),
    ],
)
def test_odd_but_valid_values_are_read_as_the_runtime_reads_them(data: bytes) -> None:
    assert repr(decode_batch(data)) == repr(_as_runtime_reads(data))


def test_the_decoder_reads_every_prediction_field_with_its_wire_type() -> None:
    wire_types = {
        descriptor.FieldDescriptor.TYPE_DOUBLE: 1,
        descriptor.FieldDescriptor.TYPE_ENUM: 0,
        descriptor.FieldDescriptor.TYPE_STRING: 2,
        descriptor.FieldDescriptor.TYPE_MESSAGE: 2,
    }
    fields = prediction_pb2.Prediction.DESCRIPTOR.fields
    expected = {field.number: wire_types[field.type] for field in fields}
    assert expected == prediction_codec.PREDICTION_WIRE_TYPES


# -- encoding ---------------------------------------------------------------


def _context(injected_by: str = "") -> SignalContext:
    return SignalContext("batch-1", "user-1", "acme", "corr-1", 7, NOW, 1, injected_by)


@st.composite
def decided(draw: st.DrawFn) -> list[Decision]:
    """Decisions of the real core over generated predictions, some with risk changes."""
    tier = draw(st.sampled_from([tiers.FREE, tiers.PRO, tiers.ENTERPRISE]))
    config = tier.defaults.__deepcopy__()
    config.features.multi_leg_entries_enabled = draw(st.booleans())
    config.prefer_market_orders = draw(st.booleans())
    strategy = from_config(config, tier, 3)
    context = core.DecisionContext("user-1", "acme", 25_000.0, "USD", strategy, NOW, NOW, 0)
    book, memory = MarketBook(), SignalMemory()
    decisions = []
    for index in range(draw(st.integers(1, 5))):
        price = draw(st.floats(1.0, 2.0))
        message = prediction_pb2.Prediction(
            prediction_id=f"p{index}",
            symbol=draw(st.sampled_from(["EURUSD", "GBPUSD", "USDJPY", "NOPE"])),
            primary_direction=draw(st.integers(1, 5)),  # type: ignore[arg-type]
            confidence=draw(probabilities),
            current_price=price * (100 if index % 2 else 1),
        )
        message.timestamp.FromNanoseconds(NOW - 1_000_000)
        for _ in range(draw(st.integers(0, 3))):
            message.votes.add(direction=draw(st.integers(1, 5)), confidence=0.9, weight=1.0)
        if draw(st.booleans()):
            message.patterns.add(name="x", probability=0.9, direction=draw(st.integers(1, 5)))
        if draw(st.booleans()):
            message.volume_confirmation = draw(probabilities)
        decision = core.decide(message, context, book, memory)
        instrument = instruments.lookup(decision.symbol)
        if decision.entry is not None and instrument is not None and draw(st.booleans()):
            assessment = risk_service_pb2.RiskAssessment(
                risk_level=draw(st.integers(1, 5)),  # type: ignore[arg-type]
                recommended_position_size_lots=decision.entry.lots / 2,
                recommended_stop_loss=(decision.entry.entry_price + decision.entry.stop_loss) / 2,
                recommended_stop_loss_tighter=True,
                reasons=["exposure"],
            )
            risk.apply_assessment(decision, assessment, instrument)
        decision.risk_status = draw(st.integers(0, 5))
        decisions.append(decision)
    return decisions


@REPRODUCIBLE
@given(decided())
def test_signals_encode_byte_for_byte_as_the_runtime_does(decisions: list[Decision]) -> None:
    encoder = SignalEncoder()
    context = _context()
    for decision in decisions:
        expected = oracle.signal_message(context, decision).SerializeToString()
        assert encoder.encode_signal(context, decision) == expected


@REPRODUCIBLE
@given(decided(), st.tuples(*[st.integers(0, 500)] * 5))
def test_batches_encode_byte_for_byte_as_the_runtime_does(
    decisions: list[Decision], counts: tuple[int, int, int, int, int]
) -> None:
    encoder = SignalEncoder()
    context = _context()
    signals = [encoder.encode_signal(context, decision) for decision in decisions]
    expected = oracle.batch_message(context, decisions, counts).SerializeToString()
    assert encoder.encode_batch(context, signals, counts) == expected


def _complete_decision() -> Decision:
    """A decision with every field that reaches the wire set to a non-default value."""
    decision = Decision(
        "sid",
        "pid",
        "EURUSD",
        0.8,
        0.4,
        [(signal_pb2.DECISION_RULE_STRENGTH, signal_pb2.RULE_OUTCOME_ADJUST, 0.5, -0.0, "why")],
    )
    decision.signal_type = signal_pb2.SIGNAL_TYPE_WEAK_SELL
    decision.disposition = signal_pb2.SIGNAL_DISPOSITION_HOLD
    decision.reason = signal_pb2.DISPOSITION_REASON_RISK_EXTREME
    decision.cancellation_reason = "extreme"
    decision.strength = 0.7
    decision.consensus = 0.6
    decision.pattern_score = 0.0
    decision.entry = Entry(
        2, 3, 1.1, 1.09, 1.09, 1.1, 1.07, 10.0, 20.0, 0.3, 30.0, 10.0, 100.0, 0.5,
        [(0.2, 1.08, 10.0), (0.1, 1.07, 20.0)], 2, NOW + 1,
    )  # fmt: skip
    decision.market = MarketView(3, 30.0, 2, -4.0, 1.5, 1_500_000_000, 12, 1.1, 0.6)
    decision.risk_status = signal_pb2.RISK_STATUS_ASSESSED
    decision.risk_level = risk_level_pb2.RISK_LEVEL_EXTREME
    decision.risk_adjustments = [(signal_pb2.RISK_ADJUSTMENT_KIND_SIGNAL_CANCELLED, 0.3, -1.0, "x")]
    return decision


def test_every_field_of_every_signal_message_reaches_the_wire() -> None:
    context = _context(injected_by="admin-1")
    encoded = SignalEncoder().encode_signal(context, _complete_decision())
    signal = signal_pb2.TradingSignal.FromString(encoded)

    def unset(message: object, full: descriptor.Descriptor) -> set[str]:
        present = {field.name for field, _ in message.ListFields()}  # type: ignore[attr-defined]
        return {field.name for field in full.fields} - present

    assert unset(signal, signal_pb2.TradingSignal.DESCRIPTOR) == set()
    assert unset(signal.entry, signal_pb2.EntryStrategy.DESCRIPTOR) == set()
    assert unset(signal.entry.legs[0], signal_pb2.EntryLeg.DESCRIPTOR) == set()
    assert unset(signal.market, market_pb2.MarketCondition.DESCRIPTOR) == set()
    assert unset(signal.decision_trace[0], signal_pb2.DecisionStep.DESCRIPTOR) == set()
    assert unset(signal.risk_adjustments[0], signal_pb2.RiskAdjustment.DESCRIPTOR) == set()
    assert signal == oracle.signal_message(context, _complete_decision())


@st.composite
def _prediction_requests(draw: st.DrawFn) -> bytes:
    """A ProcessPredictionsRequest around a (mutated) batch, with fields of its own around it,
    the batch field sometimes twice or absent, and now and then its bytes altered."""
    batch = draw(_mutated_batches())
    field = b"\x0a" + _varint_bytes(len(batch)) + batch
    encoded = bytearray(
        draw(_wire_fields(0))
        + draw(st.sampled_from((b"", field, field + field)))
        + draw(_wire_fields(0))
    )
    for _ in range(draw(st.integers(0, 2))):
        if encoded:
            encoded[draw(st.integers(0, len(encoded) - 1))] = draw(st.integers(0, 255))
    return bytes(encoded)


@settings(REPRODUCIBLE, max_examples=800)
@given(_prediction_requests())
def test_the_batch_is_read_out_of_a_request_as_the_runtime_reads_it(data: bytes) -> None:
    # ProcessPredictions reads the batch field out of the request's bytes (api/predictions.py);
    # the runtime's reading of the whole request is the oracle.
    try:
        request = service_pb2.ProcessPredictionsRequest.FromString(data)
    except message.DecodeError:
        request = None
    try:
        batch = embedded_message(data, 1)
    except DecodeError as error:
        refusal = str(error)
    else:
        refusal = ""
    if refusal:
        # Refused where the runtime refuses, or stricter as the C codec is (groups).
        assert request is None or re.search(_STRICTER, refusal), (data, refusal)
        return
    if request is None:
        # The runtime refused something inside the batch: the C codec refuses it too.
        assert batch is not None, data
        with pytest.raises(DecodeError):
            decode_batch(batch)
        return
    if batch is None:
        assert not request.HasField("batch")
    else:
        assert request.HasField("batch")
        assert prediction_pb2.MLPredictionBatch.FromString(batch) == request.batch
