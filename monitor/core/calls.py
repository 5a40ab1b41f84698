"""Call lifecycle operations on a :class:`TrackerState`: open, find, resolve segments, attach surveys, close.

Shared by the event handlers (:mod:`monitor.core.handlers`) and the tracker's public API
(:mod:`monitor.core.tracker`); every segment state change goes through :func:`fire` and the transitions table.
"""

from __future__ import annotations

from dataclasses import replace

from monitor.core import events as ev
from monitor.core.records import CallAmended, CallClosed, CallRecord, Note, RepeatNote, SegmentNote, Survey, SurveyNote
from monitor.core.repeat import normalize_number
from monitor.core.segments import IGNORED, TRANSITIONS, SegmentInput, SegmentState, Transition, illegal_label
from monitor.core.state import NO_CHAN, CallState, SegState, TrackerState
from monitor.core.vocab import VOICEMAIL, ClosedBy, Outcome, SkipReason, abandon_outcome, skip_reason

Out = list[Note]
FINAL_KEPT = 2_000  # final calls kept to be amended by a late event (the newest)


def fire(st: TrackerState, seg: SegState, inp: SegmentInput) -> Transition | None:
    """The table's (next state, outcome) for ``inp`` in ``seg``'s state; None for a no-op or an illegal pair.

    Illegal pairs are counted as ``illegal:<input>@<state>`` skips; the caller then leaves the segment alone.
    """
    key = (seg.state, inp)
    step = TRANSITIONS.get(key)
    if step is None and key not in IGNORED:
        st.skips[skip_reason(SkipReason.ILLEGAL, illegal_label(seg.state, inp))] += 1
    return step


def open_call(st: TrackerState, c: ev.Chan, ts: float) -> CallState:
    """The call of this Linkedid, created if new; the channel becomes one of its caller channels."""
    call = st.calls.get(c.linkedid)
    if call is None:
        call = CallState(c.linkedid, c.uniqueid, ts)
        st.calls[c.linkedid] = call
    _add_channel(st, call, c.uniqueid)
    return call


def _add_channel(st: TrackerState, call: CallState, uid: str) -> None:
    # A new caller channel of a call whose caller had hung up (within the grace period): it goes on.
    if uid not in call.channels:
        call.channels.add(uid)
        st.by_uid[uid] = call.linkedid
    if call.hangup_ts is not None:
        call.hangup_ts = None
        st.ending.pop(call.linkedid, None)


def entry_call(st: TrackerState, c: ev.Chan, ts: float, out: Out) -> CallState | None:
    """The call a queue-entering channel belongs to, opened if new (never re-opened once closed: None)."""
    existing = st.call_for(c.uniqueid, c.linkedid)
    if existing is not None:
        _add_channel(st, existing, c.uniqueid)
        check_repeat(st, existing, c, ts, out)
        return existing
    if c.linkedid in st.closed:
        st.stats["late_events"] += 1
        return None
    call = open_call(st, c, ts)
    check_repeat(st, call, c, ts, out)
    return call


def check_repeat(st: TrackerState, call: CallState, c: ev.Chan, ts: float, out: Out) -> None:
    """Once the caller number is known: set the call's caller and repeat windows (a RepeatNote if a repeat)."""
    if call.caller_checked:
        return
    known = st.chans[c.uniqueid].caller_num if c.uniqueid in st.chans else None
    cfg = st.config
    num = (normalize_number(c.caller_num, cfg.home_region, cfg.trunk_prefixes, cfg.withheld_numbers)
           or normalize_number(known, cfg.home_region, cfg.trunk_prefixes, cfg.withheld_numbers))
    if num is None and not c.caller_num:
        return  # not known yet; a later event of this channel will tell
    call.caller_checked = True
    call.caller = num
    call.caller_name = c.caller_name if c.caller_name not in ("<unknown>",) else ""
    call.repeat = st.repeats.check_and_add(num, ts, call.linkedid)
    if call.repeat:
        first = call.segments[0].queue if call.segments else st.chans.get(c.uniqueid, NO_CHAN).queue_app
        out.append(RepeatNote(first, call.repeat, ts))


def end_rings(st: TrackerState, seg: SegState) -> None:
    """Members still ringing for this segment stop ringing."""
    for m in seg.ringing:
        st.members.adjust(seg.queue, m, ringing=-1)
    seg.ringing.clear()


def resolve(st: TrackerState, seg: SegState, outcome: Outcome, ts: float, out: Out) -> None:
    """Give an open segment its outcome (abandoned becomes abandoned_short under ``abandon_short_s``)."""
    if seg.outcome is not None:
        return
    seg.state = SegmentState.ANSWERED if outcome == Outcome.ANSWERED else SegmentState.DONE
    seg.end_ts = seg.end_ts or ts
    if seg.wait_s is None:  # QueueCallerAbandon/AgentConnect give Asterisk's own HoldTime; else we measure
        seg.wait_s = max(0.0, ts - seg.join_ts)
    if outcome == Outcome.ABANDONED:
        outcome = abandon_outcome(seg.wait_s, st.config.abandon_short_s)
    seg.outcome = outcome
    end_rings(st, seg)
    if outcome != Outcome.UNKNOWN:  # unknown segments are counted once, from the closed call's record
        out.append(SegmentNote(seg.queue, outcome.value, seg.wait_s, seg.agent, ts))


