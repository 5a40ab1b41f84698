"""Resync after a gap or a restart: what Asterisk's QueueStatus and CoreShowChannels answers say is alive now.

The AMI side (``monitor.ami.live``) feeds the answers in wire order during a resync (between
``resync_begin`` and ``resync_end`` of :class:`~monitor.core.tracker.CallTracker`); the handlers collect them here:

* ``QueueMember`` entries: a complete QueueStatus answer (``QueueStatusComplete``) is the whole truth about
  members — every member it does not list is gone (Asterisk restarted, or the member was removed during the gap)
  and is removed with a ``logout`` note. QueueStatus is sent without a ``Queue`` filter, so a queue it does not
  list has no members in Asterisk either (app_queue.c, manager_queues_status, walks every queue in memory).
* ``QueueEntry`` (callers waiting) carries no Linkedid in Asterisk; it is joined to the channel's
  ``CoreShowChannel`` (by Uniqueid, else by channel name), which has it, so an adopted call keeps the id it was
  stored under before a restart (and its final record replaces the provisional one).
* Times come from Asterisk: a waiting caller joined ``Wait`` s before the answer; a call started ``Duration`` s
  before it (the Duration of its Linkedid channel, the caller's first leg); a caller in a bridge with a member's
  channel (``Application: Queue`` + ``BridgeId``) is adopted as answered, its talk starting ``Duration`` s before
  of the member's channel (an upper bound: that leg was created when it started ringing). Every time is on the
  PBX clock: an answer without a Timestamp is placed there by the tracker's clock offset (set from the resync's
  ``Ping`` Timestamp), never by the daemon's clock.
* A call the tracker had before a gap and Asterisk still has is reconciled (:func:`reconcile`): answered during
  the gap if its Queue() channel is bridged, ``unknown`` if it left Queue() during the gap.
"""

from __future__ import annotations

import re
from dataclasses import replace

from monitor.core import events as ev
from monitor.core.calls import Out, check_repeat, open_call, resolve
from monitor.core.records import MemberNote
from monitor.core.segments import SegmentState
from monitor.core.state import CallState, ResyncAnswers, SegState, TrackerState
from monitor.core.vocab import Outcome

# A channel name is "<device>-<sequence>" with ";1"/";2" for the two halves of a Local channel (channel.c,
# ast_channel_alloc: "%s-%08x"); a Local member's interface may end with "/n" style options.
_CHANNEL_SUFFIX = re.compile(r"-[0-9a-f]{8,}(;\d+)?$")
_LOCAL_OPTIONS = re.compile(r"^(Local/[^/]+)/[a-zA-Z]*$")


def device(name: str) -> str:
    """The device of a channel name or member interface: ``Local/a@ctx-0000001f;1`` and ``Local/a@ctx/n`` ->
    ``Local/a@ctx``; ``PJSIP/1001-00000005`` -> ``PJSIP/1001``."""
    m = _LOCAL_OPTIONS.match(name)
    return m.group(1) if m else _CHANNEL_SUFFIX.sub("", name)


def members_listed(st: TrackerState, answers: ResyncAnswers, ts: float, out: Out) -> None:
    """QueueStatus is complete: remove (``logout`` at ``ts``, PBX s) every member it did not list."""
    for key, m in list(st.members.by_key.items()):
        if key not in answers.members:
            st.members.remove(key)
            out.append(MemberNote(m.queue, m.name, m.interface, "logout", "", ts))


def reconcile(st: TrackerState, call: CallState, answers: ResyncAnswers, now: float, out: Out) -> None:
    """A call alive across a gap: settle its open queue visits from what Asterisk says now (``now``: PBX s).

    Still in QueueEntry: still waiting. Its Queue() channel bridged (``BridgeId``): answered during the gap (by
    the member whose channel shares the bridge). Neither, and no longer in Queue(): the visit ended during the
    gap for a reason no answer tells, so its outcome is ``unknown`` — never a guess such as "abandoned" at the
    next hang-up.
    """
    waiting = {e.chan.uniqueid for e, _ in answers.waiting}
    for seg in call.segments:
        if not seg.is_open or seg.uid in waiting:
            continue
        listed = answers.channels.get(seg.uid)
        if listed is not None and listed[0].application == "Queue":
            if listed[0].bridge_id:
                _answered_during_gap(st, answers, seg, *listed, out)
            continue  # in Queue() but not listed as waiting: being connected right now; its events follow
        resolve(st, seg, Outcome.UNKNOWN, now, out)


def _bridged_member(st: TrackerState, answers: ResyncAnswers, c: ev.CoreShowChannel, queue: str
                    ) -> tuple[ev.CoreShowChannel | None, str | None]:
    """The member channel in the same bridge as ``c`` and the member of ``queue`` it belongs to."""
    leg = next((o for o, _ in answers.channels.values() if o.bridge_id == c.bridge_id and o is not c), None)
    if leg is None:
        return None, None
    dev = device(leg.chan.channel)
    return leg, next((m.name for (q, _), m in st.members.by_key.items() if q == queue and device(m.interface) == dev),
                     None)


def _answered_during_gap(st: TrackerState, answers: ResyncAnswers, seg: SegState, c: ev.CoreShowChannel, ts: float,
                         out: Out) -> None:
    leg, member = _bridged_member(st, answers, c, seg.queue)
    answered = ts - leg.duration_s if leg is not None and leg.duration_s is not None else ts
    seg.end_ts = max(seg.join_ts, answered)
    seg.wait_s = seg.end_ts - seg.join_ts
    seg.agent, seg.agent_uid, seg.adopted = member, leg.chan.uniqueid if leg is not None else None, True
    resolve(st, seg, Outcome.ANSWERED, ts, out)
    if member is not None:
        st.members.adjust(seg.queue, member, in_call=1)


