"""Call records for the survey tests: built by hand, or taken from the real tracker mid-transcript."""

from __future__ import annotations

import json
from pathlib import Path

from monitor.core.ingest import Ingest
from monitor.core.records import CallRecord, Segment
from monitor.core.tracker import CallTracker

FIXTURES = Path(__file__).parent.parent / "fixtures"


def answered(linkedid: str = "1700000000.1", caller: str | None = "5551001", queue: str = "support",
             agent: str = "agent1", completion: str = "agent", end_ts: float = 1_700_000_100.0) -> CallRecord:
    """A call answered by an agent."""
    seg = Segment(queue, True, end_ts - 60, end_ts, 1, 1, "answered", 5.0, agent, f"{linkedid}-a", 3, 50.0,
                  completion)
    return CallRecord(linkedid, linkedid + "2", caller, "Caller", end_ts - 60, end_ts, (seg,), outcome="answered")


def abandoned(linkedid: str = "1700000000.5", caller: str = "5551002") -> CallRecord:
    """A call whose caller gave up waiting."""
    seg = Segment("support", True, 1_700_000_000.0, 1_700_000_010.0, 1, 1, "abandoned", 10.0)
    return CallRecord(linkedid, linkedid, caller, "", 1_700_000_000.0, 1_700_000_010.0, (seg,), outcome="abandoned")


def tracker_at_survey(name: str = "answered_agent_hangup") -> tuple[CallTracker, str, str]:
    """Replay a real transcript up to QUEUESTATUS=CONTINUE (where the AGI would start).

    Returns the tracker, the caller channel's Uniqueid and its Linkedid, as the dialplan would pass them.
    """
    tracker = CallTracker()
    ingest = Ingest(tracker)
    for line in (FIXTURES / f"{name}.jsonl").read_text().splitlines():
        msg = json.loads(line)
        if "_banner" in msg:
            continue
        ingest.feed({k: v for k, v in msg.items() if not k.startswith("_")}, float(msg.get("_recv", 0.0)))
        if msg.get("Event") == "VarSet" and msg.get("Variable") == "QUEUESTATUS" and msg.get("Value") == "CONTINUE":
            return tracker, msg["Uniqueid"], msg["Linkedid"]
    raise AssertionError(f"{name}: no QUEUESTATUS=CONTINUE")
