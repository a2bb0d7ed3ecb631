"""Odd but well-formed requests to every RPC of a real engine, and what each gets back.

The probe builds requests from the contract's descriptors (one request on
each bidirectional stream) with the values that break careless code:
timestamps beyond year 9999 or before year 1, nanos out of [0, 1e9), numbers
at the edges of their type, non-finite and subnormal doubles, unknown enum
values, very long and non-ASCII strings, page tokens holding huge numbers.
Whatever the engine thinks of them, the answer is a status a caller can act
on: never UNKNOWN or INTERNAL, which are what an exception escaping a handler
becomes. The cases it found are pinned below it with the answer each gets.
"""

from __future__ import annotations

import asyncio
import base64
from typing import TYPE_CHECKING, Any

import grpc
import pytest
from google.protobuf import (
    descriptor,
    duration_pb2,
    field_mask_pb2,
    message_factory,
    timestamp_pb2,
)
from google.rpc import code_pb2
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests import factories
from tests.api.test_signal_history import FLUSHED_S
from tests.support import (
    ADMIN,
    TRADER,
    Stubs,
    Tokens,
    rpc_failure,
)
from tradeflow.trading.v1 import strategy_pb2
from tradeflow.trading.v1 import trading_engine_service_pb2 as service_pb2
from trading_engine import errors
from trading_engine.api.status import to_status_proto
from trading_engine.app import Application
from trading_engine_client.errors import InvalidArgumentError

if TYPE_CHECKING:
    from tradeflow.trading.v1 import trading_engine_service_pb2_grpc as service_grpc

    Stub = service_grpc.TradingEngineServiceAsyncStub

SERVICE = service_pb2.DESCRIPTOR.services_by_name["TradingEngineService"]
_METHODS = list(SERVICE.methods)
# Streams that answer only when something happens are given this long, then cancelled.
_WATCH_SECONDS = 0.2
# Codes an exception escaping a handler turns into: never an answer to bad input.
_CRASHES = {grpc.StatusCode.UNKNOWN, grpc.StatusCode.INTERNAL}
_FD = descriptor.FieldDescriptor

_INT64_EDGES = [0, 1, -1, 2**31 - 1, -(2**31), 2**53, 2**63 - 1, -(2**63)]
_UINT64_EDGES = [0, 1, 2**32 - 1, 2**63, 2**64 - 1]
_DOUBLES = st.one_of(
    st.sampled_from(
        [0.0, -0.0, 5e-324, 1e-300, 1e300, 1.7976931348623157e308, float("inf"), float("nan")]
    ),
    st.floats(),
)
# Timestamp and Duration seconds: in range, at the edges of year 1 and 9999 and of 64-bit
# nanoseconds, and beyond them.
_SECONDS = st.one_of(
    st.integers(0, 4_000_000_000),
    st.sampled_from(
        [
            -62_135_596_800,
            -62_135_596_801,
            253_402_300_799,
            253_402_300_800,
            315_576_000_000,
            9_223_372_036,
            9_223_372_037,
            2**63 - 1,
            -(2**63),
        ]
    ),
)
_NANOS = st.sampled_from([0, 1, 999_999_999, 1_000_000_000, -1, 2**31 - 1, -(2**31)])
_PAGE_TOKENS = st.sampled_from(
    [
        base64.urlsafe_b64encode(raw).decode()
        for raw in (
            b"h1:" + b"9" * 40 + b":sig",
            b"h1:-1:sig",
            b"h1:\xc2\xb2:sig",
            b"v1:" + b"9" * 40,
            b"v1:99999999999999999999:x",
            b"h1:1:",
            b"\xff\xfe",
        )
    ]
    + ["not base64!", "=" * 3]
)
_TEXT = st.one_of(
    st.text(max_size=8),
    st.sampled_from(["trader-1", "acme", "ops-1", "EURUSD", "x" * 100_000, "\x00", "é" * 300]),
    _PAGE_TOKENS,
)


