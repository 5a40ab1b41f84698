"""Member changes and owed callbacks written as many parameter sets per statement (executemany): large batches
past any insertmanyvalues page, duplicates inside a batch, the same batch replayed (journal replay after a
restart), on SQLite and PostgreSQL: every row stored exactly once, counters exact."""

from __future__ import annotations

from sqlalchemy import func, select

from monitor.core.owed import INBOUND
from monitor.core.records import MemberNote, OwedCall, OwedNote
from monitor.store import Store
from monitor.store.models import AgentEvent
from monitor.store.owed import OwedItem
from monitor.store.rows import MemberItem
from tests.support.store import DB

N = 2600  # past SQLAlchemy's default insertmanyvalues page (1000) and SQLite's parameter limit per page


def _members() -> list[MemberItem]:
    return [MemberItem("default", MemberNote(f"q{i % 7}", f"agent{i}", f"PJSIP/{i}", ("login", "pause")[i % 2],
                                             "lunch" if i % 2 else "", 1.8e9 + i * 0.5)) for i in range(N)]


def _owed(i: int, closed: bool) -> OwedCall:
    if closed:
        return OwedCall("default", f"L{i}", f"555{i}", "support", 100.0 + i, 120.0 + i, 20.0, "abandoned", False,
                        500.0 + i, INBOUND, f"a{i}")
    return OwedCall("default", f"L{i}", f"555{i}", "support", 100.0 + i, 120.0 + i, 20.0, "abandoned")


async def _count(store: Store) -> int:
    assert store.engine is not None
    async with store.engine.connect() as conn:
        return int((await conn.execute(select(func.count()).select_from(AgentEvent))).scalar_one())


async def test_large_member_batches_with_duplicates_and_replays_store_each_row_once(db: DB) -> None:
    store = Store(db.settings())
    await store.start()
    items = _members()
    await store.write_items([*items, *items[:300]])  # duplicates inside one batch
    assert await _count(store) == N
    assert store.stats["members_written"] == N and store.stats["duplicates"] == 300
    await store.close()
    again = Store(db.settings())  # a restart replaying the journal: the same rows again
    await again.start()
    await again.write_items(items)
    await again.write_items(items[::-1])
    assert await _count(again) == N
    assert again.stats.get("members_written", 0) == 0 and again.stats["duplicates"] == 2 * N
    await again.close()


async def test_large_owed_batches_opened_closed_and_replayed_are_one_row_each(db: DB) -> None:
    store = Store(db.settings())
    await store.start()
    opens = [OwedItem(OwedNote("open", _owed(i, False))) for i in range(N)]
    closes = [OwedItem(OwedNote("close", _owed(i, True))) for i in range(0, N, 2)]
    await store.write_items(opens)
    await store.write_items([*closes, *opens])  # closes then replayed opens in one batch: closes win
    await store.write_items(opens)  # a replay of the opens alone: nothing reopened
    rows = await store.owed_calls(0, 1e12)
    assert len(rows) == N
    by_id = {r.linkedid: r for r in rows}
    for i in range(N):
        assert by_id[f"L{i}"] == _owed(i, i % 2 == 0), i
    assert len(await store.load_owed("default")) == N // 2
    await store.close()
