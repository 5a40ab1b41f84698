"""Agent measures from AMI (AgentBoard) equal what Asterisk's queue_log says, on real recordings; wrap-up,
pause labels, occupancy and state on small built streams."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from monitor.ami.files import read_capture
from monitor.core.agents import AgentBoard, AgentRow, pause_label, window
from monitor.core.devices import channel_keys, device_keys
from monitor.core.events import MemberEvent
from monitor.core.normalize import normalize
from monitor.core.tracker import CallTracker, TrackerConfig
from monitor.replay import replay_messages
from tests.support.builders import CallBuilder
from tests.support.factcheck import FIXTURES
from tests.support.queue_log_agents import agents_from_queue_log, last_time

AGENTS = FIXTURES / "agents"
# (capture dir, scenario): Asterisk 22 at the top, Asterisk 20 under ast20/.
RECORDINGS = [
    (AGENTS, "pause_reasons"), (AGENTS / "ast20", "pause_reasons"),
    (FIXTURES, "concurrent"), (AGENTS / "ast20", "concurrent"),
    (FIXTURES, "member_changes"), (AGENTS / "ast20", "member_changes"),
    (FIXTURES, "ring_no_answer"), (AGENTS / "ast20", "ring_no_answer"),
]


def board_after(path: Path, config: TrackerConfig | None = None) -> CallTracker:
    """A tracker that replayed one capture."""
    tr = CallTracker(config)
    replay_messages(read_capture(path), tracker=tr)
    return tr


def rows(tr: CallTracker, now: float) -> dict[tuple[str, str], AgentRow]:
    """Snapshot rows by (queue, agent)."""
    return {(r.queue, r.agent): r for r in tr.agents.snapshot(now)}


@pytest.mark.parametrize(("where", "scenario"), RECORDINGS, ids=lambda x: x if isinstance(x, str) else x.name)
def test_agent_measures_equal_queue_log(where: Path, scenario: str) -> None:
    ql = where / f"{scenario}.queue_log"
    end = last_time(ql) + 1.0  # after every event of the capture
    expected = agents_from_queue_log(ql, end)
    got = rows(board_after(where / f"{scenario}.ami"), end)
    assert set(got) == set(expected)
    for key, want in expected.items():
        r = got[key]
        # queue_log has whole seconds: each interval end may be up to 1 s off the AMI Timestamp.
        assert r.logged_in_s == pytest.approx(want.logged_in_s, abs=1.0), key
        assert (r.answered, r.completed, r.ring_no_answer) == (want.answered, want.completed, want.ring_no_answer)
        assert r.talk_s == want.talk_s  # AgentComplete TalkTime = COMPLETE* talktime, exactly
        # AMI names the reason queue_log leaves empty on ADDMEMBER|PAUSED (login-pause): AMI's is shown.
        ami_reasons = {("login-pause" if k == "" and scenario == "pause_reasons" else k): v
                       for k, v in want.paused_by_reason.items()}
        assert set(r.paused_by_reason) == set(ami_reasons), key
        for reason, secs in ami_reasons.items():
            assert r.paused_by_reason[reason] == pytest.approx(secs, abs=1.0), (key, reason)
        assert r.wrapup_s == 0.0  # Wrapuptime 0 in every recording: no after-call time in app_queue
        assert sum(r.state_s.values()) == pytest.approx(r.logged_in_s, abs=1e-6)


@pytest.mark.parametrize("where", [AGENTS, AGENTS / "ast20"], ids=["ast22", "ast20"])
def test_pause_reasons_facts(where: Path) -> None:
    """facts.json ``pauses``: seconds per agent and reason (summed over queues, as the facts file does)."""
    import json

    facts = json.loads((where / "pause_reasons.facts.json").read_text())["pauses"]
    tr = board_after(where / "pause_reasons.ami")
    end = last_time(where / "pause_reasons.queue_log") + 1.0
    per_agent: dict[str, dict[str, float]] = {}
    for r in tr.agents.snapshot(end):
        for reason, secs in r.paused_by_reason.items():
            per_agent.setdefault(r.agent, {})
            per_agent[r.agent][reason] = per_agent[r.agent].get(reason, 0.0) + secs
    want = {agent: {("login-pause" if k == "(none)" else k): v for k, v in reasons.items()}
            for agent, reasons in facts["pause_s_by_agent_reason"].items()}
    assert set(per_agent) == set(want)
    for agent, reasons in want.items():
        assert set(per_agent[agent]) == set(reasons)
        for reason, secs in reasons.items():
            assert per_agent[agent][reason] == pytest.approx(secs, abs=1.0), (agent, reason)
    # The current state at the end: agent1 unpaused ("back") and available since then, agent2 available.
    now = rows(tr, end)
    assert now[("support", "agent1")].state == "available"
    assert now[("support", "agent1")].since == pytest.approx(end - 1.0, abs=1.0)  # the UNPAUSE|back line


def test_pause_labels_are_capped_raw_reason_kept() -> None:
    tr = board_after(AGENTS / "pause_reasons.ami", TrackerConfig(pause_reasons=("break", "lunch")))
    end = last_time(AGENTS / "pause_reasons.queue_log") + 1.0
    r = rows(tr, end)[("support", "agent1")]
    assert set(r.paused_by_reason) == {"after-call-work", "break"}
    assert set(r.paused_by_label) == {"other", "break"}
    assert r.paused_by_label["other"] == r.paused_by_reason["after-call-work"]
    assert pause_label("", ("x",)) == "none" and pause_label("Lunch ", ("Lunch",)) == "Lunch"


def _member(event: str, ts: float, member: str = "alice", queue: str = "support", **extra: Any) -> dict[str, Any]:
    h = {"Event": event, "Timestamp": f"{ts:.6f}", "Queue": queue, "MemberName": member,
         "Interface": f"PJSIP/{member}", "StateInterface": f"PJSIP/{member}", "Status": "1", "Paused": "0",
         "PausedReason": "", "InCall": "0", "LoginTime": str(int(ts)), "Wrapuptime": "0"}
    h.update({k: str(v) for k, v in extra.items()})
    return h


def _feed(tr: CallTracker, msgs: list[dict[str, Any]]) -> None:
    from monitor.core.ingest import Ingest

    ing = Ingest(tr)
    for m in sorted(msgs, key=lambda h: float(h["Timestamp"])):
        ing.feed(m, float(m["Timestamp"]))


def test_wrapup_from_the_members_wrapuptime_cut_by_the_next_call() -> None:
    tr = CallTracker()
    t0 = 1_000_000.0
    a, b = CallBuilder("1.1", num="5551001"), CallBuilder("2.1", num="5551002")
    # Call 1: answered at t0+3, talk 30 s -> AgentComplete at t0+33; wrapuptime 10 s -> wrap-up to t0+43.
    # Call 2: answered at t0+40 (hold 3 from t0+37): the wrap-up is cut at t0+40 (7 s).
    _feed(tr, [_member("QueueMemberAdded", t0 - 100, Wrapuptime=10), *a.answered(t0, talk=30)])
    during = rows(tr, t0 + 35)[("support", "alice")]
    assert (during.state, during.since, during.wrapup_s) == ("wrapup", t0 + 33, 2.0)
    _feed(tr, b.answered(t0 + 37, talk=20))
    r = rows(tr, t0 + 100)[("support", "alice")]
    assert r.wrapup_s == pytest.approx(7 + 10)  # 7 s cut short, then a full 10 s after call 2 (ends t0+70)
    assert r.talk_s == 50 and r.answered == 2 and r.completed == 2
    assert r.aht_s == pytest.approx((50 + 17) / 2)
    assert (r.state, r.since) == ("available", t0 + 70)
    # occupancy = (in_call + wrapup) / (logged in - paused while idle): 200 s logged in, nothing paused.
    assert r.occupancy == pytest.approx((30 + 20 + 17) / 200)


def test_queue_wrapuptime_from_config_when_the_member_says_0() -> None:
    tr = CallTracker(TrackerConfig(wrapup_s=(("support", 15.0),)))
    t0 = 1_000_000.0
    _feed(tr, [_member("QueueMemberAdded", t0 - 10), *CallBuilder("1.1").answered(t0, talk=30)])
    assert rows(tr, t0 + 100)[("support", "alice")].wrapup_s == 15.0


def test_pause_during_a_call_counts_as_call_then_pause_and_occupancy_stays_within_one() -> None:
    tr = CallTracker()
    t0 = 1_000_000.0
    call = CallBuilder("1.1").answered(t0, talk=30)  # connect t0+3, complete t0+33
    _feed(tr, [_member("QueueMemberAdded", t0 - 97), *call,
               _member("QueueMemberPause", t0 + 10, Paused=1, PausedReason="acw"),
               _member("QueueMemberPause", t0 + 53, Paused=0, PausedReason="")])
    r = rows(tr, t0 + 103)[("support", "alice")]
    assert r.paused_by_reason == {"acw": 43.0}  # queue_log's view: PAUSE .. UNPAUSE
    assert r.state_s["in_call"] == 30.0 and r.state_s["paused"] == 20.0  # exclusive: the call wins
    assert r.occupancy == pytest.approx(30 / (200 - 20))
    assert r.logged_in_s == 200.0


def test_first_sight_uses_login_time_and_last_pause() -> None:
    """Started mid-shift: a status list entry tells when the member logged in and paused."""
    tr = CallTracker()
    h = _member("QueueMember", 5000.0, Paused=1, PausedReason="lunch", LoginTime=1000, LastPause=4000)
    h.pop("Timestamp")
    event = normalize(h)
    assert isinstance(event, MemberEvent)
    tr.feed(event, 5000.0)
    r = rows(tr, 6000.0)[("support", "alice")]
    assert r.logged_in_s == 5000.0 and r.paused_by_reason == {"lunch": 2000.0}
    assert (r.state, r.since) == ("paused", 4000.0)


def test_unavailable_device_and_logout() -> None:
    tr = CallTracker()
    _feed(tr, [_member("QueueMemberAdded", 100.0), _member("QueueMemberStatus", 150.0, Status=5),
               _member("QueueMemberStatus", 170.0, Status=1), _member("QueueMemberRemoved", 200.0)])
    r = rows(tr, 300.0)[("support", "alice")]
    assert r.state_s["unavailable"] == 20.0 and r.state_s["available"] == 80.0
    assert (r.state, r.since, r.logged_in_s) == ("logged_out", 200.0, 100.0)


def test_window_is_the_growth_between_two_snapshots() -> None:
    b = AgentBoard()
    b.login("q", "a", 0.0)
    b.pause("q", "a", "break", 50.0)
    first = b.snapshot(60.0)
    b.unpause("q", "a", 80.0)
    w = {r.agent: r for r in window(b.snapshot(100.0), first)}["a"]
    assert (w.logged_in_s, w.paused_by_reason) == (40.0, {"break": 20.0})


def test_device_keys_match_member_channels() -> None:
    assert channel_keys("PJSIP/1001-0000002a") & device_keys("PJSIP/1001")
    assert channel_keys("PJSIP/1001-0000002a") & device_keys("Local/1001@from-queue/n")
    assert channel_keys("PJSIP/1001-0000002a") & device_keys("hint:1001@ext-local")
    assert channel_keys("Local/agent1@lab-agents-00000001;2") & device_keys("Local/agent1@lab-agents/n")
    assert not channel_keys("PJSIP/trunk-0000002b") & device_keys("PJSIP/1001")


def test_all_queues_row_paused_only_when_paused_everywhere() -> None:
    """pause_reasons: agent2 is in support and sales; only the PAUSEALL lunch stops it taking calls anywhere."""
    tr = board_after(AGENTS / "pause_reasons.ami")
    end = last_time(AGENTS / "pause_reasons.queue_log") + 1.0
    agent2 = {r.agent: r for r in tr.agents.agents(end)}["agent2"]
    assert agent2.queue == "*"
    assert agent2.paused_by_reason["lunch"] == pytest.approx(6.0, abs=1.0)
    assert "break" not in agent2.paused_by_reason  # paused in support, still available in sales
    assert agent2.paused_s == pytest.approx(6.0, abs=1.0)
    assert agent2.logged_in_s == pytest.approx(end - 1796032526, abs=1.0)
    assert (agent2.answered, agent2.talk_s, agent2.state) == (1, 6.0, "available")
    agent1 = {r.agent: r for r in tr.agents.agents(end)}["agent1"]
    # agent1 is only in support: its all-queues row is its support row.
    assert agent1.logged_in_s == rows(tr, end)[("support", "agent1")].logged_in_s


@pytest.mark.parametrize("complete", [True, False])
def test_resync_logs_out_members_the_whole_queue_status_no_longer_lists(complete: bool) -> None:
    """After a gap, QueueStatus lists alice only: bob left during the gap (only if the list was whole)."""
    from monitor.core.ingest import Ingest

    tr = CallTracker()
    ing = Ingest(tr)
    for m in (_member("QueueMemberAdded", 100.0), _member("QueueMemberAdded", 100.0, member="bob")):
        ing.feed(m, 100.0)
    tr.connection_lost(150.0)
    tr.resync_begin()
    listed = _member("QueueMember", 200.0, LoginTime=100)
    listed.pop("Timestamp")
    ing.feed(listed, 200.0)
    if complete:
        ing.feed({"Event": "QueueStatusComplete", "EventList": "Complete", "ListItems": "2"}, 200.0)
    tr.resync_end(200.0)
    r = rows(tr, 300.0)
    assert r[("support", "alice")].state == "available" and r[("support", "alice")].logged_in_s == 200.0
    bob = r[("support", "bob")]
    assert (bob.state, bob.logged_in_s) == (("logged_out", 100.0) if complete else ("available", 200.0))


def test_a_queue_status_outside_a_resync_logs_nobody_out() -> None:
    """Another session's QueueStatus (no resync running) lists alice only: bob stays logged in."""
    from monitor.core.ingest import Ingest

    tr = CallTracker()
    ing = Ingest(tr)
    for m in (_member("QueueMemberAdded", 100.0), _member("QueueMemberAdded", 100.0, member="bob")):
        ing.feed(m, 100.0)
    listed = _member("QueueMember", 200.0, LoginTime=100)
    listed.pop("Timestamp")
    ing.feed(listed, 200.0)
    ing.feed({"Event": "QueueStatusComplete", "EventList": "Complete", "ListItems": "1"}, 200.0)
    assert rows(tr, 300.0)[("support", "bob")].state == "available"


def test_interface_keys_are_made_once_per_interface_at_10_000_members() -> None:
    """The cache of a member's device keys holds every interface of the largest call center the bench measures
    (10 006 members): bounded below that, a round of member events over them all evicted each entry before its
    interface came back, so every call missed (and cost more than no cache at all)."""
    from monitor.core.devices import interface_keys

    interfaces = [f"PJSIP/{10_000 + i}" for i in range(10_006)]
    for iface in interfaces:  # the first round: each made once
        interface_keys(iface)
    before = interface_keys.cache_info()
    for iface in interfaces:  # the next round of member events names them all again
        assert interface_keys(iface) == tuple(device_keys(iface))
    after = interface_keys.cache_info()
    assert (after.hits - before.hits, after.misses - before.misses) == (10_006, 0)
