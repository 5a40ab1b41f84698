"""The life of one queue segment as an explicit state machine: states, inputs and the transitions table.

In the spirit of h11: every (state, input) pair is either a transition in :data:`TRANSITIONS` (next state,
plus the outcome it decides, if any), a known no-op in :data:`IGNORED` (Asterisk sends it and it changes
nothing), or illegal. Illegal pairs never crash the tracker: they are counted as skips
(``illegal:<input>@<state>``) and the event is ignored for that segment.

Why the table looks like this (all seen in the recorded Asterisk 22 transcripts, app_queue.c): QueueCallerLeave
precedes AgentConnect; QueueCallerAbandon is raised on timeout and leave-empty too, so it only marks the segment
``abandon_pending`` and the caller's hang-up (abandoned), ``QUEUESTATUS`` (timeout / exit_empty / leave_unavail /
withdraw: app_queue.c calls record_abandoned() for each of them, then set_queue_result()) or the dialplan
running on (timeout) decides; a leave with no abandon and no connect is the exit key once the dialplan runs on.
"""

from __future__ import annotations

from enum import StrEnum

from monitor.core.vocab import Outcome


class SegmentState(StrEnum):
    """Where one queue visit stands; ``WAITING``, ``LEFT`` and ``ABANDON_PENDING`` have no outcome yet."""

    WAITING = "waiting"  # in the queue (QueueCallerJoin, or adopted from QueueEntry at a resync)
    LEFT = "left"  # QueueCallerLeave without an abandon: answered next, or exit key/timeout/empty
    ABANDON_PENDING = "abandon_pending"  # QueueCallerAbandon: abandoned, timeout or leave-empty (decided later)
    ANSWERED = "answered"  # AgentConnect: the member talks to the caller
    DONE = "done"  # final: unanswered outcome known, AgentComplete seen, or the call closed


#: States whose segment has no outcome yet.
OPEN_STATES = frozenset({SegmentState.WAITING, SegmentState.LEFT, SegmentState.ABANDON_PENDING})


class SegmentInput(StrEnum):
    """What can happen to a segment (the AMI event, or the VarSet/dialplan fact, that carries it)."""

    LEAVE = "QueueCallerLeave"
    ABANDON = "QueueCallerAbandon"
    CALLED = "AgentCalled"
    RING_NO_ANSWER = "AgentRingNoAnswer"
    DUMP = "AgentDump"
    CONNECT = "AgentConnect"
    COMPLETE = "AgentComplete"
    HANGUP = "Hangup"  # of the caller channel that is in the queue
    JOIN_EMPTY = "QUEUESTATUS=JOINEMPTY"  # Queue() refused the caller: no member at all
    JOIN_UNAVAIL = "QUEUESTATUS=JOINUNAVAIL"  # Queue() refused the caller: no available member
    FULL = "QUEUESTATUS=FULL"  # Queue() refused the caller: maxlen reached
    TIMEOUT = "QUEUESTATUS=TIMEOUT"
    LEAVE_EMPTY = "QUEUESTATUS=LEAVEEMPTY"
    LEAVE_UNAVAIL = "QUEUESTATUS=LEAVEUNAVAIL"
    WITHDRAW = "QUEUESTATUS=WITHDRAW"  # the QueueWithdrawCaller action (app_queue raises an Abandon first)
    CONTINUE = "QUEUESTATUS=CONTINUE"  # a member answered and hung up (option c): the queue handled the call
    STATUS = "QUEUESTATUS"  # any other QUEUESTATUS value
    DIALPLAN = "Newexten"  # the dialplan runs on the caller channel again: Queue() has returned
    REJOIN = "QueueCallerJoin"  # the same caller channel joins a queue again
    CLOSE = "close"  # the call is closed (last hang-up, gap, stale sweep, shutdown, end of replay)


S, In = SegmentState, SegmentInput
Transition = tuple[SegmentState, Outcome | None]


