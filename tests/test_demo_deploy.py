"""Grafana dashboards, provisioning, Prometheus scrape config and docker-compose.yml, checked by parsing."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
DASHBOARDS = sorted((ROOT / "grafana" / "dashboards").glob("*.json"))
#: The public metric contract (issue 4); histograms also expose _bucket/_sum/_count.
METRICS = {
    "qmon_queue_calls_total", "qmon_queue_voicemail_total", "qmon_transfers_total", "qmon_repeat_calls_total",
    "qmon_agent_calls_total", "qmon_agent_ring_no_answer_total", "qmon_agent_talk_seconds_total",
    "qmon_csat_responses_total", "qmon_survey_outcomes_total", "qmon_ami_events_total", "qmon_ami_reconnects_total",
    "qmon_ami_skipped_events_total", "qmon_store_dropped_total", "qmon_queue_waiting_calls",
    "qmon_queue_longest_wait_seconds", "qmon_queue_members", "qmon_ami_up", "qmon_ami_last_event_age_seconds",
} | {f"{h}{s}" for h in ("qmon_queue_wait_seconds", "qmon_queue_talk_seconds") for s in ("_bucket", "_sum", "_count")}
LABELS = {"pbx", "queue", "outcome", "reason", "type", "window", "agent", "score", "result", "state", "le"}
OUTCOMES = {"answered", "abandoned", "abandoned_short", "timeout", "exit_empty", "join_empty", "exit_key",
            "transferred"}


def _exprs(dash: dict[str, Any]) -> list[str]:
    return [t["expr"] for p in dash["panels"] for t in p["targets"]]


def _balanced(expr: str) -> bool:
    stack, pairs = [], {")": "(", "]": "[", "}": "{"}
    in_str = False
    for ch in expr:
        if ch == '"':
            in_str = not in_str
        elif not in_str and ch in "([{":
            stack.append(ch)
        elif not in_str and ch in ")]}":
            if not stack or stack.pop() != pairs[ch]:
                return False
    return not stack and not in_str


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_dashboard_promql_uses_only_contract_metrics(path: Path) -> None:
    dash = json.loads(path.read_text())
    assert {v["name"] for v in dash["templating"]["list"]} == {"pbx", "queue"}
    ids = [p["id"] for p in dash["panels"]]
    assert len(ids) == len(set(ids)) and ids
    for expr in _exprs(dash):
        assert _balanced(expr), expr
        names = set(re.findall(r"\b(qmon_[a-z_]+)", expr))
        assert names and names <= METRICS, (expr, names - METRICS)
        for sel in re.findall(r"\{([^}]*)\}", expr):
            for label, _, _value in re.findall(r'(\w+)\s*(=~|!=|=|!~)\s*"([^"]*)"', sel):
                assert label in LABELS, (expr, label)
            for value in re.findall(r'outcome\s*(?:=|!=)\s*"([^"]*)"', sel):
                assert value in OUTCOMES, (expr, value)
        for group in re.findall(r"by \(([^)]*)\)", expr):
            assert {g.strip() for g in group.split(",")} <= LABELS, expr


def test_dashboards_cover_the_brief() -> None:
    exprs = " ".join(e for p in DASHBOARDS for e in _exprs(json.loads(p.read_text())))
    used = set(re.findall(r"\b(qmon_[a-z_]+)", exprs))
    assert used >= METRICS - {"qmon_queue_talk_seconds_bucket"}, METRICS - used


def test_grafana_provisioning() -> None:
    ds = yaml.safe_load((ROOT / "grafana/provisioning/datasources/prometheus.yml").read_text())
    (source,) = ds["datasources"]
    assert source["type"] == "prometheus" and source["url"] == "http://prometheus:9090"
    for path in DASHBOARDS:
        for p in json.loads(path.read_text())["panels"]:
            assert p["datasource"]["uid"] == source["uid"]
    prov = yaml.safe_load((ROOT / "grafana/provisioning/dashboards/qmon.yml").read_text())
    assert prov["providers"][0]["options"]["path"] == "/var/lib/grafana/dashboards"


def _compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return data


def test_compose_services_volumes_and_ports() -> None:
    compose = _compose()
    services = compose["services"]
    assert set(services) == {"qmon", "qmon-demo", "prometheus", "grafana", "postgres"}
    assert services["qmon"]["build"] == "." and (ROOT / "Dockerfile").is_file()
    mounts = {}
    for svc in services.values():
        for vol in svc.get("volumes", []):
            src, dst = vol.split(":")[:2]
            if src == "./qmon":  # the site's own config directory, created from qmon.example.toml (docs/deploy.md)
                continue
            if src.startswith("./"):
                assert (ROOT / src).exists(), src
                mounts[dst] = src
    assert mounts["/etc/grafana/provisioning/datasources"] == "./grafana/provisioning/datasources"
    assert mounts["/var/lib/grafana/dashboards"] == "./grafana/dashboards"
    assert mounts["/etc/prometheus/alerts.yml"] == "./prometheus/alerts.yml"
    demo = services["qmon-demo"]["command"]
    assert demo[0] == "demo" and demo[demo.index("--http-bind") + 1] == "0.0.0.0"
    assert "postgresql+asyncpg://" in demo[demo.index("--db") + 1]
    assert services["qmon-demo"]["networks"]["default"]["aliases"] == ["qmon"]  # Prometheus' target either way


def _published(svc: dict[str, Any]) -> dict[int, str]:
    """{container port: host address} of a service's published ports ("[addr:]host:container")."""
    out = {}
    for spec in svc.get("ports", []):
        parts = str(spec).split(":")
        out[int(parts[-1])] = parts[0] if len(parts) == 3 else "0.0.0.0"
    return out


