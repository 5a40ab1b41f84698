"""Owed callbacks (core): opened by every unanswered outcome, closed by a later answered call or an agent's
answered outbound dial (DialBegin/DialEnd as documented by Asterisk), never for a withheld number; true abandonment."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from monitor.ami.files import read_capture
from monitor.core.ingest import Ingest
from monitor.core.owed import INBOUND, OUTBOUND, dialled_numbers, owes_callback, same_number, withheld
from monitor.core.records import OwedNote
from monitor.core.tracker import CallTracker, TrackerConfig
from monitor.core.vocab import SEGMENT_OUTCOMES, Outcome
from monitor.replay import replay_messages
from tests.support.builders import CallBuilder
from tests.support.factcheck import FIXTURES

AGENTS = FIXTURES / "agents"


def replay(*paths: Path, config: TrackerConfig | None = None) -> CallTracker:
    """One tracker through the captures, in order."""
    tr = CallTracker(config)
    for p in paths:
        replay_messages(read_capture(p), tracker=tr)
    return tr


def feed(tr: CallTracker, msgs: list[dict[str, Any]]) -> list[Any]:
    """Feed built messages in time order; every note."""
    ing, notes = Ingest(tr), []
    last = 0.0
    for m in sorted(msgs, key=lambda h: float(h["Timestamp"])):
        last = float(m["Timestamp"])
        notes += ing.feed(m, last)
    return notes + ing.tick(last + 60)  # past the late-event grace: hung-up calls are final


def test_every_unanswered_outcome_of_the_vocabulary_owes_a_callback() -> None:
    unanswered = [o for o in SEGMENT_OUTCOMES if o not in (Outcome.ANSWERED, Outcome.UNKNOWN)]
    assert unanswered and all(owes_callback(o) for o in unanswered)
    assert owes_callback("voicemail") and not owes_callback("answered") and not owes_callback("unknown")


@pytest.mark.parametrize(("capture", "outcome", "voicemail"), [
    (FIXTURES / "abandoned.ami", "abandoned", False),
    (FIXTURES / "abandoned_short.ami", "abandoned_short", False),
    (FIXTURES / "voicemail_timeout.ami", "timeout", True),
    (FIXTURES / "voicemail_empty.ami", "join_empty", True),
    (AGENTS / "exit_empty.ami", "exit_empty", True),
    (AGENTS / "exit_key.ami", "exit_key", True),
], ids=lambda x: x.stem if isinstance(x, Path) else str(x))
def test_recorded_unanswered_call_opens_an_owed_callback(capture: Path, outcome: str, voicemail: bool) -> None:
    tr = replay(capture)
    [owed] = tr.owed.open()
    assert (owed.outcome, owed.voicemail, owed.attempts, owed.queue) == (outcome, voicemail, 1, "support")
    assert owed.caller.startswith("555") and owed.wait_s >= 0
    assert tr.owed.stats(owed.last_ts).opened == {"support": 1}


@pytest.mark.parametrize("ending", ["timeout", "exit_empty", "exit_key", "abandoned"])
def test_built_unanswered_endings_without_voicemail(ending: str) -> None:
    c = CallBuilder("1.1", num="5559000")
    msgs = [c.queue_app(100, "support"), c.join(100, "support")]
    if ending == "timeout":
        msgs += [c.abandon(130, "support", 30), c.leave(130, "support"), c.status(130, "TIMEOUT")]
    elif ending == "exit_empty":
        msgs += [c.abandon(110, "support", 10), c.leave(110, "support"), c.status(110, "LEAVEEMPTY")]
    elif ending == "exit_key":
        msgs += [c.leave(110, "support"), c.ev("Newexten", 110.5, Application="Playback", AppData="bye")]
    else:
        msgs += [c.abandon(120, "support", 20)]
    notes = feed(CallTracker(), [*msgs, c.hangup(140)])
    opened = [n for n in notes if isinstance(n, OwedNote)]
    assert [(n.change, n.call.outcome, n.call.caller) for n in opened] == [("open", ending, "5559000")]


@pytest.mark.parametrize("where", [FIXTURES, AGENTS / "ast20"], ids=["ast22", "ast20"])
def test_repeat_caller_abandoned_then_answered_closes_it(where: Path) -> None:
    """repeat_caller: 5551010 answered, abandoned after 4 s (short), answered: owed once, closed inbound."""
    tr = CallTracker()
    notes: list[Any] = []
    ing = Ingest(tr, [notes.extend])
    last = 0.0
    for headers, recv in read_capture(where / "repeat_caller.ami"):
        last = recv or last
        ing.feed(headers, last)
    ing.tick(last + 60)  # past the late-event grace
    owed = [n for n in notes if isinstance(n, OwedNote)]
    assert [n.change for n in owed] == ["open", "close"]
    opened, closed = owed[0].call, owed[1].call
    assert closed.linkedid == opened.linkedid and closed.caller == "5551010"
    assert (closed.closed_by, closed.agent) == (INBOUND, "agent1")
    assert closed.closed_ts is not None and closed.closed_ts > opened.ended_ts
    assert closed.time_to_callback_s == pytest.approx(closed.closed_ts - opened.ended_ts)
    assert tr.owed.open() == []
    st = tr.owed.stats(closed.closed_ts + 10 * 3600)
    assert st.closed == {("support", INBOUND): 1} and sum(st.missed.values()) == 0


@pytest.mark.parametrize("number", ["anonymous", "", "0000000", "<unknown>"])
def test_withheld_number_is_never_owed_but_counted_apart(number: str) -> None:
    c = CallBuilder("1.1", num=number)
    notes = feed(CallTracker(), [c.queue_app(100, "support"), c.join(100, "support"),
                                 c.abandon(120, "support", 20), c.hangup(120.5)])
    assert not [n for n in notes if isinstance(n, OwedNote)]
    assert withheld(None) and withheld("000") and not withheld("5551234")


def test_several_unanswered_calls_are_attempts_of_one_row() -> None:
    tr = CallTracker()
    a, b = CallBuilder("1.1", num="5557000"), CallBuilder("2.1", num="5557000")
    feed(tr, [a.queue_app(100, "support"), a.join(100, "support"), a.abandon(130, "support", 30), a.hangup(130),
              b.queue_app(200, "sales"), b.join(200, "sales"), b.abandon(260, "sales", 60), b.hangup(260)])
    [row] = tr.owed.open()
    assert (row.attempts, row.first_ts, row.last_ts, row.queue, row.wait_s) == (2, 100, 260, "sales", 60)


# -- an agent calls the number back: DialBegin/DialEnd as documented (docs.asterisk.org AMI Events) ----------


def dial(event: str, ts: float, chan: str, uid: str, exten: str, dest_uid: str, dest: str,
         **extra: str) -> dict[str, Any]:
    """A DialBegin/DialEnd with the caller snapshot, the ``Dest*`` snapshot and DialString or DialStatus."""
    return {
        "Event": event, "Privilege": "call,all", "Timestamp": f"{ts:.6f}",
        "Channel": chan, "ChannelState": "4", "ChannelStateDesc": "Ring", "CallerIDNum": "1001",
        "CallerIDName": "Alice", "ConnectedLineNum": "<unknown>", "ConnectedLineName": "<unknown>",
        "Language": "en", "AccountCode": "", "Context": "from-internal", "Exten": exten, "Priority": "1",
        "Uniqueid": uid, "Linkedid": uid,
        "DestChannel": dest, "DestChannelState": "0", "DestChannelStateDesc": "Down", "DestCallerIDNum": exten,
        "DestCallerIDName": "<unknown>", "DestConnectedLineNum": "1001", "DestConnectedLineName": "Alice",
        "DestLanguage": "en", "DestAccountCode": "", "DestContext": "from-internal", "DestExten": exten,
        "DestPriority": "1", "DestUniqueid": dest_uid, "DestLinkedid": uid, **extra,
    }


def member(ts: float, name: str = "alice", iface: str = "PJSIP/1001") -> dict[str, Any]:
    """QueueMemberAdded of ``name`` on ``iface``."""
    return {"Event": "QueueMemberAdded", "Timestamp": f"{ts:.6f}", "Queue": "support", "MemberName": name,
            "Interface": iface, "StateInterface": iface, "Status": "1", "Paused": "0", "PausedReason": "",
            "InCall": "0", "LoginTime": str(int(ts)), "Wrapuptime": "0"}


def abandoned(num: str, t: float) -> list[dict[str, Any]]:
    """An abandoned call from ``num`` at ``t``."""
    c = CallBuilder(f"{int(t)}.1", num=num)
    return [c.queue_app(t, "support"), c.join(t, "support"), c.abandon(t + 20, "support", 20), c.hangup(t + 20)]


@pytest.mark.parametrize(("status", "closes"), [("ANSWER", True), ("NOANSWER", False), ("BUSY", False)])
def test_agent_outbound_dial_answered_closes_it(status: str, closes: bool) -> None:
    tr = CallTracker()
    out = [dial("DialBegin", 500, "PJSIP/1001-0000000a", "500.7", "95551234567", "500.8",
                "PJSIP/trunk-0000000b", DialString="trunk/95551234567"),
           dial("DialEnd", 510, "PJSIP/1001-0000000a", "500.7", "95551234567", "500.8", "PJSIP/trunk-0000000b",
                DialStatus=status)]
    notes = feed(tr, [member(10), *abandoned("+15551234567", 100), *out])
    closed = [n.call for n in notes if isinstance(n, OwedNote) and n.change == "close"]
    if closes:
        assert [(c.closed_by, c.agent, c.closed_ts) for c in closed] == [(OUTBOUND, "alice", 510.0)]
        assert tr.owed.open() == []
    else:
        assert closed == [] and len(tr.owed.open()) == 1


def test_dial_from_a_channel_that_is_no_member_closes_nothing() -> None:
    tr = CallTracker()
    out = [dial("DialBegin", 500, "PJSIP/2002-0000000a", "500.7", "5551234567", "500.8", "PJSIP/trunk-0b",
                DialString="trunk/5551234567"),
           dial("DialEnd", 510, "PJSIP/2002-0000000a", "500.7", "5551234567", "500.8", "PJSIP/trunk-0b",
                DialStatus="ANSWER")]
    feed(tr, [member(10), *abandoned("5551234567", 100), *out])
    assert len(tr.owed.open()) == 1


def test_freepbx_local_member_dials_from_its_phone() -> None:
    """Member ``Local/1001@from-queue/n`` (FreePBX): the agent's phone channel PJSIP/1001-... is its device."""
    tr = CallTracker()
    out = [dial("DialBegin", 500, "PJSIP/1001-0000000a", "500.7", "5551234567", "500.8", "PJSIP/trunk-0b",
                DialString="PJSIP/5551234567@trunk"),
           dial("DialEnd", 503, "PJSIP/1001-0000000a", "500.7", "5551234567", "500.8", "PJSIP/trunk-0b",
                DialStatus="ANSWER")]
    feed(tr, [member(10, iface="Local/1001@from-queue/n"), *abandoned("5551234567", 100), *out])
    assert tr.owed.open() == []


