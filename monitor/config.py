"""The only settings loader: TOML text + ``QMON_*`` env + flags -> frozen :class:`~monitor.settings.Settings`.

Pure: the caller hands in the TOML text, the environment, the flags (already parsed, as text) and a function that
reads ``*_file`` secrets; nothing here touches the file system or a database library. Precedence (lowest first):
built-in defaults, the TOML file, environment variables, flags. Every problem is collected and raised together in
one :class:`ConfigError`. A command names the sections it ``needs``: only those are checked in depth and only
their secrets are required (``qmon report`` never asks for the AMI secret). See ``docs/configuration.md``.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Collection, Mapping
from typing import TYPE_CHECKING, Any

from monitor.config_text import (
    SECRET_FIELDS,
    FileReader,
    apply_section,
    env_for,
    env_name,
    field_types,
    no_files,
    parse_toml,
    read_secret,
    show,
)
from monitor.core.repeat import NumberNormalizer, parse_window
from monitor.core.servicelevel import sl_definition_map
from monitor.settings import (
    WAIT_BUCKETS_S,
    AmiSettings,
    HttpSettings,
    Settings,
    StoreSettings,
    SurveySettings,
    TrackerSettings,
    WallboardSettings,
    queue_numbers,
    wrapup_pairs,
)
from monitor.urls import check_url, db_url, mask_url, mask_webhook, sqlite_path

if TYPE_CHECKING:
    from monitor.core.tracker import TrackerConfig

SECTIONS: dict[str, type[Any]] = {
    "tracker": TrackerSettings, "http": HttpSettings, "store": StoreSettings, "survey": SurveySettings,
    "wallboard": WallboardSettings,
}
#: Secrets come from env or a *_file, never from the TOML itself.
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
MAX_SESSIONS = 10_000  # survey.max_sessions: far beyond any PBX's simultaneous surveys, still a bound
#: A PBX name (``[[ami]] name``, ``--pbx``): the ``pbx`` label and part of every stored call's key.
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")


class ConfigError(Exception):
    """One or more configuration problems, each ``key: reason``."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


ALL_SECTIONS = frozenset({"ami", "tracker", "http", "store", "survey"})
_TOP = tuple(f.name for f in dataclasses.fields(Settings) if f.name not in SECTIONS and f.name not in (
    "ami", "config_file"))


