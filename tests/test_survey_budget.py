"""asterisk/budget.py: its worst case is the longest path of qmon's real survey conversation, for every
language and question set, with the prompts' recorded durations (so the dialplan timeout is computed)."""

from __future__ import annotations

import copy
import importlib.util
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

from monitor.core.conversation import Ask, Conversation, Done, Play, PromptDurations, Reply, SetVar
from monitor.core.survey import PolicyConfig, SurveyPolicy
from monitor.settings import SurveySettings
from monitor.survey import durations as qd
from monitor.survey.config import policy_config
from monitor.survey.server import SurveyServer

AST = Path(__file__).parent.parent / "asterisk"
DURATIONS: dict[str, dict[str, float]] = json.loads((AST / "sounds" / "durations.json").read_text())
PACKAGE_COPY = Path(qd.__file__).parent / "durations.json"


def _budget() -> ModuleType:
    spec = importlib.util.spec_from_file_location("qmon_budget", AST / "budget.py")
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _longest(conv: Conversation, cmd: Ask | Play | SetVar | Done, now: float, durations: dict[str, float],
             timeout_s: float, delay_s: float = 0.0) -> float:
    """The latest end time over every way a caller can answer (nothing, a wrong key, a right key, ``*``);
    ``delay_s``: every reply reaches qmon this much later (a slow link, recorded: a proxy adding 3 s)."""
    if isinstance(cmd, Done):
        return now
    name = getattr(cmd, "prompt", "").rsplit("/", 1)[-1]
    if isinstance(cmd, SetVar):
        t = now + delay_s
        return _longest(conv, conv.feed(Reply(), t), t, durations, timeout_s, delay_s)
    if isinstance(cmd, Play):
        t = now + durations[name] + delay_s
        return _longest(conv, conv.feed(Reply(), t), t, durations, timeout_s, delay_s)
    ends = []
    valid = "10" if cmd.max_digits > 1 else "4"
    digit_s = cmd.timeout_ms / 1000  # the conversation may have cut it to fit its limit
    for digits, waited in (("", digit_s), ("9" * cmd.max_digits, cmd.max_digits * digit_s),
                           (valid, cmd.max_digits * digit_s), ("*", digit_s)):
        branch = copy.deepcopy(conv)
        t = now + durations[name] + waited + delay_s
        ends.append(_longest(branch, branch.feed(Reply(digits=digits, timeout=not digits), t), t, durations,
                             timeout_s, delay_s))
    return max(ends)


@pytest.mark.parametrize("lang", sorted(DURATIONS))
@pytest.mark.parametrize("nps,ces,callback", [(False, False, False), (True, False, False), (True, True, False),
                                              (False, False, True), (False, True, True)])
def test_budget_is_the_longest_real_conversation(lang: str, nps: bool, ces: bool, callback: bool) -> None:
    budget = _budget()
    policy = SurveyPolicy(PolicyConfig(ask_nps=nps, ask_ces=ces, max_duration_s=1e9, digit_timeout_ms=5000,
                                       languages=tuple(DURATIONS)))
    conv = Conversation(policy, lang, 0.0, intro=callback)
    longest = _longest(conv, conv.start(0.0), 0.0, DURATIONS[lang], 5.0)
    questions = ["csat"] + (["nps"] if nps else []) + (["ces"] if ces else [])
    worst = budget.worst_case_s(DURATIONS[lang], questions, 5000, callback)
    # Never below a real path; above it by at most the retry prompts' difference (the formula takes the longer
    # of "invalid"/"noinput" and of "thanks"/"goodbye" without following which one a path really plays).
    assert longest - 1e-6 <= worst <= longest + 1.0


def test_budget_cli_prints_the_shipped_timeouts() -> None:
    run = [sys.executable, str(AST / "budget.py")]
    assert subprocess.run(run, capture_output=True, text=True, timeout=30, check=True).stdout.strip() == "53"
    out = subprocess.run([*run, "--callback"], capture_output=True, text=True, timeout=30, check=True).stdout
    assert out.strip() == "62"
    bad = subprocess.run([*run, "--languages", "xx"], capture_output=True, text=True, timeout=30)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "xx" in bad.stderr


def _dialplan(var: str) -> int:
    """The TIMEOUT(absolute) seconds extensions_qmon.conf ships for ``var``."""
    m = re.search(rf"Set\({var}=(\d+)\)", (AST / "extensions_qmon.conf").read_text())
    assert m, var
    return int(m.group(1))


# -- one source of truth for the prompts' lengths -------------------------------------------------------------


def test_the_package_carries_the_generated_durations_byte_for_byte() -> None:
    """generate.sh writes both; an installed qmon (no asterisk/ directory) reads the package copy."""
    assert PACKAGE_COPY.read_bytes() == (AST / "sounds" / "durations.json").read_bytes()
    assert "monitor/survey/durations.json" in (AST / "sounds" / "generate.sh").read_text().replace("../../", "")
    assert qd.default_durations().seconds == DURATIONS  # found as package data first


