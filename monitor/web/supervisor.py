"""The supervisor's series (issue 13): per-agent measures and owed callbacks, built from a LiveState at scrape time.

Everything here is read from :class:`~monitor.core.ingest.LiveState` (the AgentBoard's rows, the owed-callback
worklist and counters) and nothing is changed by collecting. Agent counters only grow (the board's ``state_s`` and
``paused_by_label``), so they are exported as counters. Labels: pbx, queue, agent (the member name: bounded by
configuration and queue membership), state (:data:`~monitor.core.agents.AGENT_STATES`), reason (the pause reason
capped to ``tracker.pause_reasons`` plus ``other`` and ``none``), never a caller number.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from monitor.core.agentcols import AgentColumns, columns_of_rows
from monitor.core.agents import AGENT_STATES, TIME_STATES
from monitor.core.ingest import LiveState
from monitor.core.owed import CLOSED_BY
from monitor.web import agenttext
from monitor.web.exposition import Renderer, header

_AGENT = ["pbx", "queue", "agent"]


def agent_families(states: Sequence[tuple[str, LiveState]]) -> Iterator[Any]:
    """Per (pbx, queue, agent): seconds by state and by pause reason, talk, wrap-up, calls; current state gauges.

    Times are seconds on the PBX clock (``LiveState.pbx_now``); a member's series exist from its first sight
    (QueueStatus at login, or its first event), every state and configured reason at 0.
    """
    state_s = CounterMetricFamily("qmon_agent_state_seconds", "Seconds logged in by exclusive state (in_call > "
                                  "paused > wrapup > unavailable > available); they sum to the logged-in time",
                                  labels=[*_AGENT, "state"])
    paused = CounterMetricFamily("qmon_agent_paused_seconds", "Seconds paused by reason as queue_log counts pauses "
                                 "(a pause during a call counts here too); reason capped to tracker.pause_reasons, "
                                 "other, none", labels=[*_AGENT, "reason"])
    talk = CounterMetricFamily("qmon_agent_talk_seconds", "Talk time (AgentComplete TalkTime)", labels=_AGENT)
    wrap = CounterMetricFamily("qmon_agent_wrapup_seconds", "After-call work: the wrapuptime after AgentComplete, "
                               "cut short by the next call, pause or logout", labels=_AGENT)
    calls = CounterMetricFamily("qmon_agent_calls", "Queue calls answered by the member (AgentConnect)",
                                labels=_AGENT)
    done = CounterMetricFamily("qmon_agent_completed_calls", "Calls the member completed (AgentComplete)",
                               labels=_AGENT)
    rna = CounterMetricFamily("qmon_agent_ring_no_answer", "The member rang and did not answer (AgentRingNoAnswer)",
                              labels=_AGENT)
    state = GaugeMetricFamily("qmon_agent_state", "1 for the member's current state, 0 for the others",
                              labels=[*_AGENT, "state"])
    since = GaugeMetricFamily("qmon_agent_state_since_timestamp_seconds", "When the current state began (epoch s, "
                              "PBX clock)", labels=_AGENT)
    dur = GaugeMetricFamily("qmon_agent_state_duration_seconds", "Seconds in the current state (PBX clock, as of "
                            "the latest event or tick)", labels=_AGENT)
    occ = GaugeMetricFamily("qmon_agent_occupancy", "(in_call + wrapup) / (logged in - paused while idle) since qmon "
                            "first saw the member; absent without available time (the rolling hour: the rule "
                            "queue_agent:qmon_agent_occupancy:ratio_rate1h)", labels=_AGENT)
    for pbx, st in states:
        c = columns(st)
        n = len(TIME_STATES)
        for i, (q, a) in enumerate(zip(c.queue, c.agent, strict=True)):
            key = [pbx, q, a]
            for j, s in enumerate(TIME_STATES):
                state_s.add_metric([*key, s], c.state_s[i * n + j])
            by_label = c.paused_by_label[i]
            for label in sorted({*st.pause_labels, *by_label}):
                paused.add_metric([*key, label], by_label.get(label, 0.0))
            talk.add_metric(key, c.talk_s[i])
            wrap.add_metric(key, c.wrapup_s[i])
            calls.add_metric(key, c.answered[i])
            done.add_metric(key, c.completed[i])
            rna.add_metric(key, c.ring_no_answer[i])
            for s in AGENT_STATES:
                state.add_metric([*key, s], 1.0 if c.state[i] == s else 0.0)
            if (t := c.since[i]) is not None:
                since.add_metric(key, t)
                dur.add_metric(key, max(0.0, st.agents_at - t))
            if (o := c.occupancy[i]) is not None:
                occ.add_metric(key, o)
    yield from (state_s, paused, talk, wrap, calls, done, rna, state, since, dur, occ)


def owed_families(states: Sequence[tuple[str, LiveState, Iterable[str]]]) -> Iterator[Any]:
    """Per (pbx, queue): callbacks owed now, the oldest one's age (s, PBX clock), and the owed counters.

    ``states``: (pbx, its LiveState, its known queues: their series exist at 0). A call that never entered a
    queue has no queue label to go under and is left out here (the API lists it).
    """
    owed = GaugeMetricFamily("qmon_owed_callbacks", "Caller numbers owed a call now (the worklist of "
                             "/api/v1/callbacks), by the queue of their latest unanswered call",
                             labels=["pbx", "queue"])
    oldest = GaugeMetricFamily("qmon_owed_callback_oldest_age_seconds", "Seconds since the end of the first "
                               "unanswered call of the longest-owed caller (0 when none is owed)",
                               labels=["pbx", "queue"])
    opened = CounterMetricFamily("qmon_owed_callbacks_opened", "Unanswered calls that opened an owed callback",
                                 labels=["pbx", "queue"])
    withheld = CounterMetricFamily("qmon_owed_withheld_calls", "Unanswered calls from a withheld number (no "
                                   "callback possible, never owed)", labels=["pbx", "queue"])
    closed = CounterMetricFamily("qmon_owed_callbacks_closed", "Owed callbacks closed: the number reached an agent "
                                 "(inbound: it called again and was answered; outbound: an agent called it)",
                                 labels=["pbx", "queue", "closed_by"])
    missed = CounterMetricFamily("qmon_owed_callbacks_missed", "Owed callbacks not reached within "
                                 "tracker.owed_horizon_s (counted when the horizon passes): the true abandonment "
                                 "numerator", labels=["pbx", "queue"])
    for pbx, st, known in states:
        per: dict[str, list[float]] = {}
        for row in st.owed:
            if row.queue:
                per.setdefault(row.queue, []).append(row.owed_since_ts)
        stats = st.owed_stats
        queues = {*known, *per}
        if stats is not None:
            queues |= {q for q in (*stats.opened, *stats.withheld, *stats.missed) if q}
            queues |= {q for q, _ in stats.closed if q}
        for q in sorted(queues):
            since = per.get(q, [])
            owed.add_metric([pbx, q], len(since))
            oldest.add_metric([pbx, q], max(0.0, st.pbx_now - min(since)) if since else 0.0)
            opened.add_metric([pbx, q], stats.opened[q] if stats else 0)
            withheld.add_metric([pbx, q], stats.withheld[q] if stats else 0)
            missed.add_metric([pbx, q], stats.missed[q] if stats else 0)
            for how in CLOSED_BY:
                closed.add_metric([pbx, q, how], stats.closed[(q, how)] if stats else 0)
    yield from (owed, oldest, opened, withheld, closed, missed)


_AGENT_HEADERS = tuple(header(f.name, f.documentation, f.type) for f in agent_families([]))


def columns(st: LiveState) -> AgentColumns:
    """The agent columns of a LiveState (taken as columns for /metrics, or made from its rows)."""
    return st.agent_columns if st.agent_columns is not None else columns_of_rows(st.agents, st.agents_at)


def agent_text(render: Renderer, states: Sequence[tuple[str, LiveState]]) -> Iterator[bytes]:
    """Exactly what :func:`agent_families` renders to (the 11 per-agent families, ~20 lines per member), in parts,
    from the renderer's cached prefixes and columns (:mod:`monitor.web.agenttext`)."""
    return agenttext.agent_text(render, states, [columns(st) for _, st in states], _AGENT_HEADERS)
