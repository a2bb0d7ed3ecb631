"""Exactly one decision per message id, and gaps in each producer's sequence.

A batch reaches the engine once on NATS and once on Kafka (and again on
redelivery); whichever copy comes first is decided, the others are dropped.
"""

from __future__ import annotations

import collections
import dataclasses
import logging
from typing import Final

from trading_engine_client.message_ids import RecentIds

_log = logging.getLogger(__name__)

# Missing sequence numbers remembered per producer, to recognise late arrivals.
_MAX_MISSING: Final = 10_000
# Farther than this from a producer's last number, a sequence number is not a gap but a
# restart of its numbering (or a forged number): one message can add at most this many gaps.
_MAX_JUMP: Final = 10_000
# Producers followed at once; the one heard from least recently is forgotten first.
_MAX_PRODUCERS: Final = 10_000


class DeliveryLog(RecentIds):
    """Message ids being decided or decided recently, the oldest forgotten first; `forget`
    one whose decision did not happen, so another copy of the message is decided."""

    def begin(self, message_id: str) -> bool:
        """Claim the message locally; False when it is (being) decided already."""
        return self.first_time(message_id)


@dataclasses.dataclass
class _Producer:
    last: int
    missing: set[int] = dataclasses.field(default_factory=set)


class SequenceTracker:
    """Follows each producer's sequence numbers and reports what went missing.

    A copy that arrives late (say on Kafka after NATS skipped it) fills its
    gap; `missing` is what no transport has delivered yet. A number far from
    the producer's last one restarts its numbering there (`resets`) instead of
    counting a gap as large as the distance, so a forged number cannot make the
    count meaningless.
    """

    def __init__(self) -> None:
        self._producers: collections.OrderedDict[str, _Producer] = collections.OrderedDict()
        self.gaps = 0
        self.filled = 0
        self.resets = 0

    def observe(self, producer_id: str, sequence: int) -> None:
        if not producer_id or not sequence:
            return
        producers = self._producers
        producer = producers.get(producer_id)
        if producer is None:
            # The first message seen from a producer starts its sequence here.
            producers[producer_id] = _Producer(sequence)
            if len(producers) > _MAX_PRODUCERS:
                producers.popitem(last=False)
            return
        producers.move_to_end(producer_id)
        if abs(sequence - producer.last) > _MAX_JUMP and sequence not in producer.missing:
            self.resets += 1
            _log.warning(
                "producer %s jumped from sequence %d to %d; following it from there",
                producer_id,
                producer.last,
                sequence,
            )
            producers[producer_id] = _Producer(sequence)
        elif sequence > producer.last + 1:
            skipped = range(producer.last + 1, sequence)
            self.gaps += len(skipped)
            _log.warning(
                "producer %s skipped sequence %d..%d (%d messages not received)",
                producer_id,
                skipped.start,
                skipped.stop - 1,
                len(skipped),
            )
            if len(producer.missing) + len(skipped) <= _MAX_MISSING:
                producer.missing.update(skipped)
            producer.last = sequence
        elif sequence == producer.last + 1:
            producer.last = sequence
        elif sequence in producer.missing:
            producer.missing.discard(sequence)
            self.filled += 1
            _log.info("producer %s sequence %d arrived late", producer_id, sequence)

    @property
    def producers(self) -> int:
        """Producers followed now."""
        return len(self._producers)

    @property
    def missing(self) -> int:
        return sum(len(producer.missing) for producer in self._producers.values())