def load_settings(env: Mapping[str, str], toml_text: str | None = None, *, source: str | None = None,
                  flags: Mapping[str, str] | None = None, needs: Collection[str] = ALL_SECTIONS,
                  read_file: FileReader = no_files) -> Settings:
    """Pure: the effective settings, or ConfigError listing every problem (``key: reason``).

    ``toml_text`` is the config file's text (``source`` its name, for messages); ``flags`` maps dotted keys
    (``http.port``, ``log_level``) to text as typed on the command line; ``needs`` names the sections the
    command uses: problems in other sections are not reported and their secrets are not required or read.
    """
    problems: list[str] = []
    data = parse_toml(toml_text, source or "config", problems) if toml_text is not None else {}
    used: set[str] = {"QMON_CONFIG"}
    flags = dict(flags or {})
    top = apply_section(Settings, "", {k: v for k, v in data.items() if k not in SECTIONS and k != "ami"}, False,
                 problems, False)
    env_top = {k: env[f"QMON_{k.upper()}"] for k in _TOP if f"QMON_{k.upper()}" in env}
    used |= {f"QMON_{k.upper()}" for k in env_top}
    top |= apply_section(Settings, "", env_top, True, problems, True)
    top |= apply_section(Settings, "", {k: flags.pop(k) for k in _TOP if k in flags}, True, problems, True)
    sections: dict[str, Any] = {}
    for name, cls in SECTIONS.items():
        raw = data.get(name, {})
        if not isinstance(raw, dict):
            problems.append(f"{name}: expected a table [{name}], got {show(raw)}")
            raw = {}
        values = apply_section(cls, name, raw, False, problems, False)
        values |= apply_section(cls, name, env_for(name, field_types(cls), env, used), True, problems, True)
        mine = {k.partition(".")[2]: flags.pop(k) for k in list(flags) if k.startswith(name + ".")}
        values |= apply_section(cls, name, mine, True, problems, True)
        sections[name] = values
    ami_flags = {k.partition(".")[2]: flags.pop(k) for k in list(flags) if k.startswith("ami.")}
    if flags:  # a programming error in a command, not a user mistake
        raise TypeError(f"unknown settings flags {sorted(flags)}")
    amis = _load_amis(data.get("ami"), env, used, problems, ami_flags)
    needs = frozenset(needs)
    _resolve_secrets(amis, sections, needs, read_file, problems)
    for k in sorted(k for k in env if k.startswith("QMON_") and k not in used and not _foreign(k)):
        problems.append(f"env {k}: unknown setting (see docs/configuration.md for the QMON_* names)")
    if "url" in sections["store"] and isinstance(sections["store"]["url"], str):
        sections["store"]["url"] = db_url(sections["store"]["url"])
    # Values of the wrong type were dropped above, so this builds; value checks then add their problems.
    settings = Settings(
        ami=tuple(AmiSettings(**a) for a in amis),
        **{name: SECTIONS[name](**v) for name, v in sections.items()}, **top, config_file=source,
    )
    problems += validate(settings, needs)
    problems = [p for p in problems if _section_of(p) in needs | {""}]
    if problems:
        raise ConfigError(problems)
    return settings


def queue_sl_targets(w: WallboardSettings) -> dict[str, float]:
    """``queue_sl_target`` as {queue: target 0..1}; ValueError naming the bad entries."""
    out, bad = queue_numbers(w.queue_sl_target, 0.0, 1.0)
    if bad:
        raise ValueError(f"wallboard.queue_sl_target: {', '.join(repr(b) for b in bad)} not queue=target (0..1)")
    return out


def wallboard_problems(w: WallboardSettings) -> list[str]:
    """Value checks of ``[wallboard]``."""
    p = [f"wallboard.{f}: must be from 0 to 1" for f in ("sl_target", "sl_amber_margin", "abandon_target",
                                                         "abandon_amber_margin") if not 0.0 <= getattr(w, f) <= 1.0]
    p += ["wallboard.refresh_s: must be from 0.2 to 60"] if not 0.2 <= w.refresh_s <= 60 else []
    p += ["wallboard.cookie_max_age_s: must be > 0"] if w.cookie_max_age_s <= 0 else []
    try:
        queue_sl_targets(w)
    except ValueError as exc:
        p.append(str(exc))
    return p


def _section_of(problem: str) -> str:
    """The section a problem is about (``""`` for the file, the top level and unknown env variables)."""
    key = problem.partition(":")[0]
    head = re.split(r"[.\[]", key, maxsplit=1)[0]
    if head == "env":  # "env QMON_X: unknown setting" concerns every command
        return ""
    return head if head in ALL_SECTIONS else ""


def tracker_config(t: TrackerSettings, pbx: str = "default") -> TrackerConfig:
    """The core tracker's knobs from the ``[tracker]`` settings of one PBX (the only place they are copied)."""
    from monitor.core.tracker import TrackerConfig  # lazy: `qmon --help` need not load the tracker

    return TrackerConfig(abandon_short_s=t.abandon_short_s, repeat_windows=t.repeat_windows,
                         repeat_max_entries=t.repeat_max_entries, pbx=pbx, late_grace_s=t.late_grace_s,
                         home_region=t.home_region, trunk_prefixes=t.trunk_prefixes,
                         withheld_numbers=t.withheld_numbers, pause_reasons=t.pause_reasons,
                         wrapup_s=wrapup_pairs(t), owed_horizon_s=t.owed_horizon_s)


