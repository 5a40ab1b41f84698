"""The wallboard's data: one JSON snapshot of every queue and agent, built from the live state at request time.

Live numbers (waiting, longest wait, members by state) come from each PBX's :meth:`Ingest.live` snapshot, exactly
as ``/api/v1/queues`` shows them; waits are measured on the PBX clock (``LiveState.pbx_now``), never the wall clock
against event time. Today's service level, abandonment and CSAT come from one source: the per-PBX
:class:`~monitor.core.today.DayTally` notes sink (today = the daemon's local day on the PBX clock). Callbacks owed
come from an optional provider per PBX (None: the tile is not shown).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from monitor.core.ingest import LiveState
from monitor.core.members import MEMBER_STATES
from monitor.core.today import DayTally, QueueDay

#: How the board names each service-level definition (formulas: :mod:`monitor.core.servicelevel`); T = threshold.
SL_NAMES = {
    "answered": "answered within {t} s ÷ answered",
    "answered_abandoned": "(answered + abandoned) within {t} s ÷ (answered + abandoned)",
    "offered": "answered within {t} s ÷ offered",
    "offered_no_short": "answered within {t} s ÷ (offered - short abandons)",
}
#: Callbacks owed per queue right now (``""`` = no queue); e.g. counts of ``OwedCallbacks.open()`` by queue.
OwedProvider = Callable[[], Mapping[str, int]]
#: (queue, agent) -> (state, since: PBX epoch s or None) at PBX time ``now``; e.g. from ``AgentBoard.snapshot(now)``
#: rows. When given, its ``since`` wins over the day tally's marks wherever both say the same state.
SinceProvider = Callable[[float], Mapping[tuple[str, str], tuple[str, float | None]]]


class _Live(Protocol):
    def live(self, now: float) -> LiveState:
        """A snapshot at daemon time ``now`` (epoch s)."""
        ...


class _Source(Protocol):
    @property
    def connected(self) -> bool:
        """Logged in."""
        ...

    @property
    def last_error(self) -> str:
        """Why not, when not."""
        ...


@dataclass
class BoardPbx:
    """What the board reads of one AMI connection."""

    live: _Live
    source: _Source | None
    tally: DayTally
    owed: OwedProvider | None = None
    since: SinceProvider | None = None


@dataclass
class Wallboard:
    """Everything the wallboard routes need (injected by the daemon)."""

    pbxs: dict[str, BoardPbx]
    queues: tuple[str, ...] = ()  # configured queues: shown from the start
    sl_threshold_s: float = 20.0
    sl_target: float = 0.8
    sl_amber_margin: float = 0.05
    queue_sl_target: dict[str, float] = field(default_factory=dict)
    sl_definitions: dict[str, str] = field(default_factory=dict)  # queue -> definition; "" = the default
    abandon_target: float = 0.05
    abandon_amber_margin: float = 0.03
    refresh_s: float = 2.0
    cookie_max_age_s: int = 30 * 86400


def rag_high(value: float | None, target: float, margin: float) -> str:
    """Red/amber/green for a measure where more is better: green >= target, amber >= target - margin, else red."""
    if value is None:
        return "none"
    return "green" if value >= target else "amber" if value >= target - margin else "red"


def rag_low(value: float | None, target: float, margin: float) -> str:
    """Red/amber/green for a measure where less is better: green <= target, amber <= target + margin, else red."""
    if value is None:
        return "none"
    return "green" if value <= target else "amber" if value <= target + margin else "red"


def _r(x: float | None, nd: int = 4) -> float | None:
    return None if x is None else round(x, nd)


def _definition(wb: Wallboard, queue: str) -> str:
    return wb.sl_definitions.get(queue) or wb.sl_definitions.get("") or "offered_no_short"


def _sl_name(wb: Wallboard, definition: str) -> str:
    return SL_NAMES.get(definition, definition).format(t=f"{wb.sl_threshold_s:g}")


def _today(wb: Wallboard, queue: str, d: QueueDay) -> dict[str, Any]:
    definition = _definition(wb, queue)
    sl, ab = d.service_level(definition), d.abandon_rate()
    target = wb.queue_sl_target.get(queue, wb.sl_target)
    return {
        "sl_definition": definition, "sl_name": _sl_name(wb, definition),
        "offered": d.offered, "answered": d.answered, "answered_within": d.answered_within,
        "abandoned": d.abandoned, "abandoned_short": d.abandoned_short, "unanswered_other": d.unanswered_other,
        "service_level": _r(sl), "sl_target": target, "sl_rag": rag_high(sl, target, wb.sl_amber_margin),
        "abandon_rate": _r(ab), "abandon_target": wb.abandon_target,
        "abandon_rag": rag_low(ab, wb.abandon_target, wb.abandon_amber_margin),
        "csat_mean": _r(d.csat_mean(), 2), "csat_responses": d.csat_n,
    }


def _queue(wb: Wallboard, pbx: str, queue: str, st: LiveState, up: bool, day: QueueDay,
           owed: Mapping[str, int] | None, paused: list[dict[str, Any]]) -> dict[str, Any]:
    joins = st.waiting.get(queue, ())
    return {
        "pbx": pbx, "queue": queue, "live": up,
        "waiting_calls": len(joins),
        "longest_wait_s": round(max(0.0, st.pbx_now - min(joins)), 3) if joins else 0.0,
        "agents": st.member_counts.get(queue) or dict.fromkeys(MEMBER_STATES, 0),
        "paused": [p for p in paused if p["queue"] == queue],
        "today": _today(wb, queue, day),
        "callbacks_owed": None if owed is None else int(owed.get(queue, 0)),
    }


def _since(p: BoardPbx, given: Mapping[tuple[str, str], tuple[str, float | None]], queue: str, agent: str,
           state: str) -> float | None:
    """When ``agent`` entered ``state`` in ``queue`` (PBX epoch s): the provider's answer, else the tally's mark."""
    g = given.get((queue, agent))
    if g is not None and g[0] == state and g[1] is not None:
        return g[1]
    mark = p.tally.marks.get((queue, agent))
    return mark.ts if mark is not None and mark.state == state else None


def _agents(pbx: str, st: LiveState, p: BoardPbx) -> list[dict[str, Any]]:
    """One row per (queue, member): state, pause reason, for how long (s, PBX clock; None if unknown), today."""
    given = p.since(st.pbx_now) if p.since is not None else {}
    agents_today = p.tally.agents_today(st.pbx_now)
    rows = []
    for m in st.members:
        since = _since(p, given, m.queue, m.name, m.state)
        for_s = None if since is None else round(max(0.0, st.pbx_now - since), 1)
        day = agents_today.get((m.queue, m.name))
        rows.append({"pbx": pbx, "queue": m.queue, "agent": m.name, "state": m.state,
                     "paused_reason": m.paused_reason if m.state == "paused" else "", "for_s": for_s,
                     "answered_today": day.answered if day else 0,
                     "talk_today_s": round(day.talk_s, 1) if day else 0.0})
    return rows


def snapshot(wb: Wallboard, now: float) -> dict[str, Any]:
    """The wallboard JSON at daemon time ``now`` (epoch s); see ``Wallboard`` in the OpenAPI document."""
    queues: list[dict[str, Any]] = []
    agents: list[dict[str, Any]] = []
    ami: list[dict[str, Any]] = []
    day = ""
    owed_shown = False
    for name, p in sorted(wb.pbxs.items()):
        st = p.live.live(now)
        up = p.source is not None and p.source.connected
        reason = "" if up else ((p.source.last_error if p.source is not None else "") or "not logged in yet")
        age = None if st.last_event_at is None else round(max(0.0, now - st.last_event_at), 1)
        ami.append({"pbx": name, "up": up, "reason": reason, "last_event_age_s": age})
        day = day or p.tally.day_of(st.pbx_now)
        today = p.tally.today(st.pbx_now)
        owed = p.owed() if p.owed is not None else None
        owed_shown = owed_shown or owed is not None
        rows = _agents(name, st, p)
        agents += rows
        paused = [r for r in rows if r["state"] == "paused"]
        for q in sorted(st.queues | set(wb.queues) | set(today)):
            if q == "unknown" and q not in st.queues:  # survey answers of no known queue: not a queue to show
                continue
            queues.append(_queue(wb, name, q, st, up, today.get(q) or QueueDay(), owed, paused))
    return {
        "generated_at": round(now, 3), "day": day, "ami": ami, "ami_up": all(a["up"] for a in ami),
        "sl_definition": _definition(wb, ""), "sl_threshold_s": wb.sl_threshold_s,
        "sl_name": _sl_name(wb, _definition(wb, "")),
        "callbacks_owed_shown": owed_shown, "refresh_s": wb.refresh_s,
        "queues": queues, "agents": sorted(agents, key=lambda r: (r["agent"], r["queue"], r["pbx"])),
    }
