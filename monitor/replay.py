"""``qmon replay``: recorded streams through the same tracker as live, then the report."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from monitor.ami.files import read_capture
from monitor.ami.selection import tracker_selection
from monitor.core.ingest import UNSUPPORTED_MESSAGE, Ingest, closed_records, merge_records
from monitor.core.preread import PreRead
from monitor.core.records import CallRecord
from monitor.core.report import build_report
from monitor.core.tracker import CallTracker, TrackerConfig


class UnsupportedStream(ValueError):
    """The capture is from Asterisk 11 or older (AMI 1.x event names): refused rather than half counted."""


@dataclass
class ReplayResult:
    """Records and counters of one replay."""

    records: list[CallRecord] = field(default_factory=list)
    events: int = 0
    skipped: dict[str, int] = field(default_factory=dict)
    queues: set[str] = field(default_factory=set)

    def report(self, sl_threshold_s: float = 20.0) -> dict[str, Any]:
        """The JSON report."""
        return build_report(self.records, self.events, sl_threshold_s, self.queues)


def replay_messages(
    messages: Iterable[tuple[Mapping[str, Any] | PreRead, float | None]], config: TrackerConfig | None = None,
    tracker: CallTracker | None = None,
) -> ReplayResult:
    """Run messages through a tracker; open calls at the end are closed as ``unknown`` (eof)."""
    tr = tracker or CallTracker(config)
    ing = Ingest(tr)
    res = ReplayResult()
    now = 0.0
    for headers, recv in messages:
        if isinstance(headers, PreRead):  # fast path: a Newexten with a Timestamp float() reads (recv is None)
            now = headers.timestamp
        elif recv is not None:
            now = recv
        elif isinstance(ts := headers.get("Timestamp"), str):
            try:
                now = float(ts)
            except ValueError:
                pass
        notes = ing.feed(headers, now)
        if notes:
            merge_records(res.records, closed_records(notes))
    if ing.unsupported is not None:
        raise UnsupportedStream(f"event {ing.unsupported!r} is from Asterisk 11 or older: {UNSUPPORTED_MESSAGE}")
    merge_records(res.records, closed_records(tr.close_all(tr.now or now, "eof")))
    res.events = ing.events
    res.skipped = dict(ing.skipped)
    res.queues = set(tr.queues)
    return res


def replay_files(paths: Iterable[Path], config: TrackerConfig | None = None, fast: bool = True) -> ReplayResult:
    """Replay capture files one after another through one tracker (repeat callers span files).

    ``fast``: ``.ami`` events the tracker has no use for are counted but never parsed (same records and report
    as ``fast=False``, which parses every message; tests/test_wire_fast.py holds them equal).
    """
    tr = CallTracker(config)
    total = ReplayResult()
    select = tracker_selection(extra=(), gap_clock=True, defer=True) if fast else None
    for p in paths:
        stats: dict[str, int] = {}
        r = replay_messages(read_capture(p, stats, select), tracker=tr)
        merge_records(total.records, r.records)  # a late event in the next file may amend a record
        total.events += r.events + stats.get("dropped_events", 0)
        for k, v in r.skipped.items():
            total.skipped[k] = total.skipped.get(k, 0) + v
        total.queues |= r.queues
    return total
