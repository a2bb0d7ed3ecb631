"""`trading-engine explain` against a running engine, as an operator runs it."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess

from tests import factories
from tests.support import BIN, TRADER, Stubs, Tokens
from tradeflow.trading.v1 import trading_engine_service_pb2 as service_pb2
from trading_engine.app import Application


async def _explain(*args: str, token: str = "") -> subprocess.CompletedProcess[str]:
    env = {key: value for key, value in os.environ.items() if key != "TOKEN"}
    if token:
        env["TOKEN"] = token
    return await asyncio.to_thread(
        subprocess.run,
        [str(BIN / "trading-engine"), "explain", *args],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
        env=env,
    )


async def test_explain_prints_the_prediction_the_trace_and_the_risk_status(
    engine: Application, stubs: Stubs, tokens: Tokens
) -> None:
    request = service_pb2.ProcessPredictionBatchRequest(
        batch=factories.live(factories.batch("cli-1", [factories.prediction("cli-1-p")]))
    )
    [signal] = (await stubs.as_(TRADER).ProcessPredictionBatch(request)).signal_batch.signals
    token = tokens.token(TRADER)

    shown = await _explain(signal.signal_id, "--address", engine.grpc_address, token=token)

    assert shown.returncode == 0, shown.stderr
    text = shown.stdout
    assert text.startswith(f"signal {signal.signal_id}  EURUSD  BUY  ACTIONABLE")
    assert "cli-1-p: EURUSD UP confidence 0.86" in text
    assert "CONFIDENCE           pass   observed 0.86" in text
    assert "risk  NOT_ASSESSED" in text
    assert "executions\n  none received" in text

    as_json = await _explain(
        signal.signal_id, "--address", engine.grpc_address, "--json", token=token
    )
    assert json.loads(as_json.stdout)["signal"]["signalId"] == signal.signal_id


async def test_explain_says_what_to_do_without_a_token_or_for_an_unknown_signal(
    engine: Application, tokens: Tokens
) -> None:
    no_token = await _explain("abc", "--address", engine.grpc_address)
    assert no_token.returncode == 2
    assert "pass --token or export TOKEN" in no_token.stderr

    unknown = await _explain("abc", "--address", engine.grpc_address, token=tokens.token(TRADER))
    assert unknown.returncode == 1
    assert "NOT_FOUND: no signal 'abc'" in unknown.stderr
