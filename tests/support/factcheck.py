"""Assert a transcript's facts.json (ground truth from queue_log + CDR) against qmon's call records and report.

What facts.json binds (issue 11): per call, each queue visit's outcome/agent/wait/talk (queue_log words mapped to
qmon's: ``exitempty`` -> ``exit_empty``, ``exitwithkey`` -> ``exit_key``), ring-no-answers, transfers, voicemail,
CSAT, repeat caller; per queue, the queue_log counts of ``summary.queue_counts``, wait and talk figures; voicemail
calls, distinct and repeat callers. Not binding: the facts' whole-call ``outcome`` (the last visit's; qmon's rule is
checked instead: answered if any visit was, else voicemail if the caller reached it, else the last visit's) and
which call a consult leg's visit belongs to (``other_queue_callids``: qmon may attach it to the caller's call).
Facts files of the first recordings (no ``other_queue_callids`` key) still bind the whole-call outcome.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from monitor.core.records import CallRecord, Segment

FIXTURES = Path(__file__).parent.parent / "fixtures"
#: The first Asterisk 22 recordings (flat layout, every capture format), by scenario name.
SCENARIOS = sorted(p.name.removesuffix(".facts.json") for p in FIXTURES.glob("*.facts.json"))
#: The Asterisk 22 recordings added later (``ast22/``) and every scenario on Asterisk 20 (``ast20/``): ``.ami`` +
#: facts only.
AST22, AST20 = FIXTURES / "ast22", FIXTURES / "ast20"


def _names(d: Path) -> list[str]:
    return sorted(p.name.removesuffix(".facts.json") for p in d.glob("*.facts.json"))


#: Every recording of both versions: (version, scenario, path without suffix).
ALL_RECORDINGS: list[tuple[str, str, Path]] = sorted(
    [*(("ast22", s, FIXTURES / s) for s in SCENARIOS), *(("ast22", s, AST22 / s) for s in _names(AST22)),
     *(("ast20", s, AST20 / s) for s in _names(AST20))], key=lambda t: (t[0] != "ast22", t[1]))
RECORDING_IDS = [f"{v}-{s}" for v, s, _ in ALL_RECORDINGS]

_VISIT_OUTCOME = {"exitempty": "exit_empty", "exitwithkey": "exit_key", "exitwithtimeout": "timeout"}
_COMPLETION = {"COMPLETEAGENT": "agent", "COMPLETECALLER": "caller", "BLINDTRANSFER": "transfer",
               "ATTENDEDTRANSFER": "transfer"}
#: queue_log verb of summary.queue_counts -> the report's per-queue key.
REPORT_KEY = {
    "ENTERQUEUE": "entered", "CONNECT": "answered", "ABANDON": "abandoned", "EXITWITHTIMEOUT": "timeout",
    "EXITEMPTY": "exit_empty", "EXITWITHKEY": "exit_key", "COMPLETEAGENT": "completed_by_agent",
    "COMPLETECALLER": "completed_by_caller", "BLINDTRANSFER": "transfers_blind",
    "ATTENDEDTRANSFER": "transfers_attended", "RINGNOANSWER": "ring_no_answer", "WITHDRAW": "withdraw",
}


def load_facts(scenario: str, version: str = "ast22") -> dict[str, Any]:
    """The facts file of one scenario of one Asterisk version."""
    path = FIXTURES / f"{scenario}.facts.json"
    if version != "ast22" or not path.exists():
        path = FIXTURES / version / f"{scenario}.facts.json"
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def visit_outcome(q: dict[str, Any], short_s: float) -> str:
    """A facts visit's outcome in qmon's words (abandoned under ``short_s`` s of wait: abandoned_short)."""
    outcome = _VISIT_OUTCOME.get(q["outcome"], q["outcome"])
    if outcome == "abandoned" and q["waittime_s"] < short_s:
        outcome = "abandoned_short"
    return str(outcome)


def qmon_call_outcome(visits: list[dict[str, Any]], voicemail: bool, short_s: float) -> str:
    """qmon's whole-call rule: answered if any visit was, else voicemail, else the last visit's, else unknown."""
    outcomes = [visit_outcome(q, short_s) for q in visits]
    if "answered" in outcomes:
        return "answered"
    if voicemail:
        return "voicemail"
    return outcomes[-1] if outcomes else "unknown"


def _split(rec: CallRecord, own: list[dict[str, Any]], others: list[dict[str, Any]], short_s: float,
           where: str) -> list[tuple[Segment, dict[str, Any]]]:
    """Pair the record's entered segments with the call's own visits, in order; a segment that is not the next
    own visit must be a consult leg's visit (``others``, consumed when matched)."""
    pairs: list[tuple[Segment, dict[str, Any]]] = []
    i = 0
    for seg in rec.entered:
        if i < len(own) and seg.queue == own[i]["queue"] and seg.outcome == visit_outcome(own[i], short_s):
            pairs.append((seg, own[i]))
            i += 1
            continue
        match = next((o for o in others if o["queue"] == seg.queue
                      and seg.outcome == visit_outcome(o, short_s) and seg.agent == o.get("agent")), None)
        assert match is not None, (where, "unexpected segment", seg.queue, seg.outcome, seg.agent)
        others.remove(match)
        pairs.append((seg, match))
    assert i == len(own), (where, "visits missing", [q["queue"] for q in own[i:]])
    return pairs


