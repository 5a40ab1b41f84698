"""Memory: RSS over a long replay, and the bytes each open call and each repeat-index caller costs.

    python bench/memory.py [--events 2000000]

* RSS: :mod:`bench.stream` repeated (ids renumbered, clock moving on) through the fast wire parser ->
  ``Ingest`` -> ``CallTracker``, records handed on and dropped as a daemon's store would: first a warm-up until
  the tracker's bounded closed-call history is full, then ``--events`` more events with RSS
  (``/proc/self/statm``) sampled after each repetition. Flat = every sample within +-10 % of their median.
* Bytes per open call: ``tracemalloc`` growth over 20 000 calls left waiting in a queue (Newchannel +
  Newexten Queue + QueueCallerJoin each, no hang-up), divided by their number.
* Bytes per caller: ``tracemalloc`` growth of a ``RepeatIndex`` over 100 000 distinct numbers.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.stream import Stream
from monitor.ami.selection import tracker_selection
from monitor.ami.wire import WireParser
from monitor.core.ingest import Ingest
from monitor.core.repeat import RepeatIndex
from monitor.core.tracker import CallTracker

_PAGE = os.sysconf("SC_PAGE_SIZE")


def rss_bytes() -> int:
    """Resident set size of this process now."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * _PAGE


def rss_run(events: int, max_warmup: int = 10**9) -> dict[str, float]:
    """Warm up until the tracker's bounded history is full, then replay ``events`` more; RSS samples and verdict.

    The tracker keeps bounded history of closed calls (10 000 Linkedids, 20 000 recent ids, 2 000 final calls to
    amend): with this stream (~300 calls per repetition) it fills only after ~2 M events, so RSS grows until
    then by design. Warm-up ends when the closed-call history stops growing; every sample after it counts.
    """
    stream = Stream()
    tracker = CallTracker()
    ingest = Ingest(tracker, [lambda notes: None])
    parser = WireParser(expect_banner=False, select=tracker_selection())
    samples: list[tuple[int, int]] = []
    warm_events = 0
    last_closed = -1
    t0 = time.perf_counter()
    for data in stream.reps(10**9):
        for i in range(0, len(data), 65536):
            for h in parser.feed(data[i:i + 65536]):
                ingest.feed(h, 0.0)
        del data
        seen = ingest.events + parser.dropped_events
        closed = len(tracker.state.closed)
        if not warm_events:
            if closed == last_closed or seen >= max_warmup:
                warm_events = seen
            last_closed = closed
            continue
        samples.append((seen, rss_bytes()))
        if seen - warm_events >= events:
            break
    seconds = time.perf_counter() - t0
    total = ingest.events + parser.dropped_events
    after = [rss for _, rss in samples] or [rss_bytes()]
    median = sorted(after)[len(after) // 2]
    spread = max(abs(r - median) for r in after) / median
    return {"events": total - warm_events, "warmup_events": warm_events, "seconds": seconds,
            "rss_median_mb": median / 1e6, "rss_first_mb": after[0] / 1e6, "rss_last_mb": after[-1] / 1e6,
            "rss_spread": spread, "samples": len(after), "open_calls_end": tracker.open_calls,
            "repeat_entries_end": len(tracker.repeats)}


def _call(i: int) -> list[dict[str, str | list[str]]]:
    uid, ts = f"1800000000.{i}", f"{1_800_000_000 + i * 0.01:.6f}"
    chan = {"Channel": f"PJSIP/trunk-{i:08x}", "Uniqueid": uid, "Linkedid": uid, "CallerIDNum": f"+1555{i:07d}",
            "CallerIDName": f"Caller {i}", "Context": "from-trunk", "Exten": "100", "Language": "en",
            "Timestamp": ts}
    return [{"Event": "Newchannel", **chan},
            {"Event": "Newexten", **chan, "Application": "Queue", "AppData": "support,t"},
            {"Event": "QueueCallerJoin", **chan, "Queue": "support", "Position": "1", "Count": "1"}]


def bytes_per_open_call(n: int = 20_000) -> float:
    """tracemalloc growth per call left open (waiting in a queue)."""
    tracker = CallTracker()
    ingest = Ingest(tracker)
    messages = [m for i in range(n) for m in _call(i)]
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    for m in messages:
        ingest.feed(m, 0.0)
    grown = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    assert tracker.open_calls == n, tracker.open_calls
    return grown / n


def bytes_per_caller(n: int = 100_000) -> float:
    """tracemalloc growth per distinct number in the repeat-caller index."""
    numbers = [(f"+1555{i:07d}", 1_800_000_000.0 + i * 0.1, f"1800000000.{i}") for i in range(n)]
    index = RepeatIndex(("24h",), max_entries=n * 2)
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    for number, ts, lid in numbers:
        index.check_and_add(number, ts, lid)
    grown = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    assert len(index) == n
    return grown / n


def measure(events: int, max_warmup: int = 10**9) -> dict[str, float]:
    """Every memory figure (``max_warmup``: end the warm-up after that many events even if the history grows)."""
    out = rss_run(events, max_warmup)
    out["bytes_per_open_call"] = bytes_per_open_call()
    out["bytes_per_caller"] = bytes_per_caller()
    return out


def main() -> None:
    """Print the figures as JSON (bench/run.py makes the table)."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--events", type=int, default=2_000_000)
    ap.add_argument("--max-warmup-events", type=int, default=10**9, help="cap the warm-up (smoke runs)")
    args = ap.parse_args()
    print(json.dumps(measure(args.events, args.max_warmup_events), indent=1))


if __name__ == "__main__":
    main()
