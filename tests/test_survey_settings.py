"""The survey server's never-silence and trace settings (issue 12): loaded and checked by the one settings loader,
handed by the daemon to the FastAGI server it runs, and used there over a real FastAGI connection."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from monitor.config import ConfigError, load_settings
from monitor.daemon import StartupError, run_daemon
from monitor.settings import SurveySettings
from monitor.survey.durations import worst_case_s
from tests.support.agiclient import agi_headers, run_caller
from tests.support.amiserver import AmiTestServer
from tests.support.daemon import daemon_settings, running


def test_defaults_and_env() -> None:
    s = load_settings({}, needs={"survey"}).survey
    assert (s.work_deadline_s, s.reply_slack_s, s.trace_var, s.durations_file, s.max_duration_s) == (
        2.0, 5.0, "CDR(userfield)", "", 0.0)
    env = {"QMON_SURVEY_WORK_DEADLINE_S": "0.5", "QMON_SURVEY_REPLY_SLACK_S": "8", "QMON_SURVEY_TRACE_VAR": "",
           "QMON_SURVEY_DURATIONS_FILE": "/etc/qmon/durations.json"}
    s = load_settings(env, needs={"survey"}).survey
    assert (s.work_deadline_s, s.reply_slack_s, s.trace_var, s.durations_file) == (
        0.5, 8.0, "", "/etc/qmon/durations.json")
    text = '[survey]\ntrace_var = "CDR(qmon_survey)"\nmax_duration_s = 45\n'
    s = load_settings({}, text, needs={"survey"}).survey
    assert (s.trace_var, s.max_duration_s) == ("CDR(qmon_survey)", 45.0)


def test_every_bad_value_reported_at_once() -> None:
    text = ('[survey]\nwork_deadline_s = 0\nreply_slack_s = -1\ntrace_var = "CDR(user field)"\n'
            'max_duration_s = -5\ndigit_timeout_ms = 0\n')
    with pytest.raises(ConfigError) as exc:
        load_settings({}, text, needs={"survey"})
    keys = sorted(p.partition(":")[0] for p in exc.value.problems)
    assert keys == ["survey.digit_timeout_ms", "survey.max_duration_s", "survey.reply_slack_s", "survey.trace_var",
                    "survey.work_deadline_s"]
    assert all("\n" not in p for p in exc.value.problems)
    with pytest.raises(ConfigError) as exc:
        load_settings({"QMON_SURVEY_WORK_DEADLINE_S": "soon"}, needs={"survey"})
    assert exc.value.problems == ["survey.work_deadline_s: expected a number, got string 'soon'"]
    # Not checked for commands that do not run the survey.
    assert load_settings({}, text, needs={"store"}).survey.work_deadline_s == 0


@pytest.mark.parametrize("name", ["CDR(userfield)", "CDR(qmon_survey)", "QMON_RESULT", "__QMON_RESULT", ""])
def test_trace_var_names_accepted(name: str) -> None:
    assert load_settings({"QMON_SURVEY_TRACE_VAR": name}, needs={"survey"}).survey.trace_var == name


async def test_the_daemon_hands_the_settings_to_its_server_and_the_trace_reaches_asterisk(tmp_path: Path) -> None:
    own = {"en": {"csat-question": 30.0, "thanks": 2.0, "goodbye": 2.0, "invalid": 2.0, "noinput": 2.0}}
    (tmp_path / "durations.json").write_text(json.dumps(own))
    async with AmiTestServer() as srv:
        survey = SurveySettings(port=0, state_path=str(tmp_path / "survey.db"), work_deadline_s=0.7,
                                reply_slack_s=3.5, trace_var="CDR(qmon_survey)",
                                durations_file=str(tmp_path / "durations.json"))
        settings = dataclasses.replace(daemon_settings(tmp_path, srv.port), survey=survey)
        async with running(settings) as d:
            assert d.survey is not None and d.survey_port
            server = d.survey.server
            assert (server.work_deadline_s, server.reply_slack_s, server.trace_var) == (0.7, 3.5, "CDR(qmon_survey)")
            assert server.durations.seconds == own
            # The computed limit follows the site's own recordings: 2 x (30 s + 5 s) + 2 s + 2 s.
            assert server.limited("en", False).config.max_duration_s == pytest.approx(74.0)
            assert worst_case_s(server.policy, server.durations, "en") == pytest.approx(74.0)
            session = await run_caller(d.survey_port, agi_headers("1.1", "1.0"), [])  # a call qmon does not know
            assert session.variables["CDR(qmon_survey)"] == "qmon:status=not_eligible"
            assert "CDR(userfield)" not in session.variables
    async with AmiTestServer() as srv:
        survey = SurveySettings(port=0, state_path=str(tmp_path / "survey2.db"), trace_var="")
        settings = dataclasses.replace(daemon_settings(tmp_path / "2", srv.port), survey=survey)
        (tmp_path / "2").mkdir()
        async with running(settings) as d:
            assert d.survey_port
            session = await run_caller(d.survey_port, agi_headers("1.1", "1.0"), [])
            assert session.variables.get("QMON_SURVEY_STATUS") == "not_eligible"
            assert not [k for k in session.variables if k.startswith("CDR(")]


@pytest.mark.parametrize("content", [None, "{not json", '{"en": {"thanks": -1}}'])
async def test_an_unusable_durations_file_stops_the_start_with_one_line(tmp_path: Path, content: str | None) -> None:
    path = tmp_path / "durations.json"
    if content is not None:
        path.write_text(content)
    async with AmiTestServer() as srv:
        survey = SurveySettings(port=0, state_path=str(tmp_path / "survey.db"), durations_file=str(path))
        settings = dataclasses.replace(daemon_settings(tmp_path, srv.port), survey=survey)
        with pytest.raises(StartupError) as exc:
            await run_daemon(settings)
    msg = str(exc.value)
    assert msg.startswith("survey.durations_file: cannot use ") and str(path) in msg and "\n" not in msg
