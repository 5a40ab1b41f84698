"""The tracker's side of a resync (pure): members replaced by a complete QueueStatus in wire order, QueueEntry
joined to CoreShowChannel for its Linkedid, device names of member channels, CoreShowChannel durations."""

from __future__ import annotations

from monitor.core.ingest import Ingest, closed_records
from monitor.core.normalize import duration_s
from monitor.core.records import MemberNote, Note
from monitor.core.resync import device
from monitor.core.tracker import CallTracker


def _member(event: str, name: str, **extra: str) -> dict[str, str]:
    return {"Event": event, "Queue": "support", "MemberName": name, "Name": name,
            "Interface": f"Local/{name}@lab-agents/n", "Location": f"Local/{name}@lab-agents/n", "Status": "1",
            "Paused": "0", **extra}


def test_a_complete_queuestatus_removes_members_it_does_not_list_in_wire_order() -> None:
    notes: list[Note] = []
    ing = Ingest(CallTracker(), [notes.extend])
    for name in ("agent1", "agent2"):
        ing.feed(_member("QueueMemberAdded", name), 100)
    ing.resync_begin()
    ing.feed({"Event": "QueueParams", "Queue": "support"}, 110)
    ing.feed(_member("QueueMember", "agent1"), 110)
    ing.feed(_member("QueueMemberAdded", "agent3"), 110)  # an event between list items: not in the snapshot
    assert {m.name for m in ing.live(110).members} == {"agent1", "agent2", "agent3"}  # nothing removed mid-list
    ing.feed({"Event": "QueueStatusComplete", "EventList": "Complete"}, 110)
    ing.feed(_member("QueueMemberAdded", "agent4"), 111)  # after the snapshot: kept
    ing.resync_end(111)
    left = {m.name for m in ing.live(111).members}
    assert left == {"agent1", "agent4"}, left  # agent2 (gone) and agent3 (not in the snapshot) removed
    logouts = [n.member for n in notes if isinstance(n, MemberNote) and n.change == "logout"]
    assert sorted(logouts) == ["agent2", "agent3"]


def test_queuestatus_outside_a_resync_or_failed_removes_nothing() -> None:
    ing = Ingest(CallTracker())
    ing.feed(_member("QueueMemberAdded", "agent1"), 100)
    ing.feed({"Event": "QueueStatusComplete", "EventList": "Complete"}, 101)
    ing.resync_begin()
    ing.feed({"Response": "Error", "Message": "Invalid/unknown command: QueueStatus."}, 102)
    assert [m.name for m in ing.live(102).members] == ["agent1"]


def _entry(uid: str, wait: str) -> dict[str, str]:
    return {"Event": "QueueEntry", "Queue": "support", "Position": "1", "Channel": f"Local/5@c-{uid};2",
            "Uniqueid": uid, "CallerIDNum": "5557001", "Wait": wait}


def _listed(uid: str, linkedid: str, duration: str, **extra: str) -> dict[str, str]:
    return {"Event": "CoreShowChannel", "Channel": f"Local/5@c-{uid};2", "Uniqueid": uid, "Linkedid": linkedid,
            "Application": "Queue", "ApplicationData": "support,ctT", "Duration": duration, **extra}


def test_queueentry_takes_the_linkedid_of_its_coreshowchannel() -> None:
    tr = CallTracker()
    ing = Ingest(tr)
    ing.clock_sample(1000.0, 50.0)  # PBX clock 1000 at daemon time 50
    ing.resync_begin()
    ing.feed(_entry("9.1", "10"), 50)
    ing.feed({**_listed("9.0", "9.0", "00:00:12"), "Application": "Milliwatt", "Channel": "Local/5@c-9.1;1"}, 50)
    ing.feed(_listed("9.1", "9.0", "00:00:11"), 50)
    ing.resync_end(50)
    call = tr.find_call("9.1")
    assert call is not None and call.linkedid == "9.0" and call.call_id == "9.1"
    assert call.start_ts == 988.0 and call.segments[0].join_ts == 990.0


def test_queueentry_without_its_channel_in_coreshowchannels_is_not_adopted() -> None:
    tr = CallTracker()
    ing = Ingest(tr)
    ing.resync_begin()
    ing.feed(_entry("9.1", "10"), 50)
    ing.feed(_entry("7.1", "3"), 50)
    ing.feed(_listed("9.1", "9.0", "00:00:11"), 50)  # 7.1 hung up between the two answers
    ing.resync_end(50)
    assert tr.find_call("9.1") is not None and tr.find_call("7.1") is None


