"""A caller waiting across a daemon restart (SIGTERM -> `shutdown` record -> start -> resync).

The old process writes the call as closed_by=shutdown (segment outcome unknown). The new process adopts the same
Linkedid from QueueEntry at its first resync and later sees the answer, but the store is idempotent on
(pbx, linkedid) with ON CONFLICT DO NOTHING, so the true record is dropped. And the repeat index, warmed from the
stored shutdown record, flags the call as a repeat of itself.
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import select

from monitor.ami.files import read_capture
from monitor.core.ingest import Ingest, closed_records
from monitor.core.records import Note, RepeatNote
from monitor.core.tracker import CallTracker
from monitor.settings import StoreSettings
from monitor.store import Store
from monitor.store.models import Call

FIXTURES = Path(__file__).parent / "fixtures"
MSGS = [m for m, _ in read_capture(FIXTURES / "answered_agent_hangup.jsonl")]
CUT = 50  # after QueueCallerJoin (43): the caller is waiting in `support`


async def _restart(tmp_path: Path) -> tuple[list[Note], list[tuple[str, str]]]:
    store = Store(StoreSettings(url=f"sqlite+aiosqlite:///{tmp_path / 'q.db'}",
                                journal_path=str(tmp_path / "j.jsonl")))
    await store.start()
    # Process 1: events up to the cut, then SIGTERM closes open calls as `shutdown` and writes them.
    t1 = CallTracker()
    ing1 = Ingest(t1)
    for m in MSGS[:CUT]:
        ing1.feed(m, t1.now)
    down = closed_records(t1.close_all(t1.now, "shutdown"))
    assert len(down) == 1 and down[0].segments[0].outcome == "unknown"
    await store.write_items(down)
    # Process 2: warm the repeat index from the store, log in, resync (caller still waiting), events go on.
    t2 = CallTracker(repeat_index=store.repeat_index())
    await store.load_repeat_index(t2.repeats, now=t1.now + 5)
    ing2 = Ingest(t2)
    join = next(m for m in MSGS[:CUT] if m.get("Event") == "QueueCallerJoin")
    t2.resync_begin()
    notes: list[Note] = list(ing2.feed({
        "Event": "QueueEntry", "Queue": "support", "Position": "1", "Wait": "3", "Uniqueid": join["Uniqueid"],
        "Linkedid": join["Linkedid"], "Channel": join["Channel"], "CallerIDNum": join["CallerIDNum"]}, t1.now + 5))
    notes += t2.resync_end(t1.now + 5)
    for m in MSGS[CUT:]:
        notes += ing2.feed(m, t2.now)
    notes += ing2.tick(t2.now + 60)  # past the grace period after the caller's hang-up
    final = closed_records(notes)
    assert len(final) == 1 and final[0].segments[0].outcome == "answered"
    await store.write_items(final)
    async with store._s()() as s:
        rows = (await s.execute(select(Call.outcome, Call.closed_by))).all()
    await store.close()
    return notes, [(r[0], r[1]) for r in rows]


async def test_call_waiting_across_a_restart_is_stored_with_its_real_outcome(tmp_path: Path) -> None:
    _, rows = await _restart(tmp_path)
    assert rows == [("answered", "hangup")], rows


async def test_call_waiting_across_a_restart_is_not_a_repeat_of_itself(tmp_path: Path) -> None:
    notes, _ = await _restart(tmp_path)
    assert not [n for n in notes if isinstance(n, RepeatNote)], "the call was flagged as a repeat of itself"
