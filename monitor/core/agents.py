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
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from monitor.core import events as ev

#: Exclusive time states (seconds are counted in exactly one of them while logged in), in label order.
TIME_STATES = ("available", "in_call", "wrapup", "paused", "unavailable")
#: ``AgentRow.state`` values: the time states, plus ``logged_out`` for a member not in the queue now.
AGENT_STATES = (*TIME_STATES, "logged_out")
OTHER_REASON = "other"
NO_REASON = "none"
_UNAVAILABLE = frozenset({4, 5})  # AST_DEVICE_INVALID, AST_DEVICE_UNAVAILABLE
_CHAN_SUFFIX = re.compile(r"(-[0-9a-fA-F]{6,})?(;\d+)?$")


def pause_label(reason: str, allowed: Iterable[str]) -> str:
    """The bounded label of a free-text pause reason: itself if configured, ``none`` if empty, else ``other``."""
    r = reason.strip()
    if not r:
        return NO_REASON
    return r if r in allowed else OTHER_REASON


def device_keys(interface: str) -> set[str]:
    """Keys identifying a member's device: ``PJSIP/1001`` -> {``pjsip/1001``, ``ext:1001``}; ``hint:1001@ctx`` too.

    A Local member (``Local/1001@from-queue/n``, FreePBX style) matches a phone channel of the same extension.
    """
    s = interface.strip()
    if not s:
        return set()
    if s.lower().startswith("hint:"):
        return {"ext:" + s[5:].split("@", 1)[0]}
    s = s.removesuffix("/n")
    _, _, resource = s.partition("/")
    keys = {s.lower()}
    if resource:
        keys.add("ext:" + resource.split("@", 1)[0].split("/", 1)[0])
    return keys


def channel_keys(channel: str) -> set[str]:
    """Device keys of a channel name: ``PJSIP/1001-0000002a`` -> keys of ``PJSIP/1001`` (see :func:`device_keys`)."""
    return device_keys(_CHAN_SUFFIX.sub("", channel.strip()))


