"""One AMI message in, notes out: normalisation + tracker + counters, shared by live and replay paths."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Mapping

from monitor.core.normalize import Skip, UnsupportedAsterisk, normalize
from monitor.core.records import CallAmended, CallRecord, Note
from monitor.core.records import CallClosed as _Closed
from monitor.core.tracker import CallTracker
from monitor.core.vocab import SkipReason

log = logging.getLogger("qmon.ingest")

Sink = Callable[[list[Note]], None]
#: Why a stream of Asterisk 11 or older is refused (its numbers would be half right, silently).
UNSUPPORTED_MESSAGE = ("qmon supports the AMI 2 event set of Asterisk 13 and later; this PBX sends the old "
                       "(Asterisk 11 or older) event names, so its queue numbers cannot be counted")


class Ingest:
    """Feeds messages to a tracker synchronously, counts events and skips, hands notes to sinks."""

    def __init__(self, tracker: CallTracker, sinks: list[Sink] | None = None, pbx: str = "default") -> None:
        self.tracker = tracker
        self.sinks: list[Sink] = list(sinks or [])
        self.pbx = pbx
        self.events = 0
        self.skipped: Counter[str] = Counter()
        self.last_event_at: float | None = None
        self.unsupported: str | None = None  # the first AMI 1.x event name seen (Asterisk 11 or older), if any

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
            self.skip(SkipReason.NORMALISE_ERROR)
            return []
        if event is None:
            return []
        if isinstance(event, Skip):
            if isinstance(event, UnsupportedAsterisk) and self.unsupported is None:
                self.unsupported = event.reason.partition(":")[2]
                log.error("AMI %s: event %r is from Asterisk 11 or older: %s", self.pbx, self.unsupported,
                          UNSUPPORTED_MESSAGE)
            self.skip(event.reason)
            return []
        try:
            notes = self.tracker.feed(event, now)
        except Exception:
            log.exception("tracker failed on %s", type(event).__name__)
            self.skip(SkipReason.TRACKER_ERROR)
            return []
        finally:
            if self.tracker.state.skips:  # illegal segment transitions: counted, the event ignored for that segment
                for reason, n in self.tracker.take_skips().items():
                    self.skip(reason, n)
        self.emit(notes)
        return notes

    def tick(self, now: float) -> list[Note]:
        """Let time pass (``now``: the daemon's clock, epoch s): calls past their grace period become final.

        The daemon calls this periodically (every second or so); the notes go to the sinks like any other.
        """
        try:
            notes = self.tracker.tick(now)
        except Exception:
            log.exception("tracker tick failed")
            self.skip(SkipReason.TRACKER_ERROR)
            return []
        self.emit(notes)
        return notes

    def skip(self, reason: str, n: int = 1) -> None:
        """Count ``n`` (and log once per reason) messages we could not use; ``reason`` is a bounded label."""
        reason = str(reason)  # a SkipReason member counts under its plain string
        if reason not in self.skipped:
            log.warning("skipping AMI message: %s (logged once; counted in qmon_ami_skipped_events_total)", reason)
        self.skipped[reason] += n

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
    """The call records among notes (final ones, and amended ones: see :func:`merge_records`)."""
    return [n.record for n in notes if isinstance(n, (_Closed, CallAmended))]


def merge_records(records: list[CallRecord], new: list[CallRecord]) -> None:
    """Append ``new`` to ``records``; an amended record replaces the one of the same call (upsert by call id)."""
    for r in new:
        if r.extra.get("amended"):
            for i in range(len(records) - 1, -1, -1):
                if records[i].linkedid == r.linkedid and records[i].pbx == r.pbx:
                    records[i] = r
                    break
            else:
                records.append(r)
        else:
            records.append(r)
