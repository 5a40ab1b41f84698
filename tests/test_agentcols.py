"""The kept agent columns (monitor.core.agentkeep.ColumnKeeper, what /metrics reads every scrape) are exactly
:func:`agent_columns` of the board: after every fact of random sequences (pauses under one label or several, wrap-up,
logouts, calls, device states, members joining), read at the floor and beyond, value for value (``repr``: a -0.0
or a last digit would show in the exposition)."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.core import events as ev
from monitor.core.agentcols import AgentColumns, agent_columns
from monitor.core.agentkeep import ColumnKeeper
from monitor.core.agents import AgentBoard
from monitor.core.ingest import Ingest
from monitor.core.tracker import CallTracker, TrackerConfig
from tests.test_exposition import CAPTURES, _members

QUEUES = ("q1", "q2", "q3")  # q2 and q3 have a wrap-up time
AGENTS = ("a", "b")
REASONS = ("", "lunch", "x", "y", "lunch ")  # x and y both count as "other"; "lunch " is "lunch" stripped

FACTS = st.one_of(
    st.tuples(st.just("login"), st.sampled_from(QUEUES), st.sampled_from(AGENTS)),
    st.tuples(st.just("logout"), st.sampled_from(QUEUES), st.sampled_from(AGENTS)),
    st.tuples(st.just("pause"), st.sampled_from(QUEUES), st.sampled_from(AGENTS), st.sampled_from(REASONS)),
    st.tuples(st.just("unpause"), st.sampled_from(QUEUES), st.sampled_from(AGENTS)),
    st.tuples(st.just("device"), st.sampled_from(QUEUES), st.sampled_from(AGENTS), st.sampled_from([1, 2, 4, 5])),
    st.tuples(st.just("connect"), st.sampled_from(QUEUES), st.sampled_from(AGENTS)),
    st.tuples(st.just("complete"), st.sampled_from(QUEUES), st.sampled_from(AGENTS),
              st.floats(0, 500, allow_nan=False)),
    st.tuples(st.just("ended"), st.sampled_from(QUEUES), st.sampled_from(AGENTS)),
    st.tuples(st.just("rna"), st.sampled_from(QUEUES), st.sampled_from(AGENTS)),
    st.tuples(st.just("member"), st.sampled_from(QUEUES), st.sampled_from(AGENTS),
              st.sampled_from(["added", "removed", "status", "pause", "list"]), st.booleans(),
              st.sampled_from(REASONS), st.integers(0, 30)),
    st.tuples(st.just("hold")),
    st.tuples(st.just("read")),
)


def _strict(c: AgentColumns) -> dict[str, Any]:
    """Every column as text (repr tells -0.0 from 0.0 and every digit)."""
    out: dict[str, Any] = {}
    for f in AgentColumns.__slots__:
        v = getattr(c, f)
        out[f] = repr(v) if not isinstance(v, list) else [
            repr(sorted(x.items())) if isinstance(x, dict) else repr(x) for x in v]
    return out


#: Facts given as (queue, agent, *more): the board's method of that name, called with them and the time.
_FACT_METHODS = {"logout": "logout", "pause": "pause", "unpause": "unpause", "device": "device_status",
                 "connect": "connect", "complete": "complete", "ended": "call_ended", "rna": "ring_no_answer"}


def _apply(board: AgentBoard, fact: tuple[Any, ...], ts: float) -> None:
    kind, *args = fact
    if kind == "login":
        board.login(args[0], args[1], ts, f"PJSIP/{args[1]}")
    elif kind == "member":
        q, a, what, paused, reason, back = args
        e = ev.MemberEvent(ts=ts, kind=what, queue=q, member=a, interface=f"PJSIP/{a}", status=1, paused=paused,
                           paused_reason=reason, in_call=False, login_time=int(ts) - back,
                           last_pause=int(ts) - back // 2, wrapuptime=back % 3 * 7)
        board.member_event(e, ts)
    else:
        getattr(board, _FACT_METHODS[kind])(*args, ts)


@settings(max_examples=600, deadline=None)
@given(st.lists(st.tuples(FACTS, st.floats(0, 40, allow_nan=False), st.booleans()), max_size=60),
       st.floats(0, 100, allow_nan=False))
def test_kept_columns_are_agent_columns_after_every_fact(facts: list[tuple[Any, float, bool]], beyond: float) -> None:
    board = AgentBoard(("lunch",), {"q2": 15.0, "q3": 0.5})
    keeper = ColumnKeeper(board)
    ts = 1.8e9 + 0.123456
    for fact, dt, read in facts:  # read after some facts (several facts, members joining, between two reads)
        ts += dt
        if fact[0] == "hold":
            board.hold(ts)
        elif fact[0] != "read":
            _apply(board, fact, ts)
        at = board.floor if fact[0] != "read" else board.floor + beyond
        if (read or fact[0] == "read") and at == at and abs(at) != float("inf"):
            assert _strict(keeper.columns(at)) == _strict(agent_columns(board, at)), fact
    at = max(board.floor, ts) + beyond
    assert _strict(keeper.columns(at)) == _strict(agent_columns(board, at))
    assert [(a.queue, a.agent) for a in board.ordered()] == sorted(board.accs)  # members put in place as they join


def test_kept_columns_follow_every_capture_and_a_large_board() -> None:
    ings = []
    for path in CAPTURES:
        from monitor.ami.files import read_capture

        ing = Ingest(CallTracker(TrackerConfig(pause_reasons=("lunch",))))
        keeper = ColumnKeeper(ing.tracker.agents)
        for i, (headers, _) in enumerate(read_capture(path)):
            ing.feed(headers, 1.8e9)
            board = ing.tracker.agents
            if i % 3 == 0 and board.floor > -float("inf"):
                assert _strict(keeper.columns(board.floor)) == _strict(agent_columns(board, board.floor)), path
        ings.append(ing)
    from monitor.ami.wire import WireParser

    big = Ingest(CallTracker(TrackerConfig(pause_reasons=("lunch",))))
    keeper = ColumnKeeper(big.tracker.agents)
    board = big.tracker.agents
    for h in WireParser(expect_banner=False).feed(_members(20, 50)):
        big.feed(h, 1.8e9)
    for step in range(6):
        board.hold(1.8e9 + 3.3 * step)
        if step % 2:
            board.pause("q3", "a1", "coffee", board.floor)
            board.complete("q4", "a2", 30.0, board.floor)
        at = board.floor + step * 0.25
        assert _strict(keeper.columns(at)) == _strict(agent_columns(board, at))
    # A read before a row's own time (never made by the daemon: it reads at the floor) takes the reference path.
    assert _strict(keeper.columns(board.floor - 50)) == _strict(agent_columns(board, board.floor - 50))


def test_kept_columns_of_the_moments_that_read_a_row_whole() -> None:
    board = AgentBoard(("lunch",), {"q2": 15.0})
    keeper = ColumnKeeper(board)

    def same(at: float) -> None:
        assert _strict(keeper.columns(at)) == _strict(agent_columns(board, at))

    board.login("q2", "a", 100.0)
    board.connect("q2", "a", 110.0)
    board.complete("q2", "a", 5.0, 120.123)
    same(125.0)  # in wrap-up
    same(200.0)  # the wrap-up ended before the read: available since its end
    board.login("q1", "b", 100.0)
    board.pause("q1", "b", "lunch", 130.0)
    board.unpause("q1", "b", 140.7)
    board.pause("q1", "b", "lunch", 150.3)  # the same reason again: its earlier seconds plus the open pause
    same(170.9)
    board.pause("q1", "b", "x", 180.1)
    board.pause("q1", "b", "y", 190.2)  # x and y are both "other": summed in measures' order
    same(211.3)
    board.pause("q1", "b", "lunch", 215.0)
    same(230.0)


def test_member_counts_kept_between_scrapes_are_a_fresh_count() -> None:
    """Members.counts_by_queue counts again only the members changed since its last call: after every event of
    every capture (the QueueStatus answer, resyncs, Asterisk 20 and 22, field recordings), and after a gap's reset,
    it is a full count."""
    from monitor.ami.wire import WireParser
    from tests.test_wire_fast import CAPTURES as RAW
    from tests.test_wire_fast import _raw

    assert len(RAW) > 50
    for path in RAW:
        ing = Ingest(CallTracker(TrackerConfig()))
        members = ing.tracker.members
        for i, headers in enumerate(WireParser().feed(_raw(path))):
            ing.feed(headers, 1.8e9)
            if i % 2:
                continue
            queues = sorted(members.queues | {"nobody"})
            assert members.counts_by_queue(queues) == {q: members.counts(q) for q in queues}, (path, i)
            if i % 50 == 0:
                members.reset_call_state()


def test_member_counts_after_a_resync_removed_members() -> None:
    from monitor.core import events as ev
    from monitor.core.members import Members

    members = Members()
    for q, name, paused in (("q1", "a", False), ("q1", "b", True), ("q2", "a", False)):
        members.apply(ev.MemberEvent(ts=1.0, kind="added", queue=q, member=name, interface=f"PJSIP/{name}", status=1,
                                     paused=paused, paused_reason="", in_call=False), 1.0)
    assert members.counts_by_queue(["q1", "q2"]) == {q: members.counts(q) for q in ("q1", "q2")}
    members.remove(("q1", "b"))  # a QueueStatus list without it (monitor.core.resync.members_listed)
    members.adjust("q2", "a", in_call=1)
    assert members.counts_by_queue(["q1", "q2"]) == {q: members.counts(q) for q in ("q1", "q2")}
    assert members.counts_by_queue(["q1"])["q1"]["paused"] == 0
