"""The supervisor's adapters over real HTTP: the per-agent series and ``/api/v1/agents`` say what the core's
AgentBoard says on the pause_reasons recording; ``/api/v1/callbacks`` (JSON and CSV) lists repeat_caller's
abandoned caller, which then closes and lands in the time-to-callback histogram; the owed gauges follow."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from monitor.ami.files import read_capture
from monitor.core.agents import AGENT_STATES, TIME_STATES
from monitor.core.ingest import Ingest
from monitor.core.records import CallRecord, Segment
from monitor.core.tracker import CallTracker, TrackerConfig
from monitor.web.metrics import QmonMetrics
from monitor.web.server import ApiContext, LivePbx, make_app
from monitor.web.supervisor_api import CSV_COLUMNS, _cell
from tests.support.factcheck import FIXTURES

REASONS = ("break", "lunch")


class Clocked:
    """An Ingest fed a capture with the daemon clock = the event's Timestamp; ``now`` is read by metrics and API."""

    def __init__(self, config: TrackerConfig | None = None) -> None:
        self.ingest = Ingest(CallTracker(config))
        self.now = 0.0
        self.metrics = QmonMetrics(CollectorRegistry(), queues=("support", "sales"), clock=lambda: self.now)
        self.ingest.sinks.append(self.metrics.sink("default"))
        self.metrics.add_pbx("default", self.ingest)

    def feed(self, messages: Any) -> None:
        for headers, _ in messages:
            ts = headers.get("Timestamp")
            if isinstance(ts, str):
                self.now = float(ts)
            self.ingest.feed(headers, self.now)

    def app_client(self) -> TestClient:  # type: ignore[type-arg]
        ctx = ApiContext(self.metrics, {"default": LivePbx(self.ingest)}, clock=lambda: self.now)
        return TestClient(TestServer(make_app(ctx)))

    def scrape(self) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        """Every sample of the exposition: (name, sorted labels) -> value."""
        out = {}
        for fam in text_string_to_metric_families(self.metrics.expose().decode()):
            for s in fam.samples:
                out[(s.name, tuple(sorted(s.labels.items())))] = s.value
        return out


def sample(got: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str) -> float | None:
    return got.get((name, tuple(sorted({"pbx": "default", **labels}.items()))))


@pytest.fixture
def paused() -> Iterator[Clocked]:
    c = Clocked(TrackerConfig(pause_reasons=REASONS))
    c.feed(read_capture(FIXTURES / "agents" / "pause_reasons.ami"))
    c.now += 7.5  # open intervals (the session, a state) are counted up to the latest tick
    c.ingest.tick(c.now)
    yield c


def test_agent_series_equal_the_agent_board(paused: Clocked) -> None:
    got = paused.scrape()
    at = paused.ingest.pbx_now(paused.now)
    assert paused.ingest.tracker.agents.floor == at  # the tick: read up to now
    rows = paused.ingest.tracker.agents.snapshot(at)
    assert {(r.queue, r.agent) for r in rows} == {("support", "agent1"), ("support", "agent2"), ("sales", "agent2")}
    for r in rows:
        k = {"queue": r.queue, "agent": r.agent}
        for s in TIME_STATES:
            assert sample(got, "qmon_agent_state_seconds_total", state=s, **k) == pytest.approx(r.state_s[s])
        # every capped label is a series (configured reasons, other, none), raw reasons never are
        for label in (*REASONS, "other", "none"):
            want = r.paused_by_label.get(label, 0.0)
            assert sample(got, "qmon_agent_paused_seconds_total", reason=label, **k) == pytest.approx(want)
        assert not [key for key in got if key[0] == "qmon_agent_paused_seconds_total"
                    and dict(key[1])["reason"] not in (*REASONS, "other", "none")]
        for name, want in (("qmon_agent_talk_seconds_total", r.talk_s), ("qmon_agent_wrapup_seconds_total",
                           r.wrapup_s), ("qmon_agent_calls_total", r.answered),
                           ("qmon_agent_completed_calls_total", r.completed),
                           ("qmon_agent_ring_no_answer_total", r.ring_no_answer),
                           ("qmon_agent_state_since_timestamp_seconds", r.since),
                           ("qmon_agent_occupancy", r.occupancy)):
            assert sample(got, name, **k) == pytest.approx(want), name
        assert [s for s in AGENT_STATES if sample(got, "qmon_agent_state", state=s, **k) == 1.0] == [r.state]
        assert r.since is not None
        assert sample(got, "qmon_agent_state_duration_seconds", **k) == pytest.approx(at - r.since)
    # The recording's own figures (facts.json): agent2 paused for lunch on every queue (PAUSEALL), 6 s.
    lunch = sample(got, "qmon_agent_paused_seconds_total", queue="sales", agent="agent2", reason="lunch")
    assert lunch == pytest.approx(6.0, abs=0.1)
    # Collecting changes nothing: a second scrape at the same now is the same.
    assert paused.scrape() == got


