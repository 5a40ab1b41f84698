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
    # the supervisor's view (issue 13)
    "qmon_agent_state_seconds_total", "qmon_agent_paused_seconds_total", "qmon_agent_wrapup_seconds_total",
    "qmon_agent_completed_calls_total", "qmon_agent_state", "qmon_agent_state_duration_seconds",
    "qmon_owed_callbacks", "qmon_owed_callback_oldest_age_seconds", "qmon_owed_callbacks_missed_total",
    "qmon_owed_withheld_calls_total", "qmon_calls_by_last_queue_total",
    "qmon_owed_time_to_callback_seconds_sum", "qmon_owed_time_to_callback_seconds_count",
} | {f"{h}{s}" for h in ("qmon_queue_wait_seconds", "qmon_queue_talk_seconds") for s in ("_bucket", "_sum", "_count")}
LABELS = {"pbx", "queue", "outcome", "reason", "type", "window", "agent", "score", "result", "state", "le"}
#: Recording rules (level:metric:operations) defined in prometheus/rules.yml.
RULES = {r["record"]: r["expr"] for g in yaml.safe_load((ROOT / "prometheus/rules.yml").read_text())["groups"]
         for r in g["rules"]}
RULE_NAME = re.compile(r"\b[a-z_]+:[a-z0-9_]+:[a-z0-9_]+\b")
DS_REF = {"type": "prometheus", "uid": "${DS_PROMETHEUS}"}
OUTCOMES = {"answered", "abandoned", "abandoned_short", "timeout", "exit_empty", "join_empty", "exit_key",
            "transferred"}


def _exprs(dash: dict[str, Any]) -> list[str]:
    return [t["expr"] for p in dash["panels"] for t in p["targets"]]


def _metrics(expr: str) -> set[str]:
    """qmon metric names an expression reads, directly or through the recording rules it uses."""
    names = set(re.findall(r"(?<![:\w])(qmon_[a-z_]+)", RULE_NAME.sub(" ", expr)))
    for rule in RULE_NAME.findall(expr):
        names |= _metrics(RULES[rule])
    return names


def _datasource_refs(node: Any) -> list[Any]:
    if isinstance(node, dict):
        return [v for k, v in node.items() if k == "datasource"] + [
            r for k, v in node.items() if k != "datasource" for r in _datasource_refs(v)]
    if isinstance(node, list):
        return [r for v in node for r in _datasource_refs(v)]
    return []


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
    assert {v["name"] for v in dash["templating"]["list"]} == {"DS_PROMETHEUS", "pbx", "queue"}
    ids = [p["id"] for p in dash["panels"]]
    assert len(ids) == len(set(ids)) and ids
    for expr in _exprs(dash):
        assert _balanced(expr), expr
        rules = set(RULE_NAME.findall(expr))
        assert rules <= set(RULES), (expr, rules - set(RULES))
        names = _metrics(expr)
        assert names and names <= METRICS, (expr, names - METRICS)
        for sel in re.findall(r"\{([^}]*)\}", expr):
            for label, _, _value in re.findall(r'(\w+)\s*(=~|!=|=|!~)\s*"([^"]*)"', sel):
                assert label in LABELS, (expr, label)
            for value in re.findall(r'outcome\s*(?:=|!=)\s*"([^"]*)"', sel):
                assert value in OUTCOMES, (expr, value)
        for group in re.findall(r"by \(([^)]*)\)", expr):
            assert {g.strip() for g in group.split(",")} <= LABELS, expr


def test_docs_define_every_recording_rule() -> None:
    """docs/metrics.md documents exactly the recording rules of prometheus/rules.yml (formula and source)."""
    documented = {n for n in RULE_NAME.findall((ROOT / "docs/metrics.md").read_text()) if ":qmon_" in n}
    assert documented == set(RULES), (documented ^ set(RULES))


def test_dashboards_cover_the_brief() -> None:
    exprs = " ".join(e for p in DASHBOARDS for e in _exprs(json.loads(p.read_text())))
    used = _metrics(exprs)
    assert used >= METRICS - {"qmon_queue_talk_seconds_bucket"}, METRICS - used


# Derived measures come from recording rules only: a ratio, mean or quantile written inline in a dashboard would be
# a second definition that can drift from the alerts (as the abandonment rate and the service level once did).
INLINE_DERIVATIONS = ("histogram_quantile", "le=", "clamp_min", "_sum", ") /", ")/")


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_dashboards_derive_nothing_inline(path: Path) -> None:
    for expr in _exprs(json.loads(path.read_text())):
        assert not any(d in expr for d in INLINE_DERIVATIONS), expr


