"""Clock helpers: "now" on the PBX's clock for one AMI connection.

Waits are measured on the PBX's clock (event ``Timestamp`` headers are Asterisk's), never by comparing the
daemon's wall clock with event time: the two may be skewed by seconds or hours. The tracker keeps the offset
between the two clocks from the last sane Timestamp (``CallTracker.pbx_time``); this is its one definition.
"""

from __future__ import annotations

from typing import Protocol


class _TrackerClock(Protocol):
    def pbx_time(self, now: float) -> float:
        """``now`` (daemon clock, epoch s) on the PBX clock (epoch s)."""
        ...


def pbx_clock(tracker: _TrackerClock, now: float) -> float:
    """``now`` (daemon clock, epoch s) on the PBX's clock of one AMI connection (its tracker); epoch s."""
    return tracker.pbx_time(now)
