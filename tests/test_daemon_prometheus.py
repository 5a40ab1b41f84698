"""A real Prometheus loads prometheus/rules.yml and alerts.yml and scrapes the daemon fed transcripts over real AMI
TCP: every recording rule equals the ``qmon replay`` report of the same transcripts, every rule evaluates without
error, and every expression of every Grafana dashboard panel (template variables substituted as Grafana does)
parses and returns data. Also ``promtool check metrics`` on a real scrape."""

from __future__ import annotations

import asyncio
import json
import math
import re
import shutil
import time
from asyncio.subprocess import DEVNULL, PIPE, STDOUT
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml

from monitor.ami.files import read_capture
from monitor.core.ingest import Ingest
from monitor.core.owed import OwedStats
from monitor.core.records import CallRecord, Note, OwedNote
from monitor.core.tracker import CallTracker
from monitor.core.vocab import VOICEMAIL_REASONS
from monitor.replay import replay_files
from monitor.web.metrics import WAIT_BUCKETS
from tests.support.amiserver import AmiTestServer, state_at, transcript_messages
from tests.support.daemon import FIXTURES, daemon_settings, running
from tests.support.helpers import free_port, until

ROOT = Path(__file__).resolve().parent.parent
RULE_FILES = [ROOT / "prometheus" / "rules.yml", ROOT / "prometheus" / "alerts.yml"]
DASHBOARDS = sorted((ROOT / "grafana" / "dashboards").glob("*.json"))
SL_THRESHOLD_S = 20.0  # the le="20.0" bucket of rules.yml
BROKEN_EVENT = {"Event": "QueueCallerJoin", "Privilege": "agent,all"}  # no Uniqueid, no Queue: skipped
SPAN_S = 8.0  # seconds of samples before the rules are read (bounds increase()'s extrapolation, see collect())
#: Grafana's built-in variables for an instant query at the end of the run ($__rate_interval: 4 x 15 s scrape).
GRAFANA_BUILTINS = {"__range": "1h", "__rate_interval": "1m", "__interval": "15s"}
#: In the recordings' own order (the PBX clock only moves forward, as live); member_changes adds logins, logouts and
#: a pause for the agent series. The daemon's clock starts a little before the first recording (see collect()).
SCENARIOS = ("repeat_caller", "member_changes", "overflow", "concurrent")
#: Agent counters whose growth the agent rules are checked against (they grow with time, see agent_figures()).
AGENT_RAW = ("qmon_agent_state_seconds_total", "qmon_agent_paused_seconds_total", "qmon_agent_talk_seconds_total",
             "qmon_agent_wrapup_seconds_total", "qmon_agent_completed_calls_total")
pytestmark = pytest.mark.skipif(shutil.which("prometheus") is None or shutil.which("promtool") is None,
                                reason="Debian package prometheus not installed")


@dataclass
class Target:
    """One query of one dashboard panel, as Grafana would send it, and what Prometheus answered."""

    where: str
    expr: str
    rows: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class Run:
    """Everything one Prometheus run produced."""

    check_metrics: tuple[int, str]
    rules: dict[str, list[dict[str, Any]]]
    rule_health: list[dict[str, Any]]
    variables: dict[str, list[str]]
    targets: list[Target]
    raw: dict[str, list[dict[str, Any]]]  # AGENT_RAW name -> its series' samples over the rules' hour


def record_names() -> list[str]:
    return [r["record"] for g in yaml.safe_load(RULE_FILES[0].read_text())["groups"] for r in g["rules"]
            if "record" in r]


async def prom(session: aiohttp.ClientSession, base: str, query: str, at: float | None = None) -> list[Any]:
    params = {"query": query} | ({"time": repr(at)} if at is not None else {})
    async with session.get(f"{base}/api/v1/query", params=params) as r:
        body = await r.json()
    assert body["status"] == "success", (query, body)
    return list(body["data"]["result"])


