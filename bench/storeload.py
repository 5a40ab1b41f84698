"""The store writer under load: call records submitted at a paced rate with the writer's queue depth sampled,
then a burst for its capacity; and :func:`fresh_store`, the brand-new database this and
``bench/storeitems.py`` measure on.

    python bench/load.py store [--rate 2000] [--seconds 10] [--engine sqlite|postgresql]
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path
from typing import Any


async def _written(store: Any, n: int, limit_s: float) -> None:
    """Poll (the writer has no event for it) until ``n`` call records are in the database, or ``limit_s`` passed."""
    deadline = time.monotonic() + limit_s
    while store.stats["calls_written"] < n and time.monotonic() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(0.005)


async def fresh_store(engine: str, tmp: Path, database: str, **settings: Any) -> Any:
    """A Store (not started) on a brand-new database: PostgreSQL ``database`` made again, or SQLite in ``tmp``;
    journal in ``tmp``, flushed every 0.1 s unless ``settings`` say otherwise."""
    from monitor.settings import StoreSettings
    from monitor.store import Store

    if engine == "postgresql":
        from tests.support.store import pg

        await asyncio.to_thread(pg, f"DROP DATABASE IF EXISTS {database}")
        await asyncio.to_thread(pg, f"CREATE DATABASE {database}")
        url = f"postgresql+asyncpg://postgres@127.0.0.1:5432/{database}"
    else:
        url = f"sqlite+aiosqlite:///{tmp / 'bench.db'}"
    return Store(StoreSettings(**{"url": url, "journal_path": str(tmp / "journal.jsonl"), "auto_migrate": True,
                                  "flush_interval_s": 0.1, **settings}))


async def run_store(args: argparse.Namespace, tick_s: float = 0.01) -> dict[str, Any]:
    """Submit call records at ``args.rate``/s for ``args.seconds``; the writer's queue depth sampled meanwhile."""
    from tests.support.calls import answered

    with tempfile.TemporaryDirectory() as tmp:
        store = await fresh_store(args.engine, Path(tmp), "qmon_bench", batch_size=args.batch_size)
        await store.start()
        writer = asyncio.create_task(store.run())
        n = int(args.rate * args.seconds)
        depth: list[int] = []
        t0 = time.monotonic()
        per_tick = args.rate * tick_s
        i, k = 0, 0
        while i < n:
            k += 1
            j = min(n, int(k * per_tick))
            for x in range(i, j):
                store.submit(answered(f"B{x}", caller=f"555{x % 10000:04d}", end_ts=1_700_000_100.0 + x))
            i = j
            if k % 10 == 0:
                depth.append(store.stats["queue_depth"] + store.journal.pending)
            await asyncio.sleep(max(0.0, t0 + k * tick_s - time.monotonic()))
        submitted_s = time.monotonic() - t0
        await _written(store, n, 60)
        total_s = time.monotonic() - t0
        paced_written = store.stats["calls_written"]
        # Capacity: a burst of records submitted at once, written at the writer's own pace (the headroom above
        # the offered rate; the paced run above can only show what was offered).
        burst = int(args.rate * min(args.seconds, 5.0))
        tb = time.monotonic()
        for x in range(n, n + burst):
            store.submit(answered(f"B{x}", caller=f"555{x % 10000:04d}", end_ts=1_700_000_100.0 + x))
        await _written(store, n + burst, 60)
        burst_s = time.monotonic() - tb
        burst_written = store.stats["calls_written"] - paced_written
        await store.drain(60)
        writer.cancel()
        stats = store.stats
        await store.close()
        if args.engine == "postgresql":
            from tests.support.store import pg

            await asyncio.to_thread(pg, "DROP DATABASE IF EXISTS qmon_bench")
    q = max(1, len(depth) // 4)
    return {"engine": args.engine, "batch_size": args.batch_size, "records": n, "written": paced_written,
            "lost": stats["lost"], "submit_s": submitted_s, "total_s": total_s,
            "rate": paced_written / total_s, "burst": burst, "burst_written": burst_written,
            "capacity_rate": burst_written / burst_s if burst_s else 0.0, "all_written": stats["calls_written"],
            "depth_first_quarter_max": max(depth[:q], default=0), "depth_last_quarter_max": max(depth[-q:], default=0),
            "depth_max": max(depth, default=0)}
