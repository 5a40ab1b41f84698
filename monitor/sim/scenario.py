"""The simulated call center: a pure, seeded planner of calls (time passed in) and its ground truth.

:class:`Simulation` plans each call when it arrives (who answers, when, what happens next) and turns the
plan into AMI events with :mod:`monitor.sim.flows`; :meth:`Simulation.advance` returns the events up to a
given time in wire order. Same seed and start time, same stream: tests are reproducible.
"""

from __future__ import annotations

import heapq
import random
from dataclasses import dataclass

from monitor.sim import after, flows, talk
from monitor.sim.agi import AgiSurvey, caller_keys
from monitor.sim.emit import Bridge, Emitter, Event
from monitor.sim.live import Live
from monitor.sim.model import CallIntent, Knobs, SegmentIntent
from monitor.sim.roster import QueueSpec, Roster, Rota
from monitor.sim.showcase import Force, breaks, opening

DEFAULT_QUEUES = (
    QueueSpec("support", tuple(f"agent{i}" for i in range(1, 11)), 45, overflow="sales", share=0.45, exit_key=True),
    QueueSpec("sales", tuple(f"agent{i}" for i in range(11, 17)), 40, share=0.3),
    # Billing works shifts: its members log in 20 s into every 5 minutes and out 3.5 minutes later (staggered):
    # callers then find nobody (JOINEMPTY) or are left waiting alone (LEAVEEMPTY); both go to voicemail.
    QueueSpec("billing", ("agent17", "agent18", "agent19"), 30, share=0.25, rota=Rota(300.0, 20.0, 230.0, 6.0)),
)
PAUSE_REASONS = ("break", "lunch", "training", "admin")
EXIT_KEY = "0"


@dataclass
class _Plan:
    """One call being planned: its channels, truth, and what the script forces (if it is scripted)."""

    em: Emitter
    call: flows.Call
    intent: CallIntent
    force: Force | None = None
    rna_left: int = 0