def test_true_abandonment_counts_calls_not_reached_within_the_horizon() -> None:
    tr = CallTracker(TrackerConfig(owed_horizon_s=3600))
    c = CallBuilder("9000.1", num="5551111")
    feed(tr, [*abandoned("5551111", 100), *abandoned("5552222", 200),
              # 5551111 is reached 2 h later (late: missed), 5552222 never
              *c.answered(100 + 7200)])
    assert tr.owed.stats(200 + 3599).missed == {"support": 1}  # 5551111 passed its horizon, 5552222 not yet
    st = tr.owed.stats(10_000)
    assert st.missed == {"support": 2} and st.closed == {("support", INBOUND): 1}
    assert [o.caller for o in tr.owed.open()] == ["5552222"]


def test_number_matching() -> None:
    assert same_number("5551234567", "+15551234567") and same_number("+4930123456", "4930123456")
    assert not same_number("1234", "91234") and not same_number("5551234", "5551235")
    assert not same_number("2125551234", "3125551234")  # the same local number in another area
    assert dialled_numbers("PJSIP/5551234567@trunk", "trunk/95551234567", "") == (
        "5551234567", "95551234567")


def test_restore_reloads_open_calls_once() -> None:
    tr = replay(FIXTURES / "abandoned.ami")
    rows = tr.owed.open_calls()
    fresh = CallTracker()
    assert fresh.owed.restore(rows) == 1 and fresh.owed.restore(rows) == 0
    assert fresh.owed.open() == tr.owed.open()


