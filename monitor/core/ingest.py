"""One AMI message in, notes out: normalisation + tracker + counters, shared by live and replay paths."""

from __future__ import annotations

import logging
import math
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from monitor.core.agentcols import AgentColumns
from monitor.core.agentkeep import ColumnKeeper
from monitor.core.agents import NO_REASON, OTHER_REASON, AgentRow
from monitor.core.clock import pbx_clock
from monitor.core.events import Event
from monitor.core.normalize import Skip, UnsupportedAsterisk, normalize, plausible_time
from monitor.core.owed import Owed, OwedStats
from monitor.core.preread import PreRead
from monitor.core.records import CallAmended, CallRecord, Note, SurveyResultRecord
from monitor.core.records import CallClosed as _Closed
from monitor.core.tracker import CallTracker
from monitor.core.vocab import SkipReason

log = logging.getLogger("qmon.ingest")

Sink = Callable[[list[Note]], None]
#: Why a stream of Asterisk 11 or older is refused (its numbers would be half right, silently).
UNSUPPORTED_MESSAGE = ("qmon supports the AMI 2 event set of Asterisk 13 and later; this PBX sends the old "
                       "(Asterisk 11 or older) event names, so its queue numbers cannot be counted")


@dataclass(frozen=True, slots=True)
class MemberView:
    """One queue member as the API shows it."""

    queue: str
    name: str
    interface: str
    state: str  # one of monitor.core.members.MEMBER_STATES
    paused_reason: str


@dataclass(frozen=True, slots=True)
class LiveState:
    """One PBX's live state at one moment: what metrics and the API read (copies: nothing mutable escapes)."""

    pbx_now: float  # the daemon's ``now`` placed on the PBX clock (epoch s)
    open_calls: int
    events: int
    skipped: dict[str, int]
    last_event_at: float | None  # daemon clock (epoch s) of the last event, None before the first
    queues: frozenset[str]  # every queue known: configured, from events and from QueueStatus
    waiting: dict[str, tuple[float, ...]]  # queue -> join times (PBX epoch s) of callers waiting now
    member_counts: dict[str, dict[str, int]]  # queue -> member state -> count
    members: tuple[MemberView, ...]  # sorted by (queue, name)
    # The supervisor's view (issue 13), as of ``pbx_now``: one AgentRow per (queue, agent) and one per agent over
    # all its queues (queue ``*``); the owed-callback worklist (oldest first) and its counters; the capped pause
    # labels (configured reasons, then ``other`` and ``none``) that metrics pre-create.
    agents: tuple[AgentRow, ...] = ()
    agent_totals: tuple[AgentRow, ...] = ()
    owed: tuple[Owed, ...] = ()
    owed_stats: OwedStats | None = None
    pause_labels: tuple[str, ...] = ()
    agents_at: float = 0.0  # PBX time (epoch s) the agent rows are as of: their board's floor (latest fact or tick)
    agent_columns: AgentColumns | None = None  # the agent rows as columns (what /metrics reads), if taken


