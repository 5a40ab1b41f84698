"""Storage on SQLite and PostgreSQL for real: replay report equality, outages, journal, repeat warm-up."""

from __future__ import annotations

import asyncio
import json
import re
from dataclasses import replace
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from monitor.core.records import CallRecord, MemberNote, Survey
from monitor.replay import ReplayResult, replay_files
from monitor.store import Store
from monitor.store.models import AgentEvent, Call, SegmentRow
from tests.support.helpers import free_port, until_async
from tests.support.store import DB, FIXTURES, outage_control

_REPLAY: ReplayResult | None = None


def replay() -> ReplayResult:
    """The whole transcript set through one tracker (repeat callers span files), computed once."""
    global _REPLAY
    if _REPLAY is None:
        _REPLAY = replay_files(sorted(FIXTURES.glob("*.ami")))
    return _REPLAY


def expected_report() -> dict[str, Any]:
    """The replay report; ``events`` is not stored, so the summary reports 0."""
    return {**replay().report(), "events": 0}


async def count_calls(store: Store) -> tuple[int, int]:
    """(rows, distinct pbx+linkedid) in ``calls``."""
    assert store.engine is not None
    async with store.engine.connect() as conn:
        rows = (await conn.execute(select(func.count()).select_from(Call))).scalar_one()
        lids = (await conn.execute(select(func.count(func.distinct(Call.linkedid))))).scalar_one()
    return int(rows), int(lids)


async def started(settings: Any) -> tuple[Store, asyncio.Task[None]]:
    """A started store with its writer task running."""
    store = Store(settings)
    await store.start()
    return store, asyncio.create_task(store.run(), name="store-writer")


async def test_replay_into_db_report_equals_replay(db: DB) -> None:
    """Every transcript's records stored; the stored-record report is the replay report, number for number."""
    store, task = await started(db.settings())
    for r in replay().records:
        store.submit(r)
    assert await store.drain(10) is True
    await task
    assert await count_calls(store) == (24, 24)
    assert await store.summary(0, 2e9) == expected_report()
    # Submitting the same calls again (a journal replayed twice, a restart) stores nothing twice.
    store2, task2 = await started(db.settings())
    for r in replay().records:
        store2.submit(r)
    assert await store2.drain(10) is True
    await task2
    assert store2.stats["duplicates"] == 24 and store2.stats["calls_written"] == 0
    assert await count_calls(store2) == (24, 24)
    recent = await store2.recent_calls(None, "sales", 10)
    assert {c["call_id"] for c in recent} == {"1795381079.1", "1795381235.1"}
    assert all(c["segments"][-1]["queue"] == "sales" for c in recent)
    assert len(await store2.recent_calls(1795381200.0, None, 100)) == 9
    assert (await store2.writable()) == (True, "ok")
    await store.close()
    await store2.close()


async def test_database_dies_mid_replay_and_returns(db: DB) -> None:
    """Outage in the middle: records go to the journal, are replayed in order once, the journal empties."""
    records = replay().records
    async with outage_control(db) as outage:
        store, task = await started(db.settings(url=outage.url))
        for r in records[:8]:
            store.submit(r)
        await until_async(lambda: _written(store, 8), 10.0)
        await outage.down()
        for r in records[8:16]:
            store.submit(r)
            await asyncio.sleep(0.01)
        await until_async(lambda: _journal_lines(store, 8), 10.0)
        await until_async(lambda: _down(store), 10.0)
        ok, why = await store.writable()
        assert not ok and "unavailable" in why and "journaled" in why
        assert store.stats["db_up"] is False
        await outage.up()
        for r in records[16:]:
            store.submit(r)
        await until_async(lambda: _written(store, 24), limit_s=15)
        assert await store.drain(10) is True
        await task
        assert store.journal.size == 0 and store.stats["journal_lines"] == 0
        assert store.stats["retries"] >= 1 and store.stats["journaled"] >= 8
        assert await count_calls(store) == (24, 24)
        assert await store.summary(0, 2e9) == expected_report()
        await store.close()


