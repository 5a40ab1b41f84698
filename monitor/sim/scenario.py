"""The simulated call center: a pure, seeded planner of calls (time passed in) and its ground truth.

:class:`Simulation` plans each call when it arrives (who answers, when, what happens next) and turns the
plan into AMI events with :mod:`monitor.sim.flows`; :meth:`Simulation.advance` returns the events up to a
given time in wire order. Same seed and start time, same stream: tests are reproducible.
"""

from __future__ import annotations

import heapq
import random
from dataclasses import dataclass, field

from monitor.sim import after, flows, talk
from monitor.sim.emit import Bridge, Emitter, Event
from monitor.sim.live import Live


@dataclass(frozen=True)
class QueueSpec:
    """A queue: its members, Queue() timeout and where a timed-out caller may overflow to."""

    name: str
    agents: tuple[str, ...]
    timeout: int = 60
    overflow: str | None = None


DEFAULT_QUEUES = (
    QueueSpec("support", ("agent1", "agent2", "agent3", "agent4"), 45, overflow="sales"),
    QueueSpec("sales", ("agent5", "agent6", "agent7"), 40),
    QueueSpec("billing", (), 30),  # nobody logged in: every caller goes straight to voicemail
)
PAUSE_REASONS = ("break", "lunch", "training", "admin")


@dataclass
class SegmentIntent:
    """What the planner decided for one queue visit."""

    queue: str
    outcome: str
    agent: str | None = None
    rna: list[str] = field(default_factory=list)


@dataclass
class CallIntent:
    """Ground truth of one call, as planned."""

    uid: str  # placeholder of the queue channel's Uniqueid; resolve with Live.resolve
    caller: str
    start: float
    segments: list[SegmentIntent] = field(default_factory=list)
    transfers: list[tuple[str, str, str]] = field(default_factory=list)  # (type, queue, from agent)
    voicemail: str | None = None
    survey: tuple[str, int | None] | None = None


@dataclass
class Knobs:
    """Traffic and behaviour (the defaults make a lively demo with every outcome within minutes)."""

    mean_interarrival_s: float = 20.0
    mean_patience_s: float = 90.0
    short_abandon_p: float = 0.07
    ring_answer_s: tuple[float, float] = (2.0, 9.0)
    rna_p: float = 0.12
    ring_timeout_s: float = 15.0
    retry_s: float = 5.0
    talk_s: tuple[float, float] = (20.0, 150.0)
    wrapup_s: tuple[float, float] = (3.0, 15.0)
    pause_p: float = 0.08
    pause_s: tuple[float, float] = (60.0, 420.0)
    blind_p: float = 0.06
    attended_p: float = 0.05
    caller_hangup_p: float = 0.2
    overflow_p: float = 0.5
    repeat_p: float = 0.25
    billing_p: float = 0.06
    sales_p: float = 0.35
    survey_weights: tuple[tuple[str, float], ...] = (("OK", 0.6), ("INVALID", 0.05), ("NOINPUT", 0.15),
                                                     ("HANGUP", 0.2))
    score_weights: tuple[float, ...] = (0.07, 0.08, 0.15, 0.3, 0.4)


