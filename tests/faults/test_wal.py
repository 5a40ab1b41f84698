"""The write-ahead journal under steady traffic: compacted (bounded) without a quiet moment, nothing lost."""

from __future__ import annotations

import asyncio
import os
from dataclasses import replace
from pathlib import Path

import pytest
from sqlalchemy import func, select

from monitor.settings import StoreSettings
from monitor.store import Store
from monitor.store.models import Call
from tests.faults.child_store import TEMPLATE
from tests.support.store import DB


async def test_steady_traffic_compacts_the_journal(db: DB) -> None:
    """Records every 2 ms, so the database never catches up with the file: it is still compacted past the
    threshold (kept small), never left behind as a .compact file, and every record is stored once."""
    store = Store(db.settings(flush_interval_s=0.05))
    store.journal.compact_bytes = 8192  # ~8 records (production: 1 MiB)
    await store.start()
    task = asyncio.create_task(store.run())
    biggest = 0
    for i in range(300):
        store.submit(replace(TEMPLATE, linkedid=f"w-{i}", call_id=f"w-{i}.1"))
        biggest = max(biggest, store.journal.size)
        await asyncio.sleep(0.002)
    assert await store.drain(10) is True
    await task
    assert store.engine is not None
    async with store.engine.connect() as conn:
        rows = (await conn.execute(select(func.count()).select_from(Call))).scalar_one()
        lids = (await conn.execute(select(func.count(func.distinct(Call.linkedid))))).scalar_one()
    await store.close()
    line = len(store.journal.path.read_bytes()) if store.journal.path.stat().st_size else 0
    print(f"\nsteady traffic ({db.engine}): 300 records, {store.journal.compactions} compactions, "
          f"largest journal {biggest} bytes")
    assert (rows, lids) == (300, 300) and store.stats["duplicates"] == 0
    assert store.journal.compactions >= 1
    assert biggest < 150 * 1000  # 300 records of ~1 kB each would be ~300 kB uncompacted
    assert line == 0 and not store.journal.path.with_name("journal.jsonl.compact").exists()


async def test_journal_disk_error_records_still_stored(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """The journal cannot be written (ENOSPC from /dev/full): records go on to the database from memory,
    the error is logged (without values) and counted, nothing is lost."""
    if not os.access("/dev/full", os.W_OK):
        pytest.skip("no writable /dev/full")
    store = Store(StoreSettings(url=f"sqlite+aiosqlite:///{tmp_path / 'q.db'}", journal_path="/dev/full",
                               flush_interval_s=0.02))
    await store.start()
    task = asyncio.create_task(store.run())
    for i in range(10):
        store.submit(replace(TEMPLATE, linkedid=f"d-{i}", call_id=f"d-{i}.1"))
    assert await store.drain(10) is True
    await task
    assert store.engine is not None
    async with store.engine.connect() as conn:
        rows = (await conn.execute(select(func.count()).select_from(Call))).scalar_one()
    await store.close()
    assert rows == 10 and store.stats["lost"] == 0 and store.stats["journal_write_errors"] >= 1
    errors = [r.getMessage() for r in caplog.records if "cannot append to the journal" in r.getMessage()]
    assert len(errors) == 1 and "OSError" in errors[0] and "+1555" not in errors[0]