async def _written(store: Store, n: int) -> bool:
    return (await count_calls(store))[0] >= n and store.journal.size == 0


async def _down(store: Store) -> bool:
    return store.stats["db_up"] is False


async def _journal_lines(store: Store, n: int) -> bool:
    return store.stats["journal_lines"] >= n


async def test_drain_while_down_journals_then_next_start_replays(db: DB) -> None:
    """Shutdown with the database gone: nothing lost; the next start (database back) replays the journal."""
    records = replay().records
    if db.engine == "postgresql":
        dead = db.settings(url=db.url_with_port(free_port()))  # a closed port
        async with outage_control(db):
            await _drain_down_then_replay(db, dead, records)
    else:
        async with outage_control(db) as outage:
            await _drain_down_then_replay(db, db.settings(), records, outage)


async def _drain_down_then_replay(db: DB, dead: Any, records: list[CallRecord], outage: Any = None) -> None:
    if outage is not None:
        warm = Store(dead)
        await warm.start()  # create the SQLite schema, then lock the file
        await warm.close()
        await outage.down()
    store, task = await started(dead)
    for r in records:
        store.submit(r)
    assert await store.drain(3) is False
    await task
    assert store.stats["journal_lines"] == 24
    store.submit(records[0])  # after drain: straight to the journal
    assert store.stats["journal_lines"] == 25
    await store.close()
    if outage is not None:
        await outage.up()
    again, task2 = await started(db.settings())
    await until_async(lambda: _written(again, 24), 10.0)
    assert await again.drain(5) is True
    await task2
    assert again.stats["journal_replayed"] == 25 and again.stats["duplicates"] == 1
    assert await count_calls(again) == (24, 24)
    assert await again.summary(0, 2e9) == expected_report()
    await again.close()


async def test_full_queue_goes_to_journal_never_lost(db: DB) -> None:
    """submit() never blocks nor touches the disk; past the memory bound records are read back from the journal."""
    store = Store(db.settings(queue_size=3))
    await store.start()
    for r in replay().records:
        store.submit(r)
    # Nothing written by submit() itself: the journal's writer thread appends the group a moment later.
    assert store.stats["journaled"] == 0 and store.stats["queue_depth"] == 0
    await asyncio.to_thread(store.journal.flush, 5.0)
    await asyncio.sleep(0)
    assert store.stats["journaled"] == 24 and store.stats["journal_lines"] == 24
    assert store.stats["queue_depth"] == 3 and store.stats["dropped_by_reason"] == {"queue_full": 21}
    task = asyncio.create_task(store.run())
    await until_async(lambda: _written(store, 24), 10.0)
    assert await store.drain(5) is True
    await task
    # The three in memory went straight in; the other 21 were replayed from the file, once.
    assert store.stats["journal_replayed"] == 21 and store.stats["duplicates"] == 0
    assert await count_calls(store) == (24, 24)
    assert await store.summary(0, 2e9) == expected_report()
    await store.close()


async def test_hashed_callers_warm_repeat_index_and_survey_cooldown(db: DB) -> None:
    """With hashing, stored callers are HMAC hex; the warmed index still finds repeats; cooldown works."""
    store, task = await started(db.settings(hash_callers=True, hash_salt="s3cret"))
    for r in replay().records:
        store.submit(r)
    assert await store.drain(5) is True
    await task
    assert store.engine is not None
    async with store.engine.connect() as conn:
        callers = (await conn.execute(select(Call.caller))).scalars().all()
    assert all(c is not None and re.fullmatch(r"[0-9a-f]{64}", c) for c in callers)
    assert "5551010" not in callers
    # A restarted daemon: a fresh index warmed from the store sees 5551010 as a repeat caller.
    index = store.repeat_index(("24h",), 1000)
    now = 1795382900.0
    assert await store.load_repeat_index(index, 86400.0, now) == 21
    assert index.check_and_add("5551010", now) == ("24h",)
    assert index.check_and_add("5559999", now) == ()
    cold = store.repeat_index(("24h",), 1000)
    assert await store.load_repeat_index(cold, 60.0, now) == 1  # only 5551009 (attended_transfer_b) in 60 s
    # Survey cooldown across restarts: 5551010's last survey was at the third call.
    last = await store.last_survey_at("5551010")
    assert last is not None and 1795381146 < last < 1795381160
    assert await store.surveyed_within("5551010", 7 * 86400, now)
    assert not await store.surveyed_within("5551010", 60, now)
    assert await store.last_survey_at("5551002") is None  # answered, never surveyed
    await store.close()


