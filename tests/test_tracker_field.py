"""Field faults (issue 11) on small streams shaped like the recordings: every queue exit has its own outcome,
snapshot-less and late AgentComplete, the grace period and its tick, caller numbers as carriers send them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry
from sqlalchemy import func, select

from monitor.core.ingest import Ingest, closed_records
from monitor.core.records import CallAmended, CallRecord, Note, TalkNote
from monitor.core.report import build_report
from monitor.core.tracker import CallTracker, TrackerConfig
from monitor.store import Store
from monitor.store.models import Call, SegmentRow
from monitor.web.metrics import QmonMetrics
from tests.support.builders import CallBuilder
from tests.support.store import DB

Q = "support"
SNAPSHOT = ("Channel", "CallerIDNum", "CallerIDName", "Context", "Exten", "Uniqueid", "Linkedid")


def feed(msgs: list[dict[str, Any]], config: TrackerConfig | None = None,
         sinks: list[Any] | None = None) -> tuple[Ingest, list[Note]]:
    """Feed messages (daemon clock = event time) and tick far past every grace period."""
    ingest = Ingest(CallTracker(config), sinks)
    notes = [n for m in msgs for n in ingest.feed(m, float(m["Timestamp"]))]
    last = max(float(m["Timestamp"]) for m in msgs)
    return ingest, notes + ingest.tick(last + 3600)


def one(notes: list[Note]) -> CallRecord:
    (rec,) = closed_records(notes)
    return rec


def waiting(c: CallBuilder, t0: float = 100.0) -> list[dict[str, Any]]:
    return [c.queue_app(t0, Q), c.join(t0, Q), c.agent("AgentCalled", t0 + 0.1, Q, "alice")]


def test_withdraw_is_its_own_outcome_not_a_timeout() -> None:
    """QueueWithdrawCaller (app_queue.c): record_abandoned() -> QueueCallerAbandon, Leave, QUEUESTATUS=WITHDRAW."""
    c = CallBuilder("1.1")
    msgs = [*waiting(c), c.abandon(106, Q, 6), c.leave(106, Q), c.status(106, "WITHDRAW"),
            c.ev("Newexten", 106.1, Application="VoiceMail", AppData="100@default,u"), c.hangup(130)]
    rec = one(feed(msgs)[1])
    assert [(s.outcome, s.wait_s) for s in rec.segments] == [("withdraw", 6.0)]
    assert rec.voicemail is not None and rec.voicemail.reason == "withdraw"
    q = build_report([rec], 0)["queues"][Q]
    assert (q["withdraw"], q["timeout"], q["abandoned"], q["entered"]) == (1, 0, 0, 1)


def test_leave_unavail_and_join_unavail_have_their_own_outcomes() -> None:
    a, b = CallBuilder("1.1"), CallBuilder("2.1", num="5550200")
    left = one(feed([*waiting(a), a.abandon(104, Q, 4), a.leave(104, Q), a.status(104, "LEAVEUNAVAIL"),
                     a.hangup(110)])[1])
    refused = one(feed([b.queue_app(100, Q), b.status(100, "JOINUNAVAIL"), b.hangup(101)])[1])
    assert [(s.outcome, s.entered) for s in left.segments] == [("leave_unavail", True)]
    assert [(s.outcome, s.entered) for s in refused.segments] == [("join_unavail", False)]


def test_continue_without_a_seen_answer_is_answered() -> None:
    """QUEUESTATUS=CONTINUE is set only once app_queue handled the call: the lost AgentConnect was an answer."""
    c = CallBuilder("1.1")
    rec = one(feed([*waiting(c), c.leave(105, Q), c.status(140, "CONTINUE"), c.hangup(150)])[1])
    assert [(s.outcome, s.agent) for s in rec.segments] == [("answered", None)]


def _answered(c: CallBuilder, complete_at: float, strip: tuple[str, ...]) -> list[dict[str, Any]]:
    complete = c.agent("AgentComplete", complete_at, Q, "alice", HoldTime=3, TalkTime=4, Reason="caller")
    return [*waiting(c), c.leave(103, Q), c.agent("AgentConnect", 103, Q, "alice", HoldTime=3, RingTime=3),
            c.hangup(107), {k: v for k, v in complete.items() if k not in strip}]


def test_agentcomplete_without_any_snapshot_within_the_grace_lands_in_the_record() -> None:
    c = CallBuilder("1.1")
    ingest, notes = feed(_answered(c, 107.2, (*SNAPSHOT, "DestChannel", "DestUniqueid")))
    rec = one(notes)
    assert (rec.segments[0].completion, rec.segments[0].talk_s, rec.end_ts) == ("caller", 4.0, 107.0)
    assert [n for n in notes if isinstance(n, TalkNote)] and ingest.skipped == {}
    assert ingest.tracker.members.counts(Q)["in_call"] == 0


def test_agentcomplete_after_the_grace_amends_the_record_not_the_counters() -> None:
    reg = CollectorRegistry()
    metrics = QmonMetrics(reg)
    c = CallBuilder("1.1")
    ingest, notes = feed(_answered(c, 112, SNAPSHOT), sinks=[metrics.sink("p")])
    first, amended = closed_records(notes)
    assert first.segments[0].talk_s is None and not first.extra
    assert amended.segments[0].talk_s == 4.0 and amended.extra == {"amended": True}
    assert any(isinstance(n, CallAmended) for n in notes)
    assert ingest.skipped == {"late:AgentComplete": 1}
    assert reg.get_sample_value("qmon_queue_talk_seconds_count", {"pbx": "p", "queue": Q}) == 0.0
    assert reg.get_sample_value("qmon_queue_calls_total", {"pbx": "p", "queue": Q, "outcome": "answered"}) == 1


def test_grace_is_configurable_and_zero_closes_at_the_hang_up() -> None:
    c = CallBuilder("1.1")
    ingest = Ingest(CallTracker(TrackerConfig(late_grace_s=0)))
    notes = [n for m in _answered(c, 112, SNAPSHOT)[:-1] for n in ingest.feed(m, float(m["Timestamp"]))]
    assert one(notes).end_ts == 107.0


def test_tick_on_the_daemon_clock_finalises_a_call_without_further_events() -> None:
    """No event after the hang-up: the daemon's periodic tick makes the record final once the grace is over."""
    c = CallBuilder("1.1")
    ingest = Ingest(CallTracker(TrackerConfig(late_grace_s=2.0)))
    daemon_clock = 5000.0  # the daemon's clock is not the PBX's: only differences count
    for m in _answered(c, 112, SNAPSHOT)[:-1]:
        ingest.feed(m, daemon_clock + float(m["Timestamp"]) - 100)
    hung_up_at = daemon_clock + 7
    assert ingest.tick(hung_up_at + 1.9) == [] and ingest.tracker.open_calls == 0
    rec = one(ingest.tick(hung_up_at + 2.1))
    assert (rec.closed_by, rec.end_ts) == ("hangup", 107.0)


