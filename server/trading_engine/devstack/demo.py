"""A synthetic ML-Processing feed, so signals flow the moment the developer stack is up.

Ten currency pairs random-walk from realistic prices on the live clock; each
batch is one demo trader's view of the pairs their tier may trade, from a
three- or four-model ensemble that mostly agrees, some with a chart pattern.
The views disagree enough that some are rejected: what the watcher sees is the
engine deciding, not a replay of one answer.

At a realistic volatility a pair moves about five pips in five minutes, so with
the default duplicate window a trader's views would become signals once per
pair and direction every few minutes and a watcher would soon see nothing. The
demo traders start with a 20-second window instead (their user layer, visible
and changeable like any strategy).
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import random
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Final

from tradeflow.common.v1 import tier_pb2
from tradeflow.ml.v1 import prediction_pb2
from tradeflow.trading.v1 import strategy_pb2
from trading_engine import errors
from trading_engine.core import instruments
from trading_engine.stores.base import USER_LAYER
from trading_engine.strategies import StrategyService
from trading_engine.tenancy import Caller

# Mid prices to start from.
PAIRS: Final[dict[str, float]] = {
    "EURUSD": 1.0851, "GBPUSD": 1.2704, "USDJPY": 151.24, "USDCHF": 0.8812, "AUDUSD": 0.6571,
    "USDCAD": 1.3602, "NZDUSD": 0.6012, "EURGBP": 0.8541, "EURJPY": 164.11, "GBPJPY": 192.14,
}  # fmt: skip
# Realised volatility of the walk: lively for a demo, below the strategies' HIGH band.
_VOLATILITY_BPS_PER_SQRT_HOUR: Final = 20.0
_HALF_SPREAD_PIPS: Final = 0.4
_MODELS: Final = ("lstm", "gbm", "transformer", "tcn")
_UP, _WEAK_UP = prediction_pb2.DIRECTION_UP, prediction_pb2.DIRECTION_WEAK_UP
_DOWN, _WEAK_DOWN = prediction_pb2.DIRECTION_DOWN, prediction_pb2.DIRECTION_WEAK_DOWN
_NEUTRAL = prediction_pb2.DIRECTION_NEUTRAL
_PATTERNS: Final = ("double_bottom", "head_and_shoulders", "bull_flag", "bear_flag")


@dataclasses.dataclass(frozen=True)
class DemoTrader:
    user_id: str
    company_id: str
    tier: int
    equity: float

    @property
    def pairs(self) -> tuple[str, ...]:
        """The demo pairs the trader's tier may trade."""
        return tuple(pair for pair in PAIRS if _entitled(self.tier, pair))


def _entitled(tier: int, symbol: str) -> bool:
    if tier == tier_pb2.SUBSCRIPTION_TIER_ENTERPRISE:
        return True
    if tier == tier_pb2.SUBSCRIPTION_TIER_PRO:
        return symbol in instruments.MAJORS
    return symbol in ("EURUSD", "GBPUSD")


# trader-1 is the user of the development token `dev` prints.
TRADERS: Final = (
    DemoTrader("trader-1", "acme", tier_pb2.SUBSCRIPTION_TIER_PRO, 25_000.0),
    DemoTrader("quant-1", "acme", tier_pb2.SUBSCRIPTION_TIER_ENTERPRISE, 250_000.0),
    DemoTrader("trader-2", "acme", tier_pb2.SUBSCRIPTION_TIER_PRO, 10_000.0),
    DemoTrader("quant-2", "acme", tier_pb2.SUBSCRIPTION_TIER_ENTERPRISE, 100_000.0),
)


_DUPLICATE_WINDOW_S: Final = 20


async def set_up_demo_strategies(strategies: StrategyService) -> None:
    """Give each demo trader the demo's duplicate window, once: a trader who changed the
    strategy since (or a restart on the same data) keeps what is there."""
    values = strategy_pb2.StrategyConfig()
    values.duplicate_window.FromSeconds(_DUPLICATE_WINDOW_S)
    for trader in TRADERS:
        try:
            await strategies.update(
                Caller(trader.user_id, trader.company_id, trader.tier),
                USER_LAYER,
                trader.user_id,
                values,
                ["duplicate_window"],
                expected_version=0,
                request_id=f"demo-strategy-{trader.user_id}",
                reason=f"the demo feed: duplicates suppressed for {_DUPLICATE_WINDOW_S} s, "
                "not 5 minutes, so signals keep coming",
            )
        except errors.FailedPrecondition as error:
            if error.reason != "VERSION_CONFLICT":
                raise
            # The layer has revisions already: leave them.


