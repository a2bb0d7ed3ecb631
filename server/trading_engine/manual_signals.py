"""Injecting manual signals: company admins place an order for one of their users.

The signal is built by the engine from the user's strategy (decide_manual),
stored once per request id, written to history like an engine signal and
recorded in the audit log. A retry with the same request id returns the
first signal and publishes nothing again.
"""

from __future__ import annotations

from tradeflow.trading.v1 import signal_pb2
from trading_engine import audit, errors
from trading_engine.audit import Actor, AdminAction
from trading_engine.clock import Clock
from trading_engine.core.manual import ManualOrder
from trading_engine.engine import DecisionEngine, HistorySink, history_record
from trading_engine.live import LiveSignals
from trading_engine.stores.base import ManualSignal, Store
from trading_engine.strategies import StrategyService
from trading_engine.tenancy import Caller, require_admin, subject_user


class ManualSignals:
    def __init__(
        self,
        engine: DecisionEngine,
        strategies: StrategyService,
        store: Store,
        history: HistorySink,
        live: LiveSignals,
        clock: Clock,
    ) -> None:
        self._live = live
        self._engine = engine
        self._strategies = strategies
        self._store = store
        self._history = history
        self._clock = clock

    async def inject(
        self, caller: Caller, request_id: str, user_id: str, order: ManualOrder
    ) -> bytes:
        """The serialized TradingSignal injected under `request_id`."""
        require_admin(caller, "injecting manual signals")
        if not request_id:
            # Its length is bounded by the contract (field_limits).
            raise errors.invalid(
                "the manual signal is invalid",
                [
                    errors.FieldViolation(
                        "request_id", "required: it makes a retry return the first signal"
                    )
                ],
            )
        subject_id = subject_user(caller, user_id)
        earlier = await self._store.manual_signal(caller.company_id, request_id)
        if earlier is not None:
            return _replayed(earlier, subject_id, request_id)
        subject = Caller(
            subject_id, caller.company_id, await self._strategies.tier_of(caller, subject_id)
        )
        await self._strategies.prepare(subject.company_id, subject.user_id)
        now_ns = self._clock.now_ns()
        decision, payload = self._engine.decide_manual(
            order, subject, request_id, caller.user_id, now_ns
        )
        stored = await self._store.record_manual_signal(
            ManualSignal(
                company_id=caller.company_id,
                request_id=request_id,
                signal_id=decision.signal_id,
                user_id=subject_id,
                injected_by=caller.user_id,
                injected_at_ns=now_ns,
                payload=payload,
            )
        )
        if stored.payload != payload:
            # Another call with this request id got there first: its signal stands.
            return _replayed(stored, subject_id, request_id)
        self._history.submit(
            [history_record(caller.company_id, subject_id, now_ns, decision, payload)]
        )
        self._live.publish_signal(caller.company_id, subject_id, payload)
        await audit.record(
            self._store,
            AdminAction(
                company_id=caller.company_id,
                actor=Actor.of(caller),
                action="signal.inject",
                scope="signals",
                subject_user_id=subject_id,
                at_ns=now_ns,
                reason=order.note,
                # A new signal: nothing was there before it.
                old={},
                new=_published(payload),
                detail={
                    "signal_id": decision.signal_id,
                    "request_id": request_id,
                    "symbol": order.symbol,
                    "signal_type": order.signal_type,
                    "note": order.note,
                },
            ),
        )
        return payload


def _published(payload: bytes) -> dict[str, object]:
    """What the injected signal puts a trader into, as published."""
    signal = signal_pb2.TradingSignal.FromString(payload)
    entry = signal.entry
    return {
        "signal_id": signal.signal_id,
        "symbol": signal.symbol,
        "signal_type": signal_pb2.SignalType.Name(signal.signal_type),
        "order_type": signal_pb2.OrderType.Name(entry.order_type),
        "entry_price": entry.entry_price,
        "position_size_lots": entry.position_size_lots,
        "stop_loss": entry.stop_loss,
        "take_profit": entry.take_profit,
    }


def _replayed(earlier: ManualSignal, subject_id: str, request_id: str) -> bytes:
    """The signal a request id already made, if it was for the same user."""
    if earlier.user_id != subject_id:
        raise errors.FailedPrecondition(
            f"request_id {request_id!r} was already used for a signal of another user; "
            "send this one with a new request_id",
            reason="REQUEST_ID_REUSED",
        )
    return earlier.payload
