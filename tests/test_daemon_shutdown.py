"""SIGTERM to ``qmon run`` while calls are open and writes are queued: exit 0, every call in SQLite."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import sys
from pathlib import Path

import aiohttp
import pytest

from monitor.ami.wire import WireParser
from monitor.core.ingest import Ingest, closed_records
from monitor.core.records import SegmentNote
from monitor.core.tracker import CallTracker
from tests.support.amiserver import AmiTestServer, transcript_messages
from tests.support.helpers import free_port

pytestmark = pytest.mark.usefixtures("year_after_recordings")  # the wall clock is far from PBX time

PREFIX = 489  # concurrent.ami up to here: 2 calls closed, 4 still open (computed below, asserted)


def metric(text: str, name: str) -> float:
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(name + "{")
               or line.startswith(name + " "))


async def test_sigterm_closes_open_calls_and_drains_queue(tmp_path: Path) -> None:
    msgs = transcript_messages("concurrent")[:PREFIX]
    tracker = CallTracker()
    ingest, parser, closed, outcomes = Ingest(tracker), WireParser(expect_banner=False), [], 0
    for m in msgs:
        for h in parser.feed(m):
            notes = ingest.feed(h, 0)
            closed += closed_records(notes)
            outcomes += sum(isinstance(n, SegmentNote) for n in notes)
    closed += closed_records(ingest.tick(60))  # the grace period after the last hang-up is over
    expected = {r.linkedid for r in closed} | {r.linkedid for r in closed_records(tracker.close_all(0, "eof"))}
    assert len(closed) == 2 and len(expected) == 6
    db, journal, http_port = tmp_path / "qmon.db", tmp_path / "journal.jsonl", free_port()
    async with AmiTestServer(msgs) as srv:
        env = {k: v for k, v in os.environ.items() if not k.startswith("QMON_")} | {
            "QMON_AMI_SECRET": "secret", "QMON_AMI_PORT": str(srv.port), "QMON_STORE_URL": f"sqlite+aiosqlite:///{db}",
            "QMON_STORE_JOURNAL_PATH": str(journal),
            # A writer that would not flush for a minute: the closed calls are still queued at SIGTERM.
            "QMON_STORE_FLUSH_INTERVAL_S": "60", "QMON_STORE_BATCH_SIZE": "10000", "QMON_SURVEY_ENABLED": "false",
        }
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "monitor", "run", "--http-port", str(http_port), env=env, cwd=tmp_path,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
        try:
            await srv.wait_streamed(30)
            async with aiohttp.ClientSession() as http:
                for _ in range(200):
                    try:
                        async with http.get(f"http://127.0.0.1:{http_port}/metrics") as r:
                            text = await r.text()
                        # The 2 closed calls sit in the writer's pending batch (not written) and 4 are open.
                        if metric(text, "qmon_open_calls") == 4 and metric(text, "qmon_queue_calls_total") == outcomes:
                            break
                    except aiohttp.ClientError:
                        pass
                    await asyncio.sleep(0.1)
                else:
                    raise AssertionError("daemon never reached 4 open calls")
            assert metric(text, "qmon_store_calls_written_total") == 0
            proc.send_signal(signal.SIGTERM)
            out, _ = await asyncio.wait_for(proc.communicate(), 30)
        finally:
            if proc.returncode is None:
                proc.kill()
    log = out.decode()
    assert proc.returncode == 0, log
    assert "4 open call(s) closed as shutdown" in log
    with sqlite3.connect(db) as conn:
        rows = dict(conn.execute("SELECT linkedid, closed_by FROM calls").fetchall())
    assert set(rows) == expected
    assert sorted(rows.values()) == ["hangup", "hangup", "shutdown", "shutdown", "shutdown", "shutdown"]
    assert not journal.exists() or journal.read_text() == ""
