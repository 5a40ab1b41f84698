"""queue_log backfill and ``qmon report`` against the replay report, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from monitor.cli import main
from monitor.store import Store
from monitor.store.engine import make_engine
from monitor.store.models import Base, Call
from monitor.store.queue_log import parse_queue_log
from tests.support.store import DB, FIXTURES
from tests.test_store_engines import replay


def cmd_db(argv: list[str], env: dict[str, str]) -> int:
    return main(["db", *argv], env)


def cmd_replay(argv: list[str], env: dict[str, str]) -> int:
    return main(["replay", *argv], env)


def cmd_import(argv: list[str], env: dict[str, str]) -> int:
    return main(["import-queue-log", *argv], env)


def cmd_report(argv: list[str], env: dict[str, str]) -> int:
    return main(["report", *argv], env)


QL_KEYS = ("entered", "answered", "abandoned", "abandoned_short", "timeout", "exit_empty", "ring_no_answer",
           "completed_by_agent", "completed_by_caller", "transfers_blind", "transfers_attended", "repeat_calls")
QUEUE_LOGS = sorted(str(p) for p in FIXTURES.glob("*.queue_log"))
RANGE = ["--from", "1795380000", "--to", "1795390000"]


def _counts(report: dict[str, Any]) -> dict[str, dict[str, int]]:
    return {q: {k: b[k] for k in QL_KEYS} for q, b in report["queues"].items()}


def _store_ami(db: DB) -> None:
    async def go() -> None:
        store = Store(db.settings())
        await store.start()
        for r in replay().records:
            store.submit(r)
        assert await store.drain(10) is True
        await store.close()

    asyncio.run(go())


def _calls(db: DB) -> tuple[int, int]:
    async def go() -> tuple[int, int]:
        engine = make_engine(db.url)
        async with engine.connect() as conn:
            n = (await conn.execute(select(func.count()).select_from(Call))).scalar_one()
            ql = (await conn.execute(select(func.count()).where(Call.linkedid.like("ql:%")))).scalar_one()
        await engine.dispose()
        return int(n), int(ql)

    return asyncio.run(go())


def _report(db: DB, capsys: pytest.CaptureFixture[str], *extra: str) -> dict[str, Any]:
    capsys.readouterr()
    assert cmd_report([*RANGE, "--format", "json", "--db", db.url, *extra], {}) == 0
    out: dict[str, Any] = json.loads(capsys.readouterr().out)
    return out


def _replay_json(capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    capsys.readouterr()
    assert cmd_replay([*sorted(str(p) for p in FIXTURES.glob("*.ami")), "--report", "json"], {}) == 0
    out: dict[str, Any] = json.loads(capsys.readouterr().out)
    return out


def _migrate(db: DB) -> None:
    assert cmd_db(["upgrade", "--db", db.url], {}) == 0


def test_report_command_equals_replay_command(db: DB, capsys: pytest.CaptureFixture[str]) -> None:
    """``qmon report --format json`` over stored calls = ``qmon replay --report json`` of the same calls."""
    _store_ami(db)
    rep = _report(db, capsys)
    expected = _replay_json(capsys)
    assert rep["report"] == {**expected, "events": 0}
    sup = rep["queues"]["support"]
    assert (sup["offered"], sup["answered"], sup["abandoned"], sup["abandoned_short"], sup["timeout"],
            sup["join_empty"], sup["voicemail"], sup["transfers"], sup["repeat_calls"]) == (23, 16, 5, 3, 2, 1, 2, 3, 3)
    assert sup["offered"] == sup["entered"]  # offered = entered (the join_empty caller never entered)
    assert sup["service_level"] == expected["queues"]["support"]["service_level"] == 0.8
    assert sup["asa_s"] == expected["queues"]["support"]["wait_answered_s"]["mean"]
    assert sup["csat_satisfied_ratio"] == 0.7 and sup["csat_mean"] == 3.9 and sup["longest_wait_s"] == 9.0
    assert sup["repeat_rate"] == 3 / 24 and sup["fcr"] == 21 / 24  # 24 calls start in support
    assert rep["agents"]["agent3"]["answered"] == 2 and rep["agents"]["agent1"]["transfers"] == 3
    # One queue, one agent, by hour; the buckets add up to the total.
    hourly = _report(db, capsys, "--queue", "support", "--agent", "agent1", "--by", "hour")
    assert list(hourly["queues"]) == ["support"] and list(hourly["agents"]) == ["agent1"]
    assert sum(b["queues"]["support"]["entered"] for b in hourly["buckets"]) == 23
    assert [b["start"] for b in hourly["buckets"]] == ["2026-11-22T20:00", "2026-11-22T21:00"]
    assert cmd_report([*RANGE, "--format", "csv", "--by", "day", "--db", db.url], {}) == 0
    csv_lines = capsys.readouterr().out.splitlines()
    assert csv_lines[0].startswith("bucket,scope,name,offered,entered")
    assert any(line.startswith("2026-11-22,queue,support,23,23,16,5,3,2") for line in csv_lines)
    assert cmd_report([*RANGE, "--db", db.url], {}) == 0
    assert "support" in capsys.readouterr().out


def test_queue_log_import_matches_ami_and_is_idempotent(db: DB, capsys: pytest.CaptureFixture[str]) -> None:
    """The fixtures' queue_logs give the AMI counts (what queue_log can say); importing twice changes nothing."""
    _migrate(db)
    assert cmd_import([*QUEUE_LOGS, "--db", db.url], {}) == 0
    assert _calls(db) == (23, 23)  # voicemail_empty (join_empty) writes no queue_log line
    first = _report(db, capsys)
    assert _counts(first["report"]) == _counts(replay().report())
    assert cmd_import([*QUEUE_LOGS, "--db", db.url], {}) == 0
    assert "imported 0" in capsys.readouterr().out
    assert _calls(db) == (23, 23)
    assert _report(db, capsys) == first


