"""Schemathesis against a real Envoy and engine, driven by the document the gateway serves:
requests generated from every route's schemas, and mutated past them, never get a 5xx, and
every answer, error or not, is JSON that fits the document."""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
from pathlib import Path

import pytest

from tests.support import ADMIN, BIN, ROOT, Tokens
from trading_engine.app import Application
from trading_engine.gateway.envoy import OPENAPI_DOCUMENT, OPENAPI_ROUTE, EnvoyGateway

pytestmark = pytest.mark.timeout(240)

# Not positive_data_acceptance: the schemas cannot say which fields an RPC needs (proto3 has
# no required fields; the engine refuses what it cannot use with a 400, as documented).
CHECKS = "not_a_server_error,response_schema_conformance,content_type_conformance"


async def test_generated_requests_get_no_server_error_and_answers_fit_the_document(
    engine: Application, gateway: EnvoyGateway, tokens: Tokens, tmp_path: Path
) -> None:
    document = json.loads((ROOT / "envoy" / OPENAPI_DOCUMENT).read_text())
    # Every route but the document's own, which schemathesis leaves out.
    operations = sum(len(item) for path, item in document["paths"].items() if path != OPENAPI_ROUTE)

    done = await asyncio.to_thread(
        subprocess.run,
        [
            str(BIN / "st"),
            "run",
            f"{gateway.base_url}{OPENAPI_ROUTE}",
            # An admin reaches the admin-only routes too.
            "--header",
            f"Authorization: Bearer {tokens.token(ADMIN)}",
            "--checks",
            CHECKS,
            "--phases",
            "examples,coverage,fuzzing",
            "--max-examples",
            "10",
            "--seed",
            "22",
            "--generation-database",
            "none",
            "--workers",
            "1",
            "--request-timeout",
            "10",
            "--no-color",
        ],
        # Schemathesis keeps a folder of its own where it runs.
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=200,
        check=False,
    )

    assert done.returncode == 0, done.stdout[-20000:] + done.stderr[-5000:]
    tested = re.search(r"Tested: (\d+)", done.stdout)
    assert tested is not None, done.stdout
    assert int(tested.group(1)) == operations
