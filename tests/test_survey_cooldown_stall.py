"""The cooldown write (after the call) never starves qmon's lookups (before the first prompt), over real TCP.

The survey state file locked by another writer (``qmon optout add`` mid-transaction, a backup, a stalled disk)
holds each cooldown write in SQLite's busy wait. Those writes used the lookups' four worker threads: after four
surveys every later caller waited for a thread past the work deadline and heard goodbye, not the survey (reason
``qmon_slow``), though the lookups read from memory and were not slowed at all.
"""

from __future__ import annotations

import sqlite3
from datetime import time as dtime
from pathlib import Path

from monitor.core.survey import PolicyConfig, SurveyPolicy, SurveyResultRecord
from monitor.survey.server import SurveyServer
from monitor.survey.state import SurveyState
from tests.support.agiclient import agi_headers, run_caller
from tests.support.calls import answered
from tests.support.helpers import until


async def test_a_locked_cooldown_file_does_not_stop_the_surveys(tmp_path: Path) -> None:
    calls = {f"L{i}": answered(f"L{i}", caller=f"555100{i}") for i in range(8)}
    state = SurveyState(tmp_path / "survey.db")
    results: list[SurveyResultRecord] = []
    server = SurveyServer(SurveyPolicy(PolicyConfig()), lookup=lambda u, lid: calls.get(lid or ""),
                          on_result=results.append, cooldown=state, optout=state, port=0,
                          local=lambda ts: dtime(12), work_deadline_s=0.5)
    other = sqlite3.connect(tmp_path / "survey.db", isolation_level=None)
    await server.start()
    try:
        other.execute("BEGIN IMMEDIATE")  # another writer holds the file: each cooldown write waits
        for i in range(8):  # one after the other: each caller's write is still waiting when the next one calls
            s = await run_caller(server.port, agi_headers(f"U{i}", f"L{i}", callerid=f"555100{i}"), ["4"])
            assert s.variables.get("QMON_SURVEY_STATUS") == "completed", (i, s.commands)
        other.execute("ROLLBACK")
        # The writes were delayed, not lost: all eight land once the file is free.
        await until(lambda: all(state.last_surveyed(f"555100{i}") for i in range(8)), 20, what="cooldown writes")
    finally:
        other.close()
        await server.close(1.0)
        state.close()
    assert [(r.status, r.reason) for r in results] == [("completed", "ok")] * 8
    assert server.stats["qmon_slow"] == 0