def number_normalizer(t: TrackerSettings) -> NumberNormalizer:
    """The caller-number key of ``[tracker]`` (region, trunk prefixes, withheld): the tracker's, for opt-outs too."""
    return NumberNormalizer(t.home_region, t.trunk_prefixes, t.withheld_numbers)


def _foreign(key: str) -> bool:
    # Variables qmon sets in the dialplan / survey callback, not settings.
    return key in ("QMON_TRACEBACK", "QMON_SURVEY_TOKEN", "QMON_QUEUE", "QMON_LANG", "QMON_CSAT", "QMON_SURVEY_STATUS")


def _load_amis(raw: Any, env: Mapping[str, str], used: set[str], problems: list[str],
               flags: Mapping[str, str]) -> list[dict[str, Any]]:
    """The ``[[ami]]`` tables (one default when none): file < ``QMON_AMI_*`` env < flags (for every table)."""
    if raw is None:
        raw = [{}]
    if isinstance(raw, dict):
        raw = [raw]
    if not isinstance(raw, list) or not raw:
        problems.append(f"ami: expected one or more [[ami]] tables, got {show(raw)}")
        return [{}]
    hints = field_types(AmiSettings)
    out: list[dict[str, Any]] = []
    for i, table in enumerate(raw):
        if not isinstance(table, dict):
            problems.append(f"ami[{i}]: expected a table, got {show(table)}")
            continue
        name = table.get("name", "default" if len(raw) == 1 else None)
        if not isinstance(name, str) or not NAME_RE.match(name):
            problems.append(f"ami[{i}].name: required with several [[ami]], letters/digits/_.- (got {name!r})")
            name = f"ami{i}"
        prefix = f"ami[{name}]"
        values = apply_section(AmiSettings, prefix, table, False, problems, False)
        values |= apply_section(AmiSettings, prefix, env_for("ami", hints, env, used, name), True, problems, True)
        values |= apply_section(AmiSettings, prefix, flags, True, problems, True)
        values["name"] = name
        out.append(values)
    return out


def _resolve_secrets(amis: list[dict[str, Any]], sections: dict[str, Any], needs: frozenset[str],
                     read_file: FileReader, problems: list[str]) -> None:
    """Read the ``*_file`` secrets of the needed sections; the AMI secret is required only when AMI is needed."""
    for a in amis if "ami" in needs else []:
        key = f"ami[{a['name']}].secret"
        if not a.get("secret") and a.get("secret_file"):
            a["secret"] = read_secret(key, a["secret_file"], read_file, problems)
        if not a.get("secret") and not a.get("secret_file"):
            problems.append(f"{key}: missing: set QMON_AMI_SECRET (or QMON_AMI_{env_name(a['name'])}_SECRET) "
                            "or secret_file")
    http = sections["http"]
    token = http.get("token")
    if isinstance(token, str) and token != token.strip():
        # A header value cannot carry surrounding blanks: " " would lock every client out, "t " never match.
        if token.strip():
            http["token"] = token.strip()
        else:
            problems.append("http.token: only whitespace: set a real token, or unset QMON_HTTP_TOKEN for no auth")
            http["token"] = ""
    if "http" in needs and not http.get("token") and http.get("token_file"):
        http["token"] = read_secret("http.token", http["token_file"], read_file, problems)
    store = sections["store"]
    if "store" in needs and store.get("url_file") and "url" not in store:
        store["url"] = read_secret("store.url", store["url_file"], read_file, problems)


def _regions() -> frozenset[str]:
    import phonenumbers

    return frozenset(phonenumbers.SUPPORTED_REGIONS)


