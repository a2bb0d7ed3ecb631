"""An engine whose clock the test holds, and stubs to it."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator

import pytest

from tests.api.trading import ManualClock
from tests.support import Stubs, Tokens
from trading_engine.app import Application
from trading_engine.config import EngineSettings


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
async def fixed_engine(
    engine_settings: EngineSettings, clock: ManualClock
) -> AsyncIterator[Application]:
    application = Application(
        dataclasses.replace(engine_settings, shutdown_grace_seconds=1.0), clock=clock
    )
    await application.start()
    yield application
    await application.stop()


@pytest.fixture
async def stubs_(fixed_engine: Application, tokens: Tokens) -> AsyncIterator[Stubs]:
    opened = Stubs(fixed_engine.grpc_address, tokens)
    yield opened
    await opened.close()