def answered_unseen(st: TrackerState, call: CallState, e: ev.AgentComplete, ts: float, out: Out) -> SegState | None:
    """The visit an AgentComplete (at ``ts``, PBX s) ends when no segment of ``call`` has its member: one adopted
    as answered without a member, else an open one whose AgentConnect was lost in a gap (AgentComplete only
    follows a connect, app_queue.c): answered ``TalkTime`` s ago after ``HoldTime`` s of wait."""
    for s in reversed(call.segments):
        if s.queue != e.queue:
            continue
        if s.adopted and s.agent is None and s.state == SegmentState.ANSWERED:
            return s
        if s.is_open:
            s.agent, s.agent_uid, s.adopted = e.member, e.dest_uniqueid or None, True
            s.end_ts, s.wait_s = ts - e.talk_time, float(e.hold_time)
            resolve(st, s, Outcome.ANSWERED, ts, out)
            st.members.adjust(e.queue, e.member, in_call=1)  # the completion below ends it
            return s
    return None


def adopt(st: TrackerState, answers: ResyncAnswers, out: Out) -> None:
    """Open the calls Asterisk has alive that the tracker does not: waiting callers, then answered ones."""
    by_name = {c.chan.channel: (c, ts) for c, ts in answers.channels.values() if c.chan.channel}
    waiting: set[str] = set()
    for entry, ts in answers.waiting:
        waiting.add(entry.chan.uniqueid)
        listed = answers.channels.get(entry.chan.uniqueid) or by_name.get(entry.chan.channel)
        if listed is None and answers.channels:
            continue  # gone by the time of CoreShowChannels, the later snapshot (its Hangup came in between)
        known = st.chans.get(entry.chan.uniqueid)
        linkedid = ((listed[0].chan.linkedid if listed else "") or entry.chan.linkedid
                    or (known.linkedid if known else "") or entry.chan.uniqueid)
        chan = replace(entry.chan, linkedid=linkedid)
        if chan.uniqueid in st.by_uid or linkedid in st.closed:
            continue
        st.chan(chan)
        joined = ts - entry.wait
        call = open_call(st, chan, min(joined, _call_start(answers, linkedid, joined)))
        call.segments.append(SegState(entry.queue, chan.uniqueid, joined, entry.position, adopted=True))
        check_repeat(st, call, chan, joined, out)
    for c, ts in list(answers.channels.values()):
        if (c.application == "Queue" and c.bridge_id and c.chan.uniqueid not in waiting
                and c.chan.uniqueid not in st.by_uid and c.chan.linkedid not in st.closed):
            _adopt_answered(st, answers, c, ts, out)


def _call_start(answers: ResyncAnswers, linkedid: str, default: float) -> float:
    """When the call began: its Linkedid channel's Duration before the answer (else ``default``)."""
    first = answers.channels.get(linkedid)
    if first is None or first[0].duration_s is None:
        return default
    return first[1] - first[0].duration_s


def _adopt_answered(st: TrackerState, answers: ResyncAnswers, c: ev.CoreShowChannel, ts: float, out: Out) -> None:
    """A caller in Queue() bridged to a member: answered before the gap (AgentComplete later gives Asterisk's
    own HoldTime and TalkTime, which replace these estimates)."""
    queue = c.app_data.split(",", 1)[0].strip() or "unknown"
    st.queues.add(queue)
    leg, member = _bridged_member(st, answers, c, queue)
    here = ts - (c.duration_s or 0)  # the Queue() channel's age: Queue() ran at most this long ago
    answered = ts - leg.duration_s if leg is not None and leg.duration_s is not None else ts
    answered = max(here, answered)
    st.chan(c.chan)
    call = open_call(st, c.chan, min(here, _call_start(answers, c.chan.linkedid, here)))
    seg = SegState(queue, c.chan.uniqueid, here, 0, state=SegmentState.ANSWERED, outcome=Outcome.ANSWERED,
                   end_ts=answered, wait_s=answered - here, agent=member,
                   agent_uid=leg.chan.uniqueid if leg is not None else None, adopted=True)
    call.segments.append(seg)
    if member is not None:
        st.members.adjust(queue, member, in_call=1)
    check_repeat(st, call, c.chan, here, out)


# -- the handlers of the lists a resync asks for (QueueStatus, CoreShowChannels) ------------------------------


def on_params(st: TrackerState, e: ev.QueueParams, ts: float, out: Out) -> None:
    """QueueParams (QueueStatus response): the queue exists."""
    st.queues.add(e.queue)


def on_entry(st: TrackerState, e: ev.QueueEntry, ts: float, out: Out) -> None:
    """QueueEntry (QueueStatus response): a caller waiting now; collected during a resync."""
    st.queues.add(e.queue)
    st.chan(e.chan)
    if st.resync is not None:
        st.resync.alive.add(e.chan.uniqueid)
        st.resync.waiting.append((e, ts))


def on_listed(st: TrackerState, e: ev.CoreShowChannel, ts: float, out: Out) -> None:
    """CoreShowChannel (CoreShowChannels response): a channel alive now; collected during a resync."""
    st.chan(e.chan)
    if st.resync is not None:
        st.resync.alive.add(e.chan.uniqueid)
        st.resync.channels[e.chan.uniqueid] = (e, ts)


def on_list_complete(st: TrackerState, e: ev.ListComplete, ts: float, out: Out) -> None:
    """QueueStatusComplete during a resync: the members it listed are all there are (the others are removed,
    from the live member state and from the agent measures)."""
    st.agents.list_complete(e.list_name)
    if st.resync is not None and e.list_name == "QueueStatus":
        members_listed(st, st.resync, ts, out)
