"""The only settings loader: TOML text + ``QMON_*`` env + flags -> frozen :class:`~monitor.settings.Settings`.

Pure: the caller hands in the TOML text, the environment, the flags (already parsed, as text) and a function that
reads ``*_file`` secrets; nothing here touches the file system or a database library. Precedence (lowest first):
built-in defaults, the TOML file, environment variables, flags. Every problem is collected and raised together in
one :class:`ConfigError`. A command names the sections it ``needs``: only those are checked in depth and only
their secrets are required (``qmon report`` never asks for the AMI secret). See ``docs/configuration.md``.
"""

from __future__ import annotations

import dataclasses
import math
import re
import tomllib
import types
import typing
import urllib.parse
from collections.abc import Callable, Collection, Mapping
from typing import TYPE_CHECKING, Any

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
    wrapup_pairs,
)

if TYPE_CHECKING:
    from monitor.core.tracker import TrackerConfig

SECTIONS: dict[str, type[Any]] = {
    "tracker": TrackerSettings, "http": HttpSettings, "store": StoreSettings, "survey": SurveySettings,
    "wallboard": WallboardSettings,
}
#: Secrets come from env or a *_file, never from the TOML itself.
SECRET_FIELDS = frozenset({"secret", "token", "hash_salt"})
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
MAX_SESSIONS = 10_000  # survey.max_sessions: far beyond any PBX's simultaneous surveys, still a bound
#: A PBX name (``[[ami]] name``, ``--pbx``): the ``pbx`` label and part of every stored call's key.
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")


