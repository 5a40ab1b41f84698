"""Per-event-type handlers of the call tracker: ``handler(state, event, ts, out)``.

Each handler reads and changes the :class:`~monitor.core.state.TrackerState` it is given (public fields
only) and appends the notes it produces to ``out``; segment state changes go through the transitions table
(:func:`monitor.core.calls.step`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from monitor.core import events as ev
from monitor.core.calls import Out, amend_complete, attach_survey, entry_call, fire, hang_up, resolve, step
from monitor.core.correlate import by_member, complete_target, is_zombie, swapped_visit
from monitor.core.owed import INBOUND, dialled_numbers
from monitor.core.records import (
    RingNoAnswer,
    RingNoAnswerNote,
    Survey,
    TalkNote,
    Transfer,
    TransferNote,
    Voicemail,
    VoicemailNote,
)
from monitor.core.resync import answered_unseen, on_entry, on_list_complete, on_listed, on_params
from monitor.core.segments import SegmentInput as In
from monitor.core.state import CallState, SegState, TrackerState
from monitor.core.transfers import describe_target
from monitor.core.vocab import VOICEMAIL_REASONS, CsatStatus, Outcome, SkipReason, parse_csat, skip_reason

# QUEUESTATUS values (app_queue.c, queue_exec/set_queue_result) -> segment input; any other value is In.STATUS.
_STATUS_INPUT = {
    "TIMEOUT": In.TIMEOUT, "LEAVEEMPTY": In.LEAVE_EMPTY, "LEAVEUNAVAIL": In.LEAVE_UNAVAIL,
    "JOINEMPTY": In.JOIN_EMPTY, "JOINUNAVAIL": In.JOIN_UNAVAIL, "FULL": In.FULL, "WITHDRAW": In.WITHDRAW,
    "CONTINUE": In.CONTINUE,
}
# Queue() refused the caller (join_queue() failed): no queue event at all, only the QUEUESTATUS VarSet.
_REFUSED = frozenset({In.JOIN_EMPTY, In.JOIN_UNAVAIL, In.FULL})


def _queue_seg(st: TrackerState, call: CallState, uid: str, queue: str) -> SegState | None:
    # The channel's latest visit of this queue, else any channel's (Agent* events may name the other leg), else a
    # visit a masquerade moved to this caller's identity.
    seg = call.last_seg(uid=uid, queue=queue) or call.last_seg(queue=queue)
    if seg is not None and seg.uid != uid and seg.is_open and seg.uid in st.zombies:
        seg.uid = uid  # the visit of a masqueraded channel, now reported under this caller's identity
    return seg or swapped_visit(st, call, uid, queue)


def on_newchannel(st: TrackerState, e: ev.Newchannel, ts: float, out: Out) -> None:
    """Newchannel: remember the channel (caller number, name)."""
    st.chan(e.chan)


def on_rename(st: TrackerState, e: ev.Rename, ts: float, out: Out) -> None:
    """Rename: the channel keeps its Uniqueid under a new name; a ``<ZOMBIE>`` name leaves the caller role.

    After a masquerade (an attended transfer into an application, asterisk/asterisk#759) the surviving channel
    carries on under the caller's identity; the zombie only hangs up. It must never end or abandon the call.
    """
    ch = st.chans.get(e.chan.uniqueid)
    if not is_zombie(e.new_name):
        if ch is not None:
            ch.channel = e.new_name
        return
    st.zombies[e.chan.uniqueid] = ts
    while len(st.zombies) > 10_000:
        st.zombies.popitem(last=False)


def on_newexten(st: TrackerState, e: ev.Newexten, ts: float, out: Out) -> None:
    """Newexten: Queue() opens the call; another app on a caller channel: Queue() returned (VoiceMail: fallthrough)."""
    ch = st.chan(e.chan)
    if e.application == "Queue":
        queue = e.app_data.split(",", 1)[0].strip()
        if queue:
            ch.queue_app = queue
            st.queues.add(queue)
        entry_call(st, e.chan, ts, out)
        return
    dialplan_ran(st, e.chan.uniqueid, e.application, ts, out)


def dialplan_ran(st: TrackerState, uid: str, application: str, ts: float, out: Out) -> None:
    """What a Newexten of another application than Queue does once the channel's state is refreshed (also applied
    from a pre-read Newexten: :meth:`monitor.core.tracker.CallTracker.dialplan_step`)."""
    lid = st.by_uid.get(uid)
    call = st.calls.get(lid) if lid is not None else None  # TrackerState.caller_call
    if call is None:
        return
    seg = call.last_seg(uid=uid)
    if seg is not None:
        # Dialplan runs again on the caller channel: a Queue() that was left has returned unanswered.
        step(st, seg, In.DIALPLAN, ts, out)
    if application.lower() == "voicemail" and call.voicemail is None and call.segments:
        last = call.segments[-1]
        if last.outcome is not None and last.outcome in VOICEMAIL_REASONS:
            call.voicemail = Voicemail(last.queue, last.outcome.value, ts)
            out.append(VoicemailNote(last.queue, last.outcome.value, ts))


def on_varset(st: TrackerState, e: ev.VarSet, ts: float, out: Out) -> None:
    """VarSet QUEUESTATUS (why Queue() returned; JOINEMPTY/JOINUNAVAIL/FULL have no queue event at all)."""
    if e.variable == "ATTENDEDTRANSFER":
        st.targets.remember(e.value, e.chan.channel)
        return
    if e.variable != "QUEUESTATUS":
        return
    inp = _STATUS_INPUT.get(e.value.upper(), In.STATUS)
    ch = st.chan(e.chan)
    if inp in _REFUSED:  # Queue() refused the caller: no queue event at all, a segment that never entered
        call = entry_call(st, e.chan, ts, out)
        if call is None:
            return
        seg = SegState(ch.queue_app or "unknown", e.chan.uniqueid, ts, 0, entered=False, wait_s=0.0)
        call.segments.append(seg)
        step(st, seg, inp, ts, out)
        return
    call = st.caller_call(e.chan)
    pending = call.last_seg(uid=e.chan.uniqueid) if call is not None else None
    if pending is not None:
        step(st, pending, inp, ts, out)


def on_hangup(st: TrackerState, e: ev.Hangup, ts: float, out: Out) -> None:
    """Hangup: a waiting caller abandoned; the call ends with the hang-up of its last caller channel.

    It is final ``late_grace_s`` later (:func:`monitor.core.calls.hang_up`): app_queue may still report on it.
    """
    uid = e.chan.uniqueid
    st.chans.pop(uid, None)
    if st.resync is not None:  # a caller QueueStatus listed as waiting may hang up before CoreShowChannels answers
        st.resync.hung_up(uid)
    call = st.caller_call(e.chan)
    if call is None:
        return
    seg = call.last_seg(uid=uid)
    zombie = is_zombie(e.chan.channel)
    if seg is not None and not zombie:
        # The caller hung up while waiting (with or without the Abandon event having arrived): abandoned.
        step(st, seg, In.HANGUP, ts, out)
    call.channels.discard(uid)
    st.by_uid.pop(uid, None)
    # A masquerade's leftover (<ZOMBIE>) is no caller hanging up: a visit still waiting on it goes on under the
    # identity the masquerade gave away (swapped_visit takes it over), so its call does not end with it.
    if not call.channels and not (zombie and seg is not None and seg.is_open):
        hang_up(st, call, ts, out)


def on_join(st: TrackerState, e: ev.QueueCallerJoin, ts: float, out: Out) -> None:
    """QueueCallerJoin: a new segment (settling the previous one of the channel, or taking over an adopted one)."""
    st.chan(e.chan)
    st.queues.add(e.queue)
    call = entry_call(st, e.chan, ts, out)
    if call is None:
        return
    prev = call.last_seg(uid=e.chan.uniqueid)
    if prev is not None and prev.adopted and prev.is_open and prev.queue == e.queue:
        # QueueStatus (live state) ran ahead of the event stream: this join is the one we adopted.
        prev.adopted = False
        prev.join_ts, prev.position = ts, e.position
        return
    if prev is not None:
        step(st, prev, In.REJOIN, ts, out)
    call.segments.append(SegState(e.queue, e.chan.uniqueid, ts, e.position))


def on_leave(st: TrackerState, e: ev.QueueCallerLeave, ts: float, out: Out) -> None:
    """QueueCallerLeave: the caller left the queue (answered, exit key, timeout or empty: decided later)."""
    call = st.caller_call(e.chan)
    seg = _queue_seg(st, call, e.chan.uniqueid, e.queue) if call else None
    if seg is not None and step(st, seg, In.LEAVE, ts, out):
        seg.exit_position = seg.exit_position or e.position
        seg.end_ts = ts


def on_abandon(st: TrackerState, e: ev.QueueCallerAbandon, ts: float, out: Out) -> None:
    """QueueCallerAbandon: also raised on timeout and leave-empty, so only ``abandon_pending`` + HoldTime (s)."""
    call = st.caller_call(e.chan)
    seg = _queue_seg(st, call, e.chan.uniqueid, e.queue) if call else None
    if seg is not None and step(st, seg, In.ABANDON, ts, out):
        seg.wait_s = float(e.hold_time)
        seg.exit_position = e.position
        seg.end_ts = ts


def _agent_seg(st: TrackerState, e: ev.AgentEvent, ts: float, out: Out, create: bool) -> SegState | None:
    if not e.chan.uniqueid:
        found = by_member(st, e, answered=False)
        return found[1] if found else None
    call = st.caller_call(e.chan)
    if call is None and create:
        call = entry_call(st, e.chan, ts, out)
    if call is None:
        return None
    seg = _queue_seg(st, call, e.chan.uniqueid, e.queue)
    if seg is None and create:
        # We missed the join (started mid-call or after a gap): adopt the call from here on.
        seg = SegState(e.queue, e.chan.uniqueid, ts, 0)
        call.segments.append(seg)
    return seg


def on_called(st: TrackerState, e: ev.AgentCalled, ts: float, out: Out) -> None:
    """AgentCalled: a member starts ringing for this caller."""
    seg = _agent_seg(st, e, ts, out, create=False)
    if seg is not None and fire(st, seg, In.CALLED) and e.member not in seg.ringing:
        seg.ringing.add(e.member)
        st.members.adjust(e.queue, e.member, ringing=1)


def on_rna(st: TrackerState, e: ev.AgentRingNoAnswer, ts: float, out: Out) -> None:
    """AgentRingNoAnswer: a member rang RingTime ms without answering."""
    seg = _agent_seg(st, e, ts, out, create=False)
    if seg is None or not fire(st, seg, In.RING_NO_ANSWER):
        return
    seg.rna.append(RingNoAnswer(e.member, e.ring_ms, ts))
    st.agents.ring_no_answer(e.queue, e.member, ts)
    if e.member in seg.ringing:
        seg.ringing.discard(e.member)
        st.members.adjust(e.queue, e.member, ringing=-1)
    out.append(RingNoAnswerNote(e.queue, e.member, e.ring_ms, ts))


def on_connect(st: TrackerState, e: ev.AgentConnect, ts: float, out: Out) -> None:
    """AgentConnect: answered after HoldTime s (adopts the call if its join was missed)."""
    seg = _agent_seg(st, e, ts, out, create=True)
    if seg is None or (e.chan.uniqueid and st.caller_call(e.chan) is None) or not fire(st, seg, In.CONNECT):
        return
    if seg.join_ts == ts and e.hold_time:
        seg.join_ts = ts - e.hold_time
    seg.agent, seg.agent_uid, seg.ring_s = e.member, e.dest_uniqueid or None, e.ring_time
    seg.wait_s = float(e.hold_time)
    seg.end_ts = ts
    resolve(st, seg, Outcome.ANSWERED, ts, out)
    st.members.adjust(e.queue, e.member, in_call=1)
    st.agents.connect(e.queue, e.member, ts)
    call = st.caller_call(e.chan)
    if call is not None:
        out.extend(st.owed.reached(call.caller, ts, INBOUND, e.member))


def on_complete(st: TrackerState, e: ev.AgentComplete, ts: float, out: Out) -> None:
    """AgentComplete: talk time TalkTime s; the member is free again.

    Without the caller's snapshot it is correlated by queue + member (Interface/MemberName, Dest* when present);
    after the call's record is final it amends the stored record (not the counters) and counts as a late skip.
    """
    found = complete_target(st, e)
    if found is None:  # answered while we did not listen (a gap), or adopted at a resync without its member
        call = st.call_for(e.chan.uniqueid, e.chan.linkedid) if e.chan.uniqueid else None
        unseen = answered_unseen(st, call, e, ts, out) if call is not None else None
        found = (call, unseen) if call is not None and unseen is not None else None
    if found is None:
        if amend_complete(st, e.queue, e.member, e.dest_uniqueid, float(e.talk_time), e.reason, out):
            st.skips[skip_reason(SkipReason.LATE, "AgentComplete")] += 1
        else:
            st.stats["late_events"] += 1
        return
    _, seg = found
    if seg.talk_s is not None or not step(st, seg, In.COMPLETE, ts, out):
        return
    if seg.adopted:  # answered before a gap: Asterisk's HoldTime/TalkTime replace the resync's estimates
        seg.agent = seg.agent or e.member
        seg.end_ts = ts - e.talk_time
        seg.wait_s = float(e.hold_time)
        seg.join_ts = seg.end_ts - e.hold_time
    seg.talk_s = float(e.talk_time)
    seg.completion = e.reason
    st.members.adjust(e.queue, e.member, in_call=-1)
    st.agents.complete(e.queue, e.member, seg.talk_s, ts)
    out.append(TalkNote(e.queue, e.member, seg.talk_s, e.reason, ts))


def on_dump(st: TrackerState, e: ev.AgentDump, ts: float, out: Out) -> None:
    """AgentDump: the member hung up during the announcement: no longer ringing."""
    seg = _agent_seg(st, e, ts, out, create=False)
    if seg is not None and fire(st, seg, In.DUMP) and e.member in seg.ringing:
        seg.ringing.discard(e.member)
        st.members.adjust(e.queue, e.member, ringing=-1)


def _transfer(st: TrackerState, kind: str, transferee: str, transferer: str, linkedid: str, to: str,
              ts: float, out: Out) -> None:
    lid = st.by_uid.get(transferee)
    call = st.calls.get(lid) if lid else st.calls.get(linkedid)
    if call is None:
        return
    answered = call.answered()
    seg = next((s for s in reversed(answered) if s.agent_uid == transferer), answered[-1] if answered else None)
    queue, agent = (seg.queue, seg.agent) if seg else (None, None)
    first = seg is not None and not seg.transferred
    if seg is not None:
        seg.transferred = True
    call.transfers.append(Transfer(kind, queue, agent, to, ts))
    out.append(TransferNote(queue, kind, ts, first))


def on_blind(st: TrackerState, e: ev.BlindTransfer, ts: float, out: Out) -> None:
    """BlindTransfer (Result Success) of a queue call by its member."""
    if e.result.lower() != "success":
        return
    to = f"{e.exten}@{e.context}" if e.context else e.exten
    _transfer(st, "blind", e.transferee_uniqueid, e.transferer_uniqueid, e.linkedid, to, ts, out)


def on_attended(st: TrackerState, e: ev.AttendedTransfer, ts: float, out: Out) -> None:
    """AttendedTransfer (Result Success); the target from TransferTarget* or the remembered consult leg."""
    if e.result.lower() != "success":
        return
    transferer = st.chans.get(e.transferer_uniqueid)
    remembered = st.targets.pop(transferer.channel) if transferer else ""
    to = (describe_target(e.target_channel) or describe_target(remembered) or e.dest_exten or e.dest_app
          or e.dest_type.lower())
    _transfer(st, "attended", e.transferee_uniqueid, e.transferer_uniqueid, e.linkedid, to, ts, out)


def on_user(st: TrackerState, e: ev.UserEvent, ts: float, out: Out) -> None:
    """``UserEvent: CSAT`` from a dialplan survey (Score, Status OK|INVALID|NOINPUT, Queue, Agent, QueueUniqueid)."""
    if e.name.upper() != "CSAT":
        return
    call = st.call_for(e.get("QueueUniqueid") or e.chan.uniqueid, e.chan.linkedid)
    if call is None:
        st.stats["late_events"] += 1
        return
    raw = e.get("Score").strip()
    status = e.get("Status").strip().upper()
    parsed = parse_csat(raw)
    if not status:
        status = CsatStatus.OK if parsed is not None else (CsatStatus.NOINPUT if not raw else CsatStatus.INVALID)
    score = parsed if status == CsatStatus.OK else None
    if status == CsatStatus.OK and score is None:
        status = CsatStatus.INVALID
    survey = Survey(e.get("Queue") or None, e.get("Agent") or None, str(status), score, raw, "userevent", ts)
    out.extend(attach_survey(call, survey))


def on_member(st: TrackerState, e: ev.MemberEvent, ts: float, out: Out) -> None:
    """QueueMemberAdded/Removed/Status/Pause and QueueMember list entries (collected during a resync)."""
    st.queues.add(e.queue)
    if e.kind == "list" and st.resync is not None:
        st.resync.members.add((e.queue, e.member))
    note = st.members.apply(e, ts)
    st.agents.member_event(e, ts)
    if note is not None:
        out.append(note)


def on_dial_begin(st: TrackerState, e: ev.DialBegin, ts: float, out: Out) -> None:
    """DialBegin from a member's device: remember the number it dials (an owed callback may be made)."""
    agent = st.agents.agent_of_channel(e.channel) if e.channel else None
    if agent is not None:
        st.owed.dial_begin(e.dest_uniqueid, agent, dialled_numbers(e.dial_string, e.exten, e.dest_exten,
                                                                   e.dest_caller_num))


