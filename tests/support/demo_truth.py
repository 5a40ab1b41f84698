"""The simulator's ground truth against qmon's call records, call by call (shared by the offline and live tests)."""

from __future__ import annotations

from collections import Counter

from monitor.core.records import CallRecord
from monitor.sim.model import CallIntent
from monitor.sim.scenario import DEFAULT_QUEUES

#: Members logged in from the start for good (more QueueMemberAdded than these: the rota's members logged in).
ALWAYS_IN = sum(len(q.agents) for q in DEFAULT_QUEUES if q.rota is None)
#: Every outcome the demo is meant to show (segment outcomes as qmon names them).
OUTCOMES = ("answered", "abandoned", "abandoned_short", "timeout", "join_empty", "exit_empty", "exit_key")


def check_call(intent: CallIntent, rec: CallRecord, *, agi: bool = False) -> None:
    """One call: caller (None when withheld), queue visits, ring-no-answers, transfers, voicemail, survey."""
    where = (intent.caller, intent.start)
    assert rec.closed_by == "hangup", where
    assert rec.caller == (None if intent.withheld else intent.caller), where
    got = [(s.queue, s.outcome, s.agent) for s in rec.segments]
    assert got == [(s.queue, s.outcome, s.agent) for s in intent.segments], where
    assert [[r.agent for r in s.ring_no_answers] for s in rec.segments] == [s.rna for s in intent.segments], where
    assert [(t.type, t.queue, t.from_agent) for t in rec.transfers] == intent.transfers, where
    assert (rec.voicemail.reason if rec.voicemail else None) == intent.voicemail, where
    if agi:
        return  # the FastAGI answers reach qmon over FastAGI, not in the AMI stream: checked against the store
    if intent.survey is None:
        assert rec.survey is None, where
    else:
        assert rec.survey is not None and (rec.survey.status, rec.survey.score) == intent.survey, where


def outcomes(intents: list[CallIntent]) -> Counter[str]:
    """Segment outcomes over the intents."""
    return Counter(s.outcome for i in intents for s in i.segments)


def assert_everything_shown(intents: list[CallIntent]) -> None:
    """Every outcome, both transfer kinds, overflow, repeat and withheld callers occur in ``intents``."""
    seen = outcomes(intents)
    assert all(seen[o] for o in OUTCOMES), seen
    kinds = Counter(t[0] for i in intents for t in i.transfers)
    assert kinds["blind"] and kinds["attended"], kinds
    assert any(len(i.segments) == 2 and i.segments[0].outcome == "timeout" for i in intents)  # overflow
    assert any(s.rna and s.outcome == "answered" for i in intents for s in i.segments)  # ring-no-answer
    numbers = Counter(i.caller for i in intents if not i.withheld)
    assert numbers.most_common(1)[0][1] > 1  # repeat callers
    assert any(i.withheld for i in intents)
