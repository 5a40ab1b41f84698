"""The wallboard's numbers without a browser: today's tally (PBX-clock day), RAG colours, ``[wallboard]`` settings,
and the tally fed by a real transcript replay equal to its queue_log/CDR ground truth."""

from __future__ import annotations

import json

import pytest

from monitor.ami.files import read_capture
from monitor.config import ConfigError, load_settings
from monitor.core.ingest import Ingest
from monitor.core.records import MemberNote, SegmentNote, SurveyNote, TalkNote
from monitor.core.today import DayTally, local_day
from monitor.core.tracker import CallTracker, TrackerConfig
from monitor.web.wallboard import BoardPbx, Wallboard, rag_high, rag_low, snapshot
from tests.support.builders import member_pause
from tests.support.helpers import FIXTURES

DAY = 86400.0
T0 = 1795381258.0  # 2026-11-22 21:00:58 UTC: a PBX time of the recordings


def _utc_day(ts: float) -> str:
    return str(int(ts // DAY))


def test_tally_counts_one_day_on_the_note_time() -> None:
    t = DayTally(20.0, day_of=_utc_day)
    t.sink([SegmentNote("q", "answered", 20.0, "a1", T0), SegmentNote("q", "answered", 21.0, "a1", T0 + 1),
            SegmentNote("q", "abandoned_short", 2.0, None, T0 + 2), SegmentNote("q", "abandoned", 30.0, None, T0 + 3),
            SegmentNote("q", "timeout", 60.0, None, T0 + 4), SegmentNote("q", "join_empty", None, None, T0 + 5),
            SegmentNote("q", "full", None, None, T0 + 5), SegmentNote("q", "join_unavail", None, None, T0 + 5),
            SurveyNote("q", "a1", "completed", 4, T0 + 6), SurveyNote("q", "a1", "invalid", 9, T0 + 7),
            SurveyNote("q", "a1", "completed", 2, T0 + 8), TalkNote("q", "a1", 30.0, "agent", T0 + 9)])
    d = t.today(T0 + 10)["q"]
    assert (d.offered, d.answered, d.answered_within, d.abandoned, d.abandoned_within, d.abandoned_short,
            d.unanswered_other) == (5, 2, 1, 2, 1, 1, 1)  # refused callers were never offered; <= T is within
    assert d.service_level() == 1 / 4 and d.abandon_rate() == 2 / 5 and d.csat_mean() == 3.0 and d.csat_n == 2
    assert t.agents_today(T0 + 10)[("q", "a1")].answered == 2 and t.agents_today(T0)[("q", "a1")].talk_s == 30.0
    # Asked about another day (the PBX clock crossed midnight with no call since): nothing counted that day.
    tomorrow = (T0 // DAY + 1) * DAY + 5
    assert t.today(tomorrow) == {}
    # The first note of the next day starts a fresh tally; a late note of the day before is not counted.
    t.sink([SegmentNote("q", "answered", 5.0, "a2", tomorrow), SegmentNote("q", "answered", 5.0, "a2", T0 + 20)])
    d = t.today(tomorrow)["q"]
    assert (d.offered, d.answered) == (1, 1) and t.today(T0 + 30) == {}


def test_state_marks_say_since_when() -> None:
    t = DayTally(day_of=_utc_day)
    t.sink([MemberNote("q", "a1", "Local/a1", "login", "", T0), MemberNote("q", "a1", "Local/a1", "pause", "lunch",
                                                                         T0 + 5)])
    assert (t.marks[("q", "a1")].state, t.marks[("q", "a1")].ts) == ("paused", T0 + 5)
    t.sink([MemberNote("q", "a1", "Local/a1", "unpause", "", T0 + 65), SegmentNote("q", "answered", 3, "a1", T0 + 70)])
    assert t.marks[("q", "a1")].state == "in_call"
    t.sink([TalkNote("q", "a1", 10.0, "agent", T0 + 80)])
    assert (t.marks[("q", "a1")].state, t.marks[("q", "a1")].ts) == ("available", T0 + 80)
    t.sink([MemberNote("q", "a1", "Local/a1", "logout", "", T0 + 90)])
    assert ("q", "a1") not in t.marks


def test_local_day_is_the_daemons_calendar_day() -> None:
    assert local_day(T0) == local_day(T0 + 0.001) and len(local_day(T0)) == 10


@pytest.mark.parametrize(("value", "high", "low"), [
    (None, "none", "none"), (0.8, "green", "red"), (0.75, "amber", "red"), (0.7499, "red", "red"),
    (0.05, "red", "green"), (0.08, "red", "amber"), (0.0801, "red", "red"),
])
def test_rag_thresholds(value: float | None, high: str, low: str) -> None:
    assert rag_high(value, 0.8, 0.05) == high
    assert rag_low(value, 0.05, 0.03) == low


def test_wallboard_settings_loaded_and_checked() -> None:
    s = load_settings({"QMON_WALLBOARD_SL_TARGET": "0.9"}, "[wallboard]\nqueue_sl_target = ['support=0.95']\n",
                      needs={"tracker"})
    assert s.wallboard.sl_target == 0.9 and s.wallboard.queue_sl_target == ("support=0.95",)
    with pytest.raises(ConfigError) as err:
        load_settings({}, "[wallboard]\nsl_target = 80\nrefresh_s = 0\nqueue_sl_target = ['support', 'x=2']\n",
                      needs={"tracker"})
    assert err.value.problems == [
        "wallboard.sl_target: must be from 0 to 1", "wallboard.refresh_s: must be from 0.2 to 60",
        "wallboard.queue_sl_target: 'support', 'x=2' not queue=target (0..1)",
    ]


@pytest.mark.parametrize("scenario", ["concurrent", "repeat_caller", "member_changes", "overflow"])
def test_tally_equals_the_transcripts_ground_truth(scenario: str) -> None:
    """Replayed through the tracker: offered/answered/abandoned and CSAT per queue equal facts.json."""
    tally = DayTally(20.0, day_of=_utc_day)
    ingest = Ingest(CallTracker(TrackerConfig()), [tally.sink])
    last = 0.0
    for headers, recv in read_capture(FIXTURES / f"{scenario}.jsonl"):
        ingest.feed(headers, recv or last)
        last = recv or last
    ingest.close_all(last, "eof")
    facts = json.loads((FIXTURES / f"{scenario}.facts.json").read_text())
    want: dict[str, list[int]] = {}
    csat: dict[str, list[int]] = {}
    for call in facts["calls"]:
        for v in call["queues"]:
            w = want.setdefault(v["queue"], [0, 0, 0])
            w[0] += 1
            w[1] += v["outcome"] == "answered"
            w[2] += v["outcome"] in ("abandoned", "abandoned_short")
        if call.get("csat") and call["csat"]["status"] == "OK":  # the survey names the last queue visited
            csat.setdefault(call["queue_path"][-1], []).append(call["csat"]["score"])
    today = tally.today(ingest.pbx_now(last))
    assert {q: [d.offered, d.answered, d.abandoned] for q, d in today.items()} == want
    assert {q: (d.csat_n, d.csat_mean()) for q, d in today.items() if d.csat_n} == {
        q: (len(v), sum(v) / len(v)) for q, v in csat.items()}


def test_for_how_long_from_the_agent_board_when_given() -> None:
    """A ``since`` provider (the agents' board) wins where it says the same state; else the tally's mark; else None."""
    tally = DayTally()
    ingest = Ingest(CallTracker(TrackerConfig()), [tally.sink])
    for agent, ts in (("agent1", T0), ("agent2", T0 + 10), ("agent3", T0 + 20)):
        ingest.feed(member_pause(agent, "lunch", ts), 1000.0)  # daemon clock 1000 s = PBX T0 + 20 from here on
    given = {("support", "agent1"): ("paused", T0 - 100.0), ("support", "agent2"): ("in_call", T0)}
    tally.marks.pop(("support", "agent3"))  # as if qmon never saw agent3's pause
    wb = Wallboard({"default": BoardPbx(ingest, None, tally, since=lambda now: given)})
    rows = {r["agent"]: r for r in snapshot(wb, 1005.0)["agents"]}
    assert {a: r["for_s"] for a, r in rows.items()} == {"agent1": 125.0, "agent2": 15.0, "agent3": None}
    assert rows["agent1"]["paused_reason"] == "lunch" and rows["agent1"]["state"] == "paused"


def test_each_queue_shows_its_chosen_sl_definition() -> None:
    """``tracker.sl_definition`` / ``queue_sl_definition`` pick the formula per queue; the board names it."""
    tally = DayTally(20.0, day_of=lambda ts: "today")
    for q in ("support", "sales"):
        tally.sink([SegmentNote(q, "answered", 10.0, "a1", T0), SegmentNote(q, "answered", 40.0, "a1", T0),
                    SegmentNote(q, "abandoned_short", 1.0, None, T0), SegmentNote(q, "abandoned", 30.0, None, T0)])
    ingest = Ingest(CallTracker(TrackerConfig()))
    wb = Wallboard({"default": BoardPbx(ingest, None, tally)}, sl_definitions={"": "offered", "support": "answered"})
    body = snapshot(wb, T0)
    today = {q["queue"]: q["today"] for q in body["queues"]}
    assert (today["support"]["sl_definition"], today["support"]["service_level"]) == ("answered", 0.5)
    assert (today["sales"]["sl_definition"], today["sales"]["service_level"]) == ("offered", 0.25)
    assert today["support"]["sl_name"] == "answered within 20 s ÷ answered"
    assert body["sl_definition"] == "offered" and body["sl_name"] == "answered within 20 s ÷ offered"


def test_a_segment_closed_without_an_outcome_was_offered() -> None:
    """A caller still waiting when the call is closed (gap, stale sweep, shutdown): offered and unanswered today,
    as qmon_queue_calls_total{outcome="unknown"} and the offered rule count it."""
    t = DayTally(20.0, day_of=_utc_day)
    tr = CallTracker()
    ing = Ingest(tr, [t.sink])
    chan = {"Channel": "PJSIP/trunk-00000001", "Uniqueid": "1795381258.1", "Linkedid": "1795381258.1",
            "CallerIDNum": "5551001", "CallerIDName": "Caller", "Context": "from-trunk", "Exten": "100",
            "Language": "en", "Timestamp": f"{T0:.6f}"}
    for m in ({"Event": "Newchannel", **chan}, {"Event": "Newexten", **chan, "Application": "Queue",
                                                  "AppData": "support,t"},
              {"Event": "QueueCallerJoin", **chan, "Queue": "support", "Position": "1", "Count": "1"}):
        ing.feed(m, T0)
    t.sink(tr.close_all(T0 + 30, "shutdown"))
    d = t.today(T0 + 31)["support"]
    assert (d.offered, d.answered, d.abandoned, d.unanswered_other) == (1, 0, 0, 1)
    assert d.abandon_rate() == 0.0