async def test_agents_api_returns_the_board(paused: Clocked) -> None:
    async with paused.app_client() as client:
        body = await (await client.get("/api/v1/agents")).json()
        only = await (await client.get("/api/v1/agents?queue=support&agent=agent1")).json()
    board = paused.ingest.tracker.agents
    at = paused.ingest.pbx_now(paused.now)
    want = [*board.snapshot(at), *board.agents(at)]
    assert body["count"] == len(want) == len(body["agents"])
    for row, r in zip(body["agents"], want, strict=True):
        assert (row["queue"], row["agent"], row["state"], row["since_ts"]) == (r.queue, r.agent, r.state, r.since)
        assert row["paused_by_reason_s"] == {k: round(v, 3) for k, v in r.paused_by_reason.items()}
        assert row["paused_by_label_s"] == {k: round(v, 3) for k, v in r.paused_by_label.items()}
        assert row["state_s"] == {k: round(v, 3) for k, v in r.state_s.items()}
        assert (row["talk_s"], row["answered"], row["completed"], row["ring_no_answer"]) == (
            round(r.talk_s, 3), r.answered, r.completed, r.ring_no_answer)
        assert row["occupancy"] == (None if r.occupancy is None else round(r.occupancy, 3))
    # AMI's reason is shown where queue_log has none (ADDMEMBER|PAUSED): the raw text is in the API
    assert any("login-pause" in row["paused_by_reason_s"] for row in body["agents"])
    assert {row["queue"] for row in body["agents"]} == {"support", "sales", "*"}
    assert [(r["queue"], r["agent"]) for r in only["agents"]] == [("support", "agent1")]


def test_a_late_event_never_takes_back_exported_seconds() -> None:
    """An event stamped before what a scrape already showed (AMI latency) counts from the latest tick: every agent
    counter only grows, so Prometheus never sees a false counter reset."""
    c = Clocked()
    t0 = 1_800_000_000.0

    def member(event: str, ts: float, **extra: str) -> dict[str, str]:
        return {"Event": event, "Queue": "support", "MemberName": "alice", "Interface": "PJSIP/1001",
                "StateInterface": "PJSIP/1001", "Status": "1", "Paused": "0", "Timestamp": repr(ts), **extra}

    c.ingest.feed(member("QueueMemberAdded", t0), t0)
    c.now = t0 + 10.0
    c.ingest.tick(c.now)
    first = c.scrape()
    assert sample(first, "qmon_agent_state_seconds_total", queue="support", agent="alice",
                  state="available") == pytest.approx(10.0)
    # Stamped t0 + 5 but received at t0 + 10.5: placed at the floor (t0 + 10), not 5 s back.
    c.ingest.feed(member("QueueMemberPause", t0 + 5.0, Paused="1", PausedReason="break"), t0 + 10.5)
    c.now = t0 + 11.0
    second = c.scrape()
    c.now = t0 + 20.0
    c.ingest.tick(c.now)
    third = c.scrape()
    for name in ("qmon_agent_state_seconds_total", "qmon_agent_paused_seconds_total"):
        for key in first:
            if key[0] == name:
                assert first[key] <= second[key] <= third[key], (key, first[key], second[key], third[key])
    assert sample(third, "qmon_agent_state_seconds_total", queue="support", agent="alice",
                  state="available") == pytest.approx(10.0)
    # pbx clock now t0 + 14.5 (the late event's offset): paused from the floor t0 + 10
    assert sample(third, "qmon_agent_paused_seconds_total", queue="support", agent="alice",
                  reason="other") == pytest.approx(4.5)


def _repeat_caller_halves() -> tuple[list[Any], list[Any]]:
    """repeat_caller's messages up to the hang-up before its third call's join, and the rest."""
    msgs = list(read_capture(FIXTURES / "repeat_caller.ami"))
    joins = [i for i, (h, _) in enumerate(msgs) if h.get("Event") == "QueueCallerJoin"]
    cut = max(i for i, (h, _) in enumerate(msgs[:joins[2]]) if h.get("Event") == "Hangup") + 1
    return msgs[:cut], msgs[cut:]


