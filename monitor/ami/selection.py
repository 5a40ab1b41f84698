"""What the call tracker reads from AMI, derived from the normaliser's own tables (never a hand list).

Used by the wire parser's fast path (:class:`monitor.ami.wire.Selection`) and by the ``manager.conf``
``eventfilter`` generator (:mod:`monitor.ami.eventfilter`).
"""

from __future__ import annotations

from collections.abc import Iterable

from monitor.ami.wire import Selection
from monitor.core.normalize import TRACKED_VARIABLES, tracked_events

#: Events qmon uses outside the tracker: survey callbacks wait for the answer to their Originate.
DAEMON_EVENTS = frozenset({"OriginateResponse"})


def tracker_events(extra: Iterable[str] = DAEMON_EVENTS) -> frozenset[str]:
    """Event names the tracker normalises, plus ``extra`` (default: the daemon's own listeners)."""
    return tracked_events() | frozenset(extra)


def tracker_selection(extra: Iterable[str] = DAEMON_EVENTS, gap_clock: bool = False) -> Selection:
    """The parser selection for the tracker: its events, and ``VarSet`` only of the variables it reads."""
    return Selection(tracker_events(extra), TRACKED_VARIABLES, gap_clock=gap_clock)
