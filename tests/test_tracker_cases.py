"""Tracker edge cases beyond the recorded transcripts: exit key, leave-empty, gaps, races, bad input."""

from __future__ import annotations

from typing import Any

from monitor.ami.files import read_capture
from monitor.core.normalize import Skip, normalize
from monitor.core.records import CallRecord
from monitor.core.tracker import CallTracker, TrackerConfig
from monitor.replay import replay_messages
from tests.support.builders import CallBuilder
from tests.support.factcheck import FIXTURES


def run(msgs: list[dict[str, Any]], config: TrackerConfig | None = None) -> list[CallRecord]:
    return replay_messages([(m, None) for m in msgs], config).records


def test_exit_key_then_voicemail() -> None:
    c = CallBuilder("100.1")
    recs = run([
        c.queue_app(0, "support"), c.join(0, "support"), c.leave(12, "support"), c.status(12, "UNKNOWN"),
        c.ev("Newexten", 12, Application="VoiceMail", AppData="100@default"), c.hangup(40),
    ])
    (r,) = recs
    assert r.segments[0].outcome == "exit_key" and r.segments[0].wait_s == 12
    assert r.voicemail is not None and r.voicemail.reason == "exit_key"
    assert r.outcome == "voicemail"


def test_leave_empty_is_exit_empty_not_abandon() -> None:
    c = CallBuilder("100.2")
    (r,) = run([
        c.queue_app(0, "sales"), c.join(0, "sales"), c.abandon(7, "sales", 7), c.leave(7, "sales"),
        c.status(7, "LEAVEEMPTY"), c.hangup(8),
    ])
    assert r.segments[0].outcome == "exit_empty"


def test_abandon_short_threshold_is_configurable() -> None:
    c = CallBuilder("100.3")
    msgs = [c.queue_app(0, "q"), c.join(0, "q"), c.abandon(3, "q", 3), c.leave(3, "q"), c.hangup(3)]
    assert run(msgs)[0].segments[0].outcome == "abandoned_short"
    assert run(msgs, TrackerConfig(abandon_short_s=2))[0].segments[0].outcome == "abandoned"


def test_caller_hangup_without_abandon_event_is_abandoned() -> None:
    c = CallBuilder("100.4")
    (r,) = run([c.queue_app(0, "q"), c.join(0, "q"), c.hangup(30)])
    assert r.segments[0].outcome == "abandoned" and r.segments[0].wait_s == 30


def test_attended_transfer_race_counts_transfer_but_completion_follows_app_queue() -> None:
    """1 in 17 real attended transfers reports AgentComplete Reason: agent; the transfer still happened."""
    msgs = [m for m, _ in read_capture(FIXTURES / "attended_transfer.jsonl")]
    for m in msgs:
        if m.get("Event") == "AgentComplete":
            m["Reason"] = "agent"
    (r,) = replay_messages([(m, None) for m in msgs]).records
    assert r.segments[0].completion == "agent"  # = queue_log COMPLETEAGENT in that race
    assert [t.type for t in r.transfers] == ["attended"]  # = what happened to the caller


def test_repeat_caller_windows_and_withheld_numbers() -> None:
    a, b, c = CallBuilder("1.1", num="+48 555 010"), CallBuilder("2.1", num="+48555010"), CallBuilder(
        "3.1", num="+48555010")
    anon1, anon2 = CallBuilder("4.1", num="anonymous"), CallBuilder("5.1", num="anonymous")
    msgs = a.answered(0) + b.answered(3600 * 2) + c.answered(3600 * 30) + anon1.answered(10) + anon2.answered(20)
    cfg = TrackerConfig(repeat_windows=("1h", "24h", "7d"))
    recs = {r.call_id: r for r in run(sorted(msgs, key=lambda m: float(m["Timestamp"])), cfg)}
    assert recs["1.1"].repeat_windows == ()
    assert recs["2.1"].repeat_windows == ("24h", "7d")
    assert recs["3.1"].repeat_windows == ("7d",)
    assert recs["4.1"].caller is None and recs["5.1"].repeat_windows == ()


def test_missing_required_header_is_a_counted_skip() -> None:
    bad = {"Event": "QueueCallerJoin", "Uniqueid": "1.1", "Linkedid": "1.1", "Position": "1"}
    assert normalize(bad) == Skip("missing:QueueCallerJoin.Queue")
    bad2 = {"Event": "AgentConnect", "Queue": "q", "MemberName": "a", "Uniqueid": "1.1", "HoldTime": "x"}
    assert normalize(bad2) == Skip("bad_int:AgentConnect.HoldTime")
    res = replay_messages([(bad, None), (bad2, None)])
    assert res.skipped == {"missing:QueueCallerJoin.Queue": 1, "bad_int:AgentConnect.HoldTime": 1}
    assert res.records == []


