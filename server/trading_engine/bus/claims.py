"""One decision per message across engine instances.

With several instances, a batch's NATS copy can reach one instance (queue
group) and its Kafka copy another (consumer group). Before deciding, an
instance creates the message's key in a NATS key-value bucket; creation
succeeds for exactly one of them. Without NATS the claim cannot be checked:
the instance decides (only the Kafka copy arrives then), and counts it.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from typing import Final, Protocol

import nats.errors
import nats.js.errors
from nats.js.kv import KeyValue

_log = logging.getLogger(__name__)

_CLAIM_TIMEOUT_S: Final = 0.5


class Claims(Protocol):
    async def claim(self, message_id: str) -> bool:
        """True when this instance is the one to decide the message."""
        ...


class LocalClaims:
    """A single instance: its delivery log alone decides."""

    async def claim(self, message_id: str) -> bool:
        return True


class SharedClaims:
    """Claims in a NATS key-value bucket whose keys expire after the bucket's TTL."""

    def __init__(self, bucket: str, instance_id: str) -> None:
        self.bucket = bucket
        self._instance = instance_id.encode()
        self._kv: KeyValue | None = None
        self.unchecked = 0

    def attach(self, kv: KeyValue | None) -> None:
        """The bucket to claim in; None while NATS is unreachable."""
        self._kv = kv

    async def claim(self, message_id: str) -> bool:
        kv = self._kv
        if kv is None:
            self.unchecked += 1
            return True
        # Keys must be subject tokens; message ids are free text.
        key = hashlib.blake2b(message_id.encode(), digest_size=16).hexdigest()
        try:
            await asyncio.wait_for(kv.create(key, self._instance), _CLAIM_TIMEOUT_S)
        except nats.js.errors.KeyWrongLastSequenceError:
            return False
        except (TimeoutError, nats.errors.Error) as error:
            self.unchecked += 1
            _log.warning("cannot claim message %s in NATS, deciding it here: %s", message_id, error)
        return True
