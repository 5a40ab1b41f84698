"""Post-call survey policy and conversation state machine (pure: no I/O, time passed in).

The FastAGI adapter (:mod:`monitor.survey.server`) asks :class:`SurveyPolicy` whether a call may be
surveyed, then drives a :class:`Conversation`: it executes each :data:`Command` on the channel and feeds the
normalised :class:`Reply` back. The conversation never blocks and never waits: the adapter owns the clock.
"""

from __future__ import annotations

import hashlib
from collections import deque
from dataclasses import dataclass, field
from datetime import time as dtime
from typing import Protocol

from monitor.core.records import CallRecord
from monitor.core.records import SurveyResultRecord as SurveyResultRecord  # the one answer type
from monitor.core.vocab import CES_MAX, CES_MIN, CSAT_MAX, CSAT_MIN, NPS_MAX, NPS_MIN, SurveyStatus

STATUSES: tuple[str, ...] = tuple(v.value for v in SurveyStatus)
"""Survey outcomes (:class:`~monitor.core.vocab.SurveyStatus`); ``unreachable`` only for failed callbacks."""
_COMPLETED, _PARTIAL, _NO_INPUT, _INVALID, _HANGUP, _DECLINED = (
    SurveyStatus.COMPLETED.value, SurveyStatus.PARTIAL.value, SurveyStatus.NO_INPUT.value,
    SurveyStatus.INVALID.value, SurveyStatus.HANGUP.value, SurveyStatus.DECLINED.value,
)

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

    def questions(self) -> tuple[Question, ...]:
        """The questions asked, in order: CSAT first (required), then the optional ones."""
        t = self.config.digit_timeout_ms
        qs = [Question("csat", CSAT_MIN, CSAT_MAX, 1, t, True)]
        if self.config.ask_nps:
            qs.append(Question("nps", NPS_MIN, NPS_MAX, 2, t, False))
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


@dataclass(frozen=True, slots=True)
class Ask:
    """Play a prompt and collect up to ``max_digits`` (AGI GET DATA)."""

    prompt: str
    max_digits: int
    timeout_ms: int


@dataclass(frozen=True, slots=True)
class Play:
    """Play a prompt (AGI STREAM FILE)."""

    prompt: str


@dataclass(frozen=True, slots=True)
class SetVar:
    """Set a channel variable for the dialplan (AGI SET VARIABLE)."""

    name: str
    value: str


@dataclass(frozen=True, slots=True)
class Outcome:
    """How a conversation ended."""

    status: str
    csat: int | None = None
    nps: int | None = None
    ces: int | None = None
    raw: str = ""  # every key string typed, for audits: "csat=9,5;nps=10"
    duration_s: float = 0.0


@dataclass(frozen=True, slots=True)
class Done:
    """The conversation is over; nothing more to send."""

    outcome: Outcome


Command = Ask | Play | SetVar | Done


@dataclass(frozen=True, slots=True)
class Reply:
    """A normalised AGI reply: ``hangup`` for HANGUP/-1/511/closed; digits empty when nothing was typed."""

    hangup: bool = False
    digits: str = ""
    timeout: bool = False


@dataclass
class Conversation:
    """The survey dialogue: one retry per question, optional questions skippable, a total time limit."""

    policy: SurveyPolicy
    lang: str
    started: float
    intro: bool = False  # callback surveys first say who is calling
    answers: dict[str, int] = field(default_factory=dict)
    typed: dict[str, list[str]] = field(default_factory=dict)
    _qs: tuple[Question, ...] = ()
    _qi: int = 0
    _attempt: int = 0
    _last_fail: str = ""
    _status: str | None = None
    _pending: deque[Command] = field(default_factory=deque)
    _awaiting: Command | None = None
    _ended: float | None = None

    def start(self, now: float) -> Command:
        """The first command to send."""
        self._qs = self.policy.questions()
        if self.intro:
            self._pending.append(Play(self.policy.prompt(self.lang, "callback_intro")))
        self._pending.append(self._ask())
        return self._next(now)

    def feed(self, reply: Reply, now: float) -> Command:
        """The reply to the last command -> the next command (a :class:`Done` at the end)."""
        sent, self._awaiting = self._awaiting, None
        if isinstance(sent, Done):
            return sent
        if reply.hangup:
            return self._finish(now, hangup=True)
        if isinstance(sent, Ask):
            self._answer(reply.digits.strip(), now)
        return self._next(now)

    # -- internals

    def _ask(self) -> Ask:
        q = self._qs[self._qi]
        return Ask(self.policy.prompt(self.lang, q.key), q.max_digits, q.timeout_ms)

    def _next(self, now: float) -> Command:
        if self._status is None and now - self.started > self.policy.config.max_duration_s:
            # Too long: stop asking, keep what we have, say goodbye.
            self._pending.clear()
            self._close(self._final_status(None), "goodbye")
        cmd = self._pending.popleft() if self._pending else self._finish(now, hangup=False)
        self._awaiting = cmd
        return cmd

    def _answer(self, digits: str, now: float) -> None:
        q = self._qs[self._qi]
        self.typed.setdefault(q.key, []).append(digits)
        if digits.startswith(DECLINE_KEY):
            self._close(_PARTIAL if "csat" in self.answers else _DECLINED, "goodbye")
            return
        value = q.parse(digits)
        if value is not None:
            self.answers[q.key] = value
            self._advance()
            return
        self._last_fail = _INVALID if digits else _NO_INPUT
        if self._attempt == 0:
            self._attempt = 1
            self._pending.append(Play(self.policy.prompt(self.lang, "invalid" if digits else "noinput")))
            self._pending.append(self._ask())
        elif q.required:
            self._close(self._last_fail, "goodbye")
        else:
            self._advance()  # an optional question may stay unanswered

    def _advance(self) -> None:
        self._qi += 1
        self._attempt = 0
        if self._qi < len(self._qs):
            self._pending.append(self._ask())
        else:
            self._close(self._final_status(None), "thanks")

    def _final_status(self, hangup: bool | None) -> str:
        if "csat" not in self.answers:
            return _HANGUP if hangup else (self._last_fail or _NO_INPUT)
        return _COMPLETED if all(q.key in self.answers for q in self._qs) else _PARTIAL

    def _close(self, status: str, farewell: str) -> None:
        # Variables first: they must be set even if the caller hangs up during the farewell.
        self._status = status
        self._pending.append(SetVar("QMON_SURVEY_STATUS", status))
        if "csat" in self.answers:
            self._pending.append(SetVar("QMON_CSAT", str(self.answers["csat"])))
        self._pending.append(Play(self.policy.prompt(self.lang, farewell)))

    def _finish(self, now: float, hangup: bool) -> Done:
        if self._ended is None:
            self._ended = now
        status = self._status or self._final_status(hangup)
        raw = ";".join(f"{k}={','.join(v)}" for k, v in self.typed.items())
        out = Outcome(status, self.answers.get("csat"), self.answers.get("nps"), self.answers.get("ces"), raw,
                      round(self._ended - self.started, 3))
        self._pending.clear()
        done = Done(out)
        self._awaiting = done
        return done
