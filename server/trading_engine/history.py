"""Reading signal history: one user's stored decisions, oldest first, in resumable pages.

Decisions reach the store through the history writer a flush interval after
they are made, so a signal decided a moment ago may not be listed yet.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Sequence
from typing import Final

from tradeflow.trading.v1 import signal_pb2
from trading_engine import errors, paging
from trading_engine.stores.base import SignalQuery, SignalRecord, Store
from trading_engine.tenancy import Caller, subject_user

DEFAULT_PAGE_SIZE: Final = 100
MAX_PAGE_SIZE: Final = 1000
# A page ends before its signals pass this many bytes, whatever page_size asks: each page is
# one gRPC message, and a default client takes at most 4 MiB (signals carry notes and reasons
# of up to 1,000 characters).
MAX_PAGE_BYTES: Final = 3 * 1024 * 1024
_TOKEN_KIND: Final = "h1"


@dataclasses.dataclass(frozen=True)
class HistoryRequest:
    """Which signals to stream, as GetSignalHistoryRequest names them."""

    user_id: str = ""
    symbols: Sequence[str] = ()
    signal_types: Sequence[int] = ()
    start_ns: int | None = None
    end_ns: int | None = None
    include_non_actionable: bool = False
    page_size: int = 0
    page_token: str = ""
    max_signals: int = 0


@dataclasses.dataclass(frozen=True)
class HistoryPage:
    records: list[SignalRecord]
    # Resumes after this page; empty on the last one.
    next_page_token: str


class SignalHistory:
    def __init__(self, store: Store) -> None:
        self._store = store

    async def pages(self, caller: Caller, request: HistoryRequest) -> AsyncIterator[HistoryPage]:
        """The pages of the request, as long as signals remain and max_signals allows."""
        _check(request)
        page_size = request.page_size or DEFAULT_PAGE_SIZE
        remaining = request.max_signals or None
        query = SignalQuery(
            company_id=caller.company_id,
            user_id=subject_user(caller, request.user_id),
            symbols=tuple(request.symbols),
            signal_types=tuple(request.signal_types),
            start_ns=request.start_ns,
            end_ns=request.end_ns,
            include_non_actionable=request.include_non_actionable,
            after=_read_token(request.page_token),
        )
        while True:
            limit = page_size if remaining is None else min(page_size, remaining)
            # One more than the page shows whether another page follows.
            found = await self._store.query_signals(dataclasses.replace(query, limit=limit + 1))
            records = _within_bytes(found[:limit])
            if not records:
                return
            if remaining is not None:
                remaining -= len(records)
            more = len(found) > len(records) and remaining != 0
            last = records[-1]
            token = (
                paging.page_token(_TOKEN_KIND, last.generated_at_ns, last.signal_id) if more else ""
            )
            yield HistoryPage(records, token)
            if not more:
                return
            query = dataclasses.replace(query, after=(last.generated_at_ns, last.signal_id))


def _within_bytes(records: list[SignalRecord]) -> list[SignalRecord]:
    """The leading records whose payloads fit MAX_PAGE_BYTES; at least one."""
    total = 0
    for count, record in enumerate(records):
        total += len(record.payload)
        if total > MAX_PAGE_BYTES and count:
            return records[:count]
    return records


def _check(request: HistoryRequest) -> None:
    violations = []
    if not 0 <= request.page_size <= MAX_PAGE_SIZE:
        violations.append(
            errors.FieldViolation("page_size", f"must be in [1, {MAX_PAGE_SIZE}], or 0 for 100")
        )
    if request.max_signals < 0:
        violations.append(errors.FieldViolation("max_signals", "must be >= 0 (0: no limit)"))
    if (
        request.start_ns is not None
        and request.end_ns is not None
        and request.start_ns >= request.end_ns
    ):
        violations.append(errors.FieldViolation("end_time", "must be after start_time"))
    known = signal_pb2.SignalType.values()
    for index, signal_type in enumerate(request.signal_types):
        if signal_type not in known or signal_type == signal_pb2.SIGNAL_TYPE_UNSPECIFIED:
            violations.append(
                errors.FieldViolation(f"signal_types[{index}]", "must be a defined signal type")
            )
    if violations:
        raise errors.invalid("the history request is invalid", violations)


def _read_token(token: str) -> tuple[int, str] | None:
    if not token:
        return None
    at, signal_id = paging.read_page_token(token, _TOKEN_KIND, parts=2, numbers=1)
    return int(at), signal_id