def test_one_caller_across_national_and_international_spellings() -> None:
    calls = [CallBuilder(f"{i}.1", num=n) for i, n in enumerate(("+48 22 123 45 67", "0048221234567", "221234567"))]
    msgs = [m for i, c in enumerate(calls) for m in c.answered(100 + 100 * i)]
    pl = closed_records(feed(msgs, TrackerConfig(home_region="PL"))[1])
    assert [r.caller for r in pl] == ["+48221234567"] * 3
    assert build_report(pl, 0)["callers"] == {"distinct": 1, "repeat_calls": 2}
    trunk = closed_records(feed([m for c in [CallBuilder("7.1", num="9221234567")] for m in c.answered(100)],
                                TrackerConfig(home_region="PL", trunk_prefixes=("9",)))[1])
    assert [r.caller for r in trunk] == ["+48221234567"]


def test_withheld_numbers_are_never_callers() -> None:
    nums = ("anonymous", "Restricted", "unavailable", "", "0000000000", "+000", "00", "blocked", "blocked")
    calls = [CallBuilder(f"{i}.1", num=n) for i, n in enumerate(nums)]
    config = TrackerConfig(withheld_numbers=("anonymous", "restricted", "unavailable", "blocked"))
    recs = closed_records(feed([m for i, c in enumerate(calls) for m in c.answered(100 + 60 * i)], config)[1])
    assert [r.caller for r in recs] == [None] * len(nums)
    assert build_report(recs, 0)["callers"] == {"distinct": 0, "repeat_calls": 0}


