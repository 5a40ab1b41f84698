"""The supervisor's series (issue 13): per-agent measures and owed callbacks, built from a LiveState at scrape time.

Everything here is read from :class:`~monitor.core.ingest.LiveState` (the AgentBoard's rows, the owed-callback
worklist and counters) and nothing is changed by collecting. Agent counters only grow (the board's ``state_s`` and
``paused_by_label``), so they are exported as counters. Labels: pbx, queue, agent (the member name: bounded by
configuration and queue membership), state (:data:`~monitor.core.agents.AGENT_STATES`), reason (the pause reason
capped to ``tracker.pause_reasons`` plus ``other`` and ``none``), never a caller number.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from itertools import chain, compress, repeat
from operator import attrgetter, is_not, lt, ne, sub
from typing import Any, cast

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from monitor.core.agentcols import AgentColumns, columns_of_rows, concat
from monitor.core.agents import AGENT_STATES, TIME_STATES
from monitor.core.ingest import LiveState
from monitor.core.owed import CLOSED_BY
from monitor.web.exposition import Renderer, header, label_value

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
    from the renderer's cached prefixes and columns: a column equal to the last scrape's (most of them) is reused."""
    per = [columns(st) for _, st in states]
    c = concat(per)
    who = ([pbx for (pbx, _), x in zip(states, per, strict=True) for _ in x.queue], c.queue, c.agent)
    made: dict[Any, _Row] = render.memo("agent_rows", None, dict)
    p: _AgentPrefixes = render.memo("agents", who, lambda: _AgentPrefixes(*who, made))
    h = _AGENT_HEADERS
    # Board values are 0.0 plus non-negative amounts, or max(0.0, ...): never a -0.0 (signed=False), but for the
    # timestamps in ``since``, which come from the PBX as they are.
    yield h[0]
    yield from _blocks(render, "agent_state_s", p.state_s, c.state_s)
    # Pause reasons: every configured label plus any other the row has, sorted (as agent_families).
    labs: list[tuple[str, ...]] = []
    for (_, st), x in zip(states, per, strict=True):
        base = tuple(sorted(set(st.pause_labels)))
        allowed = set(base)
        if allowed.issuperset(chain.from_iterable(x.paused_by_label)):  # the usual case: no reason outside them
            labs += [base] * len(x.paused_by_label)
        else:
            labs.extend(base if d.keys() <= allowed else tuple(sorted({*base, *d})) for d in x.paused_by_label)
    alike = len(per) == 1 and bool(labs) and labs.count(labs[0]) == len(labs)  # one PBX, every row the same labels
    paused_p = render.memo("agent_paused", (p, labs[0] if alike else labs), lambda: _paused_prefixes(p.rows, labs))
    if alike:  # in C
        paused: list[Any] = list(chain.from_iterable(zip(*(
            map(dict.get, c.paused_by_label, repeat(lab), repeat(0.0)) for lab in labs[0]), strict=True)))
    else:
        paused = [d.get(lab, 0.0) for d, ls in zip(c.paused_by_label, labs, strict=True) for lab in ls]
    yield h[1]
    yield from _blocks(render, "agent_paused", paused_p, paused)
    singles: list[tuple[str, Sequence[str], list[Any]]] = [
        ("talk", p.talk, c.talk_s), ("wrap", p.wrap, c.wrapup_s), ("calls", p.calls, c.answered),
        ("done", p.done, c.completed), ("rna", p.rna, c.ring_no_answer)]
    for i, (key, prefixes, values) in enumerate(singles, start=2):
        yield h[i]
        yield from _blocks(render, key, prefixes, values)
    yield h[7] + _state_text(render, p, c.state)
    since: list[Any] = c.since
    since_p, dur_p = p.since, p.dur
    seen: list[bool] | None = None
    if None in since:  # never seen logged in: no since/duration series
        seen = list(map(is_not, since, repeat(None)))
        since_p, dur_p = tuple(compress(p.since, seen)), tuple(compress(p.dur, seen))
        since = list(compress(since, seen))
    yield h[8]
    yield from _blocks(render, "agent_since", since_p, since, signed=True)
    yield h[9]
    if len(per) == 1:  # one clock for every row: in C, same arithmetic
        dur = list(map(sub, repeat(states[0][1].agents_at), since))
        if False in map(lt, repeat(0.0), dur):  # max(0.0, x) is x itself when x > 0 (not NaN, not a zero)
            dur = list(map(max, repeat(0.0), dur))
    else:
        ats = [t for (_, st), x in zip(states, per, strict=True) for t in [st.agents_at] * len(x.queue)]
        if seen is not None:
            ats = list(compress(ats, seen))
        dur = [max(0.0, at - t) for at, t in zip(ats, since, strict=True)]
    yield from _blocks(render, "agent_dur", dur_p, dur)
    occ: list[Any] = c.occupancy
    occ_p = p.occ
    if None in occ:  # no time available yet: no occupancy series
        some = list(map(is_not, occ, repeat(None)))
        occ_p, occ = tuple(compress(p.occ, some)), list(compress(occ, some))
    yield h[10]
    yield from _blocks(render, "agent_occ", occ_p, occ)


