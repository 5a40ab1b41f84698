"""``qmon check-config``: print the effective settings as TOML, secrets masked; exit 2 on any problem."""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Mapping
from typing import Any

from monitor.cli.common import add_settings_flags, settings_flags, settings_from
from monitor.config import SECRET_FIELDS, SECTIONS, mask_url, mask_webhook
from monitor.settings import Settings


def add_parser(sub: Any) -> None:
    """Register ``qmon check-config``."""
    p = sub.add_parser("check-config", help="print the effective settings, secrets masked",
                       description="Print the effective settings (TOML < QMON_* env < flags) with every secret "
                       "masked; exit 2 listing every problem.")
    add_settings_flags(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    """Check everything ``qmon run`` needs, print it."""
    settings = settings_from(args.config, env, {"ami", "tracker", "http", "store", "survey"}, settings_flags(args))
    print(to_toml(masked(settings)), end="")
    return 0


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