_INT32S = st.one_of(st.integers(-(2**31), 2**31 - 1), st.sampled_from([0, -1, 2**31 - 1]))
_INT64S = st.one_of(st.integers(-(2**63), 2**63 - 1), st.sampled_from(_INT64_EDGES))
_UINT64S = st.one_of(st.integers(0, 2**64 - 1), st.sampled_from(_UINT64_EDGES))
_SCALARS: dict[int, st.SearchStrategy[Any]] = {
    _FD.TYPE_DOUBLE: _DOUBLES,
    _FD.TYPE_FLOAT: st.floats(width=32),
    _FD.TYPE_INT32: _INT32S,
    _FD.TYPE_SINT32: _INT32S,
    _FD.TYPE_SFIXED32: _INT32S,
    _FD.TYPE_UINT32: st.integers(0, 2**32 - 1),
    _FD.TYPE_FIXED32: st.integers(0, 2**32 - 1),
    _FD.TYPE_INT64: _INT64S,
    _FD.TYPE_SINT64: _INT64S,
    _FD.TYPE_SFIXED64: _INT64S,
    _FD.TYPE_UINT64: _UINT64S,
    _FD.TYPE_FIXED64: _UINT64S,
    _FD.TYPE_BOOL: st.booleans(),
    _FD.TYPE_BYTES: st.binary(max_size=16),
    _FD.TYPE_STRING: _TEXT,
}


def _scalar(field: descriptor.FieldDescriptor) -> st.SearchStrategy[Any]:
    if field.enum_type is not None:
        # The contract's values, and any other int32 a client may send.
        known = [value.number for value in field.enum_type.values]
        return st.one_of(st.sampled_from(known), _INT32S)
    return _SCALARS[field.type]


@st.composite
def _message_of(draw: st.DrawFn, kind: descriptor.Descriptor, depth: int) -> Any:
    """A message of `kind` with some of its fields set to odd values."""
    message = _class_of(kind)()
    if kind.full_name in (
        timestamp_pb2.Timestamp.DESCRIPTOR.full_name,
        duration_pb2.Duration.DESCRIPTOR.full_name,
    ):
        message.seconds = draw(_SECONDS)
        message.nanos = draw(_NANOS)
        return message
    if kind.full_name == field_mask_pb2.FieldMask.DESCRIPTOR.full_name:
        message.paths.extend(draw(st.lists(_TEXT, max_size=3)))
        return message
    for field in kind.fields:
        if not draw(st.booleans()):
            continue
        if field.message_type is not None:
            if depth >= 3 or field.message_type.GetOptions().map_entry:
                continue
            values = draw(st.lists(_message_of(field.message_type, depth + 1), max_size=2))
            if field.is_repeated:
                getattr(message, field.name).extend(values)
            elif values:
                getattr(message, field.name).CopyFrom(values[0])
        elif field.is_repeated:
            getattr(message, field.name).extend(draw(st.lists(_scalar(field), max_size=3)))
        else:
            setattr(message, field.name, draw(_scalar(field)))
    return message


def _class_of(kind: descriptor.Descriptor) -> Any:
    return message_factory.GetMessageClass(kind)


@st.composite
def _calls(draw: st.DrawFn) -> tuple[descriptor.MethodDescriptor, Any, bool]:
    method = draw(st.sampled_from(_METHODS))
    request = draw(_message_of(method.input_type, 0))
    if method.name == "ProcessPredictionBatch" and draw(st.booleans()):
        # A batch that gets past the tenant checks, so the predictions are decided.
        batch = factories.batch("odd", [factories.prediction("p")])
        batch.MergeFrom(request.batch)
        batch.user_context.user_id, batch.user_context.company_id = "trader-1", "acme"
        request.batch.CopyFrom(batch)
    return method, request, draw(st.booleans())