class Simulation:
    """Plans calls as simulated time passes and yields their events in wire order."""

    def __init__(self, seed: int, start: float, queues: tuple[QueueSpec, ...] = DEFAULT_QUEUES,
                 knobs: Knobs | None = None) -> None:
        self.rng = random.Random(seed)
        self.start = start
        self.knobs = knobs or Knobs()
        self.queues = {q.name: q for q in queues}
        self.roster = Roster(queues, start)
        self.live = Live(queue_names=list(self.queues))
        self.intents: list[CallIntent] = []
        self.agi_due: list[AgiSurvey] = []  # FastAGI surveys whose AGI() has been reached, for the server to run
        self._agi_wait: list[tuple[float, int, AgiSurvey]] = []
        self._agi_owner: dict[int, CallIntent] = {}  # id(survey) -> its call, while the survey runs
        self._ids = [0]
        self._heap: list[tuple[float, int, dict[str, str]]] = []
        self._n = 0
        self._last = start
        self._free: dict[str, float] = {}
        self._recent: list[str] = []
        self._script = sorted(opening(self.roster), key=lambda f: f.at_s) if self.knobs.showcase else []
        self._shifts_until = start
        self._members = random.Random(seed + 1)  # member events: never draw from the calls' generator
        em = self._member_emitter()
        queue_of = {a: q.name for q in queues for a in q.agents}
        for q in queues:
            for agent in q.agents:
                self._free[agent] = start + 1.0
                if not self.roster.on_rota(agent):
                    em.member(start + 0.5, "QueueMemberAdded", q.name, agent, Status="1", Paused="0")
        self._push(em)
        for agent, t0, t1, reason in breaks(self.roster) if self.knobs.showcase else ():
            self.roster.pause(agent, t0, t1)
            em = self._member_emitter()
            em.member(t0, "QueueMemberPause", queue_of[agent], agent, Paused="1", PausedReason=reason)
            em.member(t1, "QueueMemberPause", queue_of[agent], agent, Paused="0", PausedReason="")
            self._push(em)
        self._next_arrival = start + 1.5
        self.arrivals_until = float("inf")

    # -- streaming -------------------------------------------------------------------------------------

    def advance(self, until: float) -> list[Event]:
        """Every event up to ``until`` (planning the calls that arrive by then), as sent on the wire."""
        self._plan_shifts(min(until, self.arrivals_until) + 600.0)
        while (due := self._next_arrival_time()) <= until and due != float("inf"):
            t, force = self._take_arrival()
            self._plan_call(t, force)
        out: list[Event] = []
        while self._agi_wait and self._agi_wait[0][0] <= until:
            self.agi_due.append(heapq.heappop(self._agi_wait)[2])
        while self._heap and self._heap[0][0] <= until:
            t, _, raw = heapq.heappop(self._heap)
            self._last = t
            headers = self.live.apply(t, raw)
            if headers is not None:
                out.append((t, headers))
        return out

    def next_time(self) -> float:
        """When the next event (or arrival) is due."""
        times = [self._next_arrival_time()]
        times += [self._heap[0][0]] if self._heap else []
        times += [self._agi_wait[0][0]] if self._agi_wait else []
        return min(times)

    def _next_arrival_time(self) -> float:
        """When the next caller (scripted or random) arrives; inf once arrivals have stopped."""
        t = min(self.start + self._script[0].at_s if self._script else float("inf"), self._next_arrival)
        return t if t <= self.arrivals_until else float("inf")

    def _take_arrival(self) -> tuple[float, Force | None]:
        """The next arrival, consumed: a scripted caller (with its script) first when it is due first."""
        if self._script and self.start + self._script[0].at_s <= self._next_arrival:
            force = self._script.pop(0)
            return self.start + force.at_s, force
        t = self._next_arrival
        self._next_arrival += self.rng.expovariate(1.0 / self.knobs.mean_interarrival_s)
        return t, None

    def _emitter(self) -> Emitter:
        return Emitter(random.Random(self.rng.getrandbits(64)), self._ids)

    def _member_emitter(self) -> Emitter:
        return Emitter(self._members, self._ids)

    def _push(self, em: Emitter) -> None:
        for t, headers in em.events:
            self._n += 1
            heapq.heappush(self._heap, (t, self._n, headers))
        em.events.clear()

    def _plan_shifts(self, until: float) -> None:
        """QueueMemberAdded/Removed of the members on a rota, for the periods starting before ``until``."""
        if until <= self._shifts_until:
            return
        changes = sorted((t, i, q.name, agent) for q in self.queues.values() for agent in q.agents
                         if self.roster.on_rota(agent)
                         for on, off in self.roster.shifts(agent, self._shifts_until, until)
                         for i, t in enumerate((on, off)))
        em = self._member_emitter()  # one emitter keeps same-time events in order: give it the changes sorted
        for t, i, queue, agent in changes:
            if i == 0:
                em.member(t, "QueueMemberAdded", queue, agent, Status="1", Paused="0")
            else:
                em.member(t, "QueueMemberRemoved", queue, agent)
        self._shifts_until = until
        self._push(em)

    # -- planning --------------------------------------------------------------------------------------

    def _number(self, force: Force | None) -> str:
        if (force is not None and force.number == "anonymous") or (force is None and \
                self.rng.random() < self.knobs.anonymous_p):
            return "anonymous"
        if force is not None and force.number == "repeat" and self._recent:
            return self._recent[0]
        if force is None and self._recent and self.rng.random() < self.knobs.repeat_p:
            return self.rng.choice(self._recent[-200:])
        number = f"555{self.rng.randrange(1000, 10000)}"
        self._recent.append(number)
        return number

    def _pick_queue(self) -> str:
        specs = list(self.queues.values())
        return self.rng.choices([q.name for q in specs], [q.share for q in specs])[0]

    def _plan_call(self, t: float, force: Force | None) -> None:
        em = self._emitter()
        number = self._number(force)
        queue = force.queue if force is not None else self._pick_queue()
        call = flows.arrive(em, t, number, queue)
        intent = CallIntent(call.c2.uid, number, t)
        self.intents.append(intent)
        plan = _Plan(em, call, intent, force, force.rna if force is not None else 0)
        k = self.knobs
        if force is not None and force.patience_s is not None:
            patience = force.patience_s
        elif self.rng.random() < k.short_abandon_p:
            patience = self.rng.uniform(0.5, 4.5)
        else:
            patience = self.rng.expovariate(1.0 / k.mean_patience_s)
        self._visit(plan, t + 0.02, queue, t + 0.02 + patience, transferable=True)
        self._done(plan)

    def _done(self, plan: _Plan) -> None:
        if plan.intent.agi is None:
            plan.intent.end = max((e[0] for e in plan.em.events), default=plan.intent.start)
        self._push(plan.em)

    def _ring_at(self, agent: str, now: float) -> float:
        """When ``agent`` can next be rung: free again, and logged in then."""
        return self.roster.next_free(agent, max(now, self._free[agent])) + 0.01

    def _visit(self, plan: _Plan, t: float, queue: str, give_up: float, transferable: bool) -> None:
        spec, call, intent = self.queues[queue], plan.call, plan.intent
        if self.roster.empty_at(queue, t) <= t:
            flows.join_empty(call, t, queue, spec.timeout)
            intent.segments.append(SegmentIntent(queue, "join_empty"))
            intent.voicemail = "join_empty"
            after.voicemail(call, t, "JOINEMPTY", queue, self.rng.uniform(8.0, 40.0))
            return
        flows.join(call, t, queue, spec.timeout)
        seg = SegmentIntent(queue, "")
        intent.segments.append(seg)
        empty = self.roster.empty_at(queue, t)
        deadline = min(give_up, t + spec.timeout, empty + self.rng.uniform(0.2, 1.0))
        k, now = self.knobs, t
        while True:
            agent = min(spec.agents, key=lambda a: (self._ring_at(a, now), a))
            ring_start = self._ring_at(agent, now)
            if ring_start >= deadline or ring_start >= empty:
                self._unanswered(plan, seg, t, deadline, give_up, None)
                return
            leg = flows.ring(call, ring_start, agent)
            rna = self.rng.random() < k.rna_p or plan.rna_left != 0
            plan.rna_left -= 1 if plan.rna_left > 0 else 0
            ring_end = ring_start + (k.ring_timeout_s if rna else self.rng.uniform(*k.ring_answer_s))
            if ring_end >= deadline:
                self._free[agent] = deadline
                ringing: flows.Leg | None = leg
                if deadline >= empty:  # the member was removed while ringing: the ring ends unanswered first
                    flows.ring_no_answer(call, leg, deadline, int((deadline - ring_start) * 1000))
                    seg.rna.append(agent)
                    ringing = None
                self._unanswered(plan, seg, t, deadline, give_up, ringing)
                return
            if rna:
                flows.ring_no_answer(call, leg, ring_end, int((ring_end - ring_start) * 1000))
                seg.rna.append(agent)
                self._free[agent] = ring_end + 0.01
                now = ring_end + k.retry_s
                continue
            seg.outcome, seg.agent = "answered", agent
            plan.rna_left = 0
            self._talk(plan, leg, t, ring_start, ring_end, transferable)
            return

    def _unanswered(self, plan: _Plan, seg: SegmentIntent, joined: float, deadline: float, give_up: float,
                    ringing: flows.Leg | None) -> None:
        call, intent, hold, rng = plan.call, plan.intent, deadline - joined, self.rng
        spec = self.queues[seg.queue]
        if deadline >= give_up:
            wants_key = plan.force.exit_key if plan.force is not None else rng.random() < self.knobs.exit_key_p
            if spec.exit_key and wants_key and hold >= 1.0:
                flows.exit_key(call, deadline, hold, ringing, EXIT_KEY, spec.timeout)
                seg.outcome = intent.voicemail = "exit_key"
                after.voicemail(call, deadline, "", seg.queue, rng.uniform(6.0, 30.0))
                return
            flows.abandon(call, deadline, hold, ringing)
            seg.outcome = "abandoned_short" if int(hold) < 5 else "abandoned"
            return
        if deadline < joined + spec.timeout:  # nobody left logged in: leavewhenempty
            flows.queue_timeout(call, deadline, hold, ringing, "LEAVEEMPTY")
            seg.outcome = intent.voicemail = "exit_empty"
            after.voicemail(call, deadline, "LEAVEEMPTY", seg.queue, rng.uniform(6.0, 30.0))
            return
        flows.queue_timeout(call, deadline, hold, ringing)
        seg.outcome = "timeout"
        forced = plan.force.overflow if plan.force is not None else None
        if spec.overflow and (forced if forced is not None else rng.random() < self.knobs.overflow_p):
            after.overflow(call, deadline, spec.overflow)
            plan.rna_left = 0
            self._visit(plan, deadline + 0.01, spec.overflow, deadline + 60 + 60 * rng.random(), transferable=False)
            return
        intent.voicemail = "timeout"
        after.voicemail(call, deadline, "TIMEOUT", seg.queue, rng.uniform(6.0, 40.0))

    def _release(self, agent: str, t: float, queue: str) -> None:
        """The agent is free again after wrap-up, sometimes after a pause (QueueMemberPause with a reason)."""
        k = self.knobs
        free = t + self.rng.uniform(*k.wrapup_s)
        # Members on a rota log out instead; planned pauses are not mixed with random ones.
        if self.rng.random() < k.pause_p and not self.roster.on_rota(agent) and agent not in self.roster.breaks:
            em = self._emitter()  # the agent's own events: not tied to the order of the call's
            reason = self.rng.choice(PAUSE_REASONS)
            em.member(free, "QueueMemberPause", queue, agent, Paused="1", PausedReason=reason)
            free += self.rng.uniform(*k.pause_s)
            em.member(free, "QueueMemberPause", queue, agent, Paused="0", PausedReason="")
            self._push(em)
        self._free[agent] = max(self._free[agent], free)

    def _talk(self, plan: _Plan, leg: flows.Leg, joined: float, ring_start: float, answered: float,
              transferable: bool) -> None:
        k, rng, call, intent = self.knobs, self.rng, plan.call, plan.intent
        hold, ring = answered - joined, answered - ring_start
        br = talk.connect(call, leg, answered, hold, ring)
        end = answered + rng.uniform(*k.talk_s)
        r = rng.random()
        how = plan.force.talk if plan.force is not None and transferable else ""
        plan.force = None if how else plan.force
        others = [q for q in self.queues.values() if q.name != leg.queue and q.agents and q.rota is None]
        if transferable and others and (how == "blind" or (not how and r < k.blind_p)):
            target = rng.choice(others).name
            talk.blind_transfer(call, leg, br, end, hold, end - answered, target)
            intent.transfers.append(("blind", leg.queue, leg.agent))
            self._release(leg.agent, end, leg.queue)
            self._visit(plan, end + 0.01, target, end + 120 + 120 * rng.random(), transferable=False)
            return
        if transferable and (how == "attended" or (not how and r < k.blind_p + k.attended_p)):
            spare = [a for q in self.queues.values() if q.rota is None for a in q.agents
                     if a != leg.agent and self._free[a] <= end]
            if spare:
                self._attended(plan, leg, br, hold, answered, end, rng.choice(spare))
                return
        if how == "caller" or (not how and rng.random() < k.caller_hangup_p):
            talk.caller_hangup(call, leg, br, end, hold, end - answered)
            self._release(leg.agent, end, leg.queue)
            return
        talk.agent_hangup(call, leg, br, end, hold, end - answered)
        self._release(leg.agent, end, leg.queue)
        self._survey(plan, end, leg.queue, leg.agent)

    def _attended(self, plan: _Plan, leg: flows.Leg, br: Bridge, hold: float, answered: float, end: float,
                  target: str) -> None:
        start = answered + min(10.0, (end - answered) / 2)
        exten = f"20{int(target.removeprefix('agent')):02d}"
        leg2 = talk.attended_transfer(plan.call, leg, br, start, hold, answered, end, exten, target)
        plan.intent.transfers.append(("attended", leg.queue, leg.agent))
        t_end = max(end, start + 3.3) + 0.5
        self._release(leg.agent, t_end, leg.queue)
        done = t_end + self.rng.uniform(*self.knobs.talk_s)
        self._free[target] = max(self._free[target], done + 5.0)
        talk.transferred_hangup(plan.call, leg2, br, done, hold, answered)
        self._survey(plan, done, leg.queue, leg.agent)

    def _survey(self, plan: _Plan, t: float, queue: str, agent: str) -> None:
        kinds, weights = zip(*self.knobs.survey_weights, strict=True)
        kind = self.rng.choices(kinds, weights)[0]
        if plan.force is not None and plan.force.survey:
            kind, plan.force = plan.force.survey, None
        score = self.rng.choices(range(1, 6), self.knobs.score_weights)[0]
        if self.knobs.survey_via == "agi":
            plan.intent.agi = AgiSurvey(plan.call, queue, agent, caller_keys(kind, score, self.rng))
            self._agi_owner[id(plan.intent.agi)] = plan.intent
            after.agi_start(plan.call, t, queue, self.knobs.agi_url)
            self._n += 1
            heapq.heappush(self._agi_wait, (t, self._n, plan.intent.agi))
            return
        kind = "HANGUP" if kind == "DECLINE" else kind  # the lab's Read() survey has no "decline" key
        digit = str(score) if kind == "OK" else self.rng.choice("06789")
        after.survey(plan.call, t, queue, agent, kind, digit)
        if kind != "HANGUP":
            plan.intent.survey = (kind, score if kind == "OK" else None)

    # -- the FastAGI survey, live (survey_via="agi") ----------------------------------------------------

    def now_for(self, t: float) -> float:
        """A time for events made now: ``t``, but never before what was already sent."""
        return max(t, self._last + 0.000004)

    def agi_event(self, s: AgiSurvey, t: float, kind: str, name: str = "", value: str = "") -> None:
        """Events the running FastAGI conversation causes: a ``var`` set, the caller ``gone``, the ``end``."""
        t = self.now_for(t)
        if kind == "var":
            after.agi_var(s.call, t, name, value)
        elif kind == "gone":
            after.agi_caller_gone(s.call, t)
        else:
            after.agi_end(s.call, t, value)
            owner = self._agi_owner.pop(id(s))
            owner.end = max((e[0] for e in s.call.em.events), default=t)
        self._push(s.call.em)

    def agi_headers(self, s: AgiSurvey) -> dict[str, str]:
        """What the survey's channel looks like now (for the ``agi_*`` request headers)."""
        c2 = s.call.c2
        return {"channel": self.live.resolve(c2.name), "uniqueid": self.live.resolve(c2.uid),
                "linkedid": self.live.resolve(s.call.c1.uid), "callerid": c2.cid_num, "calleridname": c2.cid_name,
                "context": c2.context, "extension": c2.exten, "priority": str(c2.priority - 1)}


def generate(seed: int, start: float, duration: float, **kw: object) -> tuple[list[Event], list[CallIntent], Live]:
    """Every event of ``duration`` seconds of simulated traffic plus the tail of calls still running."""
    sim = Simulation(seed, start, **kw)  # type: ignore[arg-type]
    events = sim.advance(start + duration)
    sim.arrivals_until = start + duration  # no new callers: let the calls in progress finish
    events += sim.advance(float("inf"))
    started = [i for i in sim.intents if i.start <= start + duration]
    return events, started, sim.live