class ConfigError(Exception):
    """One or more configuration problems, each ``key: reason``."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


def _hints(cls: type[Any]) -> dict[str, Any]:
    return typing.get_type_hints(cls)


_BAD: Any = object()  # a value of the wrong type (its problem is already recorded)


def _coerce(key: str, value: Any, hint: Any, from_text: bool, problems: list[str]) -> Any:
    """Check (or, for env/flags, parse) one value against its dataclass type; :data:`_BAD` + a problem if wrong.

    From text (env, flags) an empty string is None only for optional fields; for a number or a boolean it is a
    problem like any other text that is not one (never None passed on to the value checks).
    """
    args = typing.get_args(hint)
    if isinstance(hint, types.UnionType):  # X | None
        inner = next(a for a in args if a is not type(None))
        if value is None or (from_text and isinstance(value, str) and not value.strip()):
            return None
        return _coerce(key, value, inner, from_text, problems)
    if typing.get_origin(hint) is tuple:
        if from_text and isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            problems.append(f"{key}: expected a list of strings, got {_show(value)}")
            return _BAD
        return tuple(value)
    if hint is bool:
        if from_text and isinstance(value, str) and value.lower() in ("1", "true", "yes", "on", "0", "false", "no",
                                                                       "off"):
            return value.lower() in ("1", "true", "yes", "on")
        if isinstance(value, bool):
            return value
        problems.append(f"{key}: expected true or false, got {_show(value)}")
        return _BAD
    if hint is int or hint is float:
        if from_text and isinstance(value, str):
            try:
                value = int(value) if hint is int else float(value)
            except ValueError:
                pass
        if isinstance(value, float) and not math.isfinite(value):  # nan/inf pass every range check: refuse
            problems.append(f"{key}: expected a finite number, got {_show(value)}")
            return _BAD
        ok = isinstance(value, int) and not isinstance(value, bool)
        if hint is float:
            ok = ok or isinstance(value, float)
        if not ok:
            problems.append(f"{key}: expected {'an integer' if hint is int else 'a number'}, got {_show(value)}")
            return _BAD
        return float(value) if hint is float else value
    if hint is str:
        if not isinstance(value, str):
            problems.append(f"{key}: expected a string, got {_show(value)}")
            return _BAD
        return value
    raise TypeError(f"unsupported settings type {hint!r}")  # a programming error in settings.py


def _show(value: Any) -> str:
    return f"{type(value).__name__} {value!r}" if not isinstance(value, str) else f"string {value!r}"


def _apply(cls: type[Any], prefix: str, raw: Mapping[str, Any], from_text: bool, problems: list[str],
           allow_secrets: bool) -> dict[str, Any]:
    """Validated field values of one section (unknown keys and plain secrets in files are problems)."""
    hints = _hints(cls)
    out: dict[str, Any] = {}
    for k, v in raw.items():
        key = f"{prefix}.{k}" if prefix else k
        if k not in hints or (k == "config_file"):
            known = ", ".join(sorted(f.name for f in dataclasses.fields(cls) if f.name != "config_file"))
            problems.append(f"{key}: unknown key (known: {known})")
            continue
        if k in SECRET_FIELDS and not allow_secrets:
            env = f"QMON_AMI_{k.upper()}" if prefix.startswith("ami") else "QMON_" + key.replace(".", "_").upper()
            problems.append(f"{key}: secrets are not read from the config file: set {env} or {k}_file")
            continue
        if k == "url" and not allow_secrets and isinstance(v, str) and mask_url(v) != v:
            problems.append(f"{key}: holds a password: set QMON_STORE_URL or url_file instead")
            continue
        value = _coerce(key, v, hints[k], from_text, problems)
        if value is not _BAD:
            out[k] = value
    return out


def parse_toml(text: str, source: str, problems: list[str]) -> dict[str, Any]:
    """The TOML document (empty + a problem when it does not parse)."""
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        problems.append(f"--config: {source} is not valid TOML: {exc}")
    return {}


#: Reads a ``*_file`` secret: the file's text, or OSError. Given by the command (config.py does no I/O).
FileReader = Callable[[str], str]


def _no_files(path: str) -> str:
    raise OSError(f"no file reader given for {path}")


def _read_secret(key: str, path: str, read_file: FileReader, problems: list[str]) -> str:
    try:
        text = read_file(path)
    except (OSError, UnicodeDecodeError) as exc:
        problems.append(f"{key}: cannot read {path}: {getattr(exc, 'strerror', None) or exc}")
        return ""
    value = text.strip()
    if not value:
        problems.append(f"{key}: {path} is empty")
    return value


def _env_for(section: str, hints: Mapping[str, Any], env: Mapping[str, str], used: set[str],
             ami_name: str | None = None) -> dict[str, str]:
    """``QMON_<SECTION>_<FIELD>`` values; for AMI ``QMON_AMI_<NAME>_<FIELD>`` beats ``QMON_AMI_<FIELD>``."""
    out: dict[str, str] = {}
    for name in hints:
        if name == "name":
            continue
        keys = [f"QMON_{section.upper()}_{name.upper()}"]
        if ami_name is not None:
            keys.insert(0, f"QMON_AMI_{env_name(ami_name)}_{name.upper()}")
        for k in keys:
            if k in env:
                used.add(k)
                out.setdefault(name, env[k])
    return out


def env_name(name: str) -> str:
    """The env-var infix of an AMI connection name (``pbx-1`` -> ``PBX_1``)."""
    return re.sub(r"[^A-Za-z0-9]", "_", name).upper()


#: Every section a command may need; ``top`` is log_level and the other top-level keys.
ALL_SECTIONS = frozenset({"ami", "tracker", "http", "store", "survey"})
_TOP = tuple(f.name for f in dataclasses.fields(Settings) if f.name not in SECTIONS and f.name not in (
    "ami", "config_file"))


def load_settings(env: Mapping[str, str], toml_text: str | None = None, *, source: str | None = None,
                  flags: Mapping[str, str] | None = None, needs: Collection[str] = ALL_SECTIONS,
                  read_file: FileReader = _no_files) -> Settings:
    """Pure: the effective settings, or ConfigError listing every problem (``key: reason``).

    ``toml_text`` is the config file's text (``source`` its name, for messages); ``flags`` maps dotted keys
    (``http.port``, ``log_level``) to text as typed on the command line; ``needs`` names the sections the
    command uses: problems in other sections are not reported and their secrets are not required or read.
    """
    problems: list[str] = []
    data = parse_toml(toml_text, source or "config", problems) if toml_text is not None else {}
    used: set[str] = {"QMON_CONFIG"}
    flags = dict(flags or {})
    top = _apply(Settings, "", {k: v for k, v in data.items() if k not in SECTIONS and k != "ami"}, False,
                 problems, False)
    env_top = {k: env[f"QMON_{k.upper()}"] for k in _TOP if f"QMON_{k.upper()}" in env}
    used |= {f"QMON_{k.upper()}" for k in env_top}
    top |= _apply(Settings, "", env_top, True, problems, True)
    top |= _apply(Settings, "", {k: flags.pop(k) for k in _TOP if k in flags}, True, problems, True)
    sections: dict[str, Any] = {}
    for name, cls in SECTIONS.items():
        raw = data.get(name, {})
        if not isinstance(raw, dict):
            problems.append(f"{name}: expected a table [{name}], got {_show(raw)}")
            raw = {}
        values = _apply(cls, name, raw, False, problems, False)
        values |= _apply(cls, name, _env_for(name, _hints(cls), env, used), True, problems, True)
        mine = {k.partition(".")[2]: flags.pop(k) for k in list(flags) if k.startswith(name + ".")}
        values |= _apply(cls, name, mine, True, problems, True)
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
    out: dict[str, float] = {}
    bad: list[str] = []
    for p in w.queue_sl_target:
        queue, sep, value = p.partition("=")
        try:
            target = float(value) if sep and queue.strip() else -1.0
        except ValueError:
            target = -1.0
        if not 0.0 <= target <= 1.0:
            bad.append(p)
            continue
        out[queue.strip()] = target
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
        problems.append(f"ami: expected one or more [[ami]] tables, got {_show(raw)}")
        return [{}]
    hints = _hints(AmiSettings)
    out: list[dict[str, Any]] = []
    for i, table in enumerate(raw):
        if not isinstance(table, dict):
            problems.append(f"ami[{i}]: expected a table, got {_show(table)}")
            continue
        name = table.get("name", "default" if len(raw) == 1 else None)
        if not isinstance(name, str) or not NAME_RE.match(name):
            problems.append(f"ami[{i}].name: required with several [[ami]], letters/digits/_.- (got {name!r})")
            name = f"ami{i}"
        prefix = f"ami[{name}]"
        values = _apply(AmiSettings, prefix, table, False, problems, False)
        values |= _apply(AmiSettings, prefix, _env_for("ami", hints, env, used, name), True, problems, True)
        values |= _apply(AmiSettings, prefix, flags, True, problems, True)
        values["name"] = name
        out.append(values)
    return out


def _resolve_secrets(amis: list[dict[str, Any]], sections: dict[str, Any], needs: frozenset[str],
                     read_file: FileReader, problems: list[str]) -> None:
    """Read the ``*_file`` secrets of the needed sections; the AMI secret is required only when AMI is needed."""
    for a in amis if "ami" in needs else []:
        key = f"ami[{a['name']}].secret"
        if not a.get("secret") and a.get("secret_file"):
            a["secret"] = _read_secret(key, a["secret_file"], read_file, problems)
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
        http["token"] = _read_secret("http.token", http["token_file"], read_file, problems)
    store = sections["store"]
    if "store" in needs and store.get("url_file") and "url" not in store:
        store["url"] = _read_secret("store.url", store["url_file"], read_file, problems)


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
    p += _check_url(st.url)
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


_DRIVERS = {"sqlite": "sqlite+aiosqlite", "sqlite+aiosqlite": "sqlite+aiosqlite", "postgresql": "postgresql+asyncpg",
            "postgres": "postgresql+asyncpg", "postgresql+asyncpg": "postgresql+asyncpg"}


def db_url(text: str) -> str:
    """A database URL from what a user typed: a plain path is an SQLite file; ``sqlite://``/``postgresql://``
    get their asyncio driver. Anything else is returned as it is (and rejected by :func:`validate`)."""
    scheme, sep, rest = text.partition("://")
    if not sep:
        return f"sqlite+aiosqlite:///{text}" if text else text
    driver = _DRIVERS.get(scheme.lower())
    return f"{driver}://{rest}" if driver else text


def sqlite_path(url: str) -> str | None:
    """The file of an SQLite URL (None for other databases and for ``:memory:``)."""
    scheme, _, rest = db_url(url).partition("://")
    if scheme != "sqlite+aiosqlite" or not rest.startswith("/"):
        return None
    path = rest[1:].partition("?")[0]
    return None if path in ("", ":memory:") or path.startswith("file:") else path


def _check_url(url: str) -> list[str]:
    scheme, sep, _ = url.partition("://")
    if not sep or not re.fullmatch(r"[A-Za-z][A-Za-z0-9+.-]*", scheme):
        return [f"store.url: not a database URL: {mask_url(url)!r}"]
    if scheme not in ("sqlite+aiosqlite", "postgresql+asyncpg"):
        return [f"store.url: driver {scheme!r} unsupported: use sqlite+aiosqlite:// or postgresql+asyncpg://"]
    if scheme == "postgresql+asyncpg":
        try:
            urllib.parse.urlsplit(url).port  # noqa: B018 - evaluated for its ValueError on a bad port
        except ValueError:
            netloc = urllib.parse.urlsplit(url).netloc.rpartition("@")[2]
            return [f"store.url: bad port in {netloc!r}: a number from 1 to 65535"]
    return []


_QUERY_SECRET = re.compile(r"([?&](?:password|passwd|pwd|secret|token|sslpassword)=)[^&#]*", re.IGNORECASE)


def mask_url(url: str) -> str:
    """The URL with its password (``user:password@`` or a ``?password=`` parameter) replaced by ``***``."""
    url = _QUERY_SECRET.sub(r"\1***", url)
    scheme, sep, rest = url.partition("://")
    at = rest.rfind("@")
    colon = rest.find(":")
    if not sep or at < 0 or not 0 <= colon < at:  # no user:password@ part
        return url
    return f"{scheme}://{rest[:colon]}:***{rest[at:]}"


def mask_webhook(url: str) -> str:
    """Only scheme and host of a webhook URL: chat webhooks carry their credential in the path."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return "***" if url else ""
    return f"{scheme}://{rest.split('/', 1)[0].rsplit('@', 1)[-1]}/***"
