"""The survey dialogue (pure: no I/O, time passed in): what is asked, retries, the time budget, the trace.

The FastAGI adapter (:mod:`monitor.survey.server`) executes each :data:`Command` of a :class:`Conversation` on
the channel and feeds the normalised :class:`Reply` back. The conversation never blocks and never waits: the
adapter owns the clock.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from monitor.core.survey import DECLINE_KEY, DEFAULT_PROMPT_FILES, PROMPT_KEYS, Question, SurveyPolicy
from monitor.core.vocab import SurveyStatus

# Conservative prompt lengths (s) for prompts without a measured duration: longer than every shipped prompt
# (the longest, pl csat-question, plays 16.2 s), so an unknown prompt makes qmon stop asking early, never late.
DEFAULT_PROMPT_SECONDS = {
    "csat-question": 18.0, "nps-question": 12.0, "ces-question": 12.0, "callback-intro": 12.0,
    "invalid": 5.0, "noinput": 5.0, "thanks": 5.0, "goodbye": 5.0,
}
MIN_DIGIT_S = 1.5  # a GET DATA with less time than this per digit is not worth asking
MARGIN_S = 1.0  # round trips and SET VARIABLEs around the farewell


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

    def cut(self, now: float) -> Outcome:
        """The outcome of a conversation qmon ends before its end (its shutdown, ``now`` epoch s): the answers so
        far, the status as if the caller had hung up now (``partial`` with a CSAT answer, else ``hangup``)."""
        return self._finish(now, hangup=True).outcome

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
            self._close(SurveyStatus.PARTIAL if "csat" in self.answers else SurveyStatus.DECLINED, "goodbye")
            return
        value = q.parse(digits)
        if value is not None:
            self.answers[q.key] = value
            self._advance()
            return
        self._last_fail = SurveyStatus.INVALID if digits else SurveyStatus.NO_INPUT
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
            return SurveyStatus.HANGUP if hangup else (self._last_fail or SurveyStatus.NO_INPUT)
        return SurveyStatus.COMPLETED if all(q.key in self.answers for q in self._qs) else SurveyStatus.PARTIAL

    def _push_vars(self) -> None:
        self._pending.append(SetVar("QMON_SURVEY_STATUS", self._status or SurveyStatus.HANGUP))
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
