"""``qmon demo`` run for real (in-process, 40x faster than life): a busy call center from its first minutes.

One run of ~14 s real (~8 simulated minutes) is checked for: every outcome, calls per queue per minute, the
post-call surveys answered over real FastAGI and stored (served by ``/api/v1/surveys`` behind the token), and the
demo's own AMI stream replayed by qmon equal to the simulator's ground truth, call by call.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sqlite3
import urllib.error
import urllib.request
from collections import Counter
from dataclasses import replace
from pathlib import Path
from typing import Any

from monitor.ami.files import read_capture
from monitor.ami.wire import first
from monitor.cli import demo
from monitor.replay import replay_messages
from tests.support.demo_truth import ALWAYS_IN, assert_everything_shown, check_call
from tests.support.helpers import FIXTURES, free_port

SPEED, REAL_S, TOKEN = 40.0, 14.0, "demo-secret-token"


def _get(url: str, token: str | None = None) -> tuple[int, str]:
    req = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
    try:
        with urllib.request.urlopen(req, timeout=3) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


async def _probe(base: str, seen: dict[str, Any]) -> None:
    """While the demo runs: the API wants the token; surveys and CSAT metrics fill up."""
    loop = asyncio.get_running_loop()
    await asyncio.sleep(REAL_S - 3.0)
    seen["anonymous"] = await loop.run_in_executor(None, _get, f"{base}/api/v1/surveys")
    seen["surveys"] = await loop.run_in_executor(None, _get, f"{base}/api/v1/surveys?limit=1000", TOKEN)
    seen["metrics"] = await loop.run_in_executor(None, _get, f"{base}/metrics", TOKEN)


def _survey_tail(msgs: list[dict[str, str]], uid: str) -> list[str]:
    """The queue channel's events from QUEUESTATUS on: the survey as the AMI shows it."""
    out: list[str] = []
    for m in msgs:
        if m.get("Uniqueid") != uid or (not out and m.get("Variable") != "QUEUESTATUS"):
            continue
        e = m["Event"]
        out.append(f"VarSet {m['Variable']}" if e == "VarSet" else f"Newexten {m['Application']}"
                   if e == "Newexten" else e)
    return out


def _recorded_tail(name: str) -> list[str]:
    msgs = [{k: first(v) or "" for k, v in h.items()} for h, _ in read_capture(FIXTURES / "live22" / name)]
    msgs = [m for m in msgs if "Event" in m]
    uid = next(m["Uniqueid"] for m in msgs if m.get("Application") == "AGI")
    return _survey_tail(msgs, uid)


def _run(tmp_path: Path) -> tuple[demo.DemoParts, dict[str, Any], Path]:
    http = free_port()
    db = tmp_path / "demo.db"
    settings = replace(demo.demo_settings(0, http, str(db), token=TOKEN, survey_port=free_port()),
                       status_interval_s=0)
    args = argparse.Namespace(seed=11, speed=SPEED, port_ami=0, duration=REAL_S, no_daemon=False)
    parts: list[demo.DemoParts] = []
    seen: dict[str, Any] = {}

    async def main() -> int:
        probe = asyncio.create_task(_probe(f"http://127.0.0.1:{http}", seen))
        try:
            return await demo._main(args, settings, record=True, on_start=parts.append)
        finally:
            await probe

    assert asyncio.run(main()) == 0
    return parts[0], seen, db


def test_demo_busy_true_and_surveyed(tmp_path: Path) -> None:
    parts, seen, db = _run(tmp_path)
    sim, sent = parts.sim, parts.server.sent
    assert sent is not None
    last = float(sent[-1]["Timestamp"])
    minutes = (last - sim.start) / 60
    assert minutes > 5.5, minutes

    # The demo's own AMI, replayed by qmon, is the simulator's ground truth, call by call.
    res = replay_messages([(h, None) for h in sent])
    assert res.skipped == {}
    by_id = {r.call_id: r for r in res.records}
    done = [i for i in sim.intents if i.end is not None and i.end <= last]
    assert len(done) > 60, len(done)
    for intent in done:
        check_call(intent, by_id[sim.live.resolve(intent.uid)], agi=True)

    # Every outcome within the first minutes; several calls a minute in every queue.
    first = [i for i in done if i.start < sim.start + 300]
    assert_everything_shown(first)
    per_queue = Counter(i.segments[0].queue for i in sim.intents if i.start < last)
    assert all(per_queue[q] / minutes >= 3 for q in ("support", "sales", "billing")), (per_queue, minutes)
    assert len([i for i in sim.intents if i.start < sim.start + 30]) >= 8
    paused = {h["PausedReason"] for h in sent if h["Event"] == "QueueMemberPause" and h["Paused"] == "1"}
    members = Counter(h["Event"] for h in sent if h["Event"].startswith("QueueMember"))
    assert paused and members["QueueMemberRemoved"] and members["QueueMemberAdded"] > ALWAYS_IN, (paused, members)

    # The surveys went over FastAGI and qmon stored each one as the conversation ended.
    talked = [i for i in done if i.agi is not None and i.agi.agistatus in ("SUCCESS", "HANGUP")]
    assert len(talked) > 20, len(talked)
    with sqlite3.connect(db) as con:
        rows = {u: (status, csat, source) for u, status, csat, source in con.execute(
            "select uniqueid, status, csat, source from survey_results")}
    for i in talked:
        assert i.agi is not None
        status, csat = i.agi.result
        want = (status or "hangup", csat, "agi")
        assert rows[sim.live.resolve(i.uid)] == want, (i.caller, i.agi.keys, i.agi.commands)
        if status == "completed":
            assert str(csat) in i.agi.keys[-1]  # what the caller pressed
    kinds = Counter(i.agi.result[0] or "hangup" for i in talked if i.agi)
    assert {"completed", "hangup"} <= set(kinds), kinds
    # ... and on the AMI the survey looks as beside a real Asterisk 22 (the caller pressed 4 / hung up).
    for status, recording in (("completed", "a_csat4.qmon.ami"), ("", "b_hangup_during_prompt.qmon.ami")):
        call = next(i for i in talked if i.agi and i.agi.result[0] == status and i.agi.keys[0] != "9")
        assert _survey_tail(sent, sim.live.resolve(call.uid)) == _recorded_tail(recording), recording

    # /api/v1/surveys is served (not 404) and honours QMON_HTTP_TOKEN; the CSAT metrics filled up.
    assert seen["anonymous"][0] == 401
    code, body = seen["surveys"]
    assert code == 200 and json.loads(body)["count"] > 5, body[:300]
    csat = [line for line in seen["metrics"][1].splitlines()
            if line.startswith("qmon_csat_responses_total") and not line.endswith(" 0.0")]
    assert csat, seen["metrics"][1][:500]
