"""One AMI message in, notes out: normalisation + tracker + counters, shared by live and replay paths."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Mapping

from monitor.core.normalize import Skip, normalize
from monitor.core.records import CallClosed as _Closed
from monitor.core.records import CallRecord, Note
from monitor.core.tracker import CallTracker

log = logging.getLogger("qmon.ingest")

Sink = Callable[[list[Note]], None]


class Ingest:
    """Feeds messages to a tracker synchronously, counts events and skips, hands notes to sinks."""

    def __init__(self, tracker: CallTracker, sinks: list[Sink] | None = None, pbx: str = "default") -> None:
        self.tracker = tracker
        self.sinks: list[Sink] = list(sinks or [])
        self.pbx = pbx
        self.events = 0
        self.skipped: Counter[str] = Counter()
        self.last_event_at: float | None = None

    def feed(self, headers: Mapping[str, str | list[str]], now: float) -> list[Note]:
        """Process one message; every Event (tracked or not) counts in ``events``."""
        if "Event" not in headers:
            return []
        self.events += 1
        self.last_event_at = now
        try:
            event = normalize(headers)
        except Exception:  # a normaliser bug must never stop the read loop
            log.exception("cannot normalise %s", headers.get("Event"))
            self.skip("normalise_error")
            return []
        if event is None:
            return []
        if isinstance(event, Skip):
            self.skip(event.reason)
            return []
        try:
            notes = self.tracker.feed(event, now)
        except Exception:
            log.exception("tracker failed on %s", type(event).__name__)
            self.skip("tracker_error")
            return []
        self.emit(notes)
        return notes

    def skip(self, reason: str) -> None:
        """Count (and log once per reason) a message we could not use."""
        if reason not in self.skipped:
            log.warning("skipping AMI message: %s (logged once; counted in qmon_ami_skipped_events_total)", reason)
        self.skipped[reason] += 1

    def emit(self, notes: list[Note]) -> None:
        """Hand notes to every sink; a failing sink is logged, never allowed to break ingestion."""
        if not notes:
            return
        for sink in self.sinks:
            try:
                sink(notes)
            except Exception:
                log.exception("note sink failed")


def closed_records(notes: list[Note]) -> list[CallRecord]:
    """The call records among notes."""
    return [n.record for n in notes if isinstance(n, _Closed)]
