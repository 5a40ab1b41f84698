"""Prompt lengths for the survey's time budget (``{"en": {"thanks": 2.91}}``) and the budget itself.

``asterisk/sounds/generate.sh`` writes every prompt's length in seconds to ``asterisk/sounds/durations.json`` and
the identical package copy ``monitor/survey/durations.json`` (an installed wheel has no ``asterisk/``;
tests/test_survey_budget.py fails if the two differ). A site with its own recordings points
``survey.durations_file`` at their lengths (``generate.sh --durations-only DIR``). A prompt without a length gets
a conservative default from :class:`~monitor.core.conversation.PromptDurations` (longer than any shipped prompt),
so qmon stops asking early rather than late.

:func:`worst_case_s` is ``asterisk/budget.py``'s formula on qmon's own questions: the dialplan's
``TIMEOUT(absolute)`` is that plus 3 s, and qmon's own limit (``survey.max_duration_s = 0``, the default) is that
itself, so qmon has said goodbye before Asterisk hangs up.
"""

from __future__ import annotations

import json
import logging
import math
from importlib import resources
from pathlib import Path

from monitor.core.conversation import PromptDurations
from monitor.core.survey import SurveyPolicy

log = logging.getLogger("qmon.survey")

# Where the generated file sits: a source checkout (asterisk/ beside monitor/), or package data if shipped so.
_CHECKOUT = Path(__file__).resolve().parents[2] / "asterisk" / "sounds" / "durations.json"
_PACKAGE = ("monitor.survey", "durations.json")
#: Seconds the dialplan adds to the worst case for the AGI connection and round trips (asterisk/budget.py MARGIN_S).
DIALPLAN_MARGIN_S = 3.0


def parse_durations(data: object, source: str = "durations") -> PromptDurations:
    """``{"<lang>": {"<file>": seconds}}`` -> PromptDurations; ValueError naming the first bad entry."""
    if not isinstance(data, dict):
        raise ValueError(f"{source}: expected an object of languages")
    out: dict[str, dict[str, float]] = {}
    for lang, files in data.items():
        if not isinstance(files, dict):
            raise ValueError(f"{source}: {lang!r}: expected an object of prompt -> seconds")
        for name, secs in files.items():
            if isinstance(secs, bool) or not isinstance(secs, int | float) or not 0 < secs < 600:
                raise ValueError(f"{source}: {lang}/{name}: {secs!r} is not a length in seconds")
        out[str(lang)] = {str(k): float(v) for k, v in files.items()}
    return PromptDurations(out)


def load_durations(path: str | Path) -> PromptDurations:
    """Read one durations file; OSError if unreadable, ValueError if not the expected JSON shape."""
    p = Path(path)
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ValueError(f"{p.name}: not JSON ({exc.msg}, line {exc.lineno})") from exc
    return parse_durations(data, p.name)


def default_durations() -> PromptDurations:
    """The shipped prompts' lengths if the file is found (package data, then a checkout), else defaults only."""
    try:
        ref = resources.files(_PACKAGE[0]).joinpath(_PACKAGE[1])
        if ref.is_file():
            return parse_durations(json.loads(ref.read_text(encoding="utf-8")), _PACKAGE[1])
    except (OSError, ValueError, ModuleNotFoundError):
        log.warning("survey prompt durations in the package are unreadable; using conservative defaults")
        return PromptDurations()
    if _CHECKOUT.is_file():
        try:
            return load_durations(_CHECKOUT)
        except (OSError, ValueError) as exc:
            log.warning("survey prompt durations unreadable (%s); using conservative defaults", exc)
    return PromptDurations()


def worst_case_s(policy: SurveyPolicy, durations: PromptDurations, lang: str, callback: bool = False) -> float:
    """Seconds of the longest honest survey in ``lang`` (asterisk/budget.py's formula, on the policy's questions).

    Each question asked twice (the full prompt, every digit just before the digit timeout), the longer retry
    prompt between, the longer of thanks/goodbye at the end; a callback survey first plays its intro.
    """
    def secs(key: str) -> float:
        return durations.of(lang, policy.prompt_file(key), key)

    total = secs("callback_intro") if callback else 0.0
    retry = max(secs("invalid"), secs("noinput"))
    for q in policy.questions():
        total += 2 * (secs(q.key) + q.max_digits * q.timeout_ms / 1000) + retry
    return total + max(secs("thanks"), secs("goodbye"))


def dialplan_timeout_s(policy: SurveyPolicy, durations: PromptDurations, callback: bool = False) -> int:
    """Whole seconds the dialplan's TIMEOUT(absolute) needs for every configured language (budget.py's number)."""
    langs = policy.config.languages or (policy.config.default_language,)
    return math.ceil(max(worst_case_s(policy, durations, lang, callback) for lang in langs) + DIALPLAN_MARGIN_S)
