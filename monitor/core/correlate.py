"""Finding the call an event is about when its identity is incomplete or changed.

* Agent* events without the caller's snapshot (the caller's channel was destroyed just before app_queue raised
  them: seen on AgentComplete in Asterisk 20 and 22) are correlated by queue + member (Interface/MemberName), the
  member channel of ``Dest*`` first when present.
* A masquerade (channel.c: an attended transfer into an application, asterisk/asterisk#759) leaves a channel named
  ``<name><ZOMBIE>`` whose identity moved to another channel: it only hangs up, and that is no caller's hang-up.
"""

from __future__ import annotations

from monitor.core import events as ev
from monitor.core.segments import SegmentState
from monitor.core.state import CallState, SegState, TrackerState

ZOMBIE = "<ZOMBIE>"


def is_zombie(channel: str) -> bool:
    """A channel a masquerade left behind (channel.c names it ``<name><ZOMBIE>``): its identity moved on."""
    return channel.endswith(ZOMBIE)


def by_member(st: TrackerState, e: ev.AgentEvent, answered: bool) -> tuple[CallState, SegState] | None:
    """The member's open visit in the event's queue: answered by it (``answered``) or ringing it; None if none.

    For Agent* events without the caller's snapshot (app_queue raises them after the caller's channel is gone).
    """
    # No caller snapshot: the member's open visit in that queue (its answered one, or one ringing it), the one on
    # the member channel named by Dest* first; the latest joined wins.
    best: tuple[CallState, SegState] | None = None
    for call in st.calls.values():
        for seg in call.segments:
            if seg.queue != e.queue:
                continue
            if answered:
                ok = seg.state == SegmentState.ANSWERED and seg.agent == e.member and seg.talk_s is None
            else:
                ok = seg.is_open and (e.member in seg.ringing or not seg.ringing)
            if not ok:
                continue
            if e.dest_uniqueid and seg.agent_uid == e.dest_uniqueid:
                return call, seg
            if best is None or seg.join_ts > best[1].join_ts:
                best = (call, seg)
    return best


def complete_target(st: TrackerState, e: ev.AgentComplete) -> tuple[CallState, SegState] | None:
    """The (call, answered visit) an AgentComplete is about: by the caller's snapshot, else by queue + member."""
    call = st.call_for(e.chan.uniqueid, e.chan.linkedid) if e.chan.uniqueid else None
    if call is not None:
        seg = next((s for s in reversed(call.segments) if s.queue == e.queue and s.agent == e.member), None)
        if seg is not None:
            return call, seg
    # No caller snapshot (or its call is not known by it): the member's answered visit in that queue.
    return by_member(st, e, answered=True)


def swapped_visit(st: TrackerState, call: CallState, uid: str, queue: str) -> SegState | None:
    """An open visit of ``queue`` still on a channel a masquerade turned into a zombie, in another call: moved to
    ``call`` under the caller channel ``uid`` (its new identity), else None.

    channel.c swaps Uniqueid/Linkedid between the two channels of a masquerade, so app_queue goes on reporting the
    waiting visit under the transferred caller's identity: the visit is the same, only its owner changed. The
    call that held it is dropped when nothing else is left of it (it was the consult leg).
    """
    if not st.zombies:
        return None
    for other in st.calls.values():
        if other is call:
            continue
        for seg in other.segments:
            if seg.queue == queue and seg.is_open and seg.uid in st.zombies:
                other.segments.remove(seg)
                seg.uid = uid
                if not other.segments:
                    st.calls.pop(other.linkedid, None)
                    st.ending.pop(other.linkedid, None)
                    for gone in other.channels:
                        st.by_uid.pop(gone, None)
                    st.closed[other.linkedid] = seg.join_ts
                return seg
    return None
