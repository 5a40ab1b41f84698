"""A simulated stream replayed through qmon's tracker gives exactly the outcomes the simulator intended."""

from __future__ import annotations

from collections import Counter

import pytest

from monitor.ami.files import read_capture
from monitor.ami.wire import WireParser, encode
from monitor.core.records import CallRecord
from monitor.replay import replay_messages
from monitor.sim.scenario import CallIntent, generate
from tests.support.demo_scripts import T0


def _check(intent: CallIntent, rec: CallRecord) -> None:
    where = (intent.caller, intent.start)
    assert rec.closed_by == "hangup", where
    assert rec.caller == intent.caller, where
    got = [(s.queue, s.outcome, s.agent) for s in rec.segments]
    assert got == [(s.queue, s.outcome, s.agent) for s in intent.segments], where
    assert [[r.agent for r in s.ring_no_answers] for s in rec.segments] == [s.rna for s in intent.segments], where
    assert [(t.type, t.queue, t.from_agent) for t in rec.transfers] == intent.transfers, where
    assert (rec.voicemail.reason if rec.voicemail else None) == intent.voicemail, where
    if intent.survey is None:
        assert rec.survey is None, where
    else:
        assert rec.survey is not None and (rec.survey.status, rec.survey.score) == intent.survey, where


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_replay_gives_the_intended_outcomes(seed: int) -> None:
    events, intents, live = generate(seed, T0, 2 * 3600)
    res = replay_messages([(h, None) for _, h in events])
    assert res.skipped == {}
    by_id = {r.call_id: r for r in res.records}
    assert len(res.records) == len(intents)
    for intent in intents:
        _check(intent, by_id[live.resolve(intent.uid)])
    outcomes = Counter(s.outcome for i in intents for s in i.segments)
    # Two hours of traffic show every outcome the demo is meant to show.
    for outcome in ("answered", "abandoned", "abandoned_short", "timeout", "join_empty"):
        assert outcomes[outcome] > 0, outcomes
    kinds = Counter(t[0] for i in intents for t in i.transfers)
    assert kinds["blind"] and kinds["attended"]
    assert {s[0] for i in intents if i.survey for s in [i.survey]} >= {"OK", "INVALID", "NOINPUT"}
    assert any(len(i.segments) == 2 and i.segments[0].outcome == "timeout" for i in intents)  # overflow
    assert Counter(i.caller for i in intents).most_common(1)[0][1] > 1  # repeat callers


def test_wire_round_trip_and_repeat_callers(tmp_path) -> None:  # type: ignore[no-untyped-def]
    events, intents, _ = generate(5, T0, 1800)
    path = tmp_path / "demo.ami"
    body = b"".join(encode(h) for _, h in events)
    path.write_bytes(b"Asterisk Call Manager/11.0.0\r\n" + body)
    res = replay_messages(read_capture(path))
    assert len(res.records) == len(intents)
    seen: set[str] = set()
    for rec, intent in zip(sorted(res.records, key=lambda r: r.start_ts), intents, strict=True):
        assert bool(rec.repeat_windows) == (intent.caller in seen)
        seen.add(intent.caller)
    parser = WireParser(expect_banner=False)
    # In chunks, as a socket delivers them (one multi-megabyte feed() is slow in the parser, see report).
    parsed = [m for i in range(0, len(body), 65536) for m in parser.feed(body[i:i + 65536])]
    assert parsed == [h for _, h in events]
