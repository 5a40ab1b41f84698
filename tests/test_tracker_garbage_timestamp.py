"""One event with an absurd Timestamp must not poison the tracker clock for good.

``CallTracker.now`` is ``max(now, ts)`` forever; ``sweep`` (every 4096 events) then closes every open call as
``stale`` — in a live daemon, until it is restarted. The wait gauges use the same clock (``Ingest.pbx_now``).
"""

from __future__ import annotations

from pathlib import Path

from monitor.ami.files import read_capture
from monitor.core.ingest import Ingest, closed_records
from monitor.core.tracker import CallTracker

FIXTURES = Path(__file__).parent / "fixtures"
MSGS = [m for m, _ in read_capture(FIXTURES / "answered_agent_hangup.jsonl")]


def test_one_garbage_timestamp_does_not_close_live_calls_as_stale() -> None:
    tracker = CallTracker()
    ingest = Ingest(tracker)
    for m in MSGS[:50]:  # the caller is waiting in `support`
        ingest.feed(m, tracker.now)
    ingest.feed({"Event": "Newchannel", "Uniqueid": "9.1", "Linkedid": "9.1", "Timestamp": "1e12"}, tracker.now)
    notes = []
    for _ in range(4100):  # ordinary traffic (untracked VarSets are ignored before the tracker; use Newchannel)
        notes += ingest.feed({"Event": "Newchannel", "Uniqueid": "9.2", "Linkedid": "9.2",
                              "Timestamp": MSGS[49]["Timestamp"]}, tracker.now)
    assert not [r for r in closed_records(notes) if r.closed_by == "stale"], "a live waiting call closed as stale"
