"""A bad field never costs a record, and row values never reach the log (issue 14, item 4)."""

from __future__ import annotations

import asyncio
import json
import logging
import stat
from dataclasses import replace

import pytest
from sqlalchemy import select

from monitor.core.text import clean_text
from monitor.store import Store
from monitor.store.models import Call, TransferRow
from tests.faults.child_store import TEMPLATE
from tests.support.store import DB

SECRETS = ("+15550111", "5550111", "Alice", "+15550999", "5550999", "Bob Secret")


def test_clean_text_drops_controls_keeps_text() -> None:
    """NUL and other C0/C1 controls go, whitespace controls become spaces, lone surrogates U+FFFD."""
    assert clean_text("Ali\x00ce") == "Alice"
    assert clean_text("a\tb\nc\rd") == "a b c d"
    assert clean_text("\x1b[31mred\x7f\x85") == "[31mred"
    assert clean_text("caf\udce9") == "caf\ufffd"
    s = "Zoë Ünal 李 +49 (0) 30-123"
    assert clean_text(s) is s


async def _all_log_text(caplog: pytest.LogCaptureFixture) -> str:
    parts = []
    for r in caplog.records:
        parts.append(r.getMessage())
        if r.exc_info:
            parts.append(logging.Formatter().formatException(r.exc_info))
    return "\n".join(parts)


async def test_nul_in_caller_name_and_refused_row(db: DB, caplog: pytest.LogCaptureFixture) -> None:
    """A NUL in a caller name is cleaned at the edge (stored, not rejected); a row PostgreSQL refuses is retried
    alone and stored with its free text blanked (counted ``rejected``); no number or name in any log line."""
    caplog.set_level(logging.DEBUG)
    nul = replace(TEMPLATE, linkedid="nul", call_id="nul.1", caller="+15550111", caller_name="Ali\x00ce\x1b",
                  extra={"note": "x\x00y"},
                  transfers=(replace(TEMPLATE.transfers[0], to="PJSIP/2\x0000"),))
    huge = replace(TEMPLATE, linkedid="huge", call_id="huge.1", caller="+15550999", caller_name="Bob Secret",
                   segments=(replace(TEMPLATE.segments[0], position=2**40),))
    ok = [replace(TEMPLATE, linkedid=f"ok-{i}", call_id=f"ok-{i}.1") for i in range(3)]
    store = Store(db.settings())
    await store.start()
    task = asyncio.create_task(store.run())
    for r in [ok[0], nul, huge, ok[1], ok[2]]:
        store.submit(r)
    assert await store.drain(10) is True
    await task
    assert store.engine is not None
    async with store.engine.connect() as conn:
        calls = {r.linkedid: r for r in (await conn.execute(select(Call))).all()}
        target = (await conn.execute(select(TransferRow.target).join(Call).where(Call.linkedid == "nul"))).scalar()
    await store.close()
    assert set(calls) == {"ok-0", "ok-1", "ok-2", "nul", "huge"}  # nothing lost
    assert calls["nul"].caller_name == "Alice" and target == "PJSIP/200"
    assert json.loads(calls["nul"].extra) == {"note": "xy"}
    rejected = store.journal.path.with_name(store.journal.path.name + ".rejected")
    if db.engine == "postgresql":  # SQLite keeps 2**40 in an INTEGER column
        assert store.stats["rejected"] == 1 and store.stats["lost"] == 0
        assert calls["huge"].caller_name == "" and calls["huge"].caller == "+15550999"
        (orig,) = [json.loads(x) for x in rejected.read_text().splitlines()]
        assert orig["r"]["caller_name"] == "Bob Secret"  # the original, for a human
        assert stat.S_IMODE(rejected.stat().st_mode) == 0o600
        assert any("refused a record" in r.getMessage() for r in caplog.records)
    else:
        assert store.stats["rejected"] == 0 and not rejected.exists()
    text = await _all_log_text(caplog)
    leaked = [s for s in SECRETS if s in text]
    assert not leaked, f"row values in the log: {leaked}"


# PostgreSQL only: SQLite stores a string in a REAL column, so there is nothing it would refuse.
@pytest.mark.parametrize("db", ["postgresql"], indirect=True)
async def test_row_refused_even_blanked_is_counted_lost_and_kept(db: DB, caplog: pytest.LogCaptureFixture) -> None:
    """A journal entry no column can take (a start time that is not a number) is counted ``lost``, kept in
    ``.rejected``, logged without its values; the entries around it are stored."""
    caplog.set_level(logging.DEBUG)
    journal = db.tmp / "journal.jsonl"
    good = [replace(TEMPLATE, linkedid=f"g-{i}", call_id=f"g-{i}.1").to_dict() for i in range(2)]
    bad = {**good[0], "linkedid": "bad", "start_ts": "+15550999", "caller_name": "Bob Secret"}
    journal.write_text("".join(json.dumps({"v": 1, "k": "call", "r": r}) + "\n" for r in (good[0], bad, good[1])))
    store = Store(db.settings(journal_path=str(journal)))
    await store.start()
    task = asyncio.create_task(store.run())
    assert await store.drain(10) is True
    await task
    assert store.engine is not None
    async with store.engine.connect() as conn:
        stored = set((await conn.execute(select(Call.linkedid))).scalars())
    await store.close()
    assert stored == {"g-0", "g-1"}
    assert store.stats["lost"] == 1 and store.stats["rejected"] == 0 and store.stats["journal_replayed"] == 3
    rejected = journal.with_name(journal.name + ".rejected")
    assert json.loads(rejected.read_text())["r"]["linkedid"] == "bad"
    text = await _all_log_text(caplog)
    assert "LOST" in text and not [s for s in SECRETS if s in text]
