"""Deployment files: the systemd unit, the example config's paths and documented settings, docs/deploy.md."""

from __future__ import annotations

import configparser
import dataclasses
import re
import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest

from monitor.cli.common import settings_from
from monitor.settings import SurveySettings

ROOT = Path(__file__).resolve().parent.parent
UNIT = ROOT / "docs" / "systemd" / "qmon.service"
EXAMPLE = ROOT / "qmon.example.toml"
DOCUMENTED = [f.name for f in dataclasses.fields(SurveySettings)
              if f.name.startswith("callback_") or f.name in (
                  "max_duration_s", "ask_nps", "ask_ces", "digit_timeout_ms", "languages", "prompt_path",
                  "state_path", "max_sessions", "work_deadline_s", "reply_slack_s", "trace_var",
                  "durations_file")]


def _unit() -> configparser.ConfigParser:
    cp = configparser.ConfigParser(strict=False, interpolation=None, delimiters=("=",))
    cp.optionxform = str  # type: ignore[assignment,method-assign]  # systemd keys are case-sensitive
    cp.read_string(UNIT.read_text())
    return cp


def test_systemd_unit_has_the_required_keys() -> None:
    svc = _unit()["Service"]
    assert svc["Type"] in ("simple", "notify", "exec")
    assert svc["User"] == "qmon" and svc["Group"] == "qmon"  # a dedicated user, never root
    assert svc["StateDirectory"] == "qmon" and svc["WorkingDirectory"] == "/var/lib/qmon"
    assert svc["Restart"] in ("on-failure", "always") and svc["RestartSec"]
    assert svc["RestartPreventExitStatus"] == "2"  # config errors exit 2: a restart loop would not fix them
    exec_start = svc["ExecStart"].split()
    assert exec_start[0].startswith("/") and exec_start[1:] == ["run", "--config", "/etc/qmon/qmon.toml"]
    assert svc["NoNewPrivileges"] == "yes" and svc["ProtectSystem"] == "strict"
    assert _unit()["Install"]["WantedBy"] == "multi-user.target"


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze not installed")
def test_systemd_accepts_the_unit(tmp_path: Path) -> None:
    # The real ExecStart does not exist here; everything else is checked by systemd's own parser.
    text = re.sub(r"^ExecStart=\S+", "ExecStart=/bin/true", UNIT.read_text(), flags=re.M)
    (tmp_path / "qmon.service").write_text(text)
    r = subprocess.run(["systemd-analyze", "verify", "--man=no", str(tmp_path / "qmon.service")],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and r.stderr.strip() == "", r.stderr


def test_example_config_uses_absolute_state_paths(tmp_path: Path) -> None:
    data = tomllib.loads(EXAMPLE.read_text())
    assert data["store"]["url"].startswith("sqlite+aiosqlite:////var/lib/qmon/")
    assert data["store"]["journal_path"].startswith("/var/lib/qmon/")
    assert data["survey"]["state_path"].startswith("/var/lib/qmon/")
    (tmp_path / "ami").write_text("x")
    s = settings_from(_write(tmp_path, EXAMPLE.read_text().replace("/run/secrets/qmon-ami", str(tmp_path / "ami"))),
                      {}, {"ami", "tracker", "http", "store", "survey"})
    assert s.store.journal_path == "/var/lib/qmon/qmon-journal.jsonl"
    assert s.survey.state_path == "/var/lib/qmon/qmon-survey.db"


def _write(tmp: Path, text: str) -> str:
    path = tmp / "qmon.toml"
    path.write_text(text)
    return str(path)


@pytest.mark.parametrize("name", DOCUMENTED)
def test_survey_settings_are_in_the_example_and_the_docs(name: str, tmp_path: Path) -> None:
    example = EXAMPLE.read_text()
    line = next((ln for ln in example.splitlines() if re.match(rf"#?\s*{name}\s*=", ln)), None)
    assert line, f"{name} missing from qmon.example.toml"
    # Uncommented, the line is valid TOML of the right type for qmon (a typo in an example is a trap).
    (tmp_path / "ami").write_text("x")
    text = example.replace("/run/secrets/qmon-ami", str(tmp_path / "ami"))
    if line.startswith("#"):
        text = text.replace("[survey]\n", f"[survey]\n{line.lstrip('# ').split('  #')[0]}\n", 1)
    settings_from(_write(tmp_path, text), {}, {"ami", "tracker", "http", "store", "survey"})
    conf = (ROOT / "docs" / "configuration.md").read_text()
    assert re.search(rf"`(survey\.)?{name}`", conf), f"{name} not in configuration.md"


def test_callback_caller_id_and_channel_are_explained() -> None:
    conf = (ROOT / "docs" / "configuration.md").read_text()
    assert "<unknown>" in conf and "{number}" in conf and "**required**" in conf
    assert "<unknown>" in EXAMPLE.read_text() and "REQUIRED" in EXAMPLE.read_text()


def test_deploy_doc_covers_the_administrators_questions() -> None:
    doc = (ROOT / "docs" / "deploy.md").read_text()
    for needle in ("manager_custom.conf", "extensions_custom.conf", "Gosub(qmon-survey,s,1(", "qmon-after-queue",
                   "StateDirectory=qmon", "network_mode: host", "bindaddr", "QMON_HTTP_TOKEN", "4573",
                   "FullyBooted", "/usr/share/asterisk", "CDR(userfield)", "AGIEXITONHANGUP", "budget.py",
                   "docs/systemd/qmon.service"):
        assert needle in doc, needle
    # Every relative link to a shipped file points at one that exists.
    for path in re.findall(r"`((?:asterisk|docs|prometheus|grafana)/[\w./-]+\.\w+)`", doc):
        assert (ROOT / path).exists(), path
    # The timeouts quoted in the doc are the ones the dialplan ships.
    ext = (ROOT / "asterisk" / "extensions_qmon.conf").read_text()
    for var in ("QMON_SURVEY_TIMEOUT", "QMON_CALLBACK_TIMEOUT"):
        value = re.search(rf"Set\({var}=(\d+)\)", ext)
        assert value and f"{value.group(1)} s" in doc, var