class Simulation:
    """Plans calls as simulated time passes and yields their events in wire order."""

    def __init__(self, seed: int, start: float, queues: tuple[QueueSpec, ...] = DEFAULT_QUEUES,
                 knobs: Knobs | None = None) -> None:
        self.rng = random.Random(seed)
        self.start = start
        self.knobs = knobs or Knobs()
        self.queues = {q.name: q for q in queues}
        self.live = Live(queue_names=list(self.queues))
        self.intents: list[CallIntent] = []
        self._ids = [0]
        self._heap: list[tuple[float, int, dict[str, str]]] = []
        self._n = 0
        self._free: dict[str, float] = {}
        self._recent: list[str] = []
        em = self._emitter()
        for q in queues:
            for agent in q.agents:
                self._free[agent] = start + 1.0
                em.member(start + 0.5, "QueueMemberAdded", q.name, agent, Status="1", Paused="0")
        self._push(em)
        self._next_arrival = start + 1.5
        self.arrivals_until = float("inf")

    # -- streaming -------------------------------------------------------------------------------------

    def advance(self, until: float) -> list[Event]:
        """Every event up to ``until`` (planning the calls that arrive by then), as sent on the wire."""
        while self._next_arrival <= until and self._next_arrival <= self.arrivals_until:
            self._plan_call(self._next_arrival)
            self._next_arrival += self.rng.expovariate(1.0 / self.knobs.mean_interarrival_s)
        out: list[Event] = []
        while self._heap and self._heap[0][0] <= until:
            t, _, raw = heapq.heappop(self._heap)
            out.append((t, self.live.apply(t, raw)))
        return out

    def next_time(self) -> float:
        """When the next event (or arrival) is due."""
        arrival = self._next_arrival if self._next_arrival <= self.arrivals_until else float("inf")
        return min(self._heap[0][0] if self._heap else arrival, arrival)

    def _emitter(self) -> Emitter:
        return Emitter(random.Random(self.rng.getrandbits(64)), self._ids)

    def _push(self, em: Emitter) -> None:
        for t, headers in em.events:
            self._n += 1
            heapq.heappush(self._heap, (t, self._n, headers))
        em.events.clear()

    # -- planning --------------------------------------------------------------------------------------

    def _number(self) -> str:
        if self._recent and self.rng.random() < self.knobs.repeat_p:
            return self.rng.choice(self._recent[-200:])
        number = f"555{self.rng.randrange(1000, 10000)}"
        self._recent.append(number)
        return number

    def _pick_queue(self) -> str:
        r = self.rng.random()
        names = list(self.queues)
        if "billing" in self.queues and r < self.knobs.billing_p:
            return "billing"
        if "sales" in self.queues and r < self.knobs.billing_p + self.knobs.sales_p:
            return "sales"
        return names[0]

    def _plan_call(self, t: float) -> None:
        em = self._emitter()
        number, queue = self._number(), self._pick_queue()
        call = flows.arrive(em, t, number, queue)
        intent = CallIntent(call.c2.uid, number, t)
        self.intents.append(intent)
        k = self.knobs
        patience = (self.rng.uniform(0.5, 4.5) if self.rng.random() < k.short_abandon_p
                    else self.rng.expovariate(1.0 / k.mean_patience_s))
        self._visit(em, call, intent, t + 0.02, queue, t + 0.02 + patience, transferable=True)
        self._push(em)

    def _visit(self, em: Emitter, call: flows.Call, intent: CallIntent, t: float, queue: str, give_up: float,
               transferable: bool) -> None:
        spec = self.queues[queue]
        if not spec.agents:
            flows.join_empty(call, t, queue, spec.timeout)
            intent.segments.append(SegmentIntent(queue, "join_empty"))
            intent.voicemail = "join_empty"
            after.voicemail(call, t, "JOINEMPTY", queue, self.rng.uniform(8.0, 40.0))
            return
        flows.join(call, t, queue, spec.timeout)
        seg = SegmentIntent(queue, "")
        intent.segments.append(seg)
        deadline = min(give_up, t + spec.timeout)
        k, now = self.knobs, t
        while True:
            agent = min(spec.agents, key=lambda a: (self._free[a], a))
            ring_start = max(now, self._free[agent]) + 0.01
            if ring_start >= deadline:
                self._unanswered(em, call, intent, seg, t, deadline, give_up, None)
                return
            leg = flows.ring(call, ring_start, agent)
            rna = self.rng.random() < k.rna_p
            ring_end = ring_start + (k.ring_timeout_s if rna else self.rng.uniform(*k.ring_answer_s))
            if ring_end >= deadline:
                self._free[agent] = deadline
                self._unanswered(em, call, intent, seg, t, deadline, give_up, leg)
                return
            if rna:
                flows.ring_no_answer(call, leg, ring_end, int((ring_end - ring_start) * 1000))
                seg.rna.append(agent)
                self._free[agent] = ring_end + 0.01
                now = ring_end + k.retry_s
                continue
            seg.outcome, seg.agent = "answered", agent
            self._talk(em, call, intent, leg, t, ring_start, ring_end, transferable)
            return

    def _unanswered(self, em: Emitter, call: flows.Call, intent: CallIntent, seg: SegmentIntent, joined: float,
                    deadline: float, give_up: float, ringing: flows.Leg | None) -> None:
        hold = deadline - joined
        if deadline >= give_up:
            flows.abandon(call, deadline, hold, ringing)
            seg.outcome = "abandoned_short" if int(hold) < 5 else "abandoned"
            return
        flows.queue_timeout(call, deadline, hold, ringing)
        seg.outcome = "timeout"
        spec = self.queues[seg.queue]
        if spec.overflow and self.rng.random() < self.knobs.overflow_p:
            after.overflow(call, deadline, spec.overflow)
            self._visit(em, call, intent, deadline + 0.01, spec.overflow, deadline + 60 + 60 * self.rng.random(),
                        transferable=False)
            return
        intent.voicemail = "timeout"
        after.voicemail(call, deadline, "TIMEOUT", seg.queue, self.rng.uniform(6.0, 40.0))

    def _release(self, agent: str, t: float, queue: str, em: Emitter) -> None:
        """The agent is free again after wrap-up, sometimes after a pause (QueueMemberPause with a reason)."""
        k = self.knobs
        free = t + self.rng.uniform(*k.wrapup_s)
        if self.rng.random() < k.pause_p:
            reason = self.rng.choice(PAUSE_REASONS)
            em.member(free, "QueueMemberPause", queue, agent, Paused="1", PausedReason=reason)
            free += self.rng.uniform(*k.pause_s)
            em.member(free, "QueueMemberPause", queue, agent, Paused="0", PausedReason="")
        self._free[agent] = max(self._free[agent], free)

    def _talk(self, em: Emitter, call: flows.Call, intent: CallIntent, leg: flows.Leg, joined: float,
              ring_start: float, answered: float, transferable: bool) -> None:
        k, rng = self.knobs, self.rng
        hold, ring = answered - joined, answered - ring_start
        br = talk.connect(call, leg, answered, hold, ring)
        end = answered + rng.uniform(*k.talk_s)
        r = rng.random()
        others = [q for q in self.queues.values() if q.name != leg.queue and q.agents]
        if transferable and others and r < k.blind_p:
            target = rng.choice(others).name
            talk.blind_transfer(call, leg, br, end, hold, end - answered, target)
            intent.transfers.append(("blind", leg.queue, leg.agent))
            self._release(leg.agent, end, leg.queue, em)
            self._visit(em, call, intent, end + 0.01, target, end + 120 + 120 * rng.random(), transferable=False)
            return
        if transferable and r < k.blind_p + k.attended_p:
            spare = [a for q in self.queues.values() for a in q.agents if a != leg.agent and self._free[a] <= end]
            if spare:
                self._attended(em, call, intent, leg, br, hold, answered, end, rng.choice(spare))
                return
        if rng.random() < k.caller_hangup_p:
            talk.caller_hangup(call, leg, br, end, hold, end - answered)
            self._release(leg.agent, end, leg.queue, em)
            return
        talk.agent_hangup(call, leg, br, end, hold, end - answered)
        self._release(leg.agent, end, leg.queue, em)
        self._survey(call, intent, end, leg.queue, leg.agent)

    def _attended(self, em: Emitter, call: flows.Call, intent: CallIntent, leg: flows.Leg, br: Bridge,
                  hold: float, answered: float, end: float, target: str) -> None:
        start = answered + min(10.0, (end - answered) / 2)
        exten = f"20{int(target.removeprefix('agent')):02d}"
        leg2 = talk.attended_transfer(call, leg, br, start, hold, answered, end, exten, target)
        intent.transfers.append(("attended", leg.queue, leg.agent))
        t_end = max(end, start + 3.3) + 0.5
        self._release(leg.agent, t_end, leg.queue, em)
        done = t_end + self.rng.uniform(*self.knobs.talk_s)
        self._free[target] = max(self._free[target], done + 5.0)
        talk.transferred_hangup(call, leg2, br, done, hold, answered)
        self._survey(call, intent, done, leg.queue, leg.agent)

    def _survey(self, call: flows.Call, intent: CallIntent, t: float, queue: str, agent: str) -> None:
        kinds, weights = zip(*self.knobs.survey_weights, strict=True)
        kind = self.rng.choices(kinds, weights)[0]
        score = self.rng.choices(range(1, 6), self.knobs.score_weights)[0]
        digit = str(score) if kind == "OK" else self.rng.choice("06789")
        after.survey(call, t, queue, agent, kind, digit)
        if kind != "HANGUP":
            intent.survey = (kind, score if kind == "OK" else None)


def generate(seed: int, start: float, duration: float, **kw: object) -> tuple[list[Event], list[CallIntent], Live]:
    """Every event of ``duration`` seconds of simulated traffic plus the tail of calls still running."""
    sim = Simulation(seed, start, **kw)  # type: ignore[arg-type]
    events = sim.advance(start + duration)
    sim.arrivals_until = start + duration  # no new callers: let the calls in progress finish
    events += sim.advance(float("inf"))
    started = [i for i in sim.intents if i.start <= start + duration]
    return events, started, sim.live
