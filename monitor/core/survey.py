"""Post-call survey policy, questions and results (pure: no I/O, time passed in).

The FastAGI adapter (:mod:`monitor.survey.server`) asks :class:`SurveyPolicy` whether a call may be
surveyed, then drives a :class:`~monitor.core.conversation.Conversation` (the dialogue itself).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import time as dtime
from typing import Protocol

from monitor.core.records import CallRecord
from monitor.core.records import SurveyResultRecord as SurveyResultRecord  # the one answer type
from monitor.core.vocab import CES_MAX, CES_MIN, CSAT_MAX, CSAT_MIN, NPS_MAX, NPS_MIN, SurveyStatus

STATUSES: tuple[str, ...] = tuple(v.value for v in SurveyStatus)
"""Survey outcomes (:class:`~monitor.core.vocab.SurveyStatus`); ``unreachable`` only for failed callbacks."""

PROMPT_KEYS = ("csat", "nps", "ces", "invalid", "noinput", "thanks", "goodbye", "callback_intro")
DEFAULT_PROMPT_FILES = {
    "csat": "csat-question", "nps": "nps-question", "ces": "ces-question", "invalid": "invalid",
    "noinput": "noinput", "thanks": "thanks", "goodbye": "goodbye", "callback_intro": "callback-intro",
}
DECLINE_KEY = "*"


class CooldownState(Protocol):
    """When a number was last surveyed (storage provides it; must survive restarts)."""

    def last_surveyed(self, number: str) -> float | None:
        """Epoch seconds of the last survey of ``number``, None if never."""
        ...

    def mark_surveyed(self, number: str, ts: float) -> None:
        """Remember that ``number`` was surveyed at ``ts``."""
        ...


class OptOutList(Protocol):
    """Numbers that asked never to be surveyed."""

    def is_opted_out(self, number: str) -> bool:
        """True if ``number`` is on the list."""
        ...


# -- policy ----------------------------------------------------------------------------------------


def parse_quiet_hours(spec: str) -> tuple[dtime, dtime] | None:
    """``"21:00-08:00"`` -> (start, end); empty -> None; ValueError on anything else."""
    spec = spec.strip()
    if not spec:
        return None
    try:
        a, b = (p.strip() for p in spec.split("-"))
        start, end = dtime.fromisoformat(a), dtime.fromisoformat(b)
    except ValueError as exc:
        raise ValueError(f"quiet_hours {spec!r}: expected HH:MM-HH:MM") from exc
    return start, end


def in_quiet_hours(window: tuple[dtime, dtime] | None, local: dtime) -> bool:
    """Whether local wall-clock time ``local`` falls in the window (which may wrap midnight)."""
    if window is None:
        return False
    start, end = window
    if start == end:
        return False
    if start < end:
        return start <= local < end
    return local >= start or local < end


def sampled(key: str, rate: float, seed: str) -> bool:
    """Deterministic sampling: the same key and seed always give the same answer."""
    if rate >= 1.0:
        return True
    if rate <= 0.0:
        return False
    h = int.from_bytes(hashlib.sha256(f"{seed}:{key}".encode()).digest()[:8], "big")
    return h / 2**64 < rate


@dataclass(frozen=True, slots=True)
class PolicyConfig:
    """Who may be surveyed, and what is asked."""

    queues: tuple[str, ...] = ()  # empty = every queue
    sampling_rate: float = 1.0
    queue_sampling: tuple[tuple[str, float], ...] = ()
    seed: str = "qmon"
    cooldown_days: float = 7.0
    quiet_hours: tuple[dtime, dtime] | None = None
    ask_nps: bool = False
    ask_ces: bool = False
    max_duration_s: float = 90.0
    digit_timeout_ms: int = 5000
    default_language: str = "en"
    languages: tuple[str, ...] = ("en", "pl")
    queue_language: tuple[tuple[str, str], ...] = ()
    prompt_path: str = "qmon/{lang}/{name}"
    prompt_files: tuple[tuple[str, str], ...] = ()  # overrides of DEFAULT_PROMPT_FILES


@dataclass(frozen=True, slots=True)
class Decision:
    """Whether to survey; ``reason`` says why not (``ok`` when eligible)."""

    eligible: bool
    reason: str
    queue: str | None = None
    agent: str | None = None


class SurveyPolicy:
    """Pure eligibility rules: answered by an agent, queue enabled, sampled, not cooling down, not quiet."""

    def __init__(self, config: PolicyConfig) -> None:
        self.config = config
        self._rates = dict(config.queue_sampling)
        self._langs = dict(config.queue_language)
        self._files = DEFAULT_PROMPT_FILES | dict(config.prompt_files)

    def decide(
        self, call: CallRecord | None, caller: str | None, now: float, local: dtime,
        last_surveyed_at: float | None = None, opted_out: bool = False,
    ) -> Decision:
        """Decide for one call; ``local`` is the daemon's wall-clock time of ``now``."""
        if call is None:
            return Decision(False, "unknown_call")
        answered = [s for s in call.segments if s.outcome == "answered" and s.agent]
        if not answered:
            return Decision(False, "not_answered")
        seg = answered[-1]
        q, a = seg.queue, seg.agent
        if self.config.queues and q not in self.config.queues:
            return Decision(False, "queue_disabled", q, a)
        if not sampled(call.linkedid, self._rates.get(q, self.config.sampling_rate), self.config.seed):
            return Decision(False, "not_sampled", q, a)
        if caller is not None and opted_out:
            return Decision(False, "opted_out", q, a)
        if (caller is not None and last_surveyed_at is not None
                and now - last_surveyed_at < self.config.cooldown_days * 86400):
            return Decision(False, "cooldown", q, a)
        if in_quiet_hours(self.config.quiet_hours, local):
            return Decision(False, "quiet_hours", q, a)
        return Decision(True, "ok", q, a)

    def language(self, queue: str | None, channel_language: str | None, explicit: str | None = None) -> str:
        """Prompt language: the queue's setting, else an explicit/channel language we ship, else the default."""
        for cand in (self._langs.get(queue or ""), explicit, channel_language):
            if cand and cand in self.config.languages:
                return cand
        return self.config.default_language

    def prompt(self, lang: str, key: str) -> str:
        """The Asterisk sound name (no extension) of one prompt in one language."""
        return self.config.prompt_path.format(lang=lang, name=self._files[key])

    def prompt_file(self, key: str) -> str:
        """The file name (no directory, no extension) of one prompt, e.g. ``csat-question``."""
        return self._files[key]

    def questions(self) -> tuple[Question, ...]:
        """The questions asked, in order: CSAT first (required), then the optional ones."""
        t = self.config.digit_timeout_ms
        qs = [Question("csat", CSAT_MIN, CSAT_MAX, 1, t, True)]
        if self.config.ask_nps:
            # 3 digits, not 2: the prompt says "then press hash", and with 2 allowed "10#" ends GET DATA at the
            # second digit, so the # spills into the next question's GET DATA (recorded: "200 result=").
            qs.append(Question("nps", NPS_MIN, NPS_MAX, 3, t, False))
        if self.config.ask_ces:
            qs.append(Question("ces", CES_MIN, CES_MAX, 1, t, False))
        return tuple(qs)


# -- conversation ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Question:
    """One numeric question: ``max_digits`` > 1 lets "10" be typed digit by digit (or ended with #)."""

    key: str
    low: int
    high: int
    max_digits: int
    timeout_ms: int
    required: bool

    def parse(self, digits: str) -> int | None:
        """The answer, or None if ``digits`` is not a valid answer."""
        if not digits.isdigit() or len(digits) > self.max_digits:
            return None
        v = int(digits)
        return v if self.low <= v <= self.high else None