async def test_owed_callback_listed_as_json_and_csv_then_closed() -> None:
    first, rest = _repeat_caller_halves()
    c = Clocked()
    c.feed(first)
    c.now += 60.0
    c.ingest.tick(c.now)  # past the late-event grace: the abandoned call is final
    [owed] = c.ingest.tracker.owed.open()
    async with c.app_client() as client:
        body = await (await client.get("/api/v1/callbacks?state=open")).json()
        r = await client.get("/api/v1/callbacks", headers={"Accept": "text/csv"})
        text = await r.text()
        assert r.content_type == "text/csv" and r.headers["Cache-Control"] == "no-store"
        assert r.headers["X-Total-Count"] == "1"
        assert (await client.get("/api/v1/callbacks?format=csv")).content_type == "text/csv"
        assert (await client.get("/api/v1/callbacks?format=json",
                                 headers={"Accept": "text/csv"})).content_type == "application/json"
    [row] = body["callbacks"]
    assert body["count"] == 1 and body["state"] == "open"
    assert (row["caller"], row["queue"], row["outcome"], row["attempts"]) == ("5551010", "support",
                                                                              "abandoned_short", 1)
    assert row["owed_since_ts"] == owed.owed_since_ts and row["wait_s"] == round(owed.wait_s, 3)
    assert row["age_s"] == pytest.approx(c.ingest.pbx_now(c.now) - owed.owed_since_ts, abs=1e-3)
    [line] = list(csv.DictReader(io.StringIO(text)))
    assert tuple(line) == CSV_COLUMNS
    assert (line["caller"], line["queue"], line["outcome"], line["attempts"], line["voicemail"]) == (
        "5551010", "support", "abandoned_short", "1", "no")
    assert line["time"].endswith("Z") and float(line["wait_s"]) == row["wait_s"]
    got = c.scrape()
    assert sample(got, "qmon_owed_callbacks", queue="support") == 1
    assert sample(got, "qmon_owed_callback_oldest_age_seconds", queue="support") == pytest.approx(row["age_s"],
                                                                                                  abs=1e-3)
    assert sample(got, "qmon_owed_callbacks_opened_total", queue="support") == 1
    assert sample(got, "qmon_owed_time_to_callback_seconds_count", queue="support", closed_by="inbound") == 0
    # The same number calls again and is answered: the callback closes.
    c.feed(rest)
    c.now += 60.0
    c.ingest.tick(c.now)
    async with c.app_client() as client:
        body = await (await client.get("/api/v1/callbacks")).json()
    assert body == {"state": "open", "count": 0, "callbacks": []}
    got = c.scrape()
    assert sample(got, "qmon_owed_callbacks", queue="support") == 0
    assert sample(got, "qmon_owed_callback_oldest_age_seconds", queue="support") == 0
    assert sample(got, "qmon_owed_callbacks_closed_total", queue="support", closed_by="inbound") == 1
    assert sample(got, "qmon_owed_time_to_callback_seconds_count", queue="support", closed_by="inbound") == 1
    ttc = sample(got, "qmon_owed_time_to_callback_seconds_sum", queue="support", closed_by="inbound")
    assert ttc is not None and 0 < ttc < 3600
    # Every call once, by the queue it ended in (repeat_caller: three calls, all in support).
    assert sample(got, "qmon_calls_by_last_queue_total", queue="support") == 3


def test_withheld_and_missed_counters() -> None:
    """A withheld number is counted apart; a call not reached within the horizon is missed (as of now)."""
    c = Clocked(TrackerConfig(owed_horizon_s=100.0))
    owed = c.ingest.tracker.owed

    def call(linkedid: str, caller: str | None, end: float) -> CallRecord:
        seg = Segment("support", True, end - 10, end, 1, 1, "abandoned", 10.0)
        return CallRecord(linkedid, linkedid, caller, "", end - 10, end, (seg,), outcome="abandoned")

    owed.call_closed(call("a", None, 1000.0))
    owed.call_closed(call("b", "5550001", 1000.0))
    c.now = 1050.0 - c.ingest.tracker.state.pbx_offset
    got = c.scrape()
    assert sample(got, "qmon_owed_withheld_calls_total", queue="support") == 1
    assert sample(got, "qmon_owed_callbacks_missed_total", queue="support") == 0
    c.now += 60.0
    got = c.scrape()
    assert sample(got, "qmon_owed_callbacks_missed_total", queue="support") == 1
    assert sample(got, "qmon_owed_callback_oldest_age_seconds", queue="support") == pytest.approx(110.0)


@pytest.mark.parametrize(("value", "cell"), [
    ("+15551234567", "+15551234567"), ("=HYPERLINK(\"x\")", "'=HYPERLINK(\"x\")"), ("@SUM(A1)", "'@SUM(A1)"),
    ("-1+1", "'-1+1"), ("-5.5", "-5.5"), ("support", "support"), (None, ""),
])
def test_csv_cells_cannot_run_as_formulas(value: str | None, cell: str) -> None:
    assert _cell(value) == cell

