"""prometheus/alerts.yml: valid (promtool check rules), unit-tested (promtool test rules), metric names real."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from monitor.core.ingest import Ingest
from monitor.core.tracker import CallTracker
from monitor.web.metrics import QmonMetrics

PROM = Path(__file__).parent.parent / "prometheus"
pytestmark = pytest.mark.skipif(shutil.which("promtool") is None, reason="Debian package prometheus not installed")


def test_rules_check_and_unit_tests() -> None:
    for args in (["check", "rules", "alerts.yml"], ["test", "rules", "alerts_test.yml"]):
        r = subprocess.run(["promtool", *args], cwd=PROM, capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, r.stdout + r.stderr


def test_rules_use_only_exported_metrics() -> None:
    reg = CollectorRegistry()
    m = QmonMetrics(reg, queues=["support"])
    m.add_pbx("pbx1", Ingest(CallTracker()))
    exported = set(re.findall(r"^(qmon_\w+?)(?:\{| )", generate_latest(reg).decode(), re.M))
    used = set(re.findall(r"\bqmon_\w+", (PROM / "alerts.yml").read_text()))
    assert used and used <= exported, used - exported
