"""``qmon report``'s supervisor columns from stored rows (SQLite and PostgreSQL): agent time measures equal the
live AgentBoard and queue_log; every service-level definition; owed callbacks and the true abandonment rate."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from monitor.ami.files import read_capture
from monitor.cli import main
from monitor.core.ingest import Ingest
from monitor.core.records import CallClosed, MemberNote, Note, OwedNote
from monitor.core.tracker import CallTracker
from monitor.store import Store
from monitor.store.history import Extras, history
from tests.support.queue_log_agents import agents_from_queue_log
from tests.support.store import DB

FIXTURES = Path(__file__).parent / "fixtures"
AGENTS = FIXTURES / "agents"
T0, T1 = 1796032500.0, 1796032560.0  # around the pause_reasons capture (queue_log 1796032526 .. 554)


def _store_capture(db: DB, *paths: Path) -> CallTracker:
    """Replay captures through one tracker; the daemon's store sink writes records, member changes, owed calls."""
    tr = CallTracker()

    async def go() -> None:
        store = Store(db.settings())
        await store.start()
        writer = asyncio.create_task(store.run())

        def sink(notes: list[Note]) -> None:
            for n in notes:
                if isinstance(n, CallClosed):
                    store.submit(n.record)
                elif isinstance(n, MemberNote):
                    store.submit_member(n)
                elif isinstance(n, OwedNote):
                    store.submit_owed(n)

        ing = Ingest(tr, [sink])
        for p in paths:
            for m, recv in read_capture(p):
                ing.feed(m, recv or 0.0)
        sink(tr.close_all(tr.now, "eof"))
        assert await store.drain(10)
        await writer
        await store.close()

    asyncio.run(go())
    return tr


def _report(db: DB, capsys: pytest.CaptureFixture[str], *extra: str) -> dict[str, Any]:
    capsys.readouterr()
    assert main(["report", "--from", str(T0), "--to", str(T1), "--format", "json", "--db", db.url, *extra], {}) == 0
    out: dict[str, Any] = json.loads(capsys.readouterr().out)
    return out


def test_agent_table_equals_the_live_board_and_queue_log(db: DB, capsys: pytest.CaptureFixture[str]) -> None:
    tr = _store_capture(db, AGENTS / "pause_reasons.ami")
    live = {r.agent: r for r in tr.agents.agents(T1)}
    rep = _report(db, capsys)
    assert set(rep["agents"]) == {"agent1", "agent2"}
    for name, row in rep["agents"].items():
        lv = live[name]
        assert row["logged_in_s"] == pytest.approx(lv.logged_in_s, abs=1e-6)
        assert row["paused_s"] == pytest.approx(lv.paused_s, abs=1e-6)
        assert row["paused_by_reason"] == {k: round(v, 3) for k, v in sorted(lv.paused_by_reason.items())}
        assert row["talk_s"] == lv.talk_s and row["answered"] == lv.answered
        # The stored talk is AgentComplete's whole TalkTime, live in_call time the fractional event times.
        assert row["occupancy"] == pytest.approx(lv.occupancy, abs=0.05)
    # One queue: the member rows of that queue, equal to queue_log's figures.
    sup = _report(db, capsys, "--queue", "support")["agents"]
    ql = agents_from_queue_log(AGENTS / "pause_reasons.queue_log", T1)
    for name in ("agent1", "agent2"):
        want = ql[("support", name)]
        assert sup[name]["logged_in_s"] == pytest.approx(want.logged_in_s, abs=1.0)
        reasons = {("login-pause" if k == "" else k): v for k, v in want.paused_by_reason.items()}
        assert sup[name]["paused_by_reason"] == pytest.approx(reasons, abs=1.0)
    assert "after-call-work=5" in sup["agent1"]["pause_reasons"]
    # By hour: one bucket holds the whole capture, and its agent time equals the total.
    hourly = _report(db, capsys, "--by", "hour")
    [bucket] = hourly["buckets"]
    assert bucket["agents"]["agent2"]["paused_by_reason"] == hourly["agents"]["agent2"]["paused_by_reason"]


