"""Typed settings from text: TOML, ``QMON_*`` environment values and ``*_file`` secrets, each coerced to its
dataclass field's type, every problem collected (never raised one at a time). Used by :mod:`monitor.config`."""

from __future__ import annotations

import dataclasses
import math
import re
import types
import typing
from collections.abc import Callable, Mapping
from typing import Any

from monitor.urls import mask_url

SECRET_FIELDS = frozenset({"secret", "token", "hash_salt"})


def field_types(cls: type[Any]) -> dict[str, Any]:
    return typing.get_type_hints(cls)


_BAD: Any = object()  # a value of the wrong type (its problem is already recorded)


def coerce(key: str, value: Any, hint: Any, from_text: bool, problems: list[str]) -> Any:
    """Check (or, for env/flags, parse) one value against its dataclass type; :data:`_BAD` + a problem if wrong.

    From text (env, flags) an empty string is None only for optional fields; for a number or a boolean it is a
    problem like any other text that is not one (never None passed on to the value checks).
    """
    args = typing.get_args(hint)
    if isinstance(hint, types.UnionType):  # X | None
        inner = next(a for a in args if a is not type(None))
        if value is None or (from_text and isinstance(value, str) and not value.strip()):
            return None
        return coerce(key, value, inner, from_text, problems)
    if typing.get_origin(hint) is tuple:
        if from_text and isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            problems.append(f"{key}: expected a list of strings, got {show(value)}")
            return _BAD
        return tuple(value)
    if hint is bool:
        if from_text and isinstance(value, str) and value.lower() in ("1", "true", "yes", "on", "0", "false", "no",
                                                                       "off"):
            return value.lower() in ("1", "true", "yes", "on")
        if isinstance(value, bool):
            return value
        problems.append(f"{key}: expected true or false, got {show(value)}")
        return _BAD
    if hint is int or hint is float:
        if from_text and isinstance(value, str):
            try:
                value = int(value) if hint is int else float(value)
            except ValueError:
                pass
        if isinstance(value, float) and not math.isfinite(value):  # nan/inf pass every range check: refuse
            problems.append(f"{key}: expected a finite number, got {show(value)}")
            return _BAD
        ok = isinstance(value, int) and not isinstance(value, bool)
        if hint is float:
            ok = ok or isinstance(value, float)
        if not ok:
            problems.append(f"{key}: expected {'an integer' if hint is int else 'a number'}, got {show(value)}")
            return _BAD
        return float(value) if hint is float else value
    if hint is str:
        if not isinstance(value, str):
            problems.append(f"{key}: expected a string, got {show(value)}")
            return _BAD
        return value
    raise TypeError(f"unsupported settings type {hint!r}")  # a programming error in settings.py


def show(value: Any) -> str:
    return f"{type(value).__name__} {value!r}" if not isinstance(value, str) else f"string {value!r}"


def apply_section(cls: type[Any], prefix: str, raw: Mapping[str, Any], from_text: bool, problems: list[str],
           allow_secrets: bool) -> dict[str, Any]:
    """Validated field values of one section (unknown keys and plain secrets in files are problems)."""
    hints = field_types(cls)
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
        value = coerce(key, v, hints[k], from_text, problems)
        if value is not _BAD:
            out[k] = value
    return out


def parse_toml(text: str, source: str, problems: list[str]) -> dict[str, Any]:
    """The TOML document (empty + a problem when it does not parse)."""
    import tomllib  # here: most runs read no file (tomllib and the datetime it imports: ~2 ms of qmon's start-up)

    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        problems.append(f"--config: {source} is not valid TOML: {exc}")
    return {}


#: Reads a ``*_file`` secret: the file's text, or OSError. Given by the command (config.py does no I/O).
FileReader = Callable[[str], str]


def no_files(path: str) -> str:
    raise OSError(f"no file reader given for {path}")


def read_secret(key: str, path: str, read_file: FileReader, problems: list[str]) -> str:
    try:
        text = read_file(path)
    except (OSError, UnicodeDecodeError) as exc:
        problems.append(f"{key}: cannot read {path}: {getattr(exc, 'strerror', None) or exc}")
        return ""
    value = text.strip()
    if not value:
        problems.append(f"{key}: {path} is empty")
    return value


def env_for(section: str, hints: Mapping[str, Any], env: Mapping[str, str], used: set[str],
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
