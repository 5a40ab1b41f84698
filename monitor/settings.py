"""Frozen settings of every component (defaults = documented behaviour).

Loading (TOML file + ``QMON_*`` env + flags, validation, masking) lives in :mod:`monitor.config`;
components receive these objects and never read the environment themselves.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass, field

from monitor.core.repeat import WITHHELD_NUMBERS

#: Bounds (s) of the queue-wait histogram. The service-level threshold must be one of them: the service level is
#: read from the histogram's ``le`` bucket, so a threshold between bounds could not be answered.
WAIT_BUCKETS_S = (5, 10, 15, 20, 30, 45, 60, 90, 120, 180, 300, 600)


@dataclass(frozen=True)
class AmiSettings:
    """One AMI connection (several may be configured; each has a ``name`` used as the ``pbx`` label)."""

    name: str = "default"
    host: str = "127.0.0.1"
    port: int = 5038
    username: str = "qmon"
    secret: str = field(default="", repr=False)  # never logged; from env or secret_file
    secret_file: str | None = None
    connect_timeout_s: float = 10.0
    ping_interval_s: float = 20.0
    backoff_initial_s: float = 0.5
    backoff_max_s: float = 30.0
    resync_timeout_s: float = 10.0


@dataclass(frozen=True)
class TrackerSettings:
    """Definitions used by the call tracker and reports."""

    abandon_short_s: float = 5.0
    sl_threshold_s: float = 20.0  # one of WAIT_BUCKETS_S
    repeat_windows: tuple[str, ...] = ("24h",)
    repeat_max_entries: int = 500_000
    queues: tuple[str, ...] = ()  # known queues: their series exist at 0 from the start
    late_grace_s: float = 2.0  # a call's record is final this long after its caller's hang-up (late app_queue events)
    home_region: str = ""  # ISO 3166 region of national caller numbers (e.g. "PL"): E.164 for repeat callers
    trunk_prefixes: tuple[str, ...] = ()  # prefixes the trunk puts before caller numbers (stripped)
    withheld_numbers: tuple[str, ...] = WITHHELD_NUMBERS  # never a caller (empty and all-zero numbers always)
    # Supervisor's view (issue 13): see monitor.core.agents, monitor.core.servicelevel, monitor.core.owed.
    pause_reasons: tuple[str, ...] = ()  # pause reasons kept as labels; any other is "other" (raw text stored)
    sl_definition: str = "offered_no_short"  # the service level shown per queue (a servicelevel.SL_DEFINITIONS)
    queue_sl_definition: tuple[str, ...] = ()  # "queue=definition" overrides per queue
    queue_wrapup_s: tuple[str, ...] = ()  # "queue=seconds": queues.conf wrapuptime, for members whose own is 0
    owed_horizon_s: float = 14_400.0  # an owed callback not reached within this is truly abandoned (4 h)


@dataclass(frozen=True)
class HttpSettings:
    """The HTTP server (/metrics, /healthz, /readyz, /api/v1)."""

    bind: str = "127.0.0.1"
    port: int = 9465
    token: str = field(default="", repr=False)  # bearer token; empty = no auth
    token_file: str | None = None


@dataclass(frozen=True)
class StoreSettings:
    """Where call records go."""

    url: str = field(default="sqlite+aiosqlite:///qmon.db", repr=False)  # may hold a password
    url_file: str | None = None  # a file holding the URL (so its password stays out of the config file)
    journal_path: str = "qmon-journal.jsonl"
    queue_size: int = 10_000
    batch_size: int = 200
    flush_interval_s: float = 1.0
    drain_timeout_s: float = 10.0
    retention_days: int | None = None
    hash_callers: bool = False
    hash_salt: str = field(default="", repr=False)
    auto_migrate: bool | None = None  # None: migrate SQLite on start, never PostgreSQL (use `qmon db upgrade`)
    connect_timeout_s: float = 5.0
    sqlite_busy_timeout_s: float = 5.0
    retry_max_s: float = 30.0  # cap of the retry backoff while the database is down


@dataclass(frozen=True)
class SurveySettings:
    """The FastAGI survey server and its policy."""

    enabled: bool = True
    bind: str = "127.0.0.1"
    port: int = 4573
    header_timeout_s: float = 5.0
    max_header_bytes: int = 16_384
    # Surveys at once; beyond it callers hear goodbye at once. Up to 2x this many descriptors (see docs).
    max_sessions: int = 200
    sampling_rate: float = 1.0
    cooldown_days: float = 7.0
    quiet_hours: str = ""  # e.g. "21:00-08:00", local time of the daemon
    queues: tuple[str, ...] = ()  # empty = every queue
    ask_nps: bool = False
    ask_ces: bool = False
    # 0 = computed: the longest honest survey from the prompts' lengths (what asterisk/budget.py sizes the dialplan's
    # TIMEOUT(absolute) from, minus its 3 s margin), so qmon has said goodbye before Asterisk hangs up.
    max_duration_s: float = 0.0
    default_language: str = "en"
    webhook_url: str = ""
    webhook_max_score: int = 2
    callback_enabled: bool = False
    callback_channel: str = ""  # e.g. "PJSIP/{number}@trunk"
    callback_context: str = "qmon-survey-callback"
    callback_delay_s: float = 60.0
    callback_max_attempts: int = 2
    callback_rate_per_min: int = 10
    # Added for the survey server (issue 6); "key=value" strings so TOML lists and env vars map simply.
    state_path: str = "qmon-survey.db"  # opt-out list + last-surveyed-at (SQLite)
    seed: str = "qmon"  # sampling hash seed: the same call always gets the same sampling decision
    queue_sampling: tuple[str, ...] = ()  # "queue=0.25"
    queue_language: tuple[str, ...] = ()  # "queue=pl"
    languages: tuple[str, ...] = ("en", "pl")  # languages with installed prompts
    prompt_path: str = "qmon/{lang}/{name}"  # Asterisk sound name, no extension
    prompt_files: tuple[str, ...] = ()  # "csat=my-csat-recording" (keys: csat nps ces invalid noinput ...)
    digit_timeout_ms: int = 5000
    webhook_retries: int = 3
    callback_exten: str = "s"
    callback_caller_id: str = ""
    callback_retry_delay_s: float = 300.0
    callback_answer_timeout_s: float = 30.0
    # Never silence (issue 12): qmon's own work before the first prompt (call lookup, cooldown and opt-out stores)
    # may take this long (s); past it the caller hears goodbye at once.
    work_deadline_s: float = 2.0
    reply_slack_s: float = 5.0  # a reply may take its prompt's length + digit timeouts + this (s); then dropped
    trace_var: str = "CDR(userfield)"  # the channel variable the result is written to; "" = none
    durations_file: str = ""  # JSON {"<lang>": {"<prompt file>": seconds}} of your own prompts; "" = the shipped


@dataclass(frozen=True)
class WallboardSettings:
    """The live wallboard at ``/``: service-level targets and how often the page is refreshed."""

    enabled: bool = True
    sl_target: float = 0.8  # green at or above this service level (0..1)
    sl_amber_margin: float = 0.05  # amber from sl_target - margin up to sl_target, red below
    queue_sl_target: tuple[str, ...] = ()  # "queue=0.9": per-queue targets
    abandon_target: float = 0.05  # abandonment today at or below this is green (0..1)
    abandon_amber_margin: float = 0.03  # amber up to abandon_target + margin, red above
    refresh_s: float = 2.0  # the page's server-sent events: one snapshot this often
    cookie_max_age_s: int = 30 * 86400  # how long a TV stays logged in after opening /?token=...


@dataclass(frozen=True)
class Settings:
    """Everything ``qmon run`` needs."""

    ami: tuple[AmiSettings, ...] = (AmiSettings(),)
    tracker: TrackerSettings = TrackerSettings()
    http: HttpSettings = HttpSettings()
    store: StoreSettings = StoreSettings()
    survey: SurveySettings = SurveySettings()
    wallboard: WallboardSettings = WallboardSettings()
    log_level: str = "INFO"
    status_interval_s: float = 60.0  # the periodic one-line status on the log; 0 = never
    config_file: str | None = None


def queue_numbers(entries: Iterable[str], low: float, high: float) -> tuple[dict[str, float], list[str]]:
    """``["queue=number", ...]`` as {queue: number} for numbers in [low, high], and the entries that are not."""
    out: dict[str, float] = {}
    bad: list[str] = []
    for p in entries:
        queue, sep, value = p.partition("=")
        try:
            number = float(value) if sep and queue.strip() else math.nan
        except ValueError:
            number = math.nan
        if low <= number <= high:
            out[queue.strip()] = number
        else:
            bad.append(p)
    return out, bad


def wrapup_pairs(t: TrackerSettings) -> tuple[tuple[str, float], ...]:
    """``queue_wrapup_s`` as (queue, seconds) pairs for ``TrackerConfig.wrapup_s``; ValueError names a bad entry."""
    out, bad = queue_numbers(t.queue_wrapup_s, 0.0, math.inf)
    if bad:
        raise ValueError(f"queue_wrapup_s: {bad[0]!r} is not queue=seconds (seconds >= 0)")
    return tuple(out.items())
