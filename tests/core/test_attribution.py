"""Per-model attribution: what counts as a call, a weight share, and the metrics' tally."""

from __future__ import annotations

from tradeflow.trading.v1 import execution_pb2, signal_pb2
from trading_engine.core.attribution import ModelTally, attribute, by_model
from trading_engine.core.performance import SignalResult, Vote

WIN: int = execution_pb2.SIGNAL_OUTCOME_WIN
LOSS: int = execution_pb2.SIGNAL_OUTCOME_LOSS
BREAKEVEN: int = execution_pb2.SIGNAL_OUTCOME_BREAKEVEN
OPEN: int = execution_pb2.SIGNAL_OUTCOME_OPEN


def _sell(signal_id: str, outcome: int, money: float, *votes: Vote) -> SignalResult:
    return SignalResult(
        signal_id=signal_id, symbol="GBPUSD", signal_type=signal_pb2.SIGNAL_TYPE_SELL,
        strength=0.5, confidence=0.7, generated_ns=1, outcome=outcome, profit_loss_pips=0.0,
        profit_loss=money, slippage_pips=0.0, execution_latency_ns=0, closed_ns=2, votes=votes,
    )  # fmt: skip


def test_a_sell_that_won_makes_a_down_vote_right_and_neutral_votes_and_breakevens_no_call() -> None:
    rows = [
        # Won: the market went down. "m" said down (right), weight 2 of 2 + 0 + 2 = 4.
        _sell("a", WIN, 80.0, Vote("m", -1, 0.75, 2.0), Vote("n", 0, 0.5, 0.0),
              Vote("o", 1, 0.9, 2.0)),
        # Lost: the market went up. "m" said down: wrong, and it backed the loss, 1 of 2.
        _sell("b", LOSS, -40.0, Vote("m", -1, 0.65, 1.0), Vote("o", 1, 0.9, 1.0)),
        # Broke even: nothing moved either way; open: not over yet. Neither is a call.
        _sell("c", BREAKEVEN, 0.0, Vote("m", -1, 0.9, 1.0)),
        _sell("d", OPEN, 0.0, Vote("m", -1, 0.9, 1.0)),
    ]  # fmt: skip
    m = attribute("m", "", rows)
    # Voted on the three closed signals; two calls, one right.
    assert (m.signals, m.calls, m.correct, m.hit_rate) == (3, 2, 1, 0.5)
    assert m.mean_confidence == (0.75 + 0.65) / 2
    # Backed the win with 2/4 of the weight (+40) and the loss with 1/2 (-20).
    assert (m.profit_backed, m.loss_backed) == (40.0, -20.0)
    n = attribute("n", "", rows)
    assert (n.signals, n.calls, n.hit_rate, n.profit_backed) == (1, 0, 0.0, 0.0)
    assert [(b.model_id, b.stats.closed, b.stats.signals_total) for b in by_model(rows, 1e4)] == [
        ("m", 3, 4), ("n", 1, 1), ("o", 2, 2),
    ]  # fmt: skip


def test_the_tally_tells_apart_at_most_its_limit_of_models() -> None:
    tally = ModelTally(limit=2)
    for model_id in ("a", "b", "c", "d"):
        tally.add(_sell(model_id, WIN, 10.0, Vote(model_id, -1, 0.5, 1.0)))
    tally.add(_sell("a2", LOSS, -10.0, Vote("a", -1, 0.5, 1.0)))
    assert tally.counts == {"a": [2, 1], "b": [1, 1], "other": [2, 2]}
