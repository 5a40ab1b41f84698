"""A final record replaces the provisional row of the same call whatever id it was adopted under (SQLite and
PostgreSQL): written at shutdown under the real Linkedid, the call may come back from a resync under another
id (no CoreShowChannel answer to join its QueueEntry with) but with the same call id (the Queue() channel)."""

from __future__ import annotations

from dataclasses import replace

from sqlalchemy import select

from monitor.ami.files import read_capture
from monitor.core.records import CallRecord
from monitor.replay import replay_messages
from monitor.store import Store
from monitor.store.models import Call
from tests.support.store import DB, FIXTURES


def _answered() -> CallRecord:
    (rec,) = replay_messages(read_capture(FIXTURES / "answered_agent_hangup.jsonl")).records
    assert rec.linkedid != rec.call_id  # the caller's ;1 leg came first, as in every transcript
    return rec


async def _stored(db: DB, *batches: list[CallRecord]) -> list[tuple[str, str, str]]:
    store = Store(db.settings())
    await store.start()
    try:
        for batch in batches:
            await store.write_items(batch)
        async with store._s()() as s:
            rows = (await s.execute(select(Call.linkedid, Call.call_id, Call.closed_by))).all()
    finally:
        await store.close()
    return sorted((r[0], r[1], r[2]) for r in rows)


async def test_final_record_under_the_call_id_replaces_the_shutdown_row_under_the_linkedid(db: DB) -> None:
    final = _answered()
    provisional = replace(final, closed_by="shutdown", outcome="unknown")
    adopted = replace(final, linkedid=final.call_id)  # adopted from QueueEntry alone: Linkedid unknown
    rows = await _stored(db, [provisional], [adopted])
    assert rows == [(final.call_id, final.call_id, "hangup")], rows


async def test_final_record_under_the_linkedid_replaces_the_shutdown_row(db: DB) -> None:
    final = _answered()
    rows = await _stored(db, [replace(final, closed_by="shutdown", outcome="unknown")], [final])
    assert rows == [(final.linkedid, final.call_id, "hangup")], rows


async def test_a_provisional_record_never_replaces_a_final_one(db: DB) -> None:
    final = _answered()
    rows = await _stored(db, [final], [replace(final, closed_by="gap", outcome="unknown")])
    assert rows == [(final.linkedid, final.call_id, "hangup")], rows
