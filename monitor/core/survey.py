"""Post-call survey policy and conversation state machine (pure: no I/O, time passed in).

The FastAGI adapter (:mod:`monitor.survey.server`) asks :class:`SurveyPolicy` whether a call may be
surveyed, then drives a :class:`Conversation`: it executes each :data:`Command` on the channel and feeds the
normalised :class:`Reply` back. The conversation never blocks and never waits: the adapter owns the clock.
"""

from __future__ import annotations

import hashlib
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import time as dtime
from typing import Protocol

from monitor.core.records import CallRecord, Survey

STATUSES = ("completed", "partial", "no_input", "invalid", "hangup", "declined", "not_eligible", "unreachable")
"""Survey outcomes; ``unreachable`` only for callback surveys whose originate failed every attempt."""

# Core Survey.status vocabulary shared with dialplan-only UserEvent surveys, so reports count both alike.
_CORE_STATUS = {"completed": "OK", "partial": "OK", "no_input": "NOINPUT", "invalid": "INVALID"}

PROMPT_KEYS = ("csat", "nps", "ces", "invalid", "noinput", "thanks", "goodbye", "callback_intro")
DEFAULT_PROMPT_FILES = {
    "csat": "csat-question", "nps": "nps-question", "ces": "ces-question", "invalid": "invalid",
    "noinput": "noinput", "thanks": "thanks", "goodbye": "goodbye", "callback_intro": "callback-intro",
}
DECLINE_KEY = "*"

# Conservative prompt lengths (s) for prompts without a measured duration: longer than every shipped prompt
# (the longest, pl csat-question, plays 16.2 s), so an unknown prompt makes qmon stop asking early, never late.
DEFAULT_PROMPT_SECONDS = {
    "csat-question": 18.0, "nps-question": 12.0, "ces-question": 12.0, "callback-intro": 12.0,
    "invalid": 5.0, "noinput": 5.0, "thanks": 5.0, "goodbye": 5.0,
}
MIN_DIGIT_S = 1.5  # a GET DATA with less time than this per digit is not worth asking
MARGIN_S = 1.0  # round trips and SET VARIABLEs around the farewell


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
        qs = [Question("csat", 1, 5, 1, t, True)]
        if self.config.ask_nps:
            # 3 digits, not 2: the prompt says "then press hash", and with 2 allowed "10#" ends GET DATA at the
            # second digit, so the # spills into the next question's GET DATA (recorded: "200 result=").
            qs.append(Question("nps", 0, 10, 3, t, False))
        if self.config.ask_ces:
            qs.append(Question("ces", 1, 5, 1, t, False))
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
class PromptDurations:
    """How long each prompt plays (s), per language and file name: ``{"en": {"csat-question": 10.03}}``."""

    seconds: Mapping[str, Mapping[str, float]] = field(default_factory=dict)

    def of(self, lang: str, name: str, key: str) -> float:
        """Seconds of prompt file ``name`` (prompt ``key``) in ``lang``; a conservative default if unmeasured."""
        v = self.seconds.get(lang, {}).get(name)
        if v is not None:
            return float(v)
        return DEFAULT_PROMPT_SECONDS.get(DEFAULT_PROMPT_FILES.get(key, ""), max(DEFAULT_PROMPT_SECONDS.values()))


@dataclass(frozen=True, slots=True)
class Ask:
    """Play a prompt and collect up to ``max_digits`` (AGI GET DATA); ``expect_s`` = the prompt's length."""

    prompt: str
    max_digits: int
    timeout_ms: int
    expect_s: float = field(default=0.0, compare=False)


