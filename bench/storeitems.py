"""CPU per stored item: the items the daemon's store sink submits for the bench stream, journaled and written.

    python bench/storeitems.py [--engine sqlite|postgresql] [--repeat 4] [--rounds 7] [--chunks 6]

The stream (:mod:`bench.stream`, ``--repeat`` repetitions) goes through the wire parser and the tracker with
the daemon's own store sink in front of a store that only collects (4 repetitions: 580 items, 287 call
records, 198 member changes, 95 owed-call changes). Each round then starts a fresh store (new database,
journal, engine: statements compiled again, as in a daemon) with its writer task, submits the items in
``--chunks`` groups 0.1 s apart (the daemon stage writes them in 4 to 6 batches) and waits until every one is
in the database. Measured: CPU of the whole process (loop thread, journal writer and fsync threads, aiosqlite's
thread) from the first submit until the last item is written; start-up and the database's creation are not
counted. Prints one JSON object: min and median over the rounds, and µs per item.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.stream import Stream, captures


def stream_items(repeat: int) -> list[Any]:
    """What ``monitor.daemon``'s store sink submits for the stream (one ``Store.submit*`` call per item)."""
    from monitor.ami.selection import tracker_selection
    from monitor.ami.wire import WireParser
    from monitor.core.ingest import Ingest
    from monitor.core.tracker import CallTracker
    from monitor.daemon import _store_sink

    calls: list[tuple[str, tuple[Any, ...]]] = []

    class Recorder:
        def __getattr__(self, name: str) -> Any:
            return lambda *args: calls.append((name, args))

    ingest = Ingest(CallTracker(), [_store_sink(Recorder(), "default")])  # type: ignore[arg-type]
    parser = WireParser(select=tracker_selection(defer=True))
    data = b"".join(Stream(captures()).reps(repeat))
    for i in range(0, len(data), 65536):
        for h in parser.feed(data[i:i + 65536]):
            ingest.feed(h, 0.0)
    return calls


async def one_round(items: list[Any], engine: str, chunks: int) -> float:
    """CPU seconds of the process to journal and store ``items`` in a fresh store."""
    from bench.storeload import fresh_store

    with tempfile.TemporaryDirectory() as tmp:
        store = await fresh_store(engine, Path(tmp), "qmon_bench_items")  # flushed every 0.1 s: CPU per item
        await store.start()
        writer = asyncio.create_task(store.run())
        await asyncio.sleep(0.2)

        t0 = time.process_time()
        per = -(-len(items) // chunks)
        for i in range(0, len(items), per):
            for name, args in items[i:i + per]:
                getattr(store, name)(*args)
            await asyncio.sleep(0.1)
        # Done when every item is journaled and the database holds all the journal has (owed changes of one
        # call in one batch are one row: the rows are no count of the items).
        deadline = time.monotonic() + 60

        def busy() -> bool:
            return bool(store.stats["journaled"] < len(items) or store.journal.pending)

        while busy() and time.monotonic() < deadline:  # noqa: ASYNC110 (the writer has no event for it)
            await asyncio.sleep(0.005)
        if busy():
            raise RuntimeError("the store did not write every item within 60 s")
        cpu = time.process_time() - t0
        await store.drain(10)
        writer.cancel()
        await store.close()
        if engine == "postgresql":
            from tests.support.store import pg

            await asyncio.to_thread(pg, "DROP DATABASE IF EXISTS qmon_bench_items")
    return cpu


async def run(args: argparse.Namespace) -> dict[str, Any]:
    """Every round; the figures of the whole set."""
    items = stream_items(args.repeat)
    cpus = [await one_round(items, args.engine, args.chunks) for _ in range(args.rounds)]
    return {"engine": args.engine, "items": len(items), "rounds": args.rounds,
            "cpu_ms_min": round(min(cpus) * 1e3, 1), "cpu_ms_median": round(statistics.median(cpus) * 1e3, 1),
            "us_per_item_median": round(statistics.median(cpus) / len(items) * 1e6, 1)}


def main() -> None:
    """Parse options, print the JSON."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--engine", choices=("sqlite", "postgresql"), default="sqlite")
    ap.add_argument("--repeat", type=int, default=4)
    ap.add_argument("--rounds", type=int, default=7)
    ap.add_argument("--chunks", type=int, default=6)
    print(json.dumps(asyncio.run(run(ap.parse_args()))))


if __name__ == "__main__":
    main()
