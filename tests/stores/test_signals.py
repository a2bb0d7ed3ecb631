"""Signal history: append-only batches, a user's signals by filter, and retention."""

from __future__ import annotations

import pytest

from tests.stores.builders import (
    ACTIONABLE,
    BUY,
    HOLD,
    INVALID,
    NOW_NS,
    REJECTED,
    SECOND_NS,
    SELL,
    SUPPRESSED,
    signal,
)
from tradeflow.common.v1 import tier_pb2
from trading_engine.history import HistoryRequest, SignalHistory
from trading_engine.stores.base import SignalQuery, SignalRecord, Store
from trading_engine.tenancy import Caller

TRADER_ALICE = Caller("alice", "acme", tier_pb2.SUBSCRIPTION_TIER_PRO)


def _ids(records: list[SignalRecord]) -> list[str]:
    return [record.signal_id for record in records]


@pytest.fixture
async def day(store: Store) -> Store:
    """One user's morning: signals of several symbols, types and dispositions."""
    await store.append_signals(
        [
            signal("s1", NOW_NS + 1 * SECOND_NS, symbol="EURUSD", signal_type=BUY),
            signal("s2", NOW_NS + 2 * SECOND_NS, symbol="GBPUSD", signal_type=SELL),
            signal("s3", NOW_NS + 3 * SECOND_NS, symbol="EURUSD", signal_type=HOLD,
                   disposition=REJECTED),
            signal("s4", NOW_NS + 4 * SECOND_NS, symbol="USDJPY", signal_type=BUY),
            signal("s5", NOW_NS + 5 * SECOND_NS, symbol="EURUSD", signal_type=SELL),
            signal("s6", NOW_NS + 6 * SECOND_NS, symbol="EURUSD", signal_type=HOLD,
                   disposition=SUPPRESSED),
            # Another user of the same company.
            signal("b1", NOW_NS + 1 * SECOND_NS, user_id="bob"),
        ]
    )  # fmt: skip
    return store


async def test_a_users_actionable_signals_come_back_oldest_first(day: Store) -> None:
    found = await day.query_signals(SignalQuery("acme", "alice"))

    assert _ids(found) == ["s1", "s2", "s4", "s5"]
    assert all(record.disposition == ACTIONABLE for record in found)
    assert found[0] == signal("s1", NOW_NS + 1 * SECOND_NS, symbol="EURUSD", signal_type=BUY)


async def test_non_actionable_signals_are_included_on_request(day: Store) -> None:
    found = await day.query_signals(SignalQuery("acme", "alice", include_non_actionable=True))

    assert _ids(found) == ["s1", "s2", "s3", "s4", "s5", "s6"]


async def test_signals_are_filtered_by_symbol_and_type(day: Store) -> None:
    euro = await day.query_signals(SignalQuery("acme", "alice", symbols=("EURUSD",)))
    majors = await day.query_signals(SignalQuery("acme", "alice", symbols=("EURUSD", "USDJPY")))
    sells = await day.query_signals(SignalQuery("acme", "alice", signal_types=(SELL,)))
    euro_holds = await day.query_signals(
        SignalQuery(
            "acme", "alice", symbols=("EURUSD",), signal_types=(HOLD,), include_non_actionable=True
        )
    )

    assert _ids(euro) == ["s1", "s5"]
    assert _ids(majors) == ["s1", "s4", "s5"]
    assert _ids(sells) == ["s2", "s5"]
    assert _ids(euro_holds) == ["s3", "s6"]


async def test_the_time_range_includes_its_start_and_excludes_its_end(day: Store) -> None:
    found = await day.query_signals(
        SignalQuery("acme", "alice", start_ns=NOW_NS + 2 * SECOND_NS, end_ns=NOW_NS + 5 * SECOND_NS)
    )
    since = await day.query_signals(SignalQuery("acme", "alice", start_ns=NOW_NS + 4 * SECOND_NS))
    until = await day.query_signals(SignalQuery("acme", "alice", end_ns=NOW_NS + 4 * SECOND_NS))

    assert _ids(found) == ["s2", "s4"]
    assert _ids(since) == ["s4", "s5"]
    assert _ids(until) == ["s1", "s2"]


