"""Every recorded transcript of both Asterisk versions through ``qmon replay``: its facts.json must hold."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from monitor.ami.files import read_capture
from monitor.cli import main
from monitor.core.records import record_from_dict
from monitor.replay import replay_files, replay_messages
from tests.support.factcheck import (
    ALL_RECORDINGS,
    FIXTURES,
    RECORDING_IDS,
    SCENARIOS,
    assert_facts,
    assert_report,
    load_facts,
)


@pytest.mark.parametrize(("version", "scenario", "base"), ALL_RECORDINGS, ids=RECORDING_IDS)
def test_qmon_replay_reproduces_the_facts(version: str, scenario: str, base: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    """``qmon replay --records FILE.ami``: every call record and the report hold the facts, nothing skipped."""
    assert main(["replay", "--records", str(base.with_suffix(".ami"))], {}) == 0
    out, err = capsys.readouterr()
    assert err == ""  # no skipped message in a real recording
    report = json.loads(out)
    facts = load_facts(scenario, version)
    assert_facts([record_from_dict(r) for r in report.pop("records")], facts)
    assert_report(report, facts)


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_jsonl_capture_reproduces_the_facts(scenario: str) -> None:
    res = replay_files([FIXTURES / f"{scenario}.jsonl"])
    assert res.skipped == {}
    assert_facts(res.records, load_facts(scenario))
    assert_report(res.report(), load_facts(scenario))


def test_join_empty_counted_without_queue_log_line() -> None:
    rep = replay_files([FIXTURES / "voicemail_empty.ami"]).report()
    q = rep["queues"]["support"]
    assert (q["entered"], q["join_empty"], q["voicemail"]) == (0, 1, 1)


@pytest.mark.parametrize("version", ["ast22", "ast20"])
def test_queue_full_is_its_own_outcome_and_reaches_voicemail(version: str) -> None:
    """QUEUESTATUS=FULL has no queue event and no queue_log line: a visit that never entered, then VoiceMail."""
    res = replay_files([FIXTURES / version / "queue_full.ami"])
    full = [r for r in res.records if r.voicemail is not None]
    assert len(full) == 1 and full[0].outcome == "voicemail" and full[0].voicemail is not None
    assert [(s.queue, s.entered, s.outcome) for s in full[0].segments] == [("support", False, "full")]
    assert full[0].voicemail.reason == "full"
    q = res.report()["queues"]["support"]
    assert (q["entered"], q["full"], q["voicemail"], res.report()["voicemail_calls"]) == (1, 1, 1, 1)


def test_agentcomplete_without_any_snapshot_completes_the_call() -> None:
    """caller_hangup_at_answer (Asterisk 22): AgentComplete carries only Queue/Interface/MemberName/times/Reason."""
    res = replay_files([FIXTURES / "ast22" / "caller_hangup_at_answer.ami"])
    (rec,) = res.records
    (seg,) = rec.segments
    assert (seg.completion, seg.talk_s, rec.closed_by) == ("caller", 0.0, "hangup")
    assert res.report()["queues"]["support"]["completed_by_caller"] == 1


def test_same_records_from_wire_and_jsonl() -> None:
    for scenario in SCENARIOS:
        a = replay_files([FIXTURES / f"{scenario}.ami"]).records
        b = replay_messages(read_capture(FIXTURES / f"{scenario}.jsonl")).records
        strip = [(r.call_id, r.outcome, r.segments, r.transfers, r.survey and r.survey.score) for r in a]
        assert strip == [(r.call_id, r.outcome, r.segments, r.transfers, r.survey and r.survey.score) for r in b]
