"""Settings loading: TOML file + ``QMON_*`` env + flags -> frozen :class:`~monitor.settings.Settings`.

Precedence (lowest first): built-in defaults, the TOML file, environment variables, command-line flags.
Every problem is collected and raised together in one :class:`ConfigError`. See ``docs/configuration.md``.
"""

from __future__ import annotations

import argparse
import dataclasses
import re
import sys
import tomllib
import types
import typing
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, NoReturn

from monitor.core.servicelevel import sl_definition_map
from monitor.settings import (
    AmiSettings,
    HttpSettings,
    Settings,
    StoreSettings,
    SurveySettings,
    TrackerSettings,
    wrapup_pairs,
)

SECTIONS: dict[str, type[Any]] = {
    "tracker": TrackerSettings, "http": HttpSettings, "store": StoreSettings, "survey": SurveySettings,
}
#: (section, secret field, file field): secrets come from env or the file, never from the TOML itself.
SECRETS = (("ami", "secret", "secret_file"), ("http", "token", "token_file"), ("store", "hash_salt", None))
SECRET_FIELDS = frozenset({"secret", "token", "hash_salt"})
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")


class ConfigError(Exception):
    """One or more configuration problems, each ``key: reason``."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise ConfigError([f"command line: {message}"])


def arg_parser(prog: str = "qmon run") -> argparse.ArgumentParser:
    """The flags shared by ``qmon run`` and ``qmon check-config``."""
    p = _Parser(prog=prog, description="Settings: TOML file < QMON_* env < these flags.")
    p.add_argument("--config", "-c", help="TOML config file (default: $QMON_CONFIG)")
    p.add_argument("--http-bind", help="HTTP bind address (default 127.0.0.1)")
    p.add_argument("--http-port", help="HTTP port (0 = any free port)")
    p.add_argument("--store-url", help="SQLAlchemy URL; prefer QMON_STORE_URL or store.url_file for passwords")
    p.add_argument("--log-level", help="DEBUG, INFO, WARNING, ERROR")
    return p


def _hints(cls: type[Any]) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _coerce(key: str, value: Any, hint: Any, from_text: bool, problems: list[str]) -> Any:
    """Check (or, for env/flags, parse) one value against its dataclass type; None + a problem if wrong."""
    args = typing.get_args(hint)
    if isinstance(hint, types.UnionType):  # X | None
        inner = next(a for a in args if a is not type(None))
        if value is None or (from_text and value == ""):
            return None
        return _coerce(key, value, inner, from_text, problems)
    if typing.get_origin(hint) is tuple:
        if from_text and isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            problems.append(f"{key}: expected a list of strings, got {_show(value)}")
            return None
        return tuple(value)
    if hint is bool:
        if from_text and isinstance(value, str) and value.lower() in ("1", "true", "yes", "on", "0", "false", "no",
                                                                       "off"):
            return value.lower() in ("1", "true", "yes", "on")
        if isinstance(value, bool):
            return value
        problems.append(f"{key}: expected true or false, got {_show(value)}")
        return None
    if hint is int or hint is float:
        if from_text and isinstance(value, str):
            try:
                value = int(value) if hint is int else float(value)
            except ValueError:
                pass
        ok = isinstance(value, int) and not isinstance(value, bool)
        if hint is float:
            ok = ok or isinstance(value, float)
        if not ok:
            problems.append(f"{key}: expected {'an integer' if hint is int else 'a number'}, got {_show(value)}")
            return None
        return float(value) if hint is float else value
    if hint is str:
        if not isinstance(value, str):
            problems.append(f"{key}: expected a string, got {_show(value)}")
            return None
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
            known = ", ".join(sorted(f.name for f in dataclasses.fields(cls) if f.name not in ("ami", "config_file")))
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
        if value is not None or v is None or (from_text and v == ""):
            out[k] = value
    return out


def _read_toml(path: str, problems: list[str]) -> dict[str, Any]:
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except OSError as exc:
        problems.append(f"--config: cannot read {path}: {exc.strerror}")
    except tomllib.TOMLDecodeError as exc:
        problems.append(f"--config: {path} is not valid TOML: {exc}")
    return {}


def _read_secret(key: str, path: str, problems: list[str]) -> str:
    try:
        text = Path(path).read_text(encoding="utf-8")
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


def load_settings(argv: list[str], env: Mapping[str, str]) -> Settings:
    """Pure: the effective settings, or ConfigError listing every problem (key + reason)."""
    problems: list[str] = []
    args = arg_parser().parse_args(argv)
    config_file: str | None = args.config or env.get("QMON_CONFIG") or None
    data = _read_toml(config_file, problems) if config_file else {}
    used: set[str] = {"QMON_CONFIG"}
    top = _apply(Settings, "", {k: v for k, v in data.items() if k not in SECTIONS and k != "ami"}, False,
                 problems, False)
    env_top = {k: env[f"QMON_{k.upper()}"] for k in ("log_level",) if f"QMON_{k.upper()}" in env}
    used |= {f"QMON_{k.upper()}" for k in env_top}
    top |= _apply(Settings, "", env_top, True, problems, True)
    if args.log_level is not None:
        top["log_level"] = args.log_level
    sections: dict[str, Any] = {}
    for name, cls in SECTIONS.items():
        raw = data.get(name, {})
        if not isinstance(raw, dict):
            problems.append(f"{name}: expected a table [{name}], got {_show(raw)}")
            raw = {}
        values = _apply(cls, name, raw, False, problems, False)
        values |= _apply(cls, name, _env_for(name, _hints(cls), env, used), True, problems, True)
        sections[name] = values
    for flag, (sec, key) in {"http_bind": ("http", "bind"), "http_port": ("http", "port"),
                             "store_url": ("store", "url")}.items():
        if getattr(args, flag) is not None:
            sections[sec] |= _apply(SECTIONS[sec], sec, {key: getattr(args, flag)}, True, problems, True)
    amis = _load_amis(data.get("ami"), env, used, problems)
    _resolve_secrets(amis, sections, problems)
    for k in sorted(k for k in env if k.startswith("QMON_") and k not in used and not _foreign(k)):
        problems.append(f"env {k}: unknown setting (see docs/configuration.md for the QMON_* names)")
    # Values of the wrong type were dropped above, so this builds; value checks then add their problems.
    settings = Settings(
        ami=tuple(AmiSettings(**a) for a in amis),
        **{name: SECTIONS[name](**v) for name, v in sections.items()}, **top, config_file=config_file,
    )
    problems += validate(settings)
    if problems:
        raise ConfigError(problems)
    return settings


def _foreign(key: str) -> bool:
    # Variables qmon sets in the dialplan / survey callback, not settings.
    return key in ("QMON_SURVEY_TOKEN", "QMON_QUEUE", "QMON_LANG", "QMON_CSAT", "QMON_SURVEY_STATUS")


def _load_amis(raw: Any, env: Mapping[str, str], used: set[str], problems: list[str]) -> list[dict[str, Any]]:
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
        if not isinstance(name, str) or not _NAME_RE.match(name):
            problems.append(f"ami[{i}].name: required with several [[ami]], letters/digits/_.- (got {name!r})")
            name = f"ami{i}"
        prefix = f"ami[{name}]"
        values = _apply(AmiSettings, prefix, table, False, problems, False)
        values |= _apply(AmiSettings, prefix, _env_for("ami", hints, env, used, name), True, problems, True)
        values["name"] = name
        out.append(values)
    return out


def _resolve_secrets(amis: list[dict[str, Any]], sections: dict[str, Any], problems: list[str]) -> None:
    for a in amis:
        key = f"ami[{a['name']}].secret"
        if not a.get("secret") and a.get("secret_file"):
            a["secret"] = _read_secret(key, a["secret_file"], problems)
        if not a.get("secret") and not a.get("secret_file"):
            problems.append(f"{key}: missing: set QMON_AMI_SECRET (or QMON_AMI_{env_name(a['name'])}_SECRET) "
                            "or secret_file")
    http = sections["http"]
    if not http.get("token") and http.get("token_file"):
        http["token"] = _read_secret("http.token", http["token_file"], problems)
    store = sections["store"]
    if store.get("url_file") and "url" not in store:
        store["url"] = _read_secret("store.url", store["url_file"], problems)


def validate(s: Settings) -> list[str]:
    """Value checks across fields (ranges, names, URLs) once types are right."""
    from monitor.core.repeat import parse_window

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
    p += ["tracker.sl_threshold_s: must be > 0"] if t.sl_threshold_s <= 0 else []
    p += ["tracker.repeat_max_entries: must be > 0"] if t.repeat_max_entries <= 0 else []
    for w in t.repeat_windows:
        try:
            parse_window(w)
        except ValueError as exc:
            p.append(f"tracker.repeat_windows: {exc}")
    p += ["tracker.owed_horizon_s: must be > 0"] if t.owed_horizon_s <= 0 else []
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
    p += [f"survey.port: {s.survey.port} is not a TCP port (0-65535)"] if not 0 <= s.survey.port < 65536 else []
    try:
        from monitor.survey.config import callback_config, policy_config
    except ImportError:  # the survey package is optional
        return p
    for check in (policy_config, callback_config):
        try:
            check(s.survey)
        except ValueError as exc:
            p += str(exc).split("; ")
    return p


def _check_url(url: str) -> list[str]:
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        u = make_url(url)
    except ArgumentError:
        return [f"store.url: not a database URL: {mask_url(url)!r}"]
    if u.drivername not in ("sqlite+aiosqlite", "postgresql+asyncpg"):
        return [f"store.url: driver {u.drivername!r} unsupported: use sqlite+aiosqlite:// or postgresql+asyncpg://"]
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


def masked(s: Settings) -> dict[str, Any]:
    """The settings as plain data with every secret masked (safe to print or log)."""
    def one(obj: Any) -> dict[str, Any]:
        d: dict[str, Any] = {}
        for f in dataclasses.fields(obj):
            v = getattr(obj, f.name)
            if f.name in SECRET_FIELDS:
                v = "***" if v else ""
            elif f.name == "url" and isinstance(v, str):
                v = mask_url(v)
            elif f.name == "webhook_url" and isinstance(v, str):
                v = mask_webhook(v)
            elif isinstance(v, tuple) and not (v and dataclasses.is_dataclass(v[0])):
                v = list(v)
            d[f.name] = v
        return d

    out = {k: v for k, v in one(s).items() if k not in SECTIONS and k != "ami"}
    out["ami"] = [one(a) for a in s.ami]
    out |= {name: one(getattr(s, name)) for name in SECTIONS}
    return out


def to_toml(data: Mapping[str, Any]) -> str:
    """A small TOML writer for :func:`masked` output (scalars, lists of strings, tables, arrays of tables)."""
    def val(v: Any) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, int | float):
            return repr(v)
        if isinstance(v, list):
            return "[" + ", ".join(val(x) for x in v) + "]"
        return '"' + str(v).replace("\\", "\\\\").replace('"', '\\"') + '"'

    lines: list[str] = []
    tables = {k: v for k, v in data.items() if isinstance(v, dict | list) and v and isinstance(
        v if isinstance(v, dict) else v[0], dict)}
    for k, v in data.items():
        if k not in tables:
            lines.append(f"# {k} = (not set)" if v is None else f"{k} = {val(v)}")
    for k, v in tables.items():
        for t in v if isinstance(v, list) else [v]:
            lines += ["", f"[[{k}]]" if isinstance(v, list) else f"[{k}]"]
            lines += [f"# {kk} = (not set)" if vv is None else f"{kk} = {val(vv)}" for kk, vv in t.items()]
    return "\n".join(lines) + "\n"


def load_or_report(argv: list[str], env: Mapping[str, str]) -> Settings | None:
    """Settings, or None after printing every problem to stderr (the command then exits 2)."""
    try:
        return load_settings(argv, env)
    except ConfigError as exc:
        print(f"qmon: {len(exc.problems)} configuration problem(s):", file=sys.stderr)
        for problem in exc.problems:
            print(f"  {problem}", file=sys.stderr)
        return None


def cmd_check_config(argv: list[str], env: Mapping[str, str]) -> int:
    """``qmon check-config``: print the effective settings (secrets masked); exit 2 on any problem."""
    settings = load_or_report(argv, env)
    if settings is None:
        return 2
    print(to_toml(masked(settings)), end="")
    return 0
