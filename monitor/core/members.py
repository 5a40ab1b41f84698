"""Queue members and their live state (for gauges and the agent-state history)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from monitor.core import events as ev
from monitor.core.records import MemberNote

MEMBER_STATES = ("available", "in_call", "ringing", "paused", "unavailable")
_NONE = dict.fromkeys(MEMBER_STATES, 0)
# Asterisk device states: 0 unknown, 1 not in use, 2 in use, 3 busy, 4 invalid, 5 unavailable,
# 6 ringing, 7 ring+inuse, 8 on hold.
_STATUS_STATE = {2: "in_call", 3: "in_call", 4: "unavailable", 5: "unavailable", 6: "ringing", 7: "ringing",
                 8: "in_call"}


@dataclass(slots=True)
class Member:
    """A queue member as last reported by Asterisk, plus what the tracker knows of its calls."""

    queue: str
    name: str
    interface: str
    status: int = 1
    paused: bool = False
    paused_reason: str = ""
    ringing: int = 0
    in_call: int = 0

    @property
    def state(self) -> str:
        """One of MEMBER_STATES; ringing/in_call from queue events win over the device status."""
        if self.paused:
            return "paused"
        if self.in_call > 0:
            return "in_call"
        if self.ringing > 0:
            return "ringing"
        # Local-channel members report INUSE (2) while ringing, so only trust status when idle per events.
        state = _STATUS_STATE.get(self.status, "available")
        return "available" if state in ("in_call", "ringing") else state


class Members:
    """All members of all queues, keyed by (queue, member name)."""

    def __init__(self) -> None:
        self.by_key: dict[tuple[str, str], Member] = {}
        self.queues: set[str] = set()
        # What counts_by_queue last counted (queue -> state -> members; each member's state) and the members changed
        # since (every change goes through the methods here): a scrape counts those again, not all 10 000.
        self._tally: dict[str, dict[str, int]] | None = None
        self._counted: dict[tuple[str, str], str] = {}
        self._touched: set[tuple[str, str]] = set()

    def apply(self, e: ev.MemberEvent, ts: float) -> MemberNote | None:
        """Update from a QueueMember* event; returns a note for logins/logouts/pauses."""
        self.queues.add(e.queue)
        key = (e.queue, e.member)
        self._touched.add(key)
        m = self.by_key.get(key)
        if e.kind == "removed":
            self.by_key.pop(key, None)
            return MemberNote(e.queue, e.member, e.interface, "logout", "", ts)
        note: MemberNote | None = None
        if m is None:
            m = Member(e.queue, e.member, e.interface, e.status, e.paused, e.paused_reason)
            self.by_key[key] = m
            if e.kind == "added":
                note = MemberNote(e.queue, e.member, e.interface, "login", "", ts)
            if e.paused and e.kind in ("added", "pause"):
                note = MemberNote(e.queue, e.member, e.interface, "pause", e.paused_reason, ts)
            return note
        if e.paused != m.paused:
            change = "pause" if e.paused else "unpause"
            note = MemberNote(e.queue, e.member, e.interface, change, e.paused_reason if e.paused else "", ts)
        m.status = e.status
        m.paused = e.paused
        m.paused_reason = e.paused_reason if e.paused else ""
        if e.interface:
            m.interface = e.interface
        if e.kind == "list" and not e.in_call:
            # A status list is a fresh truth: forget call state that may be stale after a gap.
            m.in_call = 0
        return note

    def get(self, queue: str, member: str) -> Member:
        """The member, created on first sight (members may predate our connection)."""
        self.queues.add(queue)
        m = self.by_key.get((queue, member))
        if m is None:
            m = Member(queue, member, "")
            self.by_key[(queue, member)] = m
            self._touched.add((queue, member))
        return m

    def remove(self, key: tuple[str, str]) -> None:
        """Forget a member (a resync's list no longer has it)."""
        del self.by_key[key]
        self._touched.add(key)

    def adjust(self, queue: str, member: str, *, ringing: int = 0, in_call: int = 0) -> None:
        """Count a ring/call starting (+1, creating a member we have not seen) or ending (-1, never below 0).

        An ending never re-creates a member: it may have been removed (QueueRemove) while its call went on.
        """
        if ringing > 0 or in_call > 0:
            m = self.get(queue, member)
        else:
            found = self.by_key.get((queue, member))
            if found is None:
                return
            m = found
        m.ringing = max(0, m.ringing + ringing)
        m.in_call = max(0, m.in_call + in_call)
        self._touched.add((queue, member))

    def counts(self, queue: str) -> dict[str, int]:
        """Members of one queue by state."""
        out = dict.fromkeys(MEMBER_STATES, 0)
        for (q, _), m in self.by_key.items():
            if q == queue:
                out[m.state] += 1
        return out

    def counts_by_queue(self, queues: Iterable[str]) -> dict[str, dict[str, int]]:
        """Members of each of ``queues`` by state: the last call's counts, with the members changed since counted
        again (all of them the first time: 10 000 ``state`` reads are ~3 ms of every scrape)."""
        tally, counted = self._tally, self._counted
        if tally is None:
            tally, counted = self._tally, self._counted = {}, {}
            touched: Iterable[tuple[str, str]] = self.by_key
        else:
            touched = self._touched
        for key in touched:
            was = counted.pop(key, None)
            if was is not None:
                tally[key[0]][was] -= 1
            m = self.by_key.get(key)
            if m is not None:
                state = counted[key] = m.state
                per = tally.get(key[0])
                if per is None:
                    per = tally[key[0]] = dict.fromkeys(MEMBER_STATES, 0)
                per[state] += 1
        self._touched = set()
        return {q: dict(tally.get(q) or _NONE) for q in queues}

    def reset_call_state(self) -> None:
        """After a gap, ring/in-call counts from events may be stale."""
        for m in self.by_key.values():
            m.ringing = 0
            m.in_call = 0
        self._tally = None