async def poll(what: str, limit_s: float, probe: Any) -> Any:
    """Await ``probe()`` until it returns something truthy (connection errors count as not yet)."""
    end = time.monotonic() + limit_s
    while time.monotonic() < end:
        try:
            got = await probe()
        except aiohttp.ClientError:
            got = None
        if got:
            return got
        await asyncio.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def substitute(expr: str, values: dict[str, str]) -> str:
    """Grafana's interpolation of ``$name`` / ``${name}`` (longest names first, so $__range is not $__r...)."""
    for name in sorted(values, key=len, reverse=True):
        expr = expr.replace("${" + name + "}", values[name]).replace("$" + name, values[name])
    assert "$" not in expr, expr
    return expr


async def dashboard_targets(http: aiohttp.ClientSession, base: str) -> tuple[dict[str, list[str]], list[Target]]:
    """Every panel target of every dashboard, with its query variables resolved the way Grafana does for "All"
    on a multi-value variable without allValue: a regex alternation of every value of ``label_values()``."""
    variables: dict[str, list[str]] = {}
    targets: list[Target] = []
    for path in DASHBOARDS:
        dash = json.loads(path.read_text())
        values = dict(GRAFANA_BUILTINS)
        for var in dash["templating"]["list"]:
            if var["type"] != "query":
                continue
            m = re.fullmatch(r"label_values\((.*),\s*(\w+)\)", var["query"]["query"])
            assert m, var
            selector = substitute(m[1], values)
            rows = await prom(http, base, f"group by ({m[2]}) ({selector})")
            found = sorted(row["metric"][m[2]] for row in rows)
            variables[f"{path.name} ${var['name']}"] = found
            values[var["name"]] = "(" + "|".join(re.escape(v) for v in found) + ")"
        for panel in dash["panels"]:
            for t in panel["targets"]:
                where = f"{path.name} #{panel['id']} {panel['title']!r} {t['refId']}"
                expr = substitute(t["expr"], values)
                targets.append(Target(where, expr, await prom(http, base, expr)))
    return variables, targets


