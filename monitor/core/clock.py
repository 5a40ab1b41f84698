"""Clock helpers: PBX time from the last event's ``Timestamp`` plus the daemon-clock time elapsed since.

Waits are measured on the PBX's clock (event ``Timestamp`` headers are Asterisk's), never by comparing the
daemon's wall clock with event time: the two may be skewed by seconds or hours.
"""

from __future__ import annotations

from typing import Protocol


class _TrackerClock(Protocol):
    @property
    def now(self) -> float:
        """The latest event time seen (PBX clock, epoch s; 0.0 before the first event)."""
        ...


class _IngestClock(Protocol):
    @property
    def last_event_at(self) -> float | None:
        """Daemon-clock time (epoch s) at which the last event arrived; None before the first."""
        ...


def pbx_now(now: float, last_event_at: float | None, last_event_pbx_ts: float) -> float:
    """``now`` (daemon clock, epoch s) on the PBX clock: the last event's PBX time + daemon time elapsed since.

    Without an event yet (``last_event_at`` None or ``last_event_pbx_ts`` 0.0) the daemon clock is all we have.
    """
    if last_event_at is not None and last_event_pbx_ts:
        return now - (last_event_at - last_event_pbx_ts)
    return now


def pbx_clock(tracker: _TrackerClock, ingest: _IngestClock, now: float) -> float:
    """``now`` on the PBX's clock for one AMI connection (its tracker and ingest); seconds since the epoch."""
    return pbx_now(now, ingest.last_event_at, tracker.now)