def _state_text(render: Renderer, p: _AgentPrefixes, cur: list[str]) -> bytes:
    """The ``qmon_agent_state`` lines of every row: the last scrape's, with the chunks of the rows whose state
    changed made again (a few per scrape; all 10 000 rows' chunks joined again is ~1 ms, made again ~5 ms)."""
    prev = render.memo("agent_state", None, dict)
    if prev.get("p") is p and len(prev["cur"]) == len(cur):
        changed = list(map(ne, cur, prev["cur"]))
        if True not in changed:
            return cast(bytes, prev["text"])
        chunks = list(prev["chunks"])
        for i in compress(range(len(cur)), changed):
            chunks[i] = p.state_chunk(i, cur[i])
    else:  # rows listed again (a member joined): their chunks are kept per row, looked up in C
        chunks = list(map(dict.get, map(_CHUNKS, p.rows), cur))
        if None in chunks:
            chunks = [t if t is not None else p.state_chunk(i, s)
                      for i, (t, s) in enumerate(zip(chunks, cur, strict=True))]
    text = "".join(chunks).encode()
    prev.update(p=p, cur=tuple(cur), chunks=tuple(chunks), text=text)  # tuples: see _Column
    return text


def _paused_prefixes(rows: Sequence[_Row], labs: list[tuple[str, ...]]) -> tuple[str, ...]:
    """The ``qmon_agent_paused_seconds_total`` prefixes of every row for its labels (kept per row: looked up in C)."""
    each = list(map(dict.get, map(_PAUSED_OF, rows), labs))
    if None in each:
        each = [t if t is not None else row.paused_prefixes(ls) for t, row, ls in zip(each, rows, labs, strict=True)]
    return tuple(chain.from_iterable(cast(list[tuple[str, ...]], each)))


_BLOCK = 8192  # lines per part: a column re-rendered whole (members joined) still hands the loop back often


def _blocks(render: Renderer, key: str, prefixes: Sequence[str], values: list[Any],
            signed: bool = False) -> Iterator[bytes]:
    """:meth:`Renderer.column` in parts of at most ``_BLOCK`` lines."""
    for i in range(0, len(values), _BLOCK):
        yield render.column((key, i), prefixes[i:i + _BLOCK], values[i:i + _BLOCK], signed=signed)


class _AgentPrefixes:
    """The ``name{labels} `` of every per-agent series, for one list of (pbx, queue, agent) rows (label names in
    generate_latest's sorted order: agent, pbx, queue, then reason or state). Each row's are made once, in ``made``
    (kept by the renderer): a member joining a queue costs its own ~20 prefixes, not 200 000 again (~100 ms)."""

    def __init__(self, pbxs: list[str], queues: list[str], agents: list[str], made: dict[Any, _Row]) -> None:
        keys = list(zip(pbxs, queues, agents, strict=True))
        rows: list[_Row | None] = list(map(made.get, keys))
        if None in rows:
            for i, key in enumerate(keys):
                if rows[i] is None:
                    rows[i] = made[key] = _Row(*key)
        # Tuples, made in C (members join all day: this runs again each time, ~10 ms in Python loops): kept across
        # scrapes, and the garbage collector does not walk a tuple of strings (see _Column).
        self.rows = cast(tuple[_Row, ...], tuple(rows))
        self.state_s = tuple(chain.from_iterable(map(_STATE_S, self.rows)))
        self.talk, self.wrap, self.calls, self.done, self.rna, self.since, self.dur, self.occ = (
            tuple(zip(*map(_SINGLES_OF, self.rows), strict=True)) or ((),) * len(_SINGLES))

    def state_chunk(self, i: int, state: str) -> str:
        """The ``qmon_agent_state`` lines of row ``i`` in ``state`` (1.0 for it, 0.0 for the others)."""
        row = self.rows[i]
        text = row.chunks.get(state)
        if text is None:
            text = row.chunks[state] = "".join(
                p + ("1.0\n" if s == state else "0.0\n") for p, s in zip(row.state, AGENT_STATES, strict=True))
        return text


class _Row:
    """The prefixes of one (pbx, queue, agent)'s series, and its ``qmon_agent_state`` text per state."""

    __slots__ = ("base", "chunks", "paused", "singles", "state", "state_s")

    def __init__(self, pbx: str, queue: str, agent: str) -> None:
        v = label_value
        b = self.base = f'agent="{v(agent)}",pbx="{v(pbx)}",queue="{v(queue)}"'
        self.state_s = tuple(f'qmon_agent_state_seconds_total{{{b},state="{s}"}} ' for s in TIME_STATES)
        self.singles = tuple(f"{name}{{{b}}} " for name in _SINGLES)
        self.state = tuple(f'qmon_agent_state{{{b},state="{s}"}} ' for s in AGENT_STATES)
        self.chunks: dict[str, str] = {}
        self.paused: dict[str | tuple[str, ...], str | tuple[str, ...]] = {}

    def paused_prefixes(self, labels: tuple[str, ...]) -> tuple[str, ...]:
        """:meth:`paused_prefix` of each of ``labels`` (kept per labels: rows are listed again as members join)."""
        p = self.paused.get(labels)
        if p is None:
            p = self.paused[labels] = tuple(map(self.paused_prefix, labels))
        return cast(tuple[str, ...], p)

    def paused_prefix(self, label: str) -> str:
        """The prefix of this row's ``qmon_agent_paused_seconds_total`` for a pause label."""
        p = self.paused.get(label)
        if p is None:
            p = self.paused[label] = f'qmon_agent_paused_seconds_total{{{self.base},reason="{label_value(label)}"}} '
        return cast(str, p)


_STATE_S = attrgetter("state_s")
_CHUNKS = attrgetter("chunks")
_PAUSED_OF = attrgetter("paused")
_SINGLES_OF = attrgetter("singles")
_SINGLES = ("qmon_agent_talk_seconds_total", "qmon_agent_wrapup_seconds_total", "qmon_agent_calls_total",
            "qmon_agent_completed_calls_total", "qmon_agent_ring_no_answer_total",
            "qmon_agent_state_since_timestamp_seconds", "qmon_agent_state_duration_seconds", "qmon_agent_occupancy")