async def collect(tmp: Path) -> Run:
    stream = AmiTestServer([m for s in SCENARIOS for m in transcript_messages(s)]).headers
    # Wrong secret first: the daemon keeps retrying while Prometheus records every queue series at 0. Then the
    # login's QueueStatus names the members (as Asterisk would: those of the transcripts) and Prometheus records
    # their series at 0 too; only then the transcripts stream. So increase() sees every series from a first
    # sample of 0 (no call is lost to a series born already counting).
    first_ts = min(float(str(h["Timestamp"])) for h in stream if "Timestamp" in h)
    state = state_at(stream, len(stream))
    # Where the test peer stamps its login answers with AmiState.clock (main's peer does, as Asterisk 22 does), they
    # are stamped before the stream, as live: otherwise the PBX clock would step back to the recordings' start and
    # the agent facts would be held at the floor (monitor.core.agents), counting no seconds.
    state.clock = first_ts - 300.0
    srv = await AmiTestServer([], secret="not-yet", state=state).start()
    prom_port = free_port()
    proc: asyncio.subprocess.Process | None = None
    # The daemon's clock (not Prometheus's) runs from 5 minutes before the first recorded event: the members its
    # login's QueueStatus lists are placed there on the PBX clock, and the recorded events follow in time, as live.
    shift = time.time() - (first_ts - 300.0)
    try:
        async with running(daemon_settings(tmp, srv.port), clock=lambda: time.time() - shift) as d, \
                aiohttp.ClientSession() as http:
            async with http.get(f"http://127.0.0.1:{d.http_port}/metrics") as r:
                scrape = await r.read()
            check = await asyncio.create_subprocess_exec("promtool", "check", "metrics", stdin=PIPE, stdout=PIPE,
                                                         stderr=STDOUT)
            out, _ = await asyncio.wait_for(check.communicate(scrape), 30)
            cfg = tmp / "prometheus.yml"
            cfg.write_text(yaml.safe_dump({
                "global": {"scrape_interval": "200ms", "evaluation_interval": "1s"},
                "rule_files": [str(p) for p in RULE_FILES],
                "scrape_configs": [{"job_name": "qmon",
                                    "static_configs": [{"targets": [f"127.0.0.1:{d.http_port}"]}]}],
            }))
            proc = await asyncio.create_subprocess_exec(
                "prometheus", f"--config.file={cfg}", f"--storage.tsdb.path={tmp / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{prom_port}", "--log.level=warn", stdout=DEVNULL, stderr=DEVNULL)
            base = f"http://127.0.0.1:{prom_port}"
            zeros = 'count_over_time(qmon_queue_calls_total{queue="support",outcome="answered"}[1h])'
            await poll("Prometheus to scrape qmon", 30, lambda: prom(http, base, zeros))
            zeros_seen = time.time()
            srv.secret = "secret"
            members = len(srv.state_for(0).queue_members)
            await poll("Prometheus to record every member at 0", 30,
                       lambda: prom(http, base, f"count(qmon_agent_calls_total) == {members}"))
            pbx = d.pbxs["default"]
            before = pbx.ingest.events
            # Plus one unusable event: qmon_ami_skipped_events_total has no series until a first skip, and the
            # dashboard's skip query must return data too. It touches no call.
            for message in [*stream, BROKEN_EVENT]:
                await srv.push(message)
            events = sum(1 for m in stream if "Event" in m) + 1
            await until(lambda: pbx.ingest.events >= before + events, what="every event ingested")
            await until(lambda: pbx.ingest.tracker.open_calls == 0, what="every call closed")

            async def final_count() -> bool:
                # Re-read each time: the tail of the stream (member status, list answers) may still be arriving.
                events = pbx.ingest.events
                got = await prom(http, base, "qmon_ami_events_total")
                return bool(got) and float(got[0]["value"][1]) == events

            await poll("Prometheus to see the final event count", 20, final_count)
            # The final scrape is stored now: every rule evaluated after this instant has read it. increase()
            # extrapolates past the last sample by up to ~1.1 scrape intervals: read the rules once the samples
            # span SPAN_S or more, so that a count reads only a few percent high.
            seen = max(time.time(), zeros_seen + SPAN_S)

            async def evaluated_after_seen() -> bool:
                # A group evaluates all its rules at one timestamp: its first rule (a count, never empty) tells.
                firsts = [g["rules"][0]["record"] for g in yaml.safe_load(RULE_FILES[0].read_text())["groups"]]
                rows = await asyncio.gather(*(prom(http, base, f"min(timestamp({n}))") for n in firsts))
                return all(r and float(r[0]["value"][1]) > seen for r in rows)

            await poll("every rule group to evaluate after the final scrape", 20, evaluated_after_seen)
            # Read every rule as of one instant whose evaluations have all finished (a group writes its rules one
            # after the other; evaluation_interval 1 s): each rule then comes from the same evaluation of its group.
            at = time.time()
            await asyncio.sleep(1.5)
            rules = {name: await prom(http, base, name, at) for name in record_names()}
            raw = {name: await prom(http, base, f"{name}[1h]", at) for name in AGENT_RAW}
            async with http.get(f"{base}/api/v1/rules") as r:
                health = [rule for g in (await r.json())["data"]["groups"] for rule in g["rules"]]
            variables, targets = await dashboard_targets(http, base)
    finally:
        if proc is not None:
            proc.terminate()
            await asyncio.wait_for(proc.wait(), 10)
        await srv.close()
    return Run((check.returncode or 0, out.decode()), rules, health, variables, targets, raw)


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Run:
    return asyncio.run(collect(tmp_path_factory.mktemp("prometheus")))


def test_promtool_accepts_a_real_scrape(run: Run) -> None:
    code, out = run.check_metrics
    assert code == 0, out


def test_every_rule_evaluates_without_error(run: Run) -> None:
    assert len(run.rule_health) == len(record_names()) + sum(
        1 for g in yaml.safe_load(RULE_FILES[1].read_text())["groups"] for r in g["rules"] if "alert" in r)
    bad = [(r["name"], r.get("lastError")) for r in run.rule_health if r["health"] != "ok"]
    assert not bad, bad


