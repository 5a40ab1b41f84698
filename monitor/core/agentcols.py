"""The agent board as columns: what /metrics reads of every (queue, agent), one list per measure.

At 10 000 members an :class:`~monitor.core.agents.AgentRow` per member per scrape kept the garbage collector busy:
the rows live through the render, get promoted, and made a full collection (~80 ms, every thread stopped) every
other scrape. Lists of plain values are a few objects whatever the number of members. The values are those of
:meth:`AgentBoard.snapshot` (the same :meth:`AgentBoard.measures`; tests/test_exposition.py checks them equal).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from operator import attrgetter, itemgetter

from monitor.core.agents import TIME_STATES, AgentBoard, AgentRow, pause_label

_TIME_OF = itemgetter(*TIME_STATES)
_INDEX = {s: i for i, s in enumerate(TIME_STATES)}
_IN_CALL, _WRAPUP, _PAUSED = _INDEX["in_call"], _INDEX["wrapup"], _INDEX["paused"]
_NO_LABELS: dict[str, float] = {}  # shared by the rows never paused: read only


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
    pausing: list[str | None] = field(default_factory=list)  # the label of the open pause (its seconds move), or None


def agent_columns(board: AgentBoard, at: float) -> AgentColumns:
    """Every (queue, agent) of ``board`` as of ``at`` (epoch s, PBX clock), as :meth:`AgentBoard.snapshot` has them."""
    c = AgentColumns(at)
    accs = board.ordered()
    c.queue, c.agent, c.talk_s, c.answered, c.completed, c.ring_no_answer = (
        list(map(attrgetter(name), accs)) for name in ("queue", "agent", "talk_s", "answered", "completed", "rna"))
    measures = board.measures
    state_s = c.state_s
    add_state, add_since, add_labels = c.state.append, c.since.append, c.paused_by_label.append
    add_wrap, add_occ, add_pausing = c.wrapup_s.append, c.occupancy.append, c.pausing.append
    allowed = board.pause_reasons
    for a in accs:
        if a.paused or a.paused_by_reason:
            st_s, st, t, logged, _, lab = measures(a, at)
            values = [st_s.get(s, 0.0) for s in TIME_STATES]
        else:
            # Never paused: MemberAcc.counted and occupancy() inlined, same arithmetic (tests/test_exposition.py:
            # the columns equal AgentBoard.snapshot's rows); no dict per member.
            st, t, lab = a.state, a.since, _NO_LABELS
            try:
                values = list(_TIME_OF(a.state_s))
            except KeyError:
                values = [a.state_s.get(s, 0.0) for s in TIME_STATES]
            if a.logged_in:
                logged = a.logged_in_s + max(0.0, at - a.login_ts)
                if at > a.cursor:
                    i = _INDEX.get(st, -1)
                    if i < 0 or (st == "wrapup" and a.wrap_end is not None and a.wrap_end < at):
                        st_s, st, t = a.counted(at)
                        values = [st_s.get(s, 0.0) for s in TIME_STATES]
                    else:
                        values[i] = values[i] + (at - a.cursor)
            else:
                logged = a.logged_in_s
        add_pausing(pause_label(a.pause_reason, allowed) if a.paused and a.logged_in else None)
        add_state(st)
        add_since(t)
        state_s.extend(values)
        add_labels(lab)
        add_wrap(values[_WRAPUP])
        avail = logged - values[_PAUSED]
        add_occ((values[_IN_CALL] + values[_WRAPUP]) / avail if avail > 0 else None)
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
        c.pausing.append(r.pause_label or None)
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
