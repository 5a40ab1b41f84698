"""Owed callbacks: callers whose call ended unanswered and who have not been reached since.

A closed call record whose outcome is unanswered (anything but ``answered`` and ``unknown``: abandoned, short
abandon, timeout, exit empty/key, join empty, voicemail, and any unanswered outcome added to the vocabulary later)
opens one :class:`OwedCall` for its caller number. Every owed call of a number closes when that number reaches an
agent: a later inbound call of it is answered (``AgentConnect``: ``inbound``), or an agent calls it (a ``DialBegin``
from a member's device whose dialled number is it, then ``DialEnd`` DialStatus ANSWER: ``outbound``). A withheld
number (no number, anonymous, all zeros) cannot be owed a call: such calls are counted apart (``withheld``).

The **true abandonment rate** counts unanswered calls never reached within ``horizon_s`` (default 4 h): an owed
call is *missed* once its horizon passed while still open, or when it was reached only after the horizon.
Everything here is on the PBX clock (epoch s); durations are seconds.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, replace

from monitor.core.records import CallRecord, OwedCall, OwedNote
from monitor.core.repeat import normalize_number
from monitor.core.vocab import Outcome

INBOUND = "inbound"
OUTBOUND = "outbound"
#: ``OwedCall.closed_by`` values (``None`` while open).
CLOSED_BY = (INBOUND, OUTBOUND)
_SPLIT = re.compile(r"[/@:,;&]")
_MIN_SUFFIX = 7  # digits two numbers must share at the end to match across a trunk prefix (9, 0, +CC)


def owes_callback(outcome: str) -> bool:
    """True for a call outcome that leaves the caller owed a call (every outcome but answered and unknown)."""
    return outcome not in (Outcome.ANSWERED.value, Outcome.UNKNOWN.value)


def withheld(caller: str | None) -> bool:
    """True when the number cannot be called back: None (withheld/anonymous) or all zeros (a hidden CLI)."""
    return caller is None or caller.lstrip("+").strip("0") == ""


def same_number(a: str, b: str) -> bool:
    """Equal digits, or the shorter (7+ digits) ends the longer: ``5551234567`` vs ``+15551234567``."""
    x, y = a.lstrip("+"), b.lstrip("+")
    if x == y:
        return True
    short, long_ = (x, y) if len(x) <= len(y) else (y, x)
    return len(short) >= _MIN_SUFFIX and long_.endswith(short)


def _tail(number: str) -> str:
    """The last :data:`_MIN_SUFFIX` digits (all of a shorter number): equal for any two that :func:`same_number`."""
    return number.lstrip("+")[-_MIN_SUFFIX:]


def dialled_numbers(*fields: str) -> tuple[str, ...]:
    """Candidate numbers of an outbound dial: every piece of ``DialString``/``Exten``/... that is a number.

    A dialled ``9``/``0`` outside-line prefix is also tried without it (``95551234567`` -> ``5551234567``).
    """
    out: list[str] = []
    for f in fields:
        for piece in _SPLIT.split(f):
            n = normalize_number(piece)
            variants = [n] if n is None or len(n) <= _MIN_SUFFIX or n[0] not in "09" else [n, n[1:]]
            out += [v for v in variants if v is not None and v not in out]
    return tuple(out)


@dataclass(frozen=True, slots=True)
class Owed:
    """A worklist row: a number owed a call (its unanswered calls since it was last reached)."""

    caller: str
    first_ts: float  # start of the first unanswered call (epoch s)
    last_ts: float  # end of the latest one (epoch s)
    queue: str | None  # where the latest one ended
    wait_s: float  # how long the latest one waited (s)
    outcome: str  # how the latest one ended (its last queue segment's outcome)
    voicemail: bool  # the latest one reached VoiceMail
    attempts: int  # unanswered calls from this number since it was last reached
    linkedids: tuple[str, ...]
    owed_since_ts: float = 0.0  # end of the first unanswered call (epoch s): the callback is owed since then


@dataclass(frozen=True, slots=True)
class OwedStats:
    """Counters per queue (``""`` = no queue), monotonic as of ``now``; see :meth:`OwedCallbacks.stats`."""

    opened: Counter[str]  # unanswered calls that opened an owed call
    withheld: Counter[str]  # unanswered calls from a withheld number (never owed)
    closed: Counter[tuple[str, str]]  # (queue, inbound|outbound)
    missed: Counter[str]  # owed calls not reached within the horizon (true abandonment numerator)


class OwedCallbacks:
    """Open owed calls per number (bounded), the dials of agents in progress, and the counters."""

    def __init__(self, horizon_s: float = 4 * 3600.0, max_open: int = 100_000, pbx: str = "default") -> None:
        self.horizon_s = horizon_s
        self.max_open = max_open
        self.pbx = pbx
        self.by_caller: dict[str, list[OwedCall]] = {}  # insertion order = oldest number first
        # by_caller's numbers by their last _MIN_SUFFIX digits (in by_caller's order): numbers that same_number()
        # matches share them, so an agent's answered dial looks at a handful, not at the whole worklist.
        self._by_tail: dict[str, dict[str, None]] = {}
        self.dials: dict[str, tuple[str, tuple[str, ...]]] = {}  # DestUniqueid -> (agent, dialled numbers)
        self.opened: Counter[str] = Counter()
        self.withheld_calls: Counter[str] = Counter()
        self.closed: Counter[tuple[str, str]] = Counter()
        self.missed_late: Counter[str] = Counter()  # reached after the horizon, or evicted unreached
        # Numbers reached lately (number -> ts, how, agent): a call still closing (the caller in VoiceMail) while
        # the same number already reached an agent on another call is owed nothing.
        self.last_reached: dict[str, tuple[float, str, str | None]] = {}

    def call_closed(self, r: CallRecord) -> list[OwedNote]:
        """A call record is final: an unanswered one opens an owed call; an answered one reaches its number."""
        if r.outcome == Outcome.ANSWERED.value:
            ans = [s for s in r.segments if s.outcome == Outcome.ANSWERED.value]
            if r.caller is None or not ans:
                return []
            return self.reached(r.caller, ans[0].end_ts or r.end_ts, INBOUND, ans[0].agent)
        if not owes_callback(r.outcome) or r.closed_by == "open":
            return []
        queue = r.segments[-1].queue if r.segments else None
        if withheld(r.caller):
            self.withheld_calls[queue or ""] += 1
            return []
        assert r.caller is not None
        wait = sum(s.wait_s or 0.0 for s in r.segments)
        how = r.segments[-1].outcome if r.segments else r.outcome
        owed = OwedCall(r.pbx, r.linkedid, r.caller, queue, r.start_ts, r.end_ts, wait, how, r.voicemail is not None)
        self.opened[queue or ""] += 1
        notes = [OwedNote("open", owed)]
        seen = self.last_reached.get(r.caller)
        unanswered_at = max((s.end_ts or s.join_ts for s in r.segments), default=r.end_ts)
        if seen is not None and seen[0] >= unanswered_at:
            done = replace(owed, closed_ts=seen[0], closed_by=seen[1], agent=seen[2])
            self.closed[(queue or "", seen[1])] += 1
            return [*notes, OwedNote("close", done)]
        self._add(owed)
        return notes

    def _index(self, number: str) -> None:
        self._by_tail.setdefault(_tail(number), {})[number] = None

    def _unindex(self, number: str) -> None:
        tail = _tail(number)
        group = self._by_tail.get(tail)
        if group is not None:
            group.pop(number, None)
            if not group:
                del self._by_tail[tail]

    def _add(self, owed: OwedCall) -> None:
        if owed.caller not in self.by_caller:
            self._index(owed.caller)
        calls = self.by_caller.setdefault(owed.caller, [])
        # The same call again (a provisional record superseded after a restart) replaces, never doubles.
        calls[:] = [o for o in calls if o.linkedid != owed.linkedid]
        calls.append(owed)
        while len(self.by_caller) > self.max_open:
            _, dropped = next(iter(self.by_caller.items()))
            del self.by_caller[dropped[0].caller]
            self._unindex(dropped[0].caller)
            for d in dropped:  # never reached as far as we will know
                self.missed_late[d.queue or ""] += 1

    def reached(self, caller: str | None, ts: float, how: str, agent: str | None = None) -> list[OwedNote]:
        """The number reached an agent at ``ts`` (``how``: inbound|outbound): its owed calls ended before close."""
        if caller is None:
            return []
        if how == INBOUND:
            self.last_reached.pop(caller, None)
            self.last_reached[caller] = (ts, how, agent)
            while len(self.last_reached) > 10_000:
                del self.last_reached[next(iter(self.last_reached))]
        keys = [c for c in self._by_tail.get(_tail(caller), ()) if same_number(c, caller)] if how == OUTBOUND else (
            [caller] if caller in self.by_caller else [])
        notes: list[OwedNote] = []
        for key in keys:
            still: list[OwedCall] = []
            self._unindex(key)
            for o in self.by_caller.pop(key):
                if o.ended_ts > ts:
                    still.append(o)  # unanswered after this answer (out-of-order close): stays owed
                    continue
                done = replace(o, closed_ts=ts, closed_by=how, agent=agent)
                self.closed[(o.queue or "", how)] += 1
                if ts - o.ended_ts > self.horizon_s:
                    self.missed_late[o.queue or ""] += 1
                notes.append(OwedNote("close", done))
            if still:
                self.by_caller[key] = still
                self._index(key)
        return notes

    def dial_begin(self, dest_uniqueid: str, agent: str, numbers: tuple[str, ...]) -> None:
        """An agent's device started dialling ``numbers`` (DialBegin); kept until its DialEnd (bounded)."""
        if numbers:
            self.dials[dest_uniqueid] = (agent, numbers)
            while len(self.dials) > 10_000:
                del self.dials[next(iter(self.dials))]

    def dial_end(self, dest_uniqueid: str, status: str, ts: float) -> list[OwedNote]:
        """DialEnd of a remembered agent dial: ANSWER reaches the dialled number."""
        dial = self.dials.pop(dest_uniqueid, None)
        if dial is None or status != "ANSWER":
            return []
        agent, numbers = dial
        notes: list[OwedNote] = []
        for n in numbers:
            notes += self.reached(n, ts, OUTBOUND, agent)
        return notes

    def restore(self, calls: Iterable[OwedCall]) -> int:
        """Load still-open owed calls (from storage, at start); returns how many were added."""
        have = {o.linkedid for rows in self.by_caller.values() for o in rows}
        n = 0
        for o in sorted(calls, key=lambda c: c.ended_ts):
            if o.closed_ts is None and o.linkedid not in have and not withheld(o.caller):
                self._add(o)
                n += 1
        return n

    # -- reading --------------------------------------------------------------------------------------------

    def open(self) -> list[Owed]:
        """The worklist: one row per number still owed a call, oldest first (times epoch s, waits s)."""
        rows = []
        for caller, calls in self.by_caller.items():
            last = max(calls, key=lambda c: c.ended_ts)
            rows.append(Owed(caller, min(c.start_ts for c in calls), last.ended_ts, last.queue, last.wait_s,
                             last.outcome, last.voicemail, len(calls), tuple(c.linkedid for c in calls),
                             min(c.ended_ts for c in calls)))
        return sorted(rows, key=lambda o: o.first_ts)

    def open_calls(self) -> list[OwedCall]:
        """Every open owed call, oldest first."""
        return sorted((o for calls in self.by_caller.values() for o in calls), key=lambda c: c.ended_ts)

    def stats(self, now: float) -> OwedStats:
        """Counters as of ``now`` (epoch s, PBX clock): ``missed`` adds open calls whose horizon has passed."""
        missed = Counter(self.missed_late)
        for calls in self.by_caller.values():
            for o in calls:
                if o.ended_ts + self.horizon_s <= now:
                    missed[o.queue or ""] += 1
        return OwedStats(Counter(self.opened), Counter(self.withheld_calls), Counter(self.closed), missed)
