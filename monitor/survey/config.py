"""From :class:`~monitor.settings.SurveySettings` to the survey's own config objects (errors all at once)."""

from __future__ import annotations

import re

from monitor.core.survey import PROMPT_KEYS, PolicyConfig, parse_quiet_hours
from monitor.settings import SurveySettings
from monitor.survey.callback import CallbackConfig

# A dialplan variable (QMON_X, __INHERITED) or a function with an argument (CDR(userfield), CDR(qmon_survey)).
_VAR_RE = re.compile(r"^_{0,2}[A-Za-z][A-Za-z0-9_]*(\([A-Za-z0-9_.,-]+\))?$")


def _pairs(name: str, items: tuple[str, ...], errors: list[str]) -> list[tuple[str, str]]:
    out = []
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip() or not value.strip():
            errors.append(f"survey.{name}: {item!r} is not KEY=VALUE")
            continue
        out.append((key.strip(), value.strip()))
    return out


def policy_config(s: SurveySettings) -> PolicyConfig:
    """The pure policy config; ValueError listing every bad survey setting."""
    errors: list[str] = []
    quiet = None
    try:
        quiet = parse_quiet_hours(s.quiet_hours)
    except ValueError as exc:
        errors.append(f"survey.{exc}")
    sampling: list[tuple[str, float]] = []
    for q, v in _pairs("queue_sampling", s.queue_sampling, errors):
        try:
            rate = float(v)
            if not 0.0 <= rate <= 1.0:
                raise ValueError
            sampling.append((q, rate))
        except ValueError:
            errors.append(f"survey.queue_sampling: {q}: {v!r} is not a rate from 0 to 1")
    if not 0.0 <= s.sampling_rate <= 1.0:
        errors.append("survey.sampling_rate: must be from 0 to 1")
    files = _pairs("prompt_files", s.prompt_files, errors)
    errors += [f"survey.prompt_files: unknown prompt {k!r}" for k, _ in files if k not in PROMPT_KEYS]
    langs = _pairs("queue_language", s.queue_language, errors)
    errors += [f"survey.queue_language: {q}: {v!r} not in languages" for q, v in langs if v not in s.languages]
    if s.default_language not in s.languages:
        errors.append(f"survey.default_language: {s.default_language!r} not in languages")
    if "{lang}" not in s.prompt_path or "{name}" not in s.prompt_path:
        errors.append("survey.prompt_path: must contain {lang} and {name}")
    errors += _timing_errors(s)
    if errors:
        raise ValueError("; ".join(errors))
    return PolicyConfig(
        queues=s.queues, sampling_rate=s.sampling_rate, queue_sampling=tuple(sampling), seed=s.seed,
        cooldown_days=s.cooldown_days, quiet_hours=quiet, ask_nps=s.ask_nps, ask_ces=s.ask_ces,
        max_duration_s=s.max_duration_s, digit_timeout_ms=s.digit_timeout_ms,
        default_language=s.default_language, languages=s.languages, queue_language=tuple(langs),
        prompt_path=s.prompt_path, prompt_files=tuple(files),
    )


def _timing_errors(s: SurveySettings) -> list[str]:
    """The never-silence and time-limit settings (seconds), and the trace variable's name."""
    errors = [f"survey.{k}: must be more than 0 (seconds)" for k in ("work_deadline_s", "reply_slack_s")
              if not getattr(s, k) > 0]
    if s.max_duration_s < 0:
        errors.append("survey.max_duration_s: must not be negative (0 = computed from the prompts' lengths)")
    if not 1000 <= s.digit_timeout_ms <= 60_000:
        errors.append("survey.digit_timeout_ms: must be from 1000 to 60000 (milliseconds)")
    if s.trace_var and not _VAR_RE.match(s.trace_var):
        errors.append(f"survey.trace_var: {s.trace_var!r} is not a variable name or FUNCTION(arg), "
                      "e.g. CDR(userfield), or empty for none")
    return errors


def callback_config(s: SurveySettings) -> CallbackConfig:
    """The callback scheduler's config; ValueError listing every bad callback setting (when callbacks are on)."""
    errors: list[str] = []
    if s.callback_enabled:
        if "{number}" not in s.callback_channel:
            errors.append("survey.callback_channel: must contain {number}, e.g. PJSIP/{number}@trunk")
        if not s.callback_answer_timeout_s > 0:
            errors.append("survey.callback_answer_timeout_s: must be more than 0 (seconds of ringing)")
        if s.callback_max_attempts < 1:
            errors.append("survey.callback_max_attempts: must be at least 1")
        if s.callback_retry_delay_s < 0 or s.callback_delay_s < 0:
            errors.append("survey.callback_delay_s / callback_retry_delay_s: must not be negative")
    if errors:
        raise ValueError("; ".join(errors))
    # One ring limit: the Originate's Timeout and how long qmon holds an attempt in flight are the same setting.
    return CallbackConfig(
        channel=s.callback_channel, context=s.callback_context, exten=s.callback_exten,
        caller_id=s.callback_caller_id, delay_s=s.callback_delay_s, retry_delay_s=s.callback_retry_delay_s,
        max_attempts=s.callback_max_attempts, rate_per_min=s.callback_rate_per_min,
        answer_timeout_s=s.callback_answer_timeout_s,
    )