@dataclass(frozen=True, slots=True)
class AgentRow:
    """One member of one queue as of ``now`` (seconds; times epoch s, PBX clock); counters only grow.

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
        avail = self.logged_in_s - self.state_s.get("paused", 0.0)
        busy = self.state_s.get("in_call", 0.0) + self.state_s.get("wrapup", 0.0)
        return busy / avail if avail > 0 else None


@dataclass(slots=True)
class _Acc:
    queue: str
    agent: str
    interface: str = ""
    logged_in: bool = False
    login_ts: float = 0.0
    logged_in_s: float = 0.0
    paused: bool = False
    pause_reason: str = ""
    pause_ts: float = 0.0
    paused_by_reason: dict[str, float] = field(default_factory=dict)
    status: int = 1
    talking: int = 0
    wrap_end: float | None = None
    wrapuptime_s: float = 0.0
    state_s: dict[str, float] = field(default_factory=lambda: dict.fromkeys(TIME_STATES, 0.0))
    cursor: float = 0.0  # time up to which state_s is counted
    state: str = "logged_out"
    since: float | None = None
    talk_s: float = 0.0
    answered: int = 0
    completed: int = 0
    rna: int = 0

    def time_state(self, t: float, wrap: bool = True) -> str:
        if not self.logged_in:
            return "logged_out"
        if self.talking > 0:
            return "in_call"
        if self.paused:
            return "paused"
        if wrap and self.wrap_end is not None and t < self.wrap_end:
            return "wrapup"
        if self.status in _UNAVAILABLE:
            return "unavailable"
        return "available"

    def counted(self, t: float) -> tuple[dict[str, float], str, float | None]:
        """state_s as of ``t`` (not stored), the state at ``t`` and since when."""
        out = dict(self.state_s)
        if not self.logged_in or t <= self.cursor:
            return out, self.state, self.since
        state, since, cur = self.state, self.since, self.cursor
        if state == "wrapup" and self.wrap_end is not None and self.wrap_end < t:
            out["wrapup"] += max(0.0, self.wrap_end - cur)
            cur = max(cur, self.wrap_end)
            state, since = self.time_state(t, wrap=False), self.wrap_end
        out[state] = out.get(state, 0.0) + (t - cur)
        return out, state, since

    def advance(self, t: float) -> None:
        """Count the time up to ``t`` into the state(s) that held."""
        if t > self.cursor:
            self.state_s, state, since = self.counted(t)
            if state != self.state:
                self.wrap_end = None
            self.state, self.since = state, since
            self.cursor = t

    def settle(self, t: float) -> None:
        """After a fact changed: the state from ``t`` on."""
        state = self.time_state(t)
        if state != self.state:
            self.state, self.since = state, t
        self.cursor = max(self.cursor, t)


class AgentBoard:
    """Per (queue, agent) accumulators; read through :meth:`snapshot` (a scrape-time collector or the API)."""

    def __init__(self, pause_reasons: Iterable[str] = (), wrapup_s: Mapping[str, float] | None = None) -> None:
        self.pause_reasons = frozenset(pause_reasons)
        self.wrapup_s = dict(wrapup_s or {})  # queue -> configured wrapuptime (s)
        self.accs: dict[tuple[str, str], _Acc] = {}
        self._devices: dict[str, str] = {}  # device key -> agent name

    def _acc(self, queue: str, agent: str) -> _Acc:
        a = self.accs.get((queue, agent))
        if a is None:
            a = self.accs[(queue, agent)] = _Acc(queue, agent)
        return a

    def _remember(self, agent: str, *interfaces: str) -> None:
        for iface in interfaces:
            for k in device_keys(iface):
                self._devices[k] = agent

    def agent_of_channel(self, channel: str) -> str | None:
        """The member whose device this channel is (``PJSIP/1001-0000002a``), else None."""
        for k in channel_keys(channel):
            agent = self._devices.get(k)
            if agent is not None:
                return agent
        return None

    # -- facts (AMI handlers and the stored history feed these) -----------------------------------------

    def login(self, queue: str, agent: str, ts: float, interface: str = "") -> None:
        """The member joined the queue at ``ts`` (QueueMemberAdded / ADDMEMBER); a repeated login is ignored."""
        a = self._acc(queue, agent)
        if interface:
            a.interface = interface
            self._remember(agent, interface)
        if a.logged_in:
            return
        a.advance(ts)
        a.logged_in, a.login_ts, a.paused, a.wrap_end = True, ts, False, None
        a.cursor = ts
        a.settle(ts)

    def logout(self, queue: str, agent: str, ts: float) -> None:
        """The member left the queue (QueueMemberRemoved / REMOVEMEMBER): its pause and session end."""
        a = self.accs.get((queue, agent))
        if a is None or not a.logged_in:
            return
        a.advance(ts)
        self._end_pause(a, ts)
        a.logged_in_s += max(0.0, ts - a.login_ts)
        a.logged_in, a.wrap_end = False, None
        a.state, a.since = "logged_out", ts

    def pause(self, queue: str, agent: str, reason: str, ts: float) -> None:
        """Paused with a (raw) reason; a new reason while paused starts a new interval. Implies a login."""
        a = self._acc(queue, agent)
        if not a.logged_in:
            self.login(queue, agent, ts)
        if a.paused and a.pause_reason == reason:
            return
        a.advance(ts)
        self._end_pause(a, ts)
        a.paused, a.pause_reason, a.pause_ts, a.wrap_end = True, reason, ts, None
        a.settle(ts)

    def unpause(self, queue: str, agent: str, ts: float) -> None:
        """Unpaused (Paused 0 / UNPAUSE); an unpause of a logged-out member logs it in."""
        a = self._acc(queue, agent)
        if not a.logged_in:
            self.login(queue, agent, ts)
            return
        if not a.paused:
            return
        a.advance(ts)
        self._end_pause(a, ts)
        a.settle(ts)

    def device_status(self, queue: str, agent: str, status: int, ts: float) -> None:
        """The device status of a logged-in member (QueueMemberStatus Status: 4/5 = unavailable)."""
        a = self.accs.get((queue, agent))
        if a is None or a.status == status:
            return
        a.advance(ts)
        a.status = status
        if a.logged_in:
            a.settle(ts)

    def connect(self, queue: str, agent: str, ts: float) -> None:
        """AgentConnect: a call answered by the member (a wrap-up in progress ends)."""
        a = self._acc(queue, agent)
        a.advance(ts)
        a.answered += 1
        a.talking += 1
        a.wrap_end = None
        a.settle(ts)

    def complete(self, queue: str, agent: str, talk_s: float, ts: float) -> None:
        """AgentComplete with TalkTime (s): talk counted, wrap-up starts (``wrapuptime`` s, see the module)."""
        a = self._acc(queue, agent)
        a.advance(ts)
        a.talk_s += talk_s
        a.completed += 1
        self._end_call(a, ts)

    def call_ended(self, queue: str, agent: str, ts: float) -> None:
        """An answered call closed without AgentComplete (gap, shutdown): the member is free, no talk counted."""
        a = self.accs.get((queue, agent))
        if a is None or a.talking == 0:
            return
        a.advance(ts)
        self._end_call(a, ts)

    def ring_no_answer(self, queue: str, agent: str, ts: float) -> None:
        """AgentRingNoAnswer (queue_log RINGNOANSWER)."""
        self._acc(queue, agent).rna += 1

    def _end_call(self, a: _Acc, ts: float) -> None:
        a.talking = max(0, a.talking - 1)
        if a.talking == 0:
            wrap = a.wrapuptime_s or self.wrapup_s.get(a.queue, 0.0)
            a.wrap_end = ts + wrap if wrap > 0 else None
        a.settle(ts)

    def _end_pause(self, a: _Acc, ts: float) -> None:
        if a.paused:
            a.paused_by_reason[a.pause_reason] = a.paused_by_reason.get(a.pause_reason, 0.0) + max(
                0.0, ts - a.pause_ts)
            a.paused, a.pause_reason = False, ""

    def member_event(self, e: ev.MemberEvent, ts: float) -> None:
        """Apply a QueueMember* event (kind added/removed/status/pause/list) as the facts above."""
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
            # First sight mid-shift: LoginTime (epoch s) tells when the session began.
            start = float(e.login_time) if e.kind != "added" and 0 < e.login_time <= ts else ts
            self.login(e.queue, e.member, start)
            if e.paused:
                since = float(e.last_pause) if e.kind != "added" and start <= e.last_pause <= ts else ts
                self.pause(e.queue, e.member, e.paused_reason, since)
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
        scrape-time collector may call this freely; durations are seconds, sorted by (queue, agent).
        """
        return [self._row(a, now) for _, a in sorted(self.accs.items())]

    def _row(self, a: _Acc, now: float) -> AgentRow:
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
