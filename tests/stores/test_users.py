"""Users' tiers, as their latest tokens said them."""

from __future__ import annotations

from tests.stores.builders import NOW_NS, SECOND_NS
from tradeflow.common.v1 import tier_pb2
from trading_engine.stores.base import Store

FREE: int = tier_pb2.SUBSCRIPTION_TIER_FREE
PRO: int = tier_pb2.SUBSCRIPTION_TIER_PRO
ENTERPRISE: int = tier_pb2.SUBSCRIPTION_TIER_ENTERPRISE


async def test_a_user_never_seen_has_no_tier(store: Store) -> None:
    assert await store.user_tier("acme", "alice") is None


async def test_the_latest_token_sets_the_tier(store: Store) -> None:
    await store.record_user("acme", "alice", FREE, NOW_NS)
    assert await store.user_tier("acme", "alice") == FREE

    await store.record_user("acme", "alice", PRO, NOW_NS + SECOND_NS)

    assert await store.user_tier("acme", "alice") == PRO


async def test_an_older_sighting_does_not_undo_a_newer_one(store: Store) -> None:
    # Another engine instance saw the user's old token, and records it late.
    await store.record_user("acme", "alice", ENTERPRISE, NOW_NS + SECOND_NS)
    await store.record_user("acme", "alice", FREE, NOW_NS)

    assert await store.user_tier("acme", "alice") == ENTERPRISE


async def test_a_user_id_in_another_company_is_another_user(store: Store) -> None:
    await store.record_user("acme", "alice", ENTERPRISE, NOW_NS)

    assert await store.user_tier("globex", "alice") is None
    await store.record_user("globex", "alice", FREE, NOW_NS)
    assert await store.user_tier("acme", "alice") == ENTERPRISE