async def test_pages_resume_after_the_last_signal_seen(store: Store) -> None:
    # Signals generated at the same instant are ordered by id, so no page skips one.
    records = [signal(f"s{n:02d}", NOW_NS + (n // 3) * SECOND_NS) for n in range(10)]
    await store.append_signals(records[::-1])

    pages: list[list[str]] = []
    after: tuple[int, str] | None = None
    while True:
        page = await store.query_signals(SignalQuery("acme", "alice", after=after, limit=4))
        if not page:
            break
        pages.append(_ids(page))
        after = (page[-1].generated_at_ns, page[-1].signal_id)

    assert pages == [
        ["s00", "s01", "s02", "s03"],
        ["s04", "s05", "s06", "s07"],
        ["s08", "s09"],
    ]


async def test_a_replayed_signal_does_not_fail_its_batch(store: Store) -> None:
    await store.append_signals([signal("s1", payload=b"first decision")])

    await store.append_signals(
        [signal("s0"), signal("s1", payload=b"replayed decision"), signal("s2")]
    )

    found = await store.query_signals(SignalQuery("acme", "alice"))
    assert _ids(found) == ["s0", "s1", "s2"]
    replayed = await store.signal("acme", "s1")
    assert replayed is not None
    assert replayed.payload == b"first decision"


async def test_a_corrected_prediction_replaces_its_invalid_signal(store: Store) -> None:
    refused = signal("s1", NOW_NS, signal_type=HOLD, disposition=INVALID, payload=b"refused")
    await store.append_signals([refused])
    corrected = signal("s1", NOW_NS + SECOND_NS, signal_type=SELL, payload=b"corrected")
    await store.append_signals([corrected, signal("s2")])
    # The corrected one, once stored, is kept like any other decision.
    await store.append_signals([signal("s1", NOW_NS + 2 * SECOND_NS, payload=b"third")])

    assert await store.signal("acme", "s1") == corrected
    assert _ids(await store.query_signals(SignalQuery("acme", "alice"))) == ["s2", "s1"]


async def test_a_refusal_and_its_correction_in_one_write_keep_the_correction(store: Store) -> None:
    refused = signal("s1", NOW_NS, signal_type=HOLD, disposition=INVALID, payload=b"refused")
    corrected = signal("s1", NOW_NS + SECOND_NS, payload=b"corrected")
    later = signal("s1", NOW_NS + 2 * SECOND_NS, payload=b"later")

    await store.append_signals([refused, corrected, later])

    assert await store.signal("acme", "s1") == corrected


async def test_a_signal_is_found_by_id_within_its_company(store: Store) -> None:
    record = signal("s1", payload=b"\x00\x01binary\xff" * 100)
    await store.append_signals([record])

    assert await store.signal("acme", "s1") == record
    assert await store.signal("acme", "missing") is None


async def test_retention_deletes_signals_older_than_the_cutoff(store: Store) -> None:
    await store.append_signals(
        [
            signal("old", NOW_NS - SECOND_NS),
            signal("other-company-old", NOW_NS - SECOND_NS, company_id="globex"),
            signal("at-cutoff", NOW_NS),
            signal("new", NOW_NS + SECOND_NS),
        ]
    )

    deleted = await store.delete_signals_before(NOW_NS)

    assert deleted == 2
    assert _ids(await store.query_signals(SignalQuery("acme", "alice"))) == ["at-cutoff", "new"]
    assert await store.signal("globex", "other-company-old") is None
    assert await store.delete_signals_before(NOW_NS) == 0


async def test_a_limit_caps_the_page_and_a_negative_one_is_refused(day: Store) -> None:
    assert _ids(await day.query_signals(SignalQuery("acme", "alice", limit=2))) == ["s1", "s2"]
    assert await day.query_signals(SignalQuery("acme", "alice", limit=0)) == []
    with pytest.raises(ValueError, match="limit"):
        await day.query_signals(SignalQuery("acme", "alice", limit=-1))


async def test_the_newest_signals_of_every_company_come_newest_first(day: Store) -> None:
    await day.append_signals([signal("g1", NOW_NS + 3 * SECOND_NS, company_id="globex")])

    newest = await day.newest_signals(4)

    # s3 and g1 share an instant; the order is (time, id) descending, so s3 comes first.
    assert _ids(newest) == ["s6", "s5", "s4", "s3"]
    assert newest[0] == signal(
        "s6", NOW_NS + 6 * SECOND_NS, symbol="EURUSD", signal_type=HOLD, disposition=SUPPRESSED
    )
    everything = await day.newest_signals(100)
    assert len(everything) == 8
    assert {record.company_id for record in everything} == {"acme", "globex"}
    assert await day.newest_signals(0) == []


async def test_a_history_page_ends_before_4_mib_whatever_its_size_asks(store: Store) -> None:
    # Ten signals of 1 MiB each (notes and reasons make signals large): pages of ten would be
    # 10 MiB, more than a default gRPC client takes in one message.
    mib = 1024 * 1024
    await store.append_signals(
        [signal(f"s-{n}", NOW_NS + n, payload=bytes([n]) * mib) for n in range(10)]
    )
    request = HistoryRequest(page_size=10)

    pages = [page async for page in SignalHistory(store).pages(TRADER_ALICE, request)]

    assert [len(page.records) for page in pages] == [3, 3, 3, 1]
    assert all(sum(len(r.payload) for r in page.records) <= 3 * mib for page in pages)
    assert [r.signal_id for page in pages for r in page.records] == [f"s-{n}" for n in range(10)]
    assert [bool(page.next_page_token) for page in pages] == [True, True, True, False]