def test_import_after_ami_adds_nothing_and_ami_replaces_import(db: DB, capsys: pytest.CaptureFixture[str]) -> None:
    """A call recorded from AMI is never imported again; an imported call is superseded by its AMI record."""
    _migrate(db)
    half = [p for p in QUEUE_LOGS if "concurrent" in p or "overflow" in p]
    assert cmd_import([*half, "--db", db.url], {}) == 0
    assert _calls(db) == (7, 7)
    _store_ami(db)
    assert _calls(db) == (24, 0)
    capsys.readouterr()
    assert cmd_import([*QUEUE_LOGS, "--db", db.url], {}) == 0
    out = capsys.readouterr().out
    assert out.count("imported 0,") == len(QUEUE_LOGS) and "already_stored 6" in out
    assert _calls(db) == (24, 0)
    assert _report(db, capsys)["report"] == {**replay().report(), "events": 0}


def test_queue_log_parser_details() -> None:
    """Outcomes, waits, transfers, ring-no-answers, member changes and bad lines from queue_log text."""
    text = (FIXTURES / "blind_transfer.queue_log").read_text() + (FIXTURES / "member_changes.queue_log").read_text()
    log = parse_queue_log([*text.splitlines(), "garbage", "1|2|3"], pbx="pbx1")
    assert log.bad_lines == 2
    bt, mc = log.records
    assert bt.linkedid == "ql:1795381079.1" and bt.pbx == "pbx1" and bt.caller == "5551008"
    assert [(s.queue, s.outcome, s.wait_s, s.agent, s.talk_s, s.completion) for s in bt.segments] == [
        ("support", "answered", 2.0, "agent1", 3.0, "transfer"), ("sales", "answered", 2.0, "agent3", 5.0, "agent")]
    assert [(t.type, t.queue, t.from_agent, t.to) for t in bt.transfers] == [
        ("blind", "support", "agent1", "sales@lab-entry")]
    assert [(x.agent, x.ring_ms) for x in mc.segments[0].ring_no_answers] == [("agent1", 4000)]
    assert [(m.note.member, m.note.change, m.note.reason) for m in log.members][-5:] == [
        ("agent1", "login", ""), ("agent1", "pause", "lunch"), ("agent2", "login", ""), ("agent1", "unpause", ""),
        ("agent1", "logout", "")]


def test_migrations_match_models_and_downgrade(tmp_path: Any) -> None:
    """The shipped migration creates exactly the models' schema; downgrade to base removes it."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from monitor.store.engine import downgrade_sync

    url = f"sqlite+aiosqlite:///{tmp_path / 'm.db'}"
    assert cmd_db(["upgrade", "--db", url], {}) == 0

    async def go() -> tuple[list[Any], list[str]]:
        engine = make_engine(url)
        async with engine.begin() as conn:
            diff = await conn.run_sync(lambda c: compare_metadata(MigrationContext.configure(c), Base.metadata))
            await conn.run_sync(downgrade_sync, "base")
            names = await conn.run_sync(lambda c: list(c.dialect.get_table_names(c)))
        await engine.dispose()
        return diff, names

    diff, names = asyncio.run(go())
    assert diff == [] and names == ["alembic_version"]


def test_cli_usage_errors(tmp_path: Any, capsys: pytest.CaptureFixture[str]) -> None:
    """Bad options exit 2 with a clear message."""
    url = f"sqlite:///{tmp_path / 'u.db'}"
    assert cmd_db(["prune", "--db", url], {}) == 2
    assert "--older-than" in capsys.readouterr().err
    assert cmd_db(["frobnicate"], {}) == 2
    assert cmd_report(["--from", "yesterday", "--db", url], {}) == 2
    assert "bad time" in capsys.readouterr().err
    assert cmd_report(["--from", "2026-01-02", "--to", "2026-01-01", "--db", url], {}) == 2
    assert cmd_report(["--tz", "Mars/Olympus", "--db", url], {}) == 2
    assert cmd_import([str(tmp_path / "missing.queue_log"), "--db", url], {}) == 2
    assert "no such file" in capsys.readouterr().err
    assert cmd_db(["prune", "--older-than", "30", "--db", url], {}) == 1  # no schema yet: clear error, exit 1
    assert cmd_db(["upgrade", "--db", url], {}) == 0
    assert cmd_db(["prune", "--older-than", "30", "--db", url], {"QMON_STORE_URL": "sqlite:///nope.db"}) == 0
    assert "pruned 0 call(s)" in capsys.readouterr().out


def test_store_commands_read_config_without_the_ami_secret(tmp_path: Path) -> None:
    """`qmon db current --config` needs the [store] section, not an AMI secret; bad keys still exit 2."""
    from monitor.cli import main

    good = tmp_path / "q.toml"
    good.write_text(f'[store]\nurl = "sqlite+aiosqlite:///{tmp_path / "q.db"}"\n')
    assert main(["db", "current", "--config", str(good)], {}) == 1  # a read never creates the database
    assert not (tmp_path / "q.db").exists()
    assert main(["db", "upgrade", "--config", str(good)], {}) == 0
    assert main(["db", "current", "--config", str(good)], {}) == 0
    bad = tmp_path / "bad.toml"
    bad.write_text("[store]\nbogus = 1\n")
    assert main(["db", "current", "--config", str(bad)], {}) == 2