def assert_facts(records: list[CallRecord], facts: dict[str, Any], abandon_short_s: float = 5.0) -> None:
    """Every binding fact of every call: visits (outcome, wait, agent, talk), transfers, voicemail, survey."""
    by_id = {r.call_id: r for r in records}
    other_calls = facts.get("other_queue_callids", [])
    separate = [o for o in other_calls if o["uniqueid"] in by_id]
    pending = [dict(q, _uid=o["uniqueid"], _rna=[r for r in o.get("ringnoanswer", []) if r["queue"] == q["queue"]])
               for o in other_calls if o not in separate for q in o["queues"]]
    expected = facts["calls"]
    assert len(records) == len(expected) + len(separate), (len(records), [r.call_id for r in records])
    for call in expected:
        rec = by_id.get(call["uniqueid"])
        assert rec is not None, f"no record for call {call['uniqueid']}"
        where = f"{facts['scenario']}:{call['uniqueid']}"
        assert rec.closed_by == "hangup", where
        assert rec.caller == call["caller"], where
        assert bool(rec.repeat_windows) == call["repeat_caller"], where
        assert rec.outcome == qmon_call_outcome(call["queues"], call["voicemail"], abandon_short_s), (
            where, rec.outcome)
        if "other_queue_callids" not in facts:  # the first recordings: their whole-call outcome binds too
            assert rec.outcome == call["outcome"] or (
                call["outcome"] == "abandoned" and rec.outcome == "abandoned_short"), (where, rec.outcome)
        assert (rec.voicemail is not None) == call["voicemail"], where
        pairs = _split(rec, call["queues"], pending, abandon_short_s, where)
        for seg, q in pairs:
            _segment(seg, q, f"{where}:{q['queue']}", abandon_short_s)
        want_rna = [*call["ringnoanswer"], *(r for _, q in pairs if "_uid" in q for r in q["_rna"])]
        rna = sorted((s.queue, r.agent, r.ring_ms) for s in rec.segments for r in s.ring_no_answers)
        assert rna == sorted((x["queue"], x["agent"], x["ring_ms"]) for x in want_rna), where
        _survey(rec, call.get("csat"), where)
        _transfers(rec, call["queues"], facts["scenario"], where)
    assert pending == [], ("consult-leg visits found nowhere", [(q["_uid"], q["queue"]) for q in pending])
    for o in separate:
        rec = by_id[o["uniqueid"]]
        assert [s.queue for s in rec.entered] == [q["queue"] for q in o["queues"]], o["uniqueid"]
        for seg, q in zip(rec.entered, o["queues"], strict=True):
            _segment(seg, q, f"{facts['scenario']}:{o['uniqueid']}:{q['queue']}", abandon_short_s)
    summary = facts["summary"]
    assert sum(1 for r in records if r.voicemail) == summary["voicemail_calls"]
    assert len({r.caller for r in records if r.caller}) == summary["distinct_callers"]
    assert sum(1 for r in records if r.repeat_windows) == summary["calls_from_repeat_callers"]