async def test_member_changes_stored_once(db: DB) -> None:
    """Member login/pause(reason)/unpause/logout rows; the same note twice is stored once."""
    notes = [MemberNote("support", "agent1", "Local/agent1@lab-agents/n", c, rsn, 1795381211.5 + i)
             for i, (c, rsn) in enumerate([("login", ""), ("pause", "lunch"), ("unpause", ""), ("logout", "")])]
    store, task = await started(db.settings())
    for n in [*notes, notes[1]]:
        store.submit_member(n)
    assert await store.drain(5) is True
    await task
    assert store.engine is not None
    async with store.engine.connect() as conn:
        rows = (await conn.execute(select(AgentEvent.change, AgentEvent.reason).order_by(AgentEvent.ts))).all()
    assert [tuple(r) for r in rows] == [("login", ""), ("pause", "lunch"), ("unpause", ""), ("logout", "")]
    assert store.stats["members_written"] == 4 and store.stats["duplicates"] == 1
    await store.close()


def _first_rejected(path: Path) -> dict[str, Any]:
    out: dict[str, Any] = json.loads(path.read_text().splitlines()[0])
    return out


async def test_bad_record_rejected_not_blocking(db: DB) -> None:
    """A record the database refuses is stored degraded (original in ``.rejected``); the rest of its batch too."""
    good = replay().records[:3]
    bad = replace(good[0], linkedid="bad", segments=(replace(good[0].segments[0], position=2**40),))
    store, task = await started(db.settings())
    for r in [*good[:2], bad, good[2]]:
        store.submit(r)
    assert await store.drain(5) is True
    await task
    if db.engine == "postgresql":  # SQLite stores 2**40 in an INTEGER column happily
        assert store.stats["rejected"] == 1
        line = _first_rejected(Path(str(store.journal.path) + ".rejected"))
        assert line["r"]["linkedid"] == "bad" and line["r"]["segments"][0]["position"] == 2**40
        assert await count_calls(store) == (4, 4) and store.stats["lost"] == 0
        (back,) = [r for r in await store.records(0, 2e9) if r.linkedid == "bad"]
        assert back.segments[0].position == 2**31 - 1
    await store.close()


async def test_prune_deletes_old_calls_and_children(db: DB) -> None:
    """Retention: calls ending before the cutoff go, with their segments."""
    store, task = await started(db.settings())
    for r in replay().records:
        store.submit(r)
    store.submit_member(MemberNote("support", "agent1", "a1", "login", "", 1795381000.0))
    assert await store.drain(5) is True
    await task
    old = [r for r in replay().records if r.end_ts < 1795381100.0]
    counts = await store.prune(older_than_s=0.0, now=1795381100.0)
    assert counts == {"calls": len(old) == 8 and 8, "agent_events": 1}
    assert await count_calls(store) == (16, 16)
    assert store.engine is not None
    async with store.engine.connect() as conn:
        segs = (await conn.execute(select(func.count()).select_from(SegmentRow))).scalar_one()
    assert segs == sum(len(r.segments) for r in replay().records) - sum(len(r.segments) for r in old) == 17
    await store.close()


async def test_survey_of_later_source_is_kept(db: DB) -> None:
    """AGI survey fields (NPS, CES, source) round-trip through the store."""
    r = replay().records[0]
    sv = Survey("support", "agent1", "completed", 5, "5", "agi", r.end_ts, nps=10, ces=2)
    store, task = await started(db.settings())
    store.submit(replace(r, survey=sv))
    assert await store.drain(5) is True
    await task
    (back,) = await store.records(0, 2e9)
    assert back.survey == sv and back == replace(r, survey=sv)
    await store.close()