@pytest.mark.skipif(shutil.which("soxi") is None, reason="soxi (sox) not installed")
def test_generate_measures_a_sites_own_recordings(tmp_path: Path) -> None:
    """``generate.sh --durations-only DIR``: the same numbers from the same wavs, written to DIR only."""
    for lang in DURATIONS:
        shutil.copytree(AST / "sounds" / lang, tmp_path / lang)
    before = PACKAGE_COPY.read_bytes()
    subprocess.run(["sh", str(AST / "sounds" / "generate.sh"), "--durations-only", str(tmp_path)], check=True,
                   capture_output=True, timeout=120)
    assert (tmp_path / "durations.json").read_bytes() == (AST / "sounds" / "durations.json").read_bytes()
    assert PACKAGE_COPY.read_bytes() == before
    assert qd.load_durations(tmp_path / "durations.json").seconds == DURATIONS


# -- qmon's own limit is the dialplan's budget ----------------------------------------------------------------


@pytest.mark.parametrize("nps,ces", [(False, False), (True, False), (True, True), (False, True)])
@pytest.mark.parametrize("digit_ms", [3000, 5000, 8000])
def test_qmon_computes_budget_py_s_worst_case(nps: bool, ces: bool, digit_ms: int) -> None:
    budget = _budget()
    policy = SurveyPolicy(PolicyConfig(ask_nps=nps, ask_ces=ces, digit_timeout_ms=digit_ms,
                                       languages=tuple(DURATIONS)))
    questions = ["csat"] + (["nps"] if nps else []) + (["ces"] if ces else [])
    durs = PromptDurations(DURATIONS)
    for lang in DURATIONS:
        for callback in (False, True):
            assert qd.worst_case_s(policy, durs, lang, callback) == pytest.approx(
                budget.worst_case_s(DURATIONS[lang], questions, digit_ms, callback))
    for callback in (False, True):
        assert qd.dialplan_timeout_s(policy, durs, callback) == budget.budget_s(DURATIONS, questions, digit_ms,
                                                                                callback)


def test_the_shipped_dialplan_timeouts_are_qmons_budget_for_the_default_questions() -> None:
    policy = SurveyPolicy(policy_config(SurveySettings(languages=tuple(DURATIONS))))
    durs = qd.default_durations()
    assert qd.dialplan_timeout_s(policy, durs) == _dialplan("QMON_SURVEY_TIMEOUT") == 53
    assert qd.dialplan_timeout_s(policy, durs, callback=True) == _dialplan("QMON_CALLBACK_TIMEOUT") == 62


def _server(**kw: object) -> SurveyServer:
    s = SurveySettings(languages=tuple(DURATIONS), **kw)
    return SurveyServer(SurveyPolicy(policy_config(s)), lookup=lambda u, lid: None, on_result=lambda r: None,
                        durations=qd.default_durations())


@pytest.mark.parametrize("lang", sorted(DURATIONS))
@pytest.mark.parametrize("callback", [False, True])
def test_by_default_qmon_has_said_goodbye_before_asterisk_hangs_up(lang: str, callback: bool) -> None:
    """Default settings: the real Conversation under the server's limit ends, on every path, before the shipped
    TIMEOUT(absolute) less its 3 s for the AGI connection; also on a link adding 2 s to every reply."""
    server = _server()
    assert SurveySettings().max_duration_s == 0  # the default is the computed limit
    policy = server.limited(lang, callback)
    worst = qd.worst_case_s(server.policy, server.durations, lang, callback)
    assert policy.config.max_duration_s == pytest.approx(worst)
    timeout = _dialplan("QMON_CALLBACK_TIMEOUT" if callback else "QMON_SURVEY_TIMEOUT")
    conv = Conversation(policy, lang, 0.0, intro=callback, durations=server.durations)
    assert _longest(conv, conv.start(0.0), 0.0, DURATIONS[lang], 5.0) <= timeout - qd.DIALPLAN_MARGIN_S
    conv = Conversation(policy, lang, 0.0, intro=callback, durations=server.durations)
    # A slow link: the limit now binds (qmon cuts the survey short), and the last reply may come late once.
    slow = _longest(conv, conv.start(0.0), 0.0, DURATIONS[lang], 5.0, delay_s=2.0)
    assert slow <= worst + 2.0 <= timeout


def test_an_explicit_max_duration_is_kept_and_nps_raises_the_computed_one() -> None:
    assert _server(max_duration_s=40.0).limited("en", False).config.max_duration_s == 40.0
    plain = _server().limited("pl", False).config.max_duration_s
    nps = _server(ask_nps=True).limited("pl", False).config.max_duration_s
    assert nps == pytest.approx(plain + 2 * (DURATIONS["pl"]["nps-question"] + 15.0) + DURATIONS["pl"]["invalid"])
