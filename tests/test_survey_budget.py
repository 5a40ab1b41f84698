"""asterisk/budget.py: its worst case is the longest path of qmon's real survey conversation, for every
language and question set, with the prompts' recorded durations (so the dialplan timeout is computed)."""

from __future__ import annotations

import copy
import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

from monitor.core.conversation import Ask, Conversation, Done, Play, Reply, SetVar
from monitor.core.survey import PolicyConfig, SurveyPolicy

AST = Path(__file__).parent.parent / "asterisk"
DURATIONS: dict[str, dict[str, float]] = json.loads((AST / "sounds" / "durations.json").read_text())


def _budget() -> ModuleType:
    spec = importlib.util.spec_from_file_location("qmon_budget", AST / "budget.py")
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _longest(conv: Conversation, cmd: Ask | Play | SetVar | Done, now: float, durations: dict[str, float],
             timeout_s: float) -> float:
    """The latest end time over every way a caller can answer (nothing, a wrong key, a right key, ``*``)."""
    if isinstance(cmd, Done):
        return now
    name = getattr(cmd, "prompt", "").rsplit("/", 1)[-1]
    if isinstance(cmd, SetVar):
        return _longest(conv, conv.feed(Reply(), now), now, durations, timeout_s)
    if isinstance(cmd, Play):
        return _longest(conv, conv.feed(Reply(), now + durations[name]), now + durations[name], durations, timeout_s)
    ends = []
    valid = "10" if cmd.max_digits == 2 else "4"
    for digits, waited in (("", timeout_s), ("99" if cmd.max_digits == 2 else "9", cmd.max_digits * timeout_s),
                           (valid, cmd.max_digits * timeout_s), ("*", timeout_s)):
        branch = copy.deepcopy(conv)
        t = now + durations[name] + waited
        ends.append(_longest(branch, branch.feed(Reply(digits=digits, timeout=not digits), t), t, durations,
                             timeout_s))
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