def bucket_quantile(q: float, values: list[float], bounds: tuple[float, ...]) -> float:
    """What histogram_quantile() returns for these observations: linear interpolation inside the bucket."""
    counts = [sum(1 for v in values if v <= b) for b in bounds]
    rank = q * len(values)
    for i, c in enumerate(counts):
        if c >= rank:
            lower, before = (bounds[i - 1], counts[i - 1]) if i else (0.0, 0)
            return lower + (bounds[i] - lower) * (rank - before) / (c - before)
    return bounds[-1]


def expected_figures(report: dict[str, Any], records: list[CallRecord]) -> dict[str, dict[tuple[str, ...], Any]]:
    """Each recording rule's value per label tuple, from the replay report (and its records where the report has
    no such figure: waits within T, per-agent talk). None = the rule must have no sample (zero denominator)."""
    segs = [s for r in records for s in r.segments]
    exp: dict[str, dict[tuple[str, ...], Any]] = defaultdict(dict)

    def ratio(num: float, den: float) -> float | None:
        return num / den if den > 0 else None

    for q, rep in report["queues"].items():
        k = ("default", q)
        entered, answered, short = rep["entered"], rep["answered"], rep["abandoned_short"]
        abandoned = rep["abandoned"] - short  # the report's `abandoned` includes short ones; the metric's not
        waits = [s.wait_s for s in segs if s.queue == q and s.outcome == "answered" and s.wait_s is not None]
        in_sl = sum(1 for w in waits if w <= SL_THRESHOLD_S)
        ab_in_sl = sum(1 for s in segs if s.queue == q and s.outcome in ("abandoned", "abandoned_short")
                       and s.wait_s is not None and s.wait_s <= SL_THRESHOLD_S)
        assert ratio(in_sl, entered - short) == rep["service_level"]
        counts = {"queue_offered": entered, "queue_answered": answered, "queue_abandoned": abandoned,
                  "queue_short_abandoned": short, "queue_answered_within_sl": in_sl,
                  "queue_abandoned_within_sl": ab_in_sl}
        for name, n in counts.items():
            exp[f"queue:qmon_{name}_calls:increase1h"][k] = n
        exp["queue:qmon_queue_offered_calls:increase1d"][k] = entered
        exp["queue:qmon_csat_responses:increase1d"][k] = rep["csat"]["responses"]
        exp["queue:qmon_service_level:ratio_rate1h"][k] = rep["service_level"]
        exp["queue:qmon_service_level_answered:ratio_rate1h"][k] = ratio(in_sl, answered)
        exp["queue:qmon_service_level_offered:ratio_rate1h"][k] = ratio(in_sl, entered)
        exp["queue:qmon_service_level_sl2:ratio_rate1h"][k] = ratio(in_sl + ab_in_sl, answered + abandoned + short)
        exp["queue:qmon_abandon_rate:ratio_rate1h"][k] = ratio(abandoned, entered - short)
        exp["queue:qmon_abandon_rate_with_short:ratio_rate1h"][k] = ratio(abandoned + short, entered)
        exp["queue:qmon_short_abandon_share:ratio_rate1h"][k] = ratio(short, entered)
        exp["queue:qmon_asa_seconds:mean1h"][k] = rep["wait_answered_s"]["mean"]
        exp["queue:qmon_answer_wait_seconds:p90_1h"][k] = (
            bucket_quantile(0.9, waits, tuple(map(float, WAIT_BUCKETS))) if waits else None)
        exp["queue:qmon_talk_seconds:mean1h"][k] = rep["talk_s"]["mean"]
        exp["queue_window:qmon_repeat_calls:ratio_rate1d"][(*k, "24h")] = ratio(rep["repeat_calls"], entered)
        fcr = ratio(rep["repeat_calls"], entered)
        exp["queue:qmon_fcr:ratio_rate1d"][k] = None if fcr is None else 1 - fcr
        exp["queue:qmon_csat_satisfied:ratio_rate1d"][k] = rep["csat"]["satisfied_ratio"]
        exp["queue:qmon_csat_score:mean1d"][k] = rep["csat"]["mean"]
        for reason in VOICEMAIL_REASONS:  # every reason is pre-created, so every one has a series
            exp["queue_reason:qmon_queue_voicemail_calls:increase15m"][(*k, reason)] = sum(
                1 for r in records if r.voicemail is not None and r.voicemail.queue == q
                and r.voicemail.reason == reason)
    talk: dict[tuple[str, ...], list[float]] = defaultdict(list)
    for s in segs:
        if s.outcome == "answered" and s.agent:
            talk[("default", s.queue, s.agent)].append(s.talk_s or 0.0)
    for key, ts in talk.items():
        exp["queue_agent:qmon_agent_talk_seconds:mean1h"][(key[2], key[0], key[1])] = sum(ts) / len(ts)
    return exp