def test_alerts_read_measures_from_recording_rules() -> None:
    """An alert's expression uses recording rules, or raw gauges/`up` only: no increase()/ratio of its own."""
    alerts = [r for g in yaml.safe_load((ROOT / "prometheus/alerts.yml").read_text())["groups"] for r in g["rules"]]
    for a in alerts:
        assert "increase(" not in a["expr"] and "rate(" not in a["expr"] and "le=" not in a["expr"], a["alert"]
        assert set(RULE_NAME.findall(a["expr"])) <= set(RULES), a["alert"]


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: p.name)
def test_dashboard_datasource_is_a_variable(path: Path) -> None:
    """Importable into any Grafana (``__inputs``: the import dialog asks for the Prometheus) and provisionable
    (a ``datasource`` variable of the same name resolves ``${DS_PROMETHEUS}`` at view time); no hard-coded uid."""
    text = path.read_text()
    dash = json.loads(text)
    assert "qmon-prometheus" not in text
    (inp,) = dash["__inputs"]
    assert inp == inp | {"name": "DS_PROMETHEUS", "type": "datasource", "pluginId": "prometheus"}
    assert {"type": "datasource", "id": "prometheus"}.items() <= next(
        r for r in dash["__requires"] if r["type"] == "datasource").items()
    var = next(v for v in dash["templating"]["list"] if v["name"] == "DS_PROMETHEUS")
    assert var["type"] == "datasource" and var["query"] == "prometheus" and not var.get("multi")
    # Empty current value: Grafana then picks the default Prometheus (the provisioned one in docker-compose).
    assert not var.get("current")
    refs = _datasource_refs({k: v for k, v in dash.items() if k != "__inputs"})
    n_targets = sum(len(p["targets"]) for p in dash["panels"])
    assert len(refs) == len(dash["panels"]) + n_targets + len(dash["templating"]["list"]) - 1
    assert all(r == DS_REF for r in refs), [r for r in refs if r != DS_REF]


def test_grafana_provisioning() -> None:
    ds = yaml.safe_load((ROOT / "grafana/provisioning/datasources/prometheus.yml").read_text())
    (source,) = ds["datasources"]
    assert source["type"] == "prometheus" and source["url"] == "http://prometheus:9090"
    # The dashboards' datasource variable falls back to the default Prometheus: the provisioned one must be it.
    assert source["isDefault"] is True
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
    assert mounts["/etc/prometheus/rules.yml"] == "./prometheus/rules.yml"
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
    cfg = yaml.safe_load((ROOT / "prometheus/prometheus-compose.yml").read_text())
    (job,) = cfg["scrape_configs"]
    path = job["authorization"]["credentials_file"]
    assert path == "/run/secrets/qmon_http_token"
    assert "qmon_http_token" in compose["services"]["prometheus"]["secrets"]
    assert compose["secrets"]["qmon_http_token"] == {"environment": "QMON_HTTP_TOKEN"}


def test_the_compose_scrape_config_is_the_plain_one_plus_the_token() -> None:
    plain = yaml.safe_load((ROOT / "prometheus/prometheus.yml").read_text())
    compose = yaml.safe_load((ROOT / "prometheus/prometheus-compose.yml").read_text())
    (pjob,), (cjob,) = plain["scrape_configs"], compose["scrape_configs"]
    assert pjob["static_configs"][0]["targets"] == ["127.0.0.1:9465"] and "authorization" not in pjob
    assert cjob.pop("authorization")["type"] == "Bearer"
    cjob["static_configs"] = pjob["static_configs"]
    assert compose == plain


def test_prometheus_scrapes_qmon_and_loads_alerts() -> None:
    cfg = yaml.safe_load((ROOT / "prometheus/prometheus-compose.yml").read_text())
    (job,) = cfg["scrape_configs"]
    assert job["static_configs"][0]["targets"] == ["qmon:9465"]
    from monitor.settings import HttpSettings

    assert HttpSettings().port == 9465
    mounted = {v.split(":")[1]: v.split(":")[0] for v in _compose()["services"]["prometheus"]["volumes"]}
    config_dir = Path(next(d for d, s in mounted.items() if s == "./prometheus/prometheus-compose.yml")).parent
    assert set(cfg["rule_files"]) == {"rules.yml", "alerts.yml"}
    for rule in cfg["rule_files"]:
        # Relative paths resolve against the config file's directory, in the container and in the repository.
        assert mounted[str(config_dir / rule)] == f"./prometheus/{rule}"
        assert (ROOT / "prometheus" / rule).is_file()


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool not installed")
def test_promtool_accepts_the_scrape_configs_from_the_repository(tmp_path: Path) -> None:
    """`promtool check config prometheus/prometheus.yml` as is, from the repository root (rule files resolve);
    the compose variant too, with its token file where compose mounts the secret."""
    res = subprocess.run(["promtool", "check", "config", "prometheus/prometheus.yml"], cwd=ROOT,
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stdout + res.stderr
    for name in ("rules.yml", "alerts.yml"):
        shutil.copy(ROOT / "prometheus" / name, tmp_path / name)
    (tmp_path / "token").write_text("t0ken")
    cfg = tmp_path / "prometheus.yml"
    cfg.write_text((ROOT / "prometheus/prometheus-compose.yml").read_text()
                   .replace("/run/secrets/qmon_http_token", str(tmp_path / "token")))
    res = subprocess.run(["promtool", "check", "config", str(cfg)], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stdout + res.stderr
    assert "SUCCESS: 2 rule files found" in res.stdout, res.stdout


def test_supervisors_wait_for_the_whole_shutdown() -> None:
    """systemd's TimeoutStopSec and compose's stop_grace_period exceed qmon's longest shutdown (every step at its
    bound, one PBX, the default store drain): a SIGKILL before it would cut surveys and the store's drain."""
    from monitor.daemon import shutdown_bound_s
    from monitor.settings import StoreSettings

    bound = shutdown_bound_s(1, StoreSettings().drain_timeout_s)
    assert bound == 36.0
    unit = (ROOT / "docs/systemd/qmon.service").read_text()
    (stop,) = re.findall(r"^TimeoutStopSec=(\d+)s$", unit, re.M)
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    grace = compose["services"]["qmon"]["stop_grace_period"]
    assert int(stop) > bound and int(grace.removesuffix("s")) > bound, (stop, grace, bound)