def _rows() -> dict[tuple[SegmentState, SegmentInput], Transition]:
    t: dict[tuple[SegmentState, SegmentInput], Transition] = {}
    for s in OPEN_STATES:
        t[s, In.ABANDON] = (S.ABANDON_PENDING, None)
        t[s, In.CONNECT] = (S.ANSWERED, Outcome.ANSWERED)
        t[s, In.HANGUP] = (S.DONE, Outcome.ABANDONED)  # refined to abandoned_short by the wait
        t[s, In.TIMEOUT] = (S.DONE, Outcome.TIMEOUT)
        t[s, In.LEAVE_EMPTY] = (S.DONE, Outcome.EXIT_EMPTY)
        t[s, In.LEAVE_UNAVAIL] = (S.DONE, Outcome.LEAVE_UNAVAIL)
        t[s, In.WITHDRAW] = (S.DONE, Outcome.WITHDRAW)
        t[s, In.CLOSE] = (S.DONE, Outcome.UNKNOWN)
        t[s, In.CALLED] = (s, None)
    for s in SegmentState:  # ring bookkeeping goes on whatever the segment's state (ringall races)
        t[s, In.RING_NO_ANSWER] = (s, None)
        t[s, In.DUMP] = (s, None)
    t[S.WAITING, In.LEAVE] = (S.LEFT, None)
    t[S.LEFT, In.LEAVE] = (S.LEFT, None)
    t[S.ABANDON_PENDING, In.LEAVE] = (S.ABANDON_PENDING, None)
    t[S.WAITING, In.JOIN_EMPTY] = (S.DONE, Outcome.JOIN_EMPTY)
    t[S.WAITING, In.JOIN_UNAVAIL] = (S.DONE, Outcome.JOIN_UNAVAIL)
    t[S.WAITING, In.FULL] = (S.DONE, Outcome.FULL)
    # CONTINUE is only set once app_queue handled the call (qe.handled: a member answered): the AgentConnect
    # was lost, but the visit was answered all the same (queue_log has its CONNECT).
    t[S.WAITING, In.CONTINUE] = (S.ANSWERED, Outcome.ANSWERED)
    t[S.LEFT, In.CONTINUE] = (S.ANSWERED, Outcome.ANSWERED)
    # Queue() returned without QUEUESTATUS telling why: an abandon the caller survived is the queue's own
    # limit (timeout); a plain leave is the exit key.
    for inp in (In.STATUS, In.DIALPLAN, In.REJOIN):
        t[S.ABANDON_PENDING, inp] = (S.DONE, Outcome.TIMEOUT)
        t[S.LEFT, inp] = (S.DONE, Outcome.EXIT_KEY)
    t[S.ABANDON_PENDING, In.CONTINUE] = (S.DONE, Outcome.TIMEOUT)  # handled after an abandon: not seen live
    t[S.WAITING, In.REJOIN] = (S.DONE, Outcome.UNKNOWN)  # a second join while we think it still waits: a lost event
    t[S.ANSWERED, In.COMPLETE] = (S.DONE, None)
    t[S.ANSWERED, In.CLOSE] = (S.DONE, None)
    return t


#: (state, input) -> (next state, outcome decided or None).
TRANSITIONS: dict[tuple[SegmentState, SegmentInput], Transition] = _rows()

#: Inputs that legitimately change nothing in this state (Asterisk sends them as a matter of course).
IGNORED: frozenset[tuple[SegmentState, SegmentInput]] = frozenset(
    {(S.WAITING, inp) for inp in (In.STATUS, In.DIALPLAN)}  # e.g. the Queue() Newexten itself
    | {(s, inp) for s in (S.ANSWERED, S.DONE)
       for inp in (In.CALLED, In.HANGUP, In.TIMEOUT, In.LEAVE_EMPTY, In.LEAVE_UNAVAIL, In.WITHDRAW, In.CONTINUE,
                   In.STATUS, In.DIALPLAN, In.REJOIN)}
    | {(S.DONE, In.ABANDON), (S.DONE, In.LEAVE), (S.DONE, In.CLOSE), (S.DONE, In.COMPLETE)}
)


def illegal_label(state: SegmentState, inp: SegmentInput) -> str:
    """The bounded skip-reason detail of an illegal pair: ``AgentConnect@done``."""
    return f"{inp.value}@{state.value}"
