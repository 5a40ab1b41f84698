"""Queues, their members and when members are logged in (a rota: shifts that repeat).

Pure arithmetic on simulated time: who can be rung at ``t``, when a queue next has nobody logged in (then callers
cannot join it: JOINEMPTY; callers waiting then leave it: LEAVEEMPTY, queue_log EXITEMPTY).
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Rota:
    """Members logged in from ``on_s`` to ``off_s`` of every ``period_s`` (s), the i-th ``stagger_s * i`` later."""

    period_s: float
    on_s: float
    off_s: float
    stagger_s: float = 0.0

    def window(self, i: int) -> tuple[float, float]:
        """(login, logout) offsets of the i-th member in a period, s."""
        return self.on_s + i * self.stagger_s, self.off_s + i * self.stagger_s


@dataclass(frozen=True)
class QueueSpec:
    """A queue: members, Queue() timeout, overflow target, share of the traffic, exit key, rota (None: always in)."""

    name: str
    agents: tuple[str, ...]
    timeout: int = 60
    overflow: str | None = None
    share: float = 1.0
    exit_key: bool = False  # the queue has context= (a key pressed while waiting: EXITWITHKEY)
    rota: Rota | None = None


class Roster:
    """Who is logged in when, from the queues' specs and the simulation's start time."""

    def __init__(self, queues: tuple[QueueSpec, ...], start: float) -> None:
        self.start = start
        self.queues = {q.name: q for q in queues}
        self._of: dict[str, tuple[Rota, int]] = {}
        self.breaks: dict[str, list[tuple[float, float]]] = {}  # paused from, to (s): nobody rings them then
        for q in queues:
            if q.rota is not None:
                for i, a in enumerate(q.agents):
                    self._of[a] = (q.rota, i)

    def on_rota(self, agent: str) -> bool:
        """Whether the agent logs in and out (else: logged in from the start, for good)."""
        return agent in self._of

    def pause(self, agent: str, start: float, end: float) -> None:
        """A planned pause: the agent is not rung from ``start`` to ``end``."""
        self.breaks.setdefault(agent, []).append((start, end))

    def next_free(self, agent: str, t: float) -> float:
        """The first time >= ``t`` the agent is logged in and not on a planned pause."""
        while True:
            t2 = self.next_on(agent, t)
            for start, end in self.breaks.get(agent, ()):
                if start <= t2 < end:
                    t2 = end
            if t2 == t:
                return t
            t = t2

    def next_on(self, agent: str, t: float) -> float:
        """The first time >= ``t`` the agent is logged in (``t`` itself when logged in)."""
        if agent not in self._of:
            return t
        rota, i = self._of[agent]
        on, off = rota.window(i)
        k = math.floor((t - self.start) / rota.period_s)
        for cycle in (k - 1, k, k + 1):
            base = self.start + cycle * rota.period_s
            if t < base + off:
                return max(t, base + on)
        return self.start + (k + 1) * rota.period_s + on  # pragma: no cover - windows shorter than a period

    def logged_in(self, agent: str, t: float) -> bool:
        """Whether the agent is a member at ``t``."""
        return self.next_on(agent, t) == t

    def empty_at(self, queue: str, t: float) -> float:
        """The first time >= ``t`` at which nobody is logged in to ``queue`` (inf: never)."""
        spec = self.queues[queue]
        if not spec.agents:
            return t
        if spec.rota is None:
            return math.inf
        if not any(self.logged_in(a, t) for a in spec.agents):
            return t
        last_off = max(spec.rota.window(i)[1] for i in range(len(spec.agents)))
        k = math.floor((t - self.start) / spec.rota.period_s)
        for cycle in (k - 1, k, k + 1):
            end = self.start + cycle * spec.rota.period_s + last_off
            if end >= t:
                return end
        return math.inf  # pragma: no cover

    def shifts(self, agent: str, since: float, until: float) -> list[tuple[float, float]]:
        """The agent's (login, logout) times of the periods starting in [since, until)."""
        rota, i = self._of[agent]
        on, off = rota.window(i)
        out = []
        k = max(0, math.ceil((since - self.start) / rota.period_s))
        while self.start + k * rota.period_s < until:
            base = self.start + k * rota.period_s
            out.append((base + on, base + off))
            k += 1
        return out