def owed_truth(paths: list[Path]) -> tuple[OwedStats, dict[str, list[float]]]:
    """The owed-callback counters and the times to callback (s) per queue of a replay of ``paths`` (one tracker,
    the clock of ``qmon replay``: each event's Timestamp)."""
    tr = CallTracker()
    ttc: dict[str, list[float]] = defaultdict(list)

    def sink(notes: list[Note]) -> None:
        for n in notes:
            if isinstance(n, OwedNote) and n.change == "close" and n.call.queue:
                ttc[n.call.queue].append(n.call.time_to_callback_s or 0.0)

    for p in paths:
        ing, now = Ingest(tr, [sink]), 0.0
        for headers, _ in read_capture(p):
            ts = headers.get("Timestamp")
            now = float(ts) if isinstance(ts, str) else now
            ing.feed(headers, now)
        ing.emit(tr.close_all(tr.now or now, "eof"))
    return tr.owed.stats(tr.now), ttc


def owed_figures(report: dict[str, Any], records: list[CallRecord]) -> dict[str, dict[tuple[str, ...], Any]]:
    """The owed-callback rules per queue: calls by the queue they ended in, true abandonment (missed / calls),
    mean time to callback, withheld, from a replay of the same transcripts."""
    stats, ttc = owed_truth([FIXTURES / f"{s}.ami" for s in SCENARIOS])
    exp: dict[str, dict[tuple[str, ...], Any]] = defaultdict(dict)
    for q in report["queues"]:
        k = ("default", q)
        calls = sum(1 for r in records if r.segments and r.segments[-1].queue == q)
        exp["queue:qmon_calls_by_last_queue:increase1d"][k] = calls
        exp["queue:qmon_true_abandon_rate:ratio_rate1d"][k] = stats.missed[q] / calls if calls else None
        exp["queue:qmon_owed_time_to_callback_seconds:mean1d"][k] = (sum(ttc[q]) / len(ttc[q]) if ttc[q] else None)
        exp["queue:qmon_owed_withheld_calls:increase1d"][k] = stats.withheld[q]
    return exp


def growth(rows: list[dict[str, Any]]) -> dict[tuple[tuple[str, str], ...], float]:
    """Last minus first sample of each raw series over the hour (labels without job/instance)."""
    out = {}
    for row in rows:
        labels = tuple(sorted((k, v) for k, v in row["metric"].items() if k not in ("__name__", "job", "instance")))
        values = [float(v) for _, v in row["values"]]
        out[labels] = values[-1] - values[0]
    return out


