"""The daemon stopped (SIGTERM path) with calls open, started again, resynced, and the calls end: one row each.

``concurrent`` (Asterisk 22) is cut where two callers talk to agents and three wait. The first daemon writes
them as provisional ``shutdown`` rows under their real Linkedid (the caller's ``;1`` leg, not the Uniqueid of
the ``;2`` leg in the queue). The second daemon logs in to an Asterisk that still has them (QueueStatus +
CoreShowChannels as Asterisk 22 answers: QueueEntry without a Linkedid), adopts them, and the rest of the stream
ends them. Stored: every call exactly once, under its true Linkedid, closed by its hang-up, with the waits and
talk times of a run that never stopped (``qmon replay`` of the whole capture) — not restarted from zero.
The wall clock is a year after the recording: any mixing of the daemon's clock with PBX time shows.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from monitor.ami.files import read_capture
from monitor.core.records import CallRecord
from monitor.replay import replay_messages
from tests.support.amiserver import AmiTestServer
from tests.support.daemon import daemon_settings, running
from tests.support.helpers import FIXTURES, until

CUT = 390  # two callers bridged to agents (.1 and .5), three waiting (.9, .11, .13)
QUEUES = ("support",)


def _replayed() -> dict[str, CallRecord]:
    res = replay_messages(read_capture(FIXTURES / "concurrent.jsonl"))
    return {r.linkedid: r for r in res.records}


def _rows(db: Path) -> list[tuple[str, str, str, float, str]]:
    with sqlite3.connect(db) as c:
        return c.execute("SELECT linkedid, call_id, closed_by, start_ts, outcome FROM calls ORDER BY call_id"
                         ).fetchall()


def _segments(db: Path) -> dict[str, list[tuple[str, float, float | None, str | None, float | None]]]:
    out: dict[str, list[tuple[str, float, float | None, str | None, float | None]]] = {}
    with sqlite3.connect(db) as c:
        for lid, outcome, join, wait, agent, talk in c.execute(
                "SELECT c.linkedid, s.outcome, s.join_ts, s.wait_s, s.agent, s.talk_s FROM call_segments s "
                "JOIN calls c ON c.id = s.call_pk ORDER BY c.linkedid, s.seq"):
            out.setdefault(lid, []).append((outcome, join, wait, agent, talk))
    return out


@pytest.mark.usefixtures("year_after_recordings")
async def test_restart_with_calls_open_stores_each_call_once_with_its_linkedid(tmp_path: Path) -> None:
    messages = AmiTestServer.from_transcript("concurrent").messages
    truth = _replayed()
    db = tmp_path / "qmon.db"
    first = await AmiTestServer(messages[:CUT], state="auto", queues=QUEUES).start()
    try:
        async with running(daemon_settings(tmp_path, first.port, queues=QUEUES)) as d:
            await first.wait_streamed()
            await until(lambda: d.pbxs["default"].ingest.tracker.open_calls == 5, 10, "five calls open at the cut")
    finally:
        await first.close()
    provisional = _rows(db)
    assert len(provisional) == 5 and {r[2] for r in provisional} == {"shutdown"}, provisional
    assert {r[0] for r in provisional} <= set(truth) and all(r[0] != r[1] for r in provisional), provisional

    # Asterisk kept the calls; the second daemon's resync sees them as they are at the cut.
    second = AmiTestServer(messages, state="auto", queues=QUEUES, stream_after="CoreShowChannels")
    second.next_index = CUT
    await second.start()
    try:
        async with running(daemon_settings(tmp_path, second.port, queues=QUEUES)) as d:
            await until(lambda: d.sources["default"].synced, 10, "resynced")
            await second.wait_streamed()
            await until(lambda: len(_rows(db)) == 6 and all(r[2] == "hangup" for r in _rows(db)), 10,
                        "every call stored as hung up")
    finally:
        await second.close()
    rows = _rows(db)
    assert sorted(r[0] for r in rows) == sorted(truth), rows  # each call once, under its true Linkedid
    segs = _segments(db)
    for lid, want in truth.items():
        got = segs[lid]
        assert [s[0] for s in got] == [s.outcome for s in want.segments], (lid, got)
        for (_, join, wait, agent, talk), w in zip(got, want.segments, strict=True):
            assert agent == w.agent, (lid, agent, w.agent)
            assert talk == w.talk_s, (lid, talk, w.talk_s)  # AgentComplete's TalkTime
            assert wait is not None and w.wait_s is not None and abs(wait - w.wait_s) <= 1.0, (lid, wait, w.wait_s)
            assert abs(join - w.join_ts) <= 1.0, (lid, join, w.join_ts)  # from QueueEntry.Wait, on the PBX clock
    with sqlite3.connect(db) as c:  # the repeat index, warmed from the shutdown rows, knows these calls by Linkedid
        assert c.execute("SELECT count(*) FROM calls WHERE repeat_windows != ''").fetchone() == (0,)
    starts = {r[0]: r[3] for r in rows}
    for lid, want in truth.items():  # from the Linkedid channel's Duration, not the restart
        assert abs(starts[lid] - want.start_ts) <= 1.0, (lid, starts[lid], want.start_ts)
