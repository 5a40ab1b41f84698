"""Prompt lengths for the survey's time budget: ``asterisk/sounds/durations.json`` (``{"en": {"thanks": 2.91}}``).

The file is written beside the prompts when they are generated (each prompt's length in seconds). Where it is
missing, or lacks a prompt (a site's own recording), :class:`~monitor.core.conversation.PromptDurations` answers with
conservative defaults (longer than any shipped prompt), so qmon stops asking early rather than late.
"""

from __future__ import annotations

import json
import logging
from importlib import resources
from pathlib import Path

from monitor.core.conversation import PromptDurations

log = logging.getLogger("qmon.survey")

# Where the generated file sits: a source checkout (asterisk/ beside monitor/), or package data if shipped so.
_CHECKOUT = Path(__file__).resolve().parents[2] / "asterisk" / "sounds" / "durations.json"
_PACKAGE = ("monitor.survey", "durations.json")


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