def test_service_level_columns_and_chosen_definition(db: DB, capsys: pytest.CaptureFixture[str]) -> None:
    _store_capture(db, AGENTS / "pause_reasons.ami")
    q = _report(db, capsys, "--sl-threshold-s", "5", "--queue-sl", "support=answered_abandoned")["queues"]["support"]
    # CONNECT holds 2, 6, 4 with T = 5: 2 of 3 answered within T, nothing abandoned, 3 offered.
    assert (q["sl_answered"], q["sl_answered_abandoned"], q["sl_offered"], q["sl_offered_no_short"]) == (
        2 / 3, 2 / 3, 2 / 3, 2 / 3)
    assert (q["sl_definition"], q["sl"]) == ("answered_abandoned", 2 / 3)
    assert (q["abandon_rate"], q["abandon_rate_no_short"]) == (0.0, 0.0)
    capsys.readouterr()
    assert main(["report", "--from", str(T0), "--to", str(T1), "--queue-sl", "support=nine", "--db", db.url],
                {}) == 2
    assert "--queue-sl: queue_sl_definition: support='nine' is not a service-level definition" in (
        capsys.readouterr().err)


def test_owed_and_true_abandonment_from_stored_rows(db: DB) -> None:
    """abandoned (5551003, never reached) + repeat_caller (5551010 abandoned, then answered)."""
    _store_capture(db, FIXTURES / "abandoned.ami", FIXTURES / "repeat_caller.ami")

    async def load() -> tuple[Any, Any]:
        store = Store(db.settings())
        await store.start()
        try:
            return await store.records(0, 4e9), await store.owed_calls(0, 4e9)
        finally:
            await store.close()

    records, owed = asyncio.run(load())
    assert sorted((o.caller, o.closed_by) for o in owed) == [("5551003", None), ("5551010", "inbound")]
    end = max(r.end_ts for r in records)
    early = history(records, 20.0, extras=Extras(owed=owed, as_of=end + 60))["queues"]["support"]
    assert (early["owed"], early["reached"], early["missed"], early["pending"]) == (2, 1, 0, 1)
    late = history(records, 20.0, extras=Extras(owed=owed, as_of=end + 5 * 3600))["queues"]["support"]
    assert (late["owed"], late["reached"], late["missed"], late["pending"]) == (2, 1, 1, 0)
    assert late["true_abandon_rate"] == 1 / 4  # 4 calls ended in support, 1 never reached within 4 h
    assert late["ttc_s"] is not None and late["ttc_s"] > 0
    # A shorter horizon than the callback took: the repeat caller's callback came too late.
    short = history(records, 20.0, extras=Extras(owed=owed, as_of=end + 5 * 3600, horizon_s=1.0))
    assert short["queues"]["support"]["missed"] == 2


def test_report_has_a_column_for_every_queue_exit(db: DB, capsys: pytest.CaptureFixture[str]) -> None:
    """queue_full (maxlen): the refused caller is counted under ``full`` in JSON, CSV and the table."""
    _store_capture(db, FIXTURES / "ast22" / "queue_full.ami")
    span = ["--from", "1796032290", "--to", "1796032320", "--db", db.url]
    q = _report(db, capsys, *span[:4])["queues"]["support"]
    assert (q["full"], q["join_unavail"], q["leave_unavail"], q["withdraw"]) == (1, 0, 0, 0)
    assert q["offered"] == q["entered"] == 1  # one definition of offered: the refused caller never entered
    capsys.readouterr()
    assert main(["report", *span, "--format", "table"], {}) == 0
    head, row = capsys.readouterr().out.splitlines()[3:5]
    cells = dict(zip(head.split(), row.split(), strict=True))
    assert (cells["full"], cells["junavail"], cells["lunavail"], cells["withdraw"]) == ("1", "0", "0", "0")
    assert main(["report", *span, "--format", "csv"], {}) == 0
    lines = capsys.readouterr().out.splitlines()
    csv_row = dict(zip(lines[0].split(","), next(x for x in lines if ",queue,support," in x).split(","), strict=True))
    assert csv_row["full"] == "1"