async def test_an_amended_record_replaces_the_stored_one(db: DB, tmp_path: Path) -> None:
    """Upsert by call id: the late AgentComplete's record replaces the first one, in one batch or two."""
    c = CallBuilder("1.1")
    first, amended = closed_records(feed(_answered(c, 112, SNAPSHOT))[1])
    store = Store(db.settings())
    await store.start()
    try:
        await store.write_items([first])
        await store.write_items([amended])
        await store.write_items([first, amended])
        assert store.engine is not None
        async with store.engine.connect() as conn:
            assert (await conn.execute(select(func.count()).select_from(Call))).scalar_one() == 1
            talk = (await conn.execute(select(SegmentRow.talk_s))).scalars().all()
        assert talk == [4.0]
    finally:
        await store.close()


def _masquerade(consult_lid: str) -> list[dict[str, Any]]:
    """An attended transfer into a queue completed by masquerade while the consult call still waits there, as
    channel.c does it: Uniqueid/Linkedid swapped, the loser renamed ``<ZOMBIE>`` and hung up; app_queue then
    reports the waiting visit under the caller's identity (asterisk/asterisk#759)."""
    x = CallBuilder("10.1", lid="10.0", chan="PJSIP/caller-00000010")
    y = CallBuilder("20.5", lid=consult_lid, num="7009", chan="Local/3000@xfer-00000001;2")
    zombie = {"Uniqueid": y.uid, "Linkedid": y.lid, "CallerIDNum": "7009", "Timestamp": "116.000000"}
    return [
        x.queue_app(100, Q), x.join(100, Q), x.agent("AgentCalled", 100.1, Q, "agent1"), x.leave(102, Q),
        x.agent("AgentConnect", 102, Q, "agent1", HoldTime=2, RingTime=2),
        y.queue_app(110, "sales"), y.join(110, "sales"), y.agent("AgentCalled", 110.1, "sales", "agent5"),
        x.agent("AgentComplete", 115, Q, "agent1", HoldTime=2, TalkTime=13, Reason="transfer"),
        {"Event": "Rename", "Channel": y.chan, "Newname": x.chan + "<ZOMBIE>", **zombie},
        {"Event": "Hangup", "Channel": x.chan + "<ZOMBIE>", "Cause": "16", **zombie},
        x.leave(118, "sales"), x.agent("AgentConnect", 118, "sales", "agent5", HoldTime=8, RingTime=1),
        x.agent("AgentComplete", 140, "sales", "agent5", HoldTime=8, TalkTime=22, Reason="agent"),
        x.hangup(141),
    ]


def test_masquerade_into_a_waiting_queue_visit_counts_each_visit_once() -> None:
    for consult_lid in ("10.0", "20.4"):  # the consult leg shares the caller's Linkedid, or has its own
        ingest, notes = feed(_masquerade(consult_lid))
        recs = closed_records(notes)
        assert ingest.skipped == {}, consult_lid
        (rec,) = recs
        assert [(s.queue, s.outcome, s.agent, s.wait_s, s.talk_s, s.completion) for s in rec.segments] == [
            (Q, "answered", "agent1", 2.0, 13.0, "transfer"), ("sales", "answered", "agent5", 8.0, 22.0, "agent")]
        assert rec.end_ts == 141.0 and rec.closed_by == "hangup"
        rep = build_report(recs, 0)["queues"]
        assert [(rep[q]["entered"], rep[q]["answered"], rep[q]["abandoned"]) for q in (Q, "sales")] == [
            (1, 1, 0), (1, 1, 0)]
        assert ingest.tracker.members.counts("sales")["in_call"] == 0


def test_a_zombie_hang_up_is_never_an_abandon() -> None:
    """Without the zombie rule the consult leg's waiting visit in sales would be abandoned at the masquerade."""
    for consult_lid in ("10.0", "20.4"):
        msgs = _masquerade(consult_lid)[:11]  # up to the zombie's hang-up: the visit in sales is still waiting
        ingest = Ingest(CallTracker())
        notes = [n for m in msgs for n in ingest.feed(m, float(m["Timestamp"]))] + ingest.tick(200)
        assert all(s.outcome == "answered" for r in closed_records(notes) for s in r.segments), consult_lid
        assert ingest.tracker.waiting()["sales"] != []  # the visit waits on, under the identity it was given
