"""The audit chain of one signal: the prediction it came from, its decision, risk and executions.

Everything is read back from the store, so a signal can be explained long
after it was decided, by any engine instance: the signal as history kept it
(decision trace, risk status and adjustments included), the prediction from
the batch it was decided in, every execution result, and its performance.
"""

from __future__ import annotations

import dataclasses

from tradeflow.ml.v1 import prediction_pb2
from tradeflow.trading.v1 import execution_pb2, signal_pb2
from trading_engine import errors
from trading_engine.stores.base import SignalRecord, Store
from trading_engine.stores.history import HistoryWriter
from trading_engine.tenancy import Caller, subject_user


@dataclasses.dataclass(frozen=True)
class Explanation:
    signal: signal_pb2.TradingSignal
    # None for manual signals, and for a prediction whose batch was not kept.
    prediction: prediction_pb2.Prediction | None
    # Oldest first.
    executions: list[execution_pb2.ExecutionResult]
    # None until the signal has execution results.
    performance: execution_pb2.SignalPerformance | None


class SignalAudit:
    def __init__(self, store: Store, history: HistoryWriter) -> None:
        self._store = store
        self._history = history

    async def explain(self, caller: Caller, signal_id: str) -> Explanation:
        """The chain of one of the caller's signals (an admin's: of any user of their company).

        NotFound when the company has no such signal, and for another user's
        signal unless the caller is a company admin (not PERMISSION_DENIED: a
        guessed id must not reveal that a signal exists).
        """
        if not signal_id:
            raise errors.InvalidArgument(
                "name the signal to explain", (errors.FieldViolation("signal_id", "required"),)
            )
        company_id = caller.company_id
        record = await self._store.signal(company_id, signal_id)
        refused = record is not None and record.disposition == signal_pb2.SIGNAL_DISPOSITION_INVALID
        if (record is None or refused) and self._history.pending:
            # Decided moments ago, or a refused prediction corrected moments ago (its decision
            # replaces the refusal, stores/_common.py): its history may still be queued.
            await self._history.flush()
            record = await self._store.signal(company_id, signal_id)
        if record is None or not _may_read(caller, record.user_id):
            raise errors.NotFound(
                f"no signal {signal_id!r} that user {caller.user_id!r} may read",
                reason="SIGNAL_NOT_FOUND",
            )
        signal = signal_pb2.TradingSignal.FromString(record.payload)
        executions = [
            execution_pb2.ExecutionResult.FromString(row.payload)
            for row in await self._store.executions_for_signal(company_id, signal_id)
        ]
        outcome = await self._store.outcome(company_id, signal_id)
        return Explanation(
            signal,
            await prediction_of(self._store, record, signal),
            executions,
            None
            if outcome is None
            else execution_pb2.SignalPerformance.FromString(outcome.payload),
        )


async def prediction_of(
    store: Store, record: SignalRecord, signal: signal_pb2.TradingSignal
) -> prediction_pb2.Prediction | None:
    """The prediction the signal was decided from: in the batch its user sent under its
    batch id and that was decided at the signal's instant (decision 21). None for a manual
    signal, or when the batch was not kept."""
    if not signal.batch_id or not signal.prediction_id:
        return None
    kept = await store.prediction_batches_decided_at(
        record.company_id, record.user_id, signal.batch_id, record.generated_at_ns
    )
    # Several only for different batches under one id decided in the same nanosecond: the
    # first holding the prediction decided it (the later ones got its signal back).
    for batch in kept:
        for prediction in prediction_pb2.MLPredictionBatch.FromString(batch.payload).predictions:
            if prediction.prediction_id == signal.prediction_id:
                return prediction
    return None


def _may_read(caller: Caller, user_id: str) -> bool:
    try:
        subject_user(caller, user_id)
    except errors.PermissionDenied:
        return False
    return True
