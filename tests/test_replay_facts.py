"""Every recorded transcript through the file source and the tracker: facts.json must hold."""

from __future__ import annotations

import pytest

from monitor.ami.files import read_capture
from monitor.replay import replay_files, replay_messages
from tests.support.factcheck import FIXTURES, SCENARIOS, assert_facts, load_facts


@pytest.mark.parametrize("scenario", SCENARIOS)
@pytest.mark.parametrize("fmt", ["ami", "jsonl"])
def test_transcript_facts(scenario: str, fmt: str) -> None:
    res = replay_files([FIXTURES / f"{scenario}.{fmt}"])
    assert res.skipped == {}
    assert_facts(res.records, load_facts(scenario))


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_report_counts_equal_queue_log(scenario: str) -> None:
    """The report's per-queue counts equal Asterisk's own queue_log counts (facts summary)."""
    facts = load_facts(scenario)
    rep = replay_files([FIXTURES / f"{scenario}.ami"]).report()
    for queue, qc in facts["summary"]["queue_counts"].items():
        got = rep["queues"][queue]
        assert got["entered"] == qc["ENTERQUEUE"]
        assert got["answered"] == qc["CONNECT"]
        assert got["abandoned"] == qc["ABANDON"]
        assert got["timeout"] == qc["EXITWITHTIMEOUT"]
        assert got["exit_empty"] == qc["EXITEMPTY"]
        assert got["completed_by_agent"] == qc["COMPLETEAGENT"]
        assert got["completed_by_caller"] == qc["COMPLETECALLER"]
        assert got["transfers_blind"] == qc["BLINDTRANSFER"]
        assert got["transfers_attended"] == qc["ATTENDEDTRANSFER"]
        assert got["ring_no_answer"] == qc["RINGNOANSWER"]
    assert rep["calls"] == facts["summary"]["inbound_calls"]
    assert rep["voicemail_calls"] == facts["summary"]["voicemail_calls"]
    held = facts["summary"]["holdtime_answered_by_queue_s"]
    for queue, h in held.items():
        w = rep["queues"][queue]["wait_answered_s"]
        assert w["n"] == h["n"]
        assert abs(w["mean"] - h["mean"]) <= 1
        assert abs(w["p50"] - h["p50"]) <= 1 and abs(w["p90"] - h["p90"]) <= 1


def test_join_empty_counted_without_queue_log_line() -> None:
    rep = replay_files([FIXTURES / "voicemail_empty.ami"]).report()
    q = rep["queues"]["support"]
    assert (q["entered"], q["join_empty"], q["voicemail"]) == (0, 1, 1)


def test_same_records_from_wire_and_jsonl() -> None:
    for scenario in SCENARIOS:
        a = replay_files([FIXTURES / f"{scenario}.ami"]).records
        b = replay_messages(read_capture(FIXTURES / f"{scenario}.jsonl")).records
        strip = [(r.call_id, r.outcome, r.segments, r.transfers, r.survey and r.survey.score) for r in a]
        assert strip == [(r.call_id, r.outcome, r.segments, r.transfers, r.survey and r.survey.score) for r in b]
