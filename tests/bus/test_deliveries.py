"""Which copy of a message is decided, and which producer messages went missing."""

from __future__ import annotations

import logging

import pytest

from trading_engine.bus.deliveries import DeliveryLog, SequenceTracker


def test_the_first_copy_is_decided_and_later_copies_are_not() -> None:
    log = DeliveryLog(capacity=10)
    assert log.begin("m-1")
    # The Kafka copy arrives while (or after) the NATS copy is decided.
    assert not log.begin("m-1")


def test_a_copy_that_was_not_decided_leaves_the_next_copy_free() -> None:
    log = DeliveryLog(capacity=10)
    assert log.begin("m-1")
    log.forget("m-1")
    assert log.begin("m-1")


def test_the_oldest_ids_are_forgotten_beyond_the_capacity() -> None:
    log = DeliveryLog(capacity=3)
    for message_id in ("a", "b", "c", "d"):
        assert log.begin(message_id)
    assert log.begin("a"), "the oldest id was forgotten to stay within capacity"
    assert not log.begin("d")


def test_a_gap_in_a_producers_sequence_is_counted_and_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    sequences = SequenceTracker()
    with caplog.at_level(logging.WARNING):
        for sequence in (1, 2, 5, 6):
            sequences.observe("ml-1", sequence)
    assert sequences.gaps == 2
    assert sequences.missing == 2
    assert "producer ml-1 skipped sequence 3..4 (2 messages not received)" in caplog.text


def test_a_late_copy_fills_its_gap() -> None:
    sequences = SequenceTracker()
    for sequence in (1, 3, 2, 4):
        sequences.observe("ml-1", sequence)
    assert (sequences.gaps, sequences.filled, sequences.missing) == (1, 1, 0)


def test_producers_are_followed_separately_and_unnumbered_messages_are_ignored() -> None:
    sequences = SequenceTracker()
    # A producer seen first mid-stream (an engine restart) starts there, without a gap.
    for producer, sequence in (("a", 10), ("b", 1), ("a", 11), ("b", 2), ("", 7), ("c", 0)):
        sequences.observe(producer, sequence)
    assert sequences.gaps == 0


@pytest.mark.parametrize("forged", [10_003, 2**63, 2**64 - 1])
def test_a_number_far_ahead_restarts_the_producers_numbering_instead_of_counting_gaps(
    forged: int,
) -> None:
    sequences = SequenceTracker()
    for sequence in (1, 2, forged, forged + 1):
        sequences.observe("ml-1", sequence)
    assert (sequences.gaps, sequences.missing, sequences.resets) == (0, 0, 1)
    # Followed from the forged number on: the next skip is a gap again.
    sequences.observe("ml-1", forged + 3)
    assert (sequences.gaps, sequences.missing) == (1, 1)


def test_the_largest_gap_one_message_can_make_is_counted_in_full() -> None:
    sequences = SequenceTracker()
    # 10,000 on from the last number: 9,999 missing between them.
    for sequence in (1, 10_001):
        sequences.observe("ml-1", sequence)
    assert (sequences.gaps, sequences.missing, sequences.resets) == (9_999, 9_999, 0)
    # One further is a restart.
    sequences.observe("ml-1", 20_002)
    assert (sequences.gaps, sequences.resets) == (9_999, 1)


def test_a_producer_that_starts_again_at_one_is_followed_from_there() -> None:
    sequences = SequenceTracker()
    for sequence in range(1, 20_003):
        sequences.observe("ml-1", sequence)
    # Restarted with the same id: a late copy 20,000 back is not plausible; a restart is.
    for sequence in (1, 2, 4):
        sequences.observe("ml-1", sequence)
    assert (sequences.resets, sequences.gaps, sequences.missing) == (1, 1, 1)


def test_forged_producer_ids_cannot_grow_the_tracker_without_bound() -> None:
    sequences = SequenceTracker()
    sequences.observe("ml-real", 1)
    for index in range(10_000):
        sequences.observe(f"forged-{index}", 5)
    # The real producer was forgotten (least recently heard from): its next number starts
    # it again rather than counting a gap against a forgotten past.
    sequences.observe("ml-real", 3)
    assert sequences.gaps == 0
    assert sequences.producers == 10_000
