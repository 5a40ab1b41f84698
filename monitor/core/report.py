"""The replay/summary report: the public JSON contract, computed from call records.

Naming: the report's ``abandoned`` key is every abandon (``abandoned_total`` in the code: the Outcome values
``abandoned`` + ``abandoned_short``), while ``abandoned_short`` is the short ones alone. The metric label
``abandoned`` of ``qmon_queue_calls_total`` is the long ones only (the Outcome). The JSON keys stay as they are:
they are a public contract (tests/fixtures/golden, the OpenAPI schema, dashboards).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

from monitor.core.records import CallRecord, Segment
from monitor.core.servicelevel import SlCounts, SlDefinition, abandon_rates, service_levels
from monitor.core.vocab import ABANDONED_ANY, CSAT_SATISFIED, CSAT_SCORES, CsatStatus, Outcome

#: Per-queue counters of the report, in output order. ``abandoned`` = abandoned_total (includes abandoned_short).
COUNT_KEYS = (
    "entered", "answered", "abandoned", "abandoned_short", "timeout", "exit_empty", "join_empty", "exit_key",
    "full", "join_unavail", "leave_unavail", "withdraw", "ring_no_answer", "completed_by_agent",
    "completed_by_caller", "transfers_blind", "transfers_attended", "voicemail", "repeat_calls",
)
_ABANDONED_TOTAL = "abandoned"  # the report key of abandoned_total


def percentile(values: list[float], q: float) -> float | None:
    """Linear interpolation between closest ranks (numpy's default); None for no values."""
    if not values:
        return None
    xs = sorted(values)
    pos = (len(xs) - 1) * q
    lo = math.floor(pos)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (pos - lo)


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def _queue_block() -> dict[str, Any]:
    return {k: 0 for k in COUNT_KEYS} | {"_wa": [], "_wab": [], "_talk": [], "_sl": 0, "_slab": 0, "_csat": []} | {
        "_invalid": 0, "_noinput": 0}


def _count_segment(b: dict[str, Any], s: Segment, sl_threshold_s: float) -> None:
    if s.entered:
        b["entered"] += 1
    b["ring_no_answer"] += len(s.ring_no_answers)
    o = s.outcome
    if o == Outcome.ANSWERED:
        b["answered"] += 1
        if s.wait_s is not None:
            b["_wa"].append(s.wait_s)
            if s.wait_s <= sl_threshold_s:
                b["_sl"] += 1
        if s.talk_s is not None:
            b["_talk"].append(s.talk_s)
        if s.completion == "agent":
            b["completed_by_agent"] += 1
        elif s.completion == "caller":
            b["completed_by_caller"] += 1
    elif o in ABANDONED_ANY:
        b[_ABANDONED_TOTAL] += 1
        if o == Outcome.ABANDONED_SHORT:
            b["abandoned_short"] += 1
        if s.wait_s is not None:
            b["_wab"].append(s.wait_s)
            if s.wait_s <= sl_threshold_s:
                b["_slab"] += 1
    elif o in b:
        b[o] += 1


def build_report(
    records: Iterable[CallRecord], events: int, sl_threshold_s: float = 20.0, queues: Iterable[str] = (),
) -> dict[str, Any]:
    """Aggregate records into the report (waits in s; ``abandoned`` is abandoned_total, short ones included)."""
    qs: dict[str, dict[str, Any]] = {q: _queue_block() for q in queues}
    calls = 0
    voicemail_calls = 0
    callers: set[str] = set()
    repeat_calls = 0
    for r in records:
        calls += 1
        if r.caller:
            callers.add(r.caller)
        if r.voicemail is not None:
            voicemail_calls += 1
            qs.setdefault(r.voicemail.queue, _queue_block())["voicemail"] += 1
        if r.repeat_windows:
            repeat_calls += 1
            first = r.segments[0].queue if r.segments else None
            if first is not None:
                qs.setdefault(first, _queue_block())["repeat_calls"] += 1
        for s in r.segments:
            _count_segment(qs.setdefault(s.queue, _queue_block()), s, sl_threshold_s)
        for t in r.transfers:
            if t.queue is not None:
                qs.setdefault(t.queue, _queue_block())[f"transfers_{t.type}"] += 1
        sv = r.survey
        if sv is not None and sv.queue is not None:
            b = qs.setdefault(sv.queue, _queue_block())
            if sv.status == CsatStatus.OK and sv.score is not None:
                b["_csat"].append(sv.score)
            elif sv.status == CsatStatus.NOINPUT:
                b["_noinput"] += 1
            elif sv.status == CsatStatus.INVALID:
                b["_invalid"] += 1
    return {
        "events": events,
        "calls": calls,
        "voicemail_calls": voicemail_calls,
        "callers": {"distinct": len(callers), "repeat_calls": repeat_calls},
        "queues": {q: _finish(b) for q, b in sorted(qs.items())},
    }


def _finish(b: dict[str, Any]) -> dict[str, Any]:
    out = {k: b[k] for k in COUNT_KEYS}
    wa: list[float] = b["_wa"]
    out["wait_answered_s"] = {
        "n": len(wa), "mean": _mean(wa), "p50": percentile(wa, 0.5), "p90": percentile(wa, 0.9),
        "max": max(wa) if wa else None,
    }
    out["wait_abandoned_s"] = {"n": len(b["_wab"]), "mean": _mean(b["_wab"])}
    out["talk_s"] = {"n": len(b["_talk"]), "mean": _mean(b["_talk"])}
    # Service level = answered within the threshold / (entered - short abandons): misdials do not count.
    counts = SlCounts(b["entered"], b["answered"], b["_sl"], b[_ABANDONED_TOTAL], b["_slab"], b["abandoned_short"])
    levels = service_levels(counts)
    out["service_level"] = levels[SlDefinition.OFFERED_NO_SHORT]
    # Every definition side by side (monitor.core.servicelevel), with the counts they are made of.
    out["answered_within_sl"], out["abandoned_within_sl"] = b["_sl"], b["_slab"]
    out["service_levels"] = levels
    out["asa_s"] = _mean(wa)
    out["abandon_rate"], out["abandon_rate_no_short"] = abandon_rates(counts)
    scores: list[int] = b["_csat"]
    out["csat"] = {
        "responses": len(scores),
        "mean": _mean([float(s) for s in scores]),
        "satisfied_ratio": sum(1 for s in scores if s >= CSAT_SATISFIED) / len(scores) if scores else None,
        "scores": {label: sum(1 for s in scores if s == int(label)) for label in CSAT_SCORES},
        "invalid": b["_invalid"],
        "no_input": b["_noinput"],
    }
    return out
