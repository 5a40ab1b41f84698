"""Survey policy (pure): eligibility, sampling, cooldown across a restart, quiet hours, languages, prompts."""

from __future__ import annotations

import json
from datetime import time as dtime
from pathlib import Path

import pytest

from monitor.core.ingest import Ingest, closed_records
from monitor.core.survey import PolicyConfig, SurveyPolicy, in_quiet_hours, parse_quiet_hours, sampled
from monitor.core.tracker import CallTracker
from monitor.settings import SurveySettings
from monitor.survey.config import callback_config, policy_config
from monitor.survey.state import SurveyState
from tests.support.calls import FIXTURES, abandoned, answered

NOON = dtime(12, 0)
NOW = 1_700_000_200.0


def test_only_calls_answered_by_an_agent() -> None:
    p = SurveyPolicy(PolicyConfig())
    assert p.decide(answered(), "5551001", NOW, NOON).eligible
    assert p.decide(abandoned(), "5551002", NOW, NOON).reason == "not_answered"
    assert p.decide(None, "5551002", NOW, NOON).reason == "unknown_call"
    d = p.decide(answered(queue="sales", agent="agent3"), None, NOW, NOON)
    assert (d.eligible, d.queue, d.agent) == (True, "sales", "agent3")


def _replayed_records() -> list:
    out = []
    for path in sorted(FIXTURES.glob("*.jsonl")):
        if path.name.endswith(".actions.jsonl"):
            continue
        tracker = CallTracker()
        ingest = Ingest(tracker)
        notes = []
        for line in path.read_text().splitlines():
            msg = json.loads(line)
            if "_banner" not in msg:
                notes += ingest.feed({k: v for k, v in msg.items() if not k.startswith("_")}, msg.get("_recv", 0.0))
        notes += tracker.close_all(1e10, "eof")
        out += closed_records(notes)
    return out


def test_not_answered_calls_from_real_transcripts_are_never_surveyed() -> None:
    p = SurveyPolicy(PolicyConfig())
    records = _replayed_records()
    unanswered = [r for r in records if not any(s.outcome == "answered" for s in r.segments)]
    answered_ = [r for r in records if any(s.outcome == "answered" for s in r.segments)]
    assert len(unanswered) >= 5 and len(answered_) >= 10
    assert all(p.decide(r, r.caller, NOW, NOON).reason == "not_answered" for r in unanswered)
    assert all(p.decide(r, r.caller, NOW, NOON).eligible for r in answered_)


def test_per_queue_enable() -> None:
    p = SurveyPolicy(PolicyConfig(queues=("sales",)))
    assert p.decide(answered(queue="support"), "1", NOW, NOON).reason == "queue_disabled"
    assert p.decide(answered(queue="sales"), "1", NOW, NOON).eligible


def test_sampling_is_deterministic_and_close_to_the_rate() -> None:
    keys = [f"1700000000.{i}" for i in range(4000)]
    first = [sampled(k, 0.25, "seed") for k in keys]
    assert first == [sampled(k, 0.25, "seed") for k in keys]  # stable across runs/restarts
    assert 0.22 < sum(first) / len(keys) < 0.28
    assert first != [sampled(k, 0.25, "other") for k in keys]  # the seed matters
    assert not any(sampled(k, 0.0, "s") for k in keys[:100]) and all(sampled(k, 1.0, "s") for k in keys[:100])
    p = SurveyPolicy(PolicyConfig(sampling_rate=0.0, queue_sampling=(("vip", 1.0),)))
    assert p.decide(answered(queue="support"), "1", NOW, NOON).reason == "not_sampled"
    assert p.decide(answered(queue="vip"), "1", NOW, NOON).eligible


def test_cooldown_survives_a_restart(tmp_path: Path) -> None:
    db = tmp_path / "survey.db"
    p = SurveyPolicy(PolicyConfig(cooldown_days=7))
    state = SurveyState(db)
    assert state.last_surveyed("5551001") is None
    state.mark_surveyed("+48 555-1001".replace("+48 ", ""), NOW)
    state.close()
    state = SurveyState(db)  # a restart: a fresh process reads the file
    last = state.last_surveyed("555 1001")
    assert last == NOW
    assert p.decide(answered(), "5551001", NOW + 86400, NOON, last).reason == "cooldown"
    assert p.decide(answered(), "5551001", NOW + 8 * 86400, NOON, last).eligible
    assert p.decide(answered(), "5559999", NOW + 86400, NOON, state.last_surveyed("5559999")).eligible
    state.close()


def test_quiet_hours() -> None:
    w = parse_quiet_hours("21:00-08:00")
    assert w == (dtime(21), dtime(8))
    assert in_quiet_hours(w, dtime(23, 30)) and in_quiet_hours(w, dtime(7, 59)) and in_quiet_hours(w, dtime(21))
    assert not in_quiet_hours(w, dtime(8)) and not in_quiet_hours(w, NOON)
    day = parse_quiet_hours("12:00-13:00")
    assert in_quiet_hours(day, NOON) and not in_quiet_hours(day, dtime(13))
    assert parse_quiet_hours("") is None and not in_quiet_hours(None, NOON)
    with pytest.raises(ValueError, match="HH:MM"):
        parse_quiet_hours("late")
    p = SurveyPolicy(PolicyConfig(quiet_hours=w))
    assert p.decide(answered(), "1", NOW, dtime(22)).reason == "quiet_hours"
    assert p.decide(answered(), "1", NOW, NOON).eligible


def test_opt_out_blocks_surveys() -> None:
    p = SurveyPolicy(PolicyConfig())
    assert p.decide(answered(), "5551001", NOW, NOON, opted_out=True).reason == "opted_out"


def test_language_and_prompt_files() -> None:
    p = SurveyPolicy(PolicyConfig(queue_language=(("polska", "pl"),), prompt_files=(("csat", "my-csat"),)))
    assert p.language("polska", "en") == "pl"
    assert p.language("support", "pl") == "pl"
    assert p.language("support", "de") == "en"  # no German prompts shipped: fall back
    assert p.language("support", None, explicit="pl") == "pl"
    assert p.prompt("pl", "csat") == "qmon/pl/my-csat"
    assert p.prompt("en", "thanks") == "qmon/en/thanks"


def test_settings_map_to_configs_and_report_every_error_at_once() -> None:
    s = SurveySettings(quiet_hours="22:00-07:00", queue_sampling=("vip=0.5",), queue_language=("pl-q=pl",),
                       prompt_files=("thanks=my-thanks",), ask_nps=True)
    c = policy_config(s)
    assert c.quiet_hours == (dtime(22), dtime(7)) and c.queue_sampling == (("vip", 0.5),) and c.ask_nps
    bad = SurveySettings(quiet_hours="x", queue_sampling=("vip=2", "junk"), prompt_files=("nope=x",),
                         queue_language=("q=de",), default_language="fr")
    with pytest.raises(ValueError) as exc:
        policy_config(bad)
    msg = str(exc.value)
    for needle in ("quiet_hours", "vip", "junk", "nope", "q: 'de'", "default_language"):
        assert needle in msg
    with pytest.raises(ValueError, match="callback_channel"):
        callback_config(SurveySettings(callback_enabled=True, callback_channel="PJSIP/trunk"))
    assert callback_config(SurveySettings(callback_channel="PJSIP/{number}@t")).channel == "PJSIP/{number}@t"
