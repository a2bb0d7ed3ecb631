"""What every call of a client carries: its token, its deadline, and whether it is retried."""

from __future__ import annotations

import dataclasses

from trading_engine_client.auth import Token, bearer_metadata
from trading_engine_client.errors import TradingEngineError
from trading_engine_client.retry import RetryPolicy
from trading_engine_client.rpcs import Request, Response, Result, Unary


@dataclasses.dataclass(frozen=True, slots=True)
class CallSettings:
    """A client's token, deadline and retry policy, applied the same way by both clients."""

    token: Token | None
    default_timeout: float
    retry: RetryPolicy

    def deadline(self, timeout: float | None) -> float:
        """Seconds one attempt of a unary call may take."""
        return self.default_timeout if timeout is None else timeout

    def metadata(self) -> tuple[tuple[str, str], ...]:
        return bearer_metadata(self.token)

    def backoff(
        self,
        rpc: Unary[Request, Response, Result],
        request: Request,
        attempt: int,
        error: TradingEngineError,
    ) -> float | None:
        """Seconds to wait before trying `request` again; None to raise `error` now."""
        return self.retry.backoff(attempt, error) if rpc.retry_safe(request) else None
