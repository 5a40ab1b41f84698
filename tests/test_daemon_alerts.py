"""prometheus/rules.yml and alerts.yml: valid (promtool check rules), unit-tested (promtool test rules), every
metric they read really exported, every recording rule they use defined."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from prometheus_client import CollectorRegistry, generate_latest

from monitor.core.ingest import Ingest
from monitor.core.tracker import CallTracker
from monitor.web.metrics import QmonMetrics

PROM = Path(__file__).parent.parent / "prometheus"
RULE_NAME = re.compile(r"\b[a-z_]+:[a-z0-9_]+:[a-z0-9_]+\b")
pytestmark = pytest.mark.skipif(shutil.which("promtool") is None, reason="Debian package prometheus not installed")


def _rules(name: str) -> list[dict[str, str]]:
    return [r for g in yaml.safe_load((PROM / name).read_text())["groups"] for r in g["rules"]]


@pytest.mark.parametrize("args", [["check", "rules", "rules.yml", "alerts.yml"], ["test", "rules", "rules_test.yml"],
                                  ["test", "rules", "alerts_test.yml"]], ids=" ".join)
def test_promtool(args: list[str]) -> None:
    r = subprocess.run(["promtool", *args], cwd=PROM, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr


def test_every_recording_rule_has_a_promtool_case() -> None:
    cases = yaml.safe_load((PROM / "rules_test.yml").read_text())["tests"]
    tested = {RULE_NAME.match(c["expr"])[0] for t in cases for c in t["promql_expr_test"]}  # type: ignore[index]
    assert tested == {r["record"] for r in _rules("rules.yml")}


def test_every_alert_has_a_promtool_case() -> None:
    cases = yaml.safe_load((PROM / "alerts_test.yml").read_text())["tests"]
    fired = {c["alertname"] for t in cases for c in t["alert_rule_test"] if c["exp_alerts"]}
    assert fired == {r["alert"] for r in _rules("alerts.yml")}


def test_rules_use_only_exported_metrics() -> None:
    reg = CollectorRegistry()
    m = QmonMetrics(reg, queues=["support"])
    ingest = Ingest(CallTracker())
    m.add_pbx("pbx1", ingest)
    # A member: its series come from the AgentBoard at scrape time (owed series exist per known queue).
    ingest.feed({"Event": "QueueMemberAdded", "Queue": "support", "MemberName": "agent1", "Interface": "PJSIP/1001",
                 "StateInterface": "PJSIP/1001", "Status": "1", "Paused": "0", "Timestamp": "1000.0"}, 1000.0)
    assert ingest.tracker.agents.snapshot(1000.0)
    exported = set(re.findall(r"^(qmon_\w+?)(?:\{| )", generate_latest(reg).decode(), re.M))
    records = {r["record"] for r in _rules("rules.yml")}
    used: set[str] = set()
    for r in _rules("rules.yml") + _rules("alerts.yml"):
        assert set(RULE_NAME.findall(r["expr"])) <= records, r
        used |= set(re.findall(r"(?<![:\w])qmon_\w+", RULE_NAME.sub(" ", r["expr"])))
    assert used and used <= exported, used - exported
    # Bucket bounds are exposed as floats: le="20" would select nothing (the bug of the old Service level panel).
    for le in re.findall(r'le="([^"]*)"', (PROM / "rules.yml").read_text()):
        assert f'le="{le}"' in generate_latest(reg).decode(), le
