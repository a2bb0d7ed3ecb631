"""ProcessPredictions and ProcessPredictionBatch over gRPC: bytes in, bytes out.

Both RPCs are registered with raw (de)serialisers (api/server.py): the batch
field is read out of the request's bytes and handed to the pipeline as it
arrived, and the engine's encoded signal batch is framed as the response's
field 1 and sent as it is. Parsing the request into protobuf objects,
serialising the batch again for the C codec, and parsing the response back
for gRPC to serialise it once more cost about as much as the rules themselves.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, Final

from trading_engine import errors
from trading_engine.api.auth import current_caller
from trading_engine.clock import Clock
from trading_engine.pipeline import SignalPipeline
from trading_engine.wire.protowire import DecodeError, embedded_message, length_delimited

# Field 1 of both requests (`batch`) and of both responses (`signal_batch`).
_BATCH_FIELD: Final = 1
_SIGNAL_BATCH_TAG: Final = b"\x0a"


class PredictionHandlers:
    def __init__(self, pipeline: SignalPipeline, clock: Clock) -> None:
        self._pipeline = pipeline
        self._clock = clock

    async def process_predictions(
        self, requests: AsyncIterator[bytes], context: Any
    ) -> AsyncIterator[bytes]:
        # One batch at a time: the next request is read only after this one is
        # answered, so a fast producer is held back by gRPC flow control.
        async for request in requests:
            yield await self._decide(request)

    async def process_prediction_batch(self, request: bytes, context: Any) -> bytes:
        return await self._decide(request)

    async def _decide(self, request: bytes) -> bytes:
        """The serialized response for one serialized request."""
        try:
            batch = embedded_message(request, _BATCH_FIELD)
        except DecodeError as error:
            raise errors.Undecodable(
                f"the request message does not decode: {error}",
                (errors.FieldViolation("request", str(error)),),
            ) from None
        if batch is None:
            raise errors.InvalidArgument(
                "the request carries no prediction batch",
                (errors.FieldViolation("batch", "required"),),
            )
        decided = await self._pipeline.decide(batch, self._clock.now_ns(), current_caller())
        return length_delimited(_SIGNAL_BATCH_TAG, decided.payload)