def test_gap_closes_dead_calls_as_unknown_and_keeps_live_ones() -> None:
    tr = CallTracker()
    dead, live = CallBuilder("7.1"), CallBuilder("8.1")
    for m in [dead.queue_app(0, "q"), dead.join(0, "q"), live.queue_app(1, "q"), live.join(1, "q")]:
        e = normalize(m)
        assert e is not None and not isinstance(e, Skip)
        tr.feed(e, 1)
    tr.connection_lost(2)
    tr.resync_begin()
    listed = normalize({"Event": "CoreShowChannel", **live.snap(Application="Queue")})
    assert listed is not None and not isinstance(listed, Skip)
    tr.feed(listed, 5)
    closed = tr.resync_end(5)
    assert [n.record.call_id for n in closed if hasattr(n, "record")] == ["7.1"]
    assert closed[0].record.segments[0].outcome == "unknown"  # type: ignore[union-attr]
    assert tr.open_calls == 1
    # Late events of the call closed by the gap never open it again (no double count).
    e = normalize(dead.join(6, "q"))
    assert e is not None and not isinstance(e, Skip)
    assert tr.feed(e, 6) == [] and tr.open_calls == 1


def test_resync_adopts_caller_that_joined_during_the_gap() -> None:
    tr = CallTracker()
    tr.connection_lost(0)
    tr.resync_begin()
    c = CallBuilder("9.1")
    entry = normalize({"Event": "QueueEntry", "Queue": "q", "Position": "1", "Wait": "12", **c.snap()})
    assert entry is not None and not isinstance(entry, Skip)
    tr.feed(entry, 100)
    tr.resync_end(100)
    assert tr.waiting() == {"q": [88]}


def test_unknown_events_and_responses_are_ignored() -> None:
    res = replay_messages([({"Response": "Success"}, None), ({"Event": "Foo", "X": "1"}, None)])
    assert res.events == 1 and res.skipped == {} and res.records == []


def test_overflow_is_one_call_two_segments_and_survey_goes_to_answering_queue() -> None:
    (r,) = replay_messages(read_capture(FIXTURES / "overflow.jsonl")).records
    assert [(s.queue, s.outcome) for s in r.segments] == [("support", "timeout"), ("sales", "answered")]
    assert r.survey is not None and (r.survey.queue, r.survey.agent, r.survey.score) == ("sales", "agent3", 2)


def test_members_state_from_queue_events() -> None:
    tr = CallTracker()
    msgs = [m for m, _ in read_capture(FIXTURES / "member_changes.jsonl")]
    seen = []
    for m in msgs:
        e = normalize(m)
        if e is None or isinstance(e, Skip):
            continue
        for n in tr.feed(e, 0):
            if type(n).__name__ == "MemberNote":
                seen.append((n.member, n.change, n.reason))  # type: ignore[union-attr]
    assert ("agent1", "pause", "lunch") in seen and ("agent1", "unpause", "") in seen
    assert ("agent1", "logout", "") in seen and ("agent2", "login", "") in seen
    assert tr.members.counts("support") == {"available": 1, "in_call": 0, "ringing": 0, "paused": 0,
                                            "unavailable": 0}


def test_calls_whose_hangup_never_comes_are_swept_as_stale() -> None:
    tr = CallTracker(TrackerConfig(max_call_age_s=3600))
    c = CallBuilder("11.1")
    for m in [c.queue_app(0, "q"), c.join(0, "q")]:
        e = normalize(m)
        assert e is not None and not isinstance(e, Skip)
        tr.feed(e, 0)
    assert tr.sweep(1000) == [] and tr.open_calls == 1
    (closed,) = tr.sweep(4000)
    assert closed.record.closed_by == "stale" and tr.open_calls == 0  # type: ignore[union-attr]


def test_join_arriving_after_resync_adoption_is_the_same_segment() -> None:
    """QueueStatus reads live state while events are still queued: the late join must not count twice."""
    tr = CallTracker()
    c = CallBuilder("12.1")
    tr.connection_lost(0)
    tr.resync_begin()
    entry = normalize({"Event": "QueueEntry", "Queue": "q", "Position": "1", "Wait": "0", **c.snap()})
    assert entry is not None and not isinstance(entry, Skip)
    tr.feed(entry, 100)
    tr.resync_end(100)
    notes = []
    for m in [c.join(100.2, "q"), c.abandon(110, "q", 10), c.leave(110, "q"), c.hangup(110)]:
        e = normalize(m)
        assert e is not None and not isinstance(e, Skip)
        notes += tr.feed(e, 110)
    notes += tr.tick(200)  # past the grace period after the hang-up: the call is final
    (rec,) = [n.record for n in notes if hasattr(n, "record")]
    assert [(s.queue, s.outcome, s.wait_s) for s in rec.segments] == [("q", "abandoned", 10)]
