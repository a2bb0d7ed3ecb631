"""Decision counts as /metrics reads them: each decision by disposition, type and reason."""

from __future__ import annotations

from collections import Counter

from tests import factories
from tradeflow.common.v1 import tier_pb2
from tradeflow.ml.v1 import prediction_pb2
from tradeflow.trading.v1 import signal_pb2
from trading_engine.engine import DecisionEngine
from trading_engine.tenancy import Caller

S = signal_pb2


def test_each_decision_is_counted_under_its_own_disposition_type_and_reason() -> None:
    engine = DecisionEngine()
    predictions = [
        factories.prediction("buy", "EURUSD"),
        factories.prediction("sell", "GBPUSD", direction=prediction_pb2.DIRECTION_DOWN),
        factories.prediction("unsure", "USDJPY", confidence=0.3),
        factories.prediction("unknown", "EURUSD"),
    ]
    predictions[3].symbol = "NOTASYMBOL"
    data = factories.batch("b-1", predictions).SerializeToString()

    decided = engine.decide(
        data, factories.NOW_NS, Caller("trader-1", "acme", tier_pb2.SUBSCRIPTION_TIER_PRO)
    )

    expected = Counter((d.disposition, d.signal_type, d.reason) for d in decided.decisions)
    assert engine.stats.outcomes == expected
    assert engine.stats.outcomes == {
        (S.SIGNAL_DISPOSITION_ACTIONABLE, S.SIGNAL_TYPE_BUY, S.DISPOSITION_REASON_UNSPECIFIED): 1,
        (S.SIGNAL_DISPOSITION_ACTIONABLE, S.SIGNAL_TYPE_SELL, S.DISPOSITION_REASON_UNSPECIFIED): 1,
        (
            S.SIGNAL_DISPOSITION_REJECTED,
            S.SIGNAL_TYPE_HOLD,
            S.DISPOSITION_REASON_CONFIDENCE_BELOW_THRESHOLD,
        ): 1,
        (S.SIGNAL_DISPOSITION_INVALID, S.SIGNAL_TYPE_HOLD, S.DISPOSITION_REASON_UNKNOWN_SYMBOL): 1,
    }

    engine.decide(
        data, factories.NOW_NS, Caller("trader-1", "acme", tier_pb2.SUBSCRIPTION_TIER_PRO)
    )
    # Delivered again: the same signals are replayed, not decided (or counted) twice.
    assert engine.stats.outcomes == expected
