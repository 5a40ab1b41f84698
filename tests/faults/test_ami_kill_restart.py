"""The AMI connection killed at seeded random points under the running daemon (rows read back from SQLite).

Stream kept (the next connection resumes at the cut message): the stored rows equal ``qmon replay`` of the
capture, no call twice. Events lost (the next connection resumes 80 messages further on): calls that ended inside
the gap are closed as ``gap``; a call alive across it is stored as replay has it, or ``unknown`` where the gap
hid what happened to it (a caller answered during the gap is answered: its channel is bridged with a member's);
never a wrong outcome, and still no call twice.
"""

from __future__ import annotations

import random
import sqlite3
from pathlib import Path

import pytest

from monitor.ami.files import read_capture
from monitor.replay import replay_messages
from tests.support.amiserver import AmiTestServer
from tests.support.daemon import daemon_settings, running
from tests.support.helpers import FIXTURES, until

SCENARIO = "concurrent"
CUTS = [random.Random(seed).randrange(60, 880) for seed in (1, 2, 3)]


def _truth() -> dict[str, tuple[str, str]]:
    res = replay_messages(read_capture(FIXTURES / f"{SCENARIO}.jsonl"))
    return {r.linkedid: (r.outcome, r.closed_by) for r in res.records}


def _rows(db: Path) -> list[tuple[str, str, str]]:
    with sqlite3.connect(db) as c:
        return c.execute("SELECT linkedid, outcome, closed_by FROM calls").fetchall()


async def _run(tmp_path: Path, cut: int, resume: int, seed: int) -> list[tuple[str, str, str]]:
    # Each login's stream starts after its resync answers: the snapshot is what Asterisk has at the login (what
    # happens within the few ms between a real login and its answers is judged from the state before the gap).
    srv = AmiTestServer.from_transcript(SCENARIO, state="auto", queues=("support",), mode="chunks", seed=seed,
                                        drop_at=cut, resume_at=resume, stream_after="CoreShowChannels")
    async with srv, running(daemon_settings(tmp_path, srv.port, queues=("support",))) as d:
        await srv.wait_streamed(15)
        await until(lambda: srv.connections == 2 and d.sources["default"].synced, 10, "reconnected and resynced")
        await until(lambda: d.pbxs["default"].ingest.tracker.open_calls == 0, 10, "every call ended")
    return _rows(tmp_path / "qmon.db")


@pytest.mark.parametrize("cut", CUTS)
async def test_kill_with_the_stream_kept_stores_what_replay_does(tmp_path: Path, cut: int) -> None:
    rows = await _run(tmp_path, cut, cut, seed=cut)
    assert len(rows) == len({r[0] for r in rows}), rows  # no call twice
    assert {r[0]: (r[1], r[2]) for r in rows} == _truth(), (cut, rows)


@pytest.mark.parametrize("cut", CUTS)
async def test_kill_with_events_lost_closes_the_dead_calls_as_gap_never_twice(tmp_path: Path, cut: int) -> None:
    rows = await _run(tmp_path, cut, min(cut + 80, 900), seed=cut)
    truth = _truth()
    assert len(rows) == len({r[0] for r in rows}), rows  # no call twice
    assert {r[0] for r in rows} <= set(truth), rows
    for lid, outcome, closed_by in rows:
        # Closed as gap (it ended inside it), or as replay has it, or "unknown" where the gap hid what happened
        # (Queue() returned during it): never a wrong outcome such as "abandoned" for a call answered in the gap.
        assert closed_by == "gap" or outcome == "unknown" or (outcome, closed_by) == truth[lid], \
            (cut, lid, outcome, closed_by, truth[lid])
    assert sum(closed_by == "hangup" and outcome == truth[lid][0] for lid, outcome, closed_by in rows) >= 3, rows
