"""A segment resolved as ``unknown`` by a second QueueCallerJoin counts once in
``qmon_queue_calls_total{outcome="unknown"}`` (from its SegmentNote, not again from CallClosed)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from monitor.core.ingest import Ingest
from monitor.core.tracker import CallTracker
from monitor.web.metrics import QmonMetrics


def _ev(event: str, ts: float, **h: str) -> dict[str, str]:
    return {"Event": event, "Timestamp": str(ts), "Uniqueid": "1.1", "Linkedid": "1.1", "Channel": "PJSIP/t-1",
            "CallerIDNum": "5551001", **h}


def test_unknown_segment_counted_once() -> None:
    reg = CollectorRegistry()
    metrics = QmonMetrics(reg)
    tracker = CallTracker()
    ingest = Ingest(tracker, [metrics.sink("default")])
    metrics.add_pbx("default", ingest)
    # The QueueCallerLeave of the first visit was lost (e.g. a filtered event): the next join settles it.
    for h in (_ev("QueueCallerJoin", 100, Queue="sales", Position="1", Count="1"),
              _ev("QueueCallerJoin", 110, Queue="support", Position="1", Count="1"),
              _ev("Hangup", 120, Cause="16")):
        ingest.feed(h, 0.0)
    ingest.tick(10.0)  # the grace period after the caller's hang-up is over: the call is final
    unknown = reg.get_sample_value("qmon_queue_calls_total", {"pbx": "default", "queue": "sales", "outcome": "unknown"})
    assert unknown == 1.0
