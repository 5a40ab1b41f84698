"""Assert a transcript's facts.json (ground truth from queue_log + CDR) against qmon's call records."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from monitor.core.records import CallRecord

FIXTURES = Path(__file__).parent.parent / "fixtures"
SCENARIOS = sorted(p.name.removesuffix(".facts.json") for p in FIXTURES.glob("*.facts.json"))


def load_facts(scenario: str) -> dict[str, Any]:
    """The facts file of one scenario."""
    data: dict[str, Any] = json.loads((FIXTURES / f"{scenario}.facts.json").read_text())
    return data


def assert_facts(records: list[CallRecord], facts: dict[str, Any], abandon_short_s: float = 5.0) -> None:
    """Every fact of every call: outcome per segment, waits, agents, transfers, voicemail, survey."""
    by_id = {r.call_id: r for r in records}
    expected = facts["calls"]
    assert len(records) == len(expected), (len(records), [r.call_id for r in records])
    for call in expected:
        rec = by_id.get(call["uniqueid"])
        assert rec is not None, f"no record for call {call['uniqueid']}"
        where = f"{facts['scenario']}:{call['uniqueid']}"
        assert rec.closed_by == "hangup", where
        assert rec.caller == call["caller"], where
        assert bool(rec.repeat_windows) == call["repeat_caller"], where
        assert rec.outcome == call["outcome"] or (
            call["outcome"] == "abandoned" and rec.outcome == "abandoned_short"), (where, rec.outcome)
        assert [s.queue for s in rec.entered] == call["queue_path"], where
        assert (rec.voicemail is not None) == call["voicemail"], where
        for seg, q in zip(rec.entered, call["queues"], strict=True):
            _segment(seg, q, f"{where}:{q['queue']}", abandon_short_s)
        rna = [(s.queue, r.agent, r.ring_ms) for s in rec.segments for r in s.ring_no_answers]
        assert rna == [(x["queue"], x["agent"], x["ring_ms"]) for x in call["ringnoanswer"]], where
        _survey(rec, call.get("csat"), where)
        _transfers(rec, call["queues"], where)
    summary = facts["summary"]
    assert sum(1 for r in records if r.voicemail) == summary["voicemail_calls"]
    assert len({r.caller for r in records if r.caller}) == summary["distinct_callers"]
    assert sum(1 for r in records if r.repeat_windows) == summary["calls_from_repeat_callers"]


def _segment(seg: Any, q: dict[str, Any], where: str, short_s: float) -> None:
    outcome = q["outcome"]
    if outcome == "abandoned" and q["waittime_s"] < short_s:
        outcome = "abandoned_short"
    assert seg.outcome == outcome, (where, seg.outcome, outcome)
    if q["outcome"] == "answered":
        assert seg.agent == q["agent"], where
        assert seg.agent_uniqueid == q["agent_uniqueid"], where
        assert seg.wait_s is not None and abs(seg.wait_s - q["holdtime_s"]) <= 1, (where, seg.wait_s)
        assert seg.ring_s == q["ringtime_s"], where
        assert seg.talk_s is not None and abs(seg.talk_s - q["talktime_s"]) <= 1, where
        assert seg.position == q["position"], where
        completion = {"COMPLETEAGENT": "agent", "COMPLETECALLER": "caller", "BLINDTRANSFER": "transfer",
                      "ATTENDEDTRANSFER": "transfer"}[q["completion"]]
        assert seg.completion == completion, where
    else:
        assert seg.wait_s is not None and abs(seg.wait_s - q["waittime_s"]) <= 1, (where, seg.wait_s)
        assert seg.exit_position == q["position"], where
        assert seg.position == q["original_position"], where


def _survey(rec: CallRecord, csat: dict[str, Any] | None, where: str) -> None:
    if csat is None:
        assert rec.survey is None, where
        return
    assert rec.survey is not None, where
    assert rec.survey.status == csat["status"], where
    if csat["status"] == "OK":
        assert rec.survey.score == csat["score"], where
    else:
        assert rec.survey.score is None, where
        assert rec.survey.raw == (str(csat["score"]) if csat["score"] is not None else ""), where


def _transfers(rec: CallRecord, queues: list[dict[str, Any]], where: str) -> None:
    want = []
    for q in queues:
        if q.get("completion") == "BLINDTRANSFER":
            want.append(("blind", q["queue"], q["agent"], q["transfer_to"]))
        elif q.get("completion") == "ATTENDEDTRANSFER":
            want.append(("attended", q["queue"], q["agent"], None))
    got = [(t.type, t.queue, t.from_agent, t.to if t.type == "blind" else None) for t in rec.transfers]
    assert got == want, (where, got, want)
    for t in rec.transfers:
        if t.type == "attended":
            assert t.to == "2002@lab-xfer", (where, t.to)  # the consult target, even without TransferTarget*
