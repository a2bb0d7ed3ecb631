"""Generated requests to a real `trading-engine serve`, over gRPC and through a real Envoy.

The CI-sized run of `python -m bench.fuzz --api` (which sends 100,000): no call may end
UNKNOWN, INTERNAL, UNAVAILABLE or DEADLINE_EXCEEDED, get a 5xx, or leave a traceback in
the engine's log.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.fuzz.api import fuzz_api

pytestmark = pytest.mark.timeout(300)


async def test_no_generated_request_makes_the_engine_fail(tmp_path: Path) -> None:
    report = await fuzz_api(grpc_count=2_000, rest_count=500, seed=20261208, workdir=tmp_path)
    assert report.failures == [], report.failure_kinds
    assert report.server_tracebacks == 0, (tmp_path / "engine.log").read_text()[-3000:]
    assert (report.grpc_calls, report.rest_calls) == (2_000, 500)
    # The requests reach deep, not only the door: some are answered, some refused as invalid.
    assert report.grpc_codes["OK"] > 100
    assert report.grpc_codes["INVALID_ARGUMENT"] > 100
    assert report.rest_statuses[200] > 20
