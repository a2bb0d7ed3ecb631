"""A live engine on a clock the test moves, for sessions to replay."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.api.trading import ManualClock
from trading_engine.app import Application
from trading_engine.config import EngineSettings


@pytest.fixture
async def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
async def live(engine_settings: EngineSettings, clock: ManualClock) -> AsyncIterator[Application]:
    application = Application(engine_settings, clock=clock)
    await application.start()
    yield application
    await application.stop()