def test_reached_on_another_call_while_the_unanswered_one_is_still_in_voicemail() -> None:
    """Call 1 times out into VoiceMail (its record closes at 300); meanwhile call 2 is answered at 203."""
    one, two = CallBuilder("1.1", num="5553000"), CallBuilder("2.1", num="5553000")
    msgs = [one.queue_app(100, "support"), one.join(100, "support"), one.abandon(130, "support", 30),
            one.leave(130, "support"), one.status(130, "TIMEOUT"),
            one.ev("Newexten", 131, Application="VoiceMail", AppData="100@default,u"), one.hangup(300),
            *two.answered(200, talk=20)]
    tr = CallTracker()
    owed = [n for n in feed(tr, msgs) if isinstance(n, OwedNote)]
    assert [(n.change, n.call.closed_ts, n.call.closed_by) for n in owed] == [
        ("open", None, None), ("close", 203.0, INBOUND)]
    assert tr.owed.open() == []


def test_an_answered_dial_finds_exactly_what_a_scan_of_the_worklist_finds() -> None:
    """The worklist's tail index: the numbers an outbound dial closes are those same_number() matches, in worklist
    order, with numbers added, reached, re-added and evicted in between (plus-prefixed, trunk-prefixed, short)."""
    import random

    from monitor.core.owed import OwedCallbacks
    from monitor.core.records import OwedCall

    rng = random.Random(15)
    bases = ["5551234567", "15551234567", "+15551234567", "4412345", "44412345", "1234", "91234", "7654321",
             "+447654321", "07654321", "5559876543", "25559876543"]
    book = OwedCallbacks(max_open=8)
    for step in range(3000):
        number = rng.choice(bases)
        ts = float(step)
        if rng.random() < 0.6:
            book._add(OwedCall("default", f"L{step}", number, "q", ts - 1, ts, 1.0, "abandoned"))
        else:
            want = [c for c in book.by_caller if same_number(c, number)]  # the scan the index replaces
            notes = book.reached(number, ts, OUTBOUND, "agent1")
            got = list(dict.fromkeys(n.call.caller for n in notes))
            assert got == want, (step, number)
            assert not any(same_number(c, number) for c in book.by_caller)
        indexed = [n for group in book._by_tail.values() for n in group]
        assert sorted(indexed) == sorted(book.by_caller)
