"""The segment state machine: the transitions table is complete and consistent, and the tracker follows it.

The walk drives a real tracker (AMI header dicts through Ingest) into every segment state, then sends every
input that AMI can carry: the segment must end in the table's next state with the table's outcome; known
no-ops change nothing; illegal pairs change nothing and are counted as ``illegal:<input>@<state>`` skips.
"""

from __future__ import annotations

from itertools import product
from typing import Any

import pytest

from monitor.core.ingest import Ingest, closed_records
from monitor.core.segments import IGNORED, OPEN_STATES, TRANSITIONS, SegmentInput, SegmentState
from monitor.core.state import SegState
from monitor.core.tracker import CallTracker
from monitor.core.vocab import Outcome
from tests.support.builders import CallBuilder

S, In = SegmentState, SegmentInput
Msg = dict[str, Any]
C = CallBuilder("50.1")
Q = "q"


def test_every_pair_is_a_transition_a_no_op_or_illegal_and_never_two() -> None:
    assert not set(TRANSITIONS) & IGNORED
    illegal = set(product(SegmentState, SegmentInput)) - set(TRANSITIONS) - IGNORED
    # The illegal pairs, spelled out: a change here is a change of the documented state machine.
    assert illegal == {
        (S.ANSWERED, In.LEAVE), (S.ANSWERED, In.ABANDON), (S.ANSWERED, In.CONNECT), (S.DONE, In.CONNECT),
        *((s, In.COMPLETE) for s in OPEN_STATES),
        *((s, i) for s in SegmentState if s != S.WAITING for i in (In.JOIN_EMPTY, In.JOIN_UNAVAIL, In.FULL)),
    }


def test_outcomes_and_states_agree() -> None:
    for (state, inp), (nxt, outcome) in TRANSITIONS.items():
        if outcome is not None:  # an outcome is decided once, from an open state, and settles the segment
            assert state in OPEN_STATES, (state, inp)
            assert nxt == (S.ANSWERED if outcome == Outcome.ANSWERED else S.DONE), (state, inp)
        else:
            assert (nxt in OPEN_STATES) == (state in OPEN_STATES) or (state, nxt) == (S.ANSWERED, S.DONE)
    assert all(nxt == S.DONE for (s, _), (nxt, _o) in TRANSITIONS.items() if s == S.DONE)


def test_every_state_is_reachable_from_waiting_and_every_state_can_close() -> None:
    seen, todo = {S.WAITING}, [S.WAITING]
    while todo:
        state = todo.pop()
        for (s, _), (nxt, _o) in TRANSITIONS.items():
            if s == state and nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    assert seen == set(SegmentState)
    assert all((s, In.CLOSE) in TRANSITIONS or (s, In.CLOSE) in IGNORED for s in SegmentState)


# -- the walk ------------------------------------------------------------------------------------------

_CALLED = C.agent("AgentCalled", 0.1, Q, "alice")
_CONNECT = C.agent("AgentConnect", 12, Q, "alice", HoldTime=12, RingTime=2)
PREFIX: dict[SegmentState, list[Msg]] = {
    S.WAITING: [C.queue_app(0, Q), C.join(0, Q)],
    S.LEFT: [C.queue_app(0, Q), C.join(0, Q), C.leave(10, Q)],
    S.ABANDON_PENDING: [C.queue_app(0, Q), C.join(0, Q), C.abandon(10, Q, 10)],
    S.ANSWERED: [C.queue_app(0, Q), C.join(0, Q), _CALLED, C.leave(12, Q), _CONNECT],
    S.DONE: [C.queue_app(0, Q), C.join(0, Q), _CALLED, C.leave(12, Q), _CONNECT,
             C.agent("AgentComplete", 40, Q, "alice", HoldTime=12, TalkTime=28, Reason="agent")],
}
T = 50.0
INPUT_MSG: dict[SegmentInput, Msg] = {
    In.LEAVE: C.leave(T, Q),
    In.ABANDON: C.abandon(T, Q, 50),
    In.CALLED: C.agent("AgentCalled", T, Q, "bob"),
    In.RING_NO_ANSWER: C.agent("AgentRingNoAnswer", T, Q, "bob", RingTime=4000),
    In.DUMP: C.agent("AgentDump", T, Q, "bob"),
    In.CONNECT: C.agent("AgentConnect", T, Q, "bob", HoldTime=50, RingTime=1),
    In.COMPLETE: C.agent("AgentComplete", T, Q, "alice", HoldTime=12, TalkTime=3, Reason="caller"),
    In.HANGUP: C.hangup(T),
    In.TIMEOUT: C.status(T, "TIMEOUT"),
    In.LEAVE_EMPTY: C.status(T, "LEAVEEMPTY"),
    In.LEAVE_UNAVAIL: C.status(T, "LEAVEUNAVAIL"),
    In.WITHDRAW: C.status(T, "WITHDRAW"),
    In.CONTINUE: C.status(T, "CONTINUE"),
    In.STATUS: C.status(T, "UNKNOWN"),
    In.DIALPLAN: C.ev("Newexten", T, Application="Playback", AppData="beep"),
    In.REJOIN: C.join(T, "other"),
}


