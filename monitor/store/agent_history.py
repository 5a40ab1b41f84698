"""The report's agent time measures and owed-callback columns, from stored rows through the core's definitions.

Agent measures: stored member changes (``agent_events``: login/logout/pause/unpause with AMI's raw reason) and the
answered segments and ring-no-answers of stored calls are fed, in time order, into the same
:class:`~monitor.core.agents.AgentBoard` the live tracker uses; snapshots at the window's bounds give the seconds
inside each window (:func:`~monitor.core.agents.window`). What is not stored is not known: a member's own
``Wrapuptime`` (the queues' configured ``wrapuptime`` is used) and sessions of members never seen logging in or
pausing (static members: logged-in time 0, occupancy empty).

Owed callbacks: see :mod:`monitor.core.owed`; the true abandonment rate counts owed calls not reached within the
horizon ÷ the queue's calls (each inbound call once, in the queue where it ended).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from operator import methodcaller
from typing import Any

from monitor.core.agents import AgentBoard, AgentRow, window
from monitor.core.owed import owes_callback, withheld
from monitor.core.records import CallRecord, MemberNote, OwedCall

Fact = tuple[float, int, Callable[[AgentBoard], None]]
_AGENT_KEYS = ("logged_in_s", "paused_s", "wrapup_s", "occupancy", "paused_by_reason")


def _member_fact(n: MemberNote) -> Callable[[AgentBoard], None]:
    if n.change == "login":
        return methodcaller("login", n.queue, n.member, n.ts, n.interface)
    if n.change == "logout":
        return methodcaller("logout", n.queue, n.member, n.ts)
    if n.change == "pause":
        return methodcaller("pause", n.queue, n.member, n.reason, n.ts)
    return methodcaller("unpause", n.queue, n.member, n.ts)


def _facts(records: Iterable[CallRecord], notes: Iterable[MemberNote]) -> list[Fact]:
    facts: list[Fact] = [(n.ts, 0, _member_fact(n)) for n in notes]
    for r in records:
        for s in r.segments:
            for x in s.ring_no_answers:
                facts.append((x.ts, 1, methodcaller("ring_no_answer", s.queue, x.agent, x.ts)))
            if s.outcome != "answered" or not s.agent or s.end_ts is None:
                continue
            t0 = s.end_ts  # AgentConnect
            facts.append((t0, 2, methodcaller("connect", s.queue, s.agent, t0)))
            if s.talk_s is not None:
                t1 = t0 + s.talk_s
                facts.append((t1, 3, methodcaller("complete", s.queue, s.agent, s.talk_s, t1)))
            else:
                facts.append((r.end_ts, 3, methodcaller("call_ended", s.queue, s.agent, r.end_ts)))
    return sorted(facts, key=lambda f: (f[0], f[1]))


def agent_windows(records: Sequence[CallRecord], notes: Sequence[MemberNote], bounds: Sequence[float],
                  queue: str | None = None, wrapup_s: Mapping[str, float] | None = None) -> list[dict[str, AgentRow]]:
    """Agent rows (seconds) inside each window [bounds[i], bounds[i+1]): per agent over all queues, or in ``queue``."""
    board = AgentBoard((), wrapup_s)
    snaps: list[list[AgentRow]] = []
    facts = _facts(records, notes)
    i = 0

    def take(at: float) -> None:
        rows = board.snapshot(at) if queue is not None else board.agents(at)
        snaps.append([r for r in rows if queue is None or r.queue == queue])

    for b in bounds:
        while i < len(facts) and facts[i][0] < b:
            facts[i][2](board)
            i += 1
        take(b)
    return [{r.agent: r for r in window(snaps[k + 1], snaps[k])} for k in range(len(snaps) - 1)]


def agent_columns(r: AgentRow | None) -> dict[str, Any]:
    """The agent table's time columns of one window row (None: the agent has no member data)."""
    if r is None:
        return {"logged_in_s": None, "paused_s": None, "wrapup_s": None, "occupancy": None,
                "paused_by_reason": {}}
    return {"logged_in_s": r.logged_in_s or None, "paused_s": r.paused_s, "wrapup_s": r.wrapup_s,
            "occupancy": r.occupancy, "paused_by_reason": {k: round(v, 3) for k, v in sorted(
                r.paused_by_reason.items())}}


def owed_columns(records: Sequence[CallRecord], owed: Sequence[OwedCall], horizon_s: float,
                 as_of: float) -> dict[str, dict[str, Any]]:
    """Per queue: owed, withheld, reached (within the horizon), missed, pending, mean time to callback (s), rate."""
    out: dict[str, dict[str, Any]] = {}

    def q(name: str) -> dict[str, Any]:
        return out.setdefault(name, {"calls": 0, "owed": 0, "withheld": 0, "reached": 0, "missed": 0,
                                     "pending": 0, "_ttc": []})

    owed_ids = {(o.pbx, o.linkedid): o for o in owed}
    # Inbound reaches are also in the records themselves (calls backfilled from queue_log have no owed rows).
    answered: dict[str | None, list[float]] = {}
    for r in records:
        if r.outcome == "answered" and r.caller is not None:
            answered.setdefault(r.caller, []).append(min(
                (s.end_ts for s in r.segments if s.outcome == "answered" and s.end_ts is not None), default=r.end_ts))
    for r in records:
        if not r.segments:
            continue
        b = q(r.segments[-1].queue)
        b["calls"] += 1
        if not owes_callback(r.outcome):
            continue
        if withheld(r.caller):
            b["withheld"] += 1
            continue
        b["owed"] += 1
        o = owed_ids.get((r.pbx, r.linkedid))
        later = [t - r.end_ts for t in answered.get(r.caller, ()) if t >= r.end_ts]
        known = [x for x in (o.time_to_callback_s if o is not None else None, *later) if x is not None]
        ttc = min(known, default=None)
        if ttc is not None and ttc <= horizon_s:
            b["reached"] += 1
            b["_ttc"].append(ttc)
        elif ttc is not None or r.end_ts + horizon_s <= as_of:
            b["missed"] += 1
        else:
            b["pending"] += 1
    for b in out.values():
        ttc = b.pop("_ttc")
        b["ttc_s"] = sum(ttc) / len(ttc) if ttc else None
        b["true_abandon_rate"] = b["missed"] / b["calls"] if b["calls"] else None
    return out
