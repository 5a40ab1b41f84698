"""Today's numbers per queue for the wallboard: a notes sink counting the current day on the PBX clock.

"Today" is the daemon's local calendar day of the PBX clock: a note counts on the day of its own ``ts`` (event
time, PBX clock), and a reader asks for the day of ``pbx_now`` (the daemon's now placed on the PBX clock). The tally
keeps one day: the first note of a later day starts a fresh one; a late note of an earlier day is not counted.

Counts follow the segment outcomes of :class:`~monitor.core.records.SegmentNote` (the same notes the Prometheus
counters ``qmon_queue_calls_total`` count): offered = every segment that entered the queue (all outcomes but
the refusals ``join_empty``, ``full``, ``join_unavail``); abandoned = ``abandoned`` + ``abandoned_short`` (a caller
hang-up while waiting); within T means ``wait_s <= T`` as app_queue compares ``holdtime <= servicelevel``.
CSAT = valid 1-5 answers of surveys answered today (:data:`~monitor.core.vocab.ANSWERED_SURVEY`).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field

from monitor.core.records import CallClosed, MemberNote, Note, SegmentNote, SurveyNote, TalkNote
from monitor.core.servicelevel import DEFAULT_SL, SlCounts, service_levels
from monitor.core.vocab import ANSWERED_SURVEY, NOT_ENTERED, valid_csat


def local_day(ts: float) -> str:
    """The daemon's local calendar day (``YYYY-MM-DD``) of epoch seconds ``ts``."""
    return dt.datetime.fromtimestamp(ts).date().isoformat()


@dataclass(slots=True)
class QueueDay:
    """One queue's counts over one day (calls and answers, not seconds)."""

    offered: int = 0
    answered: int = 0
    answered_within: int = 0
    abandoned: int = 0  # every caller hang-up while waiting, short ones included
    abandoned_within: int = 0
    abandoned_short: int = 0
    unanswered_other: int = 0  # timeout, exit_empty, exit_key, unknown
    csat_sum: int = 0
    csat_n: int = 0

    def service_level(self, definition: str = DEFAULT_SL) -> float | None:
        """The service level by ``definition`` (a :data:`~monitor.core.servicelevel.SL_DEFINITIONS`; default
        answered within T ÷ (offered - short abandons)), 0..1; None when its denominator is 0."""
        return service_levels(SlCounts(self.offered, self.answered, self.answered_within, self.abandoned,
                                       self.abandoned_within, self.abandoned_short))[definition]

    def abandon_rate(self) -> float | None:
        """Abandoned (short ones included) ÷ offered, 0..1; None with no calls."""
        return self.abandoned / self.offered if self.offered > 0 else None

    def csat_mean(self) -> float | None:
        """Mean CSAT (1-5) of today's valid answers; None without one."""
        return self.csat_sum / self.csat_n if self.csat_n else None


@dataclass(slots=True)
class AgentDay:
    """One member of one queue today: answered calls and talk seconds (completed calls)."""

    answered: int = 0
    talk_s: float = 0.0


@dataclass(frozen=True, slots=True)
class StateMark:
    """What the last member note said about a member: ``state`` (paused/in_call/available) since ``ts`` (PBX s)."""

    state: str
    ts: float


@dataclass
class DayTally:
    """The current day's :class:`QueueDay` per queue, :class:`AgentDay` per (queue, agent), and state marks."""

    sl_threshold_s: float = 20.0
    day_of: Callable[[float], str] = local_day
    day: str = ""
    queues: dict[str, QueueDay] = field(default_factory=dict)
    agents: dict[tuple[str, str], AgentDay] = field(default_factory=dict)
    marks: dict[tuple[str, str], StateMark] = field(default_factory=dict)  # not per day: a pause spans midnight

    def sink(self, notes: list[Note]) -> None:
        """A notes sink (for :class:`~monitor.core.ingest.Ingest`): count every note of today."""
        for n in notes:
            self.observe(n)

    def observe(self, n: Note) -> None:
        """Count one note on the day of its ``ts`` (PBX clock)."""
        if isinstance(n, MemberNote):
            self._mark(n)
            return
        if isinstance(n, CallClosed):
            self._unknown(n)
            return
        if not isinstance(n, SegmentNote | SurveyNote | TalkNote) or not self._today(n.ts):
            return
        if isinstance(n, SegmentNote):
            self._segment(n)
        elif isinstance(n, TalkNote):
            self.marks[(n.queue, n.agent)] = StateMark("available", n.ts)
            self.agents.setdefault((n.queue, n.agent), AgentDay()).talk_s += max(0.0, n.talk_s)
        elif n.result in ANSWERED_SURVEY and valid_csat(n.csat) and n.csat is not None:
            q = self.queues.setdefault(n.queue or "unknown", QueueDay())
            q.csat_sum += n.csat
            q.csat_n += 1

    def today(self, pbx_now: float) -> dict[str, QueueDay]:
        """Counts per queue for the day of ``pbx_now`` (PBX clock, epoch s); empty when nothing counted that day."""
        return dict(self.queues) if self.day == self.day_of(pbx_now) else {}

    def agents_today(self, pbx_now: float) -> dict[tuple[str, str], AgentDay]:
        """Per (queue, agent) counts for the day of ``pbx_now`` (PBX clock, epoch s)."""
        return dict(self.agents) if self.day == self.day_of(pbx_now) else {}

    def _today(self, ts: float) -> bool:
        day = self.day_of(ts)
        if day > self.day:  # ISO dates compare as text
            self.day, self.queues, self.agents = day, {}, {}
        return day == self.day

    def _segment(self, n: SegmentNote) -> None:
        if n.outcome in NOT_ENTERED:  # Queue() refused the caller (join_empty, full, join_unavail): never offered
            return
        q = self.queues.setdefault(n.queue, QueueDay())
        q.offered += 1
        within = n.wait_s is not None and n.wait_s <= self.sl_threshold_s
        if n.outcome == "answered":
            q.answered += 1
            q.answered_within += within
            if n.agent:
                self.agents.setdefault((n.queue, n.agent), AgentDay()).answered += 1
                self.marks[(n.queue, n.agent)] = StateMark("in_call", n.ts)
        elif n.outcome in ("abandoned", "abandoned_short"):
            q.abandoned += 1
            q.abandoned_within += within
            q.abandoned_short += n.outcome == "abandoned_short"
        else:
            q.unanswered_other += 1

    def _unknown(self, n: CallClosed) -> None:
        # A segment closed without an outcome (stream gap, stale sweep, shutdown) has no SegmentNote; it entered the
        # queue, so it was offered and went unanswered, as qmon_queue_calls_total{outcome="unknown"} counts it.
        for s in n.record.segments:
            if s.outcome == "unknown" and s.entered and self._today(s.end_ts or n.record.end_ts):
                q = self.queues.setdefault(s.queue, QueueDay())
                q.offered += 1
                q.unanswered_other += 1

    def _mark(self, n: MemberNote) -> None:
        key = (n.queue, n.member)
        if n.change == "logout":
            self.marks.pop(key, None)
        else:
            self.marks[key] = StateMark("paused" if n.change == "pause" else "available", n.ts)