def _walkable() -> list[tuple[SegmentState, SegmentInput]]:
    """Every pair AMI can carry to an existing segment (JOIN_EMPTY, JOIN_UNAVAIL and FULL make a new segment;
    AgentComplete finds its segment by member, so it never reaches a segment without one)."""
    return [(s, i) for s, i in product(SegmentState, SegmentInput)
            if i not in (In.JOIN_EMPTY, In.JOIN_UNAVAIL, In.FULL) and not (i == In.COMPLETE and s in OPEN_STATES)]


def expect(state: SegmentState, inp: SegmentInput) -> tuple[SegmentState, Outcome | None, dict[str, int]]:
    """Per the table: the state after ``inp``, the outcome it decides, the skips it counts."""
    step = TRANSITIONS.get((state, inp))
    if step is not None:
        return step[0], step[1], {}
    return state, None, {} if (state, inp) in IGNORED else {f"illegal:{inp.value}@{state.value}": 1}


@pytest.mark.parametrize(("state", "inp"), _walkable(), ids=str)
def test_tracker_follows_the_table(state: SegmentState, inp: SegmentInput) -> None:
    tracker = CallTracker()
    ingest = Ingest(tracker)
    for m in PREFIX[state]:
        ingest.feed(m, float(m["Timestamp"]))
    assert ingest.skipped == {}
    seg: SegState = tracker.state.calls[C.lid].segments[-1]
    assert seg.state == state
    before = (seg.outcome, seg.agent, seg.wait_s)
    nxt, outcome, skips = expect(state, inp)
    if inp == In.HANGUP:  # the caller channel is the call's only one: its hang-up also closes the call
        nxt, close_outcome, close_skips = expect(nxt, In.CLOSE)
        outcome, skips = outcome or close_outcome, skips | close_skips
    if inp == In.CLOSE:
        tracker.close_all(T, "eof")
        skipped = dict(tracker.take_skips())
    else:
        ingest.feed(INPUT_MSG[inp], T)
        ingest.tick(T + 60)  # past the grace period: a hung-up call is final (and its segments closed)
        skipped = dict(ingest.skipped)
    assert seg.state == nxt
    assert seg.outcome == (outcome or before[0])
    if (state, inp) not in TRANSITIONS and inp not in (In.HANGUP, In.CLOSE):  # a no-op or illegal: untouched
        assert (seg.outcome, seg.agent, seg.wait_s) == before
    assert skipped == skips


def test_illegal_transition_is_a_counted_skip_and_the_record_stays_right() -> None:
    """A second AgentConnect for an answered segment (bob after alice) is counted, not applied, not a crash."""
    tracker = CallTracker()
    ingest = Ingest(tracker)
    msgs = [*PREFIX[S.ANSWERED], INPUT_MSG[In.CONNECT], C.hangup(60)]
    notes = [n for m in msgs for n in ingest.feed(m, float(m["Timestamp"]))] + ingest.tick(70)
    assert ingest.skipped == {"illegal:AgentConnect@answered": 1}
    (rec,) = closed_records(notes)
    assert [(s.outcome, s.agent, s.wait_s) for s in rec.segments] == [("answered", "alice", 12.0)]
    assert tracker.members.counts(Q)["in_call"] == 0  # bob was never counted as talking