def agent_figures(raw: dict[str, list[dict[str, Any]]]) -> dict[str, dict[tuple[str, ...], Any]]:
    """The agent rules from the growth of the raw agent counters over the rules' hour. Their seconds grow with the
    PBX clock at every scrape, so the expected value comes from the samples Prometheus holds; that those samples
    equal the AgentBoard is tests/test_web_supervisor.py's check."""
    exp: dict[str, dict[tuple[str, ...], Any]] = defaultdict(dict)
    states: dict[tuple[str, ...], dict[str, float]] = defaultdict(dict)
    for labels, d in growth(raw["qmon_agent_state_seconds_total"]).items():
        lab = dict(labels)
        states[(lab["agent"], lab["pbx"], lab["queue"])][lab["state"]] = d
    for key, s in states.items():
        available = sum(v for k, v in s.items() if k != "paused")
        busy = s.get("in_call", 0.0) + s.get("wrapup", 0.0)
        exp["queue_agent:qmon_agent_occupancy:ratio_rate1h"][key] = busy / available if available > 0 else None
    paused: dict[tuple[str, ...], float] = defaultdict(float)
    for labels, d in growth(raw["qmon_agent_paused_seconds_total"]).items():
        lab = dict(labels)
        paused[(lab["pbx"], lab["queue"], lab["reason"])] += d
    exp["queue_reason:qmon_agent_paused_seconds:increase1h"] = dict(paused)

    def per_agent(name: str) -> dict[tuple[str, ...], float]:
        return {tuple(v for _, v in labels): d for labels, d in growth(raw[name]).items()}  # (agent, pbx, queue)

    talk, wrap = per_agent("qmon_agent_talk_seconds_total"), per_agent("qmon_agent_wrapup_seconds_total")
    for key, done in per_agent("qmon_agent_completed_calls_total").items():
        exp["queue_agent:qmon_agent_handle_seconds:mean1h"][key] = (talk[key] + wrap[key]) / done if done else None
    return exp


def test_recording_rules_match_replay_report(run: Run) -> None:
    result = replay_files([FIXTURES / f"{s}.ami" for s in SCENARIOS])
    report = result.report(SL_THRESHOLD_S)
    expected = expected_figures(report, result.records)
    expected |= owed_figures(report, result.records) | agent_figures(run.raw)
    assert set(expected) == set(record_names())
    got: dict[str, dict[tuple[str, ...], float]] = {
        name: {tuple(v for k, v in sorted(row["metric"].items()) if k != "__name__"): float(row["value"][1])
               for row in rows}
        for name, rows in run.rules.items()}
    # increase() extrapolates a count past its last scrape to the evaluation instant (at most ~1.1 scrape
    # intervals over >= SPAN_S of samples; first samples are 0, so nothing before): a count reads up to `top`
    # times high, never low. Counts of one scrape share the factor, so ratios usually read exactly; on a loaded
    # machine series of one queue were seen to differ by up to 2.5 % (about 1 run in 10), so a ratio is checked
    # within [1/top, top]. With counts below 1 / (top - 1) = 16, one call more or less is outside the band.
    top = 1 + 0.5 / SPAN_S
    for name, per_key in expected.items():
        group = name.rsplit("increase", 1)[1] if ":increase" in name else ""
        for key, want in per_key.items():
            if want is None:
                assert key not in got[name], (name, key, got[name])
                continue
            assert key in got[name], (name, key, got[name])
            low = want if group else want / top
            assert low - 1e-9 <= got[name][key] <= want * top + 1e-9, (name, key, got[name][key], want)
    # No series beyond the replay's queues and agents (a stray label would split a measure in two).
    for name, per_key in got.items():
        assert set(per_key) <= set(expected[name]), (name, set(per_key) - set(expected[name]))
    # The agent series carry real data: member_changes' pause, the calls' talk time.
    assert any(v > 0 for v in got["queue_reason:qmon_agent_paused_seconds:increase1h"].values())
    assert any(v > 0 for v in got["queue_agent:qmon_agent_occupancy:ratio_rate1h"].values())
    assert any(v > 0 for v in got["queue:qmon_owed_time_to_callback_seconds:mean1d"].values())  # repeat_caller
    # The figures this run proves (support: SL 0.75, SL2, abandon 1/8, ASA, p90, CSAT 0.4 for the scenarios).
    print({name: {"/".join(k): round(v, 4) for k, v in per_key.items()} for name, per_key in got.items()})


def test_every_dashboard_expression_returns_data(run: Run) -> None:
    for name, values in run.variables.items():
        assert values, f"template variable {name} has no value"
    assert len(run.targets) == sum(len(p["targets"]) for d in DASHBOARDS for p in json.loads(d.read_text())["panels"])
    empty = [t.where for t in run.targets if not t.rows]
    assert not empty, empty
    no_number = [t.where for t in run.targets if not any(math.isfinite(float(r["value"][1])) for r in t.rows)]
    assert not no_number, no_number
