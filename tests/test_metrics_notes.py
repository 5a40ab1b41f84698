"""Counters from tracker notes: transfers vs transferred segments, every survey answer counted once."""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from monitor.ami.files import read_capture
from monitor.core.ingest import Ingest
from monitor.core.records import Survey, SurveyNote, TransferNote
from monitor.core.survey import SurveyResultRecord
from monitor.core.tracker import CallTracker
from monitor.web.metrics import QmonMetrics
from tests.support.factcheck import FIXTURES


def _value(reg: CollectorRegistry, name: str, **labels: str) -> float:
    v = reg.get_sample_value(name, labels)
    return 0.0 if v is None else v


def test_second_transfer_of_a_segment_counts_as_transfer_not_as_another_transferred_call() -> None:
    reg = CollectorRegistry()
    m = QmonMetrics(reg, queues=("support",))
    sink = m.sink("pbx1")
    sink([TransferNote("support", "attended", 1.0, True), TransferNote("support", "blind", 2.0, False)])
    assert _value(reg, "qmon_transfers_total", pbx="pbx1", queue="support", type="attended") == 1
    assert _value(reg, "qmon_transfers_total", pbx="pbx1", queue="support", type="blind") == 1
    assert _value(reg, "qmon_queue_calls_total", pbx="pbx1", queue="support", outcome="transferred") == 1


def test_every_survey_answer_counted_once_from_its_note() -> None:
    """Dialplan UserEvent and AGI answers both reach the metrics as one note each, through the one Ingest."""
    reg = CollectorRegistry()
    m = QmonMetrics(reg)
    tr = CallTracker()
    ing = Ingest(tr, [m.sink("p")])
    for headers, _ in read_capture(FIXTURES / "answered_agent_hangup.jsonl"):
        ing.feed(headers, 0)
    # The dialplan survey (UserEvent CSAT score 4) is counted from its note.
    assert _value(reg, "qmon_csat_responses_total", pbx="p", queue="support", score="4") == 1
    # An AGI answer for an open call: attached to the call, counted once under the call's queue.
    tr2 = CallTracker()
    ing2 = Ingest(tr2, [m.sink("p")])
    msgs = [h for h, _ in read_capture(FIXTURES / "survey_hangup.jsonl")]
    cut = next(i for i, h in enumerate(msgs) if h.get("Variable") == "QUEUESTATUS")
    for h in msgs[: cut + 1]:
        ing2.feed(h, 0)
    rec = SurveyResultRecord("1795381163.0", "1795381163.1", "5551011", None, None, "completed", 5, None,
                             None, "5", "en", "agi", 1.0, 2.0)
    (note,) = ing2.survey(rec)
    assert isinstance(note, SurveyNote) and note.answer is not None
    assert (note.answer.queue, note.answer.agent) == ("support", "agent1")  # filled from the call, for the store
    assert _value(reg, "qmon_csat_responses_total", pbx="p", queue="support", score="5") == 1
    assert _value(reg, "qmon_survey_outcomes_total", pbx="p", queue="support", result="completed") == 2
    ing2.survey(SurveyResultRecord(None, "x", None, "support", None, "not_eligible", None, None, None, "",
                                   "en", "agi", 3.0, 3.0, "not answered"))
    assert _value(reg, "qmon_survey_outcomes_total", pbx="p", queue="support", result="not_eligible") == 1
    found = tr2.find_call("1795381163.1")
    assert found is not None and isinstance(found.survey, Survey) and found.survey.outcome == "completed"


def test_late_answer_for_a_recently_closed_call_is_placed_by_the_tracker() -> None:
    """A callback answer after the hang-up: not attached (the record is final) but counted under its call."""
    reg = CollectorRegistry()
    m = QmonMetrics(reg)
    ing = Ingest(CallTracker(), [m.sink("p")])
    for headers, _ in read_capture(FIXTURES / "answered_caller_hangup.jsonl"):
        ing.feed(headers, 0)
    ing.tick(60)  # the grace period after the caller's hang-up is over: the record is final
    lid = next(h["Linkedid"] for h, _ in read_capture(FIXTURES / "answered_caller_hangup.jsonl") if "Linkedid" in h)
    assert ing.find_call(None, str(lid)) is None and ing.knows(None, str(lid))
    assert not ing.knows(None, "no-such-call")
    (note,) = ing.survey(SurveyResultRecord(str(lid), None, None, None, None, "completed", 3, None, None, "3",
                                            "en", "callback", 5.0, 6.0))
    assert isinstance(note, SurveyNote) and (note.queue, note.agent) == ("support", "agent1")
    assert _value(reg, "qmon_csat_responses_total", pbx="p", queue="support", score="3") == 1


def test_nps_buckets_and_ces_from_survey_results() -> None:
    reg = CollectorRegistry()
    m = QmonMetrics(reg)
    ing = Ingest(CallTracker(), [m.sink("p")])
    for nps, ces in ((10, 5), (9, 4), (8, None), (3, 1), (0, None)):
        ing.survey(SurveyResultRecord("l", "u", None, "q", "a", "completed", 5, nps, ces, "", "en", "agi", 0.0, 1.0))
    got = {b: _value(reg, "qmon_nps_responses_total", pbx="p", queue="q", bucket=b)
           for b in ("promoter", "passive", "detractor")}
    assert got == {"promoter": 2, "passive": 1, "detractor": 2}  # NPS = (2 - 2) / 5 = 0
    assert _value(reg, "qmon_ces_responses_total", pbx="p", queue="q", score="1") == 1


def test_every_outcome_and_voicemail_reason_is_pre_created_from_the_vocabulary() -> None:
    """New outcomes (full, join_unavail, leave_unavail, withdraw) exist at 0 per known queue, like the others."""
    from monitor.core.vocab import CALL_OUTCOME_LABELS, VOICEMAIL_REASONS

    reg = CollectorRegistry()
    m = QmonMetrics(reg, queues=("support",))
    m.add_pbx("default", Ingest(CallTracker()))
    assert {"full", "join_unavail", "leave_unavail", "withdraw"} <= set(CALL_OUTCOME_LABELS)
    for o in CALL_OUTCOME_LABELS:
        assert reg.get_sample_value("qmon_queue_calls_total", {"pbx": "default", "queue": "support", "outcome": o}) \
            == 0.0, o
    for reason in VOICEMAIL_REASONS:
        assert reg.get_sample_value("qmon_queue_voicemail_total",
                                    {"pbx": "default", "queue": "support", "reason": reason}) == 0.0, reason
