"""The call tracker: a synchronous state machine from normalised AMI events to call records.

Feed it events in wire order with :meth:`CallTracker.feed`; it returns notes (live facts) and, when a
caller channel hangs up, a :class:`CallClosed` with the final record. It never reads the clock: each
event's own ``Timestamp`` is used, else the ``now`` passed in. Asterisk quirks handled here (all seen in
the recorded transcripts): QueueCallerAbandon is also raised on timeout and leave-empty (the QUEUESTATUS
VarSet or the caller's hang-up decides); QueueCallerLeave precedes AgentConnect; JOINEMPTY leaves no queue
event at all; transfers are known from BlindTransfer/AttendedTransfer, not from app_queue.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, replace

from monitor.core import events as ev
from monitor.core.members import Members
from monitor.core.records import (
    CallClosed,
    CallRecord,
    Note,
    RepeatNote,
    SegmentNote,
    Survey,
    SurveyNote,
    SurveyResultRecord,
)
from monitor.core.repeat import RepeatIndex, normalize_number
from monitor.core.state import NO_CHAN, CallState, ChanState, SegState
from monitor.core.transfers import TransferTargets


@dataclass(frozen=True, slots=True)
class TrackerConfig:
    """Tracker knobs (the defaults are qmon's documented definitions)."""

    abandon_short_s: float = 5.0
    repeat_windows: tuple[str, ...] = ("24h",)
    repeat_max_entries: int = 500_000
    max_channels: int = 200_000
    max_call_age_s: float = 86_400.0  # a call open longer lost its Hangup (filtered AMI user?): closed as stale
    pbx: str = "default"


class CallTracker:
    """Correlates AMI events by Linkedid/Uniqueid into one record per inbound call."""

    def __init__(self, config: TrackerConfig | None = None, repeat_index: RepeatIndex | None = None) -> None:
        self.config = config or TrackerConfig()
        self.repeats = repeat_index or RepeatIndex(self.config.repeat_windows, self.config.repeat_max_entries)
        self.members = Members()
        self.queues: set[str] = set()
        self._calls: dict[str, CallState] = {}
        self._by_uid: dict[str, str] = {}  # caller channel uniqueid -> linkedid
        self._chans: OrderedDict[str, ChanState] = OrderedDict()
        self._closed: OrderedDict[str, float] = OrderedDict()  # recently closed linkedids
        # Linkedid and call id of recently closed calls -> (queue, agent) a late survey answer is counted under.
        self._recent: OrderedDict[str, tuple[str | None, str | None]] = OrderedDict()
        self._targets = TransferTargets()
        self._resync_alive: set[str] | None = None
        self._resync_waiting: list[ev.QueueEntry] = []
        self.now = 0.0  # PBX time (epoch s) of the latest event
        self._pbx_offset = 0.0  # PBX clock minus the daemon clock, from the last sane Timestamp
        self._absurd_run = 0
        self.stats: dict[str, int] = {"events": 0, "evicted_channels": 0, "late_events": 0}

    # -- public API ------------------------------------------------------------------------------------

    @property
    def open_calls(self) -> int:
        """Calls in progress."""
        return len(self._calls)

    def feed(self, event: ev.Event, now: float) -> list[Note]:
        """Apply one event; returns the notes it produced (possibly a closed call)."""
        ts = self._event_time(event.ts, now)
        self.now = max(self.now, ts)
        self.stats["events"] += 1
        out: list[Note] = []
        handler = _HANDLERS.get(type(event))
        if handler is not None:
            handler(self, event, ts, out)
        if self.stats["events"] % 4096 == 0:
            out.extend(self.sweep(self.now))
        return out

    def pbx_time(self, now: float) -> float:
        """The PBX's clock (epoch s) at daemon time ``now`` (s): the last event's Timestamp plus the time since."""
        return now + self._pbx_offset

    def _event_time(self, ts: float | None, now: float) -> float:
        # PBX time and the daemon's clock are never compared directly: the tracker keeps their offset from the
        # last sane Timestamp, and an event without one (resync answers, timestampevents=no) is placed on the
        # PBX clock through it. A Timestamp a day ahead of the stream's own clock is garbage (one bad event must
        # not age every call by a day) — unless the PBX keeps saying so (its clock was really changed).
        if ts is None:
            return now + self._pbx_offset
        if self.now and ts > now + self._pbx_offset + 86_400 and self._absurd_run < 100:
            self._absurd_run += 1
            return now + self._pbx_offset
        self._absurd_run = 0
        self._pbx_offset = ts - now
        return ts

    def sweep(self, now: float) -> list[Note]:
        """Close calls open longer than ``max_call_age_s`` (their hang-up was never seen) as ``stale``."""
        limit = now - self.config.max_call_age_s
        return [self._close(c, now, "stale") for c in list(self._calls.values()) if c.start_ts < limit]

    def survey_answer(self, answer: SurveyResultRecord) -> list[Note]:
        """One survey-server answer (any status) -> exactly one note, the answer's queue/agent filled from its call.

        An open call (by Linkedid, else call id) gets the answer attached (unless the caller was not eligible);
        a recently closed call only places it (queue, agent); an unknown call leaves it as it came.
        """
        queue, agent = answer.queue, answer.agent
        for key in (answer.linkedid, answer.uniqueid):
            if not key:
                continue
            call = self._call_for(key, key)
            if call is not None:
                if answer.status != "not_eligible":
                    self._attach_survey(call, answer.to_survey())
                    if call.survey is not None:
                        queue, agent = call.survey.queue, call.survey.agent
                break
            if key in self._recent:
                q, a = self._recent[key]
                queue, agent = queue or q, agent or a
                break
        if (queue, agent) != (answer.queue, answer.agent):
            answer = replace(answer, queue=queue, agent=agent)
        return [SurveyNote.of_answer(answer, queue, agent)]

    def knows(self, uid_or_linkedid: str) -> bool:
        """Whether this tracker has (or recently had) the call with this caller-channel Uniqueid or Linkedid."""
        return self._call_for(uid_or_linkedid, uid_or_linkedid) is not None or uid_or_linkedid in self._recent

    def find_call(self, uid_or_linkedid: str) -> CallRecord | None:
        """A snapshot record of an open call by caller-channel Uniqueid or Linkedid."""
        call = self._call_for(uid_or_linkedid, uid_or_linkedid)
        return self._freeze(call, self.now, "open") if call else None

    def connection_lost(self, now: float) -> None:
        """The event stream broke: every open call becomes suspect until a resync settles it."""
        for call in self._calls.values():
            call.suspect = True
        self.members.reset_call_state()

    def resync_begin(self) -> None:
        """Start collecting QueueStatus/CoreShowChannels answers after a reconnect."""
        self._resync_alive = set()
        self._resync_waiting = []

    def resync_end(self, now: float) -> list[Note]:
        """Close suspect calls whose channels are gone (as unknown); adopt callers waiting since the gap.

        ``now`` is the daemon's clock (s); it is placed on the PBX clock before it touches any call.
        """
        now = self.pbx_time(now)
        out: list[Note] = []
        alive = self._resync_alive or set()
        for call in list(self._calls.values()):
            if call.suspect and not (call.channels & alive):
                out.append(self._close(call, now, "gap"))
            else:
                call.suspect = False
        for entry in self._resync_waiting:
            if entry.chan.uniqueid not in self._by_uid and entry.chan.linkedid not in self._closed:
                call = self._open_call(entry.chan, now - entry.wait)
                seg = SegState(entry.queue, entry.chan.uniqueid, now - entry.wait, entry.position, adopted=True)
                call.segments.append(seg)
                self._check_repeat(call, entry.chan, now - entry.wait, out)
        self._resync_alive = None
        self._resync_waiting = []
        return out

    def close_all(self, now: float, reason: str = "gap") -> list[Note]:
        """Close every open call (end of a replay, stream gap without resync, shutdown)."""
        return [self._close(c, now, reason) for c in list(self._calls.values())]

    def waiting(self) -> dict[str, list[float]]:
        """Join times of callers waiting right now, per queue."""
        out: dict[str, list[float]] = {q: [] for q in self.queues}
        for call in self._calls.values():
            for s in call.segments:
                if s.state == "waiting":
                    out.setdefault(s.queue, []).append(s.join_ts)
        return out

    # -- helpers ---------------------------------------------------------------------------------------

    def _call_for(self, uid: str, linkedid: str) -> CallState | None:
        lid = self._by_uid.get(uid)
        if lid is not None and lid in self._calls:
            return self._calls[lid]
        return self._calls.get(linkedid)

    def _chan(self, c: ev.Chan) -> ChanState:
        ch = self._chans.get(c.uniqueid)
        if ch is None:
            ch = ChanState(c.linkedid, c.channel, c.caller_num, c.caller_name)
            self._chans[c.uniqueid] = ch
            if len(self._chans) > self.config.max_channels:
                old_uid, _ = self._chans.popitem(last=False)
                self.stats["evicted_channels"] += 1
                self._by_uid.pop(old_uid, None)
        else:
            if c.caller_num:
                ch.caller_num = c.caller_num
                ch.caller_name = c.caller_name
            if c.channel:
                ch.channel = c.channel
        return ch

    def _open_call(self, c: ev.Chan, ts: float) -> CallState:
        call = self._calls.get(c.linkedid)
        if call is None:
            call = CallState(c.linkedid, c.uniqueid, ts)
            self._calls[c.linkedid] = call
        if c.uniqueid not in call.channels:
            call.channels.add(c.uniqueid)
            self._by_uid[c.uniqueid] = c.linkedid
        return call

    def _entry_call(self, c: ev.Chan, ts: float, out: list[Note]) -> CallState | None:
        """The call a queue-entering channel belongs to, opened if new (never re-opened once closed)."""
        existing = self._call_for(c.uniqueid, c.linkedid)
        if existing is not None:
            if c.uniqueid not in existing.channels:
                existing.channels.add(c.uniqueid)
                self._by_uid[c.uniqueid] = existing.linkedid
            self._check_repeat(existing, c, ts, out)
            return existing
        if c.linkedid in self._closed:
            self.stats["late_events"] += 1
            return None
        call = self._open_call(c, ts)
        self._check_repeat(call, c, ts, out)
        return call

    def _check_repeat(self, call: CallState, c: ev.Chan, ts: float, out: list[Note]) -> None:
        if call.caller_checked:
            return
        num = normalize_number(c.caller_num) or normalize_number(self._chans[c.uniqueid].caller_num
                                                                   if c.uniqueid in self._chans else None)
        if num is None and not c.caller_num:
            return  # not known yet; a later event of this channel will tell
        call.caller_checked = True
        call.caller = num
        call.caller_name = c.caller_name if c.caller_name not in ("<unknown>",) else ""
        call.repeat = self.repeats.check_and_add(num, ts, call.linkedid)
        if call.repeat:
            first = call.segments[0].queue if call.segments else self._chans.get(c.uniqueid, NO_CHAN).queue_app
            out.append(RepeatNote(first, call.repeat, ts))

    def _resolve(self, call: CallState, seg: SegState, outcome: str, ts: float, out: list[Note]) -> None:
        if seg.outcome is not None:
            return
        if outcome == "abandoned" and seg.wait_s is not None and seg.wait_s < self.config.abandon_short_s:
            outcome = "abandoned_short"
        seg.outcome = outcome
        seg.state = "done" if outcome != "answered" else "answered"
        seg.end_ts = seg.end_ts or ts
        if seg.wait_s is None:
            seg.wait_s = max(0.0, ts - seg.join_ts)
            if outcome == "abandoned" and seg.wait_s < self.config.abandon_short_s:
                seg.outcome = outcome = "abandoned_short"
        for m in seg.ringing:
            self.members.adjust(seg.queue, m, ringing=-1)
        seg.ringing.clear()
        if outcome != "unknown":  # unknown segments are counted once, from the closed call's record
            out.append(SegmentNote(seg.queue, outcome, seg.wait_s, seg.agent, ts))

    def _settle_pending(self, call: CallState, seg: SegState, ts: float, out: list[Note], status: str = "") -> None:
        """A segment that left the queue without an answer: decide timeout/empty/exit-key."""
        if seg.outcome is not None:
            return
        if status == "TIMEOUT":
            self._resolve(call, seg, "timeout", ts, out)
        elif status in ("LEAVEEMPTY", "LEAVEUNAVAIL"):
            self._resolve(call, seg, "exit_empty", ts, out)
        elif seg.state == "abandon_pending":
            # Abandon raised but the channel lives on without QUEUESTATUS: the queue's own limit.
            self._resolve(call, seg, "timeout", ts, out)
        elif seg.state == "left":
            self._resolve(call, seg, "exit_key", ts, out)

    def _attach_survey(self, call: CallState, survey: Survey) -> list[Note]:
        """Make ``survey`` the call's, its queue/agent (when it names none) those of the answered segment."""
        seg = call.last_seg(queue=survey.queue) if survey.queue else None
        answered = [s for s in call.segments if s.outcome == "answered"]
        if seg is None or seg.outcome != "answered":
            seg = answered[-1] if answered else seg
        queue = survey.queue or (seg.queue if seg else None)
        agent = survey.agent or (seg.agent if seg else None)
        call.survey = replace(survey, queue=queue, agent=agent)
        return [SurveyNote.of_userevent(call.survey)]

    def _freeze(self, call: CallState, ts: float, closed_by: str) -> CallRecord:
        segs = tuple(s.freeze() for s in call.segments)
        if any(s.outcome == "answered" for s in segs):
            outcome = "answered"
        elif call.voicemail is not None:
            outcome = "voicemail"
        elif segs:
            outcome = segs[-1].outcome
        else:
            outcome = "unknown"
        targets = [t.to for t in call.transfers]
        ping_pong = (len(call.transfers) >= 2 and len(set(targets)) < len(targets)) or len(call.transfers) >= 3
        return CallRecord(
            call.linkedid, call.call_id, call.caller, call.caller_name, call.start_ts, ts, segs,
            tuple(call.transfers), call.voicemail, call.survey, call.repeat, outcome, closed_by,
            self.config.pbx, ping_pong,
        )

    def _close(self, call: CallState, ts: float, closed_by: str) -> CallClosed:
        for seg in call.segments:
            if seg.outcome is None:
                seg.outcome = "unknown"
                seg.state = "done"
                seg.end_ts = ts
                for m in seg.ringing:
                    self.members.adjust(seg.queue, m, ringing=-1)
                seg.ringing.clear()
            elif seg.state == "answered" and seg.agent is not None and seg.talk_s is None:
                self.members.adjust(seg.queue, seg.agent, in_call=-1)
                seg.state = "done"
        self._calls.pop(call.linkedid, None)
        for uid in call.channels:
            self._by_uid.pop(uid, None)
        self._closed[call.linkedid] = ts
        while len(self._closed) > 10_000:
            self._closed.popitem(last=False)
        record = self._freeze(call, ts, closed_by)
        answered = [s for s in record.segments if s.outcome == "answered"]
        place = (answered[-1].queue, answered[-1].agent) if answered else (None, None)
        self._recent[record.linkedid] = self._recent[record.call_id] = place
        while len(self._recent) > 20_000:
            self._recent.popitem(last=False)
        return CallClosed(record)



from monitor.core.handlers import HANDLERS as _HANDLERS  # noqa: E402  (handlers take a CallTracker)
