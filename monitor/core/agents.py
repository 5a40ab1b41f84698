"""Agent measures per (queue, agent): logged-in, paused by reason, talk, wrap-up, answered, ring-no-answer, state.

Fed by the tracker's handlers from AMI (``QueueMemberAdded/Removed/Pause/Status``, the ``QueueMember`` status list,
``AgentConnect/Complete/RingNoAnswer``) and by the historical report from stored ``agent_events`` and call segments,
through the same fact methods (:meth:`AgentBoard.login`, ``pause``, ``connect``...), so both share one definition.

Definitions (all durations in seconds, all times epoch seconds on the PBX clock):

* **logged in**: from ``QueueMemberAdded`` (or the first sight of a member: its ``LoginTime`` header when the
  event carries one) to ``QueueMemberRemoved`` — queue_log ADDMEMBER..REMOVEMEMBER.
* **paused** by reason: ``QueueMemberPause`` Paused 1 .. Paused 0, or the logout — queue_log PAUSE..UNPAUSE /
  REMOVEMEMBER (a PAUSEALL is one pause per queue, as queue_log writes it). The reason is AMI's ``PausedReason``
  (raw text kept); queue_log's ``ADDMEMBER|PAUSED`` has none where AMI says ``login-pause``: AMI's is shown.
  Labels are capped to the configured reasons plus ``other`` (``none`` for an empty reason): see :func:`pause_label`.
* **talk**: the sum of ``AgentComplete`` TalkTime (= queue_log COMPLETEAGENT/COMPLETECALLER talktime).
* **wrap-up** (after-call work): Asterisk has no wrap-up state on AMI. The recordings show the member's
  ``QueueMemberStatus`` back at Status 1 (not in use) within milliseconds of ``AgentComplete``; the only after-call
  time app_queue knows is ``wrapuptime`` (queues.conf, or the member's own ``Wrapuptime`` header), during which it
  offers the member no call. So wrap-up = from ``AgentComplete`` for ``wrapuptime`` seconds (the member's header if
  > 0, else the queue's configured value, default 0), cut short by the member's next call, pause or logout. With
  ``wrapuptime=0`` (every recording) it is 0, as queue_log (no wrap-up line) says.
* **state** (exclusive, for occupancy): ``in_call`` (AgentConnect..AgentComplete) > ``paused`` > ``wrapup`` >
  ``unavailable`` (device status 4/5) > ``available``. A pause taken during a call counts as ``in_call`` until the
  call ends (it still counts in paused-by-reason, as queue_log does).
* **occupancy** = (in_call + wrapup) ÷ (logged in - paused-while-idle), i.e. busy time over time available for
  work; it stays within 0..1 even when agents pause during calls. **AHT** = (talk + wrap-up) ÷ completed calls.

Facts are placed no earlier than the board's ``floor`` (the latest fact, or :meth:`AgentBoard.hold` from the
daemon's tick), and live readers snapshot at the floor: a late event never takes back seconds already shown, so the
exported counters only grow. A member seen for the first time may still start at its ``LoginTime``.
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from monitor.core import events as ev
from monitor.core.devices import channel_keys, interface_keys
from monitor.core.memberacc import TIME_STATES, MemberAcc

__all__ = ["AGENT_STATES", "ALL_QUEUES", "TIME_STATES", "AgentBoard", "AgentRow", "pause_label", "window"]

#: ``AgentRow.state`` values: the time states, plus ``logged_out`` for a member not in the queue now.
AGENT_STATES = (*TIME_STATES, "logged_out")
OTHER_REASON = "other"
NO_REASON = "none"
ALL_QUEUES = "*"  # the queue of an agent's all-queues row (AgentBoard.agents)


def pause_label(reason: str, allowed: Iterable[str]) -> str:
    """The bounded label of a free-text pause reason: itself if configured, ``none`` if empty, else ``other``."""
    r = reason.strip()
    if not r:
        return NO_REASON
    return r if r in allowed else OTHER_REASON


@dataclass(frozen=True, slots=True)
class AgentRow:
    """One member of one queue (or one agent over all queues: ``queue`` = ``*``) as of ``now``; counters only grow.

    Durations are seconds, times epoch seconds on the PBX clock.

    ``paused_s``/``paused_by_reason`` are pause intervals as queue_log has them (they may overlap talk);
    ``state_s`` is exclusive time per :data:`TIME_STATES` while logged in (they sum to ``logged_in_s``).
    """

    queue: str
    agent: str
    interface: str
    state: str  # an AGENT_STATES value
    since: float | None  # when ``state`` began (None: never seen logged in)
    pause_reason: str  # the raw PausedReason while paused, else ""
    pause_label: str  # its capped label while paused, else ""
    logged_in_s: float
    paused_s: float
    paused_by_reason: Mapping[str, float]  # raw reason -> s
    paused_by_label: Mapping[str, float]  # capped label -> s
    state_s: Mapping[str, float]
    talk_s: float
    wrapup_s: float
    answered: int  # AgentConnect (queue_log CONNECT)
    completed: int  # AgentComplete (COMPLETEAGENT/COMPLETECALLER/transfers)
    ring_no_answer: int

    @property
    def aht_s(self) -> float | None:
        """Average handle time (s): (talk + wrap-up) ÷ completed calls; None without a completed call."""
        return (self.talk_s + self.wrapup_s) / self.completed if self.completed else None

    @property
    def occupancy(self) -> float | None:
        """(in_call + wrapup) ÷ (logged in - paused while idle), 0..1; None when no time was available."""
        return occupancy(self.logged_in_s, self.state_s)


def occupancy(logged_in_s: float, state_s: Mapping[str, float]) -> float | None:
    """(in_call + wrapup) ÷ (logged in - paused while idle), 0..1; None when no time was available."""
    avail = logged_in_s - state_s.get("paused", 0.0)
    busy = state_s.get("in_call", 0.0) + state_s.get("wrapup", 0.0)
    return busy / avail if avail > 0 else None


#: What :meth:`AgentBoard.measures` returns: state_s, state, since, logged-in s, paused by reason, by label.
Measures = tuple[dict[str, float], str, "float | None", float, dict[str, float], dict[str, float]]


class AgentBoard:
    """Per (queue, agent) accumulators plus one per agent over all its queues; read through :meth:`snapshot`.

    The all-queues row (queue :data:`ALL_QUEUES`) counts an agent logged in while it is in any queue, paused
    while it is paused in every queue it is in (it can take no call), and every call of every queue.
    """

    def __init__(self, pause_reasons: Iterable[str] = (), wrapup_s: Mapping[str, float] | None = None) -> None:
        self.pause_reasons = frozenset(pause_reasons)
        self.wrapup_s = dict(wrapup_s or {})  # queue -> configured wrapuptime (s)
        self.accs: dict[tuple[str, str], MemberAcc] = {}
        self.totals: dict[str, MemberAcc] = {}
        self._queues_of: dict[str, list[MemberAcc]] = {}
        self._devices: dict[str, str] = {}  # device key -> agent name
        self._listed: set[tuple[str, str]] | None = None  # members listed by QueueStatus since resync_begin
        self._list_done = False
        # No fact is placed before this (epoch s, PBX clock): the latest fact or hold(). Snapshots read here, so what
        # one showed is never taken back by a late fact and every exported counter only grows.
        self.floor = -math.inf
        self._order: list[MemberAcc] = []  # accs sorted by (queue, agent): see ordered()
        self._keys: list[tuple[str, str]] = []  # their (queue, agent), in that order
        # (queue, agent) of every accumulator, in the order they were made (only ever appended: accumulators are
        # never removed), and of every one a fact may have changed since a reader last took this set (the /metrics
        # columns, monitor.core.agentkeep.ColumnKeeper, read those again): every fact goes through _acc/_known.
        self.created: list[tuple[str, str]] = []
        self.touched: set[tuple[str, str]] = set()

    def hold(self, t: float) -> None:
        """Time reached ``t`` (PBX clock, epoch s) without a fact: snapshots may read up to it, later facts are
        placed no earlier (a late event, e.g. AMI latency, counts from ``t``: at most a tick's worth of seconds)."""
        self.floor = max(self.floor, t)

    def _at(self, ts: float) -> float:
        self.floor = max(self.floor, ts)
        return self.floor

    def _acc(self, queue: str, agent: str) -> MemberAcc:
        self.touched.add((queue, agent))
        a = self.accs.get((queue, agent))
        if a is None:
            a = self.accs[(queue, agent)] = MemberAcc(queue, agent)
            self.created.append((queue, agent))
            self._queues_of.setdefault(agent, []).append(a)
            self.totals.setdefault(agent, MemberAcc(ALL_QUEUES, agent))
        return a

    def _known(self, queue: str, agent: str) -> MemberAcc | None:
        """The accumulator of (queue, agent) if it exists (never created), noted as touched."""
        a = self.accs.get((queue, agent))
        if a is not None:
            self.touched.add((queue, agent))
        return a

    def _sync(self, agent: str, ts: float) -> None:
        # The all-queues row follows the member rows: in any queue = logged in, paused in all = paused.
        t = self.totals[agent]
        if t.since is not None:  # only a row never logged in may start before the floor (first sight's LoginTime)
            ts = max(ts, self.floor)
        logged = [a for a in self._queues_of[agent] if a.logged_in]
        if not logged:
            t.logout(ts)
            return
        t.login(ts)
        if all(a.paused for a in logged):
            t.pause(max(logged, key=lambda a: a.pause_ts).pause_reason, ts)
        else:
            t.unpause(ts)

    def _wrap(self, a: MemberAcc) -> float:
        return a.wrapuptime_s or self.wrapup_s.get(a.queue, 0.0)

    def _remember(self, agent: str, *interfaces: str) -> None:
        for iface in interfaces:
            for k in interface_keys(iface):
                self._devices[k] = agent

    def agent_of_channel(self, channel: str) -> str | None:
        """The member whose device this channel is (``PJSIP/1001-0000002a``), else None."""
        for k in channel_keys(channel):
            agent = self._devices.get(k)
            if agent is not None:
                return agent
        return None

    # -- facts (AMI handlers and the stored history feed these; times epoch s, durations s) -------------------

    def login(self, queue: str, agent: str, ts: float, interface: str = "") -> None:
        """The member joined the queue (QueueMemberAdded / ADDMEMBER); a repeated login is ignored."""
        self._login(queue, agent, self._at(ts), interface)

    def _login(self, queue: str, agent: str, ts: float, interface: str) -> None:
        a = self._acc(queue, agent)
        if interface:
            a.interface = self.totals[agent].interface = interface
            self._remember(agent, interface)
        a.login(ts)
        self._sync(agent, ts)

    def logout(self, queue: str, agent: str, ts: float) -> None:
        """The member left the queue (QueueMemberRemoved / REMOVEMEMBER): its pause and session end."""
        ts = self._at(ts)
        if (a := self._known(queue, agent)) is not None:
            a.logout(ts)
            self._sync(agent, ts)

    def pause(self, queue: str, agent: str, reason: str, ts: float) -> None:
        """Paused with a raw reason; a new reason while paused starts a new interval. Implies a login."""
        self._pause(queue, agent, reason, self._at(ts))

    def _pause(self, queue: str, agent: str, reason: str, ts: float) -> None:
        self._acc(queue, agent).pause(reason, ts)
        self._sync(agent, ts)

    def unpause(self, queue: str, agent: str, ts: float) -> None:
        """Unpaused (Paused 0 / UNPAUSE); an unpause of a logged-out member logs it in."""
        ts = self._at(ts)
        self._acc(queue, agent).unpause(ts)
        self._sync(agent, ts)

    def device_status(self, queue: str, agent: str, status: int, ts: float) -> None:
        """The device status of a member (QueueMemberStatus Status: 4/5 = unavailable)."""
        ts = self._at(ts)
        if (a := self._known(queue, agent)) is not None:
            a.device(status, ts)
            self.totals[agent].device(status, ts)

    def connect(self, queue: str, agent: str, ts: float) -> None:
        """AgentConnect: a call answered by the member (a wrap-up in progress ends)."""
        ts = self._at(ts)
        self._acc(queue, agent).connect(ts)
        self.totals[agent].connect(ts)

    def complete(self, queue: str, agent: str, talk_s: float, ts: float) -> None:
        """AgentComplete with TalkTime (s): talk counted, wrap-up starts (``wrapuptime`` s, see the module)."""
        ts = self._at(ts)
        a = self._acc(queue, agent)
        a.complete(talk_s, ts, self._wrap(a))
        self.totals[agent].complete(talk_s, ts, self._wrap(a))

    def call_ended(self, queue: str, agent: str, ts: float) -> None:
        """An answered call closed without AgentComplete (gap, shutdown): the member is free, no talk counted."""
        ts = self._at(ts)
        a = self._known(queue, agent)
        if a is not None and a.talking:
            for x in (a, self.totals[agent]):
                x.advance(ts)
                x.end_call(ts, self._wrap(a))

    def ring_no_answer(self, queue: str, agent: str, ts: float) -> None:
        """AgentRingNoAnswer (queue_log RINGNOANSWER)."""
        self._acc(queue, agent).rna += 1
        self.totals[agent].rna += 1

    def resync_begin(self) -> None:
        """A resync starts: collect the members QueueStatus lists (``QueueMember`` entries)."""
        self._listed, self._list_done = set(), False

    def list_complete(self, name: str) -> None:
        """``QueueStatusComplete`` arrived: the member list of this resync is whole."""
        if self._listed is not None and name == "QueueStatus":
            self._list_done = True

    def resync_end(self, ts: float) -> None:
        """A whole QueueStatus list was seen: members it did not list left during the gap (logged out at ``ts``)."""
        ts = self._at(ts)
        if self._listed is not None and self._list_done:
            for (queue, agent), a in list(self.accs.items()):
                if a.logged_in and (queue, agent) not in self._listed:
                    self.logout(queue, agent, ts)
        self._listed, self._list_done = None, False

    def member_event(self, e: ev.MemberEvent, ts: float) -> None:
        """Apply a QueueMember* event (kind added/removed/status/pause/list) as the facts above."""
        ts = self._at(ts)
        if e.kind == "list" and self._listed is not None:
            self._listed.add((e.queue, e.member))
        if e.kind == "removed":
            self.logout(e.queue, e.member, ts)
            return
        a = self._acc(e.queue, e.member)
        if e.interface or e.state_interface:
            a.interface = e.interface or a.interface
            self._remember(e.member, e.interface, e.state_interface)
        if e.wrapuptime:
            a.wrapuptime_s = float(e.wrapuptime)
        if not a.logged_in:
            # First sight mid-shift: LoginTime (epoch s) tells when the session began, LastPause the pause. Only a
            # member never logged in before may start before the floor: the time of one already shown stays as shown.
            back = a.since is None and e.kind != "added"
            start = float(e.login_time) if back and 0 < e.login_time <= ts else ts
            self._login(e.queue, e.member, start, e.interface)
            if e.paused:
                since = float(e.last_pause) if back and start <= e.last_pause <= ts else ts
                self._pause(e.queue, e.member, e.paused_reason, since)
        elif e.paused:
            self.pause(e.queue, e.member, e.paused_reason, ts)
        else:
            self.unpause(e.queue, e.member, ts)
        if e.kind == "list" and not e.in_call and a.talking:
            self.call_ended(e.queue, e.member, ts)  # a status list is a fresh truth after a gap
        self.device_status(e.queue, e.member, e.status, ts)

    # -- reading --------------------------------------------------------------------------------------------

    def snapshot(self, now: float) -> list[AgentRow]:
        """Every (queue, agent) ever seen, as of ``now`` (epoch s, PBX clock; not before the last fact).

        Open intervals (session, pause, state) are counted up to ``now`` without changing the board, so a
        scrape-time collector or the API may call this freely; durations are seconds, sorted by (queue, agent).
        """
        return [self._row(a, now) for a in self.ordered()]

    def ordered(self) -> list[MemberAcc]:
        """The (queue, agent) accumulators sorted by (queue, agent); the order is kept until a member is added (then
        a new list: a reader may hold the old one)."""
        done = len(self._order)
        if done != len(self.accs):  # accumulators are only ever added
            new = self.created[done:]
            if len(new) > 32:  # a first sight of many: sorted at once
                self._keys = sorted(self.accs)
                self._order = list(map(self.accs.__getitem__, self._keys))
            else:  # a few members joined: put in place (a sort of 10 000 keys is ~4 ms)
                keys, order = list(self._keys), list(self._order)
                for key in new:
                    i = bisect_left(keys, key)
                    keys.insert(i, key)
                    order.insert(i, self.accs[key])
                self._keys, self._order = keys, order
        return self._order

    def agents(self, now: float) -> list[AgentRow]:
        """One row per agent over all its queues (queue = :data:`ALL_QUEUES`), as of ``now``; sorted by agent."""
        return [self._row(a, now) for _, a in sorted(self.totals.items())]

    def measures(self, a: MemberAcc, now: float) -> Measures:
        """One accumulator as of ``now``: (state_s, state, since, logged-in s, paused by reason, paused by label)."""
        state_s, state, since = a.counted(now)
        paused = dict(a.paused_by_reason)
        logged = a.logged_in_s
        if a.logged_in:
            logged += max(0.0, now - a.login_ts)
            if a.paused:
                paused[a.pause_reason] = paused.get(a.pause_reason, 0.0) + max(0.0, now - a.pause_ts)
        labels: dict[str, float] = {}
        for reason, secs in paused.items():
            lab = pause_label(reason, self.pause_reasons)
            labels[lab] = labels.get(lab, 0.0) + secs
        return state_s, state, since, logged, paused, labels

    def _row(self, a: MemberAcc, now: float) -> AgentRow:
        state_s, state, since, logged, paused, labels = self.measures(a, now)
        return AgentRow(
            a.queue, a.agent, a.interface, state, since, a.pause_reason if a.paused else "",
            pause_label(a.pause_reason, self.pause_reasons) if a.paused else "", logged, sum(paused.values()),
            paused, labels, state_s, a.talk_s, state_s["wrapup"], a.answered, a.completed, a.rna,
        )


def window(end: Iterable[AgentRow], start: Iterable[AgentRow]) -> list[AgentRow]:
    """The growth between two snapshots of one board (``end`` minus ``start``): the measures inside a window."""
    before = {(r.queue, r.agent): r for r in start}
    out = []
    for r in end:
        b = before.get((r.queue, r.agent))
        if b is None:
            out.append(r)
            continue

        def sub(x: Mapping[str, float], y: Mapping[str, float]) -> dict[str, float]:
            return {k: v - y.get(k, 0.0) for k, v in x.items() if v - y.get(k, 0.0) > 0}

        out.append(AgentRow(
            r.queue, r.agent, r.interface, r.state, r.since, r.pause_reason, r.pause_label,
            r.logged_in_s - b.logged_in_s, r.paused_s - b.paused_s, sub(r.paused_by_reason, b.paused_by_reason),
            sub(r.paused_by_label, b.paused_by_label),
            {k: v - b.state_s.get(k, 0.0) for k, v in r.state_s.items()}, r.talk_s - b.talk_s,
            r.wrapup_s - b.wrapup_s, r.answered - b.answered, r.completed - b.completed,
            r.ring_no_answer - b.ring_no_answer,
        ))
    return out
