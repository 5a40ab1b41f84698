"""Historical report rows: per queue (from ``build_report``, so equal to ``qmon replay``) and per agent."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, tzinfo
from typing import Any

from monitor.core.agents import AgentRow
from monitor.core.records import CallRecord, MemberNote, OwedCall
from monitor.core.report import build_report
from monitor.core.servicelevel import DEFAULT_SL
from monitor.store.agent_history import agent_columns, agent_windows, owed_columns

QUEUE_COLUMNS = (
    "offered", "entered", "answered", "abandoned", "abandoned_short", "timeout", "exit_empty", "join_empty",
    "exit_key", "full", "join_unavail", "leave_unavail", "withdraw",
    "service_level", "sl_definition", "sl", "sl_answered", "sl_answered_abandoned", "sl_offered",
    "sl_offered_no_short", "asa_s", "aht_s", "longest_wait_s", "abandon_rate", "abandon_rate_no_short",
    "owed", "withheld", "reached", "missed", "pending", "ttc_s", "true_abandon_rate", "voicemail", "transfers",
    "repeat_calls", "repeat_rate", "fcr", "csat_responses", "csat_mean", "csat_satisfied_ratio",
    "csat_response_rate",
)
AGENT_COLUMNS = (
    "answered", "asa_s", "aht_s", "talk_s", "logged_in_s", "paused_s", "pause_reasons", "wrapup_s", "occupancy",
    "ring_no_answer", "completed_by_agent", "completed_by_caller", "transfers", "csat_responses", "csat_mean",
    "csat_satisfied_ratio", "csat_response_rate",
)


@dataclass(frozen=True)
class Extras:
    """What the supervisor's columns need beyond call records (all times epoch s, durations s)."""

    span: tuple[float, float] | None = None  # the report's [from, to): agent time is measured inside it
    members: Sequence[MemberNote] = ()  # stored member changes, from before ``span`` (sessions already open)
    owed: Sequence[OwedCall] = ()  # stored owed calls of the span
    horizon_s: float = 14_400.0  # the true-abandonment horizon
    as_of: float = float("inf")  # "now": owed calls whose horizon passed by then and were not reached are missed
    sl_definitions: Mapping[str, str] = field(default_factory=lambda: {"": DEFAULT_SL})  # queue ("" = any) -> def
    wrapup_s: Mapping[str, float] = field(default_factory=dict)  # queue -> wrapuptime


def _ratio(a: float, b: float) -> float | None:
    return a / b if b else None


def _mean(xs: Sequence[float]) -> float | None:
    return sum(xs) / len(xs) if xs else None


Rows = dict[str, dict[str, Any]]


def queue_rows(records: Sequence[CallRecord], sl_threshold_s: float) -> tuple[dict[str, Any], Rows]:
    """The replay-equal report and a row per queue with the derived figures. offered = entered, the one definition
    (the SL/abandonment denominators, the rule queue:qmon_queue_offered_calls, the wallboard); callers Queue()
    refused never entered and are in their own columns (join_empty, full, join_unavail)."""
    report = build_report(records, 0, sl_threshold_s)
    first: dict[str, int] = {}
    longest: dict[str, float] = {}
    for r in records:
        if r.segments:
            first[r.segments[0].queue] = first.get(r.segments[0].queue, 0) + 1
        for s in r.segments:
            if s.wait_s is not None:
                longest[s.queue] = max(longest.get(s.queue, 0.0), s.wait_s)
    rows: dict[str, dict[str, Any]] = {}
    for q, b in report["queues"].items():
        repeat_rate = _ratio(b["repeat_calls"], first.get(q, 0))
        c = b["csat"]
        rows[q] = {
            "offered": b["entered"],
            **{k: b[k] for k in ("entered", "answered", "abandoned", "abandoned_short", "timeout", "exit_empty",
                                 "join_empty", "exit_key", "full", "join_unavail", "leave_unavail", "withdraw",
                                 "service_level")},
            "asa_s": b["wait_answered_s"]["mean"], "aht_s": b["talk_s"]["mean"],
            "longest_wait_s": longest.get(q), "voicemail": b["voicemail"],
            "transfers": b["transfers_blind"] + b["transfers_attended"], "repeat_calls": b["repeat_calls"],
            "repeat_rate": repeat_rate, "fcr": None if repeat_rate is None else 1.0 - repeat_rate,
            "csat_responses": c["responses"], "csat_mean": c["mean"], "csat_satisfied_ratio": c["satisfied_ratio"],
            "csat_response_rate": _ratio(c["responses"], b["answered"]),
            **{f"sl_{k}": v for k, v in b["service_levels"].items()},
            "abandon_rate": b["abandon_rate"], "abandon_rate_no_short": b["abandon_rate_no_short"],
        }
    return report, rows


def _supervisor_columns(rows: Rows, recs: Sequence[CallRecord], x: Extras) -> None:
    owed = owed_columns(recs, x.owed, x.horizon_s, x.as_of)
    for q, row in rows.items():
        d = x.sl_definitions.get(q) or x.sl_definitions.get("", DEFAULT_SL)
        row["sl_definition"], row["sl"] = d, row[f"sl_{d}"]
        o = owed.get(q, {})
        for k in ("owed", "withheld", "reached", "missed", "pending", "ttc_s", "true_abandon_rate"):
            row[k] = o.get(k, 0 if k in ("owed", "withheld", "reached", "missed", "pending") else None)