def test_compose_never_publishes_the_api_without_a_token() -> None:
    services = _compose()["services"]
    text = (ROOT / "docker-compose.yml").read_text()
    for name, svc in services.items():
        published = _published(svc)
        if 9465 not in published:
            continue
        token = (svc.get("environment") or {}).get("QMON_HTTP_TOKEN", "")
        # ${VAR:?message}: compose refuses to start at all when the token is unset or empty.
        assert re.fullmatch(r"\$\{QMON_HTTP_TOKEN:\?[^}]+\}", token), name
        assert svc["command"][0] == "run", name  # `qmon demo` ignores the token: it must never be published
    assert 9465 not in _published(services["qmon-demo"])
    assert "${QMON_HTTP_TOKEN:?" in text


def test_compose_real_pbx_mounts_config_publishes_agi_and_reaches_the_host() -> None:
    qmon = _compose()["services"]["qmon"]
    assert qmon["command"] == ["run", "--config", "/etc/qmon/qmon.toml"]
    assert "./qmon:/etc/qmon:ro" in qmon["volumes"]
    assert _published(qmon) == {9465: "127.0.0.1", 4573: "127.0.0.1"}  # FastAGI has no auth: loopback only
    assert qmon["environment"]["QMON_SURVEY_BIND"] == "0.0.0.0" == qmon["environment"]["QMON_HTTP_BIND"]
    assert "host.docker.internal:host-gateway" in qmon["extra_hosts"]
    # The example config's secret_file is where compose puts the AMI secret.
    assert "qmon-ami" in qmon["secrets"] and 'secret_file = "/run/secrets/qmon-ami"' in (
        ROOT / "qmon.example.toml").read_text()
    subnet = _compose()["networks"]["default"]["ipam"]["config"][0]["subnet"]
    assert subnet == "172.30.0.0/24" and "172.30.0.0/255.255.255.0" in (ROOT / "docs" / "deploy.md").read_text()


def test_prometheus_sends_the_token_compose_gives_it() -> None:
    compose = _compose()
    cfg = yaml.safe_load((ROOT / "prometheus/prometheus.yml").read_text())
    (job,) = cfg["scrape_configs"]
    path = job["authorization"]["credentials_file"]
    assert path == "/run/secrets/qmon_http_token"
    assert "qmon_http_token" in compose["services"]["prometheus"]["secrets"]
    assert compose["secrets"]["qmon_http_token"] == {"environment": "QMON_HTTP_TOKEN"}


def test_prometheus_scrapes_qmon_and_loads_alerts() -> None:
    cfg = yaml.safe_load((ROOT / "prometheus/prometheus.yml").read_text())
    (job,) = cfg["scrape_configs"]
    assert job["static_configs"][0]["targets"] == ["qmon:9465"]
    from monitor.settings import HttpSettings

    assert HttpSettings().port == 9465
    mounted = {v.split(":")[1]: v.split(":")[0] for v in _compose()["services"]["prometheus"]["volumes"]}
    for rule in cfg["rule_files"]:
        assert rule in mounted and (ROOT / mounted[rule]).is_file()


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool not installed")
def test_promtool_accepts_the_scrape_config(tmp_path: Path) -> None:
    text = (ROOT / "prometheus/prometheus.yml").read_text()
    shutil.copy(ROOT / "prometheus/alerts.yml", tmp_path / "alerts.yml")
    (tmp_path / "token").write_text("t0ken")
    cfg = tmp_path / "prometheus.yml"
    cfg.write_text(text.replace("/etc/prometheus/alerts.yml", str(tmp_path / "alerts.yml"))
                   .replace("/run/secrets/qmon_http_token", str(tmp_path / "token")))
    res = subprocess.run(["promtool", "check", "config", str(cfg)], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stdout + res.stderr
