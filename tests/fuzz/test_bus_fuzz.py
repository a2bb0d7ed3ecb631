"""Hostile and careless bus input through a real engine on real brokers: nothing vanishes.

The CI-sized run of `python -m bench.fuzz` (which sends 100,000 and more): a
few thousand inputs in mixes Hypothesis chooses, each run on fresh brokers.
"""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bench.fuzz.bus import draw_inputs, fuzz_bus
from bench.fuzz.bus_inputs import KINDS

pytestmark = pytest.mark.timeout(300)


@settings(
    max_examples=3,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(
    seed=st.integers(min_value=0, max_value=2**32),
    count=st.integers(min_value=700, max_value=1000),
    shares=st.fixed_dictionaries({kind: st.integers(0, 10) for kind in KINDS}).filter(
        lambda shares: sum(shares.values()) > 0
    ),
)
def test_every_bus_input_is_decided_dead_lettered_or_a_duplicate(
    seed: int, count: int, shares: dict[str, int]
) -> None:
    inputs = draw_inputs(count, seed, shares)
    with tempfile.TemporaryDirectory(prefix="fuzz-") as workdir:
        report = asyncio.run(fuzz_bus(inputs, Path(workdir)))
    assert report.vanished == [], "inputs that left no trace, by (kind, seed)"
    assert report.accounted, report
    # Nothing made the engine fail: every refusal has its proper reason.
    assert "DEAD_LETTER_REASON_PROCESSING_FAILED" not in report.dead_letters, report
    assert report.shed_inbound == 0
    assert report.transports_alike, (report.outputs_on_nats, report.outputs_on_kafka)
    assert report.kafka_quarantined == 0


def test_the_default_mix_sends_every_kind_and_decides_the_valid_ones() -> None:
    inputs = draw_inputs(1500, seed=20261208)
    assert {message.kind for message in inputs} == set(KINDS)
    with tempfile.TemporaryDirectory(prefix="fuzz-") as workdir:
        report = asyncio.run(fuzz_bus(inputs, Path(workdir)))
    assert report.holds, report
    assert "DEAD_LETTER_REASON_PROCESSING_FAILED" not in report.dead_letters, report
    valid = sum(1 for message in inputs if message.kind == "valid")
    # Every valid batch decided (plus the odd ones still decidable, invalid predictions
    # answered one by one).
    assert report.decided >= valid
    assert set(report.dead_letters) >= {
        "DEAD_LETTER_REASON_UNDECODABLE",
        "DEAD_LETTER_REASON_WRONG_MESSAGE_TYPE",
        "DEAD_LETTER_REASON_INVALID_PAYLOAD",
        "DEAD_LETTER_REASON_TENANT_MISMATCH",
    }
