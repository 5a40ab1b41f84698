"""The call tracker: a synchronous state machine from normalised AMI events to call records.

Feed it events in wire order with :meth:`CallTracker.feed`; it returns notes (live facts) and, when a
caller channel hangs up, a :class:`CallClosed` with the final record. It never reads the clock: each
event's own ``Timestamp`` is used, else the ``now`` passed in. Asterisk quirks handled here (all seen in
the recorded transcripts): QueueCallerAbandon is also raised on timeout and leave-empty (the QUEUESTATUS
VarSet or the caller's hang-up decides); QueueCallerLeave precedes AgentConnect; JOINEMPTY leaves no queue
event at all; transfers are known from BlindTransfer/AttendedTransfer, not from app_queue.

The state lives in one :class:`~monitor.core.state.TrackerState`; per-event handlers are in
:mod:`monitor.core.handlers`, the segment state machine in :mod:`monitor.core.segments`.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import replace

from monitor.core import events as ev
from monitor.core.agents import AgentBoard
from monitor.core.calls import attach_survey, close, flush, freeze
from monitor.core.handlers import HANDLERS, dialplan_ran
from monitor.core.members import Members
from monitor.core.owed import OwedCallbacks
from monitor.core.records import CallClosed, CallRecord, Note, SurveyNote, SurveyResultRecord
from monitor.core.repeat import RepeatIndex
from monitor.core.resync import adopt, reconcile
from monitor.core.segments import SegmentState
from monitor.core.state import ResyncAnswers, TrackerConfig, TrackerState
from monitor.core.vocab import ClosedBy, SurveyStatus

__all__ = ["CallTracker", "TrackerConfig", "TrackerState"]

_SWEEP_EVERY = 4096  # events between two stale-call sweeps
_NO_SKIPS: Counter[str] = Counter()  # returned, never changed, when there is nothing to take


def with_owed(st: TrackerState, out: list[Note]) -> list[Note]:
    """``out`` plus the owed-callback notes of its closed calls (each closed record goes to the owed list once)."""
    extra: list[Note] = []
    for n in out:
        if isinstance(n, CallClosed):
            extra.extend(st.owed.call_closed(n.record))
    return out + extra if extra else out


class CallTracker:
    """Correlates AMI events by Linkedid/Uniqueid into one record per inbound call."""

    def __init__(self, config: TrackerConfig | None = None, repeat_index: RepeatIndex | None = None) -> None:
        config = config or TrackerConfig()
        repeats = repeat_index or RepeatIndex(config.repeat_windows, config.repeat_max_entries)
        self.state = TrackerState(config, repeats)

    # -- views of the state (the names edges use) -------------------------------------------------------

    @property
    def config(self) -> TrackerConfig:
        """The knobs this tracker runs with."""
        return self.state.config

    @property
    def repeats(self) -> RepeatIndex:
        """The repeat-caller index (warmed from storage at start)."""
        return self.state.repeats

    @property
    def members(self) -> Members:
        """Queue members and their live state."""
        return self.state.members

    @property
    def queues(self) -> set[str]:
        """Queues seen so far (events, QueueStatus)."""
        return self.state.queues

    @property
    def agents(self) -> AgentBoard:
        """Per (queue, agent) measures: ``agents.snapshot(now)``."""
        return self.state.agents

    @property
    def owed(self) -> OwedCallbacks:
        """Callers owed a call: ``owed.open()``, ``owed.stats(now)``; ``owed.restore(rows)`` at start."""
        return self.state.owed

    @property
    def now(self) -> float:
        """The latest event time seen, on the PBX clock (epoch s; 0.0 before the first event)."""
        return self.state.now

    @property
    def stats(self) -> dict[str, int]:
        """Counters: events, evicted_channels, late_events (matched no call), amended (final records amended)."""
        return self.state.stats

    @property
    def open_calls(self) -> int:
        """Calls in progress (a call whose caller hung up is no longer in progress, even within its grace period)."""
        return len(self.state.calls) - len(self.state.ending)

    # -- events ----------------------------------------------------------------------------------------

    def feed(self, event: ev.Event, now: float) -> list[Note]:
        """Apply one event (``now``: the daemon's time, epoch s); returns its notes (possibly a closed call)."""
        st = self.state
        ts, out = self._begin(event.ts, now)
        handler = HANDLERS.get(type(event))
        if handler is not None:
            handler(st, event, ts, out)
        return self._end(out)

    def wants_dialplan(self, uid: str, application: str) -> bool:
        """Whether a ``Newexten`` of channel ``uid`` running ``application`` needs the parsed event: ``Queue``
        (it opens the call), a channel not known (its state is created from the whole snapshot, the oldest evicted
        past ``max_channels``) or known without Linkedid (first seen in a QueueEntry: the event gives it).
        Otherwise :meth:`dialplan_step` does from the pre-read values exactly what :meth:`feed` does with it."""
        if application == "Queue":
            return True
        ch = self.state.chans.get(uid)
        return ch is None or not ch.linkedid

    def dialplan_step(self, uid: str, application: str, channel: str, caller_num: str, caller_name: str,
                      ts: float | None, now: float) -> list[Note]:
        """:meth:`feed` of a ``Newexten`` for which :meth:`wants_dialplan` is False, from its values as the
        normaliser reads them (``ts``: its Timestamp, PBX epoch s, None: unknown; ``now``: daemon time, epoch s):
        the same steps in the same order, ``on_newexten`` without the event."""
        st = self.state
        when, out = self._begin(ts, now)
        st.chans[uid].refresh("", channel, caller_num, caller_name)  # TrackerState.chan(): known, with a Linkedid
        dialplan_ran(st, uid, application, when, out)
        return self._end(out)

    def _begin(self, ts: float | None, now: float) -> tuple[float, list[Note]]:
        # Every event, before its handler: the clocks move, and calls whose grace period is over are final
        # before this event (if it is about one of them, it is late).
        st = self.state
        ts = self._event_time(ts, now)
        st.now = max(st.now, ts)
        st.daemon_now = now
        st.stats["events"] += 1
        return ts, (flush(st, ts, now) if st.ending else [])

    def _end(self, out: list[Note]) -> list[Note]:
        # Every event, after its handler: the periodic stale-call sweep, then the owed-callback notes.
        st = self.state
        if st.stats["events"] % _SWEEP_EVERY == 0:
            out.extend(self.sweep(st.now))
        return with_owed(st, out) if out else out  # most events note nothing

    def tick(self, now: float) -> list[Note]:
        """Time passes without events: close calls whose grace period is over at ``now`` (the daemon's clock, s).

        The daemon calls it periodically (through :meth:`monitor.core.ingest.Ingest.tick`); each event does the
        same at its own time. ``now`` is placed on the PBX clock through the tracker's clock offset.
        """
        st = self.state
        st.daemon_now = max(st.daemon_now, now)
        if st.pbx_clock_known:  # agent snapshots may read up to now (never before the PBX's own clock is known)
            st.agents.hold(self.pbx_time(now))
        return with_owed(st, flush(st, self.pbx_time(now), now)) if st.ending else []

    def pbx_time(self, now: float) -> float:
        """The PBX's clock (epoch s) at daemon time ``now`` (s): the last event's Timestamp plus the time since."""
        return now + self.state.pbx_offset

    def _event_time(self, ts: float | None, now: float) -> float:
        # PBX time and the daemon's clock are never compared directly: the tracker keeps their offset from the
        # last sane Timestamp, and an event without one (resync answers, timestampevents=no) is placed on the
        # PBX clock through it. A Timestamp a day ahead of the stream's own clock is garbage (one bad event must
        # not age every call by a day) — unless the PBX keeps saying so (its clock was really changed).
        st = self.state
        if ts is None:
            return now + st.pbx_offset
        if st.now and ts > now + st.pbx_offset + 86_400 and st.absurd_run < 100:
            st.absurd_run += 1
            return now + st.pbx_offset
        st.absurd_run = 0
        st.pbx_offset = ts - now
        st.pbx_clock_known = True
        return ts

    def take_skips(self) -> Counter[str]:
        """Skips (``illegal:<input>@<state>`` -> count) since the last call, for the ingest counters; then reset."""
        st = self.state
        if not st.skips:
            return _NO_SKIPS
        skips, st.skips = st.skips, Counter()
        return skips

    def sweep(self, now: float) -> list[Note]:
        """Close calls open longer than ``max_call_age_s`` (their hang-up was never seen) as ``stale``."""
        st = self.state
        limit = now - st.config.max_call_age_s
        return with_owed(st, [close(st, c, now, ClosedBy.STALE) for c in list(st.calls.values())
                              if c.start_ts < limit])

    def survey_answer(self, answer: SurveyResultRecord) -> list[Note]:
        """One survey-server answer (any status) -> exactly one note, the answer's queue/agent filled from its call.

        An open call (by Linkedid, else call id) gets the answer attached (unless the caller was not eligible);
        a recently closed call only places it (queue, agent); an unknown call leaves it as it came.
        """
        st = self.state
        queue, agent = answer.queue, answer.agent
        for key in (answer.linkedid, answer.uniqueid):
            if not key:
                continue
            call = st.call_for(key, key)
            if call is not None:
                if answer.status != SurveyStatus.NOT_ELIGIBLE:
                    attach_survey(call, answer.to_survey())
                    if call.survey is not None:
                        queue, agent = call.survey.queue, call.survey.agent
                break
            if key in st.recent:
                q, a = st.recent[key]
                queue, agent = queue or q, agent or a
                break
        if (queue, agent) != (answer.queue, answer.agent):
            answer = replace(answer, queue=queue, agent=agent)
        return [SurveyNote.of_answer(answer, queue, agent)]

    def knows(self, uid_or_linkedid: str) -> bool:
        """Whether this tracker has (or recently had) the call with this caller-channel Uniqueid or Linkedid."""
        st = self.state
        return st.call_for(uid_or_linkedid, uid_or_linkedid) is not None or uid_or_linkedid in st.recent

    def find_call(self, uid_or_linkedid: str) -> CallRecord | None:
        """A snapshot record of an open call by caller-channel Uniqueid or Linkedid."""
        st = self.state
        call = st.call_for(uid_or_linkedid, uid_or_linkedid)
        return freeze(st, call, st.now, ClosedBy.OPEN.value) if call else None

    # -- gaps and resync -------------------------------------------------------------------------------

    def connection_lost(self, now: float) -> None:
        """The event stream broke: every open call becomes suspect until a resync settles it."""
        for call in self.state.calls.values():
            call.suspect = True
        self.state.members.reset_call_state()

    def resync_begin(self) -> None:
        """Start collecting QueueStatus/CoreShowChannels answers after a reconnect (again for each attempt)."""
        self.state.resync = ResyncAnswers()
        self.state.agents.resync_begin()

    def clock_sample(self, pbx_ts: float, now: float) -> None:
        """A PBX time ``pbx_ts`` read at daemon time ``now`` (e.g. the ``Timestamp`` of a Ping answer), both epoch s:
        the clock offset for answers that carry none (a fresh process has seen no event yet)."""
        st = self.state
        st.now = max(st.now, self._event_time(pbx_ts, now))

    def resync_end(self, now: float) -> list[Note]:
        """Close suspect calls whose channels are gone (as gap); adopt calls alive that we do not track.

        ``now`` is the daemon's clock (s); it is placed on the PBX clock before it touches any call. What is
        adopted, and from which answers, is in :mod:`monitor.core.resync`.
        """
        now = self.pbx_time(now)
        st = self.state
        out: list[Note] = []
        answers = st.resync or ResyncAnswers()
        for call in list(st.calls.values()):
            if call.hangup_ts is not None:  # its hang-up was seen: it closes as such when its grace is over
                call.suspect = False
            elif call.suspect and not (call.channels & answers.alive):
                out.append(close(st, call, now, ClosedBy.GAP))
            elif call.suspect:
                call.suspect = False
                reconcile(st, call, answers, now, out)
        adopt(st, answers, out)
        st.resync = None
        st.agents.resync_end(now)
        return with_owed(st, out)

    def close_all(self, now: float, reason: str = ClosedBy.GAP) -> list[Note]:
        """Close every open call (end of a replay, stream gap without resync, shutdown); ``reason``: a ClosedBy.

        Calls whose caller already hung up close first, as ``hangup`` at their hang-up time (their grace ends now).
        """
        st = self.state
        out = flush(st, float("inf"), float("inf")) if st.ending else []
        return with_owed(st, out + [close(st, c, now, reason) for c in list(st.calls.values())])

    def waiting(self) -> dict[str, list[float]]:
        """Join times (epoch s, PBX clock) of callers waiting right now, per queue."""
        out: dict[str, list[float]] = {q: [] for q in self.state.queues}
        for call in self.state.calls.values():
            for s in call.segments:
                if s.state == SegmentState.WAITING:
                    out.setdefault(s.queue, []).append(s.join_ts)
        return out