def _segment(seg: Segment, q: dict[str, Any], where: str, short_s: float) -> None:
    assert seg.outcome == visit_outcome(q, short_s), (where, seg.outcome, q["outcome"])
    if q["outcome"] == "answered":
        assert seg.agent == q["agent"], where
        assert seg.agent_uniqueid == q["agent_uniqueid"], where
        assert seg.wait_s is not None and abs(seg.wait_s - q["holdtime_s"]) <= 1, (where, seg.wait_s)
        assert seg.ring_s == q["ringtime_s"], where
        assert seg.talk_s is not None and abs(seg.talk_s - q["talktime_s"]) <= 1, (where, seg.talk_s)
        assert seg.position == q["position"], where
        assert seg.completion == _COMPLETION[q["completion"]], (where, seg.completion)
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


def _transfers(rec: CallRecord, queues: list[dict[str, Any]], scenario: str, where: str) -> None:
    want = []
    for q in queues:
        if q.get("completion") == "BLINDTRANSFER":
            want.append(("blind", q["queue"], q["agent"], q["transfer_to"]))
        elif q.get("completion") == "ATTENDEDTRANSFER":
            want.append(("attended", q["queue"], q["agent"], None))
    got = [(t.type, t.queue, t.from_agent, t.to if t.type == "blind" else None) for t in rec.transfers]
    assert got == want, (where, got, want)
    # The lab's consult target (the Atxfer action's Exten), even without TransferTarget*.
    target = "3000@lab-xfer" if scenario.startswith("atxfer_into_queue") else "2002@lab-xfer"
    for t in rec.transfers:
        if t.type == "attended":
            assert t.to == target, (where, t.to)


def _close(got: float | None, want: float | None, where: str) -> None:
    if want is None:
        assert got is None, where
    else:
        assert got is not None and abs(got - want) <= 1, (where, got, want)


def assert_report(rep: dict[str, Any], facts: dict[str, Any]) -> None:
    """The report's per-queue counts equal queue_log's (summary.queue_counts), and so do the wait and talk
    figures, voicemail calls, distinct and repeat callers."""
    summary = facts["summary"]
    for queue, qc in summary["queue_counts"].items():
        got = rep["queues"][queue]
        for verb, key in REPORT_KEY.items():
            if verb in qc:
                assert got[key] == qc[verb], (facts["scenario"], queue, key, got[key], qc[verb])
    assert rep["calls"] == summary["inbound_calls"], facts["scenario"]
    assert rep["voicemail_calls"] == summary["voicemail_calls"]
    assert rep["callers"]["distinct"] == summary["distinct_callers"]
    assert rep["callers"]["repeat_calls"] == summary["calls_from_repeat_callers"]
    for queue, h in summary["holdtime_answered_by_queue_s"].items():
        w = rep["queues"][queue]["wait_answered_s"]
        assert w["n"] == h["n"], (queue, w, h)
        for k in ("mean", "p50", "p90"):
            _close(w[k], h[k], f"{queue}:wait_answered_s.{k}")
    for queue, t in summary.get("talktime_by_queue_s", {}).items():
        talk = rep["queues"][queue]["talk_s"]
        assert talk["n"] == t["n"], (queue, talk, t)
        _close(talk["mean"], t["mean"], f"{queue}:talk_s.mean")
    ab = summary["abandon_wait_s"]
    waits = [(b["wait_abandoned_s"]["n"], b["wait_abandoned_s"]["mean"]) for b in rep["queues"].values()]
    n = sum(k for k, _ in waits)
    assert n == ab["n"], (n, ab)
    _close(sum(k * m for k, m in waits if k) / n if n else None, ab["mean"], "abandon_wait_s.mean")
