"""A database that goes silent (a proxy that accepts and forwards nothing) is an outage within seconds:
logged once, ``db_up`` 0, records kept in the journal, replayed once when it answers again (issue 14, item 6)."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import replace

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import create_async_engine

from monitor.settings import StoreSettings
from monitor.store import Store
from monitor.store.models import Call
from tests.faults.child_store import TEMPLATE
from tests.faults.proxy import blackhole
from tests.support import store as store_fixtures
from tests.support.helpers import until_async
from tests.support.store import PG_HOST, PG_PORT, PG_USER, TABLES


async def test_blackholed_postgresql_is_an_outage_within_seconds(pg_database: str, tmp_path: object,
                                                                   caplog: pytest.LogCaptureFixture) -> None:
    """Silent for ~4 s: outage declared in < 5 s (connect timeout 1 s), one log line, nothing lost or doubled."""
    await asyncio.to_thread(store_fixtures.pg, f"TRUNCATE {TABLES} RESTART IDENTITY CASCADE", pg_database)
    direct = create_async_engine(f"postgresql+asyncpg://{PG_USER}@{PG_HOST}:{PG_PORT}/{pg_database}")

    async def count() -> tuple[int, int]:
        async with direct.connect() as conn:
            rows = (await conn.execute(select(func.count()).select_from(Call))).scalar_one()
            lids = (await conn.execute(select(func.count(func.distinct(Call.linkedid))))).scalar_one()
        return int(rows), int(lids)

    caplog.set_level(logging.INFO, logger="qmon.store")
    async with blackhole() as bh:
        store = Store(StoreSettings(url=f"postgresql+asyncpg://{PG_USER}@{PG_HOST}:{bh.port}/{pg_database}",
                                    journal_path=str(tmp_path) + "/journal.jsonl", flush_interval_s=0.05,
                                    connect_timeout_s=1.0, retry_max_s=0.5))
        await store.start()
        task = asyncio.create_task(store.run())
        records = [replace(TEMPLATE, linkedid=f"bh-{i}", call_id=f"bh-{i}.1") for i in range(40)]
        for r in records[:20]:
            store.submit(r)

        async def first_stored() -> bool:
            return (await count())[0] == 20 and not store.journal.pending

        await until_async(first_stored, 10)
        bh.silence()
        for r in records[20:]:
            store.submit(r)
            await asyncio.sleep(0.02)

        async def down() -> bool:
            return store.stats["db_up"] is False

        detected = await until_async(down, 5.0) + 0.4  # counted from the first record submitted into the silence
        assert store.journal.lines == 20  # all of them kept in the journal file
        ok, why = await store.writable()
        assert not ok and "DatabaseSilent" in why

        async def retried() -> bool:
            return store.stats["retries"] >= 2  # it keeps trying (and failing) while silent

        await until_async(retried, 10)
        bh.restore()

        async def all_stored() -> bool:
            return (await count())[0] >= 40 and store.journal.size == 0

        recovered = await until_async(all_stored, 10)
        assert await store.drain(5) is True
        await task
        await store.close()
    rows, lids = await count()
    await direct.dispose()
    outages = [r for r in caplog.records if r.name == "qmon.store" and "unavailable" in r.getMessage()]
    print(f"\nblackhole: sent 40, stored {rows} ({lids} distinct), detected {detected:.1f} s after silence, "
          f"stored again {recovered:.1f} s after restore, replayed {store.stats['journal_replayed']}, "
          f"retries {store.stats['retries']}, outage log lines {len(outages)}")
    assert (rows, lids) == (40, 40)
    assert store.stats["journal_replayed"] == 20 and store.stats["duplicates"] == 0  # replayed once
    assert len(outages) == 1 and "DatabaseSilent" in outages[0].getMessage()
    assert store.stats["lost"] == 0