def test_a_caller_listed_waiting_who_hangs_up_before_an_empty_coreshowchannels_is_not_adopted() -> None:
    # The tracker saw the caller join; QueueStatus lists it waiting; its Hangup is read before CoreShowChannels
    # answers, with no channel at all. Asterisk answers in wire order: the listing is older than the Hangup.
    notes: list[Note] = []
    tr = CallTracker()
    ing = Ingest(tr, [notes.extend])
    chan = {"Channel": "Local/5@c-7.1;2", "Uniqueid": "7.1", "Linkedid": "7.0", "CallerIDNum": "5557001"}
    ing.feed({"Event": "Newchannel", **chan, "Timestamp": "1000.0"}, 50)
    ing.feed({"Event": "QueueCallerJoin", "Queue": "support", "Position": "1", **chan, "Timestamp": "1000.0"}, 50)
    ing.resync_begin()
    ing.feed(_entry("7.1", "3"), 53)
    ing.feed({"Event": "QueueStatusComplete", "EventList": "Complete"}, 53)
    ing.feed({"Event": "QueueCallerAbandon", "Queue": "support", **chan, "Timestamp": "1004.0"}, 54)
    ing.feed({"Event": "Hangup", **chan, "Cause": "16", "Timestamp": "1004.0"}, 54)
    ing.feed({"Event": "CoreShowChannelsComplete", "EventList": "Complete"}, 55)
    ing.resync_end(55)
    records = closed_records(notes + tr.close_all(2000.0, "eof"))
    assert [(r.call_id, r.outcome, r.closed_by) for r in records] == [("7.1", "abandoned_short", "hangup")]


def test_member_channel_and_interface_name_the_same_device() -> None:
    assert device("Local/agent2@lab-agents-00000003;1") == device("Local/agent2@lab-agents/n") == \
        "Local/agent2@lab-agents"
    assert device("PJSIP/1001-0000000a") == device("PJSIP/1001") == "PJSIP/1001"
    assert device("SIP/trunk-a-0000001f") == device("SIP/trunk-a") == "SIP/trunk-a"


def test_coreshowchannel_duration() -> None:
    assert duration_s("00:00:12") == 12 and duration_s("100:01:02") == 360062
    assert duration_s("") is None and duration_s("1:2") is None and duration_s("aa:bb:cc") is None


def _waiting_call(tr: CallTracker, ing: Ingest) -> None:
    from tests.support.builders import CallBuilder

    c = CallBuilder("9.1", "9.0", chan="Local/5@c-9.1;2")
    ing.feed(_member("QueueMemberAdded", "agent2"), 0)
    ing.feed(c.queue_app(100, "support"), 0)
    ing.feed(c.join(100, "support"), 0)
    tr.connection_lost(0)
    ing.clock_sample(130.0, 0.0)
    ing.resync_begin()


def test_a_caller_answered_during_the_gap_is_answered_by_the_bridged_member() -> None:
    tr = CallTracker()
    ing = Ingest(tr)
    _waiting_call(tr, ing)
    ing.feed(_listed("9.1", "9.0", "00:00:30", BridgeId="b1"), 0)
    ing.feed({**_listed("9.6", "9.0", "00:00:12", BridgeId="b1"), "Channel": "Local/agent2@lab-agents-00000003;1",
              "Application": "AppQueue"}, 0)
    ing.resync_end(0)
    call = tr.find_call("9.1")
    assert call is not None
    seg = call.segments[0]
    assert (seg.outcome, seg.agent, seg.end_ts, seg.wait_s) == ("answered", "agent2", 118.0, 18.0)
    assert tr.members.counts("support")["in_call"] == 1


def test_a_caller_that_left_the_queue_during_the_gap_has_an_unknown_outcome_not_a_guess() -> None:
    tr = CallTracker()
    ing = Ingest(tr)
    _waiting_call(tr, ing)
    ing.feed({**_listed("9.1", "9.0", "00:00:30"), "Application": "VoiceMail"}, 0)  # Queue() returned in the gap
    ing.resync_end(0)
    call = tr.find_call("9.1")
    assert call is not None and call.segments[0].outcome == "unknown"


def test_an_agentcomplete_after_a_gap_tells_the_lost_answer() -> None:
    # Waiting when the connection broke; after the new login (before the resync answers) Asterisk reports the end
    # of its talk: it was answered in the gap. Never "abandoned" at the hang-up that follows.
    from tests.support.builders import CallBuilder

    tr = CallTracker()
    notes: list[Note] = []
    ing = Ingest(tr, [notes.extend])
    c = CallBuilder("9.1", "9.0", chan="Local/5@c-9.1;2")
    ing.feed(c.queue_app(100, "support"), 0)
    ing.feed(c.join(100, "support"), 0)
    tr.connection_lost(0)
    ing.feed(c.ev("AgentComplete", 160, Queue="support", MemberName="agent2", Interface="Local/agent2@x/n",
                  HoldTime=20, TalkTime=40, Reason="caller", DestUniqueid="9.6"), 0)
    ing.feed(c.ev("Hangup", 160, Cause="16"), 0)
    ing.close_all(100, "eof")  # a record held for a late-grace period after its hang-up comes out as "hangup"
    (rec,) = closed_records(notes)
    assert rec.closed_by == "hangup"
    seg = rec.segments[0]
    assert (rec.outcome, seg.outcome, seg.agent, seg.wait_s, seg.talk_s) == ("answered", "answered", "agent2",
                                                                             20.0, 40.0)
    assert (seg.join_ts, seg.end_ts) == (100.0, 120.0)  # from Asterisk's HoldTime/TalkTime