class Ingest:
    """Feeds messages to a tracker synchronously, counts events and skips, hands notes to sinks."""

    def __init__(self, tracker: CallTracker, sinks: list[Sink] | None = None, pbx: str = "default") -> None:
        self.tracker = tracker
        self.sinks: list[Sink] = list(sinks or [])
        self.pbx = pbx
        self.events = 0
        self.skipped: Counter[str] = Counter()
        self.last_event_at: float | None = None
        self.unsupported: str | None = None  # the first AMI 1.x event name seen (Asterisk 11 or older), if any
        self._columns: ColumnKeeper | None = None  # /metrics' agent columns, kept across scrapes

    def feed(self, headers: Mapping[str, str | list[str]] | PreRead, now: float) -> list[Note]:
        """Process one message (a header dict, or a Newexten pre-read by the wire parser: :mod:`monitor.core.preread`);
        every Event (tracked or not) counts in ``events``."""
        if isinstance(headers, PreRead):
            # Decided here, in stream order: a Queue() step, or one the tracker wants, is parsed and fed; any other
            # is applied from its pre-read values (exactly what feeding it does: CallTracker.dialplan_step).
            pre = headers
            if self.tracker.wants_dialplan(pre.uniqueid, pre.application):
                headers = pre.headers()
            else:  # counted as every event, then applied (half the events the tracker reads: no extra call)
                self.events += 1
                self.last_event_at = now
                return self._track(pre, now)
        if "Event" not in headers:
            return []
        self.events += 1
        self.last_event_at = now
        try:
            event = normalize(headers)
        except Exception:  # a normaliser bug must never stop the read loop
            log.exception("cannot normalise %s", headers.get("Event"))
            self.skip(SkipReason.NORMALISE_ERROR)
            return []
        if event is None:
            return []
        if isinstance(event, Skip):
            if isinstance(event, UnsupportedAsterisk) and self.unsupported is None:
                self.unsupported = event.reason.partition(":")[2]
                log.error("AMI %s: event %r is from Asterisk 11 or older: %s", self.pbx, self.unsupported,
                          UNSUPPORTED_MESSAGE)
            self.skip(event.reason)
            return []
        return self._track(event, now)

    def _track(self, item: Event | PreRead, now: float) -> list[Note]:
        # One event into the tracker (or a pre-read Newexten): a tracker bug is logged and counted, never raised
        # into the read loop; illegal segment transitions are counted; the notes go to the sinks.
        tr = self.tracker
        try:
            if isinstance(item, PreRead):
                notes = tr.dialplan_step(item.uniqueid, item.application, item.channel, item.caller_num,
                                         item.caller_name, plausible_time(item.timestamp), now)
            else:
                notes = tr.feed(item, now)
        except Exception:
            what = "a dialplan step" if isinstance(item, PreRead) else type(item).__name__
            log.exception("tracker failed on %s", what)
            self.skip(SkipReason.TRACKER_ERROR)
            return []
        finally:
            if tr.state.skips:  # illegal segment transitions: counted, the event ignored for that segment
                for reason, n in tr.take_skips().items():
                    self.skip(reason, n)
        if notes:
            self.emit(notes)
        return notes

    def count_unparsed(self, n: int, now: float) -> None:
        """``n`` events the wire parser left out unparsed (no use to the tracker) at daemon time ``now`` (s): counted
        in ``events`` as :meth:`feed` counts them, so the counter covers the whole stream."""
        self.events += n
        self.last_event_at = now

    def pbx_now(self, now: float) -> float:
        """Daemon time ``now`` (epoch s) on this PBX's clock (:func:`monitor.core.clock.pbx_clock`)."""
        return pbx_clock(self.tracker, now)

    def live(self, now: float, *, views: bool = True) -> LiveState:
        """A snapshot of the live state at daemon time ``now`` (epoch s), for scrapes and the API.

        ``views=False`` is what /metrics reads: no ``members`` or ``agent_totals``, and the agents as
        ``agent_columns`` instead of rows (taken on the event loop: at 10 000 members the member views alone cost
        ~40 ms of it, and a row object per member kept the garbage collector busy)."""
        tr = self.tracker
        joins = tr.waiting()
        by_key = sorted(tr.members.by_key.items()) if views else []
        queues = frozenset(tr.queues | tr.members.queues | set(joins))
        pbx_now = self.pbx_now(now)
        # Agents are read at the board's floor (the latest fact or tick), never beyond: a late event then never
        # takes back seconds a scrape already exported.
        at = tr.agents.floor if math.isfinite(tr.agents.floor) else pbx_now
        return LiveState(
            pbx_now, tr.open_calls, self.events, dict(self.skipped), self.last_event_at, queues,
            {q: tuple(ts) for q, ts in joins.items()}, tr.members.counts_by_queue(queues),
            tuple(MemberView(q, m.name, m.interface, m.state, m.paused_reason) for (q, _), m in by_key),
            tuple(tr.agents.snapshot(at)) if views else (), tuple(tr.agents.agents(at)) if views else (),
            tuple(tr.owed.open()), tr.owed.stats(pbx_now),
            (*sorted(tr.agents.pause_reasons - {OTHER_REASON, NO_REASON}), OTHER_REASON, NO_REASON), at,
            None if views else self._agent_columns(at),
        )

    def _agent_columns(self, at: float) -> AgentColumns:
        """The board's columns as of ``at`` (PBX clock), through a keeper that reads again only what facts touched."""
        board = self.tracker.agents
        if self._columns is None or self._columns.board is not board:
            self._columns = ColumnKeeper(board)
        return self._columns.columns(at)

    def find_call(self, uniqueid: str | None, linkedid: str | None) -> CallRecord | None:
        """A snapshot of the open call by Linkedid, else by caller-channel Uniqueid; None if not open."""
        for key in (linkedid, uniqueid):
            if key and (rec := self.tracker.find_call(key)) is not None:
                return rec
        return None

    def knows(self, uniqueid: str | None, linkedid: str | None) -> bool:
        """Whether this PBX's tracker has, or recently had, the call."""
        return any(key and self.tracker.knows(key) for key in (linkedid, uniqueid))

    def survey(self, answer: SurveyResultRecord) -> list[Note]:
        """A survey-server answer: attached to its call by the tracker, one note to every sink."""
        notes = self.tracker.survey_answer(answer)
        self.emit(notes)
        return notes

    def close_all(self, now: float, reason: str) -> list[Note]:
        """Close every open call at daemon time ``now`` (s, placed on the PBX clock) as ``reason``; notes to sinks."""
        notes = self.tracker.close_all(self.pbx_now(now), reason)
        self.emit(notes)
        return notes

    def connection_lost(self, now: float) -> None:
        """The event stream broke at daemon time ``now`` (s): open calls stay suspect until the next resync."""
        self.tracker.connection_lost(now)

    def resync_begin(self) -> None:
        """A reconnect (or a new resync attempt): the QueueStatus/CoreShowChannels answers fed next say what is
        alive now."""
        self.tracker.resync_begin()

    def clock_sample(self, pbx_ts: float, now: float) -> None:
        """PBX time ``pbx_ts`` read at daemon time ``now`` (epoch s), e.g. a Ping answer's Timestamp: answers
        without a Timestamp (the resync lists) are placed on the PBX clock through it."""
        self.tracker.clock_sample(pbx_ts, now)

    def resync_end(self, now: float) -> list[Note]:
        """The answers are in: settle suspect calls at daemon time ``now`` (s) and hand the notes to the sinks."""
        notes = self.tracker.resync_end(now)
        self.emit(notes)
        return notes

    def tick(self, now: float) -> list[Note]:
        """Let time pass (``now``: the daemon's clock, epoch s): calls past their grace period become final.

        The daemon calls this periodically (every second or so); the notes go to the sinks like any other.
        """
        try:
            notes = self.tracker.tick(now)
        except Exception:
            log.exception("tracker tick failed")
            self.skip(SkipReason.TRACKER_ERROR)
            return []
        self.emit(notes)
        return notes

    def skip(self, reason: str, n: int = 1) -> None:
        """Count ``n`` (and log once per reason) messages we could not use; ``reason`` is a bounded label."""
        reason = str(reason)  # a SkipReason member counts under its plain string
        if reason not in self.skipped:
            log.warning("skipping AMI message: %s (logged once; counted in qmon_ami_skipped_events_total)", reason)
        self.skipped[reason] += n

    def emit(self, notes: list[Note]) -> None:
        """Hand notes to every sink; a failing sink is logged, never allowed to break ingestion."""
        if not notes:
            return
        for sink in self.sinks:
            try:
                sink(notes)
            except Exception:
                log.exception("note sink failed")


def closed_records(notes: list[Note]) -> list[CallRecord]:
    """The call records among notes (final ones, and amended ones: see :func:`merge_records`)."""
    return [n.record for n in notes if isinstance(n, (_Closed, CallAmended))]


def merge_records(records: list[CallRecord], new: list[CallRecord]) -> None:
    """Append ``new`` to ``records``; an amended record replaces the one of the same call (upsert by call id)."""
    for r in new:
        if r.extra.get("amended"):
            for i in range(len(records) - 1, -1, -1):
                if records[i].linkedid == r.linkedid and records[i].pbx == r.pbx:
                    records[i] = r
                    break
            else:
                records.append(r)
        else:
            records.append(r)