def on_dial_end(st: TrackerState, e: ev.DialEnd, ts: float, out: Out) -> None:
    """DialEnd of a member's dial: DialStatus ANSWER reaches the dialled number (owed callbacks close)."""
    out.extend(st.owed.dial_end(e.dest_uniqueid, e.dial_status, ts))


Handler = Callable[[TrackerState, Any, float, Out], None]

HANDLERS: dict[type[ev.Event], Handler] = {
    ev.Newchannel: on_newchannel,
    ev.Newexten: on_newexten,
    ev.Rename: on_rename,
    ev.VarSet: on_varset,
    ev.Hangup: on_hangup,
    ev.QueueCallerJoin: on_join,
    ev.QueueCallerLeave: on_leave,
    ev.QueueCallerAbandon: on_abandon,
    ev.AgentCalled: on_called,
    ev.AgentRingNoAnswer: on_rna,
    ev.AgentConnect: on_connect,
    ev.AgentComplete: on_complete,
    ev.AgentDump: on_dump,
    ev.BlindTransfer: on_blind,
    ev.AttendedTransfer: on_attended,
    ev.UserEvent: on_user,
    ev.MemberEvent: on_member,
    ev.DialBegin: on_dial_begin,
    ev.DialEnd: on_dial_end,
    ev.QueueParams: on_params,
    ev.QueueEntry: on_entry,
    ev.CoreShowChannel: on_listed,
    ev.ListComplete: on_list_complete,
}
