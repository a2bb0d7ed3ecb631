"""The null relay `python -m bench.bus` compares the engine with: the transport's limit.

It takes the engine's place on the bus and does only what any consumer of
the prediction subject must: it receives each message in the engine's queue
group, decodes the envelope and the MLPredictionBatch inside it with the
protobuf runtime, serialises the batch again, wraps it in an output envelope
whose message_id is `<input message_id>:signals` and publishes it on the
signal subject with the same `message-id` header. No rule, no store, no
history: what is left is what NATS, nats-py and protobuf cost.

Run as `python -m bench.null_relay nats://127.0.0.1:PORT`; it prints `ready`
once subscribed and stops on SIGTERM or SIGINT.
"""

from __future__ import annotations

import argparse
import asyncio
import signal

import nats
from nats.aio.msg import Msg

from tradeflow.common.v1 import envelope_pb2
from tradeflow.ml.v1 import prediction_pb2
from trading_engine.bus.names import NATS_PREDICTIONS, NATS_SIGNALS

QUEUE_GROUP = "trading-engine"
CLIENT_NAME = "bench-null-relay"
SUFFIX = ":signals"
_SIGNALS = envelope_pb2.MESSAGE_TYPE_TRADING_SIGNAL_BATCH
_SIGNALS_NAME = envelope_pb2.MessageType.Name(_SIGNALS)


async def relay(url: str) -> None:
    """Relay until SIGTERM or SIGINT, then drain."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    client = await nats.connect(url, name=CLIENT_NAME, pending_size=64 * 1024 * 1024)
    envelope_of = envelope_pb2.TradingProcessingEnvelope.FromString
    batch_of = prediction_pb2.MLPredictionBatch.FromString
    envelope_type = envelope_pb2.TradingProcessingEnvelope
    publish = client.publish

    async def on_message(msg: Msg) -> None:
        inbound = envelope_of(msg.data)
        batch = batch_of(inbound.payload)
        message_id = inbound.message_id + SUFFIX
        outbound = envelope_type(
            message_type=_SIGNALS,
            user_id=inbound.user_id,
            company_id=inbound.company_id,
            payload=batch.SerializeToString(),
            message_id=message_id,
            correlation_id=batch.correlation_id,
        )
        await publish(
            NATS_SIGNALS,
            outbound.SerializeToString(),
            headers={"message-id": message_id, "message-type": _SIGNALS_NAME},
        )

    # The engine's limits (bus/service.py), so both shed at the same depth.
    await client.subscribe(
        NATS_PREDICTIONS,
        queue=QUEUE_GROUP,
        cb=on_message,
        pending_msgs_limit=100_000,
        pending_bytes_limit=256 * 1024 * 1024,
    )
    await client.flush()
    print("ready", flush=True)
    await stop.wait()
    await client.drain()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.null_relay", description=__doc__)
    parser.add_argument("url", help="NATS server, e.g. nats://127.0.0.1:4222")
    asyncio.run(relay(parser.parse_args().url))


if __name__ == "__main__":
    main()
