"""The accumulator of one member of one queue (or of one agent over all its queues): facts in, seconds out.

Pure bookkeeping for :class:`monitor.core.agents.AgentBoard` (definitions are in that module's docstring):
every fact first counts the time up to it into the state that held (:meth:`MemberAcc.advance`), changes a flag,
then settles the new state (:meth:`MemberAcc.settle`). Times are epoch seconds on the PBX clock.
"""

from __future__ import annotations

from dataclasses import dataclass, field

#: Exclusive time states (seconds are counted in exactly one of them while logged in), in label order.
TIME_STATES = ("available", "in_call", "wrapup", "paused", "unavailable")
_UNAVAILABLE = frozenset({4, 5})  # AST_DEVICE_INVALID, AST_DEVICE_UNAVAILABLE


@dataclass(slots=True)
class MemberAcc:
    """Counters and open intervals of one (queue, agent); see the module."""

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

    # -- facts ------------------------------------------------------------------------------------------------

    def login(self, ts: float) -> None:
        """Joined the queue at ``ts``; a repeated login is ignored."""
        if self.logged_in:
            return
        self.advance(ts)
        self.logged_in, self.login_ts, self.paused, self.wrap_end = True, ts, False, None
        self.cursor = ts
        self.settle(ts)

    def logout(self, ts: float) -> None:
        """Left the queue: the pause and the session end."""
        if not self.logged_in:
            return
        self.advance(ts)
        self.end_pause(ts)
        self.logged_in_s += max(0.0, ts - self.login_ts)
        self.logged_in, self.wrap_end = False, None
        self.state, self.since = "logged_out", ts

    def pause(self, reason: str, ts: float) -> None:
        """Paused with a raw reason (a new reason while paused starts a new interval); implies a login."""
        if not self.logged_in:
            self.login(ts)
        if self.paused and self.pause_reason == reason:
            return
        self.advance(ts)
        self.end_pause(ts)
        self.paused, self.pause_reason, self.pause_ts, self.wrap_end = True, reason, ts, None
        self.settle(ts)

    def unpause(self, ts: float) -> None:
        """Unpaused; an unpause of a logged-out member logs it in."""
        if not self.logged_in:
            self.login(ts)
        elif self.paused:
            self.advance(ts)
            self.end_pause(ts)
            self.settle(ts)

    def end_pause(self, ts: float) -> None:
        """Close the open pause interval (if any) into ``paused_by_reason``."""
        if self.paused:
            secs = max(0.0, ts - self.pause_ts)
            self.paused_by_reason[self.pause_reason] = self.paused_by_reason.get(self.pause_reason, 0.0) + secs
            self.paused, self.pause_reason = False, ""

    def device(self, status: int, ts: float) -> None:
        """Device status (4/5 = unavailable)."""
        if self.status != status:
            self.advance(ts)
            self.status = status
            if self.logged_in:
                self.settle(ts)

    def connect(self, ts: float) -> None:
        """A call answered: talking; a wrap-up in progress ends."""
        self.advance(ts)
        self.answered += 1
        self.talking += 1
        self.wrap_end = None
        self.settle(ts)

    def complete(self, talk_s: float, ts: float, wrap_s: float) -> None:
        """AgentComplete with TalkTime (s); wrap-up of ``wrap_s`` s starts."""
        self.advance(ts)
        self.talk_s += talk_s
        self.completed += 1
        self.end_call(ts, wrap_s)

    def end_call(self, ts: float, wrap_s: float) -> None:
        """One call of the member ended at ``ts`` (counted up to ``ts`` already)."""
        self.talking = max(0, self.talking - 1)
        if self.talking == 0:
            self.wrap_end = ts + wrap_s if wrap_s > 0 else None
        self.settle(ts)