def step(st: TrackerState, seg: SegState, inp: SegmentInput, ts: float, out: Out) -> bool:
    """Fire ``inp`` on ``seg``: move it to the next state, resolving it if the table decides an outcome.

    Returns whether the input applied (False: a no-op or an illegal pair, nothing changed).
    """
    nxt = fire(st, seg, inp)
    if nxt is None:
        return False
    state, outcome = nxt
    if outcome is not None:
        resolve(st, seg, outcome, ts, out)
    else:
        seg.state = state
    return True


def attach_survey(call: CallState, survey: Survey) -> list[Note]:
    """Attach a survey to the call, filling queue/agent from its (last) answered segment when not given."""
    seg = call.last_seg(queue=survey.queue) if survey.queue else None
    answered = call.answered()
    if seg is None or seg.outcome != Outcome.ANSWERED:
        seg = answered[-1] if answered else seg
    queue = survey.queue or (seg.queue if seg else None)
    agent = survey.agent or (seg.agent if seg else None)
    call.survey = replace(survey, queue=queue, agent=agent)
    return [SurveyNote.of_userevent(call.survey)]


def freeze(st: TrackerState, call: CallState, ts: float, closed_by: str) -> CallRecord:
    """The immutable record of a call as it stands (``end_ts`` = ``ts``)."""
    segs = tuple(s.freeze() for s in call.segments)
    if any(s.outcome == Outcome.ANSWERED for s in segs):
        outcome = Outcome.ANSWERED.value
    elif call.voicemail is not None:
        outcome = VOICEMAIL
    elif segs:
        outcome = segs[-1].outcome
    else:
        outcome = Outcome.UNKNOWN.value
    targets = [t.to for t in call.transfers]
    ping_pong = (len(call.transfers) >= 2 and len(set(targets)) < len(targets)) or len(call.transfers) >= 3
    return CallRecord(
        call.linkedid, call.call_id, call.caller, call.caller_name, call.start_ts, ts, segs,
        tuple(call.transfers), call.voicemail, call.survey, call.repeat, outcome, closed_by,
        st.config.pbx, ping_pong,
    )


def hang_up(st: TrackerState, call: CallState, ts: float, out: Out) -> None:
    """The call's last caller channel hung up at ``ts``: final ``late_grace_s`` later (at once when it is 0).

    The grace is measured on the PBX clock and on the daemon's (``st.daemon_now``), whichever passes it first: a
    stream whose Timestamps go back (a PBX clock change, concatenated captures) cannot keep a call open.
    """
    if st.config.late_grace_s <= 0:
        out.append(close(st, call, ts, ClosedBy.HANGUP))
        return
    call.hangup_ts = ts
    st.ending[call.linkedid] = (ts, st.daemon_now)


def flush(st: TrackerState, pbx_now: float, daemon_now: float) -> list[Note]:
    """Close, as ``hangup`` at their hang-up time, the calls whose grace period is over (times in epoch s)."""
    grace = st.config.late_grace_s
    due = sorted((ts, lid) for lid, (ts, seen) in st.ending.items()
                 if pbx_now >= ts + grace or daemon_now >= seen + grace)
    return [close(st, st.calls[lid], ts, ClosedBy.HANGUP) for ts, lid in due if lid in st.calls]


def amend_complete(st: TrackerState, queue: str, member: str, dest_uid: str, talk_s: float, reason: str,
                   out: Out) -> bool:
    """A late AgentComplete for a call already final: amend its record (a :class:`CallAmended`); False if none.

    Live counters are not touched (they were exported when the call closed); the member state neither.
    """
    for lid in reversed(st.final):
        call, end_ts, closed_by = st.final[lid]
        seg = next((s for s in reversed(call.segments) if s.queue == queue and s.agent == member
                    and s.outcome == Outcome.ANSWERED and s.talk_s is None
                    and (not dest_uid or not s.agent_uid or s.agent_uid == dest_uid)), None)
        if seg is None:
            continue
        seg.talk_s, seg.completion = talk_s, reason
        st.stats["amended"] += 1
        rec = freeze(st, call, end_ts, closed_by)
        out.append(CallAmended(replace(rec, extra={**rec.extra, "amended": True})))
        return True
    return False


def close(st: TrackerState, call: CallState, ts: float, closed_by: str) -> CallClosed:
    """Close a call: open segments become ``unknown``, members stop ringing/talking; the final record.

    ``closed_by`` is a :class:`~monitor.core.vocab.ClosedBy` value (plain strings are accepted as they are).
    """
    for seg in call.segments:
        was = seg.state
        if fire(st, seg, SegmentInput.CLOSE) is None:
            continue
        seg.state = SegmentState.DONE
        if was != SegmentState.ANSWERED:
            seg.outcome = Outcome.UNKNOWN
            seg.end_ts = ts
            end_rings(st, seg)
        elif seg.agent is not None and seg.talk_s is None:
            st.members.adjust(seg.queue, seg.agent, in_call=-1)
            st.agents.call_ended(seg.queue, seg.agent, ts)
    st.calls.pop(call.linkedid, None)
    st.ending.pop(call.linkedid, None)
    for uid in call.channels:
        st.by_uid.pop(uid, None)
    st.closed[call.linkedid] = ts
    while len(st.closed) > 10_000:
        st.closed.popitem(last=False)
    st.final[call.linkedid] = (call, ts, str(closed_by))
    while len(st.final) > FINAL_KEPT:
        st.final.popitem(last=False)
    record = freeze(st, call, ts, str(closed_by))
    answered = [s for s in record.segments if s.outcome == Outcome.ANSWERED]
    st.recent[record.linkedid] = st.recent[record.call_id] = (
        (answered[-1].queue, answered[-1].agent) if answered else (None, None))
    while len(st.recent) > 20_000:
        st.recent.popitem(last=False)
    return CallClosed(record)
