"""CPU of one /metrics scrape in-process: 200 queues x 50 members, every member's time moved between scrapes.

    python bench/render.py [--queues 200] [--members 50] [--scrapes 30] [--events 1000] [--profile FILE]

The members are loaded as ``bench.load`` loads them (``QueueMemberAdded`` through the live wire parser into
``Ingest`` and the tracker, the metrics sink attached; each at its own time, so no two members' durations are
equal), then, before each scrape, ``--events`` messages of the bench stream are fed (as the 1 000 events/s of
``bench/load.py scrape``: members join, calls come and go), the daemon clock moves 1 s and the tracker ticks. Like
the daemon: ``disable_created_metrics()`` and ``gc.freeze()`` after set-up. Prints JSON: CPU milliseconds
(``time.process_time``) per scrape of the snapshot, of the render and of the whole ``expose_parts`` (min, median),
the same for the scrapes after members joined (the stream's own members join in its first minutes), the first
scrape's (it makes the caches), and the body's size. No sockets: what the event loop spends on a scrape.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from prometheus_client import disable_created_metrics

from bench.load import member_events
from bench.stream import Stream, captures
from monitor.ami.selection import DAEMON_EVENTS, tracker_selection
from monitor.ami.wire import WireParser
from monitor.core.ingest import Ingest
from monitor.core.tracker import CallTracker
from monitor.web.metrics import QmonMetrics


class _Clock:
    def __init__(self, t: float) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def _feed(parser: WireParser, ing: Ingest, data: bytes, now: float) -> None:
    for msg in parser.feed(data):
        ing.feed(msg, now)


def setup(queues: int, members: int) -> tuple[QmonMetrics, Ingest, WireParser, _Clock, list[bytes]]:
    """The daemon's state after the members were loaded and the first scrape made their series."""
    disable_created_metrics()  # type: ignore[no-untyped-call]
    clock = _Clock(1_790_000_000.0)
    ing = Ingest(CallTracker())
    metrics = QmonMetrics(clock=clock, queues=[f"q{q}" for q in range(queues)])
    metrics.add_pbx("default", ing)
    ing.sinks.append(metrics.sink("default"))
    parser = WireParser(expect_banner=False, select=tracker_selection(extra=DAEMON_EVENTS))
    for i, event in enumerate(member_events(queues, members)):  # one by one, each at its own time, as the daemon
        _feed(parser, ing, event, clock() + i * 1.7e-4)       # takes the clock per message: distinct durations
    stream = Stream(captures())
    msgs = stream.messages(4)
    return metrics, ing, parser, clock, msgs


async def run(args: argparse.Namespace) -> dict[str, Any]:
    """Scrape ``args.scrapes`` times; CPU per scrape."""
    metrics, ing, parser, clock, msgs = setup(args.queues, args.members)
    t = time.process_time()
    await metrics.expose_parts()  # builds the caches (the bench's unmeasured first scrape)
    first = time.process_time() - t
    gc.freeze()
    snap_s: list[float] = []
    render_s: list[float] = []
    whole_s: list[float] = []
    size = 0
    pos = 0
    prof = cProfile.Profile() if args.profile else None

    def step() -> None:
        nonlocal pos
        clock.t += 1.0
        chunk = msgs[pos:pos + args.events]
        pos += args.events
        if pos >= len(msgs):
            pos = 0
        _feed(parser, ing, b"".join(chunk), clock.t)
        ing.tick(clock.t)

    joined_s: list[float] = []
    members = len(ing.tracker.agents.accs)
    for i in range(args.scrapes):
        step()
        joined = len(ing.tracker.agents.accs) != members  # members joined since the last scrape: rows listed again
        members = len(ing.tracker.agents.accs)
        if joined or i % 2 == 0:  # the whole scrape as the handler runs it
            t = time.process_time()
            if prof:
                prof.enable()
            parts = await metrics.expose_parts()
            if prof:
                prof.disable()
            (joined_s if joined else whole_s).append(time.process_time() - t)
            size = sum(map(len, parts))
            del parts
        else:  # its two halves
            gc.disable()
            t = time.process_time()
            snap = metrics.snapshot()
            t2 = time.process_time()
            body = metrics.render(snap)
            t3 = time.process_time()
            gc.enable()
            snap_s.append(t2 - t)
            render_s.append(t3 - t2)
            size = len(body)
    if prof:
        prof.dump_stats(args.profile)

    def ms(xs: list[float]) -> dict[str, float]:
        return {"min": round(min(xs) * 1000, 1), "median": round(statistics.median(xs) * 1000, 1)}

    return {"scrapes": args.scrapes, "bytes": size, "expose_parts_ms": ms(whole_s), "snapshot_ms": ms(snap_s),
            "render_ms": ms(render_s), "members_joined": {"scrapes": len(joined_s), **ms(joined_s or [0.0])},
            "first_ms": round(first * 1000, 1)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--queues", type=int, default=200)
    ap.add_argument("--members", type=int, default=50)
    ap.add_argument("--scrapes", type=int, default=30)
    ap.add_argument("--events", type=int, default=1000, help="stream messages fed between scrapes")
    ap.add_argument("--profile", default="", help="cProfile of the whole scrapes into this file")
    print(json.dumps(asyncio.run(run(ap.parse_args()))))


if __name__ == "__main__":
    main()