def validate(s: Settings, needs: Collection[str] = ALL_SECTIONS) -> list[str]:
    """Value checks across fields (ranges, names, URLs) once types are right."""
    p: list[str] = []
    names = [a.name for a in s.ami]
    p += [f"ami[{n}].name: used by more than one [[ami]]" for n in sorted({n for n in names if names.count(n) > 1})]
    for a in s.ami:
        k = f"ami[{a.name}]"
        p += [f"{k}.port: {a.port} is not a TCP port (1-65535)"] if not 0 < a.port < 65536 else []
        p += [f"{k}.host: empty"] if not a.host else []
        p += [f"{k}.{f}: must be > 0" for f in ("connect_timeout_s", "ping_interval_s", "backoff_initial_s",
                                                 "backoff_max_s", "resync_timeout_s") if getattr(a, f) <= 0]
    t = s.tracker
    p += ["tracker.abandon_short_s: must be >= 0"] if t.abandon_short_s < 0 else []
    # The service level is read from the wait histogram: the threshold must be one of its bucket bounds.
    p += [f"tracker.sl_threshold_s: {t.sl_threshold_s:g} is not a bound of the wait histogram (one of "
          f"{', '.join(str(b) for b in WAIT_BUCKETS_S)})"] if t.sl_threshold_s not in WAIT_BUCKETS_S else []
    p += ["tracker.repeat_max_entries: must be > 0"] if t.repeat_max_entries <= 0 else []
    p += ["tracker.late_grace_s: must be >= 0"] if t.late_grace_s < 0 else []
    if t.home_region and t.home_region.upper() not in _regions():
        p.append(f"tracker.home_region: {t.home_region!r} is not an ISO 3166 region phonenumbers knows (e.g. PL)")
    for w in t.repeat_windows:
        try:
            parse_window(w)
        except ValueError as exc:
            p.append(f"tracker.repeat_windows: {exc}")
    p += ["tracker.owed_horizon_s: must be > 0"] if t.owed_horizon_s <= 0 else []
    p += [f"tracker.trunk_prefixes: {x!r} is not a prefix (digits)" for x in t.trunk_prefixes if not x.isdigit()]
    supervisor: list[Callable[[], object]] = [lambda: sl_definition_map(t.sl_definition, t.queue_sl_definition),
                                              lambda: wrapup_pairs(t)]
    for validate in supervisor:
        try:
            validate()
        except ValueError as exc:
            p.append(f"tracker.{exc}")
    p += [f"http.port: {s.http.port} is not a TCP port (0-65535)"] if not 0 <= s.http.port < 65536 else []
    st = s.store
    p += check_url(st.url)
    p += [f"store.{f}: must be > 0" for f in ("queue_size", "batch_size", "flush_interval_s", "drain_timeout_s",
                                              "connect_timeout_s") if getattr(st, f) <= 0]
    p += ["store.hash_salt: required when hash_callers is on (QMON_STORE_HASH_SALT)"] if (
        st.hash_callers and not st.hash_salt) else []
    p += [f"log_level: {s.log_level!r} is not one of {', '.join(LOG_LEVELS)}"] if (
        s.log_level.upper() not in LOG_LEVELS) else []
    p += ["status_interval_s: must be >= 0 (0 = no status line)"] if s.status_interval_s < 0 else []
    p += wallboard_problems(s.wallboard)
    p += [f"survey.port: {s.survey.port} is not a TCP port (0-65535)"] if not 0 <= s.survey.port < 65536 else []
    p += [f"survey.max_sessions: {s.survey.max_sessions} is not from 1 to {MAX_SESSIONS}"] if (
        not 1 <= s.survey.max_sessions <= MAX_SESSIONS) else []
    if "survey" not in needs:
        return p
    from monitor.survey.config import callback_config, policy_config  # lazy: pulls in the survey adapter

    for check in (policy_config, callback_config):
        try:
            check(s.survey)
        except ValueError as exc:
            p += str(exc).split("; ")
    return p

# Re-exported: their homes are monitor.urls and monitor.config_text.
__all__ = ["SECRET_FIELDS", "db_url", "env_name", "mask_url", "mask_webhook", "parse_toml", "sqlite_path"]
