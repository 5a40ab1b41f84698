"""The agent board as columns: what /metrics reads of every (queue, agent), one list per measure.

At 10 000 members an :class:`~monitor.core.agents.AgentRow` per member per scrape kept the garbage collector busy:
the rows live through the render, get promoted, and made a full collection (~80 ms, every thread stopped) every
other scrape. Lists of plain values are a few objects whatever the number of members. The values are those of
:meth:`AgentBoard.snapshot` (the same :meth:`AgentBoard.measures`; tests/test_exposition.py checks them equal).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from operator import itemgetter

from monitor.core.agents import TIME_STATES, AgentBoard, AgentRow, occupancy

_TIME_OF = itemgetter(*TIME_STATES)


@dataclass(slots=True)
class AgentColumns:
    """Row i of every list is one (queue, agent) as of ``at`` (epoch s, PBX clock), sorted by (queue, agent);
    durations in seconds. ``state_s`` holds ``len(TIME_STATES)`` values per row, in :data:`TIME_STATES` order."""

    at: float = 0.0
    queue: list[str] = field(default_factory=list)
    agent: list[str] = field(default_factory=list)
    state: list[str] = field(default_factory=list)
    since: list[float | None] = field(default_factory=list)
    state_s: list[float] = field(default_factory=list)
    paused_by_label: list[dict[str, float]] = field(default_factory=list)
    talk_s: list[float] = field(default_factory=list)
    wrapup_s: list[float] = field(default_factory=list)
    answered: list[int] = field(default_factory=list)
    completed: list[int] = field(default_factory=list)
    ring_no_answer: list[int] = field(default_factory=list)
    occupancy: list[float | None] = field(default_factory=list)


def agent_columns(board: AgentBoard, at: float) -> AgentColumns:
    """Every (queue, agent) of ``board`` as of ``at`` (epoch s, PBX clock), as :meth:`AgentBoard.snapshot` has them."""
    c = AgentColumns(at)
    accs = board.ordered()
    c.queue = [a.queue for a in accs]
    c.agent = [a.agent for a in accs]
    c.talk_s = [a.talk_s for a in accs]
    c.answered = [a.answered for a in accs]
    c.completed = [a.completed for a in accs]
    c.ring_no_answer = [a.rna for a in accs]
    measures = board.measures
    state, since, state_s, labels, wrap, occ = c.state, c.since, c.state_s, c.paused_by_label, c.wrapup_s, c.occupancy
    for a in accs:
        if a.paused or a.paused_by_reason:
            st_s, st, t, logged, _, lab = measures(a, at)
        else:  # never paused: measures() without its pause bookkeeping (tests/test_exposition.py: same columns)
            st_s, st, t = a.counted(at)
            logged = a.logged_in_s + max(0.0, at - a.login_ts) if a.logged_in else a.logged_in_s
            lab = {}
        state.append(st)
        since.append(t)
        try:
            state_s.extend(_TIME_OF(st_s))
        except KeyError:
            state_s.extend([st_s.get(s, 0.0) for s in TIME_STATES])
        labels.append(lab)
        wrap.append(st_s["wrapup"])
        occ.append(occupancy(logged, st_s))
    return c


def columns_of_rows(rows: Iterable[AgentRow], at: float) -> AgentColumns:
    """The columns of :meth:`AgentBoard.snapshot` rows (for a LiveState taken with its rows, and for tests)."""
    c = AgentColumns(at)
    for r in rows:
        c.queue.append(r.queue)
        c.agent.append(r.agent)
        c.state.append(r.state)
        c.since.append(r.since)
        c.state_s.extend([r.state_s.get(s, 0.0) for s in TIME_STATES])
        c.paused_by_label.append(dict(r.paused_by_label))
        c.talk_s.append(r.talk_s)
        c.wrapup_s.append(r.wrapup_s)
        c.answered.append(r.answered)
        c.completed.append(r.completed)
        c.ring_no_answer.append(r.ring_no_answer)
        c.occupancy.append(r.occupancy)
    return c


def concat(parts: Sequence[AgentColumns]) -> AgentColumns:
    """Several boards' columns one after the other (``at`` of the first; callers needing each board's keep it)."""
    if len(parts) == 1:
        return parts[0]
    c = AgentColumns(parts[0].at if parts else 0.0)
    for f in _LISTS:
        setattr(c, f, [v for p in parts for v in getattr(p, f)])
    return c


_LISTS = [f for f in AgentColumns.__slots__ if f != "at"]
