"""A bounded memory of message ids: each batch reaches a consumer on NATS and on Kafka
(and again on redelivery), and only its first copy should count."""

from __future__ import annotations


class RecentIds:
    """The last `capacity` message ids seen; older ones are forgotten first."""

    def __init__(self, capacity: int) -> None:
        self._capacity = capacity
        # Insertion-ordered: the first key is the oldest.
        self._ids: dict[str, None] = {}

    def first_time(self, message_id: str) -> bool:
        """Remember the id; whether it was new."""
        if message_id in self._ids:
            return False
        self._ids[message_id] = None
        if len(self._ids) > self._capacity:
            del self._ids[next(iter(self._ids))]
        return True

    def forget(self, message_id: str) -> None:
        """Let the id count as new again."""
        self._ids.pop(message_id, None)
