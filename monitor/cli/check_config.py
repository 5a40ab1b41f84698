"""``qmon check-config``: print the effective settings as TOML, secrets masked; exit 2 on any problem."""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from typing import Any

from monitor.cli.common import add_settings_flags, settings_flags, settings_from


def add_parser(sub: Any) -> None:
    """Register ``qmon check-config``."""
    p = sub.add_parser("check-config", help="print the effective settings, secrets masked",
                       description="Print the effective settings (TOML < QMON_* env < flags) with every secret "
                       "masked; exit 2 listing every problem.")
    add_settings_flags(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace, env: Mapping[str, str]) -> int:
    """Check everything ``qmon run`` needs, print it."""
    from monitor.config import masked, to_toml

    settings = settings_from(args.config, env, {"ami", "tracker", "http", "store", "survey"}, settings_flags(args))
    print(to_toml(masked(settings)), end="")
    return 0