class DemoFeed:
    """Prediction batches on the live clock, one trader after the other."""

    def __init__(
        self,
        traders: Sequence[DemoTrader] = TRADERS,
        seed: int | None = None,
        now_ns: Callable[[], int] = time.time_ns,
    ) -> None:
        self._traders = itertools.cycle(traders)
        self._rng = random.Random(seed)
        self._now_ns = now_ns
        self._mids = dict(PAIRS)
        self._last_ns = now_ns()
        self._numbers = itertools.count(1)

    def quote(self, symbol: str) -> tuple[float, float] | None:
        """(bid, ask) of a demo pair at the walk's latest step; None for another symbol."""
        mid = self._mids.get(symbol)
        instrument = instruments.lookup(symbol)
        if mid is None or instrument is None:
            return None
        half_spread = _HALF_SPREAD_PIPS * instrument.pip_size
        digits = instrument.price_decimals
        return round(mid - half_spread, digits), round(mid + half_spread, digits)

    def batches(self) -> Iterator[prediction_pb2.MLPredictionBatch]:
        while True:
            yield self.next_batch()

    def next_batch(self) -> prediction_pb2.MLPredictionBatch:
        now_ns = self._now_ns()
        self._walk(now_ns)
        trader = next(self._traders)
        number = next(self._numbers)
        batch = prediction_pb2.MLPredictionBatch(
            batch_id=f"demo-{now_ns}-{number}", correlation_id=f"demo-{number}"
        )
        batch.produced_at.FromNanoseconds(now_ns)
        tenant = batch.user_context
        tenant.user_id, tenant.company_id = trader.user_id, trader.company_id
        tenant.tier = trader.tier  # type: ignore[assignment]
        tenant.account_equity, tenant.account_currency = trader.equity, "USD"
        for symbol in trader.pairs:
            batch.predictions.append(self._prediction(f"{batch.batch_id}-{symbol}", symbol, now_ns))
        return batch

    def _walk(self, now_ns: int) -> None:
        hours = max(now_ns - self._last_ns, 0) / 3.6e12
        self._last_ns = now_ns
        step = _VOLATILITY_BPS_PER_SQRT_HOUR / 10_000 * math.sqrt(hours)
        for symbol, mid in self._mids.items():
            self._mids[symbol] = mid * math.exp(self._rng.gauss(0.0, step))

    def _prediction(
        self, prediction_id: str, symbol: str, now_ns: int
    ) -> prediction_pb2.Prediction:
        rng = self._rng
        instrument = instruments.lookup(symbol)
        assert instrument is not None  # every demo pair is in the registry
        digits = instrument.price_decimals
        mid = self._mids[symbol]
        half_spread = _HALF_SPREAD_PIPS * instrument.pip_size
        direction = rng.choice((_UP, _UP, _WEAK_UP, _WEAK_DOWN, _DOWN, _DOWN, _NEUTRAL))
        confidence = round(rng.uniform(0.55, 0.97), 3)
        sign = 1 if direction in (_UP, _WEAK_UP) else -1 if direction != _NEUTRAL else 0
        message = prediction_pb2.Prediction(
            prediction_id=prediction_id,
            symbol=symbol,
            primary_direction=direction,
            confidence=confidence,
            current_price=round(mid, digits),
            bid=round(mid - half_spread, digits),
            ask=round(mid + half_spread, digits),
            predicted_price=round(mid * (1 + sign * rng.uniform(0.0005, 0.003)), digits),
            spread_pips=2 * _HALF_SPREAD_PIPS,
        )
        message.timestamp.FromNanoseconds(now_ns)
        message.horizon.FromSeconds(rng.choice((300, 900, 3600)))
        for model in _MODELS[: rng.choice((3, 4))]:
            # Most models agree; one in four sees it the other way or not at all.
            agrees = rng.random() < 0.75
            message.votes.add(
                model_id=model,
                direction=direction if agrees else rng.choice((_NEUTRAL, _WEAK_UP, _WEAK_DOWN)),
                confidence=round(rng.uniform(0.5, 0.95), 3),
                weight=1.0,
            )
        if rng.random() < 0.4:
            message.patterns.add(
                name=rng.choice(_PATTERNS),
                direction=direction if rng.random() < 0.7 else _NEUTRAL,
                probability=round(rng.uniform(0.5, 0.9), 3),
            )
        if rng.random() < 0.6:
            message.volume_confirmation = round(rng.uniform(0.3, 1.0), 3)
        return message
