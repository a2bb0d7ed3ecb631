"""A grpc.aio server that answers every ProcessPredictions request with its own bytes.

The reference of `bench.grpc`: what a Python gRPC server costs per message
when it decides nothing, parses nothing and keeps nothing. Run as
`python -m bench.grpc_echo PORT`; it serves until SIGTERM.
"""

from __future__ import annotations

import asyncio
import signal
import sys
from collections.abc import AsyncIterator
from typing import Any

import grpc

PROCESS_PREDICTIONS = "/tradeflow.trading.v1.TradingEngineService/ProcessPredictions"


async def _echo(requests: AsyncIterator[bytes], context: Any) -> AsyncIterator[bytes]:
    async for request in requests:
        yield request


def _raw(data: bytes) -> bytes:
    return data


async def serve(port: int) -> None:
    server = grpc.aio.server()
    handler = grpc.stream_stream_rpc_method_handler(
        _echo, request_deserializer=_raw, response_serializer=_raw
    )
    server.add_generic_rpc_handlers(
        (
            grpc.method_handlers_generic_handler(
                "tradeflow.trading.v1.TradingEngineService", {"ProcessPredictions": handler}
            ),
        )
    )
    server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()
    await server.stop(1)


def main() -> None:
    asyncio.run(serve(int(sys.argv[1])))


if __name__ == "__main__":
    main()