@dataclass(frozen=True, slots=True)
class Play:
    """Play a prompt (AGI STREAM FILE); ``expect_s`` = the prompt's length."""

    prompt: str
    expect_s: float = field(default=0.0, compare=False)


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
    """The survey dialogue: one retry per question, optional questions skippable, a total time limit.

    The limit (``max_duration_s``) is kept by each command itself, not only between commands: a prompt is
    played only if its length (``durations``) fits in what is left, and a GET DATA's digit timeout is cut to
    what is left, always keeping room for the farewell. ``trace_var`` (e.g. ``CDR(userfield)``) receives
    ``qmon:csat=5;nps=9;status=completed`` so Asterisk's own records carry the answer.
    """

    policy: SurveyPolicy
    lang: str
    started: float
    intro: bool = False  # callback surveys first say who is calling
    durations: PromptDurations = field(default_factory=PromptDurations)
    trace_var: str = ""
    answers: dict[str, int] = field(default_factory=dict)
    typed: dict[str, list[str]] = field(default_factory=dict)
    _qs: tuple[Question, ...] = ()
    _qi: int = 0
    _attempt: int = 0
    _hash_eaten: bool = False
    _last_fail: str = ""
    _status: str | None = None
    _pending: deque[Command] = field(default_factory=deque)
    _awaiting: Command | None = None
    _ended: float | None = None
    _keys: dict[str, str] = field(default_factory=dict)  # sound name -> prompt key

    def start(self, now: float) -> Command:
        """The first command to send."""
        self._qs = self.policy.questions()
        self._keys = {self.policy.prompt(self.lang, k): k for k in PROMPT_KEYS}
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
            if self._status is not None:
                return self._finish(now, hangup=True)
            # The caller is gone, but SET VARIABLE still works on a dead channel (res_agi.c allows it there):
            # leave the result for the dialplan and the CDR; a 511 to these simply ends the conversation.
            self._ended = now
            self._pending.clear()
            self._status = self._final_status(True)
            self._push_vars()
            return self._next(now)
        if isinstance(sent, Ask):
            self._answer(reply.digits.strip(), reply.timeout)
        return self._next(now)

    def give_up(self, now: float) -> Command:
        """qmon itself is too slow to go on: keep what was answered, say goodbye, end."""
        self._awaiting = None
        if self._status is None:
            self._pending.clear()
            self._close(self._final_status(None), "goodbye")
        return self._next(now)

    def trace(self) -> str:
        """The one-line result for Asterisk's records: ``qmon:csat=5;nps=10;status=completed``."""
        parts = [f"{k}={self.answers[k]}" for k in ("csat", "nps", "ces") if k in self.answers]
        return "qmon:" + ";".join([*parts, f"status={self._status or 'hangup'}"])

    # -- internals

    def _ask(self) -> Ask:
        q = self._qs[self._qi]
        return Ask(self.policy.prompt(self.lang, q.key), q.max_digits, q.timeout_ms)

    def _secs(self, prompt: str) -> float:
        key = self._keys.get(prompt, "")
        return self.durations.of(self.lang, self.policy.prompt_file(key) if key else prompt, key)

    def _reserve(self) -> float:
        return max(self._secs(self.policy.prompt(self.lang, k)) for k in ("thanks", "goodbye")) + MARGIN_S

    def _fit(self, cmd: Command, now: float) -> Command | None:
        """``cmd`` as it fits in the time left (an Ask's digit timeout cut), or None if it does not fit."""
        if isinstance(cmd, SetVar | Done):
            return cmd
        left = self.policy.config.max_duration_s - (now - self.started)
        d = self._secs(cmd.prompt)
        if isinstance(cmd, Play):
            if self._status is not None:  # the farewell: played only if it still fits
                return replace(cmd, expect_s=d) if d <= left else None
            nxt = self._pending[0] if self._pending else None
            # "invalid"/"noinput"/intro are worth playing only if the question after them fits too.
            after = self._secs(nxt.prompt) + MIN_DIGIT_S * nxt.max_digits if isinstance(nxt, Ask) else 0.0
            return replace(cmd, expect_s=d) if d + after + self._reserve() <= left else None
        per_digit = min(cmd.timeout_ms / 1000, (left - self._reserve() - d) / cmd.max_digits)
        if per_digit < MIN_DIGIT_S:
            return None
        return replace(cmd, timeout_ms=int(per_digit * 1000), expect_s=d)

    def _next(self, now: float) -> Command:
        if self._status is None and now - self.started > self.policy.config.max_duration_s:
            self._out_of_time()
        while self._pending:
            cmd = self._fit(self._pending.popleft(), now)
            if cmd is not None:
                self._awaiting = cmd
                return cmd
            if self._status is None:
                self._out_of_time()
        return self._finish(now, hangup=False)

    def _out_of_time(self) -> None:
        # Too long: stop asking, keep what we have, say goodbye (if even that fits).
        self._pending.clear()
        self._close(self._final_status(None), "goodbye")

    def _answer(self, digits: str, timeout: bool) -> None:
        q = self._qs[self._qi]
        if not digits and not timeout and not self._hash_eaten:
            # "200 result=" without "(timeout)": a lone #, typically the one a caller adds after an answer
            # that had already ended GET DATA. Consumed once per question: ask again, no "did not hear".
            self._hash_eaten = True
            self.typed.setdefault(q.key, []).append("#")
            self._pending.append(self._ask())
            return
        self.typed.setdefault(q.key, []).append(digits)
        if digits.startswith(DECLINE_KEY):
            self._close("partial" if "csat" in self.answers else "declined", "goodbye")
            return
        value = q.parse(digits)
        if value is not None:
            self.answers[q.key] = value
            self._advance()
            return
        self._last_fail = "invalid" if digits else "no_input"
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
        self._hash_eaten = False
        if self._qi < len(self._qs):
            self._pending.append(self._ask())
        else:
            self._close(self._final_status(None), "thanks")

    def _final_status(self, hangup: bool | None) -> str:
        if "csat" not in self.answers:
            return "hangup" if hangup else (self._last_fail or "no_input")
        return "completed" if all(q.key in self.answers for q in self._qs) else "partial"

    def _push_vars(self) -> None:
        self._pending.append(SetVar("QMON_SURVEY_STATUS", self._status or "hangup"))
        if "csat" in self.answers:
            self._pending.append(SetVar("QMON_CSAT", str(self.answers["csat"])))
        if self.trace_var:
            self._pending.append(SetVar(self.trace_var, self.trace()))

    def _close(self, status: str, farewell: str) -> None:
        # Variables first: they must be set even if the caller hangs up during the farewell.
        self._status = status
        self._push_vars()
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


# -- results ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SurveyResultRecord:
    """One survey attempt, ready for storage, metrics and the webhook (caller number included: no labels!)."""

    linkedid: str | None
    uniqueid: str | None
    caller: str | None
    queue: str | None
    agent: str | None
    status: str
    csat: int | None
    nps: int | None
    ces: int | None
    raw: str
    language: str
    source: str  # agi | callback
    started_ts: float
    ended_ts: float
    reason: str = "ok"  # the policy reason when not_eligible, else ok / the failure detail

    def to_survey(self) -> Survey:
        """The core :class:`Survey` attached to the call (status in the UserEvent vocabulary)."""
        status = _CORE_STATUS.get(self.status, self.status.upper())
        return Survey(self.queue, self.agent, status, self.csat, self.raw, self.source, self.ended_ts,
                      self.nps, self.ces, self.status)

    def with_status(self, status: str, reason: str) -> SurveyResultRecord:
        """A copy with another status (e.g. a callback that never connected)."""
        return replace(self, status=status, reason=reason)