def _with_agent_time(agents: Rows, board: Mapping[str, AgentRow] | None) -> Rows:
    out: Rows = {}
    for name in sorted(set(agents) | set(board or {})):
        row = agents.get(name) or _empty_agent()
        b = (board or {}).get(name)
        cols = agent_columns(b)
        reasons = cols.pop("paused_by_reason")
        row = {**row, **cols, "pause_reasons": " ".join(f"{k or '-'}={v:.0f}" for k, v in reasons.items()),
               "paused_by_reason": reasons}
        if b is not None and b.completed:
            row["aht_s"] = b.aht_s  # (talk + wrap-up) / completed
        out[name] = row
    return out


def _empty_agent() -> dict[str, Any]:
    return {"answered": 0, "asa_s": None, "aht_s": None, "talk_s": 0.0, "ring_no_answer": 0,
            "completed_by_agent": 0, "completed_by_caller": 0, "transfers": 0, "csat_responses": 0,
            "csat_mean": None, "csat_satisfied_ratio": None, "csat_response_rate": None}


def agent_rows(records: Iterable[CallRecord], queue: str | None = None) -> dict[str, dict[str, Any]]:
    """A row per agent: calls answered, ASA, AHT, ring-no-answers, transfers out, CSAT of their calls."""
    acc: dict[str, dict[str, Any]] = {}

    def a(name: str) -> dict[str, Any]:
        return acc.setdefault(name, {"answered": 0, "_wait": [], "_talk": [], "ring_no_answer": 0,
                                     "completed_by_agent": 0, "completed_by_caller": 0, "transfers": 0,
                                     "_csat": []})

    for r in records:
        for s in r.segments:
            if queue is not None and s.queue != queue:
                continue
            for x in s.ring_no_answers:
                a(x.agent)["ring_no_answer"] += 1
            if s.outcome == "answered" and s.agent:
                b = a(s.agent)
                b["answered"] += 1
                if s.wait_s is not None:
                    b["_wait"].append(s.wait_s)
                if s.talk_s is not None:
                    b["_talk"].append(s.talk_s)
                if s.completion in ("agent", "caller"):
                    b[f"completed_by_{s.completion}"] += 1
        for t in r.transfers:
            if t.from_agent and (queue is None or t.queue == queue):
                a(t.from_agent)["transfers"] += 1
        sv = r.survey
        if sv is not None and sv.agent and sv.status == "OK" and sv.score is not None:
            if queue is None or sv.queue == queue:
                a(sv.agent)["_csat"].append(float(sv.score))
    out: dict[str, dict[str, Any]] = {}
    for name, b in sorted(acc.items()):
        scores: list[float] = b["_csat"]
        out[name] = {
            "answered": b["answered"], "asa_s": _mean(b["_wait"]), "aht_s": _mean(b["_talk"]),
            "talk_s": sum(b["_talk"]), "ring_no_answer": b["ring_no_answer"],
            "completed_by_agent": b["completed_by_agent"], "completed_by_caller": b["completed_by_caller"],
            "transfers": b["transfers"], "csat_responses": len(scores), "csat_mean": _mean(scores),
            "csat_satisfied_ratio": _ratio(sum(1 for s in scores if s >= 4), len(scores)),
            "csat_response_rate": _ratio(len(scores), b["answered"]),
        }
    return out


def bucket_key(ts: float, by: str, tz: tzinfo) -> str:
    """The day (``2026-11-21``) or hour (``2026-11-21T14:00``) of a time, in ``tz``."""
    d = datetime.fromtimestamp(ts, tz)
    return d.strftime("%Y-%m-%d") if by == "day" else d.strftime("%Y-%m-%dT%H:00")


def bucket_span(key: str, by: str, tz: tzinfo) -> tuple[float, float]:
    """[start, end) epoch s of a :func:`bucket_key` (a day or an hour in ``tz``)."""
    start = datetime.fromisoformat(key).replace(tzinfo=tz)
    return start.timestamp(), (start + (timedelta(days=1) if by == "day" else timedelta(hours=1))).timestamp()


def history(records: Sequence[CallRecord], sl_threshold_s: float, queue: str | None = None,
            agent: str | None = None, by: str | None = None, tz: tzinfo | None = None,
            extras: Extras | None = None) -> dict[str, Any]:
    """The whole historical report: the replay-equal ``report``, ``queues``, ``agents`` and ``buckets``.

    With ``extras.span``, agent rows gain logged-in/paused/wrap-up time and occupancy measured inside each window.
    """
    tz = tz or UTC
    x = extras or Extras()

    def board(lo: float, hi: float) -> Mapping[str, AgentRow] | None:
        if x.span is None:
            return None
        lo, hi = max(lo, x.span[0]), min(hi, x.span[1])
        return agent_windows(records, x.members, [lo, max(lo, hi)], queue, x.wrapup_s)[0]

    def one(recs: Sequence[CallRecord], lo: float, hi: float) -> dict[str, Any]:
        report, queues = queue_rows(recs, sl_threshold_s)
        _supervisor_columns(queues, recs, x)
        agents = _with_agent_time(agent_rows(recs, queue), board(lo, hi))
        if queue is not None:
            queues = {q: v for q, v in queues.items() if q == queue}
        if agent is not None:
            agents = {n: v for n, v in agents.items() if n == agent}
        return {"report": report, "queues": queues, "agents": agents}

    out = one(records, *(x.span or (0.0, 0.0)))
    if by is not None:
        groups: dict[str, list[CallRecord]] = {}
        for r in records:
            groups.setdefault(bucket_key(r.start_ts, by, tz), []).append(r)
        out["buckets"] = [{"start": k, **{n: v for n, v in one(g, *bucket_span(k, by, tz)).items() if n != "report"}}
                          for k, g in sorted(groups.items())]
    return out
