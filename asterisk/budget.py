#!/usr/bin/env python3
"""The longest a qmon survey can legitimately take, from the prompts' real durations (sounds/durations.json).

The dialplan's safety net (``TIMEOUT(absolute)`` in extensions_qmon.conf: QMON_SURVEY_TIMEOUT and
QMON_CALLBACK_TIMEOUT) is sized from this, so that a hung qmon leaves the caller in silence for no longer than
the worst honest survey. Usage::

    python3 asterisk/budget.py                       # CSAT only (the default questions), every shipped language
    python3 asterisk/budget.py --nps --ces --digit-timeout-ms 5000 --languages pl,ro --callback

The worst case follows qmon's conversation rules (monitor/core/survey.py): each question may be asked twice
(a no-input or invalid answer plays ``noinput``/``invalid`` and asks again); ``GET DATA`` plays the whole
question, then waits up to the digit timeout for each digit (NPS takes up to 3: "10" then "#"); the survey ends with
``thanks`` (or ``goodbye``); a callback survey first plays ``callback-intro``. It takes the longer of
``invalid``/``noinput`` and of ``thanks``/``goodbye`` everywhere, so it is an upper bound, within a second of the
longest path of the real conversation (tests/test_survey_budget.py walks every path). The dialplan adds MARGIN_S
for the AGI connection, headers and ``SET VARIABLE`` round trips (each a few ms on one host). qmon computes the
same worst case itself (monitor/survey/durations.py, tested equal) and, with survey.max_duration_s = 0 (the
default), ends every survey within it: it has said goodbye before this TIMEOUT(absolute) fires.
Stdlib only: an administrator can run it on the PBX.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

DURATIONS = Path(__file__).resolve().parent / "sounds" / "durations.json"
MARGIN_S = 3.0
#: (prompt file, digits collected) of every question, in the order qmon asks them.
QUESTIONS = {"csat": ("csat-question", 1), "nps": ("nps-question", 3), "ces": ("ces-question", 1)}


def worst_case_s(durations: dict[str, float], questions: list[str], digit_timeout_ms: int,
                 callback: bool = False) -> float:
    """Seconds of the longest survey in one language: ``durations`` maps prompt file -> seconds."""
    t = digit_timeout_ms / 1000.0
    total = durations["callback-intro"] if callback else 0.0
    retry_prompt = max(durations["invalid"], durations["noinput"])
    for key in questions:
        prompt, digits = QUESTIONS[key]
        # Two attempts, each the full question and every digit arriving just before its timeout.
        total += 2 * (durations[prompt] + digits * t) + retry_prompt
    return total + max(durations["thanks"], durations["goodbye"])


def budget_s(all_durations: dict[str, dict[str, float]], questions: list[str], digit_timeout_ms: int,
             callback: bool = False, languages: list[str] | None = None) -> int:
    """Whole seconds for TIMEOUT(absolute): the slowest language's worst case plus MARGIN_S, rounded up."""
    langs = languages or sorted(all_durations)
    worst = max(worst_case_s(all_durations[lang], questions, digit_timeout_ms, callback) for lang in langs)
    return math.ceil(worst + MARGIN_S)


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    p.add_argument("--nps", action="store_true", help="survey.ask_nps = true")
    p.add_argument("--ces", action="store_true", help="survey.ask_ces = true")
    p.add_argument("--digit-timeout-ms", type=int, default=5000, help="survey.digit_timeout_ms (default 5000)")
    p.add_argument("--languages", default="", help="comma-separated (default: every language in durations.json)")
    p.add_argument("--callback", action="store_true", help="a callback survey (adds callback-intro)")
    p.add_argument("--durations", default=str(DURATIONS), help="durations.json (default: the shipped prompts)")
    a = p.parse_args(argv)
    try:
        data = json.loads(Path(a.durations).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        print(f"budget: cannot read {a.durations}: {exc}", file=sys.stderr)
        return 2
    langs = [x.strip() for x in a.languages.split(",") if x.strip()] or None
    missing = [x for x in langs or [] if x not in data]
    if missing:
        print(f"budget: no durations for {', '.join(missing)} in {a.durations}", file=sys.stderr)
        return 2
    questions = ["csat"] + (["nps"] if a.nps else []) + (["ces"] if a.ces else [])
    print(budget_s(data, questions, a.digit_timeout_ms, a.callback, langs))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
