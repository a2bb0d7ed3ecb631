"""Store calls that a message or a request needs, tried again while the store fails.

A database that drops a connection or is restarted fails a call or two; the
work that needed it should wait a moment rather than fail. After the last
attempt the caller gets UNAVAILABLE (errors.Unavailable), which the bus turns
into a dead letter with that reason and gRPC into its status.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Final, TypeVar

from trading_engine import errors
from trading_engine.stores.base import StoreError

# Tried this often, waiting 0.2, 0.4, 0.6, 0.8 s between: about two seconds in all.
ATTEMPTS: Final = 5
_WAIT_S: Final = 0.2
_T = TypeVar("_T")


async def with_store_retries(operation: Callable[[], Awaitable[_T]], what: str) -> _T:
    """`operation`'s result, tried again while it raises StoreError; Unavailable after the
    last attempt, naming `what` could not be done."""
    for attempt in range(1, ATTEMPTS + 1):
        try:
            return await operation()
        except StoreError as error:
            if attempt == ATTEMPTS:
                raise errors.Unavailable(
                    f"{what}: the store failed {ATTEMPTS} times: {error}",
                    reason="STORE_UNAVAILABLE",
                ) from None
            await asyncio.sleep(_WAIT_S * attempt)
    raise AssertionError("unreachable")  # pragma: no cover - the loop returns or raises