def _probe(address: str, tokens: Tokens, examples: int) -> None:
    """Every generated call, on a blocking channel: run in a thread beside the engine's loop."""
    channels = {
        admin: grpc.insecure_channel(
            address,
            options=[("grpc.max_receive_message_length", 64 * 1024 * 1024)],
        )
        for admin in (False, True)
    }
    headers = {admin: tokens.header(ADMIN if admin else TRADER) for admin in (False, True)}

    @settings(
        max_examples=examples,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(_calls())
    def answer_is_never_a_crash(
        call: tuple[descriptor.MethodDescriptor, Any, bool],
    ) -> None:
        method, request, admin = call
        channel = channels[admin]
        path = f"/{SERVICE.full_name}/{method.name}"
        codec: dict[str, Any] = {
            "request_serializer": lambda message: message.SerializeToString(),
            "response_deserializer": lambda data: data,
        }
        metadata = tuple(headers[admin].items())
        try:
            if method.client_streaming:
                # One request, then the stream is left open as a live client would.
                responses = channel.stream_stream(path, **codec)(
                    iter([request]), metadata=metadata, timeout=_WATCH_SECONDS
                )
                for _ in responses:
                    pass
            elif method.server_streaming:
                for _ in channel.unary_stream(path, **codec)(
                    request, metadata=metadata, timeout=10
                ):
                    pass
            else:
                channel.unary_unary(path, **codec)(request, metadata=metadata, timeout=10)
        except grpc.RpcError as error:
            code, details = error.code(), error.details()
            assert code not in _CRASHES, f"{method.name}({request}) -> {code}: {details}"

    try:
        answer_is_never_a_crash()
    finally:
        for channel in channels.values():
            channel.close()


async def test_odd_requests_to_every_rpc_never_crash_a_handler(
    engine: Application, tokens: Tokens
) -> None:
    await asyncio.to_thread(_probe, engine.grpc_address, tokens, 500)


# --- Timestamps, page tokens, ids and numbers the engine cannot hold -----------------------

_LAST_SECONDS, _LAST_NANOS = divmod(2**63 - 1, 1_000_000_000)


def _stamp(seconds: int, nanos: int = 0) -> timestamp_pb2.Timestamp:
    return timestamp_pb2.Timestamp(seconds=seconds, nanos=nanos)


async def _refusal(call: Any) -> InvalidArgumentError:
    error = await rpc_failure(call)
    assert isinstance(error, InvalidArgumentError), error
    return error


async def _history(stub: Stub, **fields: Any) -> list[service_pb2.GetSignalHistoryResponse]:
    request = service_pb2.GetSignalHistoryRequest(**fields)
    return [page async for page in stub.GetSignalHistory(request, timeout=10)]


@pytest.mark.parametrize(
    ("field", "stamp"),
    [
        pytest.param("end_time", _stamp(253_402_300_799), id="end-9999-12-31T23:59:59Z"),
        pytest.param("end_time", _stamp(_LAST_SECONDS, _LAST_NANOS + 1), id="end-1ns-past-2262"),
        pytest.param("start_time", _stamp(-62_135_596_800), id="start-0001-01-01"),
        pytest.param("start_time", _stamp(-62_135_596_801), id="start-before-year-1"),
        pytest.param("start_time", _stamp(1, 1_000_000_000), id="nanos-1e9"),
        pytest.param("end_time", _stamp(1, -1), id="nanos-negative"),
        pytest.param("end_time", _stamp(2**63 - 1), id="seconds-2^63-1"),
    ],
)
async def test_history_times_the_engine_cannot_hold_are_invalid_argument_naming_them(
    stub: Stub, field: str, stamp: timestamp_pb2.Timestamp
) -> None:
    error = await _refusal(_history(stub, **{field: stamp}))
    assert list(error.field_violations) == [field]


async def test_history_times_at_the_edge_of_64_bit_nanoseconds_are_read(stub: Stub) -> None:
    await stub.ProcessPredictionBatch(
        service_pb2.ProcessPredictionBatchRequest(
            batch=factories.batch("b", [factories.prediction("p")])
        )
    )
    await asyncio.sleep(FLUSHED_S)
    # The first and the last instant 64-bit nanoseconds hold: everything lies between.
    first_seconds, first_nanos = divmod(-(2**63), 1_000_000_000)
    pages = await _history(
        stub,
        start_time=_stamp(first_seconds, first_nanos),
        end_time=_stamp(_LAST_SECONDS, _LAST_NANOS),
        include_non_actionable=True,
    )
    assert [signal.prediction_id for page in pages for signal in page.signals] == ["p"]


def _token(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode()


@pytest.mark.parametrize(
    "token",
    [
        pytest.param(_token(b"h1:" + b"9" * 40 + b":sid"), id="40-digits"),
        pytest.param(_token(b"h1:9223372036854775808:sid"), id="2^63"),
        pytest.param(_token(b"h1:" + b"9" * 5000 + b":sid"), id="5000-digits"),
        pytest.param(_token("h1:²:sid".encode()), id="a-digit-int-cannot-read"),
    ],
)
async def test_a_crafted_history_page_token_is_invalid_argument(stub: Stub, token: str) -> None:
    error = await _refusal(_history(stub, page_token=token))
    assert list(error.field_violations) == ["page_token"]


async def test_a_crafted_strategy_versions_page_token_is_invalid_argument(stub: Stub) -> None:
    request = service_pb2.ListStrategyVersionsRequest(
        layer=strategy_pb2.STRATEGY_LAYER_USER, page_token=_token(b"v1:" + b"9" * 30)
    )
    error = await _refusal(stub.ListStrategyVersions(request))
    assert list(error.field_violations) == ["page_token"]


@pytest.mark.parametrize(
    ("field", "stamp"),
    [
        pytest.param("start_time", _stamp(-62_135_596_801), id="before-year-1"),
        pytest.param("end_time", _stamp(253_402_300_800), id="after-year-9999"),
        pytest.param("end_time", _stamp(1_800_000_000, -1), id="nanos-negative"),
        pytest.param("start_time", _stamp(1_800_000_000, 2**31 - 1), id="nanos-2^31-1"),
    ],
)
async def test_replay_times_the_engine_cannot_hold_are_invalid_argument_naming_them(
    stubs: Stubs, field: str, stamp: timestamp_pb2.Timestamp
) -> None:
    request = service_pb2.ReplaySignalsRequest(
        start_time=_stamp(1_800_000_000), end_time=_stamp(1_800_003_600)
    )
    getattr(request, field).CopyFrom(stamp)
    error = await _refusal(_drain(stubs.as_(TRADER).ReplaySignals(request, timeout=10)))
    assert list(error.field_violations) == [field]


async def _drain(responses: Any) -> None:
    async for _ in responses:
        pass


async def test_an_error_echoing_a_very_long_value_keeps_its_status() -> None:
    # Ids are bounded at the door now (decision 22), but any text an error echoes is clipped:
    # in full it would not fit the call's trailers, and gRPC would answer RESOURCE_EXHAUSTED.
    status = to_status_proto(errors.NotFound(f"user '{'u' * 100_000}' not found"))
    assert status.code == code_pb2.NOT_FOUND
    assert status.message.startswith("user 'uuu")
    assert status.message.endswith("…")
    assert len(status.message.encode()) <= 512


async def test_a_very_long_id_is_refused_at_the_door_naming_it(stubs: Stubs) -> None:
    request = service_pb2.GetStrategyRequest(user_id="u" * 100_000)
    error = await rpc_failure(stubs.as_(ADMIN).GetStrategy(request, timeout=10))
    assert isinstance(error, InvalidArgumentError)
    assert list(error.field_violations) == ["user_id"]
