"""The examples of docs/clients.md, verbatim: type-checked here and run by test_examples.py."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterable, Awaitable, Callable, Iterable

from google.protobuf.field_mask_pb2 import FieldMask

from tradeflow.ml.v1.prediction_pb2 import MLPredictionBatch
from tradeflow.trading.v1.signal_pb2 import (
    SIGNAL_DISPOSITION_ACTIONABLE,
    TradingSignal,
    TradingSignalBatch,
)
from tradeflow.trading.v1.strategy_pb2 import STRATEGY_LAYER_USER, StrategyConfig
from tradeflow.trading.v1.trading_engine_service_pb2 import (
    ExplainSignalRequest,
    ExplainSignalResponse,
    GetSignalHistoryRequest,
    UpdateStrategyRequest,
)
from trading_engine_client import (
    AsyncTradingEngineClient,
    FailedPreconditionError,
    NotFoundError,
    PredictionPublisher,
    PublishError,
    RetryPolicy,
    SignalSubscriber,
    TradingEngineClient,
)


async def engine_version(target: str, token: Callable[[], str]) -> str:
    # `token` is asked for a fresh JWT on every call, so it can renew one before it expires.
    async with AsyncTradingEngineClient(
        target,
        token=token,
        default_timeout=2.0,  # seconds per attempt
        retry=RetryPolicy(max_attempts=3),  # reads are retried; see "Retries"
    ) as client:
        report = await client.health_check(timeout=0.5)
        return report.version


async def explain(client: AsyncTradingEngineClient, signal_id: str) -> ExplainSignalResponse | None:
    try:
        return await client.explain_signal(ExplainSignalRequest(signal_id=signal_id))
    except NotFoundError as error:
        print(f"no such signal ({error.reason}): {error.message}")
        return None


def raise_confidence(target: str, token: str, threshold: float) -> int:
    """Sets the caller's own minimum confidence; returns the new strategy revision."""
    with TradingEngineClient(target, token=token) as client:
        current = client.get_strategy()
        request = UpdateStrategyRequest(
            layer=STRATEGY_LAYER_USER,
            # The fields set here are the change, 0 and False included; the mask is optional
            # and may name only fields that are set.
            strategy=StrategyConfig(min_confidence_threshold=threshold),
            update_mask=FieldMask(paths=["min_confidence_threshold"]),
            # Set, it is checked (0: no revision yet); left out, the update applies anyway.
            expected_version=current.user_version,
            # With a request id, a retry after a lost answer returns the first result.
            request_id=str(uuid.uuid4()),
        )
        try:
            return client.update_strategy(request).version.version
        except FailedPreconditionError:
            raise RuntimeError("someone changed the strategy meanwhile; read it again") from None


async def decide(
    client: AsyncTradingEngineClient, batches: AsyncIterable[MLPredictionBatch]
) -> list[TradingSignalBatch]:
    # One signal batch per prediction batch, in order, each as soon as it is decided.
    return [signals async for signals in client.process_predictions(batches)]


async def history(client: AsyncTradingEngineClient, symbol: str) -> list[TradingSignal]:
    request = GetSignalHistoryRequest(symbols=[symbol], page_size=500)
    signals: list[TradingSignal] = []
    async for page in client.signal_history(request):
        signals.extend(page.signals)
        # page.next_page_token resumes after this page if the stream breaks.
    return signals


async def publish_predictions(
    nats_url: str, kafka_bootstrap: str, batches: Iterable[MLPredictionBatch]
) -> list[str]:
    async with PredictionPublisher(nats_url=nats_url, kafka_bootstrap=kafka_bootstrap) as publisher:
        message_ids = []
        for batch in batches:
            try:
                message_ids.append(await publisher.publish(batch))
            except PublishError as error:
                # The engine decides a message id once: sending it again is safe.
                await publisher.resend(error)
                message_ids.append(error.message_id)
        return message_ids


def risk_feed(nats_url: str, kafka_bootstrap: str, company_id: str) -> SignalSubscriber:
    return SignalSubscriber(
        nats_url=nats_url, kafka_bootstrap=kafka_bootstrap, company_ids=[company_id]
    )


async def assess_actionable(
    feed: SignalSubscriber, assess: Callable[[TradingSignal], Awaitable[None]]
) -> None:
    # Runs until feed.close() (another task, or leaving `async with feed`) ends the iteration.
    async for delivery in feed:
        for signal in delivery.batch.signals:
            if signal.disposition == SIGNAL_DISPOSITION_ACTIONABLE:
                await assess(signal)
