"""Per-event-type handlers of the call tracker (split out of tracker.py to keep both readable)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from monitor.core import events as ev
from monitor.core.records import (
    UNANSWERED_FOR_VOICEMAIL,
    Note,
    RingNoAnswer,
    RingNoAnswerNote,
    Survey,
    TalkNote,
    Transfer,
    TransferNote,
    Voicemail,
    VoicemailNote,
)
from monitor.core.state import CallState, SegState
from monitor.core.transfers import describe_target

if TYPE_CHECKING:
    from monitor.core.tracker import CallTracker

Out = list[Note]


def _caller_call(tr: CallTracker, c: ev.Chan) -> CallState | None:
    """The open call whose caller channel this is (not agent legs)."""
    lid = tr._by_uid.get(c.uniqueid)
    return tr._calls.get(lid) if lid is not None else None


def _open_seg(call: CallState, uid: str, queue: str) -> SegState | None:
    seg = call.last_seg(uid=uid, queue=queue) or call.last_seg(queue=queue)
    return seg


def on_newchannel(tr: CallTracker, e: ev.NewChannel, ts: float, out: Out) -> None:
    tr._chan(e.chan)


def on_newexten(tr: CallTracker, e: ev.NewExten, ts: float, out: Out) -> None:
    ch = tr._chan(e.chan)
    if e.application == "Queue":
        queue = e.app_data.split(",", 1)[0].strip()
        if queue:
            ch.queue_app = queue
            tr.queues.add(queue)
        tr._entry_call(e.chan, ts, out)
        return
    call = _caller_call(tr, e.chan)
    if call is None:
        return
    seg = call.last_seg(uid=e.chan.uniqueid)
    if seg is not None and seg.outcome is None and seg.state in ("left", "abandon_pending"):
        # Dialplan runs again on the caller channel: Queue() has returned without an answer.
        tr._settle_pending(call, seg, ts, out)
    if e.application.lower() == "voicemail" and call.voicemail is None and call.segments:
        last = call.segments[-1]
        if last.outcome in UNANSWERED_FOR_VOICEMAIL:
            call.voicemail = Voicemail(last.queue, last.outcome, ts)
            out.append(VoicemailNote(last.queue, last.outcome, ts))


def on_varset(tr: CallTracker, e: ev.VarSet, ts: float, out: Out) -> None:
    if e.variable == "ATTENDEDTRANSFER":
        tr._targets.remember(e.value, e.chan.channel)
        return
    if e.variable != "QUEUESTATUS":
        return
    status = e.value.upper()
    ch = tr._chan(e.chan)
    if status in ("JOINEMPTY", "JOINUNAVAIL"):
        call = tr._entry_call(e.chan, ts, out)
        if call is None:
            return
        seg = SegState(ch.queue_app or "unknown", e.chan.uniqueid, ts, 0, entered=False, wait_s=0.0)
        call.segments.append(seg)
        tr._resolve(call, seg, "join_empty", ts, out)
        return
    call = _caller_call(tr, e.chan)
    if call is None:
        return
    pending = call.last_seg(uid=e.chan.uniqueid)
    if pending is not None and pending.outcome is None:
        tr._settle_pending(call, pending, ts, out, status)


def on_hangup(tr: CallTracker, e: ev.Hangup, ts: float, out: Out) -> None:
    uid = e.chan.uniqueid
    tr._chans.pop(uid, None)
    call = _caller_call(tr, e.chan)
    if call is None:
        return
    seg = call.last_seg(uid=uid)
    if seg is not None and seg.outcome is None:
        # The caller hung up while waiting (with or without the Abandon event having arrived).
        tr._resolve(call, seg, "abandoned", ts, out)
    call.channels.discard(uid)
    tr._by_uid.pop(uid, None)
    if not call.channels:
        out.append(tr._close(call, ts, "hangup"))


def on_join(tr: CallTracker, e: ev.CallerJoin, ts: float, out: Out) -> None:
    tr._chan(e.chan)
    tr.queues.add(e.queue)
    call = tr._entry_call(e.chan, ts, out)
    if call is None:
        return
    prev = call.last_seg(uid=e.chan.uniqueid)
    if prev is not None and prev.adopted and prev.outcome is None and prev.queue == e.queue:
        # QueueStatus (live state) ran ahead of the event stream: this join is the one we adopted.
        prev.adopted = False
        prev.join_ts, prev.position = ts, e.position
        return
    if prev is not None and prev.outcome is None:
        tr._settle_pending(call, prev, ts, out)
        if prev.outcome is None:
            tr._resolve(call, prev, "unknown", ts, out)
    call.segments.append(SegState(e.queue, e.chan.uniqueid, ts, e.position))


def on_leave(tr: CallTracker, e: ev.CallerLeave, ts: float, out: Out) -> None:
    call = _caller_call(tr, e.chan)
    seg = _open_seg(call, e.chan.uniqueid, e.queue) if call else None
    if seg is not None and seg.outcome is None:
        if seg.state == "waiting":
            seg.state = "left"
        seg.exit_position = seg.exit_position or e.position
        seg.end_ts = ts


def on_abandon(tr: CallTracker, e: ev.CallerAbandon, ts: float, out: Out) -> None:
    call = _caller_call(tr, e.chan)
    seg = _open_seg(call, e.chan.uniqueid, e.queue) if call else None
    if seg is not None and seg.outcome is None:
        seg.state = "abandon_pending"
        seg.wait_s = float(e.hold_time)
        seg.exit_position = e.position
        seg.end_ts = ts


def _agent_seg(tr: CallTracker, e: ev.AgentEvent, ts: float, out: Out, create: bool) -> SegState | None:
    call = _caller_call(tr, e.chan)
    if call is None and create:
        call = tr._entry_call(e.chan, ts, out)
    if call is None:
        return None
    seg = _open_seg(call, e.chan.uniqueid, e.queue)
    if seg is None and create:
        # We missed the join (started mid-call or after a gap): adopt the call from here on.
        seg = SegState(e.queue, e.chan.uniqueid, ts, 0)
        call.segments.append(seg)
    return seg


def on_called(tr: CallTracker, e: ev.AgentCalled, ts: float, out: Out) -> None:
    seg = _agent_seg(tr, e, ts, out, create=False)
    if seg is not None and seg.outcome is None and e.member not in seg.ringing:
        seg.ringing.add(e.member)
        tr.members.adjust(e.queue, e.member, ringing=1)


def on_rna(tr: CallTracker, e: ev.AgentRingNoAnswer, ts: float, out: Out) -> None:
    seg = _agent_seg(tr, e, ts, out, create=False)
    if seg is None:
        return
    seg.rna.append(RingNoAnswer(e.member, e.ring_ms, ts))
    if e.member in seg.ringing:
        seg.ringing.discard(e.member)
        tr.members.adjust(e.queue, e.member, ringing=-1)
    out.append(RingNoAnswerNote(e.queue, e.member, e.ring_ms, ts))


def on_connect(tr: CallTracker, e: ev.AgentConnect, ts: float, out: Out) -> None:
    seg = _agent_seg(tr, e, ts, out, create=True)
    call = _caller_call(tr, e.chan)
    if seg is None or call is None or seg.outcome is not None:
        return
    if seg.join_ts == ts and e.hold_time:
        seg.join_ts = ts - e.hold_time
    seg.agent, seg.agent_uid, seg.ring_s = e.member, e.dest_uniqueid or None, e.ring_time
    seg.wait_s = float(e.hold_time)
    seg.end_ts = ts
    tr._resolve(call, seg, "answered", ts, out)
    tr.members.adjust(e.queue, e.member, in_call=1)


def on_complete(tr: CallTracker, e: ev.AgentComplete, ts: float, out: Out) -> None:
    call = _caller_call(tr, e.chan)
    if call is None:
        tr.stats["late_events"] += 1
        return
    seg = next((s for s in reversed(call.segments) if s.queue == e.queue and s.agent == e.member), None)
    if seg is None or seg.talk_s is not None:
        return
    seg.talk_s = float(e.talk_time)
    seg.completion = e.reason
    if seg.state == "answered":
        seg.state = "done"
        tr.members.adjust(e.queue, e.member, in_call=-1)
    out.append(TalkNote(e.queue, e.member, seg.talk_s, e.reason, ts))


def on_dump(tr: CallTracker, e: ev.AgentDump, ts: float, out: Out) -> None:
    seg = _agent_seg(tr, e, ts, out, create=False)
    if seg is not None and e.member in seg.ringing:
        seg.ringing.discard(e.member)
        tr.members.adjust(e.queue, e.member, ringing=-1)


def _transfer(tr: CallTracker, kind: str, transferee: str, transferer: str, linkedid: str, to: str,
              ts: float, out: Out) -> None:
    lid = tr._by_uid.get(transferee)
    call = tr._calls.get(lid) if lid else tr._calls.get(linkedid)
    if call is None:
        return
    answered = [s for s in call.segments if s.outcome == "answered"]
    seg = next((s for s in reversed(answered) if s.agent_uid == transferer), answered[-1] if answered else None)
    queue, agent = (seg.queue, seg.agent) if seg else (None, None)
    first = seg is not None and not seg.transferred
    if seg is not None:
        seg.transferred = True
    call.transfers.append(Transfer(kind, queue, agent, to, ts))
    out.append(TransferNote(queue, kind, ts, first))


def on_blind(tr: CallTracker, e: ev.BlindTransfer, ts: float, out: Out) -> None:
    if e.result.lower() != "success":
        return
    to = f"{e.exten}@{e.context}" if e.context else e.exten
    _transfer(tr, "blind", e.transferee_uniqueid, e.transferer_uniqueid, e.linkedid, to, ts, out)


def on_attended(tr: CallTracker, e: ev.AttendedTransfer, ts: float, out: Out) -> None:
    if e.result.lower() != "success":
        return
    transferer = tr._chans.get(e.transferer_uniqueid)
    remembered = tr._targets.pop(transferer.channel) if transferer else ""
    to = (describe_target(e.target_channel) or describe_target(remembered) or e.dest_exten or e.dest_app
          or e.dest_type.lower())
    _transfer(tr, "attended", e.transferee_uniqueid, e.transferer_uniqueid, e.linkedid, to, ts, out)


def on_user(tr: CallTracker, e: ev.UserEvent, ts: float, out: Out) -> None:
    if e.name.upper() != "CSAT":
        return
    call = tr._call_for(e.get("QueueUniqueid") or e.chan.uniqueid, e.chan.linkedid)
    if call is None:
        tr.stats["late_events"] += 1
        return
    raw = e.get("Score").strip()
    status = e.get("Status").strip().upper()
    valid = raw.isdigit() and 1 <= int(raw) <= 5
    if not status:
        status = "OK" if valid else ("NOINPUT" if not raw else "INVALID")
    score = int(raw) if valid and status == "OK" else None
    if status == "OK" and score is None:
        status = "INVALID"
    survey = Survey(e.get("Queue") or None, e.get("Agent") or None, status, score, raw, "userevent", ts)
    out.extend(tr._attach_survey(call, survey))


def on_member(tr: CallTracker, e: ev.MemberEvent, ts: float, out: Out) -> None:
    tr.queues.add(e.queue)
    note = tr.members.apply(e, ts)
    if note is not None:
        out.append(note)


def on_params(tr: CallTracker, e: ev.QueueParams, ts: float, out: Out) -> None:
    tr.queues.add(e.queue)


def on_entry(tr: CallTracker, e: ev.QueueEntry, ts: float, out: Out) -> None:
    tr.queues.add(e.queue)
    tr._chan(e.chan)
    if tr._resync_alive is not None:
        tr._resync_alive.add(e.chan.uniqueid)
        tr._resync_waiting.append(e)


def on_listed(tr: CallTracker, e: ev.ChannelListed, ts: float, out: Out) -> None:
    tr._chan(e.chan)
    if tr._resync_alive is not None:
        tr._resync_alive.add(e.chan.uniqueid)


HANDLERS: dict[type[ev.Event], Callable[[CallTracker, Any, float, Out], None]] = {
    ev.NewChannel: on_newchannel,
    ev.NewExten: on_newexten,
    ev.VarSet: on_varset,
    ev.Hangup: on_hangup,
    ev.CallerJoin: on_join,
    ev.CallerLeave: on_leave,
    ev.CallerAbandon: on_abandon,
    ev.AgentCalled: on_called,
    ev.AgentRingNoAnswer: on_rna,
    ev.AgentConnect: on_connect,
    ev.AgentComplete: on_complete,
    ev.AgentDump: on_dump,
    ev.BlindTransfer: on_blind,
    ev.AttendedTransfer: on_attended,
    ev.UserEvent: on_user,
    ev.MemberEvent: on_member,
    ev.QueueParams: on_params,
    ev.QueueEntry: on_entry,
    ev.ChannelListed: on_listed,
}
