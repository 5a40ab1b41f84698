"""Owed callbacks survive a restart: written by the store (SQLite and PostgreSQL), reloaded into a new tracker,
closed there by the caller's next answered call (repeat_caller: answered, abandoned, answered)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from monitor.ami.files import read_capture
from monitor.core.ingest import Ingest
from monitor.core.owed import INBOUND
from monitor.core.records import Note, OwedCall, OwedNote
from monitor.core.tracker import CallTracker
from monitor.store import Store
from monitor.store.owed import OwedItem
from monitor.store.rows import item_from_json, item_to_json
from tests.support.store import DB

FIXTURES = Path(__file__).parent / "fixtures"
MSGS = list(read_capture(FIXTURES / "repeat_caller.jsonl"))


def _cut() -> int:
    """Index just after the abandoned (second) call's last Hangup: before the third call's first event."""
    joins = [i for i, (m, _) in enumerate(MSGS) if m.get("Event") == "QueueCallerJoin"]
    third = joins[2]
    return max(i for i, (m, _) in enumerate(MSGS[:third]) if m.get("Event") == "Hangup") + 1


async def _run(store: Store, msgs: list[tuple[dict[str, Any], float | None]], tracker: CallTracker) -> list[Note]:
    """Feed messages through an Ingest whose sink stores owed notes, as the daemon's store sink does."""
    notes: list[Note] = []

    def sink(ns: list[Note]) -> None:
        for n in ns:
            notes.append(n)
            if isinstance(n, OwedNote):
                store.submit_owed(n)

    ing = Ingest(tracker, [sink])
    last = 0.0
    for m, recv in msgs:
        last = recv or last
        ing.feed(m, last)
    ing.tick(last + 60)  # past the late-event grace: hung-up calls are final, as the daemon's tick makes them
    return notes


async def test_owed_callback_survives_a_restart(db: DB) -> None:
    cut = _cut()
    store = Store(db.settings())
    await store.start()
    writer = asyncio.create_task(store.run())
    t1 = CallTracker()
    notes = await _run(store, MSGS[:cut], t1)
    assert [n.change for n in notes if isinstance(n, OwedNote)] == ["open"]
    [before] = t1.owed.open()
    assert await store.drain(5.0)
    await writer
    await store.close()

    # A new process: the open owed call is reloaded from the database, then closed by the third call.
    store2 = Store(db.settings())
    await store2.start()
    writer2 = asyncio.create_task(store2.run())
    loaded = await store2.load_owed("default")
    assert [(o.caller, o.outcome, o.closed_ts) for o in loaded] == [("5551010", "abandoned_short", None)]
    t2 = CallTracker()
    assert t2.owed.restore(loaded) == 1
    assert t2.owed.open() == [before]
    notes2 = await _run(store2, MSGS[cut:], t2)
    [closed] = [n.call for n in notes2 if isinstance(n, OwedNote)]
    assert (closed.closed_by, closed.agent) == (INBOUND, "agent1") and closed.linkedid == before.linkedids[0]
    assert t2.owed.open() == []
    assert await store2.drain(5.0)
    await writer2
    assert await store2.load_owed("default") == []
    [row] = await store2.owed_calls(0, 4e9)
    assert (row.closed_by, row.closed_ts, row.agent) == (INBOUND, closed.closed_ts, "agent1")
    assert store2.stats["owed_written"] == 1
    await store2.close()


async def test_open_and_close_in_one_batch_and_again_are_one_closed_row(db: DB) -> None:
    store = Store(db.settings())
    await store.start()
    o = OwedCall("default", "L1", "5551234", "support", 100.0, 120.0, 20.0, "abandoned")
    c = OwedCall("default", "L1", "5551234", "support", 100.0, 120.0, 20.0, "abandoned", False, 500.0, INBOUND, "a")
    await store.write_items([OwedItem(OwedNote("close", c)), OwedItem(OwedNote("open", o))])
    await store.write_items([OwedItem(OwedNote("open", o))])  # a journal replay of the open: stays closed
    assert await store.owed_calls(0, 1e9) == [c]
    await store.close()


async def test_hashed_callers_are_stored_hashed_and_never_reloaded(db: DB) -> None:
    store = Store(db.settings(hash_callers=True, hash_salt="s"))
    await store.start()
    writer = asyncio.create_task(store.run())
    store.submit_owed(OwedNote("open", OwedCall("default", "L1", "5551234", "q", 1.0, 2.0, 1.0, "abandoned")))
    assert await store.drain(5.0)
    await writer
    [row] = await store.owed_calls(0, 10)
    assert row.caller != "5551234" and len(row.caller) == 64
    assert await store.load_owed("default") == []
    await store.close()


def test_journal_round_trip() -> None:
    it = OwedItem(OwedNote("close", OwedCall("p", "L", "555", None, 1.0, 2.0, 0.0, "timeout", True, 3.0,
                                             "outbound", "alice")))
    assert item_from_json(item_to_json(it)) == it


@pytest.mark.parametrize("max_age", [10.0, 1000.0])
async def test_reload_is_bounded_by_age_on_the_pbx_clock(db: DB, max_age: float) -> None:
    store = Store(db.settings())
    await store.start()
    old = OwedCall("default", "L1", "5551", "q", 0.0, 100.0, 1.0, "abandoned")
    new = OwedCall("default", "L2", "5552", "q", 0.0, 600.0, 1.0, "abandoned")
    await store.write_items([OwedItem(OwedNote("open", old)), OwedItem(OwedNote("open", new))])
    got = [o.linkedid for o in await store.load_owed("default", max_age)]
    assert got == (["L2"] if max_age == 10.0 else ["L1", "L2"])
    await store.close()
